"""Reference organs on tomographic volumes: liver, spleen, kidneys, bladder; reference VOIs.

Works on the *working grid* (:class:`~octoscan.models.tomo_pairing.WorkingGrid`) of the
emission volume, in LPS mm through the grid's affine (x towards the patient's left, y towards
posterior, z towards the head), so voxel size, orientation and units do not matter: levels
are relative to the body's own median uptake ``T`` and to the liver level ``L``.

Method (thresholds from ``[tomo.organs]`` and ``[tomo.ct]``):

1. Body: with a fused CT, voxels above ``ct.body_hu_min`` with the lungs (holes) filled
   before the opening (a thin chest wall must not leave the lungs out); otherwise the
   organ-scale image (Gaussian, ``organs.smoothing_fwhm_mm``) above
   ``body_threshold_fraction`` x T, where T is the median uptake in the body (iterated
   twice). Opened by ``_BODY_OPENING_MM`` (arms beside the torso join it through their
   blurred gap), largest connected part, holes filled plane by plane (lungs). The body
   midline is the median x of the body voxels.
2. Liver level and liver. Voxels above ``organ_threshold_factor`` x T on the patient's right
   are mostly liver (by far the largest avid organ there): their median is a first liver
   level L. The liver is the largest right-sided part of the band [``liver_band_low`` x L,
   ``liver_band_high`` x L] after a grey-level-free binary opening
   (``opening_radius_mm``) that cuts the blurred shells of hotter neighbours; L is then
   re-read inside it. With a fused CT the liver is located on the CT instead: HU in
   [``ct.liver_hu_min``, ``ct.liver_hu_max``] after smoothing, opened
   (``ct.opening_radius_mm``), the largest part whose centre lies on the patient's right;
   it must have tracer uptake above the organ threshold, otherwise the emission method is
   used with a warning. The liver *hull* (closing, holes filled) contains the lesions inside
   the liver.
3. Hot organs: the organ-scale image above ``hot_organ_factor`` x L, split by a watershed
   whose markers are regional maxima of log-uptake with a relative dip of at least
   ``_SPLIT_DIP`` (so noise does not split an organ and a lesion next to an organ keeps its
   own basin); touching basins of similar uptake joined by a high pass are merged
   (``_SIMILAR``, ``_MERGE_PASS``). Basins are classified by anatomy: the kidneys are the
   best mirror-symmetric pair of posterior basins left and right of the midline
   (``kidney_*``; position and volume asymmetry summed); the spleen is the largest remaining
   basin on the patient's left (``spleen_min_lateral_mm``), not anterior, reaching above the
   kidneys, within its volume range; the bladder the largest midline basin well below the
   kidneys. When only one kidney is found, the basin at its mirror image is split from two
   seeds (a left kidney that touches a hotter spleen has no maximum of its own). Touching
   unclassified basins with a similar peak and no deep valley between (``_FRAGMENT_PASS``) are
   absorbed into the organ; voxels above
   ``_CORE_FACTOR`` x an organ's 75th-percentile uptake are cut out of it (a lesion sharing its
   basin; for a kidney pair, x the lower kidney's 75th percentile). When fewer than two
   kidneys stand above ``hot_organ_factor`` x L (68Ga-DOTATATE PET: kidneys about 1-2 x
   liver) the search is repeated from ``kidney_retry_factor`` x L. With a CT-outlined liver,
   a spleen, kidney or bladder lying mostly (``_MAX_LIVER_OVERLAP``) in it is dropped.
   When no spleen shows above the liver-based threshold (a liver as hot as the
   spleen), the search is repeated above the body-based organ level. With a fused CT the
   spleen mask is its basin restricted to the CT spleen window.
4. Reference VOIs (:func:`place_reference`): spheres of the configured diameter centred at
   least radius + ``edge_margin_mm`` (+ ``emission_edge_margin_fwhm`` x FWHM when the organ
   was outlined on the blurred emission image) inside the organ and radius +
   ``lesion_margin_mm`` away from every lesion; among the allowed centres whose local mean
   lies in the middle half of the organ's, the one with the lowest coefficient of variation.

Noise of a reference mean. Reconstructed voxels are correlated, so the voxel variance s^2
divided by the voxel count would understate the variance of a VOI mean. octoscan divides by
the number of independent resolution elements instead: n_eff = max(1, V / FWHM^3), the VOI
volume over the resolution-element ("resel") volume FWHM^3 (Worsley et al., J Cereb Blood
Flow Metab 1992;12:900, for Gaussian-smoothed images). s^2 is the VOI's own voxel variance,
but at least the median local variance of all allowed positions (scaled to the native grid),
so that picking the most uniform position does not also pick an optimistic noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import convex_hull_image, h_maxima
from skimage.segmentation import watershed

from octoscan.imaging.errors import InvalidInputError
from octoscan.models.tomo_config import TomoCTConfig, TomoOrganConfig
from octoscan.models.tomo_pairing import WorkingGrid
from octoscan.models.types import ReferenceRegion

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
_BODY_OPENING_MM = 15.0  # opening radius that separates the arms from the torso
_FIRST_FLOOR = 1e-3  # first body estimate: voxels above this x the 99.5th percentile
_SPLIT_DIP = 0.2  # relative dip between two maxima that keeps them apart (20 %)
_LOG_STEP = 0.005  # quantisation of log-uptake for the h-maxima transform
_KIDNEY_PAIR_MAX_MM = 70.0  # largest asymmetry (z, y and lateral offsets summed) of a pair
_KIDNEY_VOLUME_WEIGHT_MM = 80.0  # asymmetry added per unit of |log volume ratio|
_SPLEEN_MAX_ANTERIOR_MM = 20.0  # spleen centre at most this far anterior of the body centre
_BLADDER_BELOW_KIDNEY_MM = 60.0  # bladder centre at least this far below the kidney centres
_HULL_CLOSING_MM = 10.0  # closing radius of the liver hull
_MIRROR_SEED_MM = 15.0  # seed ball at the mirrored kidney position
_MIRROR_APART_MM = 40.0  # the other organ's seed lies at least this far from it
_MERGE_PASS = 0.85  # ... and joined by a pass at this fraction of the lower peak
_SIMILAR = 1.25  # touching basins with peaks and levels within this factor are one organ
_FRAGMENT_LEVEL = (0.6, 1.2)  # peak range (x organ peak) of a basin merged into an organ
_FRAGMENT_PASS = 0.6  # ... joined to it by a pass at least this x the fragment's peak
_MIRROR_FRAGMENT_MM = 15.0  # a kidney fragment mirrored across the midline: this near the other
_CORE_FACTOR = 1.5  # organ voxels above this x the organ's 75th percentile: a lesion core
_MAX_LIVER_OVERLAP = 0.3  # a hot organ with more than this share in the CT liver is liver

METHOD_CT = "ct"
METHOD_EMISSION = "emission"


# -------------------------------------------------------------------------------- geometry


def voxel_volume_ml(spacing_mm: tuple[float, float, float]) -> float:
    """Volume of one voxel in mL (spacing in mm)."""
    return float(np.prod(spacing_mm)) / 1000.0


def ball(radius_mm: float, spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Boolean ball of ``radius_mm`` on a grid of ``spacing_mm`` (plane, row, col); at least
    the centre voxel."""
    half = [max(0, math.floor(radius_mm / s + 1e-9)) for s in spacing_mm]
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    dist2 = sum((g * s) ** 2 for g, s in zip(grids, spacing_mm, strict=True))
    out = np.asarray(dist2 <= radius_mm**2 + 1e-9)
    out[tuple(h for h in half)] = True
    return out


def _bbox(mask: np.ndarray, margin: tuple[int, ...]) -> tuple[slice, ...] | None:
    """Bounding box of ``mask`` grown by ``margin`` voxels per axis (None when empty)."""
    if not mask.any():
        return None
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append(
            slice(
                max(0, int(idx[0]) - margin[axis]),
                min(mask.shape[axis], int(idx[-1]) + 1 + margin[axis]),
            )
        )
    return tuple(box)


def dilate_mm(
    mask: np.ndarray, radius_mm: float, spacing_mm: tuple[float, float, float]
) -> np.ndarray:
    """Dilation by a ball of ``radius_mm`` (Euclidean distance <= radius), computed on the
    mask's bounding box."""
    m = np.asarray(mask, dtype=bool)
    reach = tuple(math.ceil(radius_mm / s) + 1 for s in spacing_mm)
    box = _bbox(m, reach)
    if box is None or radius_mm <= 0.0:
        return m.copy()
    out = np.zeros(m.shape, dtype=bool)
    dist = ndimage.distance_transform_edt(~m[box], sampling=spacing_mm)
    out[box] = dist <= radius_mm + 1e-6
    return out


def erode_mm(
    mask: np.ndarray, radius_mm: float, spacing_mm: tuple[float, float, float]
) -> np.ndarray:
    """Erosion by a ball of ``radius_mm``: voxels farther than the radius from the outside
    (the array border counts as outside)."""
    m = np.asarray(mask, dtype=bool)
    if radius_mm <= 0.0:
        return m.copy()
    return distance_inside_mm(m, spacing_mm) > radius_mm + 1e-6


def open_mm(
    mask: np.ndarray, radius_mm: float, spacing_mm: tuple[float, float, float]
) -> np.ndarray:
    """Opening by a ball of ``radius_mm`` (erosion then dilation)."""
    return dilate_mm(erode_mm(mask, radius_mm, spacing_mm), radius_mm, spacing_mm) & mask


def close_mm(
    mask: np.ndarray, radius_mm: float, spacing_mm: tuple[float, float, float]
) -> np.ndarray:
    """Closing by a ball of ``radius_mm`` (dilation then erosion); the array border counts as
    outside, so the original voxels are kept there."""
    grown = dilate_mm(mask, radius_mm, spacing_mm)
    return erode_mm(grown, radius_mm, spacing_mm) | np.asarray(mask, dtype=bool)


def distance_inside_mm(mask: np.ndarray, spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Distance (mm) of each voxel of ``mask`` to the nearest voxel outside it (0 outside).

    Voxels on the array border count as next to the outside (the field of view ends there).
    """
    m = np.asarray(mask, dtype=bool)
    out = np.zeros(m.shape, dtype=np.float32)
    box = _bbox(m, (0, 0, 0))
    if box is None:
        return out
    padded = np.pad(m[box], 1, constant_values=False)
    dist = ndimage.distance_transform_edt(padded, sampling=spacing_mm)
    out[box] = dist[1:-1, 1:-1, 1:-1]
    return out


def distance_to_mm(
    mask: np.ndarray, spacing_mm: tuple[float, float, float], *, max_mm: float = math.inf
) -> np.ndarray:
    """Distance (mm) of each voxel to the nearest voxel of ``mask``; inf when it is empty or,
    with a finite ``max_mm``, beyond that distance (computed on the mask's grown bounding box).
    """
    m = np.asarray(mask, dtype=bool)
    out = np.full(m.shape, np.inf, dtype=np.float32)
    if not m.any():
        return out
    if math.isfinite(max_mm):
        box = _bbox(m, tuple(math.ceil(max_mm / s) + 1 for s in spacing_mm))
    else:
        box = tuple(slice(0, n) for n in m.shape)
    assert box is not None
    dist = ndimage.distance_transform_edt(~m[box], sampling=spacing_mm)
    out[box] = dist
    if math.isfinite(max_mm):
        out[out > max_mm] = np.inf
    return out


def gaussian_mm(
    image: np.ndarray, fwhm_mm: float, spacing_mm: tuple[float, float, float]
) -> np.ndarray:
    """Gaussian smoothing (float32) with a FWHM in mm on a grid of ``spacing_mm``."""
    arr = np.asarray(image, dtype=np.float32)
    if fwhm_mm <= 0.0:
        return arr.copy()
    sigma = [fwhm_mm * FWHM_TO_SIGMA / s for s in spacing_mm]
    return np.asarray(ndimage.gaussian_filter(arr, sigma, mode="nearest"), dtype=np.float32)


def lps_axes(
    shape: tuple[int, int, int], affine: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, z) LPS mm of every voxel as float32 arrays broadcastable to ``shape``."""
    idx = [
        np.arange(n, dtype=np.float32).reshape([-1 if a == k else 1 for a in range(3)])
        for k, n in enumerate(shape)
    ]
    a = affine.astype(np.float32)
    out = []
    for row in range(3):
        out.append(a[row, 0] * idx[0] + a[row, 1] * idx[1] + a[row, 2] * idx[2] + a[row, 3])
    return out[0], out[1], out[2]


def centroid_lps(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Centroid (LPS mm) of a non-empty boolean mask."""
    idx = np.argwhere(mask).mean(axis=0)
    return np.asarray(idx @ affine[:3, :3].T + affine[:3, 3], dtype=np.float64)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected part of ``mask`` (empty stays empty)."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return np.asarray(labels == int(np.argmax(sizes)))


def fill_holes_per_plane(mask: np.ndarray) -> np.ndarray:
    """3-D hole filling, then 2-D hole filling in every plane (closes lungs and bowel gas)."""
    out = np.asarray(ndimage.binary_fill_holes(mask), dtype=bool)
    for k in range(out.shape[0]):
        out[k] = ndimage.binary_fill_holes(out[k])
    return out


# -------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BodyFrame:
    """Body outline on the working grid and the patient's axes.

    ``midline_x_mm`` is the LPS x of the mid-sagittal plane (median x of body voxels; the
    patient's right is x below it); ``centre_y_mm`` the median y (posterior is above it);
    ``soft_tissue_level`` T the median organ-scale uptake in the body.
    """

    mask: np.ndarray
    midline_x_mm: float
    centre_y_mm: float
    soft_tissue_level: float


@dataclass(frozen=True)
class OrganMaps:
    """Organs on the working grid (boolean masks) and the organ-scale image they came from.

    ``liver_level`` is the median organ-scale uptake of the liver (None without a liver);
    ``organ_level`` the uptake above which tissue counts as an avid organ
    (``organ_threshold_factor`` x T);
    ``kidneys`` holds one mask per kidney found (0-2); ``ct_hu`` is the fused CT on the
    working grid (None without one); ``method`` "ct" or "emission" says how the liver and
    spleen were outlined.
    """

    body: BodyFrame
    organ_image: np.ndarray
    liver: np.ndarray | None
    liver_hull: np.ndarray | None
    liver_level: float | None
    spleen: np.ndarray | None
    kidneys: tuple[np.ndarray, ...]
    bladder: np.ndarray | None
    basins: np.ndarray
    method: str
    ct_hu: np.ndarray | None
    organ_level: float
    warnings: tuple[str, ...] = ()

    def physiological_mask(self) -> np.ndarray:
        """Union of spleen, kidneys and bladder (voxels whose uptake is not a lesion)."""
        out = np.zeros(self.body.mask.shape, dtype=bool)
        for m in (self.spleen, self.bladder, *self.kidneys):
            if m is not None:
                out |= m
        return out


@dataclass(frozen=True)
class _Basin:
    label: int
    volume_ml: float
    centre: np.ndarray  # LPS mm
    top_z_mm: float
    level: float  # median organ-scale uptake
    peak: float  # highest organ-scale uptake


# -------------------------------------------------------------------------------- body


def _body(
    organ_image: np.ndarray,
    affine: np.ndarray,
    spacing: tuple[float, float, float],
    cfg: TomoOrganConfig,
    ct_hu: np.ndarray | None,
    ct_cfg: TomoCTConfig,
) -> BodyFrame:
    positive = organ_image[organ_image > 0]
    if positive.size == 0:
        raise InvalidInputError(
            "emission volume holds no positive value; expected a reconstructed SPECT or PET",
            code="empty_volume",
        )
    level = float(
        np.median(organ_image[organ_image > _FIRST_FLOOR * np.percentile(positive, 99.5)])
    )
    if ct_hu is not None:
        # the lungs are holes of the CT body: fill them before the opening, which would
        # otherwise break a thin chest wall and leave the lungs (and their lesions) outside
        mask = fill_holes_per_plane(ct_hu > ct_cfg.body_hu_min)
    else:
        mask = organ_image > cfg.body_threshold_fraction * level
        for _ in range(2):
            level = float(np.median(organ_image[mask]))
            mask = organ_image > cfg.body_threshold_fraction * level
    # arms beside the torso join it through their blurred gap: cut thin bridges first
    opened = open_mm(mask, _BODY_OPENING_MM, spacing)
    raw = mask
    mask = fill_holes_per_plane(largest_component(opened if opened.any() else mask))
    if not mask.any():
        raise InvalidInputError("no body outline found in the emission volume", code="no_body")
    level = float(np.median(organ_image[mask]))
    if ct_hu is not None:
        # avid tissue the CT shows inside the torso's outline but not joined to it in the
        # plane (a nodule in a lung that the chest wall does not close off at this
        # resolution) is body too
        avid = organ_image > cfg.organ_threshold_factor * level
        mask = mask | (raw & avid & _plane_hulls(mask))
    x, y, _ = lps_axes(mask.shape, affine)
    xs = np.broadcast_to(x, mask.shape)[mask]
    ys = np.broadcast_to(y, mask.shape)[mask]
    return BodyFrame(mask, float(np.median(xs)), float(np.median(ys)), max(level, 1e-12))


def _plane_hulls(mask: np.ndarray) -> np.ndarray:
    """Per plane, the convex hull of ``mask`` (planes without voxels stay empty)."""
    out = np.zeros(mask.shape, dtype=bool)
    for k in range(mask.shape[0]):
        if mask[k].any():
            out[k] = convex_hull_image(mask[k])
    return out


# -------------------------------------------------------------------------------- liver


def _liver_from_emission(
    s: np.ndarray,
    body: BodyFrame,
    affine: np.ndarray,
    spacing: tuple[float, float, float],
    cfg: TomoOrganConfig,
) -> tuple[np.ndarray | None, float | None, list[str]]:
    x, _, _ = lps_axes(s.shape, affine)
    right = body.mask & (x < body.midline_x_mm)
    avid = right & (s > cfg.organ_threshold_factor * body.soft_tissue_level)
    vox = voxel_volume_ml(spacing)
    if avid.sum() * vox < cfg.liver_min_volume_ml:
        return None, None, ["no liver found: too little avid tissue on the patient's right"]
    level = float(np.median(s[avid]))
    liver: np.ndarray | None = None
    for _ in range(2):
        band = body.mask & (s >= cfg.liver_band_low * level) & (s <= cfg.liver_band_high * level)
        band = open_mm(band, cfg.opening_radius_mm, spacing)
        labels, n = ndimage.label(band)
        if n == 0:
            break
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        best = None
        for lab in np.argsort(sizes)[::-1][:6]:
            if sizes[lab] == 0:
                break
            part = labels == lab
            if centroid_lps(part, affine)[0] < body.midline_x_mm:
                best = part
                break
        if best is None:
            break
        liver = best
        level = float(np.median(s[liver]))
    if liver is None:
        return None, None, ["no liver found: no large organ of liver-like uptake on the right"]
    return liver, level, []


def _liver_from_ct(
    s: np.ndarray,
    ct_hu: np.ndarray,
    body: BodyFrame,
    affine: np.ndarray,
    spacing: tuple[float, float, float],
    cfg: TomoOrganConfig,
    ct_cfg: TomoCTConfig,
) -> tuple[np.ndarray | None, str | None]:
    hu = gaussian_mm(ct_hu, ct_cfg.smoothing_fwhm_mm, spacing)
    window = body.mask & (hu >= ct_cfg.liver_hu_min) & (hu <= ct_cfg.liver_hu_max)
    window = open_mm(window, ct_cfg.opening_radius_mm, spacing)
    labels, n = ndimage.label(window)
    if n == 0:
        return None, "no tissue in the CT liver window"
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    vox = voxel_volume_ml(spacing)
    for lab in np.argsort(sizes)[::-1][:6]:
        if sizes[lab] == 0:
            break
        part = labels == lab
        volume = sizes[lab] * vox
        if centroid_lps(part, affine)[0] >= body.midline_x_mm:
            continue
        if not cfg.liver_min_volume_ml <= volume <= cfg.liver_max_volume_ml:
            return None, (
                f"largest right-sided part of the CT liver window holds {volume:.0f} mL "
                f"(expected {cfg.liver_min_volume_ml:g}-{cfg.liver_max_volume_ml:g} mL)"
            )
        uptake = float(np.median(s[part]))
        if uptake <= cfg.organ_threshold_factor * body.soft_tissue_level:
            return None, "the CT liver has no liver-like tracer uptake"
        return part, None
    return None, "no right-sided part in the CT liver window"


def _spleen_from_ct(
    s: np.ndarray,
    ct_hu: np.ndarray,
    body: BodyFrame,
    liver_hull: np.ndarray,
    kidneys: Sequence[np.ndarray],
    affine: np.ndarray,
    spacing: tuple[float, float, float],
    cfg: TomoOrganConfig,
    ct_cfg: TomoCTConfig,
    *,
    min_level: float,
) -> np.ndarray | None:
    """The spleen on the CT when the emission image does not show it as a hot organ: the
    largest part of the CT spleen window, outside the liver hull and the kidneys, at least
    ``spleen_min_lateral_mm`` to the patient's left of the midline, with organ-level uptake
    (``min_level``: muscle shares the spleen's HU, not its uptake), cut where its uptake
    falls to half its top level, with a spleen's volume; None when there is none
    (splenectomy)."""
    hu = gaussian_mm(ct_hu, ct_cfg.smoothing_fwhm_mm, spacing)
    x, _, _ = lps_axes(s.shape, affine)
    left = np.broadcast_to(x - body.midline_x_mm >= cfg.spleen_min_lateral_mm, s.shape)
    window = (
        body.mask
        & left
        & ~liver_hull
        & (hu >= ct_cfg.spleen_hu_min)
        & (hu <= ct_cfg.spleen_hu_max)
        & (s >= min_level)
    )
    for kidney in kidneys:
        window &= ~kidney
    part = largest_component(open_mm(window, ct_cfg.opening_radius_mm, spacing))
    if not part.any():
        return None
    # soft tissue around it shares the window and the blurred spleen's halo: the organ ends
    # where its uptake falls to half its top level
    top = float(np.percentile(s[part], 95.0))
    part = largest_component(part & (s >= 0.5 * top))
    volume = float(part.sum()) * voxel_volume_ml(spacing)
    if not cfg.spleen_min_volume_ml <= volume <= cfg.spleen_max_volume_ml:
        return None
    return part


def _hull(liver: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    return fill_holes_per_plane(close_mm(liver, _HULL_CLOSING_MM, spacing))


# -------------------------------------------------------------------------------- hot organs


def split_basins(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Watershed labels (int32, 0 outside ``mask``) of ``image`` inside ``mask``.

    Markers are the regional maxima of log-uptake whose dynamic exceeds a relative dip of
    ``_SPLIT_DIP``; the logarithm makes the split independent of the units and of the level.
    """
    out = np.zeros(mask.shape, dtype=np.int32)
    if not mask.any():
        return out
    box = ndimage.find_objects(mask.astype(np.int8))[0]
    m = mask[box]
    img = image[box]
    floor = float(img[m].min())
    logs = np.log(np.maximum(img, max(floor, 1e-12) * 0.5))
    q = np.round((logs - logs[m].min()) / _LOG_STEP)
    q = np.where(m, q, 0).astype(np.int32)
    h = round(-math.log(1.0 - _SPLIT_DIP) / _LOG_STEP)
    peaks = h_maxima(q, h) & m
    markers, _ = ndimage.label(peaks, structure=np.ones((3, 3, 3)))
    out[box] = watershed(-q, markers, mask=m)
    return out


def _basin_stats(
    basins: np.ndarray, s: np.ndarray, affine: np.ndarray, spacing: tuple[float, float, float]
) -> list[_Basin]:
    out: list[_Basin] = []
    vox = voxel_volume_ml(spacing)
    _, _, z = lps_axes(basins.shape, affine)
    for lab, sl in enumerate(ndimage.find_objects(basins), start=1):
        if sl is None:
            continue
        part = basins[sl] == lab
        idx = np.argwhere(part) + np.array([a.start for a in sl])
        centre = idx.mean(axis=0) @ affine[:3, :3].T + affine[:3, 3]
        zz = np.broadcast_to(z, basins.shape)[sl][part]
        out.append(
            _Basin(
                label=lab,
                volume_ml=float(part.sum()) * vox,
                centre=np.asarray(centre),
                top_z_mm=float(zz.max()),
                level=float(np.median(s[sl][part])),
                peak=float(s[sl][part].max()),
            )
        )
    return out


def _classify_hot(
    basins: list[_Basin], body: BodyFrame, cfg: TomoOrganConfig
) -> tuple[_Basin | None, list[_Basin], _Basin | None]:
    """(spleen, kidneys, bladder) among the hot basins (module docstring, step 3)."""

    def lateral(b: _Basin) -> float:
        return float(b.centre[0] - body.midline_x_mm)

    def kidney_like(b: _Basin) -> bool:
        return (
            cfg.kidney_min_volume_ml <= b.volume_ml <= cfg.kidney_max_volume_ml
            and cfg.kidney_min_lateral_mm <= abs(lateral(b)) <= cfg.kidney_max_lateral_mm
            and b.centre[1] > body.centre_y_mm - 10.0
        )

    rights = [b for b in basins if kidney_like(b) and lateral(b) < 0]
    lefts = [b for b in basins if kidney_like(b) and lateral(b) > 0]
    best: tuple[float, _Basin, _Basin] | None = None
    for r in rights:
        for left in lefts:
            asym = (
                abs(r.centre[2] - left.centre[2])
                + abs(r.centre[1] - left.centre[1])
                + abs(abs(lateral(r)) - abs(lateral(left)))
                + _KIDNEY_VOLUME_WEIGHT_MM * abs(math.log(r.volume_ml / left.volume_ml))
            )
            if asym <= _KIDNEY_PAIR_MAX_MM and (best is None or asym < best[0]):
                best = (float(asym), r, left)
    kidneys: list[_Basin] = [best[1], best[2]] if best is not None else []

    taken = {b.label for b in kidneys}
    spleen_candidates = [
        b
        for b in basins
        if b.label not in taken
        and lateral(b) >= cfg.spleen_min_lateral_mm
        and cfg.spleen_min_volume_ml <= b.volume_ml <= cfg.spleen_max_volume_ml
        and b.centre[1] >= body.centre_y_mm - _SPLEEN_MAX_ANTERIOR_MM
    ]
    if kidneys:
        kidney_z = min(k.centre[2] for k in kidneys)
        # the spleen reaches higher than the left kidney's centre
        spleen_candidates = [b for b in spleen_candidates if b.top_z_mm > kidney_z]
    spleen = max(spleen_candidates, key=lambda b: b.volume_ml, default=None)
    if spleen is not None:
        taken.add(spleen.label)

    if best is None:
        # a single kidney (nephrectomy, or the other outside the field): posterior, para-spinal
        singles = [b for b in basins if kidney_like(b) and b.label not in taken]
        if singles:
            kidneys = [max(singles, key=lambda b: b.volume_ml)]
            taken.add(kidneys[0].label)

    floor_z = min(k.centre[2] for k in kidneys) - _BLADDER_BELOW_KIDNEY_MM if kidneys else math.inf
    bladder_candidates = [
        b
        for b in basins
        if b.label not in taken
        and abs(lateral(b)) <= cfg.bladder_max_lateral_mm
        and b.volume_ml >= cfg.bladder_min_volume_ml
        and b.centre[2] < floor_z
    ]
    bladder = max(bladder_candidates, key=lambda b: b.volume_ml, default=None)
    return spleen, kidneys, bladder


def _hot_organs(
    s: np.ndarray,
    body: BodyFrame,
    liver: np.ndarray | None,
    level: float,
    affine: np.ndarray,
    spacing: tuple[float, float, float],
    organs: TomoOrganConfig,
    *,
    factor: float | None = None,
) -> tuple[np.ndarray, list[_Basin], tuple[_Basin | None, list[_Basin], _Basin | None]]:
    """Basins above ``factor`` (default ``hot_organ_factor``) x ``level`` (liver voxels in the
    liver band left out) and their classification (module docstring, step 3)."""
    hot = body.mask & (s > (organs.hot_organ_factor if factor is None else factor) * level)
    if liver is not None:
        hot &= ~(liver & (s <= organs.liver_band_high * level))
    basins = split_basins(s, hot)
    _merge_similar(basins, s, _basin_stats(basins, s, affine, spacing))
    stats = _basin_stats(basins, s, affine, spacing)
    spleen_b, kidney_bs, bladder_b = _classify_hot(stats, body, organs)
    if len(kidney_bs) == 1 and _split_mirror_kidney(basins, s, kidney_bs[0], body, affine, spacing):
        stats = _basin_stats(basins, s, affine, spacing)
        spleen_b, kidney_bs, bladder_b = _classify_hot(stats, body, organs)
    return basins, stats, (spleen_b, kidney_bs, bladder_b)


def _split_mirror_kidney(
    basins: np.ndarray,
    s: np.ndarray,
    kidney: _Basin,
    body: BodyFrame,
    affine: np.ndarray,
    spacing: tuple[float, float, float],
) -> bool:
    """Split the basin at the mirror image of a lone kidney when it also holds another organ.

    The left kidney often touches the spleen; when the spleen is the hotter of the two, the
    kidney has no maximum of its own and shares the spleen's basin. The basin holding the
    point mirrored across the midline from the kidney found is split by a watershed from two
    seeds: a ball of ``_MIRROR_SEED_MM`` at the mirrored point and the basin's hottest
    voxels farther than ``_MIRROR_APART_MM`` from it. Returns True when a basin was split.
    """
    mirror = np.array(
        [2.0 * body.midline_x_mm - kidney.centre[0], kidney.centre[1], kidney.centre[2]]
    )
    inv = np.linalg.inv(affine)
    idx = np.round(mirror @ inv[:3, :3].T + inv[:3, 3]).astype(int)
    if np.any(idx < 0) or np.any(idx >= np.asarray(basins.shape)):
        return False
    label = int(basins[tuple(idx)])
    if label == 0 or label == kidney.label:
        return False
    box = ndimage.find_objects((basins == label).astype(np.int8))[0]
    part = basins[box] == label
    if float(part.sum()) * voxel_volume_ml(spacing) < 1.5 * kidney.volume_ml:
        return False
    off = np.array([b.start for b in box], dtype=np.float64)
    pts = (np.argwhere(part) + off) @ affine[:3, :3].T + affine[:3, 3]
    dist = np.linalg.norm(pts - mirror, axis=1)
    values = s[box][part]
    far = dist > _MIRROR_APART_MM
    if not far.any():
        return False
    markers = np.zeros(part.shape, dtype=np.int32)
    coords = np.argwhere(part)
    markers[tuple(coords[dist <= _MIRROR_SEED_MM].T)] = 1
    best = far & (values >= 0.9 * float(values[far].max()))
    markers[tuple(coords[best].T)] = 2
    if not (markers == 1).any():
        return False
    split = watershed(-s[box], markers, mask=part)
    sub = basins[box]
    sub[split == 1] = int(basins.max()) + 1
    basins[box] = sub
    return True


def _touching(basins: np.ndarray, label: int) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
    """(box, basins in it, labels touching ``label``): the box is the label's bounding box
    grown by one voxel; the labels are those of the voxels next to it (0 left out)."""
    box = ndimage.find_objects((basins == label).astype(np.int8))[0]
    grown = tuple(
        slice(max(0, x.start - 1), min(n, x.stop + 1))
        for x, n in zip(box, basins.shape, strict=True)
    )
    sub = basins[grown]
    own = sub == label
    ring = ndimage.binary_dilation(own) & ~own & (sub > 0)
    return grown, sub, np.unique(sub[ring])


def _pass_height(sub: np.ndarray, sub_s: np.ndarray, a: int, b: int) -> float | None:
    """The pass between basins ``a`` and ``b``: the lower of the highest uptake on either
    side of their shared boundary (None when they do not touch)."""
    side_a = (sub == a) & ndimage.binary_dilation(sub == b)
    side_b = (sub == b) & ndimage.binary_dilation(sub == a)
    if not side_a.any() or not side_b.any():
        return None
    return min(float(sub_s[side_a].max()), float(sub_s[side_b].max()))


def _merge_similar(basins: np.ndarray, s: np.ndarray, stats: list[_Basin]) -> None:
    """Merge touching basins whose peaks and median levels agree within ``_SIMILAR`` and
    whose pass (the highest uptake along their shared boundary) is at least
    ``_MERGE_PASS`` x the lower peak: one organ cut in two by noise or by its shape. Two
    organs of similar uptake (spleen and left kidney) keep the dip between them apart."""
    by_label = {b.label: b for b in stats}
    parent = {b.label: b.label for b in stats}

    def root(a: int) -> int:
        while parent[a] != a:
            a = parent[a]
        return a

    for b in sorted(stats, key=lambda x: -x.volume_ml):
        grown, sub, others = _touching(basins, b.label)
        for other in others:
            o = by_label.get(int(other))
            if o is None:
                continue
            peaks = o.peak / b.peak if b.peak > 0 else math.inf
            levels = o.level / b.level if b.level > 0 else math.inf
            if not (1.0 / _SIMILAR <= peaks <= _SIMILAR and 1.0 / _SIMILAR <= levels <= _SIMILAR):
                continue
            passing = _pass_height(sub, s[grown], b.label, o.label)
            if passing is not None and passing >= _MERGE_PASS * min(b.peak, o.peak):
                ra, rb = root(b.label), root(o.label)
                if ra != rb:
                    parent[rb] = ra
    lut = np.arange(int(basins.max()) + 1, dtype=np.int32)
    for label in parent:
        lut[label] = root(label)
    basins[...] = lut[basins]


def _index_of(
    point_lps_mm: np.ndarray, affine: np.ndarray, shape: tuple[int, ...]
) -> tuple[int, int, int] | None:
    """The voxel (plane, row, col) of the grid (``affine``, ``shape``) holding an LPS point,
    or None outside the grid."""
    inv = np.linalg.inv(affine)
    idx = np.round(inv[:3, :3] @ np.asarray(point_lps_mm) + inv[:3, 3]).astype(int)
    if np.any(idx < 0) or np.any(idx >= np.asarray(shape)):
        return None
    return (int(idx[0]), int(idx[1]), int(idx[2]))


def _inside_any(
    basins: np.ndarray, organs: list[_Basin], point_lps_mm: np.ndarray, affine: np.ndarray
) -> bool:
    """Whether ``point_lps_mm`` lies in the basin of one of ``organs`` (labels of ``basins``)."""
    idx = _index_of(point_lps_mm, affine, basins.shape)
    return idx is not None and int(basins[idx]) in {b.label for b in organs}


def _absorb_fragments(
    basins: np.ndarray,
    s: np.ndarray,
    stats: list[_Basin],
    organ_labels: list[int],
    *,
    kidney_pair: tuple[int, int] | None = None,
    midline_x_mm: float = 0.0,
    affine: np.ndarray | None = None,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> None:
    """Merge into each organ the unclassified basins that touch it with a similar level
    (peak within ``_FRAGMENT_LEVEL`` of the organ's peak) and no deep valley between them
    (the pass, the highest uptake along the shared boundary, at least ``_FRAGMENT_PASS`` x
    the fragment's peak): pieces of the same organ that noise or shape split off. Hotter
    neighbours and neighbours behind a deep valley stay apart (a pancreatic lesion in front
    of the left kidney is about as hot as the kidney, but the blurred gap between them is
    well below both). For a kidney pair (``kidney_pair``, with ``midline_x_mm`` and the grid
    ``affine``), a fragment of one kidney must also mirror onto the other: its centre,
    reflected across the midline, lies within ``_MIRROR_FRAGMENT_MM`` of the partner's basin
    (a pole split off by noise does; a liver lesion above the right kidney does not)."""
    by_label = {b.label: b for b in stats}
    organ_set = set(organ_labels)
    partner_of: dict[int, int] = {}
    if kidney_pair is not None and affine is not None:
        a, b = kidney_pair
        partner_of = {a: b, b: a}
    near_partner: dict[int, np.ndarray] = {}  # distance maps, made when first needed

    def mirrors(own_label: int, frag: _Basin) -> bool:
        if own_label not in partner_of or affine is None:
            return True
        if own_label not in near_partner:
            near_partner[own_label] = distance_to_mm(
                basins == partner_of[own_label], spacing, max_mm=_MIRROR_FRAGMENT_MM
            )
        point = np.array([2.0 * midline_x_mm - frag.centre[0], frag.centre[1], frag.centre[2]])
        idx = _index_of(point, affine, basins.shape)
        return idx is not None and bool(np.isfinite(near_partner[own_label][idx]))

    for label in organ_labels:
        organ = by_label[label]
        grown, sub, others = _touching(basins, label)
        before = sub.copy()  # passes are measured on the basins as they were found
        for other in others:
            o = int(other)
            if o in organ_set or o not in by_label:
                continue
            frag = by_label[o]
            ratio = frag.peak / organ.peak if organ.peak > 0 else math.inf
            if not _FRAGMENT_LEVEL[0] <= ratio <= _FRAGMENT_LEVEL[1]:
                continue
            passing = _pass_height(before, s[grown], label, o)
            if (
                passing is not None
                and passing >= _FRAGMENT_PASS * frag.peak
                and mirrors(label, frag)
            ):
                basins[basins == o] = label


def _carve(mask: np.ndarray, s: np.ndarray, *, level: float | None = None) -> np.ndarray:
    """An organ mask without hot cores above ``_CORE_FACTOR`` x its 75th-percentile uptake
    (or x ``level`` when given: the paired organ's), keeping the largest remaining part: a
    lesion the organ shares a basin with. The 75th percentile sits on a normal organ's
    plateau, so a normal organ keeps its core."""
    own = float(np.percentile(s[mask], 75.0))
    level = own if level is None else min(own, level)
    core = mask & (s > _CORE_FACTOR * level)
    if not core.any():
        return mask
    kept = largest_component(mask & ~core)
    return kept if kept.any() else mask


# -------------------------------------------------------------------------------- entry point


def locate_organs(
    image: np.ndarray,
    grid: WorkingGrid,
    *,
    ct_hu: np.ndarray | None,
    organs: TomoOrganConfig,
    ct: TomoCTConfig,
) -> OrganMaps:
    """Locate body, liver, spleen, kidneys and bladder on the working-grid ``image``.

    ``image`` is the emission volume on ``grid`` (block means, emission units);
    ``ct_hu`` the fused CT resampled onto the same grid (HU) or None. Organs not found are
    None (or absent from ``kidneys``) with a warning saying why.
    """
    spacing = grid.spacing_mm
    affine = grid.affine
    s = gaussian_mm(np.maximum(image, 0.0), organs.smoothing_fwhm_mm, spacing)
    body = _body(s, affine, spacing, organs, ct_hu, ct)
    warnings: list[str] = []
    method = METHOD_EMISSION
    liver: np.ndarray | None = None
    level: float | None = None
    if ct_hu is not None:
        liver, why = _liver_from_ct(s, ct_hu, body, affine, spacing, organs, ct)
        if liver is not None:
            method = METHOD_CT
            level = float(np.median(s[liver]))
        else:
            warnings.append(f"liver not found on the CT ({why}): outlined on the emission image")
    if liver is None:
        liver, level, notes = _liver_from_emission(s, body, affine, spacing, organs)
        warnings.extend(notes)
        if ct_hu is None:
            warnings.append(
                "no CT fused: organs outlined on the emission image alone (edges blurred by "
                "the system resolution)"
            )
    hull = _hull(liver, spacing) if liver is not None else None

    organ_level = organs.organ_threshold_factor * body.soft_tissue_level
    basins, stats, (spleen_b, kidney_bs, bladder_b) = _hot_organs(
        s, body, liver, level if level is not None else organ_level, affine, spacing, organs
    )
    if spleen_b is None and level is not None and organs.hot_organ_factor * organ_level < level:
        # no spleen above the liver: a liver as hot as the spleen (diffuse involvement)
        # hides it; search again above the body-based organ level
        retry = _hot_organs(s, body, liver, organ_level, affine, spacing, organs)
        if retry[2][0] is not None and len(retry[2][1]) >= len(kidney_bs):
            basins, stats, (spleen_b, kidney_bs, bladder_b) = retry
            warnings.append(
                "spleen found only below the liver-based threshold: the liver is as avid as "
                "the spleen"
            )
    if (
        len(kidney_bs) < 2
        and level is not None
        and organs.kidney_retry_factor < organs.hot_organ_factor
    ):
        # kidneys less avid than the hot-organ level (68Ga-DOTATATE PET: kidneys about 1-2 x
        # liver, spleen 2-4 x): search again from kidney_retry_factor x the liver level
        retry = _hot_organs(
            s, body, liver, level, affine, spacing, organs, factor=organs.kidney_retry_factor
        )
        more = len(retry[2][1]) > len(kidney_bs)
        if more and (
            retry[2][0] is not None
            or spleen_b is None
            or _inside_any(retry[0], retry[2][1], spleen_b.centre, affine)
        ):
            # (the last: the "spleen" found before is one of the kidneys the retry pairs, as
            # after a splenectomy when the left kidney is the hottest basin on the left)
            basins, stats, (spleen_b, kidney_bs, bladder_b) = retry
    organ_labels = [b.label for b in (spleen_b, *kidney_bs) if b is not None]
    _absorb_fragments(
        basins,
        s,
        stats,
        organ_labels,
        kidney_pair=(kidney_bs[0].label, kidney_bs[1].label) if len(kidney_bs) == 2 else None,
        midline_x_mm=body.midline_x_mm,
        affine=affine,
        spacing=spacing,
    )
    spleen = _carve(basins == spleen_b.label, s) if spleen_b is not None else None
    if spleen is not None and ct_hu is not None and method == METHOD_CT:
        hu = gaussian_mm(ct_hu, ct.smoothing_fwhm_mm, spacing)
        refined = largest_component(spleen & (hu >= ct.spleen_hu_min) & (hu <= ct.spleen_hu_max))
        if refined.sum() * voxel_volume_ml(spacing) >= organs.spleen_min_volume_ml:
            spleen = refined
        else:
            warnings.append("spleen not confirmed on the CT: emission outline kept")
    if spleen_b is None:
        warnings.append("no spleen found (splenectomy, or outside the field of view)")
    # both kidneys take up about the same: a core far above the *lower* kidney's level is a
    # lesion that shares a kidney's basin (a pancreatic lesion in front of the left kidney)
    pair_level = (
        min(float(np.percentile(s[basins == k.label], 75.0)) for k in kidney_bs)
        if len(kidney_bs) == 2
        else None
    )
    kidneys = tuple(
        mask
        for mask in (_carve(basins == k.label, s, level=pair_level) for k in kidney_bs)
        if mask.any()
    )
    if len(kidneys) < 2:
        warnings.append(f"{len(kidneys)} kidney(s) found instead of 2")
    bladder = basins == bladder_b.label if bladder_b is not None else None
    if bladder is not None and not bladder.any():
        bladder = None
    if spleen is not None and not spleen.any():
        spleen = None
    if liver is not None and method == METHOD_CT:
        # the CT outlines the liver: a "hot organ" lying mostly in it is the liver itself,
        # reached by a search threshold below liver uptake (PET: organs close to liver level)
        def in_liver(mask: np.ndarray) -> bool:
            return float((mask & liver).sum()) > _MAX_LIVER_OVERLAP * float(mask.sum())

        if spleen is not None and in_liver(spleen):
            warnings.append("spleen candidate lies in the CT liver: not used")
            spleen = None
        kept = tuple(k for k in kidneys if not in_liver(k))
        if len(kept) < len(kidneys):
            warnings.append("kidney candidate lies in the CT liver: not used")
            kidneys = kept
        if bladder is not None and in_liver(bladder):
            bladder = None
    if spleen is None and ct_hu is not None and method == METHOD_CT and hull is not None:
        # no hot spleen on the emission image: a liver as avid as the spleen (diffuse
        # involvement) hides it from the hot-organ search; the CT still shows it
        spleen = _spleen_from_ct(
            s, ct_hu, body, hull, kidneys, affine, spacing, organs, ct, min_level=organ_level
        )
        if spleen is not None:
            warnings = [w for w in warnings if not w.startswith("no spleen found")]
            warnings.append(
                "spleen outlined on the CT: it does not stand out as a hot organ on the "
                "emission image"
            )
    if liver is not None:
        # a voxel belongs to one organ: the hot organs keep their outline
        for other in (spleen, bladder, *kidneys):
            if other is not None:
                liver = liver & ~other
    return OrganMaps(
        body=body,
        organ_image=s,
        liver=liver,
        liver_hull=hull,
        liver_level=level,
        spleen=spleen,
        kidneys=kidneys,
        bladder=bladder,
        basins=basins,
        method=method,
        ct_hu=ct_hu,
        organ_level=organs.organ_threshold_factor * body.soft_tissue_level,
        warnings=tuple(warnings),
    )


# -------------------------------------------------------------------------------- references


def _ball_mean(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    k = kernel.astype(np.float32) / float(kernel.sum())
    return np.asarray(ndimage.correlate(image.astype(np.float32), k, mode="nearest"))


def sphere_mask(
    shape: tuple[int, int, int], affine: np.ndarray, centre_lps_mm: np.ndarray, radius_mm: float
) -> np.ndarray:
    """Voxels of the grid (``shape``, ``affine``) whose centres lie within ``radius_mm`` of
    ``centre_lps_mm``; at least the voxel containing the centre."""
    inv = np.linalg.inv(affine)
    c_idx = np.asarray(centre_lps_mm) @ inv[:3, :3].T + inv[:3, 3]
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    half = np.ceil(radius_mm / spacing).astype(int) + 1
    lo = np.maximum(np.floor(c_idx).astype(int) - half, 0)
    hi = np.minimum(np.ceil(c_idx).astype(int) + half + 1, np.asarray(shape))
    out = np.zeros(shape, dtype=bool)
    if np.any(hi <= lo):
        return out
    sub = np.stack(
        np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij"), -1
    ).astype(np.float64)
    pts = sub @ affine[:3, :3].T + affine[:3, 3]
    inside = np.sum((pts - centre_lps_mm) ** 2, axis=-1) <= radius_mm**2
    out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = inside
    nearest = np.clip(np.round(c_idx).astype(int), 0, np.asarray(shape) - 1)
    out[tuple(nearest)] = True
    return out


def effective_resels(volume_ml: float, fwhm_mm: float) -> float:
    """Independent resolution elements in a region: max(1, V / FWHM^3) (module docstring)."""
    resel_ml = fwhm_mm**3 / 1000.0
    return max(1.0, volume_ml / resel_ml)


def place_reference(
    organ: str,
    organ_mask: np.ndarray,
    image: np.ndarray,
    grid: WorkingGrid,
    native: np.ndarray,
    *,
    diameter_mm: float,
    edge_margin_mm: float,
    lesion_margin_mm: float,
    avoid: np.ndarray | None,
    fwhm_mm: float,
    method: str,
) -> ReferenceRegion | None:
    """A spherical reference VOI in ``organ_mask`` (working grid), measured on ``native``.

    ``image`` is the working-grid emission image, ``native`` the emission array on the
    original grid. ``avoid`` marks lesions (working grid). Returns None for an empty organ.
    The VOI statistics, noise model and the rule that picks the position are in the module
    docstring; ``warnings`` say when the sphere had to come closer to an edge or a lesion
    than the margins allow.
    """
    spacing = grid.spacing_mm
    if not organ_mask.any():
        return None
    radius = diameter_mm / 2.0
    inside = distance_inside_mm(organ_mask, spacing)
    away = (
        distance_to_mm(avoid, spacing, max_mm=radius + lesion_margin_mm + 1.0)
        if avoid is not None
        else np.full(organ_mask.shape, np.inf, dtype=np.float32)
    )
    need_edge = radius + edge_margin_mm
    need_lesion = radius + lesion_margin_mm
    allowed = organ_mask & (inside >= need_edge) & (away >= need_lesion)
    kernel = ball(radius, spacing)
    warnings: list[str] = []
    if allowed.any():
        sl = ndimage.find_objects(allowed.astype(np.int8))[0]
        reach = [k // 2 + 1 for k in kernel.shape]
        lo = [max(0, a.start - r) for a, r in zip(sl, reach, strict=True)]
        hi = [min(n, a.stop + r) for a, r, n in zip(sl, reach, image.shape, strict=True)]
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        sub = image[box].astype(np.float32)
        mean = _ball_mean(sub, kernel)
        mean2 = _ball_mean(sub * sub, kernel)
        var = np.maximum(mean2 - mean * mean, 0.0)
        cand = allowed[box]
        m = mean[cand]
        q1, q3 = np.percentile(m, [25.0, 75.0])
        typical = cand & (mean >= q1) & (mean <= q3)
        if not typical.any():
            typical = cand
        cv = np.where(typical, np.sqrt(var) / np.maximum(np.abs(mean), 1e-12), np.inf)
        best_local = np.unravel_index(int(np.argmin(cv)), cv.shape)
        best = np.asarray(best_local) + np.asarray(lo)
        typical_var = float(np.median(var[cand]))
        chosen_var = float(var[best_local])
    else:
        score = np.where(organ_mask, np.minimum(inside - need_edge, away - need_lesion), -np.inf)
        best = np.asarray(np.unravel_index(int(np.argmax(score)), score.shape))
        warnings.append(
            f"the {diameter_mm:g} mm sphere does not fit {edge_margin_mm:g} mm inside the "
            f"{organ} and {lesion_margin_mm:g} mm from lesions: placed at the deepest point "
            f"({float(inside[tuple(best)]):.0f} mm from the edge, "
            f"{min(float(away[tuple(best)]), 999.0):.0f} mm from a lesion)"
        )
        typical_var = None
        chosen_var = None
    native_idx = grid.to_native_index(best)
    affine = grid.native_affine
    centre = native_idx @ affine[:3, :3].T + affine[:3, 3]
    mask = sphere_mask(grid.native_shape, affine, centre, radius)
    values = np.asarray(native, dtype=np.float64)[mask]
    n = int(values.size)
    mean_v = float(values.mean())
    std_v = float(values.std(ddof=1)) if n > 1 else 0.0
    s2 = std_v**2
    if typical_var is not None and chosen_var is not None and chosen_var > 0.0:
        s2 = max(s2, typical_var * (std_v**2 / chosen_var))
    spacing_native = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    volume = n * voxel_volume_ml((spacing_native[0], spacing_native[1], spacing_native[2]))
    n_eff = effective_resels(volume, fwhm_mm)
    if mean_v <= 0.0:
        warnings.append(f"{organ} reference mean is {mean_v:g}: not usable")
    return ReferenceRegion(
        organ=organ,
        mean=mean_v,
        std=std_v,
        variance_of_mean=s2 / n_eff,
        variance_method="empirical",
        method=(
            f"{diameter_mm:g} mm sphere in the {organ} outlined on the "
            f"{'CT' if method == METHOD_CT else 'emission image'}; noise from the region, "
            f"n_eff = V / FWHM^3 = {n_eff:.1f}"
        ),
        radius_mm=radius,
        n_pixels=n,
        volume_ml=volume,
        center_lps_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
        plausible=mean_v > 0.0,
        mask=mask,
        warnings=tuple(warnings),
    )
