"""Acquisition facts from headers: times, radionuclide, activity units, SPECT-in-PET."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    CTImageStorage,
    NuclearMedicineImageStorage,
    PositronEmissionTomographyImageStorage,
    SecondaryCaptureImageStorage,
)

from octoscan.imaging.acquisition import (
    acquisition_datetime,
    injected_dose_unit,
    is_quantitative_spect_in_pet_iod,
    normalise_radionuclide,
    nuclide_from_half_life,
    parse_dicom_date,
    parse_dicom_datetime,
    parse_dicom_time,
    quantitative_spect_evidence,
    read_acquisition_info,
    read_acquisition_info_with_warnings,
)


def _code(value: str, scheme: str = "SCT", meaning: str = "x") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _dataset(
    *,
    sop: str = NuclearMedicineImageStorage,
    modality: str = "NM",
    code: Dataset | None = None,
    dose: float | None = 185.0,
    start_dt: str | None = "20240102100000",
    start_time: str | None = None,
    half_life: float | None = None,
    radionuclide_text: str | None = None,
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.Modality = sop, modality
    ds.Manufacturer, ds.ManufacturerModelName = "ACME", "Cam 1"
    ds.AcquisitionDate, ds.AcquisitionTime = "20240102", "113000"
    ds.PatientWeight = 70
    ds.ActualFrameDuration = 600000
    item = Dataset()
    if code is not None:
        item.RadionuclideCodeSequence = DicomSequence([code])
    if dose is not None:
        item.RadionuclideTotalDose = dose
    if start_dt is not None:
        item.RadiopharmaceuticalStartDateTime = start_dt
    if start_time is not None:
        item.RadiopharmaceuticalStartTime = start_time
    if half_life is not None:
        item.RadionuclideHalfLife = half_life
    if radionuclide_text is not None:
        item.Radionuclide = radionuclide_text
    pharm = Dataset()
    pharm.CodeValue, pharm.CodingSchemeDesignator = "446800006", "SCT"
    pharm.CodeMeaning = "pentetreotide"
    item.RadiopharmaceuticalCodeSequence = DicomSequence([pharm])
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([item])
    return ds


# ---------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20240102", date(2024, 1, 2)),
        ("2024.01.02", date(2024, 1, 2)),  # ACR-NEMA
        ("20241340", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_dicom_date(text: str | None, expected: date | None) -> None:
    assert parse_dicom_date(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("101530.123456", time(10, 15, 30, 123456)),
        ("101530.5", time(10, 15, 30, 500000)),
        ("1015", time(10, 15)),
        ("10", time(10)),
        ("10:15:30.25", time(10, 15, 30, 250000)),  # ACR-NEMA
        ("2515", None),
        ("abc", None),
    ],
)
def test_parse_dicom_time(text: str, expected: time | None) -> None:
    assert parse_dicom_time(text) == expected


def test_parse_dicom_datetime_with_offset_and_fraction() -> None:
    value = parse_dicom_datetime("20240102101530.25+0130")
    assert value is not None
    assert value.replace(tzinfo=None) == datetime(2024, 1, 2, 10, 15, 30, 250000)
    assert value.utcoffset() == timedelta(hours=1, minutes=30)
    assert parse_dicom_datetime("2024010210") == datetime(2024, 1, 2, 10)
    assert parse_dicom_datetime("20240102").tzinfo is None  # type: ignore[union-attr]
    assert parse_dicom_datetime("garbage") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("^111^Indium", "In-111"),
        ("177 Lutetium", "Lu-177"),
        ("TC99M", "Tc-99m"),
        ("^99m^Technetium", "Tc-99m"),
        ("F-18", "F-18"),
        ("18F-FDG", "F-18"),
        ("Ga68", "Ga-68"),
        ("Cu-64", "Cu-64"),
        ("I-123", "I-123"),
        ("Lu177-DOTATATE", "Lu-177"),
        ("FDG", None),
        ("", None),
    ],
)
def test_normalise_radionuclide(text: str, expected: str | None) -> None:
    assert normalise_radionuclide(text) == expected


def test_nuclide_from_half_life_needs_one_match() -> None:
    assert nuclide_from_half_life(6586.2).name == "F-18"  # type: ignore[union-attr]
    assert nuclide_from_half_life(574300).name == "Lu-177"  # type: ignore[union-attr]
    assert nuclide_from_half_life(282000.0) is None  # Ga-67 and Zr-89 both within 2 %
    assert nuclide_from_half_life(1e9) is None
    assert nuclide_from_half_life(None) is None


# ---------------------------------------------------------------------------- radionuclide


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (_code("56609000"), "In-111"),
        (_code("C-145A4", "SRT"), "In-111"),
        (_code("C-101ED", "99SDM", "177 Lutetium"), "Lu-177"),
        (_code("35337001"), "Ga-68"),
        (_code("72454006"), "Tc-99m"),
        (_code("3932008"), "Cu-64"),
        (_code("77004003"), "F-18"),
        (_code("21572004"), "I-123"),
        (_code("999", "99LOCAL", "^111^Indium"), "In-111"),  # unknown code: meaning parsed
    ],
)
def test_radionuclide_from_code_sequence(code: Dataset, expected: str) -> None:
    info = read_acquisition_info(_dataset(code=code))
    assert info.radionuclide == expected
    assert info.radionuclide_code == f"{code.CodingSchemeDesignator} {code.CodeValue}"
    assert info.radiopharmaceutical == "pentetreotide"


def test_radionuclide_from_text_then_half_life() -> None:
    info = read_acquisition_info(_dataset(radionuclide_text="In111"))
    assert info.radionuclide == "In-111"
    info, warnings = read_acquisition_info_with_warnings(_dataset(half_life=242300.0))
    assert info.radionuclide == "In-111"
    assert info.half_life_s == 242300.0
    assert any("inferred from RadionuclideHalfLife" in w for w in warnings)
    info, warnings = read_acquisition_info_with_warnings(_dataset())
    assert info.radionuclide is None
    assert any("radionuclide unknown" in w for w in warnings)


def test_tabulated_half_life_when_missing() -> None:
    info, warnings = read_acquisition_info_with_warnings(_dataset(code=_code("56609000")))
    assert info.half_life_s == pytest.approx(242326.0)
    assert any("tabulated" in w for w in warnings)


# ---------------------------------------------------------------------------- activity


@pytest.mark.parametrize(
    ("sop", "modality", "unit"),
    [
        (NuclearMedicineImageStorage, "NM", "MBq"),
        (PositronEmissionTomographyImageStorage, "PT", "Bq"),
        (PositronEmissionTomographyImageStorage, "NM", "Bq"),  # SOP class decides
        (SecondaryCaptureImageStorage, "PT", "Bq"),
        (SecondaryCaptureImageStorage, "NM", "MBq"),
        (CTImageStorage, "CT", None),
    ],
)
def test_injected_dose_unit(sop: str, modality: str, unit: str | None) -> None:
    ds = Dataset()
    ds.SOPClassUID, ds.Modality = sop, modality
    assert injected_dose_unit(ds) == unit


def test_activity_units_by_storage_class() -> None:
    nm = read_acquisition_info(_dataset(dose=185.0))
    assert nm.injected_activity_mbq == pytest.approx(185.0)
    pet = _dataset(sop=PositronEmissionTomographyImageStorage, modality="PT", dose=370e6)
    assert read_acquisition_info(pet).injected_activity_mbq == pytest.approx(370.0)
    spect_in_pet = _dataset(sop=PositronEmissionTomographyImageStorage, modality="PT", dose=7.2e9)
    assert read_acquisition_info(spect_in_pet).injected_activity_mbq == pytest.approx(7200.0)


def test_implausible_activity_warns() -> None:
    info, warnings = read_acquisition_info_with_warnings(_dataset(dose=185e6))  # Bq in NM
    assert info.injected_activity_mbq == pytest.approx(185e6)
    assert any("outside the plausible" in w and "MBq" in w for w in warnings)
    pet = _dataset(sop=PositronEmissionTomographyImageStorage, modality="PT", dose=370.0)
    info, warnings = read_acquisition_info_with_warnings(pet)
    assert info.injected_activity_mbq == pytest.approx(370e-6)
    assert any("read as Bq" in w for w in warnings)


def test_missing_dose_and_weight_warn() -> None:
    ds = _dataset(dose=None)
    ds.PatientWeight = 0
    info, warnings = read_acquisition_info_with_warnings(ds)
    assert info.injected_activity_mbq is None
    assert info.patient_weight_kg is None
    assert any("RadionuclideTotalDose missing" in w for w in warnings)
    assert any("PatientWeight missing" in w for w in warnings)


# ---------------------------------------------------------------------------- times


def test_injection_and_scan_on_different_days() -> None:
    info = read_acquisition_info(_dataset(start_dt="20240101100000"))
    assert info.injection_datetime == datetime(2024, 1, 1, 10)
    assert info.acquisition_datetime == datetime(2024, 1, 2, 11, 30)
    assert info.hours_post_injection == pytest.approx(25.5)
    assert info.frame_duration_s == pytest.approx(600.0)
    assert info.patient_weight_kg == pytest.approx(70.0)


def test_start_datetime_preferred_over_time() -> None:
    info = read_acquisition_info(_dataset(start_dt="20240101100000", start_time="110000"))
    assert info.hours_post_injection == pytest.approx(25.5)


def test_time_only_injection_uses_study_date() -> None:
    ds = _dataset(start_dt=None, start_time="100000.5")
    ds.StudyDate = "20240102"
    info, warnings = read_acquisition_info_with_warnings(ds)
    assert info.injection_datetime == datetime(2024, 1, 2, 10, 0, 0, 500000)
    assert info.hours_post_injection == pytest.approx(1.5 - 0.5 / 3600)
    assert any("injection date taken from StudyDate" in w for w in warnings)


def test_time_only_injection_after_scan_clock_moves_back_a_day() -> None:
    ds = _dataset(start_dt=None, start_time="230000")
    ds.StudyDate = "20240102"
    info, warnings = read_acquisition_info_with_warnings(ds)
    assert info.injection_datetime == datetime(2024, 1, 1, 23)
    assert info.hours_post_injection == pytest.approx(12.5)
    assert any("moved back 1 day" in w for w in warnings)


def test_timezone_offsets_are_converted_to_site_time() -> None:
    ds = _dataset(start_dt="20240102090000+0000")
    ds.TimezoneOffsetFromUTC = "+0100"
    info = read_acquisition_info(ds)
    assert info.injection_datetime == datetime(2024, 1, 2, 10)
    assert info.hours_post_injection == pytest.approx(1.5)
    assert info.injection_datetime.tzinfo is None  # type: ignore[union-attr]


def test_offsets_on_both_datetimes() -> None:
    ds = _dataset(start_dt="20240102090000+0000")
    del ds.AcquisitionDate, ds.AcquisitionTime
    ds.AcquisitionDateTime = "20240102113000+0200"
    info = read_acquisition_info(ds)
    assert info.hours_post_injection == pytest.approx(0.5)
    assert info.acquisition_datetime == datetime(2024, 1, 2, 11, 30)


def test_acquisition_datetime_precedence() -> None:
    ds = Dataset()
    ds.ContentDate, ds.ContentTime = "20240105", "080000"
    assert acquisition_datetime(ds) == datetime(2024, 1, 5, 8)
    ds.SeriesDate, ds.SeriesTime = "20240104", "080000"
    assert acquisition_datetime(ds) == datetime(2024, 1, 4, 8)
    ds.AcquisitionTime = "090000"  # date from SeriesDate
    assert acquisition_datetime(ds) == datetime(2024, 1, 4, 9)
    ds.AcquisitionDateTime = "20240103070000.5"
    assert acquisition_datetime(ds) == datetime(2024, 1, 3, 7, 0, 0, 500000)


def test_acquisition_before_injection_leaves_hours_unknown() -> None:
    info, warnings = read_acquisition_info_with_warnings(_dataset(start_dt="20240102120000"))
    assert info.hours_post_injection is None
    assert any("precedes injection" in w for w in warnings)


def test_missing_radiopharmaceutical_sequence() -> None:
    ds = _dataset()
    del ds.RadiopharmaceuticalInformationSequence
    info, warnings = read_acquisition_info_with_warnings(ds)
    assert info.radionuclide is None and info.injection_datetime is None
    assert info.injected_activity_mbq is None
    assert any("RadiopharmaceuticalInformationSequence missing" in w for w in warnings)


# ---------------------------------------------------------------------------- SPECT in PET


def _pet_object(
    *, code: str | None, manufacturer: str = "ACME", model: str = "X", description: str = ""
) -> Dataset:
    ds = _dataset(
        sop=PositronEmissionTomographyImageStorage,
        modality="PT",
        code=_code(code) if code else None,
        dose=370e6,
    )
    ds.Manufacturer, ds.ManufacturerModelName = manufacturer, model
    ds.SeriesDescription = description
    return ds


@pytest.mark.parametrize(
    ("code", "manufacturer", "model", "description", "expected", "reason"),
    [
        ("447553000", "ACME", "X", "", True, "single-photon"),  # Lu-177
        ("56609000", "ACME", "X", "", True, "single-photon"),  # In-111
        (None, "SIEMENS NM", "Encore2", "", True, "NM camera"),
        (None, "GE MEDICAL SYSTEMS", "Discovery NM/CT 670", "", True, "gamma camera"),
        (None, "ACME", "X", "xSPECT Quant", True, "names a SPECT"),
        (None, "GE MEDICAL SYSTEMS", "Discovery MI", "PET WB", False, None),
        ("77004003", "SIEMENS NM", "Symbia", "SPECT", False, None),  # F-18: a PET
        ("35337001", "SIEMENS", "Biograph", "", False, None),
    ],
)
def test_quantitative_spect_in_pet_iod(
    code: str | None,
    manufacturer: str,
    model: str,
    description: str,
    expected: bool,
    reason: str | None,
) -> None:
    ds = _pet_object(code=code, manufacturer=manufacturer, model=model, description=description)
    assert is_quantitative_spect_in_pet_iod(ds) is expected
    evidence = quantitative_spect_evidence(ds)
    assert (evidence is None) is (reason is None)
    if reason is not None:
        assert reason in evidence  # type: ignore[operator]


def test_nm_object_is_never_spect_in_pet() -> None:
    assert not is_quantitative_spect_in_pet_iod(_dataset(code=_code("447553000")))
