"""Tomographic images of the phantom: reconstructed SPECT, CT in HU, PET in Bq/mL.

* **SPECT** (111In, attenuation-corrected reconstruction assumed): 128 x 128 x 80 voxels of
  4.8 mm over the upper abdomen (liver, spleen, kidneys, pancreas), resolution 13 mm FWHM
  (clinical 111In SPECT with a medium-energy collimator reconstructs to 12-15 mm), values in
  counts with normal liver at about 100 per voxel. Noise: Gaussian, variance proportional to
  the mean (15 % coefficient of variation at the liver's level), spatially correlated by a
  Gaussian of 1 voxel (reconstructed voxels are not Poisson).
* **CT**: 256 x 256 pixels of 2.34 mm (600 mm field), 5 mm slices, HU per tissue (air -1000,
  lung -850, fat -100, soft tissue 40, liver 60, spleen 45, kidney 35, bone 700), white noise
  of 12 HU; lesions: liver metastases 35 HU (hypodense), bone metastases 900 HU (sclerotic),
  nodes/pancreas/lung 40 HU.
* **PET** (68Ga-DOTATATE): 144 x 144 voxels of 4.0 mm, 4 mm slices, 6.5 mm FWHM; Bq/mL at the
  acquisition start; noise 10 % coefficient of variation at the liver's level, correlated by a
  Gaussian of 1 voxel.

The emission phantom is itself a 4 mm voxel grid, which blurs a little; the Gaussian applied is
sqrt(FWHM^2 - voxel^2) so that the total matches the stated resolution.
All volumes are (plane, row, col) on an axis-aligned :class:`Grid` (plane +z, row +y, col +x).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from octoscan.imaging.phantom.anatomy import Anatomy, Grid, Tissue
from octoscan.imaging.phantom.lesions import Lesion, LesionSite
from octoscan.imaging.phantom.planar import FWHM_TO_SIGMA

SPECT_FWHM_MM = 13.0
SPECT_VOXEL_MM = 4.8
SPECT_MATRIX = 128
SPECT_SLICES = 80
SPECT_LIVER_COUNTS = 100.0
SPECT_NOISE_COV = 0.15
CT_MATRIX = 256
CT_PIXEL_MM = 600.0 / 256.0
CT_SLICE_MM = 5.0
CT_NOISE_HU = 12.0
PET_FWHM_MM = 6.5
PET_VOXEL_MM = 4.0
PET_MATRIX = 144
PET_NOISE_COV = 0.10

HU: dict[Tissue, float] = {
    Tissue.AIR: -1000.0,
    Tissue.SOFT_TISSUE: 45.0,
    Tissue.FAT: -100.0,
    Tissue.LUNG: -850.0,
    Tissue.BONE: 700.0,
    Tissue.BRAIN: 35.0,
    Tissue.LIVER: 60.0,
    Tissue.SPLEEN: 45.0,
    Tissue.KIDNEY_LEFT: 35.0,
    Tissue.KIDNEY_RIGHT: 35.0,
    Tissue.BLADDER: 8.0,
    Tissue.BOWEL: 20.0,
    Tissue.GALLBLADDER: 10.0,
    Tissue.THYROID: 90.0,
    Tissue.PITUITARY: 40.0,
    Tissue.PANCREAS: 40.0,
    Tissue.HEART: 40.0,
    Tissue.ADRENAL: 30.0,
    Tissue.STOMACH: 25.0,
}
LESION_HU: dict[LesionSite, float] = {
    LesionSite.LIVER: 35.0,
    LesionSite.PANCREAS: 40.0,
    LesionSite.LYMPH_NODE: 40.0,
    LesionSite.BONE: 900.0,
    LesionSite.LUNG: 40.0,
}


@dataclass(frozen=True)
class TomoImage:
    """A simulated volume: (plane,row,col) float32 ``array`` in ``units`` on ``grid``."""

    array: np.ndarray
    grid: Grid
    units: str
    resolution_fwhm_mm: float | None


def centred_grid(
    center_mm: Sequence[float], *, matrix: int, pixel_mm: float, n_slices: int, slice_mm: float
) -> Grid:
    """Axial grid of ``matrix`` x ``matrix`` pixels and ``n_slices`` slices around a point."""
    cx, cy, cz = (float(v) for v in center_mm)
    origin = (
        cx - (matrix - 1) / 2.0 * pixel_mm,
        cy - (matrix - 1) / 2.0 * pixel_mm,
        cz - (n_slices - 1) / 2.0 * slice_mm,
    )
    return Grid(
        shape=(n_slices, matrix, matrix),
        spacing_mm=(slice_mm, pixel_mm, pixel_mm),
        origin_mm=(round(origin[0], 4), round(origin[1], 4), round(origin[2], 4)),
    )


def spect_grid(anatomy: Anatomy, *, n_slices: int = SPECT_SLICES) -> Grid:
    """SPECT field over the upper abdomen, centred at 61 % of the body height."""
    return centred_grid(
        (0.0, 0.0, round(0.61 * anatomy.height_mm, 1)),
        matrix=SPECT_MATRIX,
        pixel_mm=SPECT_VOXEL_MM,
        n_slices=n_slices,
        slice_mm=SPECT_VOXEL_MM,
    )


def ct_grid_for(target: Grid, *, n_slices: int | None = None) -> Grid:
    """CT grid covering ``target``'s axial extent (or ``n_slices`` around its centre)."""
    z = target.axis_mm(0)
    extent = float(z[-1] - z[0]) + target.spacing_mm[0]
    n = n_slices if n_slices is not None else max(1, math.ceil(extent / CT_SLICE_MM))
    centre = (
        target.origin_mm[0] + (target.shape[2] - 1) / 2.0 * target.spacing_mm[2],
        target.origin_mm[1] + (target.shape[1] - 1) / 2.0 * target.spacing_mm[1],
        float(z[0] + z[-1]) / 2.0,
    )
    return centred_grid(
        centre, matrix=CT_MATRIX, pixel_mm=CT_PIXEL_MM, n_slices=n, slice_mm=CT_SLICE_MM
    )


def pet_grid_for(ct: Grid) -> Grid:
    """PET grid covering the same axial extent as the CT ``ct`` (4 mm voxels)."""
    z = ct.axis_mm(0)
    extent = float(z[-1] - z[0]) + ct.spacing_mm[0]
    n = max(1, math.ceil(extent / PET_VOXEL_MM))
    centre = (
        ct.origin_mm[0] + (ct.shape[2] - 1) / 2.0 * ct.spacing_mm[2],
        ct.origin_mm[1] + (ct.shape[1] - 1) / 2.0 * ct.spacing_mm[1],
        float(z[0] + z[-1]) / 2.0,
    )
    return centred_grid(
        centre, matrix=PET_MATRIX, pixel_mm=PET_VOXEL_MM, n_slices=n, slice_mm=PET_VOXEL_MM
    )


def _blur_and_resample(values: np.ndarray, src: Grid, dst: Grid, fwhm_mm: float) -> np.ndarray:
    """Gaussian blur (total ``fwhm_mm`` including the source voxel) then trilinear resample."""
    z, y, x = (dst.axis_mm(a) for a in range(3))
    margin = 3.0 * fwhm_mm
    sz = src.index_range(0, z[0] - margin, z[-1] + margin)
    sy = src.index_range(1, y[0] - margin, y[-1] + margin)
    sx = src.index_range(2, x[0] - margin, x[-1] + margin)
    sub = values[sz, sy, sx].astype(np.float32)
    if min(sub.shape) == 0:
        return np.zeros(dst.shape, dtype=np.float32)
    applied = math.sqrt(max(fwhm_mm**2 - max(src.spacing_mm) ** 2, 1.0))
    sigma = [applied * FWHM_TO_SIGMA / s for s in src.spacing_mm]
    sub = ndimage.gaussian_filter(sub, sigma, mode="nearest")
    iz = (z - src.axis_mm(0)[sz][0]) / src.spacing_mm[0]
    iy = (y - src.axis_mm(1)[sy][0]) / src.spacing_mm[1]
    ix = (x - src.axis_mm(2)[sx][0]) / src.spacing_mm[2]
    coords = np.meshgrid(iz, iy, ix, indexing="ij")
    return ndimage.map_coordinates(sub, coords, order=1, mode="constant", cval=0.0)


def _correlated_noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Unit-variance Gaussian noise correlated by a Gaussian kernel of sigma 1 voxel."""
    white = rng.standard_normal(shape).astype(np.float32)
    smooth = ndimage.gaussian_filter(white, 1.0, mode="wrap")
    return smooth / np.float32(smooth.std() or 1.0)


def simulate_spect(
    concentration: np.ndarray,
    src: Grid,
    dst: Grid,
    *,
    liver_kbq_per_ml: float,
    seed: int,
    fwhm_mm: float = SPECT_FWHM_MM,
) -> TomoImage:
    """Reconstructed-SPECT-like volume (counts) of ``concentration`` (kBq/mL on ``src``)."""
    mean = _blur_and_resample(concentration, src, dst, fwhm_mm)
    mean *= np.float32(SPECT_LIVER_COUNTS / liver_kbq_per_ml)
    rng = np.random.default_rng([seed, 707])
    noise = _correlated_noise(mean.shape, rng)
    sd = SPECT_NOISE_COV * np.sqrt(np.maximum(mean, 0.0) * SPECT_LIVER_COUNTS)
    return TomoImage(np.maximum(mean + sd * noise, 0.0), dst, "counts", fwhm_mm)


def simulate_pet(
    concentration_kbq_ml: np.ndarray,
    src: Grid,
    dst: Grid,
    *,
    liver_kbq_per_ml: float,
    seed: int,
    fwhm_mm: float = PET_FWHM_MM,
) -> TomoImage:
    """PET volume in Bq/mL (at the acquisition start) of a 68Ga concentration map (kBq/mL)."""
    mean = _blur_and_resample(concentration_kbq_ml, src, dst, fwhm_mm) * np.float32(1000.0)
    rng = np.random.default_rng([seed, 808])
    noise = _correlated_noise(mean.shape, rng)
    liver_bq = liver_kbq_per_ml * 1000.0
    sd = PET_NOISE_COV * np.sqrt(np.maximum(mean, 0.0) * liver_bq)
    return TomoImage(np.maximum(mean + sd * noise, 0.0), dst, "Bq/mL", fwhm_mm)


def simulate_ct(anatomy: Anatomy, lesions: Sequence[Lesion], grid: Grid, *, seed: int) -> TomoImage:
    """CT in HU on ``grid``: tissue values, lesion values and white noise (see module doc)."""
    labels = anatomy.rasterize(grid)
    lut = np.full(256, -1000.0, dtype=np.float32)
    for tissue, hu in HU.items():
        lut[int(tissue)] = hu
    hu_img = lut[labels]
    zc, yc, xc = (grid.axis_mm(a) for a in range(3))
    for lesion in lesions:
        shape = lesion.shape
        lo, hi = shape.bounds_mm()
        sz = grid.index_range(0, lo[2], hi[2])
        sy = grid.index_range(1, lo[1], hi[1])
        sx = grid.index_range(2, lo[0], hi[0])
        if sz.stop <= sz.start or sy.stop <= sy.start or sx.stop <= sx.start:
            continue
        inside = shape.contains(xc[sx][None, None, :], yc[sy][None, :, None], zc[sz][:, None, None])
        hu_img[sz, sy, sx][inside] = LESION_HU[lesion.site]
    rng = np.random.default_rng([seed, 909])
    body = labels != Tissue.AIR
    hu_img[body] += rng.normal(0.0, CT_NOISE_HU, size=int(body.sum())).astype(np.float32)
    return TomoImage(hu_img, grid, "HU", None)
