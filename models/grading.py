"""Krenning grade of one lesion with its uncertainty.

The grade is :func:`octoscan.models.krenning.grade_from_ratios` on the point estimates of
lesion uptake / reference mean. The interval of each ratio (``octoscan.models.stats``) gives
the grades at its lower and upper bounds (``grade_range``); ``borderline`` is True when they
differ, i.e. the interval straddles a Krenning threshold.

Without a liver reference no grade is given (``grade`` None, never a guess against another
organ); the spleen (or kidney) reference alone can still show that a lesion is above it.
"""

from __future__ import annotations

from dataclasses import dataclass

from octoscan.models.krenning import KrenningThresholds, grade_from_ratios
from octoscan.models.stats import POISSON_CI_METHOD, RatioInterval, ratio_ci
from octoscan.models.types import ReferenceRegion

PLANAR_GRADING_METHOD = "planar conjugate-view geometric mean, apparent peak / reference mean"
PLANAR_SINGLE_VIEW_METHOD = "planar single {view} view, apparent peak / reference mean"


@dataclass(frozen=True)
class GradeResult:
    """Ratios, intervals and the grade of one lesion (None where a reference is missing)."""

    ratio_liver: RatioInterval | None
    ratio_spleen: RatioInterval | None
    spleen_reference_organ: str | None
    grade: int | None
    grade_range: tuple[int, int]
    borderline: bool
    warnings: tuple[str, ...] = ()


def grading_method(views_used: tuple[str, ...], hours_post_injection: float | None) -> str:
    """Name of the planar grading method, with the time point (e.g. "..., 24 h p.i.")."""
    if len(views_used) == 2:
        base = PLANAR_GRADING_METHOD
    else:
        base = PLANAR_SINGLE_VIEW_METHOD.format(view=views_used[0] if views_used else "unknown")
    when = (
        f"{hours_post_injection:.0f} h p.i."
        if hours_post_injection is not None
        else "time after injection unknown"
    )
    return f"{base}, {when}"


def _ratio(
    peak: float,
    peak_variance: float,
    ref: ReferenceRegion,
    *,
    confidence: float,
    method: str,
) -> RatioInterval:
    return ratio_ci(
        peak, peak_variance, ref.mean, ref.variance_of_mean, confidence=confidence, method=method
    )


def grade_lesion(
    peak: float,
    peak_variance: float,
    *,
    liver: ReferenceRegion | None,
    spleen: ReferenceRegion | None,
    thresholds: KrenningThresholds,
    confidence: float,
    ci_method: str = POISSON_CI_METHOD,
) -> GradeResult:
    """Grade a lesion of apparent ``peak`` (with ``peak_variance``) against the references.

    ``spleen`` is the grade-4 reference: the spleen, or a kidney reference (organ
    "kidney") after splenectomy. Units of ``peak`` and the reference means must agree.
    """
    warnings: list[str] = []
    r_liver = (
        _ratio(peak, peak_variance, liver, confidence=confidence, method=ci_method)
        if liver is not None
        else None
    )
    r_spleen = (
        _ratio(peak, peak_variance, spleen, confidence=confidence, method=ci_method)
        if spleen is not None
        else None
    )
    organ = spleen.organ if spleen is not None else None
    if spleen is None:
        warnings.append("no spleen or kidney reference: grade 4 cannot be assigned")
    if r_liver is None:
        warnings.append("no liver reference: the lesion is not graded")
        if r_spleen is not None and r_spleen.low > thresholds.grade4_min_ratio_spleen:
            return GradeResult(None, r_spleen, organ, None, (4, 4), False, tuple(warnings))
        return GradeResult(None, r_spleen, organ, None, (1, 4), False, tuple(warnings))
    grade = grade_from_ratios(
        r_liver.ratio, r_spleen.ratio if r_spleen else None, thresholds, visible=True
    )
    low = grade_from_ratios(r_liver.low, r_spleen.low if r_spleen else None, thresholds)
    high = grade_from_ratios(r_liver.high, r_spleen.high if r_spleen else None, thresholds)
    return GradeResult(
        ratio_liver=r_liver,
        ratio_spleen=r_spleen,
        spleen_reference_organ=organ,
        grade=grade,
        grade_range=(low, high),
        borderline=low != high,
        warnings=tuple(warnings),
    )
