"""Decision tables for the default and NETTER-1 rule sets, reference problems and criteria."""

from __future__ import annotations

import dataclasses

import pytest

from octoscan.models.config import ScoringConfig, load_config
from octoscan.models.decision import decide_eligibility, decide_imaging
from octoscan.models.krenning import grade_from_ratios
from octoscan.models.types import CriterionResult, Lesion, ReferenceRegion

DEFAULT = load_config("default")
NETTER1 = load_config("netter1")


def lesion(
    k: int,
    ratio: float,
    ci: tuple[float, float] | None = None,
    *,
    diameter_mm: float = 20.0,
    ratio_spleen: float | None = None,
    spleen_ci: tuple[float, float] | None = None,
) -> Lesion:
    """A lesion with a given ratio to liver (and interval); grades from the default thresholds."""
    ci = ci or (ratio, ratio)
    t = DEFAULT.krenning
    sci = spleen_ci or ((ratio_spleen, ratio_spleen) if ratio_spleen is not None else None)
    grade = grade_from_ratios(ratio, ratio_spleen, t)
    lo = grade_from_ratios(ci[0], sci[0] if sci else None, t)
    hi = grade_from_ratios(ci[1], sci[1] if sci else None, t)
    return Lesion(
        id=k,
        diameter_mm=diameter_mm,
        peak=ratio * 100.0,
        mean=ratio * 80.0,
        units="counts/pixel",
        ratio_liver=ratio,
        ratio_liver_ci=ci,
        ratio_spleen=ratio_spleen,
        ratio_spleen_ci=sci,
        spleen_reference_organ="spleen" if ratio_spleen is not None else None,
        grade=grade,
        grade_range=(lo, hi),
        borderline=lo != hi,
        region="abdomen",
        grading_method="test",
        ci_method="test",
        center_rc=(10.0 * k, 20.0),
    )


def ref(organ: str, *, plausible: bool = True, warnings: tuple[str, ...] = ()) -> ReferenceRegion:
    return ReferenceRegion(
        organ=organ,
        mean=100.0 if organ == "liver" else 400.0,
        std=5.0,
        variance_of_mean=0.25,
        variance_method="poisson",
        method="test",
        radius_mm=15.0,
        center_rc=(5.0, 5.0),
        plausible=plausible,
        warnings=warnings,
    )


REFS = (ref("liver"), ref("spleen"))


def status(lesions: list[Lesion], cfg: ScoringConfig = DEFAULT, refs=REFS) -> str:
    return decide_eligibility(lesions, refs, config=cfg).status


# (description, lesions, default status, NETTER-1 status)
TABLE = [
    ("no lesion", [], "not_eligible", "not_eligible"),
    ("only grade 1", [lesion(1, 0.3, (0.25, 0.35))], "not_eligible", "not_eligible"),
    ("clearly above liver", [lesion(1, 1.5, (1.3, 1.7))], "eligible", "eligible"),
    ("above liver, not significantly", [lesion(1, 1.05, (0.95, 1.15))], "needs_review", "eligible"),
    (
        "just below liver, interval reaches it",
        [lesion(1, 0.95, (0.85, 1.02))],
        "needs_review",
        "eligible",
    ),
    (
        "just below liver, interval short of it",
        [lesion(1, 0.9, (0.8, 0.99))],
        "needs_review",
        "needs_review",
    ),
    (
        "large lesion below liver beside an avid one",
        [lesion(1, 2.0, (1.8, 2.2)), lesion(2, 0.6, (0.5, 0.7), diameter_mm=20.0)],
        "needs_review",
        "needs_review",
    ),
    (
        "small lesion below liver beside an avid one",
        [lesion(1, 2.0, (1.8, 2.2)), lesion(2, 0.6, (0.5, 0.7), diameter_mm=14.9)],
        "eligible",
        "eligible",
    ),
    (
        "lesion of exactly 15 mm counts as large",
        [lesion(1, 2.0, (1.8, 2.2)), lesion(2, 0.6, (0.5, 0.7), diameter_mm=15.0)],
        "needs_review",
        "needs_review",
    ),
    (
        "grade 4 lesion",
        [lesion(1, 5.0, (4.5, 5.5), ratio_spleen=1.25, spleen_ci=(1.1, 1.4))],
        "eligible",
        "eligible",
    ),
    ("grade 2 only", [lesion(1, 0.7, (0.65, 0.75))], "needs_review", "needs_review"),
]


@pytest.mark.parametrize(("what", "lesions", "default", "netter"), TABLE, ids=[t[0] for t in TABLE])
def test_decision_table(what: str, lesions: list[Lesion], default: str, netter: str) -> None:
    d = decide_eligibility(lesions, REFS, config=DEFAULT)
    n = decide_eligibility(lesions, REFS, config=NETTER1)
    assert (d.status, n.status) == (default, netter), what
    assert d.rule_set == "default" and n.rule_set == "netter1"
    assert d.uptake_rule == "significantly_above_liver"
    assert n.uptake_rule == "not_significantly_below_liver"
    assert d.reasons and n.reasons
    assert d.imaging_status == d.status and d.criteria == ()


def test_reasons_say_why() -> None:
    d = decide_eligibility([], REFS, config=DEFAULT)
    assert d.reasons == ("no lesion found",)
    d = decide_eligibility([lesion(1, 0.3, (0.25, 0.35))], REFS, config=DEFAULT)
    assert d.reasons == ("no lesion reaches Krenning grade 2",)
    d = decide_eligibility(
        [lesion(1, 2.0, (1.8, 2.2)), lesion(2, 0.6, (0.5, 0.7))], REFS, config=DEFAULT
    )
    assert any("lesion 2 (20 mm" in r and "does not count as Krenning >= 3" in r for r in d.reasons)


def test_borderline_at_grade2_goes_to_review_only_when_it_matters() -> None:
    alone = [lesion(1, 0.5, (0.45, 0.56))]
    d = decide_eligibility(alone, REFS, config=DEFAULT)
    assert d.status == "needs_review"
    assert any("straddles the grade-2 threshold" in r for r in d.reasons)
    assert any("not_eligible at their worst, needs_review at their best" in r for r in d.reasons)
    # beside a clearly avid lesion, a small borderline lesion changes nothing
    beside = [lesion(1, 2.0, (1.8, 2.2)), lesion(2, 0.5, (0.45, 0.56), diameter_mm=10.0)]
    assert status(beside) == "eligible"
    # with review_on_borderline off the nominal grade decides
    cfg = dataclasses.replace(
        DEFAULT, decision=dataclasses.replace(DEFAULT.decision, review_on_borderline=False)
    )
    assert status([lesion(1, 0.49, (0.45, 0.56))], cfg) == "not_eligible"
    assert status([lesion(1, 0.51, (0.45, 0.56))], cfg) == "needs_review"


@pytest.mark.parametrize(
    "refs",
    [
        (ref("spleen"),),  # liver missing
        (ref("liver", plausible=False, warnings=("liver above spleen",)), ref("spleen")),
    ],
)
def test_missing_or_implausible_liver_sends_to_review(refs: tuple[ReferenceRegion, ...]) -> None:
    for lesions in ([], [lesion(1, 1.5, (1.3, 1.7))], [lesion(1, 0.3, (0.2, 0.4))]):
        d = decide_eligibility(lesions, refs, config=DEFAULT)
        assert d.status == "needs_review"
        assert any("missing or implausible" in r for r in d.reasons)


def test_implausible_liver_without_review_flag_uses_the_reference() -> None:
    cfg = dataclasses.replace(
        DEFAULT,
        decision=dataclasses.replace(DEFAULT.decision, review_on_implausible_reference=False),
    )
    refs = (ref("liver", plausible=False, warnings=("liver above spleen",)), ref("spleen"))
    d = decide_eligibility([lesion(1, 1.5, (1.3, 1.7))], refs, config=cfg)
    assert d.status == "eligible"
    assert any("used as it is" in r for r in d.reasons)


def test_missing_spleen_does_not_matter() -> None:
    assert status([lesion(1, 1.5, (1.3, 1.7))], refs=(ref("liver"),)) == "eligible"
    assert status([lesion(1, 1.5, (1.3, 1.7))], refs=(ref("liver"), ref("kidney"))) == "eligible"


def test_decide_imaging_matches_the_imaging_status() -> None:
    s, reasons = decide_imaging([lesion(1, 1.5, (1.3, 1.7))], REFS, config=DEFAULT)
    assert s == "eligible" and reasons


def test_clinical_criteria_combine() -> None:
    avid = [lesion(1, 1.5, (1.3, 1.7))]
    fail = CriterionResult("ki67", "fail", "Ki-67 55 % above 50 %", 55.0, "<= 50", "%", "Oslo")
    review = CriterionResult("ki67", "review", "Ki-67 45 % in the 40-50 % band", 45.0)
    missing = CriterionResult("platelets", "not_assessed", "no value given")
    ok = CriterionResult("creatinine", "pass", "90 umol/L below 150", 90.0, "< 150", "umol/L")
    d = decide_eligibility(avid, REFS, config=DEFAULT, criteria=(ok, fail))
    assert (d.status, d.imaging_status) == ("not_eligible", "eligible")
    assert "ki67: Ki-67 55 % above 50 %" in d.reasons
    assert d.criteria == (ok, fail)
    assert decide_eligibility(avid, REFS, config=DEFAULT, criteria=(review,)).status == (
        "needs_review"
    )
    d = decide_eligibility(avid, REFS, config=DEFAULT, criteria=(ok, missing))
    assert d.status == "eligible"
    assert any("not assessed: platelets" in r and "assessed criteria only" in r for r in d.reasons)
    # a failed criterion also overrides a review
    assert decide_eligibility([], REFS, config=DEFAULT, criteria=(fail,)).status == "not_eligible"


def test_review_reasons_turn_eligible_into_review() -> None:
    d = decide_eligibility(
        [lesion(1, 1.5, (1.3, 1.7))], REFS, config=DEFAULT, review_reasons=("heterogeneous",)
    )
    assert (d.status, d.imaging_status) == ("needs_review", "eligible")
    assert "review: heterogeneous" in d.reasons
    d = decide_eligibility([], REFS, config=DEFAULT, review_reasons=("heterogeneous",))
    assert d.status == "not_eligible"


def test_unresolved_findings_send_any_imaging_status_to_review() -> None:
    """A finding of unknown nature that changes the outcome: review whichever way the
    lesions alone point; a failed clinical criterion still makes the study not eligible."""
    focus = ("CT focus: needs_review if a lesion",)
    d = decide_eligibility([], REFS, config=DEFAULT, unresolved_findings=focus)
    assert (d.status, d.imaging_status) == ("needs_review", "not_eligible")
    assert d.reasons == ("no lesion found", "unresolved: CT focus: needs_review if a lesion")
    avid = [lesion(1, 1.5, (1.3, 1.7))]
    d = decide_eligibility(avid, REFS, config=DEFAULT, unresolved_findings=focus)
    assert (d.status, d.imaging_status) == ("needs_review", "eligible")
    fail = CriterionResult("ki67", "fail", "Ki-67 55 % above 50 %", 55.0)
    d = decide_eligibility(avid, REFS, config=DEFAULT, criteria=(fail,), unresolved_findings=focus)
    assert d.status == "not_eligible"


def test_missing_liver_without_review_flag_decides_on_what_is_certain() -> None:
    cfg = dataclasses.replace(
        DEFAULT,
        decision=dataclasses.replace(DEFAULT.decision, review_on_implausible_reference=False),
    )
    refs = (ref("spleen"),)
    above_spleen = lesion(1, 5.0, (4.5, 5.5), ratio_spleen=1.3, spleen_ci=(1.2, 1.4))
    assert decide_eligibility([above_spleen], refs, config=cfg).status == "eligible"
    d = decide_eligibility([lesion(1, 1.5, (1.3, 1.7))], refs, config=cfg)
    assert d.status == "needs_review"
    assert any("standing against liver unknown" in r for r in d.reasons)
    assert decide_eligibility([], refs, config=cfg).status == "not_eligible"
