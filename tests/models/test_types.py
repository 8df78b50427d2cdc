"""Result types: validation and equality without masks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from octoscan.models.types import (
    CriterionResult,
    Decision,
    Lesion,
    OrganRegion,
    PlanarScore,
    ReferenceRegion,
)


def _lesion(**changes: object) -> Lesion:
    base = dict(
        id=1,
        diameter_mm=20.0,
        peak=120.0,
        mean=90.0,
        units="counts/pixel",
        ratio_liver=1.2,
        ratio_liver_ci=(1.1, 1.3),
        ratio_spleen=0.3,
        ratio_spleen_ci=(0.28, 0.32),
        spleen_reference_organ="spleen",
        grade=3,
        grade_range=(3, 3),
        borderline=False,
        region="liver",
        grading_method="test",
        ci_method="test",
        center_rc=(10.0, 12.0),
    )
    base.update(changes)
    return Lesion(**base)  # type: ignore[arg-type]


def test_lesion_masks_do_not_enter_equality_or_repr() -> None:
    a = _lesion(mask=np.zeros((4, 4), dtype=bool))
    b = _lesion(mask=np.ones((4, 4), dtype=bool))
    assert a == b
    assert "mask" not in repr(a)
    assert a.source == "threshold" and a.center_lps_mm is None and a.volume_ml is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.grade = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"source": "manual"}, r"Lesion.source = 'manual'; expected one of"),
        ({"grade": 5}, r"Lesion.grade = 5; expected 0-4 or None"),
        ({"center_rc": None}, r"needs center_rc \(planar\) or center_lps_mm"),
    ],
)
def test_lesion_validation(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _lesion(**changes)


def test_tomographic_lesion_and_ungraded_lesion_are_valid() -> None:
    tomo = _lesion(center_rc=None, center_lps_mm=(1.0, 2.0, 3.0), volume_ml=4.2, area_cm2=None)
    assert tomo.center_lps_mm == (1.0, 2.0, 3.0)
    assert _lesion(grade=None, source="both").grade is None


def test_reference_region_validation_and_lookup() -> None:
    liver = ReferenceRegion(
        organ="liver",
        mean=100.0,
        std=5.0,
        variance_of_mean=0.3,
        variance_method="poisson",
        method="test",
        radius_mm=15.0,
    )
    with pytest.raises(ValueError, match=r"variance_method = 'guess'; expected 'poisson' or"):
        dataclasses.replace(liver, variance_method="guess")
    decision = Decision("eligible", "eligible", "default", "significantly_above_liver", ("ok",))
    score = PlanarScore(
        tracer="111In-pentetreotide",
        tracer_assumed=False,
        views_used=("anterior", "posterior"),
        grid="anterior",
        hours_post_injection=24.0,
        grading_method="test",
        ci_method="test",
        pixel_spacing_mm=(2.4, 2.4),
        posterior_shift_rc=(0.0, 0.0),
        orientation="head at row 0",
        organs=(OrganRegion("liver", (1.0, 2.0), 90.0, "test"),),
        references=(liver,),
        lesions=(),
        decision=decision,
        config_name="default",
        config_hash="0" * 64,
        series_instance_uids=("1.2.3",),
        warnings=(),
        scoring_image=np.zeros((2, 2), dtype=np.float32),
    )
    assert score.reference("liver") is liver
    assert score.reference("spleen") is None


def test_decision_and_criterion_validation() -> None:
    with pytest.raises(ValueError, match=r"Decision.status = 'maybe'; expected one of"):
        Decision("maybe", "eligible", "default", "significantly_above_liver", ())
    with pytest.raises(ValueError, match=r"Decision.imaging_status = 'ok'; expected one of"):
        Decision("eligible", "ok", "default", "significantly_above_liver", ())
    with pytest.raises(ValueError, match=r"CriterionResult.verdict = 'fine'; expected one of"):
        CriterionResult("ki67", "fine", "ok")
    c = CriterionResult("ki67", "not_assessed", "no value")
    assert c.value is None and c.limit is None
