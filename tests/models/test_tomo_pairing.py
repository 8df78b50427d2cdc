"""Emission-CT pairing, CT resampling onto the emission grid and the working grid."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from octoscan.imaging.types import AcquisitionInfo, SeriesKind, SourceRef, Volume
from octoscan.models.tomo_pairing import (
    WorkingGrid,
    bounding_box_lps,
    check_pairing,
    resample_ct_to,
    working_grid,
)
from tests.models.tomo_builders import FRAME_UID, STUDY_UID, grid_affine


def _volume(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    *,
    kind: SeriesKind = SeriesKind.SPECT,
    units: str = "counts",
    frame: str | None = FRAME_UID,
    shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
    study: str = STUDY_UID,
) -> Volume:
    affine = grid_affine(shape, spacing)
    affine[:3, 3] += np.asarray(shift_mm)
    return Volume(
        array=np.zeros(shape, dtype=np.float32),
        affine=affine,
        units=units,
        kind=kind,
        acquisition=AcquisitionInfo(),
        source=SourceRef(study, study + ".7", frame_of_reference_uid=frame),
    )


def test_bounding_box_includes_voxel_edges() -> None:
    vol = _volume((10, 20, 30), (4.0, 2.0, 1.0))
    lo, hi = bounding_box_lps(vol)
    np.testing.assert_allclose(hi - lo, [30.0, 40.0, 40.0])  # x: 30 cols, y: 20 rows, z: 10


def test_same_frame_and_overlap_is_fused() -> None:
    spect = _volume((40, 64, 64), (4.8, 4.8, 4.8))
    ct = _volume((40, 128, 128), (4.8, 2.4, 2.4), kind=SeriesKind.CT, units="HU")
    result = check_pairing(spect, ct, min_overlap_fraction=0.5)
    assert result.fused and result.same_frame_of_reference
    assert result.overlap_fraction == pytest.approx(1.0)
    assert result.reason.startswith("fused: same FrameOfReferenceUID, 100 %")
    assert result.warnings == ()


def test_other_frame_of_reference_is_not_fused_even_when_overlapping() -> None:
    spect = _volume((40, 64, 64), (4.8, 4.8, 4.8))
    ct = _volume((40, 64, 64), (4.8, 4.8, 4.8), kind=SeriesKind.CT, units="HU", frame="1.2.3.4")
    result = check_pairing(spect, ct, min_overlap_fraction=0.5)
    assert not result.fused and not result.same_frame_of_reference
    assert "different FrameOfReferenceUIDs" in result.reason
    assert "registration would be needed" in result.reason


def test_missing_frame_of_reference_is_not_fused() -> None:
    spect = _volume((40, 64, 64), (4.8, 4.8, 4.8), frame=None)
    ct = _volume((40, 64, 64), (4.8, 4.8, 4.8), kind=SeriesKind.CT, units="HU")
    result = check_pairing(spect, ct, min_overlap_fraction=0.5)
    assert not result.fused
    assert "emission volume has no FrameOfReferenceUID" in result.reason


def test_same_frame_without_enough_overlap_is_not_fused() -> None:
    spect = _volume((40, 64, 64), (5.0, 5.0, 5.0))
    # shifted by 3/4 of the emission field along z: 25 % overlap
    ct = _volume((40, 64, 64), (5.0, 5.0, 5.0), kind=SeriesKind.CT, units="HU",
                 shift_mm=(0.0, 0.0, 150.0))  # fmt: skip
    result = check_pairing(spect, ct, min_overlap_fraction=0.5)
    assert not result.fused and result.same_frame_of_reference
    assert result.overlap_fraction == pytest.approx(0.25)
    assert result.overlap_mm[2] == pytest.approx(50.0)
    assert "only 25 % of the emission field lies inside the CT" in result.reason


def test_pairing_warns_about_units_and_studies() -> None:
    spect = _volume((10, 16, 16), (5.0, 5.0, 5.0))
    ct = _volume((10, 16, 16), (5.0, 5.0, 5.0), kind=SeriesKind.CT, units="counts",
                 study="1.2.826.0.1.3680043.8.498.77")  # fmt: skip
    result = check_pairing(spect, ct, min_overlap_fraction=0.5)
    assert result.fused
    assert any("not HU" in w for w in result.warnings)
    assert any("different studies" in w for w in result.warnings)


def test_ct_resampled_onto_emission_grid_in_patient_coordinates() -> None:
    spect = _volume((20, 32, 32), (5.0, 5.0, 5.0))
    ct = _volume((40, 64, 64), (2.5, 2.5, 2.5), kind=SeriesKind.CT, units="HU")
    hu = np.full(ct.shape, -100.0, dtype=np.float32)
    # a 30 mm cube of 300 HU around LPS (20, -10, 1050)
    centre = ct.lps_to_index(np.array([20.0, -10.0, 1050.0]))
    lo = np.round(centre - 6).astype(int)
    hu[lo[0] : lo[0] + 12, lo[1] : lo[1] + 12, lo[2] : lo[2] + 12] = 300.0
    ct = dataclasses.replace(ct, array=hu)
    out = resample_ct_to(ct, spect.shape, spect.affine)
    assert out.shape == spect.shape and out.units == "HU"
    inside = np.round(spect.lps_to_index(np.array([20.0, -10.0, 1050.0]))).astype(int)
    assert out.array[tuple(inside)] == pytest.approx(300.0, abs=5.0)
    far = np.round(spect.lps_to_index(np.array([-40.0, 40.0, 1000.0]))).astype(int)
    assert out.array[tuple(far)] == pytest.approx(-100.0, abs=1.0)
    # emission voxels outside the CT field are air
    small = _volume((4, 8, 8), (2.5, 2.5, 2.5), kind=SeriesKind.CT, units="HU")
    air = resample_ct_to(small, spect.shape, spect.affine)
    assert air.array[0, 0, 0] == -1000.0


def test_working_grid_block_means_and_geometry() -> None:
    vol = _volume((9, 12, 12), (2.0, 2.0, 2.0))
    grid = working_grid(vol, working_voxel_mm=4.0)
    assert grid.factors == (2, 2, 2)
    assert grid.shape == (4, 6, 6)  # the ninth plane does not fill a block
    assert grid.spacing_mm == pytest.approx((4.0, 4.0, 4.0))
    arr = np.arange(9 * 12 * 12, dtype=np.float32).reshape(9, 12, 12)
    reduced = grid.reduce(arr)
    assert reduced[1, 2, 3] == pytest.approx(arr[2:4, 4:6, 6:8].mean())
    # a working voxel's centre is the centre of its native block
    native_centre = vol.index_to_lps(np.array([2.5, 4.5, 6.5]))
    working_centre = grid.affine[:3, :3] @ np.array([1, 2, 3]) + grid.affine[:3, 3]
    np.testing.assert_allclose(working_centre, native_centre)
    mask = np.zeros(grid.shape, dtype=bool)
    mask[1, 2, 3] = True
    expanded = grid.expand(mask)
    assert expanded.shape == vol.shape and expanded.sum() == 8
    assert expanded[2:4, 4:6, 6:8].all()
    box = grid.native_box((slice(1, 2), slice(2, 3), slice(3, 4)))
    assert box == (slice(2, 4), slice(4, 6), slice(6, 8))
    np.testing.assert_array_equal(grid.expand_box(mask[1:2, 2:3, 3:4]), expanded[box])
    np.testing.assert_allclose(grid.to_native_index(np.array([1, 2, 3])), [2.5, 4.5, 6.5])


def test_coarse_voxels_are_kept_as_they_are() -> None:
    vol = _volume((10, 10, 10), (4.8, 4.8, 4.8))
    grid = working_grid(vol, working_voxel_mm=4.0)
    assert isinstance(grid, WorkingGrid)
    assert grid.factors == (1, 1, 1) and grid.shape == vol.shape
    arr = np.random.default_rng(0).random(vol.shape).astype(np.float32)
    np.testing.assert_array_equal(grid.reduce(arr), arr)
