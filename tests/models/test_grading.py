"""Krenning grades at, just below and just above each threshold; intervals and borderline."""

from __future__ import annotations

import pytest

from octoscan.models.grading import grade_lesion, grading_method
from octoscan.models.krenning import KrenningThresholds, grade_from_ratios
from octoscan.models.stats import EMPIRICAL_CI_METHOD
from octoscan.models.types import ReferenceRegion

T = KrenningThresholds()  # 0.5, 1.0, 1.0


@pytest.mark.parametrize(
    ("ratio_liver", "ratio_spleen", "grade"),
    [
        (0.0, None, 1),
        (0.499, None, 1),
        (0.5, None, 2),  # "from 0.5 x liver"
        (0.501, None, 2),
        (0.999, None, 2),
        (1.0, None, 2),  # "up to liver": equal to liver is still grade 2
        (1.001, None, 3),  # "above liver"
        (5.0, None, 3),  # without a spleen reference grade 4 is never given
        (5.0, 0.999, 3),
        (5.0, 1.0, 3),  # equal to spleen is not above it
        (5.0, 1.001, 4),
        (0.9, 1.2, 4),  # above spleen wins even when the liver ratio is low (odd references)
    ],
)
def test_grade_from_ratios_at_each_threshold(
    ratio_liver: float, ratio_spleen: float | None, grade: int
) -> None:
    assert grade_from_ratios(ratio_liver, ratio_spleen, T) == grade


def test_grade_zero_when_not_seen_or_ungraded() -> None:
    assert grade_from_ratios(2.0, 2.0, T, visible=False) == 0
    assert grade_from_ratios(None, 2.0, T) == 0


def test_custom_thresholds() -> None:
    t = KrenningThresholds(grade2_min_ratio_liver=0.6, grade3_min_ratio_liver=1.2)
    assert grade_from_ratios(0.59, None, t) == 1
    assert grade_from_ratios(1.2, None, t) == 2
    assert grade_from_ratios(1.21, None, t) == 3


def _ref(organ: str, mean: float, var_mean: float = 0.0) -> ReferenceRegion:
    return ReferenceRegion(
        organ=organ,
        mean=mean,
        std=0.0,
        variance_of_mean=var_mean,
        variance_method="poisson",
        method="test",
        radius_mm=15.0,
        center_rc=(10.0, 10.0),
    )


@pytest.mark.parametrize(
    ("peak", "grade"),
    [(49.0, 1), (50.0, 2), (100.0, 2), (101.0, 3), (300.0, 3), (301.0, 4)],
)
def test_grade_lesion_without_noise_is_exact(peak: float, grade: int) -> None:
    g = grade_lesion(
        peak,
        0.0,
        liver=_ref("liver", 100.0),
        spleen=_ref("spleen", 300.0),
        thresholds=T,
        confidence=0.95,
    )
    assert g.grade == grade
    assert g.grade_range == (grade, grade)
    assert not g.borderline
    assert g.ratio_liver is not None and g.ratio_liver.ratio == pytest.approx(peak / 100.0)
    assert g.ratio_spleen is not None and g.ratio_spleen.ratio == pytest.approx(peak / 300.0)
    assert g.spleen_reference_organ == "spleen"


def test_interval_straddling_a_threshold_is_borderline() -> None:
    # peak 105 +- 10 (sd) against liver 100 +- 1: interval about 0.86-1.28 straddles 1.0
    g = grade_lesion(
        105.0,
        100.0,
        liver=_ref("liver", 100.0, 1.0),
        spleen=_ref("spleen", 400.0, 4.0),
        thresholds=T,
        confidence=0.95,
    )
    assert g.grade == 3
    assert g.grade_range == (2, 3)
    assert g.borderline
    lo, hi = g.ratio_liver.low, g.ratio_liver.high  # type: ignore[union-attr]
    assert lo < 1.0 < hi


def test_clear_interval_is_not_borderline() -> None:
    g = grade_lesion(
        200.0,
        4.0,
        liver=_ref("liver", 100.0, 0.25),
        spleen=_ref("spleen", 400.0, 4.0),
        thresholds=T,
        confidence=0.95,
    )
    assert (g.grade, g.grade_range, g.borderline) == (3, (3, 3), False)


def test_kidney_is_named_as_grade4_reference() -> None:
    g = grade_lesion(
        500.0,
        0.0,
        liver=_ref("liver", 100.0),
        spleen=_ref("kidney", 300.0),
        thresholds=T,
        confidence=0.95,
    )
    assert g.grade == 4
    assert g.spleen_reference_organ == "kidney"


def test_no_spleen_reference_caps_at_grade3_with_a_warning() -> None:
    g = grade_lesion(
        900.0, 0.0, liver=_ref("liver", 100.0), spleen=None, thresholds=T, confidence=0.95
    )
    assert g.grade == 3
    assert g.ratio_spleen is None and g.spleen_reference_organ is None
    assert any("grade 4 cannot be assigned" in w for w in g.warnings)


def test_no_liver_reference_gives_no_grade() -> None:
    g = grade_lesion(
        900.0, 0.0, liver=None, spleen=_ref("spleen", 300.0), thresholds=T, confidence=0.95
    )
    assert g.grade is None
    assert g.grade_range == (4, 4)  # significantly above spleen: grade 4 whatever the liver
    assert any("no liver reference" in w for w in g.warnings)
    g = grade_lesion(200.0, 0.0, liver=None, spleen=None, thresholds=T, confidence=0.95)
    assert (g.grade, g.grade_range) == (None, (1, 4))


def test_ci_method_is_carried() -> None:
    g = grade_lesion(
        150.0,
        9.0,
        liver=_ref("liver", 100.0, 1.0),
        spleen=None,
        thresholds=T,
        confidence=0.95,
        ci_method=EMPIRICAL_CI_METHOD,
    )
    assert g.ratio_liver is not None and g.ratio_liver.method == EMPIRICAL_CI_METHOD


def test_grading_method_names_view_and_time_point() -> None:
    both = grading_method(("anterior", "posterior"), 24.0)
    assert both == (
        "planar conjugate-view geometric mean, apparent peak / reference mean, 24 h p.i."
    )
    assert grading_method(("anterior",), 4.2) == (
        "planar single anterior view, apparent peak / reference mean, 4 h p.i."
    )
    assert grading_method(("posterior",), None).endswith("time after injection unknown")
