"""Clinical file parsing: columns, units, conversions, Cockcroft-Gault and every problem."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from octoscan.imaging.errors import InvalidInputError
from octoscan.models.clinical import (
    CLINICAL_COLUMNS,
    ClinicalRecord,
    ClinicalTable,
    albumin_g_dl_to_g_l,
    albumin_g_l_to_g_dl,
    check_clinical,
    cockcroft_gault_ml_min,
    creatinine_mg_dl_to_umol_l,
    creatinine_umol_l_to_mg_dl,
    ecog_to_karnofsky,
    format_for,
    hemoglobin_g_dl_to_mmol_l,
    hemoglobin_mmol_l_to_g_dl,
    karnofsky_to_ecog,
    parse_clinical,
    sniff_format,
)

UID = "1.2.826.0.1.3680043.8.498.1"
UID2 = "1.2.826.0.1.3680043.8.498.2"


def _csv(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def _problems(text: str, fmt: str = "csv") -> list[str]:
    return [str(p) for p in check_clinical(text, fmt=fmt).problems]


# --------------------------------------------------------------------------- conversions


def test_hemoglobin_conversion_matches_the_design_pairing():
    # DESIGN.md section 2: 8.0 g/dL pairs with 5.0 mmol/L; 1 g/dL = 0.6206 mmol/L
    assert hemoglobin_g_dl_to_mmol_l(8.0) == pytest.approx(4.9648, abs=1e-4)
    assert hemoglobin_mmol_l_to_g_dl(5.5) == pytest.approx(8.8624, abs=1e-4)
    assert hemoglobin_mmol_l_to_g_dl(hemoglobin_g_dl_to_mmol_l(12.3)) == pytest.approx(12.3)


def test_albumin_and_creatinine_conversions():
    assert albumin_g_dl_to_g_l(3.0) == pytest.approx(30.0)
    assert albumin_g_l_to_g_dl(35.0) == pytest.approx(3.5)
    assert creatinine_mg_dl_to_umol_l(1.0) == pytest.approx(88.4)
    assert creatinine_umol_l_to_mg_dl(150.0) == pytest.approx(1.69683, abs=1e-5)


def test_ecog_karnofsky_mapping():
    assert [ecog_to_karnofsky(g) for g in range(6)] == [
        (90, 100),
        (70, 80),
        (50, 60),
        (30, 40),
        (10, 20),
        (0, 0),
    ]
    assert [karnofsky_to_ecog(k) for k in (100, 90, 80, 70, 60, 50, 40, 10, 0)] == [
        0,
        0,
        1,
        1,
        2,
        2,
        3,
        4,
        5,
    ]
    with pytest.raises(ValueError, match=r"ECOG grade 6; expected an integer 0-5"):
        ecog_to_karnofsky(6)
    with pytest.raises(ValueError, match=r"Karnofsky score 65; expected 0-100 in steps of 10"):
        karnofsky_to_ecog(65)


# --------------------------------------------------------------------------- Cockcroft-Gault


def test_cockcroft_gault_against_hand_computed_values():
    # man, 60 y, 70 kg, creatinine 88.4 umol/L = 1.00 mg/dL: 80 x 70 / 72 = 77.78 mL/min
    male = cockcroft_gault_ml_min(age_years=60, weight_kg=70, creatinine_umol_l=88.4, female=False)
    assert male == pytest.approx(77.7778, abs=1e-4)
    # same woman: x 0.85 = 66.11 mL/min
    female = cockcroft_gault_ml_min(age_years=60, weight_kg=70, creatinine_umol_l=88.4, female=True)
    assert female == pytest.approx(66.1111, abs=1e-4)
    # woman, 75 y, 55 kg, 150 umol/L (1.697 mg/dL): 65 x 55 x 0.85 = 3038.75;
    # 72 x 1.69683 = 122.172; 3038.75 / 122.172 = 24.873 mL/min
    old = cockcroft_gault_ml_min(age_years=75, weight_kg=55, creatinine_umol_l=150, female=True)
    assert old == pytest.approx(24.8727, abs=1e-4)
    # the SI short form (1.23 x (140 - age) x weight / umol/L for men) agrees within 0.5 %
    assert male == pytest.approx(1.23 * 80 * 70 / 88.4, rel=5e-3)
    with pytest.raises(ValueError, match=r"creatinine_umol_l = 0; expected a positive value"):
        cockcroft_gault_ml_min(age_years=60, weight_kg=70, creatinine_umol_l=0, female=False)


def test_clearance_is_computed_only_when_not_given_and_possible():
    table = parse_clinical(
        _csv(
            "study_instance_uid,age_years,sex,weight_kg,creatinine_umol_l,creatinine_clearance_ml_min",
            f"{UID},60,M,70,88.4,",
            f"{UID2},60,M,70,88.4,45",
            "1.2.3,60,O,70,88.4,",
            "1.2.4,60,F,,88.4,",
        ),
        fmt="csv",
    )
    computed, given, other, no_weight = table.records
    assert computed.creatinine_clearance_ml_min == pytest.approx(77.7778, abs=1e-4)
    assert computed.creatinine_clearance_method == "cockcroft_gault"
    assert given.creatinine_clearance_ml_min == 45.0
    assert given.creatinine_clearance_method == "given"
    assert other.creatinine_clearance_ml_min is None
    assert other.cockcroft_gault_inputs_missing() == ("sex (F or M)",)
    assert no_weight.creatinine_clearance_ml_min is None
    assert no_weight.cockcroft_gault_inputs_missing() == ("weight_kg",)


# --------------------------------------------------------------------------- parsing


def test_csv_with_every_column_parses_into_typed_values():
    text = _csv(
        ",".join(
            c for c in CLINICAL_COLUMNS if c not in ("hemoglobin_mmol_l", "albumin_g_l", "ecog")
        ),
        f"{UID},P1,12.5,95,60,55,64,F,68,11.2,4.1,210,0.8,3.9,80,2",
    )
    table = parse_clinical(text, fmt="csv", source="site.csv")
    (rec,) = table.records
    assert rec.row == "line 2"
    assert (rec.study_instance_uid, rec.patient_id) == (UID, "P1")
    assert rec.ki67_percent == 12.5
    assert rec.creatinine_umol_l == 95.0
    assert rec.creatinine_clearance_ml_min == 60.0 and rec.creatinine_clearance_method == "given"
    assert rec.egfr_ml_min_1_73m2 == 55.0
    assert (rec.age_years, rec.sex, rec.weight_kg) == (64.0, "F", 68.0)
    assert (rec.hemoglobin_g_dl, rec.hemoglobin_mmol_l) == (11.2, None)
    assert (rec.wbc_10e9_l, rec.platelets_10e9_l, rec.bilirubin_x_uln) == (4.1, 210.0, 0.8)
    assert (rec.albumin_g_dl, rec.karnofsky, rec.prior_treatment_lines) == (3.9, 80, 2)
    assert isinstance(rec.karnofsky, int) and isinstance(rec.prior_treatment_lines, int)
    assert rec.karnofsky_range() == (80, 80)
    assert table.sha256 == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert table.source == "site.csv"


def test_semicolon_csv_with_decimal_commas_bom_and_missing_tokens():
    data = "\ufeffpatient_id;hemoglobin_mmol_l;ki67_percent;ecog\r\nP1;7,4;NA;2\r\nP2;;-;\r\n"
    table = parse_clinical(data.encode("utf-8"), fmt="csv")
    p1, p2 = table.records
    assert p1.hemoglobin_mmol_l == pytest.approx(7.4)
    assert p1.ki67_percent is None
    assert p1.ecog == 2 and p1.karnofsky_range() == (50, 60)
    assert (p2.hemoglobin_mmol_l, p2.ki67_percent, p2.ecog) == (None, None, None)
    assert p2.karnofsky_range() is None
    assert table.sha256 == hashlib.sha256(data.encode("utf-8")).hexdigest()


def test_json_list_parses_numbers_strings_and_nulls():
    text = json.dumps(
        [
            {"study_instance_uid": UID, "ki67_percent": 3, "sex": "female", "karnofsky": "90"},
            {"patient_id": 12345, "albumin_g_l": 41.0, "hemoglobin_g_dl": None},
        ]
    )
    a, b = parse_clinical(text, fmt="json").records
    assert (a.row, a.ki67_percent, a.sex, a.karnofsky) == ("item 1", 3.0, "F", 90)
    assert (b.row, b.patient_id, b.albumin_g_l, b.hemoglobin_g_dl) == (
        "item 2",
        "12345",
        41.0,
        None,
    )


def test_table_finds_rows_by_study_then_by_patient():
    table = parse_clinical(
        _csv(
            "study_instance_uid,patient_id,ki67_percent",
            f"{UID},P1,5",
            ",P1,7",
            ",P2,9",
        ),
        fmt="csv",
    )
    rec, how = table.find(study_instance_uid=UID, patient_id="P1") or (None, None)
    assert (rec.ki67_percent, how) == (5.0, "study_instance_uid")
    rec, how = table.find(study_instance_uid=UID2, patient_id="P1") or (None, None)
    assert (rec.ki67_percent, how) == (7.0, "patient_id")
    rec, how = table.find(study_instance_uid=None, patient_id="P2") or (None, None)
    assert (rec.ki67_percent, how) == (9.0, "patient_id")
    assert table.find(study_instance_uid=UID2, patient_id="P3") is None
    assert table.find(study_instance_uid=None, patient_id=None) is None


def test_patient_ids_stay_out_of_repr():
    table = parse_clinical(_csv("patient_id,ki67_percent", "SECRET-ID-9,5"), fmt="csv")
    assert "SECRET-ID-9" not in repr(table)
    assert "SECRET-ID-9" not in repr(table.records[0])


def test_table_constructor_rejects_duplicates():
    rec = ClinicalRecord(row="line 2", study_instance_uid=UID)
    with pytest.raises(ValueError, match=r"line 2: duplicate study_instance_uid"):
        ClinicalTable(records=(rec, rec), sha256="0" * 64)
    with pytest.raises(ValueError, match=r"line 3: neither study_instance_uid nor patient_id"):
        ClinicalTable(records=(ClinicalRecord(row="line 3"),), sha256="0" * 64)


def test_format_by_suffix_or_content():
    assert format_for("a.CSV") == "csv" and format_for("b.tsv") == "csv"
    assert format_for("c.json") == "json" and format_for("d.xlsx") is None
    assert sniff_format(b"\xef\xbb\xbf  [{}]") == "json"
    assert sniff_format("patient_id,ki67_percent\n") == "csv"


# --------------------------------------------------------------------------- problems


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (
            "hemoglobin_g_dl",
            "120",
            r"120 g/dL is not plausible; it looks like g/L: give 12 in hemoglobin_g_dl",
        ),
        ("hemoglobin_mmol_l", "12.5", None),
        ("hemoglobin_mmol_l", "18", r"18 mmol/L is not plausible; it looks like g/dL"),
        ("hemoglobin_mmol_l", "125", r"looks like g/L: give 12.5 in hemoglobin_g_dl"),
        (
            "albumin_g_dl",
            "38",
            r"38 g/dL is not plausible; it looks like g/L: put it in albumin_g_l",
        ),
        (
            "albumin_g_l",
            "3.8",
            r"3.8 g/L is not plausible; it looks like g/dL: put it in albumin_g_dl",
        ),
        ("creatinine_umol_l", "1.2", r"looks like mg/dL: give 106 umol/L"),
        (
            "wbc_10e9_l",
            "5400",
            r"looks like cells per microlitre: give 5.4 \(10\^9/L\) in wbc_10e9_l",
        ),
        ("platelets_10e9_l", "250000", r"give 250 \(10\^9/L\) in platelets_10e9_l"),
        ("bilirubin_x_uln", "85", r"looks like a concentration"),
        ("ki67_percent", "120", r"120: expected 0-100 %"),
        ("ki67_percent", "-1", r"-1: expected 0-100 %"),
        ("age_years", "130", r"130: expected 0-120 years"),
        ("weight_kg", "0", r"0: expected 1-400 kg"),
        ("karnofsky", "65", r"65: the Karnofsky scale goes in steps of 10"),
        ("karnofsky", "110", r"110: expected 0-100"),
        ("ecog", "1.5", r"1.5: expected a whole number"),
        ("ecog", "6", r"6: expected 0-5"),
        ("prior_treatment_lines", "2.5", r"2.5: expected a whole number"),
        ("sex", "x", r"'x'; expected F, M or O"),
        ("ki67_percent", "abc", r"'abc' is not a number"),
        ("ki67_percent", "3,5", r"'3,5' is not a number \(use a decimal point\)"),
        ("ki67_percent", "inf", r"'inf' is not a finite number"),
    ],
)
def test_bad_values_are_named_by_row_and_field(column, value, message):
    text = _csv(f"study_instance_uid,{column}", f'{UID},"{value}"')
    problems = _problems(text)
    if message is None:
        assert problems == []
        return
    assert len(problems) == 1
    assert problems[0].startswith(f"line 2, {column}: ")
    assert re.search(message, problems[0]), problems[0]
    with pytest.raises(InvalidInputError, match=rf"line 2, {column}: .*{message}") as info:
        parse_clinical(text, fmt="csv", source="lab.csv")
    assert info.value.code == "invalid_clinical"
    assert str(info.value).startswith("lab.csv: 1 problem(s) in the clinical file")


def test_unknown_columns_name_the_expected_ones():
    problems = _problems(
        _csv("study_instance_uid,hemoglobin,creatinine_mg_dl,kI67_pct,colour", f"{UID},1,1,1,1")
    )
    assert problems[0] == (
        "header, hemoglobin: unknown column; expected hemoglobin_g_dl or hemoglobin_mmol_l "
        "(a measurement's column names its unit)"
    )
    assert problems[1].startswith(
        "header, creatinine_mg_dl: unknown column; expected creatinine_umol_l or "
        "creatinine_clearance_ml_min"
    )
    assert problems[2].startswith("header, ki67_pct: unknown column; expected ki67_percent")
    assert problems[3].startswith(
        "header, colour: unknown column; known columns: study_instance_uid"
    )


def test_row_level_problems():
    text = _csv(
        "study_instance_uid,patient_id,hemoglobin_g_dl,hemoglobin_mmol_l,karnofsky,ecog",
        f"{UID},,11,7,,",  # line 2: two haemoglobin values
        f"{UID2},,,,90,3",  # line 3: Karnofsky and ECOG disagree
        ",,11,,,",  # line 4: no key
        f"{UID},,11,,,",  # line 5: duplicate of line 2? line 2 is invalid, so not a duplicate
        f"{UID},,12,,,",  # line 6: duplicate of line 5
        ",P1,11,,,",
        ",P1,12,,,",  # line 8: duplicate patient row
        "not-a-uid,,11,,,",  # line 9
        f"{UID2},,11",  # line 10: short row
    )
    check = check_clinical(text, fmt="csv")
    assert [str(p) for p in check.problems] == [
        "line 2, hemoglobin_g_dl, hemoglobin_mmol_l: both given; keep one (the other is derived)",
        "line 3, karnofsky, ecog: Karnofsky 90 and ECOG 3 disagree (ECOG 3 is Karnofsky 30-40); "
        "keep one",
        "line 4: no study_instance_uid and no patient_id: the row cannot be matched to a study",
        "line 6, study_instance_uid: duplicate of line 5",
        "line 8, patient_id: duplicate of line 7 (several rows of one patient need a "
        "study_instance_uid each)",
        "line 9, study_instance_uid: not a DICOM UID (digits and dots, at most 64 characters); "
        "is the column swapped with another?",
        "line 10: 3 fields; the header has 6",
    ]
    assert [r.row for r in check.records] == ["line 5", "line 7"]
    assert check.n_rows == 9 and not check.valid
    assert "P1" not in " ".join(str(p) for p in check.problems)


def test_consistent_karnofsky_and_ecog_are_accepted():
    (rec,) = parse_clinical(_csv("patient_id,karnofsky,ecog", "P1,60,2"), fmt="csv").records
    assert rec.karnofsky_range() == (60, 60)


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("", "csv", r"header: empty file: expected a header row"),
        (
            "ki67_percent\n5\n",
            "csv",
            r"header: no key column: expected study_instance_uid or patient_id",
        ),
        ("patient_id,,ki67_percent\nP1,,5\n", "csv", r"header, column 2: a column has no name"),
        (
            "patient_id,ki67_percent,ki67_percent\nP1,5,5\n",
            "csv",
            r"header, ki67_percent: column given twice",
        ),
        ("patient_id,ki67_percent\n", "csv", r"header: no data rows"),
        ('[{"patient_id": "P1", "hb": 3}]', "json", r"item 1, hb: unknown column"),
        ('[{"patient_id": "P1"}, 3]', "json", r"item 2: a int; expected an object"),
        ('[{"patient_id": true}]', "json", r"item 1, patient_id: expected text"),
        (
            '[{"patient_id": "P1", "ki67_percent": true}]',
            "json",
            r"item 1, ki67_percent: True is not a number",
        ),
        ('[{"patient_id": "P1", "sex": 1}]', "json", r"item 1, sex: 1; expected F, M or O"),
    ],
)
def test_file_level_problems(text, fmt, message):
    with pytest.raises(InvalidInputError, match=message):
        parse_clinical(text, fmt=fmt)


@pytest.mark.parametrize(
    ("data", "fmt", "message"),
    [
        ("{bad json", "json", r"not valid JSON: Expecting property name"),
        (
            '{"patient_id": "P1"}',
            "json",
            r"JSON clinical file holds a dict; expected a list of objects",
        ),
        (b"patient_id\n\xff\xfe\n", "csv", r"not UTF-8 text .*save the file as UTF-8"),
    ],
)
def test_unreadable_data_raises(data, fmt, message):
    with pytest.raises(InvalidInputError, match=message) as info:
        check_clinical(data, fmt=fmt, source="x")
    assert info.value.code == "invalid_clinical"


def test_many_problems_are_summarised():
    lines = ["patient_id,ki67_percent"] + [f"P{i},200" for i in range(25)]
    with pytest.raises(
        InvalidInputError, match=r"25 problem\(s\).*line 21, ki67_percent.*; and 5 more$"
    ):
        parse_clinical(_csv(*lines), fmt="csv")


def test_unknown_format_is_a_programming_error():
    with pytest.raises(ValueError, match=r"fmt = 'xlsx'; expected one of"):
        check_clinical("", fmt="xlsx")
