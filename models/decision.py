"""PRRT eligibility from graded lesions (issue 4, item 5), open to clinical criteria.

Imaging rule (default rule set, ``configs/default.toml``):

* ``not_eligible`` when there is no lesion, or no lesion reaches
  ``decision.min_grade_for_disease`` (grade 2);
* ``eligible`` when at least one lesion counts as grade >= 3 and every lesion of
  ``decision.large_lesion_min_diameter_mm`` (15 mm) or more counts as grade >= 3;
* ``needs_review`` otherwise (a large lesion below grade 3 beside avid ones; only grade-2
  disease).

"Counts as grade >= 3" is the configured ``uptake_rule`` applied to the interval of
ratio_liver: ``significantly_above_liver`` (lower bound above the grade-3 threshold) or
``not_significantly_below_liver`` (NETTER-1: upper bound at or above it). The rule itself
resolves the counting uncertainty at the grade-3 threshold; the study goes to review when an
uncertainty the rule does *not* resolve could change the outcome:

* a lesion whose interval straddles the grade-2 threshold (it may or may not be disease):
  "could change" is decided by deciding twice, with every uncertain finding at its worst
  and at its best; the outcome is monotone in each finding, so equal outcomes mean no
  combination can change it;
* a missing or implausible liver reference (``decision.review_on_implausible_reference``):
  always review, since no lesion's standing against liver is known and diffuse liver
  involvement is itself disease (issue 4, item 2: "say so and send the study to review");
* an *unresolved finding* the scorer reports (``unresolved_findings``): something that may
  or may not be a lesion and whose counting changes the imaging outcome (a hypodense liver
  focus on CT without a hot spot: a receptor-negative metastasis, or a cyst or haemangioma;
  a lesion only one of the threshold and CNN detectors finds). The scorer has checked that
  it changes the outcome; whichever way, the study goes to review.

Other *review reasons* (``review_reasons``: heterogeneous uptake, an implausible liver
reference) are cautions against an ``eligible`` call only: they turn ``eligible`` into
``needs_review`` and leave the other statuses as they are.

A missing spleen never matters here (grade 4 does not enter the decision).

Clinical criteria (a later issue) arrive as :class:`CriterionResult` items: a failed
criterion makes the study ``not_eligible``, a review-band value ``needs_review``; a criterion
"not_assessed" does not force a review, and the reasons say that the decision covers imaging
and the assessed criteria only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from octoscan.models.config import ScoringConfig
from octoscan.models.types import CriterionResult, Decision, Lesion, ReferenceRegion

_ORDER = {"not_eligible": 0, "needs_review": 1, "eligible": 2}
REVIEW_PREFIX = "review: "
"""How :func:`decide_eligibility` lists each review reason among the decision's reasons."""
UNRESOLVED_PREFIX = "unresolved: "
"""How :func:`decide_eligibility` lists each unresolved finding among the decision's reasons."""


@dataclass(frozen=True)
class _State:
    """What the decision needs of one lesion, at one extreme of its uncertainty."""

    label: str
    diameter_mm: float
    avid: bool
    disease: bool


def _fmt_ci(ci: tuple[float, float] | None) -> str:
    return f"{ci[0]:.2f}-{ci[1]:.2f}" if ci is not None else "n/a"


def _label(lesion: Lesion) -> str:
    ratio = f"{lesion.ratio_liver:.2f}" if lesion.ratio_liver is not None else "n/a"
    return (
        f"lesion {lesion.id} ({lesion.diameter_mm:.0f} mm, {lesion.region}, ratio to liver "
        f"{ratio} [{_fmt_ci(lesion.ratio_liver_ci)}])"
    )


def _avid_by_rule(lesion: Lesion, rule: str, threshold: float) -> bool:
    ci = lesion.ratio_liver_ci
    if ci is None:
        return False
    if rule == "significantly_above_liver":
        return ci[0] > threshold
    return ci[1] >= threshold


def _core(
    states: Sequence[_State], *, large_mm: float, rule_text: str, min_grade: int
) -> tuple[str, list[str]]:
    if not states:
        return "not_eligible", ["no lesion found"]
    if not any(s.disease for s in states):
        return "not_eligible", [f"no lesion reaches Krenning grade {min_grade}"]
    avid = [s for s in states if s.avid]
    large_not_avid = [s for s in states if s.diameter_mm >= large_mm and not s.avid]
    if avid and not large_not_avid:
        return "eligible", [
            f"{len(avid)} lesion(s) count as Krenning >= 3 ({rule_text}) and every lesion of "
            f"{large_mm:.0f} mm or more does"
        ]
    if not avid:
        return "needs_review", [
            f"no lesion counts as Krenning >= 3 ({rule_text}): only grade-"
            f"{min_grade} disease or lower"
        ]
    return "needs_review", [
        f"{s.label} of {large_mm:.0f} mm or more does not count as Krenning >= 3 "
        f"({rule_text}) beside {len(avid)} avid lesion(s)"
        for s in large_not_avid
    ]


def decide_imaging(
    lesions: Sequence[Lesion],
    references: Sequence[ReferenceRegion],
    *,
    config: ScoringConfig,
) -> tuple[str, tuple[str, ...]]:
    """Imaging-only status and reasons (see the module docstring)."""
    rules = config.decision
    thr = config.krenning
    rule = rules.uptake_rule
    rule_text = (
        f"interval of ratio to liver above {thr.grade3_min_ratio_liver:g}"
        if rule == "significantly_above_liver"
        else f"interval of ratio to liver reaching {thr.grade3_min_ratio_liver:g}"
    )
    refs = {r.organ: r for r in references}
    liver = refs.get("liver")
    spleen = refs.get("spleen")
    liver_ok = liver is not None and liver.plausible
    liver_uncertain = (not liver_ok) and (liver is None or rules.review_on_implausible_reference)
    # a missing or implausible liver reference (diffuse involvement is itself disease) sends
    # the study to review outright when the configuration says so (issue 4, item 2)
    force_review = (not liver_ok) and rules.review_on_implausible_reference
    notes: list[str] = []
    if liver is None:
        notes.append("no liver reference: uptake against liver is unknown")
    elif not liver.plausible:
        notes.append(
            "liver reference implausible ("
            + "; ".join(liver.warnings or ("see warnings",))
            + ")"
            + ("" if rules.review_on_implausible_reference else ": used as it is (config)")
        )

    worst: list[_State] = []
    best: list[_State] = []
    uncertain: list[str] = []
    for lesion in lesions:
        label = _label(lesion)
        avid = _avid_by_rule(lesion, rule, thr.grade3_min_ratio_liver)
        grade = lesion.grade
        disease = grade is not None and grade >= rules.min_grade_for_disease
        lo_g, hi_g = lesion.grade_range
        disease_lo = disease_hi = disease
        avid_lo = avid_hi = avid
        if (
            rules.review_on_borderline
            and grade is not None
            and lo_g < rules.min_grade_for_disease <= hi_g
        ):
            disease_lo, disease_hi = False, True
            uncertain.append(
                f"{label}: interval straddles the grade-{rules.min_grade_for_disease} threshold"
            )
        if liver_uncertain:
            above_spleen = (
                spleen is not None
                and spleen.plausible
                and lesion.ratio_spleen_ci is not None
                and lesion.ratio_spleen_ci[0] > thr.grade4_min_ratio_spleen
            )
            if above_spleen:
                avid_lo = avid_hi = disease_lo = disease_hi = True
            else:
                avid_lo, avid_hi = False, True
                disease_lo, disease_hi = False, True
                uncertain.append(f"{label}: standing against liver unknown")
        worst.append(_State(label, lesion.diameter_mm, avid_lo, disease_lo))
        best.append(_State(label, lesion.diameter_mm, avid_hi, disease_hi))

    kw = {
        "large_mm": rules.large_lesion_min_diameter_mm,
        "rule_text": rule_text,
        "min_grade": rules.min_grade_for_disease,
    }
    status_lo, reasons_lo = _core(worst, **kw)
    status_hi, _ = _core(best, **kw)
    if force_review:
        return "needs_review", (
            *notes,
            "reference organ missing or implausible: the study needs a reader",
            *reasons_lo,
        )
    if status_lo == status_hi:
        return status_lo, tuple(notes + reasons_lo)
    reasons = [
        *notes,
        f"outcome depends on uncertain findings: {status_lo} at their worst, {status_hi} at "
        "their best",
        *uncertain,
    ]
    return "needs_review", tuple(reasons)


def decide_eligibility(
    lesions: Sequence[Lesion],
    references: Sequence[ReferenceRegion],
    *,
    config: ScoringConfig,
    criteria: Sequence[CriterionResult] = (),
    review_reasons: Sequence[str] = (),
    unresolved_findings: Sequence[str] = (),
) -> Decision:
    """The three-valued decision for one study.

    ``lesions`` and ``references`` as scored (planar or tomographic); ``config`` supplies the
    rule set (name, uptake rule, thresholds); ``criteria`` are further criteria (clinical),
    each already judged. ``review_reasons`` are findings that call for review regardless of
    the rule (for example heterogeneous uptake): each turns an ``eligible`` imaging status
    into ``needs_review`` and is listed as a reason ("review: ..."). ``unresolved_findings``
    are findings of unknown nature that change the imaging outcome (module docstring): each
    turns any imaging status into ``needs_review`` and is listed ("unresolved: ...").
    ``imaging_status`` stays the rule's status from the lesions alone.
    """
    imaging_status, imaging_reasons = decide_imaging(lesions, references, config=config)
    reasons = list(imaging_reasons)
    status = imaging_status
    if review_reasons and status == "eligible":
        status = "needs_review"
    reasons.extend(f"{REVIEW_PREFIX}{w}" for w in review_reasons)
    if unresolved_findings:
        status = "needs_review"
    reasons.extend(f"{UNRESOLVED_PREFIX}{w}" for w in unresolved_findings)
    failed = [c for c in criteria if c.verdict == "fail"]
    review = [c for c in criteria if c.verdict == "review"]
    missing = [c for c in criteria if c.verdict == "not_assessed"]
    if failed:
        status = "not_eligible"
    elif review and status == "eligible":
        status = "needs_review"
    reasons.extend(f"{c.name}: {c.reason}" for c in failed + review)
    if missing:
        reasons.append(
            "not assessed: "
            + ", ".join(c.name for c in missing)
            + "; the decision covers imaging and the assessed criteria only"
        )
    return Decision(
        status=status,
        imaging_status=imaging_status,
        rule_set=config.name,
        uptake_rule=config.decision.uptake_rule,
        reasons=tuple(reasons),
        criteria=tuple(criteria),
    )
