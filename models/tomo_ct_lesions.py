"""Liver lesions outlined on the fused CT, measured on the emission volume.

A neuroendocrine liver metastasis that takes up little tracer does not stand out on the
emission image, yet it decides PRRT: the uptake criterion asks that every target lesion (a
lesion measurable on CT) reach at least normal-liver uptake (DESIGN.md section 2), and a
lesion that does not is the mismatch a reader looks for on SPECT/CT and PET/CT. With a fused
CT, hypodense foci inside the liver are outlined on CT; when ``report_without_uptake`` is set
(off by default, see below), those that are not hot spots have their uptake measured on the
emission volume inside that outline and are graded like any other lesion (usually Krenning
1-2, which sends an otherwise eligible study to review, with the lesion named). With
``review_without_uptake`` (the default) they are measured and graded the same way but kept
out of the lesions: :func:`octoscan.models.tomo_score.score_tomographic` sends the study to
review, naming them, when counting them would change the imaging decision.

The same CT outline sizes a hot liver lesion it coincides with: its partial-volume correction
then uses the CT diameter, not the size inverted from the blurred emission image, which
cannot separate size from uptake near the resolution limit.

Steps (``[tomo.ct_lesions]``; working grid, HU; :func:`outline_ct_liver_lesions`):

1. The CT on the working grid is smoothed by ``smoothing_fwhm_mm``; normal liver is the
   median HU of the CT liver (the liver window of ``[tomo.ct]``, which a hypodense lesion
   leaves out) eroded by one voxel, its noise the robust SD (1.4826 MAD) there.
2. Candidates lie inside the liver envelope (the CT liver closed by ``envelope_closing_mm``
   and filled, so that a lesion replacing liver at its surface is inside; eroded by one
   voxel), at least ``min_contrast_hu`` and ``min_contrast_sd`` noise SDs below normal
   liver, and above the fluid window of ``[tomo.ct]`` (cysts and the gallbladder are fluid:
   benign).
3. Each candidate grows to its own half-contrast isocontour (normal liver minus half the
   difference to its 10th-percentile HU; the half-contrast isocontour of a blurred edge lies
   on the edge); overlapping isocontours are one lesion. Its volume is the partial-volume
   sum of (liver HU - HU) / contrast over the region grown by one voxel (the contrast:
   normal liver minus the median HU of the region's core, or its minimum when it has no
   core), which does not depend on where the voxel grid cuts the lesion.
4. Kept when the volume-equivalent diameter reaches ``min_sizing_diameter_mm``, the
   elongation (principal-axis ratio) stays below ``max_elongation`` (vessels are tubes), the
   mean HU lies above the fluid window, no more than half of it lies within
   ``fluid_margin_mm`` of fluid (the partial-volume rim of the gallbladder or a cyst), its
   centre lies outside the adrenal zone above a kidney
   (:func:`~octoscan.models.tomo_lesions.adrenal_zone_side`: the adrenal gland), and at least
   ``min_liver_shell_fraction`` of a shell of ``shell_mm`` around it is CT liver (the
   envelope also takes in the concavities where the adrenal, gallbladder, kidney and bowel
   touch the liver).

Measurement: a CT lesion that overlaps an emission finding is that finding (its size is
replaced by the CT's when ``size_hot_lesions`` and their centres agree). One that does not
becomes a finding of its own only when ``report_without_uptake`` is set and it reaches
``min_diameter_mm`` (off by default: on the phantoms' unenhanced CT the search also outlines
the pancreatic head, bowel and abdominal wall where they touch the liver). Its ``peak`` is
the mean of the peak sphere (``tomo.detection.peak_volume_ml``) centred at the lesion's
deepest point (farthest from its outline), its background the normal-liver level, and the
partial-volume correction uses the CT diameter in both directions (blur from the liver
around raises a cold lesion's uptake: corrected = b + (peak - b) / RC, not below 0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from octoscan.models.tomo_config import TomoCTConfig, TomoCTLesionConfig, TomoPVCConfig
from octoscan.models.tomo_lesions import (
    DetectionResult,
    Finding,
    adrenal_zone_side,
    grow_box,
    kidney_landmarks,
    peak_sphere_mean,
    principal_axes,
    recovery_coefficient,
    sphere_radius_mm,
)
from octoscan.models.tomo_organs import (
    OrganMaps,
    close_mm,
    dilate_mm,
    erode_mm,
    fill_holes_per_plane,
    gaussian_mm,
    voxel_volume_ml,
)
from octoscan.models.tomo_pairing import WorkingGrid

_CORE_PERCENTILE = 10.0  # a candidate's own HU for its half-contrast cut
_OVERLAP_FRACTION = 0.2  # share of a CT lesion covered by an emission finding: the same lesion
_CENTRED_MM = 10.0  # ... and it sizes that finding when their centres are this close (or within
# the CT lesion's radius)


@dataclass(frozen=True)
class CTLesion:
    """A hypodense focus in the liver (working grid): its region, size and CT contrast."""

    mask: np.ndarray
    center_lps_mm: tuple[float, float, float]
    deepest_index: tuple[int, int, int]
    volume_ml: float
    diameter_mm: float
    elongation: float
    mean_hu: float
    liver_hu: float
    contrast_hu: float


def outline_ct_liver_lesions(
    organs: OrganMaps,
    grid: WorkingGrid,
    *,
    cfg: TomoCTLesionConfig,
    ct_cfg: TomoCTConfig,
    set_aside: list[tuple[tuple[float, float, float], str]] | None = None,
) -> list[CTLesion]:
    """Hypodense foci inside the CT liver (module docstring, steps 1-4); [] without a CT
    liver. Foci found on CT but not kept are appended to ``set_aside`` (centre LPS mm, why)
    when a list is given."""
    if organs.ct_hu is None or organs.liver is None or organs.liver_hull is None:
        return []
    spacing = grid.spacing_mm
    affine = grid.affine
    vox_ml = voxel_volume_ml(spacing)
    light = np.asarray(organs.ct_hu, dtype=np.float32)
    hu = gaussian_mm(light, cfg.smoothing_fwhm_mm, spacing)
    one_voxel = max(spacing) * 1.01
    core = erode_mm(organs.liver, one_voxel, spacing)
    if core.sum() < 50:
        return []
    liver_hu = float(np.median(hu[core]))
    noise = 1.4826 * float(np.median(np.abs(hu[core] - liver_hu)))
    # the liver envelope: a closing wide enough to take in lesions that replace liver at its
    # surface (the organ hull's closing only bridges small gaps)
    envelope = fill_holes_per_plane(close_mm(organs.liver, cfg.envelope_closing_mm, spacing))
    envelope = (envelope | organs.liver_hull) & organs.body.mask
    zone = erode_mm(envelope, one_voxel, spacing)
    fluid = (hu >= ct_cfg.fluid_hu_min) & (hu <= ct_cfg.fluid_hu_max) & organs.body.mask
    near_fluid = dilate_mm(fluid, cfg.fluid_margin_mm, spacing)
    cut = liver_hu - max(cfg.min_contrast_hu, cfg.min_contrast_sd * noise)
    labels, _ = ndimage.label(zone & (hu <= cut) & (hu > ct_cfg.fluid_hu_max))
    # pass 1: each candidate grows to its own half-contrast isocontour
    regions = np.zeros(hu.shape, dtype=bool)
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        box = grow_box(box, 3, hu.shape)
        part = labels[box] == k
        own = float(np.percentile(hu[box][part], _CORE_PERCENTILE))
        half = liver_hu - 0.5 * (liver_hu - own)
        pieces, _ = ndimage.label((hu[box] <= half) & zone[box])
        ids = np.unique(pieces[part & (pieces > 0)])
        regions[box] |= np.isin(pieces, ids[ids > 0])
    # pass 2: overlapping isocontours are one lesion
    merged, _ = ndimage.label(regions)
    kidneys = kidney_landmarks(organs.kidneys, hu, affine)
    out: list[CTLesion] = []
    for k, box in enumerate(ndimage.find_objects(merged), start=1):
        if box is None:
            continue
        box = grow_box(box, 3, hu.shape)
        region = merged[box] == k
        idx = np.argwhere(region) + np.array([b.start for b in box])
        pts = idx @ affine[:3, :3].T + affine[:3, 3]
        centre = pts.mean(axis=0)
        where = (float(centre[0]), float(centre[1]), float(centre[2]))

        def drop(why: str) -> None:
            if set_aside is not None:
                set_aside.append((where, why))  # noqa: B023 - used at once

        inner = ndimage.binary_erosion(region)
        values = light[box][inner] if inner.any() else light[box][region]
        contrast = liver_hu - (float(np.median(values)) if inner.any() else float(values.min()))
        if contrast < cfg.min_contrast_hu:
            drop(f"contrast {contrast:.0f} HU")
            continue
        grown = ndimage.binary_dilation(region) & envelope[box]
        fraction = np.minimum((liver_hu - light[box][grown]) / contrast, 1.0)
        volume = max(float(fraction.sum()), 0.0) * vox_ml
        diameter = 2.0 * sphere_radius_mm(volume)
        if diameter < cfg.min_sizing_diameter_mm:
            drop(f"{diameter:.0f} mm")
            continue
        _, elongation = principal_axes(pts)
        if elongation > cfg.max_elongation:
            drop(f"elongation {elongation:.1f} (vessel)")
            continue
        mean_hu = float(light[box][region].mean())
        if mean_hu <= ct_cfg.fluid_hu_max:
            drop(f"fluid density {mean_hu:.0f} HU")
            continue
        if float(near_fluid[box][region].mean()) > 0.5:
            drop("rim of fluid (gallbladder, cyst)")
            continue
        side = adrenal_zone_side(centre, kidneys, organs.body.midline_x_mm)
        if side is not None:
            drop(f"{side} adrenal zone")
            continue
        shell = dilate_mm(region, cfg.shell_mm, spacing) & ~region
        share = float(organs.liver[box][shell].mean())
        if share < cfg.min_liver_shell_fraction:
            drop(f"{100.0 * share:.0f} % of its surroundings liver")
            continue
        depth = ndimage.distance_transform_edt(np.pad(region, 1), sampling=spacing)
        depth = depth[1:-1, 1:-1, 1:-1]
        deep = np.unravel_index(int(np.argmax(depth)), depth.shape)
        mask = np.zeros(hu.shape, dtype=bool)
        mask[box] = region
        out.append(
            CTLesion(
                mask=mask,
                center_lps_mm=where,
                deepest_index=(
                    int(deep[0]) + box[0].start,
                    int(deep[1]) + box[1].start,
                    int(deep[2]) + box[2].start,
                ),
                volume_ml=volume,
                diameter_mm=diameter,
                elongation=float(elongation),
                mean_hu=mean_hu,
                liver_hu=liver_hu,
                contrast_hu=contrast,
            )
        )
    return out


def _rc(diameter_mm: float, fwhm_mm: float, pvc: TomoPVCConfig, peak_volume_ml: float) -> float:
    rc = recovery_coefficient(
        diameter_mm, fwhm_mm, model=pvc.recovery_model, peak_volume_ml=peak_volume_ml
    )
    return max(rc, 1.0 / pvc.max_correction_factor)


def _ct_note(lesion: CTLesion) -> str:
    return (
        f"outlined on CT: hypodense, {lesion.mean_hu:.0f} HU against normal liver "
        f"{lesion.liver_hu:.0f} HU, {lesion.diameter_mm:.0f} mm"
    )


def add_ct_liver_lesions(
    found: DetectionResult,
    ct_lesions: Sequence[CTLesion],
    grid: WorkingGrid,
    native: np.ndarray,
    *,
    fwhm_mm: float,
    cfg: TomoCTLesionConfig,
    pvc: TomoPVCConfig,
    peak_volume_ml: float,
) -> DetectionResult:
    """``found`` with the CT liver lesions merged in (module docstring, measurement)."""
    if not ct_lesions or found.liver_level is None:
        return found
    b = float(found.liver_level)
    findings = list(found.findings)
    spacing_native = np.linalg.norm(grid.native_affine[:3, :3], axis=0)
    native_vox = float(np.prod(spacing_native)) / 1000.0
    peak_radius = sphere_radius_mm(peak_volume_ml)
    for ct in ct_lesions:
        size = float(ct.mask.sum())
        hits = [
            i
            for i, f in enumerate(findings)
            if float((f.working_mask & ct.mask).sum()) >= _OVERLAP_FRACTION * size
            or f.working_mask[ct.deepest_index]
        ]
        if hits:
            i = hits[0]
            f = findings[i]
            offset = float(np.linalg.norm(np.subtract(f.center_lps_mm, ct.center_lps_mm)))
            centred = offset <= max(0.5 * ct.diameter_mm, _CENTRED_MM)
            if cfg.size_hot_lesions and centred and f.in_liver and f.peak > b:
                rc = _rc(ct.diameter_mm, fwhm_mm, pvc, peak_volume_ml)
                findings[i] = dataclasses.replace(
                    f,
                    diameter_mm=ct.diameter_mm,
                    volume_ml=ct.volume_ml,
                    recovery=rc,
                    corrected_peak=b + (f.peak - b) / rc,
                    warnings=(*f.warnings, f"{_ct_note(ct)}: partial-volume correction uses it"),
                )
            continue
        if not cfg.report_without_uptake or ct.diameter_mm < cfg.min_diameter_mm:
            continue
        deep = np.clip(
            np.round(grid.to_native_index(np.asarray(ct.deepest_index))).astype(int),
            0,
            np.asarray(grid.native_shape) - 1,
        )
        peak = peak_sphere_mean(native, deep, grid.native_affine, peak_radius)
        native_mask = grid.expand(ct.mask)
        values = np.asarray(native, dtype=np.float64)[native_mask]
        if values.size == 0:
            continue
        rc = _rc(ct.diameter_mm, fwhm_mm, pvc, peak_volume_ml)
        corrected = max(b + (peak - b) / rc, 0.0)
        noise = float(found.noise_sd[ct.deepest_index])
        peak_lps = deep @ grid.native_affine[:3, :3].T + grid.native_affine[:3, 3]
        findings.append(
            Finding(
                center_lps_mm=ct.center_lps_mm,
                peak_lps_mm=(float(peak_lps[0]), float(peak_lps[1]), float(peak_lps[2])),
                volume_ml=ct.volume_ml,
                diameter_mm=ct.diameter_mm,
                segmented_volume_ml=float(native_mask.sum()) * native_vox,
                peak=peak,
                max_value=float(values.max()),
                mean_value=float(values.mean()),
                background=b,
                contrast=(peak - b) / b if b > 0 else 0.0,
                z_score=(peak - b) / noise if noise > 0 else 0.0,
                region="liver",
                in_liver=True,
                elongation=ct.elongation,
                recovery=rc,
                corrected_peak=corrected,
                mask=native_mask,
                working_mask=ct.mask,
                warnings=(
                    _ct_note(ct)
                    + "; its uptake is measured inside the CT outline (not a hot spot on the "
                    "emission image)",
                ),
                outline="ct",
            )
        )
    findings.sort(key=lambda f: -f.peak)
    return dataclasses.replace(found, findings=tuple(findings))
