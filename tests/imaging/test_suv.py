"""SUVbw factor (QIBA): hand-computed numbers for each Units / DecayCorrection case.

Reference case: 75 kg, 370 MBq F-18 (half-life 6586.2 s), scan 3600 s after injection.
decay = 2 ** (-3600 / 6586.2) = 0.684633; START factor = 75000 / (370e6 * 0.684633)
= 2.960750e-4 g/Bq; ADMIN factor = 75000 / 370e6 = 2.027027e-4 g/Bq.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import NuclearMedicineImageStorage, PositronEmissionTomographyImageStorage

from octoscan.imaging.suv import (
    decay_factor,
    philips_scale_factors,
    scan_reference_datetime,
    stored_unit_label,
    suv_bw_factor,
)

START_FACTOR = 2.960750e-4
ADMIN_FACTOR = 2.027027e-4


def _pet(
    *,
    units: str = "BQML",
    decay: str = "START",
    weight: float | None = 75.0,
    dose: float | None = 370e6,
    series_time: str = "110000",
    acquisition_time: str = "110000",
    injection: str = "20240102100000",
    corrected: list[str] | None = None,
    sop: str = PositronEmissionTomographyImageStorage,
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.Modality = sop, "PT"
    ds.Units, ds.DecayCorrection = units, decay
    ds.CorrectedImage = corrected if corrected is not None else ["ATTN", "DECY", "SCAT"]
    if weight is not None:
        ds.PatientWeight = weight
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = "20240102"
    ds.SeriesTime, ds.AcquisitionTime = series_time, acquisition_time
    item = Dataset()
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "77004003", "SCT", "^18^F"
    item.RadionuclideCodeSequence = DicomSequence([code])
    item.RadiopharmaceuticalStartDateTime = injection
    item.RadionuclideHalfLife = 6586.2
    if dose is not None:
        item.RadionuclideTotalDose = dose
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([item])
    return ds


def test_decay_factor() -> None:
    assert decay_factor(6586.2, 6586.2) == pytest.approx(0.5)
    assert decay_factor(3600, 6586.2) == pytest.approx(0.684633, abs=1e-6)
    assert decay_factor(0, 6586.2) == 1.0


def test_bqml_start_decays_dose_to_scan_time() -> None:
    result = suv_bw_factor([_pet()])
    assert result.factor == pytest.approx(START_FACTOR, rel=1e-5)
    assert result.decay_factor == pytest.approx(0.684633, abs=1e-6)
    assert result.weight_g == 75000.0
    assert result.injected_activity_bq == pytest.approx(370e6)
    assert result.scan_datetime == datetime(2024, 1, 2, 11)
    assert any("DecayCorrection START: 3600 s" in r for r in result.reasons)


def test_bqml_admin_applies_no_decay() -> None:
    result = suv_bw_factor([_pet(decay="ADMIN")])
    assert result.factor == pytest.approx(ADMIN_FACTOR, rel=1e-6)
    assert result.decay_factor == 1.0
    assert any("already decay corrected to injection" in r for r in result.reasons)


def test_gml_is_never_scaled_again() -> None:
    result = suv_bw_factor([_pet(units="GML", weight=None, dose=None)])
    assert result.factor == 1.0
    assert result.stored_units == "GML"
    assert "not scaled again" in result.reasons[0]


def test_dose_in_nm_object_is_megabecquerel() -> None:
    result = suv_bw_factor([_pet(dose=370.0, sop=NuclearMedicineImageStorage)])
    assert result.factor == pytest.approx(START_FACTOR, rel=1e-5)


def test_scan_time_rule_series_after_acquisition_uses_earliest_acquisition() -> None:
    datasets = [
        _pet(series_time="113000", acquisition_time="105500"),
        _pet(series_time="113000", acquisition_time="105000"),
        _pet(series_time="113000", acquisition_time="110000"),
    ]
    when, rule = scan_reference_datetime(datasets)
    assert when == datetime(2024, 1, 2, 10, 50)
    assert "earliest acquisition" in rule
    # 3000 s: decay 2 ** (-3000 / 6586.2) = 0.729258; 75000 / (370e6 * 0.729258) = 2.779573e-4
    assert suv_bw_factor(datasets).factor == pytest.approx(2.779573e-4, rel=1e-5)


def test_scan_time_rule_series_before_acquisition_uses_series() -> None:
    datasets = [_pet(series_time="104000", acquisition_time="105000")]
    when, rule = scan_reference_datetime(datasets)
    assert when == datetime(2024, 1, 2, 10, 40)
    assert rule == "series date/time"


def test_scan_time_without_series_time() -> None:
    ds = _pet(acquisition_time="105000")
    del ds.SeriesTime
    assert scan_reference_datetime([ds])[0] == datetime(2024, 1, 2, 10, 50)
    del ds.AcquisitionTime, ds.AcquisitionDate, ds.SeriesDate
    assert scan_reference_datetime([ds]) == (None, "no series or acquisition date/time")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"weight": None}, "no SUV: PatientWeight missing"),
        ({"dose": None}, "no SUV: RadionuclideTotalDose missing"),
        ({"decay": "NONE"}, "no SUV: DecayCorrection NONE"),
        ({"injection": "20240102120000"}, "precedes injection"),
        ({"corrected": ["ATTN"]}, "lacks ['DECY']: not quantitative"),
        ({"corrected": ["DECY"]}, "lacks ['ATTN']"),
        ({"units": "PROPCNTS"}, "no SUV: Units PROPCNTS not supported"),
        ({"units": "CNTS"}, "without Philips scale factors"),
    ],
)
def test_no_factor_with_reason(changes: dict, reason: str) -> None:
    result = suv_bw_factor([_pet(**changes)])
    assert result.factor is None
    assert any(reason in r for r in result.reasons), result.reasons


def test_missing_corrected_image_is_assumed_with_warning() -> None:
    ds = _pet()
    del ds.CorrectedImage
    result = suv_bw_factor([ds])
    assert result.factor == pytest.approx(START_FACTOR, rel=1e-5)
    assert any("CorrectedImage missing" in r for r in result.reasons)


def _philips(suv: str | None, bq: str | None) -> Dataset:
    ds = _pet(units="CNTS")
    block = ds.private_block(0x7053, "Philips PET Private Group", create=True)
    if suv is not None:
        block.add_new(0x00, "DS", suv)
    if bq is not None:
        block.add_new(0x09, "DS", bq)
    return ds


def test_philips_cnts_suv_scale_factor() -> None:
    ds = _philips("0.000123", "2.5")
    assert philips_scale_factors(ds) == (pytest.approx(1.23e-4), pytest.approx(2.5))
    result = suv_bw_factor([ds])
    assert result.factor == pytest.approx(1.23e-4)
    assert result.stored_units == "CNTS"


def test_philips_cnts_activity_scale_factor_then_bqml() -> None:
    result = suv_bw_factor([_philips(None, "2.5")])
    assert result.factor == pytest.approx(2.5 * START_FACTOR, rel=1e-5)
    assert result.to_bq_per_ml == 2.5


def test_philips_factors_need_the_private_creator() -> None:
    ds = _pet(units="CNTS")
    block = ds.private_block(0x7053, "SOMEONE ELSE", create=True)
    block.add_new(0x00, "DS", "0.5")
    assert philips_scale_factors(ds) == (None, None)
    assert suv_bw_factor([ds]).factor is None


def test_unit_labels_and_empty_input() -> None:
    assert stored_unit_label("BQML") == "Bq/mL"
    assert stored_unit_label("GML") == "SUVbw"
    assert stored_unit_label("CNTS") == "counts"
    assert stored_unit_label(None) == "unknown"
    with pytest.raises(ValueError, match="at least one dataset"):
        suv_bw_factor([])


def test_result_is_frozen() -> None:
    result = suv_bw_factor([_pet()])
    with pytest.raises(AttributeError):
        result.factor = 1.0  # type: ignore[misc]
    assert replace(result, factor=2.0).factor == 2.0
