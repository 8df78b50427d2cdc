"""Tumour lesions of the SSTR phantom: spheres and ellipsoids with a known concentration.

A lesion's concentration is given as a ratio to *normal* liver (``ratio_liver``), so its true
Krenning grade follows from the concentrations alone. Sites: liver, pancreas, lymph node
(para-aortic / mesenteric / iliac), bone (spine, pelvis, proximal femur), lung.

Random lesions span the grades (concentration ranges below), diameters 8-60 mm (log-uniform)
and the sites; a share of them sits on purpose within +-7 % of a nominal grade threshold
(0.5 x liver, 1.0 x liver, 1.0 x spleen: the Krenning cut-offs of the default configuration)
so that borderline grading is exercised.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.phantom.anatomy import (
    UPTAKE_ORGANS,
    Anatomy,
    Grid,
    Shape,
    Tissue,
    ellipsoid_occupancy,
)

MIN_DIAMETER_MM = 8.0
MAX_DIAMETER_MM = 60.0
# Nominal design thresholds used only to place "borderline" lesions on purpose; grading itself
# uses the thresholds of the configuration (models/krenning.py, configs/*.toml).
NOMINAL_LIVER_THRESHOLDS = (0.5, 1.0)
BORDERLINE_SPREAD = 0.07


class LesionSite(enum.StrEnum):
    LIVER = "liver"
    PANCREAS = "pancreas"
    LYMPH_NODE = "lymph_node"
    BONE = "bone"
    LUNG = "lung"


@dataclass(frozen=True)
class LesionSpec:
    """What to place: site, longest diameter (mm), concentration / normal liver.

    ``elongation`` >= 1 is the ratio of the longest to the two shorter axes (1 = sphere).
    ``center_mm`` (LPS) fixes the position; None lets :func:`place_lesions` choose one.
    """

    site: LesionSite
    diameter_mm: float
    ratio_liver: float
    elongation: float = 1.0
    center_mm: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if not MIN_DIAMETER_MM <= self.diameter_mm <= MAX_DIAMETER_MM:
            raise InvalidInputError(
                f"lesion diameter {self.diameter_mm} mm outside "
                f"{MIN_DIAMETER_MM:g}-{MAX_DIAMETER_MM:g} mm",
                code="invalid_lesion_spec",
            )
        if not 0.0 <= self.ratio_liver <= 100.0:
            raise InvalidInputError(
                f"lesion ratio to liver {self.ratio_liver} outside 0-100",
                code="invalid_lesion_spec",
            )
        if not 1.0 <= self.elongation <= 3.0:
            raise InvalidInputError(
                f"lesion elongation {self.elongation} outside 1-3", code="invalid_lesion_spec"
            )


@dataclass(frozen=True)
class Lesion:
    """A placed lesion: ellipsoid in LPS mm with its true concentration ratio.

    ``semi_axes_mm`` are (x, y, z) before a rotation of ``angle_deg`` about z;
    ``diameter_mm`` is the longest axis, ``equivalent_diameter_mm`` that of the sphere of the
    same volume.
    """

    id: str
    site: LesionSite
    center_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    angle_deg: float
    ratio_liver: float

    @property
    def shape(self) -> Shape:
        return Shape("ellipsoid", self.center_mm, self.semi_axes_mm, angle_deg=self.angle_deg)

    @property
    def diameter_mm(self) -> float:
        return 2.0 * max(self.semi_axes_mm)

    @property
    def volume_ml(self) -> float:
        a, b, c = self.semi_axes_mm
        return 4.0 / 3.0 * math.pi * a * b * c / 1000.0

    @property
    def equivalent_diameter_mm(self) -> float:
        a, b, c = self.semi_axes_mm
        return 2.0 * (a * b * c) ** (1.0 / 3.0)


_SPEC_RE = re.compile(
    r"^\s*(?P<site>[a-z_]+)\s*:\s*(?P<diam>[0-9.]+)\s*:\s*(?P<ratio>[0-9.]+)"
    r"(?:\s*:\s*(?P<elong>[0-9.]+))?\s*$"
)


def parse_lesion_specs(text: str) -> tuple[LesionSpec, ...]:
    """Parse ``SITE:DIAMETER_MM:RATIO_LIVER[:ELONGATION]`` items separated by commas.

    Example: ``"liver:30:2.5,pancreas:22:8,lymph_node:15:0.4"``. Sites: liver, pancreas,
    lymph_node, bone, lung.
    """
    specs: list[LesionSpec] = []
    for item in text.split(","):
        if not item.strip():
            continue
        m = _SPEC_RE.match(item.lower())
        if not m:
            raise InvalidInputError(
                f"lesion spec {item.strip()!r} is not SITE:DIAMETER_MM:RATIO_LIVER[:ELONGATION]",
                code="invalid_lesion_spec",
            )
        site = m["site"]
        if site not in {s.value for s in LesionSite}:
            raise InvalidInputError(
                f"lesion site {site!r} unknown; expected one of "
                f"{', '.join(s.value for s in LesionSite)}",
                code="invalid_lesion_spec",
            )
        specs.append(
            LesionSpec(
                site=LesionSite(site),
                diameter_mm=float(m["diam"]),
                ratio_liver=float(m["ratio"]),
                elongation=float(m["elong"]) if m["elong"] else 1.0,
            )
        )
    return tuple(specs)


# Lesion mixes: grade weights (grades 1-4) and diameter range (mm). "avid" studies hold
# mostly large grade-3/4 disease, "low" studies only grade-1/2 disease.
LESION_PROFILES: dict[str, tuple[tuple[float, float, float, float], tuple[float, float]]] = {
    "mixed": ((0.15, 0.2, 0.3, 0.35), (MIN_DIAMETER_MM, MAX_DIAMETER_MM)),
    "avid": ((0.0, 0.05, 0.35, 0.6), (15.0, MAX_DIAMETER_MM)),
    "low": ((0.5, 0.5, 0.0, 0.0), (MIN_DIAMETER_MM, MAX_DIAMETER_MM)),
}


def draw_lesion_specs(
    seed: int,
    n: int,
    *,
    spleen_ratio: float,
    profile: str = "mixed",
    borderline_fraction: float = 0.25,
) -> tuple[LesionSpec, ...]:
    """Draw ``n`` lesion specs spanning grades 1-4, sizes and sites (see LESION_PROFILES).

    ``spleen_ratio`` is the study's spleen (or kidney) concentration over normal liver:
    grade-4 lesions are drawn above it (1.1-3.0 x), grade 3 between 1.1 x liver and 0.9 x
    spleen, grade 2 0.55-0.95 x liver, grade 1 0.15-0.45 x liver. With probability
    ``borderline_fraction`` a lesion sits within +-7 % of a nominal threshold instead.
    """
    if profile not in LESION_PROFILES:
        raise InvalidInputError(
            f"lesion profile {profile!r} unknown; expected one of {', '.join(LESION_PROFILES)}",
            code="invalid_option",
        )
    grade_weights, diameter_range_mm = LESION_PROFILES[profile]
    rng = np.random.default_rng([seed, 404])
    sites = list(LesionSite)
    site_p = np.array([0.40, 0.15, 0.20, 0.15, 0.10])
    weights = np.asarray(grade_weights, dtype=np.float64)
    weights = weights / weights.sum()
    out: list[LesionSpec] = []
    lo_d, hi_d = diameter_range_mm
    for _ in range(n):
        site = sites[int(rng.choice(len(sites), p=site_p))]
        diameter = float(np.exp(rng.uniform(math.log(lo_d), math.log(hi_d))))
        if site == LesionSite.LUNG:
            diameter = min(diameter, 35.0)
        if rng.random() < borderline_fraction:
            allowed = [
                t
                for t, w in zip(
                    (*NOMINAL_LIVER_THRESHOLDS, spleen_ratio),
                    (weights[0] + weights[1], weights[1] + weights[2], weights[2] + weights[3]),
                    strict=True,
                )
                if w > 0
            ]
            threshold = float(rng.choice(allowed))
            ratio = threshold * float(rng.uniform(1.0 - BORDERLINE_SPREAD, 1.0 + BORDERLINE_SPREAD))
        else:
            grade = int(rng.choice(4, p=weights)) + 1
            if grade == 1:
                ratio = float(rng.uniform(0.15, 0.45))
            elif grade == 2:
                ratio = float(rng.uniform(0.55, 0.95))
            elif grade == 3:
                ratio = float(rng.uniform(1.1, max(1.2, 0.9 * spleen_ratio)))
            else:
                ratio = spleen_ratio * float(rng.uniform(1.1, 3.0))
        elongation = 1.0 if rng.random() < 0.6 else float(rng.uniform(1.1, 1.6))
        out.append(
            LesionSpec(
                site=site,
                diameter_mm=round(diameter, 1),
                ratio_liver=round(ratio, 3),
                elongation=round(elongation, 2),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class _SiteRegion:
    """Where centres of one site may go: a sub-box of the grid, the allowed voxels in it and
    (optionally) each voxel's distance (mm) to the nearest voxel outside the site's tissue."""

    box: tuple[slice, slice, slice]
    region: np.ndarray
    clearance_mm: np.ndarray | None


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, slice, slice]:
    out = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        if idx.size == 0:
            out.append(slice(0, 0))
        else:
            out.append(slice(max(0, idx[0] - margin), min(mask.shape[axis], idx[-1] + margin + 1)))
    return (out[0], out[1], out[2])


def _site_region(site: LesionSite, labels: np.ndarray, grid: Grid, anatomy: Anatomy) -> _SiteRegion:
    """Allowed centre voxels of ``site`` (computed on a cropped box for speed)."""
    H = anatomy.height_mm
    spacing = grid.spacing_mm
    if site in (LesionSite.LIVER, LesionSite.LUNG, LesionSite.PANCREAS):
        tissue = {
            LesionSite.LIVER: Tissue.LIVER,
            LesionSite.LUNG: Tissue.LUNG,
            LesionSite.PANCREAS: Tissue.PANCREAS,
        }[site]
        mask = labels == tissue
        box = _bbox(mask, 1)
        sub = mask[box]
        if site == LesionSite.PANCREAS:
            return _SiteRegion(box, sub, None)
        return _SiteRegion(box, sub, ndimage.distance_transform_edt(sub, sampling=spacing))
    zc = grid.axis_mm(0)
    if site == LesionSite.BONE:
        zs = grid.index_range(0, 0.40 * H, 0.80 * H)
        xs = grid.index_range(2, -anatomy.torso_width_mm / 2 + 10, anatomy.torso_width_mm / 2 - 10)
        box = (zs, slice(0, labels.shape[1]), xs)
        return _SiteRegion(box, labels[box] == Tissue.BONE, None)
    # lymph nodes: retroperitoneal / mesenteric / iliac fat and soft tissue, clear of organs
    # the box leaves room for the largest clearance tested (node radius + 3 mm)
    margin = MAX_DIAMETER_MM / 2.0 + 10.0
    W, D = anatomy.torso_width_mm, anatomy.torso_depth_mm
    zs = grid.index_range(0, 0.50 * H - margin, 0.62 * H + margin)
    ys = grid.index_range(1, -0.30 * D - margin, 0.25 * D + margin)
    xs = grid.index_range(2, -0.28 * W - margin, 0.28 * W + margin)
    box = (zs, ys, xs)
    sub = labels[box]
    organs = np.isin(sub, [int(t) for t in UPTAKE_ORGANS] + [int(Tissue.BONE), int(Tissue.AIR)])
    free = ndimage.distance_transform_edt(~organs, sampling=spacing)
    z = zc[zs][:, None, None]
    y = grid.axis_mm(1)[ys][None, :, None]
    x = grid.axis_mm(2)[xs][None, None, :]
    region = (
        np.isin(sub, [int(Tissue.FAT), int(Tissue.SOFT_TISSUE)])
        & (np.abs(x) < 0.28 * W)
        & (z > 0.50 * H)
        & (z < 0.62 * H)
        & (y > -0.30 * D)
        & (y < 0.25 * D)
    )
    return _SiteRegion(box, region, free)


def _candidates(site: LesionSite, reg: _SiteRegion, radius_mm: float) -> np.ndarray:
    """(n, 3) grid indices of allowed centres for a lesion of short semi-axis ``radius_mm``."""
    allowed = reg.region
    if reg.clearance_mm is not None and allowed.any():
        best = float(reg.clearance_mm[allowed].max())
        if site == LesionSite.LIVER:
            need = min(0.7 * radius_mm, 0.8 * best)
        else:
            need = min(radius_mm + (4.0 if site == LesionSite.LUNG else 3.0), 0.8 * best)
        allowed = allowed & (reg.clearance_mm >= need)
    idx = np.argwhere(allowed)
    return idx + np.array([reg.box[0].start, reg.box[1].start, reg.box[2].start])


# Organs whose projection a lesion should not overlap on planar views (a lesion in front of a
# kidney or the bladder cannot be told from it); relaxed when a site has no other room.
PROJECTION_AVOID: tuple[Tissue, ...] = (
    Tissue.SPLEEN,
    Tissue.KIDNEY_LEFT,
    Tissue.KIDNEY_RIGHT,
    Tissue.BLADDER,
    Tissue.GALLBLADDER,
    Tissue.BOWEL,
    Tissue.HEART,
    Tissue.THYROID,
)
PROJECTION_MARGIN_MM = 8.0
# Where a drawn lesion goes when its own site has no room left.
FALLBACK_SITES: tuple[LesionSite, ...] = (
    LesionSite.LIVER,
    LesionSite.LYMPH_NODE,
    LesionSite.BONE,
    LesionSite.LUNG,
    LesionSite.PANCREAS,
)


def _projection_clearance_mm(
    labels: np.ndarray, grid: Grid, tissues: Sequence[Tissue]
) -> np.ndarray:
    """(nz, nx) distance (mm) from each (z, x) column to the projection along y of ``tissues``."""
    hot = np.isin(labels, [int(t) for t in tissues]).any(axis=1)
    if not hot.any():
        return np.full(hot.shape, np.inf)
    return ndimage.distance_transform_edt(~hot, sampling=(grid.spacing_mm[0], grid.spacing_mm[2]))


def place_lesions(
    specs: Sequence[LesionSpec],
    anatomy: Anatomy,
    labels: np.ndarray,
    grid: Grid,
    *,
    seed: int,
    strict: bool = True,
) -> tuple[Lesion, ...]:
    """Place lesions on the anatomy without overlap.

    Centres are at least r1 + r2 + 10 mm apart in projection (x, z), and where the site
    allows, a lesion's projection stays 8 mm clear of the spleen, kidneys, bladder,
    gallbladder, bowel, heart and thyroid (and of the liver for lesions outside it).

    With ``strict`` (user-given specs) a lesion that finds no room raises
    :class:`InvalidInputError`; otherwise (drawn specs) it moves to the next site of
    ``FALLBACK_SITES`` with room, and raises only when no site has any.
    """
    rng = np.random.default_rng([seed, 505])
    placed: list[Lesion] = []
    regions: dict[LesionSite, _SiteRegion] = {}
    avoid = list(PROJECTION_AVOID)
    clearance = _projection_clearance_mm(labels, grid, avoid)
    clearance_other = _projection_clearance_mm(labels, grid, [*avoid, Tissue.LIVER])
    idx_to_mm = grid.affine

    def candidates(site: LesionSite, r_long: float, r_short: float) -> np.ndarray:
        if site not in regions:
            regions[site] = _site_region(site, labels, grid, anatomy)
        cand = _candidates(site, regions[site], r_short)
        clear = clearance if site == LesionSite.LIVER else clearance_other
        away = clear[cand[:, 0], cand[:, 2]] >= r_long + PROJECTION_MARGIN_MM
        if away.any():
            cand = cand[away]
        if placed and len(cand):
            pts = cand @ idx_to_mm[:3, :3].T + idx_to_mm[:3, 3]
            ok = np.ones(len(cand), dtype=bool)
            for other in placed:
                # apart in projection too (x, z), so footprints on planar views are separate
                o = np.asarray(other.center_mm)
                d = np.hypot(pts[:, 0] - o[0], pts[:, 2] - o[2])
                ok &= d >= r_long + max(other.semi_axes_mm) + 10.0
            cand = cand[ok]
        return cand

    for k, spec in enumerate(specs):
        r_long = spec.diameter_mm / 2.0
        r_short = r_long / spec.elongation
        angle = float(rng.uniform(0.0, 180.0))
        axis = int(rng.integers(0, 3))
        semi = [r_short, r_short, r_short]
        semi[axis] = r_long
        site = spec.site
        if spec.center_mm is not None:
            center = spec.center_mm
        else:
            sites = [site] if strict else [site, *(s for s in FALLBACK_SITES if s != site)]
            cand = np.empty((0, 3), dtype=int)
            for site in sites:
                cand = candidates(site, r_long, r_short)
                if len(cand):
                    break
            if len(cand) == 0:
                raise InvalidInputError(
                    f"no room for lesion {k + 1} ({spec.site.value}, {spec.diameter_mm:g} mm): "
                    "use fewer or smaller lesions",
                    code="invalid_lesion_spec",
                )
            pick = cand[int(rng.integers(0, len(cand)))]
            jitter = rng.uniform(-0.5, 0.5, size=3) * np.asarray(grid.spacing_mm)
            p = (pick + jitter / np.asarray(grid.spacing_mm)) @ idx_to_mm[:3, :3].T
            p = p + idx_to_mm[:3, 3]
            center = (round(float(p[0]), 2), round(float(p[1]), 2), round(float(p[2]), 2))
        placed.append(
            Lesion(
                id=f"L{k + 1}",
                site=site,
                center_mm=center,
                semi_axes_mm=(round(semi[0], 3), round(semi[1], 3), round(semi[2], 3)),
                angle_deg=round(angle, 2),
                ratio_liver=spec.ratio_liver,
            )
        )
    return tuple(placed)


def add_lesions(
    concentration: np.ndarray,
    grid: Grid,
    lesions: Sequence[Lesion],
    liver_kbq_per_ml: float,
) -> np.ndarray:
    """Return a copy of ``concentration`` (kBq/mL) with each lesion replacing the tissue it
    occupies, in proportion to the voxel fraction it covers (partial-volume exact to 1/64)."""
    out = concentration.copy()
    for lesion in lesions:
        occ = ellipsoid_occupancy(grid, lesion.shape)
        if occ is None:
            continue
        sl, frac = occ
        c_les = lesion.ratio_liver * liver_kbq_per_ml
        out[sl] = out[sl] * (1.0 - frac) + c_les * frac
    return out
