"""Emission-CT pairing and the grids tomographic scoring works on.

Pairing (issue 8, DESIGN.md section 3): an emission volume (SPECT or PET) and a CT are fused
only when they share a FrameOfReferenceUID, which hybrid scanners (SPECT/CT, PET/CT) write for
both series of one session, *and* their fields overlap in patient coordinates (LPS mm): a
shared frame of reference says the coordinates agree, the overlap says the CT covers the
emission field. Without a shared frame of reference the volumes would need a registration,
which octoscan does not do: they are not fused, and the result says why.

Working grid: organs and lesions are searched on a grid of about ``working_voxel_mm`` voxels
(integer block means of the emission voxels; block means keep regional means and units), then
measured on the original grid. Index conventions are those of
:class:`octoscan.imaging.types.Volume`: arrays (plane, row, col), affines index -> LPS mm.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from octoscan.imaging.geometry import resample_to
from octoscan.imaging.types import Volume

AIR_HU = -1000.0


@dataclass(frozen=True)
class PairingResult:
    """Whether an emission volume and a CT may be fused, and why.

    ``overlap_fraction`` is the share of the emission field's bounding box (LPS, voxel edges
    included) that lies inside the CT's bounding box; ``overlap_mm`` the extent of the
    intersection along x, y, z (0 where they do not meet).
    """

    fused: bool
    same_frame_of_reference: bool
    overlap_fraction: float
    overlap_mm: tuple[float, float, float]
    reason: str
    warnings: tuple[str, ...] = ()


def bounding_box_lps(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """(min corner, max corner) in LPS mm of the volume's field, voxel edges included."""
    shape = np.asarray(volume.shape, dtype=np.float64)
    corners = np.array(
        [
            [i, j, k]
            for i in (-0.5, shape[0] - 0.5)
            for j in (-0.5, shape[1] - 0.5)
            for k in (-0.5, shape[2] - 0.5)
        ]
    )
    pts = volume.index_to_lps(corners)
    return pts.min(axis=0), pts.max(axis=0)


def check_pairing(emission: Volume, ct: Volume, *, min_overlap_fraction: float) -> PairingResult:
    """Decide whether ``ct`` may be fused with ``emission`` (module docstring).

    ``min_overlap_fraction`` (0-1, config ``tomo.pairing``) is the share of the emission field
    the CT must cover.
    """
    e_for = emission.source.frame_of_reference_uid
    c_for = ct.source.frame_of_reference_uid
    same = bool(e_for) and e_for == c_for
    e_lo, e_hi = bounding_box_lps(emission)
    c_lo, c_hi = bounding_box_lps(ct)
    extent = np.clip(np.minimum(e_hi, c_hi) - np.maximum(e_lo, c_lo), 0.0, None)
    e_volume = float(np.prod(e_hi - e_lo))
    fraction = float(np.prod(extent)) / e_volume if e_volume > 0 else 0.0
    overlap = (float(extent[0]), float(extent[1]), float(extent[2]))
    warnings: list[str] = []
    if ct.units != "HU":
        warnings.append(f"CT values are in {ct.units!r}, not HU: CT windows may not apply")
    if emission.source.study_instance_uid != ct.source.study_instance_uid:
        warnings.append("emission and CT belong to different studies")
    text = f"{100.0 * fraction:.0f} % of the emission field lies inside the CT"
    if not same:
        why = (
            "the emission volume has no FrameOfReferenceUID"
            if not e_for
            else "the CT has no FrameOfReferenceUID"
            if not c_for
            else "emission and CT have different FrameOfReferenceUIDs"
        )
        return PairingResult(
            False,
            False,
            fraction,
            overlap,
            f"not fused: {why} (a registration would be needed; {text})",
            tuple(warnings),
        )
    if fraction < min_overlap_fraction:
        return PairingResult(
            False,
            True,
            fraction,
            overlap,
            f"not fused: same FrameOfReferenceUID but only {text} (at least "
            f"{100.0 * min_overlap_fraction:.0f} % required)",
            tuple(warnings),
        )
    return PairingResult(
        True, True, fraction, overlap, f"fused: same FrameOfReferenceUID, {text}", tuple(warnings)
    )


def resample_ct_to(ct: Volume, shape: Sequence[int], affine: np.ndarray) -> Volume:
    """CT resampled (trilinear) onto the grid (``shape``, ``affine``) in LPS mm, in HU.

    The CT is first smoothed by a Gaussian of about the target voxel size (anti-aliasing, so
    that a coarse emission voxel holds the mean HU of the tissue it covers, not one noisy CT
    voxel); points outside the CT are air (-1000 HU).
    """
    target = np.asarray(affine, dtype=np.float64)
    coarsest = float(np.linalg.norm(target[:3, :3], axis=0).max())
    # a box of w voxels has sigma w / sqrt(12); the CT voxel itself already counts as one
    sigma = [0.29 * math.sqrt(max((coarsest / s) ** 2 - 1.0, 0.0)) for s in ct.spacing_mm]
    source = ct
    if max(sigma) > 0.0:
        smoothed = ndimage.gaussian_filter(np.asarray(ct.array, dtype=np.float32), sigma)
        source = dataclasses.replace(ct, array=smoothed.astype(np.float32, copy=False))
    return resample_to(source, shape, target, order=1, cval=AIR_HU)


@dataclass(frozen=True)
class WorkingGrid:
    """Integer block-averaging of an emission grid.

    ``factors`` (plane, row, col) >= 1; working voxel (i, j, k) is the mean of the native
    block starting at ``(i, j, k) * factors``; trailing native planes that do not fill a block
    are dropped on the working grid (and set False when masks go back to the native grid).
    """

    native_shape: tuple[int, int, int]
    native_affine: np.ndarray
    factors: tuple[int, int, int]

    @property
    def shape(self) -> tuple[int, int, int]:
        s = tuple(n // f for n, f in zip(self.native_shape, self.factors, strict=True))
        return (s[0], s[1], s[2])

    @property
    def affine(self) -> np.ndarray:
        f = np.asarray(self.factors, dtype=np.float64)
        out = self.native_affine.copy()
        out[:3, :3] = self.native_affine[:3, :3] * f[None, :]
        out[:3, 3] = self.native_affine[:3, 3] + self.native_affine[:3, :3] @ ((f - 1.0) / 2.0)
        return out

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        n = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(n[0]), float(n[1]), float(n[2]))

    @property
    def native_spacing_mm(self) -> tuple[float, float, float]:
        n = np.linalg.norm(self.native_affine[:3, :3], axis=0)
        return (float(n[0]), float(n[1]), float(n[2]))

    def reduce(self, array: np.ndarray) -> np.ndarray:
        """Block means (float32) of a native (plane, row, col) array."""
        f0, f1, f2 = self.factors
        s0, s1, s2 = self.shape
        a = np.asarray(array, dtype=np.float32)[: s0 * f0, : s1 * f1, : s2 * f2]
        if (f0, f1, f2) == (1, 1, 1):
            return a.copy()
        return (
            a.reshape(s0, f0, s1, f1, s2, f2)
            .mean(axis=(1, 3, 5), dtype=np.float64)
            .astype(np.float32)
        )

    def expand(self, mask: np.ndarray) -> np.ndarray:
        """A working-grid boolean mask on the native grid (each voxel copied to its block)."""
        out = np.zeros(self.native_shape, dtype=bool)
        m = np.asarray(mask, dtype=bool)
        for axis, f in enumerate(self.factors):
            if f > 1:
                m = np.repeat(m, f, axis=axis)
        out[: m.shape[0], : m.shape[1], : m.shape[2]] = m
        return out

    def native_box(self, box: tuple[slice, ...]) -> tuple[slice, slice, slice]:
        """Native slices covering the working-grid slices ``box`` (start/stop set)."""
        out = [
            slice(int(b.start) * f, min(int(b.stop) * f, n))
            for b, f, n in zip(box, self.factors, self.native_shape, strict=True)
        ]
        return (out[0], out[1], out[2])

    def expand_box(self, mask: np.ndarray) -> np.ndarray:
        """A working-grid sub-mask copied to its native block (same as :meth:`expand` on a
        box, without the trailing native planes)."""
        m = np.asarray(mask, dtype=bool)
        for axis, f in enumerate(self.factors):
            if f > 1:
                m = np.repeat(m, f, axis=axis)
        return m

    def to_native_index(self, index: np.ndarray) -> np.ndarray:
        """Working (..., 3) indices -> native fractional indices of the block centres."""
        f = np.asarray(self.factors, dtype=np.float64)
        return np.asarray(index, dtype=np.float64) * f + (f - 1.0) / 2.0


def working_grid(volume: Volume, *, working_voxel_mm: float) -> WorkingGrid:
    """The block-averaging grid whose voxels are at most about ``working_voxel_mm``.

    Each axis is averaged by floor(``working_voxel_mm`` / spacing) native voxels (at least 1),
    so voxels already larger than that are kept as they are.
    """
    factors = tuple(max(1, math.floor(working_voxel_mm / s + 1e-6)) for s in volume.spacing_mm)
    factors = tuple(min(f, n) for f, n in zip(factors, volume.shape, strict=True))
    return WorkingGrid(volume.shape, volume.affine.copy(), (factors[0], factors[1], factors[2]))
