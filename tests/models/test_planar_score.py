"""Planar scoring end to end on synthetic whole-body studies."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from octoscan.imaging.errors import InvalidInputError, UnsupportedAcquisitionError
from octoscan.imaging.types import AcquisitionInfo, SeriesKind, View
from octoscan.models.config import config_hash, load_config
from octoscan.models.krenning import grade_from_ratios
from octoscan.models.planar_score import score_planar, select_planar_views

CFG = load_config()


def _replace(img, **changes):
    return dataclasses.replace(img, **changes)


def test_three_lesion_study_end_to_end(synth, three_lesion_spec, three_lesion_study) -> None:
    ant, post, a_exp, p_exp = three_lesion_study
    score = score_planar([ant, post], CFG)
    assert score.tracer == "111In-pentetreotide" and not score.tracer_assumed
    assert score.views_used == ("anterior", "posterior") and score.grid == "anterior"
    assert score.hours_post_injection == 24.0
    assert score.grading_method == (
        "planar conjugate-view geometric mean, apparent peak / reference mean, 24 h p.i."
    )
    assert score.ci_method == "poisson_log_delta"
    assert score.config_name == "default" and score.config_hash == config_hash(CFG)
    assert score.series_instance_uids == (ant.source.series_instance_uid,)
    assert score.pixel_spacing_mm == (4.8, 4.8)
    assert score.scoring_image.shape == ant.counts.shape
    assert score.variance_image is not None
    assert score.warnings == ()

    liver, spleen = score.reference("liver"), score.reference("spleen")
    assert liver is not None and spleen is not None and liver.plausible and spleen.plausible
    assert liver.radius_mm == 15.0 and spleen.radius_mm == 10.0
    assert liver.variance_method == "poisson" and liver.n_pixels is not None
    assert spleen.mean > 2.0 * liver.mean

    assert len(score.lesions) == 3
    assert [les.id for les in score.lesions] == [1, 2, 3]
    rows = [les.center_rc[0] for les in score.lesions if les.center_rc is not None]
    assert rows == sorted(rows)  # numbered head to feet
    # noise-free apparent ratios at our own reference regions: the grades a reader would give
    gm_true = np.sqrt(a_exp * p_exp)
    liver_true = float(gm_true[liver.mask].mean())
    spleen_true = float(gm_true[spleen.mask].mean())
    for blob in three_lesion_spec.lesions:
        rc = synth.lesion_rc(blob, three_lesion_spec)
        les = next(x for x in score.lesions if math.dist(x.center_rc, rc) <= 2.0)
        r, c = round(rc[0]), round(rc[1])
        peak_true = float(gm_true[r - 1 : r + 2, c - 1 : c + 2].max())
        apparent = grade_from_ratios(peak_true / liver_true, peak_true / spleen_true, CFG.krenning)
        assert les.grade == apparent, blob.name
        assert les.ratio_liver == pytest.approx(peak_true / liver_true, rel=0.1)
        lo, hi = les.ratio_liver_ci
        assert lo < les.ratio_liver < hi
        assert les.spleen_reference_organ == "spleen"
        assert les.source == "threshold" and les.units.startswith("counts/pixel")
        assert les.mask is not None and les.mask.shape == ant.counts.shape
    grades = sorted(les.grade for les in score.lesions)
    assert grades == [3, 3, 4]
    assert score.decision.status == "eligible"
    assert score.decision.rule_set == "default"


def test_lesion_free_study_is_not_eligible(lesion_free_study) -> None:
    ant, post, _, _ = lesion_free_study
    score = score_planar([ant, post], CFG)
    assert score.lesions == ()
    assert score.decision.status == "not_eligible"
    assert score.decision.reasons == ("no lesion found",)


def test_feet_first_study_reports_positions_on_the_stored_grid(
    synth, three_lesion_spec, three_lesion_study
) -> None:
    ant, post, _, _ = three_lesion_study
    flipped = [_replace(img, counts=np.ascontiguousarray(img.counts[::-1])) for img in (ant, post)]
    score = score_planar(flipped, CFG)
    assert score.orientation.startswith("feet at row 0")
    rows = ant.counts.shape[0]
    for blob in three_lesion_spec.lesions:
        r, c = synth.lesion_rc(blob, three_lesion_spec)
        assert any(math.dist(x.center_rc, (rows - 1 - r, c)) <= 2.0 for x in score.lesions)


def test_liver_on_the_image_right_sends_the_study_to_review(
    synth, three_lesion_spec, three_lesion_study
) -> None:
    # a mirrored pair (mislabelled view, situs inversus, or a hot organ taken for the liver):
    # lesions are still found and graded, but the decision waits for a reader
    ant, post, _, _ = three_lesion_study
    plain = score_planar([ant, post], CFG)
    assert plain.decision.status == "eligible"
    mirrored = [
        _replace(img, counts=np.ascontiguousarray(img.counts[:, ::-1])) for img in (ant, post)
    ]
    score = score_planar(mirrored, CFG)
    cols = ant.counts.shape[1]
    truth = [synth.lesion_rc(blob, three_lesion_spec) for blob in three_lesion_spec.lesions]
    assert len(score.lesions) >= 2  # the faint liver lesion is marginal on the shifted grid
    for x in score.lesions:  # positions on the stored (mirrored) grid
        assert any(math.dist(x.center_rc, (r, cols - 1 - c)) <= 2.0 for r, c in truth)
    liver = score.reference("liver")
    assert liver is not None and not liver.plausible
    assert any("image right of the anterior view" in w for w in liver.warnings)
    assert score.decision.status == "needs_review"
    assert any("laterality" in r for r in score.decision.reasons)


def test_splenectomy_grades_against_the_kidney(synth) -> None:
    spec = synth.BodySpec(spleen=False, lesions=synth.THREE_LESIONS)
    ant, post, _, _ = synth.planar_pair(spec)
    score = score_planar([ant, post], CFG)
    assert score.reference("spleen") is None
    kidney = score.reference("kidney")
    assert kidney is not None and "kidney used as the grade-4 reference" in kidney.method
    assert any("kidney is the grade-4 reference" in w for w in score.warnings)
    assert all(les.spleen_reference_organ == "kidney" for les in score.lesions)


def test_hot_liver_is_implausible_and_goes_to_review(synth) -> None:
    spec = synth.BodySpec(liver_conc=6.0, lesions=(synth.ABDOMEN_LESION,))
    ant, post, _, _ = synth.planar_pair(spec)
    score = score_planar([ant, post], CFG)
    liver = score.reference("liver")
    assert liver is not None and not liver.plausible
    assert any("at or above 1 x spleen" in w for w in liver.warnings)
    assert score.decision.status == "needs_review"


def test_single_view_and_early_time_point_are_named(three_lesion_study) -> None:
    ant, _, _, _ = three_lesion_study
    early = _replace(
        ant, acquisition=dataclasses.replace(ant.acquisition, hours_post_injection=4.0)
    )
    score = score_planar([early], CFG)
    assert score.views_used == ("anterior",)
    assert score.grading_method == (
        "planar single anterior view, apparent peak / reference mean, 4 h p.i."
    )
    assert any("only the anterior view" in w for w in score.warnings)
    assert any("early time point (4.0 h p.i.)" in w for w in score.warnings)
    assert len(score.lesions) == 3


def test_derived_images_get_empirical_intervals(three_lesion_study) -> None:
    ant, post, _, _ = three_lesion_study
    derived = [_replace(img, is_count_data=False) for img in (ant, post)]
    score = score_planar(derived, CFG)
    assert score.ci_method == "empirical_reference_noise_log_delta"
    assert score.variance_image is None
    assert any("no counting statistics" in w for w in score.warnings)
    assert score.lesions and all(
        les.ratio_liver_ci[0] < les.ratio_liver < les.ratio_liver_ci[1] for les in score.lesions
    )


def test_tracer_is_checked(three_lesion_study) -> None:
    ant, post, _, _ = three_lesion_study
    bone = AcquisitionInfo(radionuclide="Tc-99m", radiopharmaceutical="Tc99m MDP")
    with pytest.raises(UnsupportedAcquisitionError, match=r"bone scan") as info:
        score_planar([_replace(ant, acquisition=bone)], CFG)
    assert info.value.code == "not_sstr_tracer"
    unknown = AcquisitionInfo(radionuclide="In-111", hours_post_injection=24.0)
    with pytest.raises(UnsupportedAcquisitionError, match=r"--assume-sstr"):
        score_planar([_replace(ant, acquisition=unknown)], CFG)
    score = score_planar(
        [_replace(ant, acquisition=unknown), _replace(post, acquisition=unknown)],
        CFG,
        assume_sstr=True,
    )
    assert score.tracer_assumed and score.tracer == "unknown (In-111)"
    assert any("--assume-sstr" in w for w in score.warnings)


def test_select_views_prefers_24h_whole_body_count_data(three_lesion_study) -> None:
    ant, post, _, _ = three_lesion_study

    def at(img, hours, **kw):
        acq = dataclasses.replace(img.acquisition, hours_post_injection=hours)
        return _replace(img, acquisition=acq, **kw)

    a4, p4 = at(ant, 4.0), at(post, 4.0)
    a24, p24 = at(ant, 24.5), at(post, 23.8)
    static = at(ant, 24.0, kind=SeriesKind.PLANAR_STATIC)
    a, p, warnings = select_planar_views([a4, p4, static, a24, p24], preferred_hours=24.0)
    assert a is a24 and p is p24
    assert any("other time points present: 4 h" in w for w in warnings)
    # a posterior of the anterior's own series beats another series
    other = _replace(p24, source=dataclasses.replace(p24.source, series_instance_uid="9.9"))
    _, p, _ = select_planar_views([other, a24, p24], preferred_hours=24.0)
    assert p is p24
    # untimed images are ignored when timed ones exist
    untimed = at(ant, None)
    a, _, warnings = select_planar_views([untimed, a24], preferred_hours=24.0)
    assert a is a24 and any("unknown time point not used" in w for w in warnings)
    # only unknown views: the best is used as a single view
    unknown = _replace(ant, view=View.UNKNOWN)
    a, p, _ = select_planar_views([unknown], preferred_hours=24.0)
    assert a is unknown and p is None


def test_select_views_needs_pixel_spacing(three_lesion_study) -> None:
    ant, _, _, _ = three_lesion_study
    with pytest.raises(
        InvalidInputError, match=r"no planar image with a known pixel spacing"
    ) as info:
        select_planar_views([_replace(ant, pixel_spacing_mm=None)], preferred_hours=24.0)
    assert info.value.code == "no_pixel_spacing"


def test_single_view_study_goes_to_review_with_the_reason(three_lesion_study) -> None:
    """Issue 5, item 2: a study with one view is scored (ok) but needs a reader."""
    _, post, _, _ = three_lesion_study
    score = score_planar([post], CFG)
    assert score.views_used == ("posterior",) and score.grid == "posterior_mirrored"
    liver = score.reference("liver")
    assert liver is not None and not liver.plausible
    assert any(
        "only the posterior view: uptake ratios are not corrected" in w for w in liver.warnings
    )
    assert score.decision.status == "needs_review"
    assert score.decision.reasons[0].startswith("liver reference implausible (only the posterior")
    assert "reference organ missing or implausible: the study needs a reader" in (
        score.decision.reasons
    )
    assert any(w.startswith("single view: only the posterior view") for w in score.warnings)
    # the same study with both views is decided on its lesions
    both = score_planar([three_lesion_study[0], post], CFG)
    assert both.reference("liver").plausible and both.decision.status == "eligible"


def test_single_view_reference_can_be_trusted_by_configuration(three_lesion_study) -> None:
    ant, _, _, _ = three_lesion_study
    trusting = dataclasses.replace(
        CFG,
        planar=dataclasses.replace(
            CFG.planar,
            plausibility=dataclasses.replace(
                CFG.planar.plausibility, single_view_reference_comparable=True
            ),
        ),
    )
    score = score_planar([ant], trusting)
    assert score.reference("liver").plausible
    assert not any(w.startswith("single view:") for w in score.warnings)
    forced = score_planar([ant], CFG)
    assert forced.decision.status == "needs_review"
    # grading itself does not change: same lesions, same ratios
    assert [les.ratio_liver for les in score.lesions] == [les.ratio_liver for les in forced.lesions]
