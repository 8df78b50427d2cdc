"""Clinical record of a PRRT candidate: parsed, validated and converted (issue 7).

A clinical file holds one row per patient or per study, keyed by ``study_instance_uid`` or
``patient_id`` (at least one per row). Its columns carry their units in their names:

=============================== ==========================================================
column                          meaning (unit)
=============================== ==========================================================
``ki67_percent``                Ki-67 proliferation index (%)
``creatinine_umol_l``           serum creatinine (umol/L)
``creatinine_clearance_ml_min`` creatinine clearance (mL/min), measured or estimated
``egfr_ml_min_1_73m2``          estimated GFR (mL/min/1.73 m^2); kept, not a CrCl
``age_years``, ``sex``          age (years), sex (F, M or O; female/male/other accepted)
``weight_kg``                   body weight (kg)
``hemoglobin_g_dl``             haemoglobin (g/dL), or ``hemoglobin_mmol_l`` (mmol/L)
``wbc_10e9_l``                  white blood cells (10^9/L)
``platelets_10e9_l``            platelets (10^9/L)
``bilirubin_x_uln``             total bilirubin (multiple of the upper limit of normal)
``albumin_g_dl``                serum albumin (g/dL), or ``albumin_g_l`` (g/L)
``karnofsky`` or ``ecog``       performance status (Karnofsky 0-100 in steps of 10; ECOG 0-5)
``prior_treatment_lines``       lines of treatment given before PRRT (count)
=============================== ==========================================================

A value may be left empty (or ``NA``, ``N/A``, ``null``, ``-``; JSON ``null``): it is then
*missing*, and a criterion that needs it is "not assessed", never assumed fine.

Validation reports every problem with its row (``line N`` of a CSV file, ``item N`` of a
JSON list, counted from 1) and field: an unknown column, a value in the wrong unit (a
``hemoglobin_g_dl`` of 120 is g/L), an impossible value, two values for one quantity, a
duplicate key. Messages never repeat a PatientID or a StudyInstanceUID.

Conversions (units of the criteria may differ from the units given):

* haemoglobin: 1 g/dL = 0.6206 mmol/L (haemoglobin monomer, 16.1 kDa; DESIGN.md section 2
  pairs 8.0 g/dL with 5.0 mmol/L);
* albumin: 1 g/dL = 10 g/L;
* creatinine: 1 mg/dL = 88.4 umol/L (molar mass 113.12 g/mol);
* performance status: ECOG-ACRIN's published comparison of the two scales (ECOG scale: Oken,
  Am J Clin Oncol 1982;5:649), one ECOG grade to a pair of Karnofsky scores: ECOG 0 = 90-100,
  1 = 70-80, 2 = 50-60, 3 = 30-40, 4 = 10-20, 5 = 0. An ECOG grade therefore stands for a
  Karnofsky *range*; a Karnofsky score maps to exactly one ECOG grade.

Creatinine clearance is estimated by Cockcroft-Gault (Cockcroft & Gault, Nephron
1976;16:31) when the file gives age, sex (F or M), weight and creatinine but no clearance::

    CrCl [mL/min] = (140 - age_years) x weight_kg x (0.85 if female) / (72 x Scr [mg/dL])

with Scr [mg/dL] = creatinine_umol_l / 88.4, so the denominator is 0.8145 x creatinine_umol_l
(actual body weight; NETTER-1 names Cockcroft-Gault for its CrCl limit). A clearance given in
the file is used as given.

This module parses text (or bytes) into records; reading the file is
:mod:`octoscan.pipelines.clinical_io`'s job.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from octoscan.imaging.errors import InvalidInputError

HEMOGLOBIN_MMOL_L_PER_G_DL = 0.6206
"""1 g/dL haemoglobin = 0.6206 mmol/L (monomer, 16.1 kDa)."""
ALBUMIN_G_L_PER_G_DL = 10.0
CREATININE_UMOL_L_PER_MG_DL = 88.4
"""1 mg/dL creatinine = 88.4 umol/L (molar mass 113.12 g/mol)."""
COCKCROFT_GAULT_FEMALE_FACTOR = 0.85
COCKCROFT_GAULT_CONSTANT = 72.0
"""Denominator constant of Cockcroft-Gault with creatinine in mg/dL."""

ECOG_TO_KARNOFSKY: Mapping[int, tuple[int, int]] = {
    0: (90, 100),
    1: (70, 80),
    2: (50, 60),
    3: (30, 40),
    4: (10, 20),
    5: (0, 0),
}
"""ECOG grade -> (lowest, highest) Karnofsky score (ECOG-ACRIN's comparison table)."""

KEY_COLUMNS: tuple[str, ...] = ("study_instance_uid", "patient_id")
VALUE_COLUMNS: tuple[str, ...] = (
    "ki67_percent",
    "creatinine_umol_l",
    "creatinine_clearance_ml_min",
    "egfr_ml_min_1_73m2",
    "age_years",
    "sex",
    "weight_kg",
    "hemoglobin_g_dl",
    "hemoglobin_mmol_l",
    "wbc_10e9_l",
    "platelets_10e9_l",
    "bilirubin_x_uln",
    "albumin_g_dl",
    "albumin_g_l",
    "karnofsky",
    "ecog",
    "prior_treatment_lines",
)
CLINICAL_COLUMNS: tuple[str, ...] = KEY_COLUMNS + VALUE_COLUMNS
CLINICAL_FORMATS: tuple[str, ...] = ("csv", "json")

_MISSING_TOKENS = frozenset({"", "na", "n/a", "null", "none", "-"})
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_UID_MAX_LENGTH = 64
_SEX = {"f": "F", "female": "F", "m": "M", "male": "M", "o": "O", "other": "O"}
_MAX_PROBLEMS_IN_MESSAGE = 20


# --------------------------------------------------------------------------------------------
# conversions


def hemoglobin_g_dl_to_mmol_l(g_dl: float) -> float:
    """Haemoglobin g/dL -> mmol/L (x 0.6206)."""
    return g_dl * HEMOGLOBIN_MMOL_L_PER_G_DL


def hemoglobin_mmol_l_to_g_dl(mmol_l: float) -> float:
    """Haemoglobin mmol/L -> g/dL (/ 0.6206)."""
    return mmol_l / HEMOGLOBIN_MMOL_L_PER_G_DL


def albumin_g_dl_to_g_l(g_dl: float) -> float:
    """Albumin g/dL -> g/L (x 10)."""
    return g_dl * ALBUMIN_G_L_PER_G_DL


def albumin_g_l_to_g_dl(g_l: float) -> float:
    """Albumin g/L -> g/dL (/ 10)."""
    return g_l / ALBUMIN_G_L_PER_G_DL


def creatinine_umol_l_to_mg_dl(umol_l: float) -> float:
    """Creatinine umol/L -> mg/dL (/ 88.4)."""
    return umol_l / CREATININE_UMOL_L_PER_MG_DL


def creatinine_mg_dl_to_umol_l(mg_dl: float) -> float:
    """Creatinine mg/dL -> umol/L (x 88.4)."""
    return mg_dl * CREATININE_UMOL_L_PER_MG_DL


def ecog_to_karnofsky(ecog: int) -> tuple[int, int]:
    """The (lowest, highest) Karnofsky score of an ECOG grade (0-5)."""
    if ecog not in ECOG_TO_KARNOFSKY:
        raise ValueError(f"ECOG grade {ecog!r}; expected an integer 0-5")
    return ECOG_TO_KARNOFSKY[ecog]


def karnofsky_to_ecog(karnofsky: int) -> int:
    """The ECOG grade of a Karnofsky score (0-100 in steps of 10)."""
    for grade, (lo, hi) in ECOG_TO_KARNOFSKY.items():
        if lo <= karnofsky <= hi:
            return grade
    raise ValueError(f"Karnofsky score {karnofsky!r}; expected 0-100 in steps of 10")


def cockcroft_gault_ml_min(
    *, age_years: float, weight_kg: float, creatinine_umol_l: float, female: bool
) -> float:
    """Creatinine clearance (mL/min) by Cockcroft-Gault (Nephron 1976;16:31).

    (140 - age) x weight x (0.85 if female) / (72 x creatinine [mg/dL]), creatinine converted
    from umol/L with 1 mg/dL = 88.4 umol/L.
    """
    if creatinine_umol_l <= 0:
        raise ValueError(f"creatinine_umol_l = {creatinine_umol_l!r}; expected a positive value")
    factor = COCKCROFT_GAULT_FEMALE_FACTOR if female else 1.0
    scr_mg_dl = creatinine_umol_l_to_mg_dl(creatinine_umol_l)
    return (140.0 - age_years) * weight_kg * factor / (COCKCROFT_GAULT_CONSTANT * scr_mg_dl)


# --------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class ClinicalRecord:
    """One validated row of a clinical file, values in the units of their names.

    Values are as given (None when missing), except ``creatinine_clearance_ml_min``, which
    is Cockcroft-Gault's estimate when the file gave none and could
    (``creatinine_clearance_method`` says "given" or "cockcroft_gault"). ``row`` names the
    row in its file ("line 3", "item 2"). ``patient_id`` is left out of repr.
    """

    row: str
    study_instance_uid: str | None = None
    patient_id: str | None = field(default=None, repr=False)
    ki67_percent: float | None = None
    creatinine_umol_l: float | None = None
    creatinine_clearance_ml_min: float | None = None
    creatinine_clearance_method: str | None = None
    egfr_ml_min_1_73m2: float | None = None
    age_years: float | None = None
    sex: str | None = None
    weight_kg: float | None = None
    hemoglobin_g_dl: float | None = None
    hemoglobin_mmol_l: float | None = None
    wbc_10e9_l: float | None = None
    platelets_10e9_l: float | None = None
    bilirubin_x_uln: float | None = None
    albumin_g_dl: float | None = None
    albumin_g_l: float | None = None
    karnofsky: int | None = None
    ecog: int | None = None
    prior_treatment_lines: int | None = None

    def karnofsky_range(self) -> tuple[int, int] | None:
        """(lowest, highest) Karnofsky score: the score given, else the ECOG grade's range."""
        if self.karnofsky is not None:
            return (self.karnofsky, self.karnofsky)
        if self.ecog is not None:
            return ecog_to_karnofsky(self.ecog)
        return None

    def cockcroft_gault_inputs_missing(self) -> tuple[str, ...]:
        """Columns Cockcroft-Gault would still need (empty when it can be computed)."""
        missing = [
            name
            for name in ("age_years", "weight_kg", "creatinine_umol_l")
            if getattr(self, name) is None
        ]
        if self.sex not in ("F", "M"):
            missing.insert(1, "sex (F or M)")
        return tuple(missing)


@dataclass(frozen=True)
class ClinicalProblem:
    """One validation problem: ``row`` ("header", "line 3", "item 2"), ``field`` (a column
    name, or None for the row as a whole) and what is wrong."""

    row: str
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.row}, {self.field}" if self.field else self.row
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class ClinicalCheck:
    """Everything validation found: the valid records and the problems (rows with a problem
    are left out of ``records``). ``sha256`` is the hex digest of the bytes parsed."""

    records: tuple[ClinicalRecord, ...]
    problems: tuple[ClinicalProblem, ...]
    n_rows: int
    sha256: str
    source: str = ""

    @property
    def valid(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ClinicalTable:
    """The records of a clinical file, found by study or patient.

    A row with a ``study_instance_uid`` belongs to that study; a row with only a
    ``patient_id`` belongs to every study of the patient that has no row of its own.
    ``sha256`` is the hex digest of the file's bytes (it enters resume fingerprints and
    result provenance); ``source`` names the file.
    """

    records: tuple[ClinicalRecord, ...] = field(repr=False)
    sha256: str
    source: str = ""
    _by_study: dict[str, ClinicalRecord] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _by_patient: dict[str, ClinicalRecord] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        for rec in self.records:
            if rec.study_instance_uid is not None:
                if rec.study_instance_uid in self._by_study:
                    raise ValueError(f"{rec.row}: duplicate study_instance_uid")
                self._by_study[rec.study_instance_uid] = rec
            elif rec.patient_id is not None:
                if rec.patient_id in self._by_patient:
                    raise ValueError(f"{rec.row}: duplicate patient_id")
                self._by_patient[rec.patient_id] = rec
            else:
                raise ValueError(f"{rec.row}: neither study_instance_uid nor patient_id")

    def find(
        self, *, study_instance_uid: str | None, patient_id: str | None
    ) -> tuple[ClinicalRecord, str] | None:
        """(record, "study_instance_uid" or "patient_id") for a study, or None."""
        if study_instance_uid and study_instance_uid in self._by_study:
            return self._by_study[study_instance_uid], "study_instance_uid"
        if patient_id and patient_id in self._by_patient:
            return self._by_patient[patient_id], "patient_id"
        return None


# --------------------------------------------------------------------------------------------
# column rules


class _FieldError(Exception):
    """A value problem inside one field (turned into a ClinicalProblem)."""


@dataclass(frozen=True)
class _Rule:
    """Parsing rule of one numeric column: plausible range [lo, hi] and a wrong-unit hint."""

    lo: float
    hi: float
    integer: bool = False
    step: int | None = None
    hint: Callable[[float], str | None] | None = None
    unit: str = ""


def _hint_hb_g_dl(v: float) -> str | None:
    if 25.0 < v <= 250.0:
        return f"looks like g/L: give {v / 10:g} in hemoglobin_g_dl (1 g/dL = 10 g/L)"
    return None


def _hint_hb_mmol_l(v: float) -> str | None:
    if 15.5 < v <= 25.0:
        return "looks like g/dL: put it in hemoglobin_g_dl"
    if 25.0 < v <= 250.0:
        return f"looks like g/L: give {v / 10:g} in hemoglobin_g_dl (1 g/dL = 10 g/L)"
    return None


def _hint_alb_g_dl(v: float) -> str | None:
    if 7.0 < v <= 70.0:
        return "looks like g/L: put it in albumin_g_l"
    return None


def _hint_alb_g_l(v: float) -> str | None:
    if 0.0 < v < 5.0:
        return "looks like g/dL: put it in albumin_g_dl"
    return None


def _hint_creatinine(v: float) -> str | None:
    if 0.0 < v < 10.0:
        return (
            f"looks like mg/dL: give {creatinine_mg_dl_to_umol_l(v):.0f} umol/L "
            "(1 mg/dL = 88.4 umol/L)"
        )
    return None


def _hint_per_ul(column: str) -> Callable[[float], str | None]:
    def hint(v: float) -> str | None:
        return f"looks like cells per microlitre: give {v / 1000:g} (10^9/L) in {column}"

    return hint


def _hint_bilirubin(v: float) -> str | None:
    return (
        "looks like a concentration (umol/L or mg/dL), not a multiple of the upper limit of "
        "normal: divide by the laboratory's upper limit"
    )


_RULES: Mapping[str, _Rule] = {
    "ki67_percent": _Rule(0.0, 100.0, unit="%"),
    "creatinine_umol_l": _Rule(10.0, 3000.0, hint=_hint_creatinine, unit="umol/L"),
    "creatinine_clearance_ml_min": _Rule(0.0, 400.0, unit="mL/min"),
    "egfr_ml_min_1_73m2": _Rule(0.0, 250.0, unit="mL/min/1.73 m^2"),
    "age_years": _Rule(0.0, 120.0, unit="years"),
    "weight_kg": _Rule(1.0, 400.0, unit="kg"),
    "hemoglobin_g_dl": _Rule(1.0, 25.0, hint=_hint_hb_g_dl, unit="g/dL"),
    "hemoglobin_mmol_l": _Rule(0.6, 15.5, hint=_hint_hb_mmol_l, unit="mmol/L"),
    "wbc_10e9_l": _Rule(0.0, 500.0, hint=_hint_per_ul("wbc_10e9_l"), unit="10^9/L"),
    "platelets_10e9_l": _Rule(0.0, 3000.0, hint=_hint_per_ul("platelets_10e9_l"), unit="10^9/L"),
    "bilirubin_x_uln": _Rule(0.0, 60.0, hint=_hint_bilirubin, unit="x ULN"),
    "albumin_g_dl": _Rule(0.5, 7.0, hint=_hint_alb_g_dl, unit="g/dL"),
    "albumin_g_l": _Rule(5.0, 70.0, hint=_hint_alb_g_l, unit="g/L"),
    "karnofsky": _Rule(0.0, 100.0, integer=True, step=10),
    "ecog": _Rule(0.0, 5.0, integer=True),
    "prior_treatment_lines": _Rule(0.0, 30.0, integer=True, unit="lines"),
}

_EXCLUSIVE: tuple[tuple[str, str], ...] = (
    ("hemoglobin_g_dl", "hemoglobin_mmol_l"),
    ("albumin_g_dl", "albumin_g_l"),
)


def _is_missing(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and raw.strip().lower() in _MISSING_TOKENS)


def _number(raw: Any, *, decimal_comma: bool) -> float:
    if isinstance(raw, bool):
        raise _FieldError(f"{raw!r} is not a number")
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        if decimal_comma and text.count(",") == 1 and "." not in text:
            text = text.replace(",", ".")
        try:
            value = float(text)
        except ValueError:
            if "," in text:
                raise _FieldError(f"{raw!r} is not a number (use a decimal point)") from None
            raise _FieldError(f"{raw!r} is not a number") from None
    else:
        raise _FieldError(f"{raw!r} is not a number")
    if not math.isfinite(value):
        raise _FieldError(f"{raw!r} is not a finite number")
    return value


def _parse_value(column: str, raw: Any, *, decimal_comma: bool) -> float | int | str:
    if column == "sex":
        text = str(raw).strip().lower() if isinstance(raw, str) else None
        if text not in _SEX:
            raise _FieldError(f"{raw!r}; expected F, M or O (female, male, other)")
        return _SEX[text]
    rule = _RULES[column]
    value = _number(raw, decimal_comma=decimal_comma)
    if not rule.lo <= value <= rule.hi:
        hint = rule.hint(value) if rule.hint is not None and value > 0 else None
        unit = f" {rule.unit}" if rule.unit else ""
        if hint:
            raise _FieldError(f"{value:g}{unit} is not plausible; it {hint}")
        raise _FieldError(f"{value:g}: expected {rule.lo:g}-{rule.hi:g}{unit}")
    if rule.integer:
        if value != int(value):
            raise _FieldError(f"{value:g}: expected a whole number")
        whole = int(value)
        if rule.step is not None and whole % rule.step:
            raise _FieldError(f"{whole}: the Karnofsky scale goes in steps of {rule.step}")
        return whole
    return value


def _parse_key(column: str, raw: Any) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise _FieldError("expected text")
    text = str(raw).strip()
    if column == "study_instance_uid" and (len(text) > _UID_MAX_LENGTH or not _UID_RE.match(text)):
        raise _FieldError(
            "not a DICOM UID (digits and dots, at most 64 characters); is the column "
            "swapped with another?"
        )
    return text


def _unknown_column_message(name: str) -> str:
    stem = name.split("_")[0]
    same_stem = [c for c in CLINICAL_COLUMNS if c.split("_")[0] == stem]
    if same_stem:
        return (
            f"unknown column; expected {' or '.join(same_stem)} (a measurement's column "
            "names its unit)"
        )
    close = difflib.get_close_matches(name, CLINICAL_COLUMNS, n=2, cutoff=0.6)
    suggestion = f" (did you mean {' or '.join(close)}?)" if close else ""
    return f"unknown column{suggestion}; known columns: {', '.join(CLINICAL_COLUMNS)}"


def _build_record(
    row: str, values: Mapping[str, Any], *, decimal_comma: bool
) -> tuple[ClinicalRecord | None, list[ClinicalProblem]]:
    problems: list[ClinicalProblem] = []
    parsed: dict[str, Any] = {}
    for column, raw in values.items():
        if column not in CLINICAL_COLUMNS or _is_missing(raw):
            continue
        try:
            if column in KEY_COLUMNS:
                parsed[column] = _parse_key(column, raw)
            else:
                parsed[column] = _parse_value(column, raw, decimal_comma=decimal_comma)
        except _FieldError as exc:
            problems.append(ClinicalProblem(row, column, str(exc)))
    if not any(k in parsed for k in KEY_COLUMNS) and not any(
        p.field in KEY_COLUMNS for p in problems
    ):
        problems.append(
            ClinicalProblem(
                row,
                None,
                "no study_instance_uid and no patient_id: the row cannot be matched to a study",
            )
        )
    for a, b in _EXCLUSIVE:
        if a in parsed and b in parsed:
            problems.append(
                ClinicalProblem(row, f"{a}, {b}", "both given; keep one (the other is derived)")
            )
    if "karnofsky" in parsed and "ecog" in parsed:
        lo, hi = ecog_to_karnofsky(parsed["ecog"])
        if not lo <= parsed["karnofsky"] <= hi:
            problems.append(
                ClinicalProblem(
                    row,
                    "karnofsky, ecog",
                    f"Karnofsky {parsed['karnofsky']} and ECOG {parsed['ecog']} disagree "
                    f"(ECOG {parsed['ecog']} is Karnofsky {lo}-{hi}); keep one",
                )
            )
    if problems:
        return None, problems
    record = ClinicalRecord(row=row, **parsed)
    age, weight, scr = record.age_years, record.weight_kg, record.creatinine_umol_l
    if record.creatinine_clearance_ml_min is not None:
        record = replace(record, creatinine_clearance_method="given")
    elif age is not None and weight is not None and scr is not None and record.sex in ("F", "M"):
        crcl = cockcroft_gault_ml_min(
            age_years=age, weight_kg=weight, creatinine_umol_l=scr, female=record.sex == "F"
        )
        record = replace(
            record, creatinine_clearance_ml_min=crcl, creatinine_clearance_method="cockcroft_gault"
        )
    return record, []


_Row = tuple[str, Mapping[str, Any] | None, str | None]
"""(row label, values by column, or None with what is wrong with the row's shape)."""


def _validate_rows(
    rows: Iterator[_Row], *, decimal_comma: bool
) -> tuple[list[ClinicalRecord], list[ClinicalProblem], int]:
    records: list[ClinicalRecord] = []
    problems: list[ClinicalProblem] = []
    seen_study: dict[str, str] = {}
    seen_patient: dict[str, str] = {}
    n = 0
    for row, values, shape_problem in rows:
        n += 1
        if values is None:
            problems.append(ClinicalProblem(row, None, shape_problem or "unreadable row"))
            continue
        record, row_problems = _build_record(row, values, decimal_comma=decimal_comma)
        if record is not None:
            if record.study_instance_uid is not None:
                first = seen_study.setdefault(record.study_instance_uid, row)
                if first != row:
                    row_problems.append(
                        ClinicalProblem(row, "study_instance_uid", f"duplicate of {first}")
                    )
            elif record.patient_id is not None:
                first = seen_patient.setdefault(record.patient_id, row)
                if first != row:
                    row_problems.append(
                        ClinicalProblem(
                            row,
                            "patient_id",
                            f"duplicate of {first} (several rows of one patient need a "
                            "study_instance_uid each)",
                        )
                    )
        if row_problems:
            problems.extend(row_problems)
        elif record is not None:
            records.append(record)
    return records, problems, n


# --------------------------------------------------------------------------------------------
# formats


def _decode(data: bytes | str, source: str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8",
            code="invalid_clinical",
            path=source or None,
        ) from exc


def _csv_rows(text: str) -> tuple[Iterator[_Row], list[ClinicalProblem], bool]:
    """Rows of a CSV text, header problems, and whether decimal commas are accepted."""
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    problems: list[ClinicalProblem] = []
    for raw_header in reader:
        if any(cell.strip() for cell in raw_header):
            header = [cell.strip().lower() for cell in raw_header]
            break
    if header is None:
        problems.append(ClinicalProblem("header", None, "empty file: expected a header row"))
        return iter(()), problems, False
    seen: set[str] = set()
    for i, name in enumerate(header, start=1):
        if not name:
            problems.append(ClinicalProblem("header", f"column {i}", "a column has no name"))
        elif name in seen:
            problems.append(ClinicalProblem("header", name, "column given twice"))
        elif name not in CLINICAL_COLUMNS:
            problems.append(ClinicalProblem("header", name, _unknown_column_message(name)))
        seen.add(name)
    if not any(k in header for k in KEY_COLUMNS):
        problems.append(
            ClinicalProblem(
                "header", None, "no key column: expected study_instance_uid or patient_id"
            )
        )

    def rows(names: list[str]) -> Iterator[_Row]:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            label = f"line {reader.line_num}"
            if len(cells) != len(names):
                yield label, None, f"{len(cells)} fields; the header has {len(names)}"
            else:
                yield label, dict(zip(names, cells, strict=True)), None

    return rows(header), problems, delimiter != ","


def _json_rows(text: str, source: str) -> tuple[Iterator[_Row], list[ClinicalProblem]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            code="invalid_clinical",
            path=source or None,
        ) from exc
    if not isinstance(data, list):
        raise InvalidInputError(
            f"JSON clinical file holds a {type(data).__name__}; expected a list of objects, "
            "one per patient or study",
            code="invalid_clinical",
            path=source or None,
        )
    problems: list[ClinicalProblem] = []
    items: list[_Row] = []
    for i, item in enumerate(data, start=1):
        label = f"item {i}"
        if not isinstance(item, dict):
            items.append((label, None, f"a {type(item).__name__}; expected an object"))
            continue
        keys = {str(k).strip().lower(): v for k, v in item.items()}
        for name in sorted(set(keys) - set(CLINICAL_COLUMNS)):
            problems.append(ClinicalProblem(label, name, _unknown_column_message(name)))
        items.append((label, keys, None))
    return iter(items), problems


def check_clinical(data: bytes | str, *, fmt: str, source: str = "") -> ClinicalCheck:
    """Validate clinical data (CSV or JSON text) and collect every problem.

    ``fmt``: "csv" (comma, semicolon or tab separated, first row the header; decimal commas
    accepted when the separator is not a comma) or "json" (a list of objects). ``source``
    names the file in messages. Raises :class:`InvalidInputError` (code
    ``invalid_clinical``) only when the data cannot be read at all (not UTF-8, not JSON);
    row and field problems are returned.
    """
    if fmt not in CLINICAL_FORMATS:
        raise ValueError(f"fmt = {fmt!r}; expected one of {CLINICAL_FORMATS}")
    raw_bytes = data.encode("utf-8") if isinstance(data, str) else data
    sha256 = hashlib.sha256(raw_bytes).hexdigest()
    text = _decode(data, source)
    if fmt == "csv":
        rows, problems, decimal_comma = _csv_rows(text)
    else:
        rows, problems = _json_rows(text, source)
        decimal_comma = False
    header_blocks = any(p.row == "header" and p.field is None for p in problems)
    records: list[ClinicalRecord] = []
    n_rows = 0
    if not header_blocks:
        records, row_problems, n_rows = _validate_rows(rows, decimal_comma=decimal_comma)
        problems.extend(row_problems)
        if n_rows == 0:
            problems.append(ClinicalProblem("header", None, "no data rows"))
    bad_rows = {p.row for p in problems}
    records = [r for r in records if r.row not in bad_rows]
    return ClinicalCheck(
        records=tuple(records),
        problems=tuple(problems),
        n_rows=n_rows,
        sha256=sha256,
        source=source,
    )


def parse_clinical(data: bytes | str, *, fmt: str, source: str = "") -> ClinicalTable:
    """Validated clinical data as a :class:`ClinicalTable`.

    Raises :class:`InvalidInputError` (code ``invalid_clinical``) naming every problem (row
    and field; the first 20 when there are more) when any row is invalid.
    """
    check = check_clinical(data, fmt=fmt, source=source)
    if check.problems:
        shown = [str(p) for p in check.problems[:_MAX_PROBLEMS_IN_MESSAGE]]
        more = len(check.problems) - len(shown)
        tail = f"; and {more} more" if more > 0 else ""
        raise InvalidInputError(
            f"{len(check.problems)} problem(s) in the clinical file: " + "; ".join(shown) + tail,
            code="invalid_clinical",
            path=source or None,
        )
    return ClinicalTable(records=check.records, sha256=check.sha256, source=source)


def format_for(name: str) -> str | None:
    """The clinical format of a file name by its suffix (.csv/.tsv/.txt: csv; .json), or None."""
    lower = name.lower()
    if lower.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    if lower.endswith(".json"):
        return "json"
    return None


def sniff_format(data: bytes | str) -> str:
    """The format of clinical data by its first character: "json" for ``[`` or ``{``, else "csv"."""
    head = data[:64].decode("utf-8", "replace") if isinstance(data, bytes) else data[:64]
    return "json" if head.lstrip("\ufeff \t\r\n")[:1] in ("[", "{") else "csv"
