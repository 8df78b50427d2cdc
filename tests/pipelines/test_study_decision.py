"""How the study pipeline carries a tomographic decision's review reasons and unresolved
findings into the study's decision (pipelines/study.py), with and without clinical criteria."""

from __future__ import annotations

from octoscan.models.clinical import ClinicalTable
from octoscan.models.decision import decide_eligibility
from octoscan.models.types import CriterionResult
from octoscan.pipelines.study import _apply_clinical, _redecide, _review_inputs
from tests.models.test_decision import DEFAULT, REFS, lesion

FOCUS = "CT shows 1 hypodense liver lesion(s) without a hot spot (...)"


def test_unresolved_findings_survive_the_study_decision_and_clinical_criteria() -> None:
    tomo = decide_eligibility(
        [], REFS, config=DEFAULT, review_reasons=("heterogeneous",), unresolved_findings=(FOCUS,)
    )
    assert (tomo.status, tomo.imaging_status) == ("needs_review", "not_eligible")
    review, unresolved = _review_inputs(tomo)
    assert review == ("heterogeneous",) and unresolved == (FOCUS,)
    # the study's decision, remade from the same parts, is the scorer's
    again = decide_eligibility(
        [], REFS, config=DEFAULT, review_reasons=review, unresolved_findings=unresolved
    )
    assert again == tomo
    # with clinical criteria: reproduced first (no RuntimeError), then decided with them
    ok = CriterionResult("ki67", "pass", "Ki-67 5 % at most 20 %", 5.0)
    fail = CriterionResult("ki67", "fail", "Ki-67 55 % above 50 %", 55.0)
    kw = {"scorer": "tomographic"}
    assert _redecide([], REFS, tomo, DEFAULT, criteria=(ok,), **kw).status == "needs_review"
    assert _redecide([], REFS, tomo, DEFAULT, criteria=(fail,), **kw).status == "not_eligible"
    # an eligible study with the same finding goes to review as well
    avid = [lesion(1, 1.5, (1.3, 1.7))]
    eligible = decide_eligibility(avid, REFS, config=DEFAULT, unresolved_findings=(FOCUS,))
    assert (eligible.status, eligible.imaging_status) == ("needs_review", "eligible")


def test_a_fused_planar_decision_is_remade_with_clinical_criteria() -> None:
    """CNN fusion sends a study to review when a lesion only one detector finds decides it;
    applying a clinical file reproduces that decision first (it used to raise: the fused
    decision's reasons were not exposed to the re-decision), then adds the criteria (here
    none assessed: the study has no row)."""
    from octoscan.models.cnn_fusion import fuse_lesions
    from tests.models.test_cnn import CONFIG, _prediction, _score

    fused = fuse_lesions(_score(), _prediction(((100, 10), 0)), CONFIG)
    assert fused.decision.status == "needs_review"
    review, unresolved = _review_inputs(fused.decision)
    assert review == () and len(unresolved) == 1 and "threshold detector only" in unresolved[0]
    table = ClinicalTable(records=(), sha256="0" * 64)
    remade, provenance = _apply_clinical(
        fused, CONFIG, table, study_instance_uid="1.2.3", patient_id=None
    )
    assert remade.decision.status == "needs_review"
    assert remade.decision.reasons[: len(fused.decision.reasons)] == fused.decision.reasons
    assert provenance["row"] is None
