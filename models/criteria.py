"""Clinical criteria of a rule set judged against a clinical record (issue 7).

Every enabled criterion of the rule set's ``[clinical]`` tables
(:class:`~octoscan.models.config.ClinicalConfig`) gives one
:class:`~octoscan.models.types.CriterionResult` with the value compared (in the criterion's
unit), the limits, the unit, the source and the verdict:

* ``pass``: the value meets the pass condition (``value <pass_if> pass_limit``);
* ``fail``: it meets the fail condition (``value <fail_if> fail_limit``);
* ``review``: it lies between the two (a review band, e.g. Oslo's Ki-67 40-50 %), or it fails
  only unless a condition the clinical file cannot show (``fail_unless``: NETTER-1's albumin
  and the prothrombin time), or it is a range that spans two verdicts (an ECOG grade stands
  for a Karnofsky range: ECOG 2 = Karnofsky 50-60);
* ``not_assessed``: the value is missing (no row for the study, an empty cell, a clearance
  that Cockcroft-Gault cannot compute, a quantity that is not a column such as life
  expectancy). A missing value is never assumed fine; it does not force a review either
  (:func:`octoscan.models.decision.decide_eligibility` says the decision covers imaging and the
  assessed criteria only).

Values given in another unit than the criterion's are converted (:mod:`octoscan.models.clinical`
names the factors) and the reason says so; values are compared unrounded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from octoscan.models.clinical import (
    ClinicalRecord,
    albumin_g_dl_to_g_l,
    albumin_g_l_to_g_dl,
    creatinine_umol_l_to_mg_dl,
    hemoglobin_g_dl_to_mmol_l,
    hemoglobin_mmol_l_to_g_dl,
)
from octoscan.models.config import ClinicalConfig, CriterionConfig
from octoscan.models.types import CriterionResult

NO_RECORD_REASON = "no row for this study in the clinical file"

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": lambda v, lim: v < lim,
    "<=": lambda v, lim: v <= lim,
    ">": lambda v, lim: v > lim,
    ">=": lambda v, lim: v >= lim,
}


@dataclass(frozen=True)
class Measurement:
    """A value in a criterion's unit: ``low == high`` for a number, a range for an ECOG
    grade read as Karnofsky. ``note`` says how it was obtained ("" when given as is)."""

    low: float
    high: float
    note: str = ""


@dataclass(frozen=True)
class _Spec:
    label: str
    measure: Callable[[ClinicalRecord, str], Measurement | str]
    """Record and unit -> the measurement, or the reason it is missing."""


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _q(text: str, unit: str) -> str:
    """A value or limit with its unit ("40 %", "Karnofsky 60")."""
    return f"Karnofsky {text}" if unit == "Karnofsky" else f"{text} {unit}"


def _plain(attr: str) -> Callable[[ClinicalRecord, str], Measurement | str]:
    def measure(record: ClinicalRecord, unit: str) -> Measurement | str:
        value = getattr(record, attr)
        if value is None:
            return f"no {attr} in the clinical record"
        return Measurement(float(value), float(value))

    return measure


def _creatinine(record: ClinicalRecord, unit: str) -> Measurement | str:
    value = record.creatinine_umol_l
    if value is None:
        return "no creatinine_umol_l in the clinical record"
    if unit == "mg/dL":
        mg = creatinine_umol_l_to_mg_dl(value)
        return Measurement(mg, mg, f"from {_fmt(value)} umol/L")
    return Measurement(value, value)


def _clearance(record: ClinicalRecord, unit: str) -> Measurement | str:
    value = record.creatinine_clearance_ml_min
    if value is not None:
        if record.creatinine_clearance_method == "cockcroft_gault":
            note = (
                f"Cockcroft-Gault from age {_fmt(record.age_years or 0.0)} y, sex "
                f"{record.sex}, weight {_fmt(record.weight_kg or 0.0)} kg, creatinine "
                f"{_fmt(record.creatinine_umol_l or 0.0)} umol/L"
            )
            return Measurement(value, value, note)
        return Measurement(value, value)
    missing = ", ".join(record.cockcroft_gault_inputs_missing())
    reason = (
        "no creatinine_clearance_ml_min in the clinical record, and Cockcroft-Gault lacks "
        f"{missing}"
    )
    if record.egfr_ml_min_1_73m2 is not None:
        reason += (
            f"; an eGFR of {_fmt(record.egfr_ml_min_1_73m2)} mL/min/1.73 m^2 is given, but "
            "the limit is on creatinine clearance: a reader compares"
        )
    return reason


def _hemoglobin(record: ClinicalRecord, unit: str) -> Measurement | str:
    g_dl, mmol = record.hemoglobin_g_dl, record.hemoglobin_mmol_l
    if unit == "g/dL" and g_dl is not None:
        return Measurement(g_dl, g_dl)
    if unit == "mmol/L" and mmol is not None:
        return Measurement(mmol, mmol)
    if mmol is not None:  # wanted in g/dL
        v = hemoglobin_mmol_l_to_g_dl(mmol)
        return Measurement(v, v, f"from {_fmt(mmol)} mmol/L; 1 g/dL = 0.6206 mmol/L")
    if g_dl is not None:  # wanted in mmol/L
        v = hemoglobin_g_dl_to_mmol_l(g_dl)
        return Measurement(v, v, f"from {_fmt(g_dl)} g/dL; 1 g/dL = 0.6206 mmol/L")
    return "no hemoglobin_g_dl or hemoglobin_mmol_l in the clinical record"


def _albumin(record: ClinicalRecord, unit: str) -> Measurement | str:
    g_dl, g_l = record.albumin_g_dl, record.albumin_g_l
    if unit == "g/dL" and g_dl is not None:
        return Measurement(g_dl, g_dl)
    if unit == "g/L" and g_l is not None:
        return Measurement(g_l, g_l)
    if g_l is not None:  # wanted in g/dL
        v = albumin_g_l_to_g_dl(g_l)
        return Measurement(v, v, f"from {_fmt(g_l)} g/L")
    if g_dl is not None:  # wanted in g/L
        v = albumin_g_dl_to_g_l(g_dl)
        return Measurement(v, v, f"from {_fmt(g_dl)} g/dL")
    return "no albumin_g_dl or albumin_g_l in the clinical record"


def _performance(record: ClinicalRecord, unit: str) -> Measurement | str:
    span = record.karnofsky_range()
    if span is None:
        return "no karnofsky or ecog in the clinical record"
    note = "" if record.karnofsky is not None else f"ECOG {record.ecog}"
    return Measurement(float(span[0]), float(span[1]), note)


def _life_expectancy(record: ClinicalRecord, unit: str) -> Measurement | str:
    return "life expectancy is not a column of the clinical file: the reader judges it"


CRITERIA: dict[str, _Spec] = {
    "ki67": _Spec("Ki-67", _plain("ki67_percent")),
    "creatinine": _Spec("creatinine", _creatinine),
    "creatinine_clearance": _Spec("creatinine clearance", _clearance),
    "hemoglobin": _Spec("haemoglobin", _hemoglobin),
    "wbc": _Spec("white blood cells", _plain("wbc_10e9_l")),
    "platelets": _Spec("platelets", _plain("platelets_10e9_l")),
    "bilirubin": _Spec("total bilirubin", _plain("bilirubin_x_uln")),
    "albumin": _Spec("albumin", _albumin),
    "performance": _Spec("performance status", _performance),
    "prior_treatment": _Spec("prior treatment", _plain("prior_treatment_lines")),
    "life_expectancy": _Spec("life expectancy", _life_expectancy),
}
"""Criterion name -> label and how its value is read from a record (names as in
:class:`~octoscan.models.config.ClinicalConfig`)."""


def describe_limit(criterion: CriterionConfig) -> str:
    """The limits in words, e.g. "pass < 40; review 40-50; fail > 50" (unit not included)."""
    passing = f"pass {criterion.pass_if} {criterion.pass_limit:g}"
    if criterion.fail_if == "never":
        return f"{passing}; otherwise review"
    failing = f"fail {criterion.fail_if} {criterion.fail_limit:g}"
    if criterion.fail_unless:
        failing += f" unless {criterion.fail_unless} (not in the clinical file: review)"
    if criterion.pass_limit != criterion.fail_limit:
        lo, hi = sorted((criterion.pass_limit, criterion.fail_limit))
        return f"{passing}; review {lo:g}-{hi:g}; {failing}"
    return f"{passing}; {failing}"


def judge_value(value: float, criterion: CriterionConfig) -> str:
    """Where one value lies: "pass", "fail" or "band" (between the two conditions)."""
    if math.isnan(value):
        raise ValueError("judge_value: value is NaN")
    if _COMPARE[criterion.pass_if](value, criterion.pass_limit):
        return "pass"
    if criterion.fail_if != "never" and _COMPARE[criterion.fail_if](value, criterion.fail_limit):
        return "fail"
    return "band"


def _verdict_of(region: str, criterion: CriterionConfig) -> str:
    if region == "pass":
        return "pass"
    if region == "fail" and not criterion.fail_unless:
        return "fail"
    return "review"


def evaluate_criterion(
    name: str, criterion: CriterionConfig, record: ClinicalRecord | None, *, missing_reason: str
) -> CriterionResult:
    """One criterion against one record (None: no record, every value missing)."""
    spec = CRITERIA[name]
    unit = criterion.unit
    limit = describe_limit(criterion)
    common = {"name": name, "limit": limit, "unit": unit, "source": criterion.source}
    measured = spec.measure(record, unit) if record is not None else missing_reason
    if isinstance(measured, str):
        return CriterionResult(verdict="not_assessed", reason=measured, value=None, **common)
    lo_region = judge_value(measured.low, criterion)
    hi_region = judge_value(measured.high, criterion)
    if measured.low == measured.high:
        value: float | str = round(measured.low, 4)
        shown = f"{spec.label} {_q(_fmt(measured.low), unit)}"
    else:
        value = f"{_fmt(measured.low)}-{_fmt(measured.high)}"
        shown = f"{spec.label} {_q(value, unit)}"
    if measured.note:
        shown += f" ({measured.note})"
    if lo_region != hi_region:
        verdicts = sorted({_verdict_of(lo_region, criterion), _verdict_of(hi_region, criterion)})
        return CriterionResult(
            verdict="review",
            reason=f"{shown} spans the verdicts {' and '.join(verdicts)} ({limit}): review",
            value=value,
            **common,
        )
    region = lo_region
    pass_text = f"{criterion.pass_if} {_q(f'{criterion.pass_limit:g}', unit)}"
    fail_text = f"{criterion.fail_if} {_q(f'{criterion.fail_limit:g}', unit)}"
    if region == "pass":
        reason = f"{shown} passes ({pass_text})"
    elif region == "fail" and not criterion.fail_unless:
        reason = f"{shown} fails ({fail_text})"
    elif region == "fail":
        reason = (
            f"{shown} fails ({fail_text}) unless {criterion.fail_unless}, which the clinical "
            "file does not show: a reader checks"
        )
    elif criterion.fail_if == "never":
        reason = (
            f"{shown} does not meet {pass_text}; the rule set sends it to review rather than "
            "failing it"
        )
    else:
        reason = f"{shown} is in the review band ({limit})"
    return CriterionResult(
        verdict=_verdict_of(region, criterion), reason=reason, value=value, **common
    )


def evaluate_criteria(
    record: ClinicalRecord | None,
    clinical: ClinicalConfig,
    *,
    missing_reason: str = NO_RECORD_REASON,
) -> tuple[CriterionResult, ...]:
    """Every enabled criterion of ``clinical`` against ``record``, in the config's order.

    ``record`` None (no row for the study): every criterion is "not_assessed" with
    ``missing_reason``.
    """
    return tuple(
        evaluate_criterion(name, criterion, record, missing_reason=missing_reason)
        for name, criterion in clinical.items()
        if criterion.enabled
    )


def summarize_criteria(results: Sequence[CriterionResult]) -> str:
    """Overall clinical verdict: "fail" when any criterion fails, else "review" when any
    needs review, else "pass" (criteria not assessed do not count)."""
    verdicts = {r.verdict for r in results}
    if "fail" in verdicts:
        return "fail"
    if "review" in verdicts:
        return "review"
    return "pass"
