"""Patient geometry of image stacks: affines, slice order, spacing checks, resampling.

Conventions (PS3.3 C.7.6.2.1.1): ImageOrientationPatient holds two direction cosines in LPS;
the first triplet is the direction of increasing *column* index (along a row), the second the
direction of increasing *row* index (down a column). PixelSpacing is (row spacing, column
spacing) in mm, i.e. (distance between rows, distance between columns).

A volume affine maps ``(plane, row, col, 1)`` to LPS mm:

* column 0 = slice step vector (LPS mm from one plane to the next);
* column 1 = second IOP triplet * PixelSpacing[0] (one row down);
* column 2 = first IOP triplet * PixelSpacing[1] (one column right);
* column 3 = ImagePositionPatient of plane 0 (centre of its first voxel).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.types import Volume

__all__ = [
    "GAP_FACTOR",
    "ORIENTATION_TOLERANCE",
    "POSITION_TOLERANCE_MM",
    "SPACING_ABSOLUTE_TOLERANCE_MM",
    "SPACING_RELATIVE_TOLERANCE",
    "TILT_TOLERANCE_DEG",
    "SliceGap",
    "SpacingCheck",
    "build_affine",
    "check_spacing",
    "direction_cosines",
    "positions_along_normal",
    "resample_to",
    "same_orientation",
    "slice_normal",
    "sort_along_normal",
    "tilt_angle_deg",
]

ORIENTATION_TOLERANCE = 1e-4  # max |difference| between direction cosines of "same" orientation
UNIT_VECTOR_TOLERANCE = 1e-3  # |norm - 1| and |row . col| allowed in ImageOrientationPatient
POSITION_TOLERANCE_MM = 0.01  # two slices closer than this along the normal share a position
SPACING_ABSOLUTE_TOLERANCE_MM = 0.05  # slice steps within this (or the relative tolerance)
SPACING_RELATIVE_TOLERANCE = 0.01  # of the nominal step count as regular
GAP_FACTOR = 1.5  # a step of more than 1.5 nominal steps is a gap (missing slices)
TILT_TOLERANCE_DEG = 0.1  # angle between the stack axis and the slice normal


def direction_cosines(
    iop: Sequence[float], *, path: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(first triplet, second triplet) of ImageOrientationPatient as unit float64 vectors.

    Raises InvalidInputError ``invalid_orientation`` unless there are six values forming two
    orthogonal unit vectors (within UNIT_VECTOR_TOLERANCE).
    """
    values = np.asarray([float(v) for v in iop], dtype=np.float64) if iop is not None else None
    if values is None or values.shape != (6,) or not np.all(np.isfinite(values)):
        raise InvalidInputError(
            f"ImageOrientationPatient is {iop!r}; expected six direction cosines",
            code="invalid_orientation",
            path=path,
        )
    first, second = values[:3], values[3:]
    norms = (np.linalg.norm(first), np.linalg.norm(second))
    if (
        max(abs(n - 1.0) for n in norms) > UNIT_VECTOR_TOLERANCE
        or abs(float(first @ second)) > UNIT_VECTOR_TOLERANCE
    ):
        raise InvalidInputError(
            f"ImageOrientationPatient {list(values)} is not two orthogonal unit vectors "
            f"(norms {norms[0]:.4f}, {norms[1]:.4f}; dot {float(first @ second):.4f})",
            code="invalid_orientation",
            path=path,
        )
    return first / norms[0], second / norms[1]


def slice_normal(iop: Sequence[float], *, path: str | None = None) -> np.ndarray:
    """Unit normal of the image plane: first triplet x second triplet (LPS)."""
    first, second = direction_cosines(iop, path=path)
    normal = np.cross(first, second)
    return normal / np.linalg.norm(normal)


def same_orientation(iop_a: Sequence[float], iop_b: Sequence[float]) -> bool:
    """True when two ImageOrientationPatient values agree within ORIENTATION_TOLERANCE."""
    a = np.asarray([float(v) for v in iop_a])
    b = np.asarray([float(v) for v in iop_b])
    return a.shape == b.shape and bool(np.max(np.abs(a - b)) <= ORIENTATION_TOLERANCE)


def build_affine(
    *,
    origin_lps_mm: Sequence[float],
    iop: Sequence[float],
    pixel_spacing_mm: Sequence[float],
    slice_step_lps_mm: Sequence[float],
) -> np.ndarray:
    """4x4 affine (plane, row, col, 1) -> LPS mm, laid out as in the module docstring.

    ``pixel_spacing_mm`` is DICOM PixelSpacing (row spacing, column spacing);
    ``slice_step_lps_mm`` is the LPS vector from plane k to plane k+1.
    """
    first, second = direction_cosines(iop)
    affine = np.eye(4)
    affine[:3, 0] = np.asarray(slice_step_lps_mm, dtype=np.float64)
    affine[:3, 1] = second * float(pixel_spacing_mm[0])
    affine[:3, 2] = first * float(pixel_spacing_mm[1])
    affine[:3, 3] = np.asarray(origin_lps_mm, dtype=np.float64)
    return affine + 0.0  # no negative zeros


def positions_along_normal(ipps: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Signed distance (mm) of each ImagePositionPatient (n, 3) along the unit ``normal``."""
    return np.asarray(ipps, dtype=np.float64) @ np.asarray(normal, dtype=np.float64)


def sort_along_normal(ipps: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Indices that order slices by increasing position along ``normal`` (stable)."""
    return np.argsort(positions_along_normal(ipps, normal), kind="stable")


def tilt_angle_deg(sorted_ipps: np.ndarray, normal: np.ndarray) -> float:
    """Angle (degrees) between the stack axis (first to last IPP) and the slice normal.

    Non-zero for a CT acquired with gantry tilt: successive slices shift within the plane.
    0 for fewer than two distinct positions.
    """
    ipps = np.asarray(sorted_ipps, dtype=np.float64)
    if len(ipps) < 2:
        return 0.0
    axis = ipps[-1] - ipps[0]
    along = abs(float(axis @ normal))
    across = float(np.linalg.norm(axis - (axis @ normal) * normal))
    if along < POSITION_TOLERANCE_MM:
        return 0.0
    return math.degrees(math.atan2(across, along))


@dataclass(frozen=True)
class SliceGap:
    """Missing planes after sorted slice ``after_index`` (0-based), at ``position_mm``."""

    after_index: int
    position_mm: float
    gap_mm: float
    missing: int


@dataclass(frozen=True)
class SpacingCheck:
    """Steps between sorted slice positions against the nominal (most common) step."""

    nominal_step_mm: float
    steps_mm: tuple[float, ...]
    gaps: tuple[SliceGap, ...]
    irregular: tuple[int, ...]  # indices i of steps (i -> i+1) neither regular nor a gap

    @property
    def is_regular(self) -> bool:
        return not self.gaps and not self.irregular


def _tolerance_mm(step: float) -> float:
    return max(SPACING_ABSOLUTE_TOLERANCE_MM, SPACING_RELATIVE_TOLERANCE * step)


def _nominal_step(steps: np.ndarray) -> float:
    """The step shared by most slices (ties: the smaller), robust to a few gaps."""
    best, best_count = float(steps[0]), 0
    for candidate in np.sort(steps):
        count = int(np.sum(np.abs(steps - candidate) <= _tolerance_mm(float(candidate))))
        if count > best_count:
            best, best_count = float(candidate), count
    members = steps[np.abs(steps - best) <= _tolerance_mm(best)]
    return float(np.mean(members))


def check_spacing(sorted_positions_mm: Sequence[float]) -> SpacingCheck:
    """Classify the steps between increasing positions as regular, gaps or irregular.

    A step within tolerance of the nominal step is regular; one near an integer multiple
    k >= 2 of it (and above GAP_FACTOR steps) is a gap of k - 1 missing planes; any other
    step is irregular.
    """
    positions = np.asarray(sorted_positions_mm, dtype=np.float64)
    steps = np.diff(positions)
    if steps.size == 0:
        return SpacingCheck(0.0, (), (), ())
    nominal = _nominal_step(steps)
    gaps: list[SliceGap] = []
    irregular: list[int] = []
    for i, step in enumerate(steps):
        ratio = step / nominal if nominal > 0 else math.inf
        k = round(ratio) if math.isfinite(ratio) else 0
        if abs(step - nominal) <= _tolerance_mm(nominal):
            continue
        if ratio > GAP_FACTOR and abs(step - k * nominal) <= k * _tolerance_mm(nominal):
            gaps.append(SliceGap(i, float(positions[i]), float(step), k - 1))
        else:
            irregular.append(i)
    return SpacingCheck(nominal, tuple(float(s) for s in steps), tuple(gaps), tuple(irregular))


def resample_to(
    volume: Volume,
    target_shape: Sequence[int],
    target_affine: np.ndarray,
    *,
    order: int = 1,
    cval: float = 0.0,
) -> Volume:
    """Resample ``volume`` onto the grid (``target_shape``, ``target_affine``) in LPS mm.

    Each target voxel takes the value of ``volume`` at the same LPS point (spline ``order``,
    0 nearest, 1 linear); points outside the source get ``cval``. Returns a new Volume with
    the same units and metadata and a note in ``warnings``.
    """
    target_affine = np.asarray(target_affine, dtype=np.float64)
    shape = tuple(int(n) for n in target_shape)
    if len(shape) != 3 or target_affine.shape != (4, 4):
        raise ValueError(f"target grid must be 3-D with a 4x4 affine, got {shape}")
    mapping = np.linalg.inv(volume.affine) @ target_affine  # target index -> source index
    array = ndimage.affine_transform(
        np.asarray(volume.array, dtype=np.float32),
        mapping[:3, :3],
        offset=mapping[:3, 3],
        output_shape=shape,
        order=order,
        mode="constant",
        cval=cval,
    )
    note = f"resampled from {volume.shape} to {shape} (order {order})"
    return dataclasses.replace(
        volume,
        array=array.astype(np.float32, copy=False),
        affine=target_affine.copy(),
        warnings=(*volume.warnings, note),
    )
