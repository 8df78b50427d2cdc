"""Hot-spot detection, segmentation and measurement on the planar scoring image.

Detection (canonical frame of :mod:`octoscan.models.planar_organs`; all sizes in mm):

* the scoring image is smoothed to about the system resolution (``smoothing_fwhm_mm``);
* the local background (:func:`background`) is the largest grey opening with a line
  segment of 2 x ``background_radius_mm`` over 12 orientations: organs, organ edges, limbs
  and bowel loops, which such a segment fits into in some direction, are background; a
  spot narrower than the segment in every direction stands out, inside the liver as well
  as in soft tissue. A spot on the flank of a brighter structure is not a local maximum
  and segments running up the flank absorb it; inside the liver (outside hot organs) a
  second background therefore applies, the larger of the liver at the same depth
  (:func:`organ_depth_background`) and a disk opening (``liver_opening_radius_mm``), and
  the lower of the two backgrounds is used. (Flanks of the spleen, kidneys and bladder
  keep the known limit: a second background there found bowel as often as lesions.)
* statistical criterion: z = (smoothed - background) / sd(smoothed), sd from the Poisson
  variance map propagated through the smoothing (or from the image's empirical noise gain
  when it holds no counting statistics); the opening's downward bias on noisy data is
  measured on the body's soft tissue (median z there) and removed; spots need
  z >= ``min_z_score`` and a contrast (smoothed - background) / background of at least
  ``min_contrast``;
* physiological uptake is not a lesion (:func:`_physiological`): the spleen, kidneys and
  bladder (by their masks, with a test for a separate spot overlapping them), the
  gallbladder (a modest spot at the lower medial edge of the liver), midline spots in the
  head and neck (pituitary, thyroid), and faint spots with a like spot at the mirror
  position across the midline (:func:`_symmetric`: joints, shoulders, hands) are set aside
  with the reason;
* segmentation: the region around each peak where the excess over background is at least
  ``segmentation_fraction`` of the peak excess, split between neighbouring peaks by a
  watershed and kept out of physiological organ masks. Faint regions narrower than
  ``min_width_mm`` or longer than ``max_elongation`` times their width (organ-edge
  slivers, bowel loops) are set aside. The lesion is then outlined the same way on the
  image smoothed to ``segmentation_fwhm_mm`` (less added blur); ``diameter_mm`` is the
  diameter of the disk of the outline's area.

The apparent peak (what planar Krenning grades) is defined once, in :func:`apparent_peak`;
it is read at the maximum of the peak image within ``peak_search_radius_mm`` of the
detection maximum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.draw import line as draw_line
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from octoscan.models.config import DetectionConfig
from octoscan.models.planar_organs import OrganMap, grey_open
from octoscan.models.stats import (
    fwhm_to_sigma_px,
    residual_noise_gain,
    smooth,
    smooth_variance,
)

PHYSIOLOGICAL_ORGANS: tuple[str, ...] = ("spleen", "kidney_left", "kidney_right", "bladder")
_HEAD_NECK_MIDLINE_MM = 35.0  # |offset| of a midline head/neck spot (pituitary, thyroid)
_MAX_LESION_RADIUS_FACTOR = 2.5  # a lesion region stays within this x background radius
_ORGAN_PEAK_RADIUS_MM = 25.0  # a spot this close to an organ's own peak is the organ
_ORGAN_LESION_PA_FACTOR = 0.7
_GALLBLADDER_OFFSET_MM = (10.0, 95.0)  # liver-side offset from the midline
_GALLBLADDER_BELOW_MM = 25.0  # below the liver's lowest row
_GALLBLADDER_MAX_CONTRAST = 0.6


@dataclass(frozen=True)
class Spot:
    """A detected lesion before grading (positions and masks on the stored grid).

    ``peak`` / ``peak_variance``: apparent peak (:func:`apparent_peak`) and its variance;
    ``mean``: mean of the scoring image over ``mask``; ``background``: local background at
    the peak (counts per pixel); ``z_score`` and ``contrast`` as in the module docstring.
    """

    center_rc: tuple[float, float]
    peak: float
    peak_variance: float
    mean: float
    background: float
    z_score: float
    contrast: float
    diameter_mm: float
    area_cm2: float
    region: str
    mask: np.ndarray


@dataclass(frozen=True)
class SetAside:
    """A significant hot spot judged physiological (stored grid)."""

    center_rc: tuple[float, float]
    organ: str
    z_score: float


@dataclass(frozen=True)
class Detection:
    """Result of :func:`find_lesions`."""

    spots: tuple[Spot, ...]
    set_aside: tuple[SetAside, ...]
    z_bias: float
    noise_method: str
    warnings: tuple[str, ...] = ()


def apparent_peak(
    image: np.ndarray,
    variance: np.ndarray | None,
    peak_rc: tuple[int, int],
    *,
    spacing_mm: tuple[float, float],
    fwhm_mm: float,
) -> tuple[float, float]:
    """Apparent peak of a lesion and its variance.

    Definition (the one place it is fixed): the value, at the lesion's peak location, of the
    scoring image (geometric mean, counts per pixel) smoothed with a Gaussian of
    ``fwhm_mm`` (``[planar.detection] peak_fwhm_mm``, small against the planar resolution so
    that it tames pixel noise without flattening the peak). The peak location is the maximum
    of the detection-smoothed image inside the lesion, so no maximum is taken over the noise
    of this value itself. Variance from the Poisson variance map with squared weights (0 when
    ``variance`` is None; the caller supplies an empirical value then).
    """
    sigma = fwhm_to_sigma_px(fwhm_mm, spacing_mm)
    r, c = peak_rc
    rad_r = max(1, math.ceil(4 * sigma[0]))
    rad_c = max(1, math.ceil(4 * sigma[1]))
    r0, r1 = max(0, r - 2 * rad_r), min(image.shape[0], r + 2 * rad_r + 1)
    c0, c1 = max(0, c - 2 * rad_c), min(image.shape[1], c + 2 * rad_c + 1)
    patch = smooth(image[r0:r1, c0:c1], sigma)
    value = float(patch[r - r0, c - c0])
    if variance is None:
        return value, 0.0
    vpatch = smooth_variance(variance[r0:r1, c0:c1], sigma)
    return value, float(vpatch[r - r0, c - c0])


_LINE_ORIENTATIONS_DEG = tuple(range(0, 180, 15))
_BACKGROUND_GRID_MM = 4.0  # background computed on a grid of about this pixel size


def _line_footprint(length_px: float, angle_deg: float) -> np.ndarray:
    half = max(1.0, length_px / 2.0)
    dr = half * math.sin(math.radians(angle_deg))
    dc = half * math.cos(math.radians(angle_deg))
    n = max(1, round(max(abs(dr), abs(dc))))
    fp = np.zeros((2 * n + 1, 2 * n + 1), dtype=bool)
    rr, cc = draw_line(n - round(dr), n - round(dc), n + round(dr), n + round(dc))
    fp[rr, cc] = True
    return fp


def background(
    smoothed: np.ndarray, *, radius_mm: float, spacing_mm: tuple[float, float]
) -> np.ndarray:
    """Local background of a smoothed planar image: what remains after removing compact spots.

    The maximum over 12 orientations of grey openings with a line segment of length
    2 x ``radius_mm``: anything a segment that long fits into in some direction (organs,
    organ edges, limbs, bowel loops, slopes) is background; only spots narrower than the
    segment in every direction stand out. Computed on a grid of about 4 mm (the image is
    already smoothed to the system resolution) and interpolated back.
    """
    f = max(1, round(_BACKGROUND_GRID_MM / min(spacing_mm)))
    rows, cols = smoothed.shape
    pr, pc = (-rows) % f, (-cols) % f
    padded = np.pad(smoothed, ((0, pr), (0, pc)), mode="edge")
    small = padded.reshape(padded.shape[0] // f, f, padded.shape[1] // f, f).mean(axis=(1, 3))
    sp = (spacing_mm[0] * f, spacing_mm[1] * f)
    out = None
    for angle in _LINE_ORIENTATIONS_DEG:
        # segment length in pixels along its direction on an anisotropic grid
        a = math.radians(angle)
        step_mm = math.hypot(sp[0] * math.sin(a), sp[1] * math.cos(a)) / max(
            abs(math.sin(a)), abs(math.cos(a))
        )
        fp = _line_footprint(2.0 * radius_mm / step_mm, angle)
        o = ndimage.grey_opening(small, footprint=fp, mode="nearest")
        out = o if out is None else np.maximum(out, o)
    assert out is not None
    if f == 1:
        return out
    rr = (np.arange(rows) - (f - 1) / 2.0) / f
    cc = (np.arange(cols) - (f - 1) / 2.0) / f
    grid = np.meshgrid(rr, cc, indexing="ij")
    return ndimage.map_coordinates(out, grid, order=1, mode="nearest")


def organ_depth_background(
    smoothed: np.ndarray,
    organ_masks: Sequence[np.ndarray],
    zone: np.ndarray,
    *,
    spacing_mm: tuple[float, float],
    window_mm: float,
    exclusion_mm: float,
    depth_tolerance_mm: float,
    influence_mm: float,
    min_samples: int = 5,
) -> np.ndarray:
    """Background inside an organ from pixels at the same depth in it (canonical frame).

    A projected organ's lesion-free image varies mostly with the position relative to the
    organ outlines: the projected thickness grows with the distance inside the organ's own
    outline, and a neighbouring hot organ adds its blur, which falls with the distance from
    that organ. Each pixel's *signature* is its signed distance (mm, positive inside) to every
    outline in ``organ_masks``, clipped at ``-influence_mm`` (farther away an organ no longer
    matters). The background at a pixel of ``zone`` is the median of the image over the
    pixels between ``exclusion_mm`` (the lesion itself) and ``window_mm`` from it whose
    signature matches within ``depth_tolerance_mm`` in every component: the same depth in the
    organ and the same distance from each neighbouring organ, on both sides along the
    organ's contours. A lesion on the slope of a thinning organ stands out against the
    pixels at its depth, where an opening would slide up the slope and absorb it.

    Computed on a grid of about 4 mm; +inf where fewer than ``min_samples`` pixels match or
    outside ``zone``.
    """
    f = max(1, round(_BACKGROUND_GRID_MM / min(spacing_mm)))
    rows, cols = smoothed.shape
    pr, pc = (-rows) % f, (-cols) % f

    def coarse(a: np.ndarray) -> np.ndarray:
        padded = np.pad(np.asarray(a, dtype=np.float64), ((0, pr), (0, pc)), mode="edge")
        return padded.reshape(padded.shape[0] // f, f, padded.shape[1] // f, f).mean(axis=(1, 3))

    small = coarse(smoothed)
    sp = (spacing_mm[0] * f, spacing_mm[1] * f)
    signature = []
    for mask in organ_masks:
        m = coarse(mask) >= 0.5
        if not m.any():
            continue
        inside = ndimage.distance_transform_edt(m, sampling=sp)
        outside = ndimage.distance_transform_edt(~m, sampling=sp)
        signature.append(np.maximum(np.where(m, inside, -outside), -influence_mm))
    out = np.full(small.shape, np.inf)
    where = np.argwhere(coarse(zone) >= 0.5)
    if not signature or where.size == 0:
        return np.full(smoothed.shape, np.inf)
    sig = np.stack(signature)
    own = sig[:, where[:, 0], where[:, 1]]
    n_r, n_c = int(window_mm // sp[0]), int(window_mm // sp[1])
    samples = []
    for dr in range(-n_r, n_r + 1):
        for dc in range(-n_c, n_c + 1):
            d2 = (dr * sp[0]) ** 2 + (dc * sp[1]) ** 2
            if not exclusion_mm**2 <= d2 <= window_mm**2:
                continue
            r = where[:, 0] + dr
            c = where[:, 1] + dc
            inside = (r >= 0) & (r < small.shape[0]) & (c >= 0) & (c < small.shape[1])
            r = np.clip(r, 0, small.shape[0] - 1)
            c = np.clip(c, 0, small.shape[1] - 1)
            match = inside & np.all(np.abs(sig[:, r, c] - own) <= depth_tolerance_mm, axis=0)
            samples.append(np.where(match, small[r, c], np.nan))
    stack = np.stack(samples)
    count = np.sum(~np.isnan(stack), axis=0)
    ok = count >= min_samples
    if ok.any():
        out[where[ok, 0], where[ok, 1]] = np.nanmedian(stack[:, ok], axis=0)
    full = np.repeat(np.repeat(out, f, axis=0), f, axis=1)[:rows, :cols]
    return np.where(zone, full, np.inf)


def find_lesions(
    image: np.ndarray,
    variance: np.ndarray | None,
    organs: OrganMap,
    *,
    spacing_mm: tuple[float, float],
    config: DetectionConfig,
    anterior: np.ndarray | None = None,
    posterior: np.ndarray | None = None,
) -> Detection:
    """Detect, segment and measure lesions on the scoring image (stored grid in and out).

    ``anterior`` and ``posterior`` (mirrored, registered; both or neither) tell a spot in
    front of a kidney from the kidney itself.

    ``variance`` is the Poisson variance map of ``image`` (None: no counting statistics;
    an empirical noise gain from the image's fine-scale residuals is used instead and the
    detection says so).
    """
    frame = organs.frame
    img = frame.to_canonical(np.asarray(image, dtype=np.float64))
    body = frame.to_canonical(organs.body)
    warnings: list[str] = []
    sigma_d = fwhm_to_sigma_px(config.smoothing_fwhm_mm, spacing_mm)
    sd = smooth(img, sigma_d)
    if variance is not None:
        var = frame.to_canonical(np.asarray(variance, dtype=np.float64))
        noise_method = "poisson"
    else:
        gain = residual_noise_gain(img, body, sigma_rc_px=sigma_d)
        var = gain * np.clip(img, 0.0, None)
        noise_method = "empirical"
        warnings.append(
            "image without counting statistics: detection noise from the image's own "
            f"fine-scale residuals (gain {gain:.3g} per count), approximate"
        )
    vd = smooth_variance(var, sigma_d)
    sd_noise = np.sqrt(np.maximum(vd, 1e-12))
    bg = background(sd, radius_mm=config.background_radius_mm, spacing_mm=spacing_mm)
    bg = np.minimum(bg, sd)

    phys = {name: organs.canonical_mask(name) for name in PHYSIOLOGICAL_ORGANS}
    organ_any = np.zeros(img.shape, dtype=bool)
    for m in phys.values():
        if m is not None:
            organ_any |= m
    liver = organs.canonical_mask("liver")
    if liver is None:
        liver = np.zeros(img.shape, dtype=bool)
    bg = np.minimum(bg, _liver_background(sd, liver, organ_any, phys, spacing_mm, config))
    excess = sd - bg
    z_raw = excess / sd_noise
    soft = body & ~organ_any & ~liver & (sd > 0)
    z_bias = float(np.median(z_raw[soft])) if soft.any() else 0.0
    z = z_raw - z_bias

    min_dist = max(1, round(config.min_peak_distance_mm / max(spacing_mm)))
    cand_region = body & (z >= config.min_z_score)
    if not cand_region.any():
        return Detection((), (), z_bias, noise_method, tuple(warnings))
    peaks = peak_local_max(
        np.where(cand_region, excess, 0.0),
        min_distance=min_dist,
        threshold_abs=0.0,
        exclude_border=False,
    )
    # each hot organ's own peak: the kidneys' from organ finding (posterior-view blob), the
    # others' where the organ stands out most
    organ_peaks: dict[str, tuple[int, int]] = {}
    for name, m in phys.items():
        if m is None or not m.any():
            continue
        given = organs.organ_peaks.get(name)
        if name.startswith("kidney") and given is not None:
            organ_peaks[name] = given
        else:
            rr, cc = np.unravel_index(int(np.argmax(np.where(m, excess, -np.inf))), m.shape)
            organ_peaks[name] = (int(rr), int(cc))
    pa = None
    if anterior is not None and posterior is not None:
        a_s = smooth(frame.to_canonical(np.asarray(anterior, dtype=np.float64)), sigma_d)
        p_s = smooth(frame.to_canonical(np.asarray(posterior, dtype=np.float64)), sigma_d)
        with np.errstate(invalid="ignore", divide="ignore"):
            pa = np.where(a_s > 0, p_s / np.maximum(a_s, 1e-12), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        contrast_map = np.where(bg > 0, excess / np.maximum(bg, 1e-12), np.inf)
    liver_rows_idx = np.flatnonzero(liver.any(axis=1))
    ctx = _Context(
        phys=phys,
        organ_peaks=organ_peaks,
        sd=sd,
        contrast=contrast_map,
        pa=pa,
        organs=organs,
        liver_rows=(int(liver_rows_idx[0]), int(liver_rows_idx[-1]))
        if liver_rows_idx.size
        else None,
        spacing_mm=spacing_mm,
        organ_zone=_near_mask(organ_any | liver, config.symmetry_organ_margin_mm, spacing_mm),
    )
    kept: list[tuple[int, int, str]] = []
    set_aside: list[SetAside] = []
    for r, c in peaks:
        r, c = int(r), int(c)
        zval = float(z[r, c])
        contrast = float(excess[r, c] / bg[r, c]) if bg[r, c] > 0 else math.inf
        if zval < config.min_z_score or contrast < config.min_contrast:
            continue
        organ = _physiological(r, c, ctx)
        region = "liver" if liver[r, c] else _region_name(r, organs, spacing_mm)
        if organ is None and contrast < config.symmetric_max_contrast:
            organ = _symmetric(
                r, c, z=z, contrast=contrast_map, ctx=ctx, config=config, region=region
            )
        if organ is not None:
            set_aside.append(SetAside(frame.point_to_stored((r, c)), organ, zval))
            continue
        kept.append((r, c, region))

    spots, rejected = _segment(
        kept,
        img=img,
        var=var,
        sd=sd,
        bg=bg,
        excess=excess,
        z=z,
        organ_any=organ_any,
        body=body,
        frame=frame,
        spacing_mm=spacing_mm,
        config=config,
    )
    set_aside.extend(rejected)
    return Detection(tuple(spots), tuple(set_aside), z_bias, noise_method, tuple(warnings))


def _liver_background(
    sd: np.ndarray,
    liver: np.ndarray,
    organ_any: np.ndarray,
    phys: dict[str, np.ndarray | None],
    spacing_mm: tuple[float, float],
    config: DetectionConfig,
) -> np.ndarray:
    """Second background inside the liver (outside the hot organs' masks); +inf elsewhere.

    The larger of two estimates with different weaknesses, so that a spot must stand out
    against both: :func:`organ_depth_background` (follows the organ's slopes, but mixes
    parts of the liver of different thickness at one depth) and a grey opening with a disk of
    ``liver_opening_radius_mm`` (removes spots narrower than the disk, but trims the organ's
    corners). Lesions on the slope of the thinning liver, which the line openings absorb,
    stand out against it.
    """
    zone = liver & ~organ_any
    if config.liver_opening_radius_mm <= 0.0 or not zone.any():
        return np.full(sd.shape, np.inf)
    masks = [liver, *(m for m in phys.values() if m is not None and m.any())]
    depth = organ_depth_background(
        sd,
        masks,
        zone,
        spacing_mm=spacing_mm,
        window_mm=config.liver_depth_window_mm,
        exclusion_mm=config.liver_depth_exclusion_mm,
        depth_tolerance_mm=config.liver_depth_tolerance_mm,
        influence_mm=config.organ_influence_mm,
    )
    disk = grey_open(sd, config.liver_opening_radius_mm, spacing_mm, within=zone)
    return np.where(zone, np.maximum(depth, disk), np.inf)


@dataclass(frozen=True)
class _Context:
    """What the physiological-uptake test needs (canonical frame)."""

    phys: dict[str, np.ndarray | None]
    organ_peaks: dict[str, tuple[int, int]]
    sd: np.ndarray
    contrast: np.ndarray
    pa: np.ndarray | None
    organs: OrganMap
    liver_rows: tuple[int, int] | None
    spacing_mm: tuple[float, float]
    organ_zone: np.ndarray  # liver and hot organs, dilated by symmetry_organ_margin_mm


def _physiological(r: int, c: int, ctx: _Context) -> str | None:
    """Organ whose own uptake a spot at (r, c) is, or None.

    * Bladder mask: the bladder.
    * Spleen or kidney mask: the organ, unless the spot lies farther than
      ``_ORGAN_PEAK_RADIUS_MM`` from the organ's own peak (the spleen's hottest point; a
      kidney's blob on the posterior view) *and* is either, for a kidney, hotter than that
      peak or, with both views, clearly more anterior (posterior/anterior count ratio below
      ``_ORGAN_LESION_PA_FACTOR`` times the organ's; spleen and kidneys lie posterior): a
      node or pancreatic lesion in front of a kidney or against the spleen.
    * Gallbladder (visible at 24 h on Octreoscan): a spot of modest contrast (below
      ``_GALLBLADDER_MAX_CONTRAST``) in the lower part of the liver or just below it, medial
      on the liver side (``_GALLBLADDER_OFFSET_MM`` from the midline).
    * Pituitary or thyroid: a midline spot in the head and neck.
    """
    sp = ctx.spacing_mm
    for name, mask in ctx.phys.items():
        if mask is None or not mask[r, c]:
            continue
        peak = ctx.organ_peaks.get(name)
        if name == "bladder" or peak is None:
            return name
        d = math.hypot((r - peak[0]) * sp[0], (c - peak[1]) * sp[1])
        if d <= _ORGAN_PEAK_RADIUS_MM:
            return name
        # the spleen's own peak is its hottest point, so "hotter" only applies to kidneys,
        # whose peak comes from the posterior view
        hotter = name.startswith("kidney") and ctx.sd[r, c] > ctx.sd[peak]
        anterior = ctx.pa is not None and ctx.pa[r, c] < _ORGAN_LESION_PA_FACTOR * ctx.pa[peak]
        if not (hotter or anterior):
            return name
    organs = ctx.organs
    if ctx.liver_rows is not None:
        top, bottom = ctx.liver_rows
        offset = (organs.midline_col - c) * sp[1]  # mm, liver side > 0
        in_rows = top + 0.5 * (bottom - top) <= r <= bottom + _GALLBLADDER_BELOW_MM / sp[0]
        if (
            in_rows
            and _GALLBLADDER_OFFSET_MM[0] <= offset <= _GALLBLADDER_OFFSET_MM[1]
            and ctx.contrast[r, c] < _GALLBLADDER_MAX_CONTRAST
        ):
            return "gallbladder"
    hn = organs.head_neck_rows
    if (
        hn is not None
        and hn[0] <= r < hn[1]
        and abs(c - organs.midline_col) * sp[1] <= _HEAD_NECK_MIDLINE_MM
    ):
        return "head_neck_midline (pituitary/thyroid)"
    return None


def _near_mask(mask: np.ndarray, margin_mm: float, spacing_mm: tuple[float, float]) -> np.ndarray:
    """``mask`` grown by ``margin_mm`` (an empty mask stays empty)."""
    if not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask, sampling=spacing_mm) <= margin_mm


def _symmetric(
    r: int,
    c: int,
    *,
    z: np.ndarray,
    contrast: np.ndarray,
    ctx: _Context,
    config: DetectionConfig,
    region: str,
) -> str | None:
    """A "symmetric ..." reason when the mirror position across the midline holds a like spot.

    Joints, shoulders, hands and paired muscles take up a little tracer on both sides; a
    reader calls symmetric faint uptake physiological. The mirror window (radius
    ``symmetry_tolerance_mm``, at the same height) must hold a point with z of at least
    0.7 times the spot's (and at least 3) and a contrast between 0.6 and 1/0.6 times the
    spot's that is faint as well (below ``symmetric_max_contrast``; the caller only tests
    faint spots). Never symmetric: spots near the midline (their own mirror), spots in or
    near the trunk's organs (``_Context.organ_zone``: liver, spleen, kidneys, bladder, not
    symmetric), and spots of the abdomen and pelvis inside the torso, where bilateral iliac
    nodes and bones are common.
    """
    sp = ctx.spacing_mm
    mid = ctx.organs.midline_col
    offset_mm = (c - mid) * sp[1]
    tol = config.symmetry_tolerance_mm
    if abs(offset_mm) <= tol or ctx.organ_zone[r, c]:
        return None
    if region in ("abdomen", "pelvis") and abs(offset_mm) <= ctx.organs.torso_width_mm / 2.0:
        return None
    mc = 2.0 * mid - c
    rr = np.arange(z.shape[0])[:, None]
    cc = np.arange(z.shape[1])[None, :]
    r0, r1 = max(0, r - math.ceil(tol / sp[0])), min(z.shape[0], r + math.ceil(tol / sp[0]) + 1)
    c0 = max(0, math.floor(mc - tol / sp[1]))
    c1 = min(z.shape[1], math.ceil(mc + tol / sp[1]) + 1)
    if c0 >= c1:
        return None
    win = ((rr[r0:r1] - r) * sp[0]) ** 2 + ((cc[:, c0:c1] - mc) * sp[1]) ** 2 <= tol**2
    zw = z[r0:r1, c0:c1]
    cw = contrast[r0:r1, c0:c1]
    own = float(contrast[r, c])
    like = win & (zw >= max(3.0, 0.7 * float(z[r, c])))
    like &= (cw >= 0.6 * own) & (cw <= min(own / 0.6, config.symmetric_max_contrast))
    like &= ~ctx.organ_zone[r0:r1, c0:c1]
    if like.any():
        return "symmetric with the other side (physiological?)"
    return None


def _region_name(r: int, organs: OrganMap, spacing_mm: tuple[float, float]) -> str:
    """Coarse body region of a canonical row (whole-body images), else "torso"."""
    hn = organs.head_neck_rows
    if hn is not None and r < hn[1]:
        return "head_neck"
    liver = organs.canonical_mask("liver")
    if liver is not None and liver.any():
        rows = np.flatnonzero(liver.any(axis=1))
        if r < rows[0]:
            return "thorax"
        if r <= rows[-1] + round(150.0 / spacing_mm[0]):
            return "abdomen"
        if organs.whole_body and r <= rows[-1] + round(330.0 / spacing_mm[0]):
            return "pelvis"
        if organs.whole_body:
            return "lower_limbs"
    return "torso"


def _segment(
    kept: list[tuple[int, int, str]],
    *,
    img: np.ndarray,
    var: np.ndarray,
    sd: np.ndarray,
    bg: np.ndarray,
    excess: np.ndarray,
    z: np.ndarray,
    organ_any: np.ndarray,
    body: np.ndarray,
    frame: object,
    spacing_mm: tuple[float, float],
    config: DetectionConfig,
) -> tuple[list[Spot], list[SetAside]]:
    if not kept:
        return [], []
    markers = np.zeros(img.shape, dtype=np.int32)
    for k, (r, c, _) in enumerate(kept, start=1):
        markers[r, c] = k
    # lesions stay out of physiological organs, except the organ a lesion overlaps itself
    allowed = body & ~organ_any
    for r, c, _ in kept:
        if organ_any[r, c]:
            lab, _n = ndimage.label(organ_any)
            allowed |= lab == lab[r, c]
    basins = watershed(-excess, markers, mask=allowed & (excess > 0))
    peak_img = smooth(img, fwhm_to_sigma_px(config.peak_fwhm_mm, spacing_mm))
    fine = (
        smooth(img, fwhm_to_sigma_px(config.segmentation_fwhm_mm, spacing_mm))
        if config.segmentation_fwhm_mm < config.smoothing_fwhm_mm
        else None
    )
    pixel_cm2 = spacing_mm[0] * spacing_mm[1] / 100.0
    max_r_mm = _MAX_LESION_RADIUS_FACTOR * config.background_radius_mm
    rr_all = np.arange(img.shape[0])[:, None]
    cc_all = np.arange(img.shape[1])[None, :]
    spots: list[Spot] = []
    rejected: list[SetAside] = []
    for k, (r, c, region) in enumerate(kept, start=1):
        near = ((rr_all - r) * spacing_mm[0]) ** 2 + (
            (cc_all - c) * spacing_mm[1]
        ) ** 2 <= max_r_mm**2
        cand = (basins == k) & near & (excess >= config.segmentation_fraction * excess[r, c])
        lab, _ = ndimage.label(cand)
        mask = lab == lab[r, c] if lab[r, c] > 0 else np.zeros(img.shape, dtype=bool)
        if not mask.any():
            mask = np.zeros(img.shape, dtype=bool)
            mask[r, c] = True
        area_cm2 = float(mask.sum()) * pixel_cm2
        diameter_mm = 2.0 * math.sqrt(area_cm2 * 100.0 / math.pi)
        if diameter_mm < config.min_diameter_mm:
            continue
        # shape, judged on the detection region (it resists noise): faint slivers of organ
        # edges and bowel loops are not lesions
        if excess[r, c] < config.shape_max_contrast * bg[r, c]:
            problem = _shape_problem(mask, spacing_mm, config)
            if problem is not None:
                center = frame.point_to_stored((float(r), float(c)))  # type: ignore[attr-defined]
                rejected.append(SetAside(center, problem, float(z[r, c])))
                continue
        # peak location: maximum of the detection-smoothed image inside the lesion
        sub = np.where(mask, sd, -np.inf)
        pr, pc = np.unravel_index(int(np.argmax(sub)), sub.shape)
        if fine is not None:
            # outline on the less smoothed image: less blur added to the lesion's size
            b_pk = float(bg[pr, pc])
            level = b_pk + config.segmentation_fraction * (float(fine[pr, pc]) - b_pk)
            lab_f, _ = ndimage.label((basins == k) & near & (fine >= np.maximum(level, bg)))
            if lab_f[pr, pc] > 0:
                mask = lab_f == lab_f[pr, pc]
                area_cm2 = float(mask.sum()) * pixel_cm2
                diameter_mm = 2.0 * math.sqrt(area_cm2 * 100.0 / math.pi)
        if config.peak_search_radius_mm > 0.0:
            pr, pc = _peak_near(
                peak_img, mask, (int(pr), int(pc)), config.peak_search_radius_mm, spacing_mm
            )
        peak, peak_var = apparent_peak(
            img, var, (int(pr), int(pc)), spacing_mm=spacing_mm, fwhm_mm=config.peak_fwhm_mm
        )
        stored_mask = frame.to_stored(mask)  # type: ignore[attr-defined]
        center = frame.point_to_stored((float(pr), float(pc)))  # type: ignore[attr-defined]
        b = float(bg[pr, pc])
        spots.append(
            Spot(
                center_rc=center,
                peak=peak,
                peak_variance=peak_var,
                mean=float(img[mask].mean()),
                background=b,
                z_score=float(z[pr, pc]),
                contrast=float((sd[pr, pc] - b) / b) if b > 0 else math.inf,
                diameter_mm=round(diameter_mm, 1),
                area_cm2=round(area_cm2, 2),
                region=region,
                mask=stored_mask,
            )
        )
    return spots, rejected


def _peak_near(
    peak_img: np.ndarray,
    mask: np.ndarray,
    rc: tuple[int, int],
    radius_mm: float,
    spacing_mm: tuple[float, float],
) -> tuple[int, int]:
    """The maximum of ``peak_img`` within ``radius_mm`` of ``rc`` and inside ``mask``."""
    r, c = rc
    nr = math.ceil(radius_mm / spacing_mm[0])
    nc = math.ceil(radius_mm / spacing_mm[1])
    r0, r1 = max(0, r - nr), min(peak_img.shape[0], r + nr + 1)
    c0, c1 = max(0, c - nc), min(peak_img.shape[1], c + nc + 1)
    rr = np.arange(r0, r1)[:, None]
    cc = np.arange(c0, c1)[None, :]
    near = ((rr - r) * spacing_mm[0]) ** 2 + ((cc - c) * spacing_mm[1]) ** 2 <= radius_mm**2
    allowed = near & mask[r0:r1, c0:c1]
    if not allowed.any():
        return rc
    sub = np.where(allowed, peak_img[r0:r1, c0:c1], -np.inf)
    k = np.unravel_index(int(np.argmax(sub)), sub.shape)
    return (r0 + int(k[0]), c0 + int(k[1]))


def _shape_problem(
    mask: np.ndarray, spacing_mm: tuple[float, float], config: DetectionConfig
) -> str | None:
    """Why a spot's region is not lesion-shaped (too narrow or elongated), or None."""
    major_mm, minor_mm = axis_lengths_mm(mask, spacing_mm)
    if minor_mm < config.min_width_mm:
        return f"narrower than {config.min_width_mm:g} mm (edge or wall remnant)"
    if major_mm > config.max_elongation * minor_mm:
        return f"elongated {major_mm / max(minor_mm, 1e-9):.1f}:1 (bowel loop?)"
    return None


def axis_lengths_mm(mask: np.ndarray, spacing_mm: tuple[float, float]) -> tuple[float, float]:
    """Major and minor axis lengths (mm) of the ellipse with the same second moments as
    ``mask`` (4 x the square roots of the covariance eigenvalues, as scikit-image's
    ``regionprops``); a single pixel counts as one pixel wide."""
    rr, cc = np.nonzero(mask)
    if rr.size < 2:
        return float(max(spacing_mm)), float(min(spacing_mm))
    pts = np.stack([rr * spacing_mm[0], cc * spacing_mm[1]])
    cov = np.cov(pts, bias=True) + np.eye(2) * (min(spacing_mm) ** 2 / 12.0)
    lo, hi = np.linalg.eigvalsh(cov)
    return 4.0 * math.sqrt(max(hi, 0.0)), 4.0 * math.sqrt(max(lo, 0.0))
