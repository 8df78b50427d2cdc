"""Geometry: direction cosines, affines, slice order, spacing checks, tilt, resampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.geometry import (
    build_affine,
    check_spacing,
    direction_cosines,
    positions_along_normal,
    resample_to,
    same_orientation,
    slice_normal,
    sort_along_normal,
    tilt_angle_deg,
)
from octoscan.imaging.types import AcquisitionInfo, SeriesKind, SourceRef, Volume

AXIAL = (1, 0, 0, 0, 1, 0)
CORONAL = (1, 0, 0, 0, 0, -1)
SAGITTAL = (0, 1, 0, 0, 0, -1)


@pytest.mark.parametrize(
    ("iop", "normal"),
    [(AXIAL, (0, 0, 1)), (CORONAL, (0, 1, 0)), (SAGITTAL, (-1, 0, 0))],
)
def test_slice_normal(iop: tuple, normal: tuple) -> None:
    np.testing.assert_allclose(slice_normal(iop), normal, atol=1e-12)


@pytest.mark.parametrize(
    ("iop", "message"),
    [
        ((1, 0, 0, 0, 1), "expected six direction cosines"),
        ((1, 0, 0, 0, 0.5, 0), "not two orthogonal unit vectors"),
        ((1, 0, 0, 1, 0, 0), "not two orthogonal unit vectors"),
        (None, "expected six direction cosines"),
    ],
)
def test_invalid_orientation(iop: tuple | None, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        direction_cosines(iop, path="x.dcm")  # type: ignore[arg-type]
    assert info.value.code == "invalid_orientation"
    assert info.value.path == "x.dcm"


def test_same_orientation_tolerance() -> None:
    assert same_orientation(AXIAL, (1, 0, 0, 0, 1.00005, 0))
    assert not same_orientation(AXIAL, (1, 0, 0, 0, 0.999, 0.0447))


def test_affine_layout_for_an_oblique_plane() -> None:
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    iop = (c, s, 0.0, 0.0, 0.0, -1.0)  # rows along (c, s, 0), columns going down (feet)
    normal = slice_normal(iop)
    ipp0 = np.array([10.0, -20.0, 30.0])
    affine = build_affine(
        origin_lps_mm=ipp0,
        iop=iop,
        pixel_spacing_mm=(2.0, 0.5),  # row spacing 2 mm, column spacing 0.5 mm
        slice_step_lps_mm=normal * 3.0,
    )
    volume = _volume(np.zeros((4, 5, 6), np.float32), affine)
    # plane 2, row 4, col 5: IPP of plane 2 + 4 rows down + 5 columns right
    expected = (
        ipp0 + 2 * 3.0 * normal + 4 * 2.0 * np.array([0, 0, -1]) + 5 * 0.5 * np.array([c, s, 0])
    )
    np.testing.assert_allclose(volume.index_to_lps(np.array([2, 4, 5])), expected, atol=1e-9)
    assert volume.spacing_mm == pytest.approx((3.0, 2.0, 0.5))
    np.testing.assert_allclose(volume.lps_to_index(expected), [2, 4, 5], atol=1e-9)


def test_sort_along_normal_ignores_input_order() -> None:
    ipps = np.array([[0, 0, 5.0], [0, 0, -5.0], [0, 0, 0.0]])
    assert sort_along_normal(ipps, np.array([0, 0, 1.0])).tolist() == [1, 2, 0]
    assert sort_along_normal(ipps, np.array([0, 0, -1.0])).tolist() == [0, 2, 1]
    assert positions_along_normal(ipps, np.array([0, 0, 1.0])).tolist() == [5, -5, 0]


def test_check_spacing_regular() -> None:
    check = check_spacing([0.0, 2.5, 5.0, 7.5004])
    assert check.is_regular
    assert check.nominal_step_mm == pytest.approx(2.5, abs=1e-3)


def test_check_spacing_gap_with_two_missing_planes() -> None:
    check = check_spacing([0.0, 2.5, 5.0, 12.5, 15.0])
    assert not check.is_regular
    assert len(check.gaps) == 1
    gap = check.gaps[0]
    assert (gap.after_index, gap.position_mm, gap.gap_mm, gap.missing) == (2, 5.0, 7.5, 2)


def test_check_spacing_two_slices_and_a_gap_prefers_smaller_step() -> None:
    check = check_spacing([0.0, 2.0, 6.0])
    assert check.nominal_step_mm == pytest.approx(2.0)
    assert check.gaps[0].missing == 1


def test_check_spacing_irregular() -> None:
    check = check_spacing([0.0, 2.0, 4.0, 5.0, 7.0, 9.0])
    assert check.irregular == (2,)
    assert check.gaps == ()
    assert check_spacing([0.0, 2.0, 4.0, 7.2, 9.2]).irregular == (2,)  # 1.6 steps


def test_check_spacing_single_slice() -> None:
    check = check_spacing([4.0])
    assert check.is_regular and check.steps_mm == ()


def test_tilt_angle() -> None:
    normal = np.array([0, 0, 1.0])
    ipps = np.array([[0, 1.0 * k, 2.5 * k] for k in range(5)])
    assert tilt_angle_deg(ipps, normal) == pytest.approx(math.degrees(math.atan(1 / 2.5)))
    assert tilt_angle_deg(ipps[:, [0, 0, 2]] * [1, 0, 1], normal) == pytest.approx(0.0)
    assert tilt_angle_deg(ipps[:1], normal) == 0.0


# ---------------------------------------------------------------------------- resampling


def _volume(array: np.ndarray, affine: np.ndarray) -> Volume:
    return Volume(
        array=array.astype(np.float32),
        affine=affine,
        units="HU",
        kind=SeriesKind.CT,
        acquisition=AcquisitionInfo(),
        source=SourceRef("1.2", "1.2.3"),
    )


def _grid(shape: tuple[int, int, int], spacing: float, origin: tuple) -> tuple:
    affine = build_affine(
        origin_lps_mm=origin,
        iop=AXIAL,
        pixel_spacing_mm=(spacing, spacing),
        slice_step_lps_mm=(0, 0, spacing),
    )
    return shape, affine


def test_resample_identity_keeps_values() -> None:
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    shape, affine = _grid((2, 3, 4), 2.0, (0, 0, 0))
    out = resample_to(_volume(array, affine), shape, affine)
    np.testing.assert_allclose(out.array, array, atol=1e-5)
    assert out.units == "HU"
    assert "resampled" in out.warnings[-1]


def test_resample_shift_by_one_plane_in_lps() -> None:
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    _, affine = _grid((2, 3, 4), 2.0, (0, 0, 0))
    shape, target = _grid((2, 3, 4), 2.0, (0, 0, 2.0))  # starts one plane higher
    out = resample_to(_volume(array, affine), shape, target, cval=-1000.0)
    np.testing.assert_allclose(out.array[0], array[1], atol=1e-5)
    assert np.all(out.array[1] == -1000.0)


def test_resample_to_finer_grid_matches_source_at_same_points() -> None:
    rng = np.random.default_rng(0)
    array = rng.normal(size=(3, 4, 5)).astype(np.float32)
    _, affine = _grid((3, 4, 5), 2.0, (10, 20, 30))
    shape, target = _grid((5, 7, 9), 1.0, (10, 20, 30))
    src = _volume(array, affine)
    out = resample_to(src, shape, target, order=1)
    # target voxel (2, 4, 6) is LPS (16, 24, 32) = source voxel (1, 2, 3)
    np.testing.assert_allclose(out.index_to_lps(np.array([2, 4, 6])), [16, 24, 32])
    assert out.array[2, 4, 6] == pytest.approx(array[1, 2, 3], abs=1e-5)
    # a midpoint is the mean of its two neighbours (linear interpolation)
    assert out.array[1, 0, 0] == pytest.approx((array[0, 0, 0] + array[1, 0, 0]) / 2, abs=1e-5)


def test_resample_nearest_neighbour_order_zero() -> None:
    array = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    _, affine = _grid((2, 2, 2), 2.0, (0, 0, 0))
    shape, target = _grid((1, 1, 1), 2.0, (2.0, 2.0, 1.9))  # nearest: plane 1, row 1, col 1
    out = resample_to(_volume(array, affine), shape, target, order=0)
    assert out.array.shape == (1, 1, 1)
    assert out.array[0, 0, 0] == array[1, 1, 1]


def test_resample_rejects_bad_grid() -> None:
    shape, affine = _grid((2, 2, 2), 1.0, (0, 0, 0))
    with pytest.raises(ValueError, match="3-D with a 4x4 affine"):
        resample_to(_volume(np.zeros(shape), affine), (2, 2), affine)
