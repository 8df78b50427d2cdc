"""The emission volume's effective resolution, measured at the liver's outline on the fused CT.

DICOM does not say how sharp a reconstructed SPECT or PET is (collimator, reconstruction,
post-filter, positron range and breathing all add blur), yet the partial-volume correction
and the noise model depend on it. Where the CT outlines the liver, the emission volume shows
that outline blurred by the system: across the liver surface the uptake falls from the liver
level to the level outside as a step convolved with the system's point-spread function. For a
Gaussian PSF of SD s the profile along the surface normal is

    u(d) = a + b * Phi((mu - d) / s)

with ``d`` the signed distance from the CT outline (mm, negative inside the liver), ``a`` the
uptake outside, ``b`` the liver's excess over it, ``mu`` an offset (the CT outline of the
liver HU window does not sit exactly on the edge) and ``Phi`` the standard normal CDF.

Steps (working grid; :func:`liver_edge_resolution`):

1. The CT liver (holes filled, so that lesions inside it do not make edges of their own);
   signed distance of every voxel from its outline, to within half a voxel.
2. Voxels within ``2.5 x`` the assumed FWHM of the outline, inside the body and at least
   twice the assumed FWHM away from the spleen, kidneys and bladder (their uptake would
   stand in for "outside"), are binned by distance (2 mm); each bin's median uptake (robust
   to lesions and bowel in a minority of the surface) forms the profile.
3. ``a, b, mu, s`` are fitted by weighted least squares (weights: voxels per bin). The
   outline lies on voxel boundaries, anywhere within a voxel ``h`` of the true surface (a
   spread of variance h^2 / 12), and block-averaging the native grid onto the working grid
   blurs by (h^2 - h_native^2) / 12 more: both are taken out, FWHM = 2.355 sqrt(s^2 -
   (2 h^2 - h_native^2) / 12), never below half the fitted value; its fit standard error
   (statistical only: the systematic error is larger, see below) goes with it.
   No estimate (None) without a CT liver, with working voxels more than 1.25 times longer
   on one axis than another (the outline's quantisation would then depend on the surface's
   direction), with too few bins on either side, when the fit fails, when the liver does
   not stand out (``b`` below ``2 a``), or when ``s`` lands on its search bounds (0.2-4 x
   the assumed).

Accuracy on octoscan's phantoms (``bench/accuracy_tomo.py --emission-fwhm``, medians of 20
studies, two cohorts): SPECT simulated at 10 / 13 / 16 mm reads 9.6-9.9 / 12.0-12.5 /
14.6-14.8 mm, PET at 6.5 / 8.5 mm reads 7.0-7.3 / 8.9 mm; single studies scatter by about
+-1 mm around these. The scorer therefore keeps its configured default unless the
measurement differs from it by more than ``[tomo.resolution] measured_agreement``
(:func:`octoscan.models.tomo_score.score_tomographic`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize, special

from octoscan.models.tomo_organs import METHOD_CT, OrganMaps, dilate_mm
from octoscan.models.tomo_pairing import WorkingGrid

FWHM_PER_SD = 2.0 * math.sqrt(2.0 * math.log(2.0))
_REACH_FWHM = 2.5  # profile from this many assumed FWHM inside to as many outside
_ORGAN_CLEARANCE_FWHM = 2.0  # voxels this many assumed FWHM from a hot organ are left out
_BIN_MM = 2.0
_MIN_BIN_VOXELS = 20
_MIN_BINS_PER_SIDE = 5
_SD_BOUNDS = (0.2, 4.0)  # search range of s, x the assumed SD
_MIN_CONTRAST = 2.0  # the liver's excess b at least this x the outside level a
_MAX_ANISOTROPY = 1.25  # longest / shortest working-voxel side for an estimate


@dataclass(frozen=True)
class ResolutionEstimate:
    """Effective FWHM (mm) from the liver edge, its fit standard error, the outline offset
    ``offset_mm`` (positive: the emission edge lies outside the CT outline) and the number
    of voxels in the profile."""

    fwhm_mm: float
    fwhm_se_mm: float
    offset_mm: float
    n_voxels: int


def _edge_profile(x: np.ndarray, a: float, b: float, mu: float, s: float) -> np.ndarray:
    return a + b * 0.5 * special.erfc((x - mu) / (s * math.sqrt(2.0)))


def liver_edge_resolution(
    image: np.ndarray,
    grid: WorkingGrid,
    organs: OrganMaps,
    *,
    assumed_fwhm_mm: float,
) -> ResolutionEstimate | None:
    """Effective FWHM of ``image`` (emission on the working ``grid``, unsmoothed block means)
    at the CT liver outline of ``organs`` (module docstring); None when it cannot be
    measured."""
    spacing_mm = grid.spacing_mm
    if organs.liver is None or organs.method != METHOD_CT or not organs.liver.any():
        return None
    if max(spacing_mm) > _MAX_ANISOTROPY * min(spacing_mm):
        return None
    liver = ndimage.binary_fill_holes(organs.liver)
    hot = organs.physiological_mask()
    if hot.any():
        hot = dilate_mm(hot, _ORGAN_CLEARANCE_FWHM * assumed_fwhm_mm, spacing_mm)
    half_voxel = float(np.mean(spacing_mm)) / 2.0
    inside = ndimage.distance_transform_edt(liver, sampling=spacing_mm)
    outside = ndimage.distance_transform_edt(~liver, sampling=spacing_mm)
    signed = np.where(liver, half_voxel - inside, outside - half_voxel)
    reach = _REACH_FWHM * assumed_fwhm_mm
    use = organs.body.mask & ~hot & (np.abs(signed) <= reach)
    d = signed[use]
    values = np.asarray(image, dtype=np.float64)[use]
    edges = np.arange(-reach, reach + _BIN_MM, _BIN_MM)
    which = np.digitize(d, edges)
    xs, ys, ns = [], [], []
    for k in range(1, len(edges)):
        sel = which == k
        n = int(sel.sum())
        if n >= _MIN_BIN_VOXELS:
            xs.append(float(d[sel].mean()))
            ys.append(float(np.nanmedian(values[sel])))
            ns.append(n)
    x, y, w = np.asarray(xs), np.asarray(ys), np.asarray(ns, dtype=np.float64)
    if int((x < 0).sum()) < _MIN_BINS_PER_SIDE or int((x > 0).sum()) < _MIN_BINS_PER_SIDE:
        return None
    s0 = assumed_fwhm_mm / FWHM_PER_SD
    lo, hi = _SD_BOUNDS[0] * s0, _SD_BOUNDS[1] * s0
    a0, b0 = float(y[-1]), max(float(y[0] - y[-1]), 1e-9)
    try:
        popt, pcov = optimize.curve_fit(
            _edge_profile,
            x,
            y,
            p0=(a0, b0, 0.0, s0),
            sigma=1.0 / np.sqrt(w),
            bounds=([-np.inf, 0.0, -reach / 2.0, lo], [np.inf, np.inf, reach / 2.0, hi]),
            maxfev=5000,
        )
    except (RuntimeError, ValueError):
        return None
    a, b, mu, s = (float(v) for v in popt)
    se = float(np.sqrt(max(float(pcov[3, 3]), 0.0))) if np.all(np.isfinite(pcov)) else math.inf
    if b < _MIN_CONTRAST * max(a, 0.0) or b <= 0.0:
        return None
    if not (1.01 * lo < s < 0.99 * hi) or not math.isfinite(se):
        return None
    # the outline sits on voxel boundaries (a spread of h^2 / 12 about the true surface) and
    # block-averaging added (h^2 - h_native^2) / 12: both show as blur, both taken out
    h = float(np.mean(spacing_mm))
    h_native = float(np.mean(grid.native_spacing_mm))
    extra = (2.0 * h * h - min(h_native, h) ** 2) / 12.0
    floor = 0.25 * s * s
    s_sys = math.sqrt(max(s * s - extra, floor))
    se_sys = se * s / s_sys if s * s - extra > floor else 0.0
    return ResolutionEstimate(
        fwhm_mm=FWHM_PER_SD * s_sys,
        fwhm_se_mm=FWHM_PER_SD * se_sys,
        offset_mm=mu,
        n_voxels=int(w.sum()),
    )
