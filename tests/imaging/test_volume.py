"""Volume loaders on DICOM built in code: CT, PET (SUV) and SPECT (NM RECON TOMO, PET IOD)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import JPEGLSLossless, RLELossless

from octoscan.imaging.errors import (
    InconsistentSeriesError,
    InvalidInputError,
    UnsupportedAcquisitionError,
)
from octoscan.imaging.types import SeriesKind, Volume
from octoscan.imaging.volume import load_ct, load_pet, load_spect
from tests.imaging.volume_builders import (
    AXIAL_IOP,
    PetFacts,
    ct_series,
    ct_slice,
    ct_values,
    nm_recon_tomo,
    nm_values,
    pet_series,
    pet_values,
    truncate_pixel_data,
    write,
)

ROW_MM, COL_MM = 0.8, 0.7  # builders' PixelSpacing (row spacing, column spacing)


def _assert_corners_match_ipps(volume: Volume, ipps, row_mm: float, col_mm: float) -> None:
    """index_to_lps of each plane's first and last voxel against that slice's IPP."""
    rows, cols = volume.shape[1:]
    for k, ipp in enumerate(ipps):
        np.testing.assert_allclose(volume.index_to_lps(np.array([k, 0, 0])), ipp, atol=1e-6)
        far = np.asarray(ipp) + np.array([(cols - 1) * col_mm, (rows - 1) * row_mm, 0.0])
        np.testing.assert_allclose(
            volume.index_to_lps(np.array([k, rows - 1, cols - 1])), far, atol=1e-6
        )


# ---------------------------------------------------------------------------- CT


def test_ct_sorted_along_normal_not_by_instance_number(tmp_path: Path) -> None:
    built = ct_series(tmp_path, n=5)
    volume = load_ct(built.paths)
    assert volume.kind is SeriesKind.CT and volume.units == "HU"
    assert volume.shape == (5, 4, 3)
    for k in range(5):
        np.testing.assert_array_equal(volume.array[k], ct_values(k, 4, 3) - 1024.0)
    assert volume.array[3, 2, 1] == 100 * 3 + 10 * 2 + 1 - 24
    _assert_corners_match_ipps(volume, built.ipps, ROW_MM, COL_MM)
    assert volume.spacing_mm == pytest.approx((2.5, ROW_MM, COL_MM))
    np.testing.assert_allclose(volume.affine[:3, 0], [0, 0, 2.5])
    assert volume.source.paths == tuple(str(tmp_path / f"slice_{k:03d}.dcm") for k in range(5))
    assert volume.source.frame_of_reference_uid
    assert volume.warnings == ()


def test_ct_feet_first_normal_sorts_the_other_way(tmp_path: Path) -> None:
    iop = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # normal -z
    for k, z in enumerate((0.0, 2.0, 4.0)):
        write(ct_slice(k, (0.0, 0.0, z), iop=iop, n=3), tmp_path / f"{k}.dcm")
    volume = load_ct(sorted(tmp_path.iterdir()))
    # along the normal (-z) the lowest position is z = 4, slice k = 2
    np.testing.assert_array_equal(volume.array[0], ct_values(2, 4, 3) - 1024.0)
    np.testing.assert_allclose(volume.affine[:3, 0], [0, 0, -2.0])
    np.testing.assert_allclose(volume.affine[:3, 3], [0, 0, 4.0])


def test_ct_missing_slice_is_refused_by_default(tmp_path: Path) -> None:
    built = ct_series(tmp_path, n=5, skip=(2,))
    with pytest.raises(
        InconsistentSeriesError,
        match=r"slice gap of 5\.000 mm \(1 missing plane\(s\) of 2\.500 mm\) after "
        r"slice_001\.dcm at position -7\.500 mm",
    ) as info:
        load_ct(built.paths)
    assert info.value.code == "slice_gap"
    assert info.value.path == str(tmp_path / "slice_003.dcm")


def test_ct_missing_slice_interpolated_when_allowed(tmp_path: Path) -> None:
    built = ct_series(tmp_path, n=5, skip=(2,))
    volume = load_ct(built.paths, allows_gaps=True)
    assert volume.shape == (5, 4, 3)
    np.testing.assert_allclose(volume.array[2], ct_values(2, 4, 3) - 1024.0)  # linear midpoint
    assert any("filled by linear interpolation" in w for w in volume.warnings)
    np.testing.assert_allclose(volume.index_to_lps(np.array([4, 0, 0])), built.ipps[-1])


def test_ct_irregular_spacing(tmp_path: Path) -> None:
    for k, z in enumerate((0.0, 2.0, 4.0, 7.2, 9.2)):
        write(ct_slice(k, (0.0, 0.0, z)), tmp_path / f"{k}.dcm")
    with pytest.raises(InconsistentSeriesError, match=r"slice step 3\.200 mm") as info:
        load_ct(sorted(tmp_path.iterdir()))
    assert info.value.code == "irregular_spacing"


def test_ct_identical_duplicate_dropped(tmp_path: Path) -> None:
    built = ct_series(tmp_path, n=3)
    copy = tmp_path / "copy_of_1.dcm"
    shutil.copy(tmp_path / "slice_001.dcm", copy)
    volume = load_ct([*built.paths, copy])
    assert volume.shape == (3, 4, 3)
    assert any("duplicate slice" in w and "dropped" in w for w in volume.warnings)


def test_ct_duplicate_position_with_other_content_refused(tmp_path: Path) -> None:
    built = ct_series(tmp_path, n=3)
    other = ct_slice(7, built.ipps[1], n=3)  # different pixels, same position
    path = write(other, tmp_path / "other.dcm")
    with pytest.raises(InconsistentSeriesError, match="hold different pixel values") as info:
        load_ct([*built.paths, path])
    assert info.value.code == "duplicate_position"


def test_ct_gantry_tilt_refused(tmp_path: Path) -> None:
    built = ct_series(tmp_path, n=4, shift_per_slice_mm=0.5, gantry_tilt_deg=11.3)
    with pytest.raises(InconsistentSeriesError, match=r"GantryDetectorTilt 11\.3 deg") as info:
        load_ct(built.paths)
    assert info.value.code == "gantry_tilt"


def test_ct_tilt_from_positions_alone_refused(tmp_path: Path) -> None:
    built = ct_series(tmp_path, n=4, shift_per_slice_mm=0.5)
    with pytest.raises(InconsistentSeriesError, match=r"drift 11\.31 deg") as info:
        load_ct(built.paths)
    assert info.value.code == "gantry_tilt"


def test_ct_tilt_allowed_gives_sheared_affine_through_every_ipp(tmp_path: Path) -> None:
    built = ct_series(tmp_path, n=4, shift_per_slice_mm=0.5, gantry_tilt_deg=11.3)
    volume = load_ct(built.paths, allows_tilt=True)
    _assert_corners_match_ipps(volume, built.ipps, ROW_MM, COL_MM)
    np.testing.assert_allclose(volume.affine[:3, 0], [0, 0.5, 2.5])
    assert any("sheared affine" in w for w in volume.warnings)


def test_ct_mixed_matrix_sizes(tmp_path: Path) -> None:
    built = ct_series(tmp_path, n=3)
    odd = write(ct_slice(3, (-5.0, -4.0, -2.5), rows=5, cols=3), tmp_path / "odd.dcm")
    with pytest.raises(
        InconsistentSeriesError, match="Rows x Columns is 5x3; expected 4x3"
    ) as info:
        load_ct([*built.paths, odd])
    assert info.value.code == "mixed_matrix_sizes"
    assert info.value.path == str(odd)


def test_ct_mixed_orientation(tmp_path: Path) -> None:
    built = ct_series(tmp_path, n=3)
    odd = write(ct_slice(3, (-5.0, -4.0, -2.5), iop=(1, 0, 0, 0, 0, -1)), tmp_path / "cor.dcm")
    with pytest.raises(InconsistentSeriesError, match="ImageOrientationPatient is") as info:
        load_ct([*built.paths, odd])
    assert info.value.code == "mixed_orientation"


def test_ct_mixed_pixel_spacing_and_series(tmp_path: Path) -> None:
    built = ct_series(tmp_path / "a", n=3)
    odd = ct_slice(3, (-5.0, -4.0, -2.5))
    odd.PixelSpacing = [0.9, 0.7]
    path = write(odd, tmp_path / "spacing.dcm")
    with pytest.raises(InconsistentSeriesError, match="PixelSpacing is") as info:
        load_ct([*built.paths, path])
    assert info.value.code == "mixed_pixel_spacing"
    other = ct_series(tmp_path / "b", n=2, series_key="other")
    with pytest.raises(InconsistentSeriesError, match="SeriesInstanceUID differs") as info:
        load_ct([*built.paths, other.paths[0]])
    assert info.value.code == "mixed_series"


def test_ct_missing_geometry(tmp_path: Path) -> None:
    ds = ct_slice(0, (0.0, 0.0, 0.0))
    del ds.ImagePositionPatient
    path = write(ds, tmp_path / "nogeo.dcm")
    with pytest.raises(InvalidInputError, match="ImagePositionPatient missing") as info:
        load_ct([path])
    assert info.value.code == "missing_geometry"


def test_single_slice_ct_uses_slice_thickness(tmp_path: Path) -> None:
    path = write(ct_slice(0, (1.0, 2.0, 3.0)), tmp_path / "one.dcm")
    volume = load_ct([path])
    assert volume.shape == (1, 4, 3)
    assert volume.spacing_mm == pytest.approx((2.5, ROW_MM, COL_MM))


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless])
def test_ct_compressed_series(tmp_path: Path, syntax: str) -> None:
    built = ct_series(tmp_path, n=3, rows=16, cols=16)
    for path in built.paths:
        ds = dcmread(path)
        ds.compress(syntax)
        ds.save_as(path, enforce_file_format=True)
    volume = load_ct(built.paths)
    for k in range(3):
        np.testing.assert_array_equal(volume.array[k], ct_values(k, 16, 16) - 1024.0)


def test_ct_truncated_file_in_series(tmp_path: Path) -> None:
    built = ct_series(tmp_path, n=3)
    truncate_pixel_data(tmp_path / "slice_001.dcm", 10)
    with pytest.raises(InvalidInputError, match="declare 24 bytes") as info:
        load_ct(built.paths)
    assert info.value.code == "pixel_data_truncated"
    assert info.value.path == str(tmp_path / "slice_001.dcm")


def test_ct_size_guard_for_the_whole_stack(tmp_path: Path) -> None:
    built = ct_series(tmp_path, n=3)
    with pytest.raises(InvalidInputError, match="the limit is 100 bytes") as info:
        load_ct(built.paths, max_bytes=100)
    assert info.value.code == "image_too_large"


def test_no_files() -> None:
    with pytest.raises(InvalidInputError, match="no files given") as info:
        load_ct([])
    assert info.value.code == "no_files"


def test_multiframe_refused_by_slice_loader(tmp_path: Path) -> None:
    path = nm_recon_tomo(tmp_path / "nm.dcm")
    with pytest.raises(UnsupportedAcquisitionError, match="NumberOfFrames is 4") as info:
        load_ct([path])
    assert info.value.code == "unsupported_multiframe"


# ---------------------------------------------------------------------------- PET

START_FACTOR = 2.960750e-4  # see test_suv.py: 75 kg, 370 MBq F-18, 3600 s


def test_pet_bqml_start_in_suv(tmp_path: Path) -> None:
    built = pet_series(tmp_path)
    volume = load_pet(built.paths)
    assert volume.kind is SeriesKind.PET and volume.units == "SUVbw"
    assert volume.suv_factor == pytest.approx(START_FACTOR, rel=1e-5)
    for k in range(3):
        expected = pet_values(k, 4, 3) * 0.5 * START_FACTOR
        np.testing.assert_allclose(volume.array[k], expected, rtol=1e-5)
    _assert_corners_match_ipps(volume, built.ipps, 4.0, 4.0)
    assert volume.acquisition.radionuclide == "F-18"
    assert volume.acquisition.injected_activity_mbq == pytest.approx(370.0)


def test_pet_admin_not_decayed(tmp_path: Path) -> None:
    volume = load_pet(pet_series(tmp_path, PetFacts(decay_correction="ADMIN")).paths)
    assert volume.suv_factor == pytest.approx(75000 / 370e6)
    np.testing.assert_allclose(volume.array[2], pet_values(2, 4, 3) * 0.5 * 75000 / 370e6)


def test_pet_gml_kept_unscaled(tmp_path: Path) -> None:
    volume = load_pet(pet_series(tmp_path, PetFacts(units="GML", weight_kg=None)).paths)
    assert volume.units == "SUVbw" and volume.suv_factor == 1.0
    np.testing.assert_allclose(volume.array[1], pet_values(1, 4, 3) * 0.5)
    assert any("not scaled again" in w for w in volume.warnings)


def test_pet_without_weight_stays_in_bq_per_ml(tmp_path: Path) -> None:
    volume = load_pet(pet_series(tmp_path, PetFacts(weight_kg=None)).paths)
    assert volume.units == "Bq/mL" and volume.suv_factor is None
    np.testing.assert_allclose(volume.array[0], pet_values(0, 4, 3) * 0.5)
    assert any("no SUV: PatientWeight missing" in w for w in volume.warnings)


def test_pet_unknown_units_kept_with_reason(tmp_path: Path) -> None:
    volume = load_pet(pet_series(tmp_path, PetFacts(units="PROPCNTS")).paths)
    assert volume.units == "PROPCNTS" and volume.suv_factor is None
    assert any("Units PROPCNTS not supported" in w for w in volume.warnings)


def test_pet_philips_cnts(tmp_path: Path) -> None:
    facts = PetFacts(units="CNTS", philips_suv_factor="0.002")
    volume = load_pet(pet_series(tmp_path, facts).paths)
    assert volume.units == "SUVbw"
    np.testing.assert_allclose(volume.array[1], pet_values(1, 4, 3) * 0.5 * 0.002, rtol=1e-6)


# ---------------------------------------------------------------------------- SPECT: NM


@pytest.mark.parametrize("sbs", [4.0, -4.0])
def test_nm_recon_tomo_slice_order_and_signed_spacing(tmp_path: Path, sbs: float) -> None:
    path = nm_recon_tomo(tmp_path / "nm.dcm", spacing_between_slices=sbs)
    volume = load_spect([path])
    assert volume.kind is SeriesKind.SPECT and volume.units == "counts"
    assert volume.shape == (4, 5, 6)
    for p in range(4):  # frames were written in reverse slice order
        np.testing.assert_array_equal(volume.array[p], nm_values(p + 1, 5, 6))
    np.testing.assert_allclose(volume.affine[:3, 0], [0, 0, sbs])
    ipp0 = np.array([-10.0, -12.0, 30.0])
    for p in range(4):
        expected = ipp0 + np.array([5 * 4.0, 4 * 4.0, p * sbs])
        np.testing.assert_allclose(volume.index_to_lps(np.array([p, 4, 5])), expected)
    assert volume.acquisition.radionuclide == "In-111"
    assert volume.acquisition.injected_activity_mbq == pytest.approx(185.0)
    assert volume.acquisition.hours_post_injection == pytest.approx(24.0)


def test_nm_recon_tomo_slice_thickness_when_no_spacing(tmp_path: Path) -> None:
    path = nm_recon_tomo(tmp_path / "nm.dcm", spacing_between_slices=None, slice_thickness=3.3)
    volume = load_spect([path])
    assert volume.spacing_mm == pytest.approx((3.3, 4.0, 4.0))


def test_nm_recon_tomo_top_level_geometry_and_oblique(tmp_path: Path) -> None:
    iop = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)  # coronal slices, normal +y (posterior)
    path = nm_recon_tomo(tmp_path / "nm.dcm", detector_iop=iop, top_level_geometry=True)
    volume = load_spect([path])
    np.testing.assert_allclose(volume.affine[:3, 0], [0, 4.0, 0])
    np.testing.assert_allclose(volume.affine[:3, 1], [0, 0, -4.0])
    np.testing.assert_allclose(volume.affine[:3, 3], [-10.0, -12.0, 30.0])


def test_nm_recon_tomo_without_geometry_assumes_axial(tmp_path: Path) -> None:
    path = nm_recon_tomo(tmp_path / "nm.dcm", detector_ipp=None, detector_iop=None)
    volume = load_spect([path])
    np.testing.assert_allclose(volume.affine[:3, :3], np.diag([4.0, 4.0, 4.0])[:, ::-1])
    assert any("axial slices at the origin assumed" in w for w in volume.warnings)


def test_nm_recon_tomo_rwvm_bq_per_ml(tmp_path: Path) -> None:
    path = nm_recon_tomo(tmp_path / "nm.dcm", rwvm=(0.5, 0.0, "Bq/ml"))
    volume = load_spect([path])
    assert volume.units == "Bq/mL"
    np.testing.assert_allclose(volume.array[0], nm_values(1, 5, 6) * 0.5)


def test_nm_missing_pixel_spacing_assumes_isotropic(tmp_path: Path) -> None:
    path = nm_recon_tomo(tmp_path / "nm.dcm", pixel_spacing=None, spacing_between_slices=3.0)
    volume = load_spect([path])
    assert volume.spacing_mm == pytest.approx((3.0, 3.0, 3.0))
    assert any("PixelSpacing missing" in w for w in volume.warnings)


def test_nm_projections_refused(tmp_path: Path) -> None:
    path = nm_recon_tomo(tmp_path / "nm.dcm", image_type="TOMO")
    with pytest.raises(UnsupportedAcquisitionError, match="raw SPECT projections") as info:
        load_spect([path])
    assert info.value.code == "tomo_projections"


def test_nm_static_is_not_a_volume(tmp_path: Path) -> None:
    path = nm_recon_tomo(tmp_path / "nm.dcm", image_type="STATIC")
    with pytest.raises(InvalidInputError, match="expected RECON TOMO") as info:
        load_spect([path])
    assert info.value.code == "not_a_volume"


def test_nm_multi_dimensional_recon_refused(tmp_path: Path) -> None:
    path = nm_recon_tomo(
        tmp_path / "nm.dcm",
        frame_slice_numbers=[1, 2, 1, 2],
        n_slices=2,
        extra_vector=("EnergyWindowVector", [1, 1, 2, 2]),
    )
    with pytest.raises(UnsupportedAcquisitionError, match="varies across frames") as info:
        load_spect([path])
    assert info.value.code == "multi_dimensional_recon"


def test_nm_repeated_slice_numbers_refused(tmp_path: Path) -> None:
    path = nm_recon_tomo(tmp_path / "nm.dcm", frame_slice_numbers=[1, 2, 2, 3])
    with pytest.raises(InvalidInputError, match="SliceVector repeats") as info:
        load_spect([path])
    assert info.value.code == "frame_vector_invalid"


def test_nm_missing_slice_spacing(tmp_path: Path) -> None:
    path = nm_recon_tomo(tmp_path / "nm.dcm", spacing_between_slices=None, slice_thickness=None)
    with pytest.raises(InvalidInputError, match="SliceThickness missing") as info:
        load_spect([path])
    assert info.value.code == "missing_geometry"


def test_nm_several_objects_refused(tmp_path: Path) -> None:
    a = nm_recon_tomo(tmp_path / "a.dcm")
    b = nm_recon_tomo(tmp_path / "b.dcm")
    with pytest.raises(InvalidInputError, match="2 files given") as info:
        load_spect([a, b])
    assert info.value.code == "multiple_objects"


# ---------------------------------------------------------------------------- SPECT in PET IOD

LU177 = PetFacts(
    radionuclide_code="447553000",
    manufacturer="SIEMENS NM",
    model="Encore2",
    decay_correction="ADMIN",
    dose_bq=7.2e9,
    weight_kg=90.0,
)


def test_quantitative_spect_in_pet_iod(tmp_path: Path) -> None:
    built = pet_series(tmp_path, LU177)
    volume = load_spect(built.paths)
    assert volume.kind is SeriesKind.SPECT and volume.units == "Bq/mL"
    np.testing.assert_allclose(volume.array[2], pet_values(2, 4, 3) * 0.5)  # not SUV-scaled
    assert volume.suv_factor == pytest.approx(90000 / 7.2e9)
    assert volume.acquisition.radionuclide == "Lu-177"
    assert volume.acquisition.injected_activity_mbq == pytest.approx(7200.0)
    _assert_corners_match_ipps(volume, built.ipps, 4.0, 4.0)


def test_load_pet_hands_spect_content_to_load_spect(tmp_path: Path) -> None:
    volume = load_pet(pet_series(tmp_path, LU177).paths)
    assert volume.kind is SeriesKind.SPECT and volume.units == "Bq/mL"
    assert volume.warnings[0].startswith("PET object loaded as SPECT: radionuclide Lu-177")


def test_spect_slices_keep_axial_iop(tmp_path: Path) -> None:
    volume = load_spect(pet_series(tmp_path, LU177).paths)
    np.testing.assert_allclose(volume.affine[:3, 2] / 4.0, AXIAL_IOP[:3])
