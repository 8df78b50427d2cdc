"""How the study pipeline carries a tomographic decision's review reasons and unresolved
findings into the study's decision (pipelines/study.py), with and without clinical criteria."""

from __future__ import annotations

from octoscan.models.config import load_config
from octoscan.models.decision import decide_eligibility
from octoscan.models.types import CriterionResult, Lesion, ReferenceRegion
from octoscan.pipelines.study import _redecide, _tomo_review_reasons

CONFIG = load_config("default")
LIVER = ReferenceRegion(
    organ="liver",
    mean=100.0,
    std=5.0,
    variance_of_mean=0.1,
    variance_method="poisson",
    method="test",
    radius_mm=15.0,
)
FOCUS = "CT shows 1 hypodense liver lesion(s) without a hot spot (...)"


def _avid() -> Lesion:
    return Lesion(
        id=1,
        diameter_mm=20.0,
        peak=150.0,
        mean=120.0,
        units="counts",
        ratio_liver=1.5,
        ratio_liver_ci=(1.3, 1.7),
        ratio_spleen=None,
        ratio_spleen_ci=None,
        spleen_reference_organ=None,
        grade=3,
        grade_range=(3, 3),
        borderline=False,
        region="liver",
        grading_method="test",
        ci_method="test",
        center_lps_mm=(-80.0, -20.0, 1030.0),
    )


def test_unresolved_findings_survive_the_study_decision_and_clinical_criteria() -> None:
    tomo = decide_eligibility(
        [], [LIVER], config=CONFIG, review_reasons=("heterogeneous",), unresolved_findings=(FOCUS,)
    )
    assert (tomo.status, tomo.imaging_status) == ("needs_review", "not_eligible")
    review, unresolved = _tomo_review_reasons(tomo)
    assert review == ("heterogeneous",) and unresolved == (FOCUS,)
    # the study's decision, remade from the same parts, is the scorer's
    again = decide_eligibility(
        [], [LIVER], config=CONFIG, review_reasons=review, unresolved_findings=unresolved
    )
    assert again == tomo
    # with clinical criteria: reproduced first (no RuntimeError), then decided with them
    ok = CriterionResult("ki67", "pass", "Ki-67 5 % at most 20 %", 5.0)
    fail = CriterionResult("ki67", "fail", "Ki-67 55 % above 50 %", 55.0)
    kw = {"review_reasons": review, "scorer": "tomographic", "unresolved_findings": unresolved}
    assert _redecide([], [LIVER], tomo, CONFIG, criteria=(ok,), **kw).status == "needs_review"
    assert _redecide([], [LIVER], tomo, CONFIG, criteria=(fail,), **kw).status == "not_eligible"
    # an eligible study with the same finding goes to review as well
    eligible = decide_eligibility([_avid()], [LIVER], config=CONFIG, unresolved_findings=(FOCUS,))
    assert (eligible.status, eligible.imaging_status) == ("needs_review", "eligible")
