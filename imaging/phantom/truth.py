"""The physical truth of a phantom study, as frozen dataclasses with ``to_json``.

Grades and the expected decision are *not* computed here (imaging knows no grading rules):
``octoscan.pipelines.phantom_truth`` adds them from the configured thresholds.

Planar "apparent" values emulate what a reader sees on the conjugate-view geometric mean (GM)
of the two whole-body views, measured on the **noise-free** expectation at the study's count
level, with the posterior view mirrored and aligned onto the anterior grid:

* **Reference regions**: liver, a disk of radius 15 mm (3 cm) where the projected right lobe
  is thickest, at least 10 mm inside the projected liver edge, at least 10 mm clear of any
  other organ with uptake and at least 15 mm clear of every lesion footprint; spleen, a disk
  of radius 10 mm (2 cm) where the projected spleen is thickest under the same clearances;
  kidney, the same 2 cm disk in the kidney with the clearer spot (left on ties). When no
  spot meets the clearances they are halved, then dropped, then overlap with other organs
  is allowed. The liver disk is sought at least 40 mm right of the midline (the right lobe,
  clear of the spine) at every step short of the overlap before anywhere else. The
  reference value is the mean GM over the disk.
* **Footprint** of a lesion: the anterior-grid pixels whose centres fall inside the lesion's
  projection along y (an ellipse in (x, z)); at least the pixel holding the centre.
* **Apparent peak**: the maximum GM inside the footprint; apparent ratio = peak / reference
  mean (liver, spleen, kidney).
* **Local background** B: the lesion-free noise-free GM (the same body and counts with every
  lesion replaced by the tissue it displaced) at the peak pixel. (A ring median around the
  footprint, R + 15 mm <= r <= R + 30 mm, is also reported as ``ring_background_gm``; it is
  not used because at organ edges the ring leaves the organ and makes a cold liver lesion
  look "hot".)
* **Contrast** = (peak - B) / B.
* **Contrast-to-noise** (a Rose-model detectability of the whole footprint F of N pixels):
  signal S = sum over F of (GM - GM_free), the lesion's own net counts in GM units; noise
  sigma = sqrt(sum over F of (A_free + P_free) / 4), where A_free and P_free are the
  lesion-free anterior and aligned posterior expectations (for GM = sqrt(A P) with Poisson A
  and P, var(GM) ~= (A + P) / 4 per pixel). CNR = S / sigma. Both scale with the study's
  count level (CNR with its square root).
* **Visible** when contrast >= 0.10 and CNR >= 5.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from octoscan.imaging.phantom.anatomy import UPTAKE_ORGANS, Grid, Tissue
from octoscan.imaging.phantom.lesions import Lesion
from octoscan.imaging.phantom.planar import PlanarSimulation, sample_on_anterior

LIVER_REFERENCE_RADIUS_MM = 15.0
SPLEEN_REFERENCE_RADIUS_MM = 10.0
KIDNEY_REFERENCE_RADIUS_MM = 10.0
REFERENCE_EDGE_CLEARANCE_MM = 10.0
REFERENCE_ORGAN_CLEARANCE_MM = 10.0
REFERENCE_LESION_CLEARANCE_MM = 15.0
# The liver reference is preferably this far right of the midline: in the right lobe, where a
# reader places it, clear of the spine, whose attenuation lowers the geometric mean of a
# midline ray (the thickest liver column can lie there, over the spine, at a third of the
# right lobe's counts).
LIVER_REFERENCE_MIN_RIGHT_MM = 40.0
RING_INNER_MM = 15.0  # ring background (reported only)
RING_OUTER_MM = 30.0
RING_LESION_CLEARANCE_MM = 10.0
VISIBLE_MIN_CONTRAST = 0.10
VISIBLE_MIN_CNR = 5.0
TRUTH_SCHEMA = "octoscan-phantom-truth/1"


@dataclass(frozen=True)
class OrganTruth:
    """A normal organ: true concentration (kBq/mL at acquisition), ratio to normal liver,
    volume (mL); ``suv`` for PET."""

    name: str
    concentration_kbq_per_ml: float
    ratio_to_liver: float
    volume_ml: float
    suv: float | None = None


@dataclass(frozen=True)
class ReferenceRegion:
    """A reference disk on the anterior planar grid and its noise-free GM mean (counts)."""

    organ: str
    center_rc: tuple[float, float]
    radius_mm: float
    n_pixels: int
    mean_gm: float


@dataclass(frozen=True)
class PlanarLesionTruth:
    """How a lesion appears on the noise-free GM of one planar acquisition (see module doc).

    ``projected_diameter_mm`` is the area-equivalent diameter of the lesion's projection
    (2 sqrt(a_x a_z)), the size a planar scorer can measure.
    """

    hours_post_injection: float
    center_rc: tuple[float, float]
    peak_rc: tuple[int, int]
    footprint_pixels: int
    projected_diameter_mm: float
    peak_gm: float
    local_background_gm: float
    ring_background_gm: float
    apparent_ratio_liver: float | None
    apparent_ratio_spleen: float | None
    apparent_ratio_kidney: float | None
    contrast: float
    cnr: float
    visible: bool


@dataclass(frozen=True)
class PlanarTruth:
    """One planar whole-body acquisition: grid, counts and reference regions."""

    hours_post_injection: float
    rows: int
    cols: int
    pixel_spacing_mm: float
    expected_counts_anterior: float
    expected_counts_posterior: float
    counts_anterior: int
    counts_posterior: int
    posterior_shift_rc: tuple[float, float]
    references: Mapping[str, ReferenceRegion]
    method: str = "noise-free conjugate-view geometric mean, posterior mirrored and aligned"


@dataclass(frozen=True)
class LesionTruth:
    """One lesion: geometry (LPS mm), true concentration and ratios, planar appearance.

    ``true_ratio_spleen`` is None without a spleen. ``planar`` holds one entry per planar
    acquisition, in the order of :attr:`StudyTruth.planar`. ``suv`` for PET studies.
    """

    id: str
    site: str
    center_lps_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    angle_deg: float
    diameter_mm: float
    equivalent_diameter_mm: float
    volume_ml: float
    concentration_kbq_per_ml: float
    true_ratio_liver: float
    true_ratio_spleen: float | None
    true_ratio_kidney: float | None
    depth_anterior_mm: float
    depth_posterior_mm: float
    planar: tuple[PlanarLesionTruth, ...] = ()
    suv: float | None = None


@dataclass(frozen=True)
class SeriesTruth:
    """A written DICOM series: what it holds and where (folder relative to the study)."""

    role: str
    modality: str
    series_instance_uid: str
    series_description: str
    folder: str
    n_files: int
    hours_post_injection: float | None = None
    frame_of_reference_uid: str | None = None
    sop_class_uid: str = ""
    transfer_syntax_uid: str = ""


@dataclass(frozen=True)
class StudyTruth:
    """Everything known about one phantom study (one StudyInstanceUID)."""

    seed: int
    kind: str
    tracer: str
    radionuclide: str
    study_instance_uid: str
    patient_name: str
    patient_id: str
    weight_kg: float
    height_m: float
    injected_activity_mbq: float
    hours_post_injection: float
    splenectomy: bool
    diffuse_liver_involvement: bool
    single_view: bool
    variants: tuple[str, ...]
    organs: tuple[OrganTruth, ...]
    lesions: tuple[LesionTruth, ...]
    planar: tuple[PlanarTruth, ...] = ()
    primary_planar_index: int | None = None
    series: tuple[SeriesTruth, ...] = field(default_factory=tuple)
    count_level: float | None = None

    @property
    def primary_planar(self) -> PlanarTruth | None:
        if self.primary_planar_index is None:
            return None
        return self.planar[self.primary_planar_index]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready dict (floats rounded to 6 significant digits)."""
        return _clean(asdict(self))


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float | np.floating):
        v = float(obj)
        if not math.isfinite(v):
            return None
        return float(f"{v:.6g}")
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# ---- planar measurements ---------------------------------------------------------------


def _disk(shape: tuple[int, int], center: tuple[float, float], radius_px: float) -> np.ndarray:
    r = np.arange(shape[0])[:, None]
    c = np.arange(shape[1])[None, :]
    return (r - center[0]) ** 2 + (c - center[1]) ** 2 <= radius_px**2


def _projected_semi_axes_mm(lesion: Lesion) -> tuple[float, float]:
    """(x, z) semi-axes of the lesion's projection along y."""
    a, b, c = lesion.semi_axes_mm
    th = math.radians(lesion.angle_deg)
    return math.sqrt((a * math.cos(th)) ** 2 + (b * math.sin(th)) ** 2), c


def lesion_footprint(
    lesion: Lesion, sim: PlanarSimulation
) -> tuple[np.ndarray, tuple[float, float], float]:
    """(boolean footprint on the anterior grid, centre (row, col), larger semi-axis mm).

    Pixels whose centres lie inside the ellipse ((x - xc)/a_x)^2 + ((z - zc)/a_z)^2 <= 1 of
    the lesion's projection along y; at least the pixel holding the centre.
    """
    geo = sim.geometry
    r0, c0 = geo.anterior_rc(lesion.center_mm[0], lesion.center_mm[2])
    ax, az = _projected_semi_axes_mm(lesion)
    p = geo.pixel_mm
    rr = np.arange(geo.rows)[:, None]
    cc = np.arange(geo.cols)[None, :]
    mask = ((cc - c0) * p / ax) ** 2 + ((rr - r0) * p / az) ** 2 <= 1.0
    if not mask.any():
        ri, ci = round(r0), round(c0)
        if 0 <= ri < geo.rows and 0 <= ci < geo.cols:
            mask[ri, ci] = True
    return mask, (r0, c0), max(ax, az)


def _place_reference(
    organ_thickness: np.ndarray,
    other_thickness: np.ndarray,
    lesion_mask: np.ndarray,
    *,
    radius_mm: float,
    pixel_mm: float,
    prefer_cols: np.ndarray | None = None,
) -> tuple[tuple[float, float], int] | None:
    """(centre (row, col), relaxation level 0-3) of a reference disk, or None (no organ).

    Tries the strict clearances first, then relaxes them in steps (last: overlapping other
    organs allowed, so an existing organ always gets a region); with ``prefer_cols``, every
    step short of the overlap is tried inside those columns before any outside them. Works
    on the organ's bounding box grown by the largest clearance (exact for the thresholds
    tested).
    """
    organ_full = organ_thickness > 1.0
    if not organ_full.any():
        return None
    clearance = max(
        REFERENCE_EDGE_CLEARANCE_MM, REFERENCE_ORGAN_CLEARANCE_MM, REFERENCE_LESION_CLEARANCE_MM
    )
    margin = math.ceil((radius_mm + clearance) / pixel_mm) + 2
    rows = np.flatnonzero(organ_full.any(axis=1))
    cols = np.flatnonzero(organ_full.any(axis=0))
    r0 = max(0, int(rows[0]) - margin)
    c0 = max(0, int(cols[0]) - margin)
    win = (
        slice(r0, min(organ_full.shape[0], int(rows[-1]) + margin + 1)),
        slice(c0, min(organ_full.shape[1], int(cols[-1]) + margin + 1)),
    )
    thick = organ_thickness[win]
    organ = organ_full[win]
    inside = ndimage.distance_transform_edt(organ) * pixel_mm
    other_free = ndimage.distance_transform_edt(other_thickness[win] <= 1.0) * pixel_mm
    lesion_free = ndimage.distance_transform_edt(~lesion_mask[win]) * pixel_mm
    prefer = prefer_cols[win] if prefer_cols is not None else None
    tmax = float(thick.max())
    # strict, half and no clearances; finally overlap with other organs allowed
    levels = ((1.0, False), (0.5, False), (0.0, False), (0.0, True))
    # the preferred columns at every level without organ overlap first, then anywhere
    order = [(level, True) for level in range(3)] if prefer is not None else []
    order += [(level, False) for level in range(len(levels))]
    for level, preferred in order:
        relax, other_ok = levels[level]
        ok = (
            organ
            & (inside >= radius_mm + relax * REFERENCE_EDGE_CLEARANCE_MM)
            & (other_ok | (other_free >= radius_mm + relax * REFERENCE_ORGAN_CLEARANCE_MM))
            & (lesion_free >= radius_mm + relax * REFERENCE_LESION_CLEARANCE_MM)
            & (thick >= (0.5 if relax else 0.2) * tmax)
        )
        if preferred:
            assert prefer is not None
            ok &= prefer
        if ok.any():
            score = np.where(ok, thick, -1.0)
            r, c = np.unravel_index(int(np.argmax(score)), score.shape)
            return (float(r + r0), float(c + c0)), level
    return None


def measure_planar(
    sim: PlanarSimulation,
    labels: np.ndarray,
    grid: Grid,
    lesions: Sequence[Lesion],
    *,
    hours_post_injection: float,
) -> tuple[PlanarTruth, tuple[PlanarLesionTruth, ...]]:
    """Reference regions and every lesion's apparent values on the noise-free GM."""
    geo = sim.geometry
    gm = sim.geometric_mean_expected
    a_exp = sim.anterior_expected
    p = geo.pixel_mm

    footprints = [lesion_footprint(les, sim) for les in lesions]
    any_lesion = np.zeros(gm.shape, dtype=bool)
    for fp, _, _ in footprints:
        any_lesion |= fp

    # projected thickness (mm) of each organ with uptake, on the anterior grid
    dy = grid.spacing_mm[1]
    columns = {t: (labels == t).sum(axis=1, dtype=np.float64) * dy for t in UPTAKE_ORGANS}
    all_uptake = sample_on_anterior(sum(columns.values()), grid, geo)
    main = (Tissue.LIVER, Tissue.SPLEEN, Tissue.KIDNEY_LEFT, Tissue.KIDNEY_RIGHT)
    thick = {t: sample_on_anterior(columns[t], grid, geo) for t in main}
    liver_t, spleen_t = thick[Tissue.LIVER], thick[Tissue.SPLEEN]
    kid_l, kid_r = thick[Tissue.KIDNEY_LEFT], thick[Tissue.KIDNEY_RIGHT]

    def others(exclude: Tissue) -> np.ndarray:
        return all_uptake - thick[exclude]

    _, x_cols = geo.pixel_centres_mm()
    right_lobe = np.broadcast_to((x_cols <= -LIVER_REFERENCE_MIN_RIGHT_MM)[None, :], gm.shape)
    refs: dict[str, ReferenceRegion] = {}

    def add_ref(name: str, placed: tuple[tuple[float, float], int] | None, radius: float) -> None:
        if placed is None:
            return
        centre = placed[0]
        disk = _disk(gm.shape, centre, radius / p)
        refs[name] = ReferenceRegion(
            organ=name,
            center_rc=centre,
            radius_mm=radius,
            n_pixels=int(disk.sum()),
            mean_gm=float(gm[disk].mean()),
        )

    add_ref(
        "liver",
        _place_reference(
            liver_t,
            others(Tissue.LIVER),
            any_lesion,
            radius_mm=LIVER_REFERENCE_RADIUS_MM,
            pixel_mm=p,
            prefer_cols=right_lobe,
        ),
        LIVER_REFERENCE_RADIUS_MM,
    )
    add_ref(
        "spleen",
        _place_reference(
            spleen_t,
            others(Tissue.SPLEEN),
            any_lesion,
            radius_mm=SPLEEN_REFERENCE_RADIUS_MM,
            pixel_mm=p,
        ),
        SPLEEN_REFERENCE_RADIUS_MM,
    )
    kidney_spots = [
        _place_reference(
            t, others(tissue), any_lesion, radius_mm=KIDNEY_REFERENCE_RADIUS_MM, pixel_mm=p
        )
        for t, tissue in ((kid_l, Tissue.KIDNEY_LEFT), (kid_r, Tissue.KIDNEY_RIGHT))
    ]
    found = [k for k in kidney_spots if k is not None]
    if found:
        add_ref("kidney", min(found, key=lambda k: k[1]), KIDNEY_REFERENCE_RADIUS_MM)

    rr = np.arange(geo.rows)[:, None]
    cc = np.arange(geo.cols)[None, :]
    gm_free = sim.geometric_mean_background
    if gm_free is None:
        raise ValueError("measure_planar needs the lesion-free projection (background)")
    a_free = sim.anterior_background_expected
    p_free = sim.posterior_background_aligned_expected
    assert a_free is not None and p_free is not None
    lesion_truths: list[PlanarLesionTruth] = []
    for k, (fp, (r0, c0), big) in enumerate(footprints):
        proj_ax, proj_az = _projected_semi_axes_mm(lesions[k])
        half = math.ceil((big + RING_OUTER_MM + RING_LESION_CLEARANCE_MM) / p) + 2
        win = (
            slice(max(0, int(r0) - half), min(geo.rows, int(r0) + half + 1)),
            slice(max(0, int(c0) - half), min(geo.cols, int(c0) + half + 1)),
        )
        fp_w = fp[win]
        if not fp_w.any():
            raise ValueError(f"lesion {lesions[k].id} projects outside the planar field")
        others_fp = np.zeros(fp_w.shape, dtype=bool)
        for j, (fpj, _, _) in enumerate(footprints):
            if j != k:
                others_fp |= fpj[win]
        near_other = (
            ndimage.distance_transform_edt(~others_fp) * p < RING_LESION_CLEARANCE_MM
            if others_fp.any()
            else np.zeros(fp_w.shape, dtype=bool)
        )
        dist = np.hypot((rr[win[0]] - r0) * p, (cc[:, win[1]] - c0) * p)
        in_ring = (dist >= big + RING_INNER_MM) & (dist <= big + RING_OUTER_MM)
        ring = in_ring & ~near_other & ~fp_w
        if not ring.any():
            ring = in_ring
        g, g_free = gm[win], gm_free[win]
        values = np.where(fp_w, g, -np.inf)
        local = np.unravel_index(int(np.argmax(values)), g.shape)
        peak_idx = (int(local[0]) + win[0].start, int(local[1]) + win[1].start)
        peak = float(g[local])
        bkg = float(g_free[local])
        n = int(fp_w.sum())
        signal = float((g[fp_w] - g_free[fp_w]).sum())
        noise_var = float((a_free[win][fp_w] + p_free[win][fp_w]).sum()) / 4.0
        sigma = math.sqrt(max(noise_var, 1e-12))
        contrast = (peak - bkg) / bkg if bkg > 0 else math.inf
        cnr = signal / sigma
        ring_bkg = float(np.median(g[ring])) if ring.any() else float("nan")

        def ratio(name: str, peak: float = peak) -> float | None:
            ref = refs.get(name)
            return peak / ref.mean_gm if ref is not None and ref.mean_gm > 0 else None

        lesion_truths.append(
            PlanarLesionTruth(
                hours_post_injection=hours_post_injection,
                center_rc=(round(r0, 3), round(c0, 3)),
                peak_rc=(int(peak_idx[0]), int(peak_idx[1])),
                footprint_pixels=n,
                projected_diameter_mm=2.0 * math.sqrt(proj_ax * proj_az),
                peak_gm=peak,
                local_background_gm=bkg,
                ring_background_gm=ring_bkg,
                apparent_ratio_liver=ratio("liver"),
                apparent_ratio_spleen=ratio("spleen"),
                apparent_ratio_kidney=ratio("kidney"),
                contrast=contrast,
                cnr=cnr,
                visible=bool(contrast >= VISIBLE_MIN_CONTRAST and cnr >= VISIBLE_MIN_CNR),
            )
        )
    planar = PlanarTruth(
        hours_post_injection=hours_post_injection,
        rows=geo.rows,
        cols=geo.cols,
        pixel_spacing_mm=geo.pixel_mm,
        expected_counts_anterior=float(a_exp.sum()),
        expected_counts_posterior=float(sim.posterior_expected.sum()),
        counts_anterior=int(sim.anterior_counts.sum()),
        counts_posterior=int(sim.posterior_counts.sum()),
        posterior_shift_rc=sim.posterior_shift_rc,
        references=refs,
    )
    return planar, tuple(lesion_truths)


def surface_depths_mm(
    labels: np.ndarray, grid: Grid, center_mm: Sequence[float]
) -> tuple[float, float]:
    """(anterior, posterior) depth (mm) of a point below the body surface along y."""
    iz = round((center_mm[2] - grid.origin_mm[2]) / grid.spacing_mm[0])
    ix = round((center_mm[0] - grid.origin_mm[0]) / grid.spacing_mm[2])
    iz = min(max(iz, 0), grid.shape[0] - 1)
    ix = min(max(ix, 0), grid.shape[2] - 1)
    column = np.flatnonzero(labels[iz, :, ix] != Tissue.AIR)
    if column.size == 0:
        return 0.0, 0.0
    y = grid.axis_mm(1)
    half = grid.spacing_mm[1] / 2.0
    front = float(y[column[0]]) - half
    back = float(y[column[-1]]) + half
    return max(center_mm[1] - front, 0.0), max(back - center_mm[1], 0.0)
