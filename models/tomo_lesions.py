"""Lesions in 3-D: hot-spot detection, segmentation, physiological exclusion, measurement and
the partial-volume (recovery-coefficient) model.

Detection (``[tomo.detection]``; working grid, LPS mm):

1. The emission image is smoothed by a Gaussian of ``smoothing_fwhm_fraction`` x the system
   FWHM (S). The local background B is the sigma-clipped mean of S over a cube of
   ``background_size_mm`` (normalised box filters, three passes dropping voxels more than
   ``_CLIP_SD`` local SDs above the local mean) taken over background tissue only: body
   voxels more than one FWHM from the spleen, kidneys and bladder, outside the liver zone
   (the liver hull grown by half a FWHM) and below liver uptake, so that neither organs nor
   a large lesion raise their own background. In the liver zone B is the normal-liver level L
   (median of S in the liver core).
2. Noise: the local clipped SD of S (it holds the background's noise *and* its structure,
   which is what a lesion has to stand out from); in the liver zone the robust SD
   (1.4826 MAD) of S in the liver core. Reconstructed voxels are not Poisson: both come
   from the image itself. z = (S - B) / sd and contrast = (S - B) / B (B floored at
   ``tomo.organs.body_threshold_fraction`` x the body's median level).
3. Candidates are local maxima of S at least ``min_peak_distance_mm`` apart with
   z >= ``min_z_score`` and contrast >= ``min_contrast``; in the liver zone also
   S >= ``min_liver_lesion_ratio`` x L. Maxima inside the spleen, kidneys or bladder are
   those organs (their masks leave out cores hotter than 1.5 x the organ, which stay
   candidates); a maximum joined to one of them by a pass above ``_SADDLE_FRACTION`` of its
   height and not ``_HOTTER_THAN_ORGAN`` x hotter than the organ is the organ's shoulder.
4. Segmentation: a watershed of S (markers: candidates and the organs) splits the field into
   basins; two candidates' basins joined by a pass less than ``_MERGE_DIP_SD`` noise SDs or
   ``_MERGE_DIP_FRACTION`` of the lower peak's excess below that peak are one lesion (maxima
   of one plateau: a large lesion at a fine resolution); each lesion is the connected part
   of its basin above ``segmentation_fraction`` of its peak's excess over the background.
   A region that would reach more than
   ``_LIVER_SPILL_FRACTION`` into the liver zone (a lesion at the liver's edge, the
   gallbladder) is measured against liver instead and must pass the liver criteria.
   Regions under ``min_volume_ml`` are dropped.
5. Physiological exclusion (each excluded hot spot is kept with its reason): elongated
   regions, or elongated plateaus (the connected region above the lesion's segmentation
   threshold outside the organs, across neighbouring maxima), with length >=
   ``elongated_min_length_mm`` and principal-axis ratio >= ``elongated_min_ratio``: bowel,
   ureter; large regions below liver uptake (the region or its plateau
   >= ``large_faint_min_volume_ml``: cardiac blood pool, stomach, bowel loops); with a fused
   CT, spots in bone that do not stand out from the surrounding bone's uptake by
   ``min_contrast`` and ``min_z_score`` (normal marrow; :func:`_marrow`) and spots in the
   thyroid bed (neck, front half, near the midline, around the lung apices on CT) below
   ``thyroid_max_ratio_liver`` x liver; an *accessory spleen* (a
   nodule of at most ``tomo.organs.accessory_spleen_max_volume_ml`` within
   ``accessory_spleen_max_distance_mm`` of the spleen, between
   ``accessory_spleen_min_ratio_spleen`` and ``_ACCESSORY_MAX_RATIO`` x spleen uptake: a
   splenule; a pancreatic-tail lesion can look the same, so the reason says so); the
   adrenal zone (20 mm below to 50 mm above a kidney's upper pole, 10 mm from the midline to
   15 mm lateral of the kidney centre, within 40 mm front-back; in the liver zone, where the
   right adrenal's blurred uptake spills into the liver, only 10 mm or more medial to the
   kidney centre and at most 20 mm in front of it) below
   ``adrenal_max_ratio_spleen`` x spleen (or kidney); on PET the uncinate-process zone
   (medial to the right kidney, 20-90 mm in front of it, within 40 mm of its height) below
   ``uncinate_max_ratio_liver`` x liver; with a fused CT, fluid density (at least
   ``_FLUID_MIN_FRACTION`` of the lesion core in [``fluid_hu_min``, ``fluid_hu_max``], or
   of the whole region when the core is under ``_FLUID_MIN_CORE_ML``; or the whole region's
   median HU in that window with less than ``_FLUID_MAX_FAT_SHARE`` of it fat: gallbladder,
   urine, bowel content).

Measurement (original grid): ``center_lps_mm`` is the centroid of the segmented region (not
the peak, which is reported separately as ``peak_lps_mm``); ``diameter_mm`` and
``volume_ml`` are those of the uniform sphere whose blurred image segments like the region
(the segmented region itself, ``segmented_volume_ml``, is smaller than the lesion near the
resolution limit; see the inversion below); ``peak`` is the mean of a sphere of
``peak_volume_ml`` (PERCIST's 1 mL SUVpeak sphere, 1.2 cm across) centred at the maximum of
the smoothed image (the hottest point: searching all positions for the highest sphere mean
would add a noise bias that grows with the lesion's size); ``background`` b is the local
background at the peak (the normal-liver level for lesions in the liver).

Partial volume. A uniform sphere of radius R blurred by an isotropic Gaussian of SD s
(FWHM = 2.3548 s) has, at distance r from its centre, the value (per unit concentration)

    p(r) = 1/2 [erf((R - r)/(s sqrt 2)) + erf((R + r)/(s sqrt 2))]
           + s / (r sqrt(2 pi)) [exp(-(R + r)^2 / 2s^2) - exp(-(R - r)^2 / 2s^2)],
    p(0) = erf(R/(s sqrt 2)) - sqrt(2/pi) (R/s) exp(-R^2 / 2s^2).

The recovery coefficient is p averaged over the peak sphere of radius r_p
(``sphere_peak_average``: 3/r_p^3 Int_0^r_p p(r) r^2 dr) or p(0) (``sphere_centre``). The
sphere's true radius is recovered from the segmented volume: the region above a fraction f
of the peak of a blurred sphere ends where p(r) = f p(0), a radius that grows monotonically
with R (from s sqrt(2 ln 1/f) for a point), so the measured radius is inverted through it
(with the segmentation image's blur, sqrt(s^2 + s_smooth^2)). The corrected uptake is
b + (peak - b) / RC: only the excess over the surrounding background is lost to blur. RC is
floored at 1 / ``max_correction_factor``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, optimize, special
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from octoscan.models.tomo_config import (
    TomoCTConfig,
    TomoDetectionConfig,
    TomoOrganConfig,
    TomoPVCConfig,
)
from octoscan.models.tomo_organs import (
    FWHM_TO_SIGMA,
    OrganMaps,
    ball,
    dilate_mm,
    distance_to_mm,
    erode_mm,
    gaussian_mm,
    lps_axes,
    voxel_volume_ml,
)
from octoscan.models.tomo_pairing import WorkingGrid

_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(48)
_SADDLE_FRACTION = 0.8  # a maximum joined to an organ above this fraction is the organ's
_HOTTER_THAN_ORGAN = 1.5  # ... unless it is this much hotter than the organ (75th percentile)
_CORE_FRACTION = 0.7  # lesion core (for CT values): above this fraction of the peak excess
_FLUID_MIN_FRACTION = 0.7  # share of core voxels in the fluid window that makes it fluid
_FLUID_MAX_FAT_SHARE = 0.1  # a water-dense region with less fat than this is fluid too
_FLUID_MIN_CORE_ML = 2.0  # smaller cores mix with their surroundings: the region is judged
_ADRENAL_ABOVE_MM = 50.0
_ADRENAL_BELOW_MM = 20.0
_ADRENAL_MEDIAL_MM = 10.0
_ADRENAL_LATERAL_EXTRA_MM = 15.0
_ZONE_DEPTH_MM = 40.0
_ADRENAL_AT_LIVER_FRONT_MM = 20.0  # at the liver: at most this far in front of the kidney centre
_ADRENAL_AT_LIVER_MEDIAL_MM = 10.0  # ... and at least this far medial to it
_UNCINATE_FRONT_MM = (20.0, 90.0)
_UNCINATE_MEDIAL_MM = (-15.0, 60.0)  # from the right kidney centre towards the midline
_MAX_ADRENAL_ML = 20.0
_MAX_UNCINATE_ML = 15.0
_MERGE_DIP_SD = 3.0  # two maxima joined by a pass less deep than this many noise SDs ...
_MERGE_DIP_FRACTION = 0.1  # ... or this share of the lower one's excess are one lesion
_CLIP_SD = 2.5  # local background: voxels this many local SDs above the local mean are dropped
_MIN_COVERAGE = 0.05  # share of background voxels a box needs for local statistics
_ACCESSORY_MAX_RATIO = 1.25  # a splenule is spleen tissue: never much hotter than the spleen
_LIVER_SPILL_FRACTION = 0.2  # a region this much in the liver zone is measured against liver
_LIVER_SHELL_FRACTION = 0.5  # share of a lesion's surroundings in liver that puts it "in liver"
_MARROW_LEVEL_PERCENTILE = 75.0  # normal marrow level: this percentile of the bone around a spot
_MARROW_MIN_VOXELS = 20  # fewer bone voxels around a spot: no marrow comparison
_TRACHEA_HALF_MM = 20.0  # air this close to the midline is trachea, not lung
_LUNG_APEX_ML = 10.0  # the lung apex: the height below which all but this much lung lies
_NECK_SEEN_MM = 60.0  # the thyroid bed is judged only when the body continues this far above it
_THYROID_BELOW_APEX_MM = 40.0  # thyroid bed: from this far below the lung apex ...
_THYROID_ABOVE_APEX_MM = 80.0  # ... to this far above it,
_THYROID_LATERAL_MM = 45.0  # within this distance of the midline, in the front half of the neck


# -------------------------------------------------------------------------------- PVC model


def sphere_profile(r_mm: np.ndarray | float, radius_mm: float, sigma_mm: float) -> np.ndarray:
    """p(r): a unit-concentration sphere of ``radius_mm`` blurred by a Gaussian of SD
    ``sigma_mm``, at distance ``r_mm`` from its centre (module docstring)."""
    r = np.abs(np.asarray(r_mm, dtype=np.float64))
    R, s = float(radius_mm), float(sigma_mm)
    if R <= 0.0:
        return np.zeros_like(r)
    if s <= 0.0:
        return (r <= R).astype(np.float64)
    root2 = math.sqrt(2.0)
    centre = special.erf(R / (s * root2)) - math.sqrt(2.0 / math.pi) * (R / s) * math.exp(
        -(R**2) / (2.0 * s**2)
    )
    small = r < 1e-4 * s
    rr = np.where(small, 1.0, r)
    value = 0.5 * (special.erf((R - rr) / (s * root2)) + special.erf((R + rr) / (s * root2))) + (
        s / (rr * math.sqrt(2.0 * math.pi))
    ) * (np.exp(-((R + rr) ** 2) / (2.0 * s**2)) - np.exp(-((R - rr) ** 2) / (2.0 * s**2)))
    return np.where(small, centre, value)


def recovery_centre(radius_mm: float, sigma_mm: float) -> float:
    """RC at the centre of a blurred sphere, p(0)."""
    return float(sphere_profile(0.0, radius_mm, sigma_mm))


def recovery_peak_average(radius_mm: float, sigma_mm: float, peak_radius_mm: float) -> float:
    """RC averaged over a concentric sphere of ``peak_radius_mm``: 3/r_p^3 Int p(r) r^2 dr."""
    if peak_radius_mm <= 0.0:
        return recovery_centre(radius_mm, sigma_mm)
    r = 0.5 * peak_radius_mm * (_GAUSS_NODES + 1.0)
    w = 0.5 * peak_radius_mm * _GAUSS_WEIGHTS
    integral = float(np.sum(w * sphere_profile(r, radius_mm, sigma_mm) * r**2))
    return 3.0 * integral / peak_radius_mm**3


def isocontour_radius(radius_mm: float, sigma_mm: float, fraction: float) -> float:
    """Radius where a blurred sphere falls to ``fraction`` of its central value."""
    if sigma_mm <= 0.0:
        return float(radius_mm)
    if radius_mm <= 0.0:
        return sigma_mm * math.sqrt(2.0 * math.log(1.0 / fraction))
    top = float(sphere_profile(0.0, radius_mm, sigma_mm))

    def f(r: float) -> float:
        return float(sphere_profile(r, radius_mm, sigma_mm)) - fraction * top

    hi = radius_mm + 10.0 * sigma_mm
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-6))


def sphere_radius_mm(volume_ml: float) -> float:
    """Radius (mm) of the sphere of ``volume_ml``."""
    return (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)


def sphere_radius_from_isocontour(measured_mm: float, sigma_mm: float, fraction: float) -> float:
    """Radius R of the uniform sphere whose ``fraction`` isocontour has radius ``measured_mm``
    after blurring by ``sigma_mm`` (0 when the measured region is no larger than a point's)."""
    if sigma_mm <= 0.0:
        return float(measured_mm)
    if measured_mm <= isocontour_radius(0.0, sigma_mm, fraction):
        return 0.0

    def f(R: float) -> float:
        return isocontour_radius(R, sigma_mm, fraction) - measured_mm

    hi = measured_mm + 10.0 * sigma_mm
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-4))


def recovery_coefficient(
    diameter_mm: float, fwhm_mm: float, *, model: str, peak_volume_ml: float
) -> float:
    """RC of a sphere of ``diameter_mm`` for a system of ``fwhm_mm`` (1.0 for model "none")."""
    if model == "none":
        return 1.0
    sigma = fwhm_mm * FWHM_TO_SIGMA
    if model == "sphere_centre":
        return recovery_centre(diameter_mm / 2.0, sigma)
    if model == "sphere_peak_average":
        r_p = sphere_radius_mm(peak_volume_ml)
        return recovery_peak_average(diameter_mm / 2.0, sigma, r_p)
    raise ValueError(f"recovery model {model!r}; expected sphere_peak_average, sphere_centre, none")


# -------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Finding:
    """A detected lesion, measured but not graded (units of the emission volume).

    ``center_lps_mm`` is the region's centroid, ``peak_lps_mm`` the centre of the peak sphere;
    ``diameter_mm`` and ``volume_ml`` describe the uniform sphere whose blurred image
    segments like the region (blur-corrected size, module docstring), ``segmented_volume_ml``
    the segmented region itself (smaller than the lesion for lesions near the resolution);
    ``peak`` the peak sphere's mean, ``max_value``/``mean_value`` the region's voxel maximum
    and mean on the original grid; ``background`` the background at the peak;
    ``recovery`` the recovery coefficient for a sphere of ``diameter_mm`` and
    ``corrected_peak`` = background + (peak - background) / recovery. ``mask`` (the
    segmented region) is on the emission grid. ``outline`` says where the region came from:
    "emission" (a hot spot) or "ct" (a hypodense liver lesion outlined on the fused CT,
    :mod:`octoscan.models.tomo_ct_lesions`).
    """

    center_lps_mm: tuple[float, float, float]
    peak_lps_mm: tuple[float, float, float]
    volume_ml: float
    diameter_mm: float
    segmented_volume_ml: float
    peak: float
    max_value: float
    mean_value: float
    background: float
    contrast: float
    z_score: float
    region: str
    in_liver: bool
    elongation: float
    recovery: float
    corrected_peak: float
    mask: np.ndarray = field(compare=False, repr=False)
    working_mask: np.ndarray = field(compare=False, repr=False)
    warnings: tuple[str, ...] = ()
    outline: str = "emission"


@dataclass(frozen=True)
class ExcludedFinding:
    """A hot spot not scored as a lesion, and why (``kind``: elongated, large_faint,
    accessory_spleen, adrenal, uncinate, fluid)."""

    kind: str
    reason: str
    center_lps_mm: tuple[float, float, float]
    volume_ml: float
    peak: float
    mask: np.ndarray = field(compare=False, repr=False)
    working_mask: np.ndarray = field(compare=False, repr=False)


@dataclass(frozen=True)
class DetectionResult:
    """Lesions found (strongest first), hot spots excluded, and the detection maps
    (working grid): smoothed image, background and noise SD."""

    findings: tuple[Finding, ...]
    excluded: tuple[ExcludedFinding, ...]
    liver_level: float | None
    smoothed: np.ndarray = field(compare=False, repr=False)
    background: np.ndarray = field(compare=False, repr=False)
    noise_sd: np.ndarray = field(compare=False, repr=False)
    warnings: tuple[str, ...] = ()


# -------------------------------------------------------------------------------- helpers


def _mad_sd(values: np.ndarray) -> float:
    if values.size < 2:
        return 0.0
    med = float(np.median(values))
    return 1.4826 * float(np.median(np.abs(values - med)))


def principal_axes(coords_mm: np.ndarray) -> tuple[float, float]:
    """(length mm, elongation) of a point cloud: sqrt(12 l1) and sqrt(l1 / l2)."""
    if len(coords_mm) < 4:
        return 0.0, 1.0
    cov = np.cov(coords_mm.T)
    ev = np.sort(np.clip(np.linalg.eigvalsh(cov), 0.0, None))[::-1]
    length = math.sqrt(12.0 * ev[0])
    elong = math.sqrt(ev[0] / ev[1]) if ev[1] > 0 else math.inf
    return length, elong


def _box(mask: np.ndarray, margin: int) -> tuple[slice, slice, slice]:
    sl = ndimage.find_objects(mask.astype(np.int8))[0]
    out = [
        slice(max(0, s.start - margin), min(n, s.stop + margin))
        for s, n in zip(sl, mask.shape, strict=True)
    ]
    return (out[0], out[1], out[2])


def peak_sphere_mean(
    native: np.ndarray, centre: np.ndarray, affine: np.ndarray, radius_mm: float
) -> float:
    """Mean of ``native`` over the ball of ``radius_mm`` around the voxel ``centre``."""
    spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    kernel = ball(radius_mm, (spacing[0], spacing[1], spacing[2]))
    half = np.array(kernel.shape) // 2
    lo = centre - half
    values = []
    for offset in np.argwhere(kernel):
        p = lo + offset
        if np.all(p >= 0) and np.all(p < np.asarray(native.shape)):
            values.append(float(native[tuple(p)]))
    return float(np.mean(values)) if values else float(native[tuple(centre)])


# -------------------------------------------------------------------------------- detection


def _local_background(
    s: np.ndarray, weight: np.ndarray, size: list[int]
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Sigma-clipped local mean and SD of ``s`` over ``weight`` voxels in a box of ``size``.

    Three passes of normalised box filtering; after each pass voxels more than ``_CLIP_SD``
    local SDs above the local mean (lesions, bowel) leave the weights. The SD therefore
    holds the background's noise *and* its structure (bowel loops, vessels), which is what a
    lesion has to stand out from. Where the box holds too few background voxels the global
    (clipped) values stand in. Returns (mean, sd, global mean, global sd).
    """
    x = np.asarray(s, dtype=np.float64)
    base = np.asarray(weight, dtype=bool)
    if base.sum() < 50:
        level = float(np.median(x[x > 0])) if np.any(x > 0) else 1.0
        z0 = np.zeros(x.shape, np.float32)
        return np.full(x.shape, level, np.float32), z0, level, 0.0
    w = base.astype(np.float64)
    mean = sd = coverage = np.zeros_like(x)
    g_mean = g_sd = 0.0
    for _ in range(3):
        coverage = ndimage.uniform_filter(w, size, mode="constant")
        safe = np.maximum(coverage, 1e-9)
        mean = ndimage.uniform_filter(x * w, size, mode="constant") / safe
        mean2 = ndimage.uniform_filter(x * x * w, size, mode="constant") / safe
        sd = np.sqrt(np.maximum(mean2 - mean * mean, 0.0))
        sel = w > 0
        g_mean, g_sd = float(x[sel].mean()), float(x[sel].std())
        clipped = base & (x <= mean + _CLIP_SD * sd)
        if clipped.sum() < 50:
            break
        w = clipped.astype(np.float64)
    sparse = coverage < _MIN_COVERAGE
    mean = np.where(sparse, g_mean, mean)
    sd = np.where(sparse, g_sd, sd)
    return mean.astype(np.float32), sd.astype(np.float32), g_mean, g_sd


def grow_box(box: tuple[slice, ...], by: int, shape: tuple[int, ...]) -> tuple[slice, slice, slice]:
    out = [
        slice(max(0, int(b.start) - by), min(n, int(b.stop) + by))
        for b, n in zip(box, shape, strict=True)
    ]
    return (out[0], out[1], out[2])


def detect_lesions(
    image: np.ndarray,
    grid: WorkingGrid,
    organs: OrganMaps,
    native: np.ndarray,
    *,
    fwhm_mm: float,
    is_pet: bool,
    detection: TomoDetectionConfig,
    organ_cfg: TomoOrganConfig,
    ct_cfg: TomoCTConfig,
    pvc: TomoPVCConfig,
) -> DetectionResult:
    """Find, segment, screen and measure lesions (module docstring).

    ``image`` is the emission volume on the working ``grid``, ``native`` on its original grid
    (same units); ``organs`` from :func:`~octoscan.models.tomo_organs.locate_organs`;
    ``fwhm_mm`` the system resolution. Findings are ordered by decreasing peak.
    """
    spacing = grid.spacing_mm
    affine = grid.affine
    vox_ml = voxel_volume_ml(spacing)
    body = organs.body
    messages: list[str] = []
    smooth_fwhm = detection.smoothing_fwhm_fraction * fwhm_mm
    s = gaussian_mm(np.maximum(image, 0.0), smooth_fwhm, spacing)
    floor = organ_cfg.body_threshold_fraction * body.soft_tissue_level

    physio = organs.physiological_mask()
    liver_level: float | None = None
    liver_sd = 0.0
    liver_zone = np.zeros(s.shape, dtype=bool)
    if organs.liver is not None and organs.liver_hull is not None:
        core = erode_mm(organs.liver, fwhm_mm / 2.0, spacing)
        if core.sum() < 20:
            core = organs.liver
        liver_level = float(np.median(s[core]))
        liver_sd = _mad_sd(s[core])
        liver_zone = dilate_mm(organs.liver_hull, fwhm_mm / 2.0, spacing)

    # background: body outside organs and below organ-level uptake (a large lesion must not
    # raise its own background)
    cut = (
        liver_level
        if liver_level is not None
        else organ_cfg.organ_threshold_factor * body.soft_tissue_level
    )
    near_organs = dilate_mm(physio, fwhm_mm, spacing) if physio.any() else physio
    weight = body.mask & ~near_organs & ~liver_zone & (s < cut)
    size = [max(1, round(detection.background_size_mm / sp)) | 1 for sp in spacing]
    bg, sd, _, g_sd = _local_background(s, weight, size)
    if liver_level is not None:
        bg = np.where(liver_zone, np.float32(liver_level), bg)
        sd = np.where(liver_zone, np.float32(max(liver_sd, 1e-12)), sd)
    sd = np.maximum(sd, np.float32(max(0.1 * g_sd, 1e-9 * max(float(s.max()), 1.0))))
    if liver_level is not None and liver_level > 0.0 and detection.level_noise_exponent > 0.0:
        # emission noise grows with the level: outside the liver the local SD is measured in
        # tissue at the background's level, below a hot spot's own; take at least the noise
        # the liver's measured SD predicts at the spot's level
        level_sd = np.float32(liver_sd) * (np.maximum(s, 0.0) / np.float32(liver_level)) ** (
            np.float32(detection.level_noise_exponent)
        )
        sd = np.where(liver_zone, sd, np.maximum(sd, level_sd))
    bg_eff = np.maximum(bg, np.float32(floor))
    excess = s - bg
    z = excess / sd
    contrast = excess / bg_eff

    md = max(1, round(detection.min_peak_distance_mm / max(spacing)))
    peaks = peak_local_max(
        s, min_distance=md, labels=body.mask.astype(np.int32), exclude_border=False
    )
    keep: list[tuple[int, int, int]] = []
    for p in peaks:
        t = (int(p[0]), int(p[1]), int(p[2]))
        if physio[t]:
            continue
        if z[t] < detection.min_z_score or contrast[t] < detection.min_contrast:
            continue
        if (
            liver_level is not None
            and liver_zone[t]
            and s[t] < detection.min_liver_lesion_ratio * liver_level
        ):
            continue
        keep.append(t)

    # watershed with the organs as markers, so that a lesion stops where an organ starts
    markers = np.zeros(s.shape, dtype=np.int32)
    for k, t in enumerate(keep, start=1):
        markers[t] = k
    organ_masks = [m for m in (organs.spleen, organs.bladder, *organs.kidneys) if m is not None]
    organ_levels: dict[int, float] = {}
    for j, m in enumerate(organ_masks, start=len(keep) + 1):
        markers[m & (markers == 0)] = j
        organ_levels[j] = float(np.percentile(s[m], 75.0))
    if keep:
        region_mask = body.mask & ((excess > 0) | physio)
        basins = np.asarray(watershed(-s, markers, mask=region_mask), dtype=np.int32)
        _merge_plateau_maxima(basins, s, keep, sd, bg)
    else:
        basins = np.zeros(s.shape, dtype=np.int32)
    boxes = ndimage.find_objects(basins)

    spleen_level = float(np.median(s[organs.spleen])) if organs.spleen is not None else None
    spleen_dist = (
        distance_to_mm(organs.spleen, spacing, max_mm=organ_cfg.accessory_spleen_max_distance_mm)
        if organs.spleen is not None
        else None
    )
    kidney_info = kidney_landmarks(organs.kidneys, s, affine)
    grade4_level = spleen_level
    if grade4_level is None and kidney_info:
        grade4_level = max(k[2] for k in kidney_info)
    bone = (organs.ct_hu >= ct_cfg.bone_hu_min) & body.mask if organs.ct_hu is not None else None
    context = _Context(
        s=s,
        bg=bg,
        excess=excess,
        liver=organs.liver,
        liver_level=liver_level,
        spleen_level=spleen_level,
        spleen_dist=spleen_dist,
        grade4_level=grade4_level,
        kidney_info=kidney_info,
        body_mid=body.midline_x_mm,
        ct_hu=organs.ct_hu,
        bone=bone,
        thyroid_zone=_thyroid_zone(organs, ct_cfg, spacing, affine),
        fwhm_mm=fwhm_mm,
        spacing=spacing,
        is_pet=is_pet,
        detection=detection,
        organ_cfg=organ_cfg,
        ct_cfg=ct_cfg,
        vox_ml=vox_ml,
    )
    sigma_sys = fwhm_mm * FWHM_TO_SIGMA
    sigma_seg = math.sqrt(sigma_sys**2 + (smooth_fwhm * FWHM_TO_SIGMA) ** 2)
    peak_radius = sphere_radius_mm(detection.peak_volume_ml)
    native_affine = grid.native_affine
    native_spacing = np.linalg.norm(native_affine[:3, :3], axis=0)
    native_vox = float(np.prod(native_spacing)) / 1000.0
    reach = 2 * max(1, math.ceil(fwhm_mm / min(spacing))) + 1
    peak_reach = [
        math.ceil(peak_radius / (sp * f)) + 1
        for sp, f in zip(native_spacing, grid.factors, strict=True)
    ]

    findings: list[Finding] = []
    excluded: list[ExcludedFinding] = []
    for k, t in enumerate(keep, start=1):
        if boxes[k - 1] is None:
            continue
        box = grow_box(boxes[k - 1], max(reach, *peak_reach), s.shape)
        off = np.array([b.start for b in box])
        lt = tuple(int(v) for v in np.asarray(t) - off)
        sub_basins = basins[box]
        basin = sub_basins == k
        local_bg = float(bg[t])
        region = _segment(s[box], basin, lt, local_bg, detection.segmentation_fraction)
        if region is None:
            continue
        if (
            liver_level is not None
            and not liver_zone[t]
            and float(liver_zone[box][region].mean()) > _LIVER_SPILL_FRACTION
        ):
            # a hot spot at the liver's edge (or a gallbladder) seen against soft tissue would
            # grow into the liver: measure it against liver instead
            if (
                float(s[t]) < detection.min_liver_lesion_ratio * liver_level
                or (float(s[t]) - liver_level) / max(liver_sd, 1e-12) < detection.min_z_score
            ):
                continue
            local_bg = liver_level
            region = _segment(s[box], basin, lt, local_bg, detection.segmentation_fraction)
            if region is None:
                continue
        volume = float(region.sum()) * vox_ml
        if volume < detection.min_volume_ml:
            continue
        # shoulder of an organ: joined to it by a high saddle
        touching = ndimage.binary_dilation(basin) & (sub_basins > len(keep))
        if touching.any():
            rim = basin & ndimage.binary_dilation(touching)
            organ_level = max(organ_levels[int(v)] for v in np.unique(sub_basins[touching]))
            if (
                rim.any()
                and float(s[box][rim].max()) >= _SADDLE_FRACTION * float(s[t])
                and float(s[t]) <= _HOTTER_THAN_ORGAN * organ_level
            ):
                continue
        idx = np.argwhere(region) + off
        pts = idx @ affine[:3, :3].T + affine[:3, 3]
        centre = pts.mean(axis=0)
        # the region or the plateau it sits on (several maxima of one bowel loop) elongated
        length, elong = principal_axes(pts)
        p_length, p_elong, p_volume = _plateau_shape(
            s, physio, t, local_bg, detection, spacing, affine
        )
        if p_length >= detection.elongated_min_length_mm and p_elong >= elong:
            length, elong = p_length, p_elong
        centre_t = (float(centre[0]), float(centre[1]), float(centre[2]))
        in_liver = _in_liver(region, box, organs, liver_zone, spacing, fwhm_mm)
        native_box = grid.native_box(box)
        native_region = grid.expand_box(region)
        # the peak sphere sits at the maximum of the smoothed image: choosing the best of
        # many noisy sphere positions would bias the peak upwards with the lesion's size
        peak_idx = np.clip(
            np.round(grid.to_native_index(np.asarray(t))).astype(int),
            0,
            np.asarray(grid.native_shape) - 1,
        )
        peak = peak_sphere_mean(native, peak_idx, native_affine, peak_radius)
        peak_lps = peak_idx @ native_affine[:3, :3].T + native_affine[:3, 3]
        reason = _exclusion(
            context,
            t,
            region,
            box,
            volume,
            length,
            elong,
            centre,
            in_liver,
            local_bg,
            plateau_ml=max(volume, p_volume),
        )
        if reason is not None:
            excluded.append(
                ExcludedFinding(
                    reason[0],
                    reason[1],
                    centre_t,
                    volume,
                    peak,
                    _full(native_region, native_box, grid.native_shape),
                    _full(region, box, s.shape),
                )
            )
            continue
        region_name = _region_name(context, region, box, t, in_liver, local_bg)
        values = np.asarray(native[native_box], dtype=np.float64)[native_region]
        native_volume = float(native_region.sum()) * native_vox
        r_seg = sphere_radius_mm(native_volume)
        radius_true = sphere_radius_from_isocontour(
            r_seg, sigma_seg, detection.segmentation_fraction
        )
        size_notes: list[str] = []
        if radius_true <= 0.0:
            size_notes.append("smaller than the resolution can size: diameter set to one voxel")
        radius_true = max(radius_true, 0.5 * float(native_spacing.min()))
        rc = recovery_coefficient(
            2.0 * radius_true,
            fwhm_mm,
            model=pvc.recovery_model,
            peak_volume_ml=detection.peak_volume_ml,
        )
        notes: list[str] = list(size_notes)
        floor_rc = 1.0 / pvc.max_correction_factor
        if rc < floor_rc:
            notes.append(
                f"recovery coefficient {rc:.2f} below 1/{pvc.max_correction_factor:g}: "
                "correction capped (lesion small against the resolution)"
            )
            rc = floor_rc
        b = float(liver_level) if in_liver and liver_level is not None else local_bg
        corrected = b + (peak - b) / rc if peak > b else peak
        findings.append(
            Finding(
                center_lps_mm=centre_t,
                peak_lps_mm=(float(peak_lps[0]), float(peak_lps[1]), float(peak_lps[2])),
                volume_ml=4.0 / 3.0 * math.pi * radius_true**3 / 1000.0,
                diameter_mm=2.0 * radius_true,
                segmented_volume_ml=native_volume,
                peak=peak,
                max_value=float(values.max()),
                mean_value=float(values.mean()),
                background=b,
                contrast=float(contrast[t]),
                z_score=float(z[t]),
                region=region_name,
                in_liver=in_liver,
                elongation=float(elong),
                recovery=rc,
                corrected_peak=float(corrected),
                mask=_full(native_region, native_box, grid.native_shape),
                working_mask=_full(region, box, s.shape),
                warnings=tuple(notes),
            )
        )
    findings.sort(key=lambda f: -f.peak)
    return DetectionResult(
        findings=tuple(findings),
        excluded=tuple(excluded),
        liver_level=liver_level,
        smoothed=s,
        background=bg,
        noise_sd=sd,
        warnings=tuple(messages),
    )


def _merge_plateau_maxima(
    basins: np.ndarray,
    s: np.ndarray,
    keep: Sequence[tuple[int, int, int]],
    sd: np.ndarray,
    bg: np.ndarray,
) -> None:
    """Merge, in place, the basin of a candidate into its neighbour's when the pass between
    them dips less than max(``_MERGE_DIP_SD`` noise SDs, ``_MERGE_DIP_FRACTION`` of the
    lower peak's excess) below the lower peak: two maxima of one plateau (a large lesion
    seen at a fine resolution), not two lesions. Candidate labels are 1..len(keep); a merged
    label is left without voxels."""
    n = len(keep)
    if n < 2:
        return
    # highest pass between each pair of touching candidate basins (pair key i * (n + 1) + j)
    best = np.full((n + 1) * (n + 1), -np.inf)
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        a, b = basins[tuple(lo)], basins[tuple(hi)]
        m = (a != b) & (a > 0) & (b > 0) & (a <= n) & (b <= n)
        if m.any():
            key = np.minimum(a[m], b[m]).astype(np.int64) * (n + 1) + np.maximum(a[m], b[m])
            np.maximum.at(best, key, np.minimum(s[tuple(lo)][m], s[tuple(hi)][m]))
    keys = np.flatnonzero(np.isfinite(best))
    saddle = {(int(k) // (n + 1), int(k) % (n + 1)): float(best[k]) for k in keys}
    parent = list(range(n + 1))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    peak = [0.0] + [float(s[t]) for t in keep]
    for (i, j), v in sorted(saddle.items(), key=lambda item: -item[1]):
        ri, rj = root(i), root(j)
        if ri == rj:
            continue
        low = ri if peak[ri] <= peak[rj] else rj
        t = keep[low - 1]
        dip = peak[low] - v
        allowed = max(
            _MERGE_DIP_SD * float(sd[t]), _MERGE_DIP_FRACTION * (peak[low] - float(bg[t]))
        )
        if dip < allowed:
            parent[low] = rj if low == ri else ri
    mapping = np.arange(basins.max() + 1, dtype=np.int32)
    for k in range(1, n + 1):
        mapping[k] = root(k)
    basins[...] = mapping[basins]


def _plateau_shape(
    s: np.ndarray,
    physio: np.ndarray,
    t: tuple[int, int, int],
    background: float,
    detection: TomoDetectionConfig,
    spacing: tuple[float, float, float],
    affine: np.ndarray,
) -> tuple[float, float, float]:
    """(length mm, axis ratio, volume mL) of the plateau a maximum sits on: everything
    connected to it above the segmentation threshold outside the organs, whichever maximum it
    belongs to (a bowel loop or the cardiac blood pool holds several maxima; each alone looks
    round and small). Searched within 2 x ``elongated_min_length_mm`` of the maximum."""
    reach = [math.ceil(2.0 * detection.elongated_min_length_mm / sp) for sp in spacing]
    box = tuple(
        slice(max(0, c - r), min(n, c + r + 1)) for c, r, n in zip(t, reach, s.shape, strict=True)
    )
    threshold = background + detection.segmentation_fraction * (float(s[t]) - background)
    lab, _ = ndimage.label((s[box] >= threshold) & ~physio[box])
    local = tuple(c - b.start for c, b in zip(t, box, strict=True))
    if lab[local] == 0:
        return 0.0, 1.0, 0.0
    idx = np.argwhere(lab == lab[local]) + np.array([b.start for b in box])
    length, elong = principal_axes(idx @ affine[:3, :3].T + affine[:3, 3])
    return length, elong, float(len(idx)) * voxel_volume_ml(spacing)


def _segment(
    s: np.ndarray, basin: np.ndarray, t: tuple[int, ...], background: float, fraction: float
) -> np.ndarray | None:
    """Connected part of ``basin`` around ``t`` above ``fraction`` of the peak's excess over
    ``background`` (None when the peak itself falls out)."""
    threshold = background + fraction * (float(s[t]) - background)
    lab, _ = ndimage.label(basin & (s >= threshold))
    if lab[t] == 0:
        return None
    return np.asarray(lab == lab[t])


def _full(sub: np.ndarray, box: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    out[box] = sub
    return out


def _in_liver(
    region: np.ndarray,
    box: tuple[slice, ...],
    organs: OrganMaps,
    liver_zone: np.ndarray,
    spacing: tuple[float, float, float],
    fwhm_mm: float,
) -> bool:
    """Inside the liver: mostly in the liver hull, or the liver zone (hull grown by half a
    FWHM) makes up at least ``_LIVER_SHELL_FRACTION`` of the organ-level tissue in a shell
    1-2 FWHM around the region (beyond the lesion's own spill-out, which keeps very hot
    lesions and their surroundings out of the liver outline)."""
    if organs.liver is None or organs.liver_hull is None:
        return False
    hull = organs.liver_hull[box]
    if float(hull[region].mean()) >= 0.5:
        return True
    inner = dilate_mm(region, fwhm_mm, spacing)
    outer = dilate_mm(region, 2.0 * fwhm_mm, spacing)
    shell = outer & ~inner & organs.body.mask[box]
    organ_level = shell & (organs.organ_image[box] > organs.organ_level)
    if not organ_level.any():
        return False
    return float(liver_zone[box][organ_level].mean()) >= _LIVER_SHELL_FRACTION


@dataclass(frozen=True)
class _Context:
    """Detection maps and organ facts the exclusion and naming rules read."""

    s: np.ndarray
    bg: np.ndarray
    excess: np.ndarray
    liver: np.ndarray | None
    liver_level: float | None
    spleen_level: float | None
    spleen_dist: np.ndarray | None
    grade4_level: float | None
    kidney_info: list[tuple[np.ndarray, float, float]]
    body_mid: float
    ct_hu: np.ndarray | None
    bone: np.ndarray | None
    thyroid_zone: np.ndarray | None
    fwhm_mm: float
    spacing: tuple[float, float, float]
    is_pet: bool
    detection: TomoDetectionConfig
    organ_cfg: TomoOrganConfig
    ct_cfg: TomoCTConfig
    vox_ml: float


def _core(
    ctx: _Context,
    region: np.ndarray,
    box: tuple[slice, ...],
    t: tuple[int, int, int],
    background: float,
) -> np.ndarray:
    """The region above ``_CORE_FRACTION`` of the peak's excess over ``background``."""
    peak = float(ctx.s[t])
    core = region & (ctx.s[box] >= background + _CORE_FRACTION * (peak - background))
    return core if core.any() else region


def _marrow(
    ctx: _Context,
    t: tuple[int, int, int],
    region: np.ndarray,
    box: tuple[slice, ...],
    background: float,
) -> str | None:
    """Why a spot in bone (fused CT) is normal marrow, or None: its peak must stand out from
    the bone around it (the ``_MARROW_LEVEL_PERCENTILE`` of the smoothed uptake over CT bone
    within ``background_size_mm`` / 2, one FWHM away from the spot) by ``min_contrast`` and by
    ``min_z_score`` robust SDs of that bone uptake, as other spots must stand out from soft
    tissue. Marrow takes up SSTR tracers a little (68Ga-DOTATATE SUV about 1-2), more than fat
    and muscle beside it, so against soft tissue every thick bone would stand out."""
    if ctx.bone is None or ctx.ct_hu is None:
        return None
    core = _core(ctx, region, box, t, background)
    if float(np.median(ctx.ct_hu[box][core])) < ctx.ct_cfg.bone_hu_min:
        return None
    half = [max(1, round(ctx.detection.background_size_mm / 2.0 / sp)) for sp in ctx.spacing]
    win = tuple(
        slice(max(0, c - h), min(n, c + h + 1))
        for c, h, n in zip(t, half, ctx.s.shape, strict=True)
    )
    spot = np.zeros(ctx.s.shape, dtype=bool)
    spot[box] = region
    near = dilate_mm(spot[win], ctx.fwhm_mm, ctx.spacing)
    ref = ctx.bone[win] & ~near
    if int(ref.sum()) < _MARROW_MIN_VOXELS:
        return None
    values = ctx.s[win][ref]
    level = float(np.percentile(values, _MARROW_LEVEL_PERCENTILE))
    spread = max(_mad_sd(values), 1e-9 * max(level, 1.0))
    peak = float(ctx.s[t])
    if level <= 0.0:
        return None
    contrast = (peak - level) / level
    z = (peak - level) / spread
    if contrast >= ctx.detection.min_contrast and z >= ctx.detection.min_z_score:
        return None
    return f"(peak {peak / level:.2f} x the surrounding bone, {z:.1f} SD above it)"


def _thyroid_zone(
    organs: OrganMaps,
    ct_cfg: TomoCTConfig,
    spacing: tuple[float, float, float],
    affine: np.ndarray,
) -> np.ndarray | None:
    """The thyroid bed on the working grid (fused CT only), or None: from
    ``_THYROID_BELOW_APEX_MM`` below to ``_THYROID_ABOVE_APEX_MM`` above the lung apex (the
    height below which all but ``_LUNG_APEX_ML`` of lung lies; air within
    ``_TRACHEA_HALF_MM`` of the midline is trachea), within ``_THYROID_LATERAL_MM`` of the
    midline and in front of the neck's median depth. Only when the lungs end inside the field
    and the body continues at least ``_NECK_SEEN_MM`` above their apex (the neck is imaged)."""
    if organs.ct_hu is None:
        return None
    body = organs.body.mask
    x, y, z = (np.broadcast_to(a, body.shape) for a in lps_axes(body.shape, affine))
    mid = organs.body.midline_x_mm
    lung = body & (organs.ct_hu <= ct_cfg.lung_hu_max) & (np.abs(x - mid) > _TRACHEA_HALF_MM)
    vox = voxel_volume_ml(spacing)
    n_apex = math.ceil(_LUNG_APEX_ML / vox)
    if int(lung.sum()) <= 5 * n_apex:
        return None
    zl = np.sort(z[lung])[::-1]
    apex = float(zl[n_apex])
    if float(z[body].max()) < apex + _NECK_SEEN_MM:
        return None
    band = body & (z >= apex - _THYROID_BELOW_APEX_MM) & (z <= apex + _THYROID_ABOVE_APEX_MM)
    if not band.any():
        return None
    neck_y = float(np.median(y[band]))
    return band & (np.abs(x - mid) <= _THYROID_LATERAL_MM) & (y <= neck_y)


def _region_name(
    ctx: _Context,
    region: np.ndarray,
    box: tuple[slice, ...],
    t: tuple[int, int, int],
    in_liver: bool,
    background: float,
) -> str:
    """ "bone", "lung" (fused CT), "liver", or "soft tissue" (CT) / "extrahepatic"."""
    if ctx.ct_hu is not None:
        hu = float(np.median(ctx.ct_hu[box][_core(ctx, region, box, t, background)]))
        if hu >= ctx.ct_cfg.bone_hu_min:
            return "bone"
        if hu <= ctx.ct_cfg.lung_hu_max:
            return "lung"
    if in_liver:
        return "liver"
    return "soft tissue" if ctx.ct_hu is not None else "extrahepatic"


def kidney_landmarks(
    kidneys: Sequence[np.ndarray], s: np.ndarray, affine: np.ndarray
) -> list[tuple[np.ndarray, float, float]]:
    """(centre LPS mm, top z mm, median uptake of ``s``) of each kidney mask."""
    _, _, z_ax = lps_axes(s.shape, affine)
    out = []
    for kmask in kidneys:
        centre = np.argwhere(kmask).mean(axis=0) @ affine[:3, :3].T + affine[:3, 3]
        top = float(np.broadcast_to(z_ax, s.shape)[kmask].max())
        out.append((centre, top, float(np.median(s[kmask]))))
    return out


def adrenal_zone_side(
    centre: np.ndarray | Sequence[float],
    kidney_info: Sequence[tuple[np.ndarray, float, float]],
    body_mid_x_mm: float,
    *,
    at_liver: bool = False,
) -> str | None:
    """Side ("left"/"right") when the LPS point lies in the adrenal zone above that kidney
    (module docstring, step 5), else None. ``at_liver``: a spot in the liver zone counts only
    in the part of the zone at least ``_ADRENAL_AT_LIVER_MEDIAL_MM`` medial to the kidney's
    centre and no more than ``_ADRENAL_AT_LIVER_FRONT_MM`` in front of it (where the right
    adrenal meets the liver's bare area; the rest of the zone is posterior right lobe)."""
    lateral = float(centre[0] - body_mid_x_mm)
    for k_centre, k_top, _ in kidney_info:
        k_lat = float(k_centre[0] - body_mid_x_mm)
        lateral_limit = abs(k_lat) + (
            -_ADRENAL_AT_LIVER_MEDIAL_MM if at_liver else _ADRENAL_LATERAL_EXTRA_MM
        )
        front = float(k_centre[1] - centre[1])  # LPS: +y is posterior
        if (
            lateral * k_lat > 0
            and k_top - _ADRENAL_BELOW_MM <= float(centre[2]) <= k_top + _ADRENAL_ABOVE_MM
            and _ADRENAL_MEDIAL_MM <= abs(lateral) <= lateral_limit
            and abs(front) <= _ZONE_DEPTH_MM
            and (not at_liver or front <= _ADRENAL_AT_LIVER_FRONT_MM)
        ):
            return "left" if k_lat > 0 else "right"
    return None


def _exclusion(
    ctx: _Context,
    t: tuple[int, int, int],
    region: np.ndarray,
    box: tuple[slice, ...],
    volume: float,
    length: float,
    elong: float,
    centre: np.ndarray,
    in_liver: bool,
    background: float,
    *,
    plateau_ml: float,
) -> tuple[str, str] | None:
    """(kind, reason) when the hot spot is physiological by the rules of the module doc."""
    det, org = ctx.detection, ctx.organ_cfg
    peak = float(ctx.s[t])
    where = f"hot spot of {volume:.1f} mL"
    if length >= det.elongated_min_length_mm and elong >= det.elongated_min_ratio:
        return "elongated", (
            f"{where} is elongated ({length:.0f} mm long, axis ratio {elong:.1f}): bowel-like, "
            "not scored"
        )
    if (
        plateau_ml >= det.large_faint_min_volume_ml
        and ctx.liver_level is not None
        and peak < ctx.liver_level
    ):
        return "large_faint", (
            f"{where} on a plateau of {plateau_ml:.0f} mL below liver uptake: a large moderately "
            "avid structure (blood pool, stomach or bowel), not scored"
        )
    marrow = _marrow(ctx, t, region, box, background)
    if marrow is not None:
        return "marrow", f"{where} in bone on CT {marrow}: physiological marrow uptake, not scored"
    if (
        ctx.thyroid_zone is not None
        and ctx.thyroid_zone[t]
        and ctx.liver_level is not None
        and peak < det.thyroid_max_ratio_liver * ctx.liver_level
    ):
        return "thyroid", (
            f"{where} in the thyroid bed (neck, in front of the trachea, near the lung apices on "
            f"CT) below {det.thyroid_max_ratio_liver:g} x liver: physiological thyroid uptake; "
            "review if a thyroid or cervical lesion is suspected"
        )
    if ctx.spleen_level is not None and ctx.spleen_dist is not None and not in_liver:
        dist = float(ctx.spleen_dist[box][region].min())
        if (
            volume <= org.accessory_spleen_max_volume_ml
            and dist <= org.accessory_spleen_max_distance_mm
            and peak >= org.accessory_spleen_min_ratio_spleen * ctx.spleen_level
            and peak <= _ACCESSORY_MAX_RATIO * ctx.spleen_level
        ):
            return "accessory_spleen", (
                f"{where} {dist:.0f} mm from the spleen with spleen-like uptake "
                f"({peak / ctx.spleen_level:.2f} x spleen): taken as an accessory spleen; "
                "review if a pancreatic-tail or splenic-hilum lesion is suspected"
            )
    if ctx.grade4_level is not None and volume <= _MAX_ADRENAL_ML:
        # the right adrenal abuts the liver: blurred, it spills into the liver zone, where
        # only the part of the zone medial to and behind the kidney's centre counts
        side = adrenal_zone_side(centre, ctx.kidney_info, ctx.body_mid, at_liver=in_liver)
        if side is not None and peak < det.adrenal_max_ratio_spleen * ctx.grade4_level:
            return "adrenal", (
                f"{where} in the adrenal zone above the {side} kidney"
                + (" at the liver's edge" if in_liver else "")
                + f", below {det.adrenal_max_ratio_spleen:g} x spleen: taken as physiological "
                "adrenal uptake; review if an adrenal lesion is suspected"
            )
    if ctx.is_pet and ctx.liver_level is not None and not in_liver and volume <= _MAX_UNCINATE_ML:
        for k_centre, _, _ in ctx.kidney_info:
            if float(k_centre[0] - ctx.body_mid) >= 0:
                continue
            medial = float(centre[0] - k_centre[0])
            front = float(k_centre[1] - centre[1])
            if (
                _UNCINATE_MEDIAL_MM[0] <= medial <= _UNCINATE_MEDIAL_MM[1]
                and _UNCINATE_FRONT_MM[0] <= front <= _UNCINATE_FRONT_MM[1]
                and abs(float(centre[2] - k_centre[2])) <= _ZONE_DEPTH_MM
                and peak < det.uncinate_max_ratio_liver * ctx.liver_level
            ):
                return "uncinate", (
                    f"{where} at the uncinate process of the pancreas below "
                    f"{det.uncinate_max_ratio_liver:g} x liver: taken as physiological; "
                    "review if a pancreatic-head lesion is suspected"
                )
    if ctx.ct_hu is not None:
        core = _core(ctx, region, box, t, background)
        # a faint spot's core is small: its whole region is judged instead (a node in fat
        # is not fluid by this test: its rim holds fat, below the fluid window)
        judged = core if core.sum() * ctx.vox_ml >= _FLUID_MIN_CORE_ML else region
        if judged.sum() * ctx.vox_ml >= _FLUID_MIN_CORE_ML:
            hu = ctx.ct_hu[box][judged]
            fluid = (hu >= ctx.ct_cfg.fluid_hu_min) & (hu <= ctx.ct_cfg.fluid_hu_max)
            # or the whole region water-dense at its median with almost no fat in it (a
            # bowel loop's content; a node in fat has fat in its blurred region)
            whole = ctx.ct_hu[box][region]
            water_like = (
                ctx.ct_cfg.fluid_hu_min <= float(np.median(whole)) <= ctx.ct_cfg.fluid_hu_max
                and float(np.mean(whole < ctx.ct_cfg.fluid_hu_min)) < _FLUID_MAX_FAT_SHARE
            )
            if float(fluid.mean()) >= _FLUID_MIN_FRACTION or water_like:
                return "fluid", (
                    f"{where} of fluid density on CT (median {float(np.median(hu)):.0f} HU): "
                    "gallbladder, urine or bowel content, not scored"
                )
    return None
