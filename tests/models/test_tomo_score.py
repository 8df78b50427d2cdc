"""End-to-end tomographic scoring on the synthetic abdomen: tracer check, CT fusion,
references, lesions with corrected and uncorrected ratios, grades, decision."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from octoscan.imaging.errors import UnsupportedAcquisitionError
from octoscan.imaging.types import SeriesKind
from octoscan.models.config import load_config
from octoscan.models.tomo_score import TOMO_CI_METHOD, TomoScore, score_tomographic
from tests.models import tomo_builders as tb

TRUE_GRADES = (3, 4, 3)  # DEFAULT_LESIONS: 3 x liver, 8 x liver (> spleen 5), 2 x liver


@pytest.fixture(scope="module")
def spect_ct() -> TomoScore:
    return score_tomographic(
        tb.emission_volume(), ct=tb.ct_volume(), config=load_config("default"),
        tomo=tb.tomo_config(),
    )  # fmt: skip


def _by_truth(score: TomoScore, sphere: tb.Sphere):
    return min(
        score.lesions,
        key=lambda les: float(np.linalg.norm(np.subtract(les.center_lps_mm, sphere.centre))),
    )


def test_spect_ct_study(spect_ct: TomoScore) -> None:
    s = spect_ct
    assert s.modality == "spect" and s.units == "counts"
    assert s.tracer == "111In-pentetreotide" and not s.tracer_assumed
    assert s.ct_fused and s.pairing is not None and s.pairing.fused
    assert s.organ_method == "ct"
    assert s.resolution_fwhm_mm == 10.0 and s.resolution_source == "volume"
    assert s.ci_method == TOMO_CI_METHOD
    assert len(s.series_instance_uids) == 2
    assert {o.organ for o in s.organs} >= {"liver", "spleen", "kidney_left", "kidney_right"}
    assert len(s.lesions) == 3 and len(s.lesion_metrics) == 3
    assert [les.id for les in s.lesions] == [1, 2, 3]
    for sphere, grade in zip(tb.DEFAULT_LESIONS, TRUE_GRADES, strict=True):
        les = _by_truth(s, sphere)
        m = s.metrics(les.id)
        assert m is not None
        assert np.linalg.norm(np.subtract(les.center_lps_mm, sphere.centre)) <= 4.0
        assert les.volume_ml == pytest.approx(sphere.volume_ml, rel=0.2)
        assert les.grade == grade and not les.borderline
        assert les.source == "threshold" and les.ci_method == TOMO_CI_METHOD
        # graded on the corrected ratio; the uncorrected one is kept and is lower
        assert m.ratio_liver_corrected is not None and m.ratio_liver_uncorrected is not None
        assert les.ratio_liver == pytest.approx(m.ratio_liver_corrected.ratio)
        assert m.ratio_liver_uncorrected.ratio < m.ratio_liver_corrected.ratio
        assert m.ratio_liver_corrected.ratio == pytest.approx(sphere.ratio_liver, rel=0.2)
        low, high = les.ratio_liver_ci
        assert low < les.ratio_liver < high
        assert les.spleen_reference_organ == "spleen"
        assert "partial-volume corrected" in les.grading_method
        assert les.mask is not None and les.mask.shape == s.shape
        assert m.suv_max is None
    assert s.decision.status == "eligible"
    assert s.decision.uptake_rule == "significantly_above_liver"
    assert s.config_name == "default" and len(s.tomo_config_hash) == 64


def test_references_in_normal_parenchyma(spect_ct: TomoScore) -> None:
    liver, spleen = spect_ct.reference("liver"), spect_ct.reference("spleen")
    assert liver is not None and spleen is not None and spect_ct.reference("kidney") is None
    assert liver.mean == pytest.approx(tb.LIVER_COUNTS, rel=0.05)
    assert spleen.mean == pytest.approx(tb.LEVELS["spleen"] * tb.LIVER_COUNTS, rel=0.1)
    assert liver.radius_mm == 15.0 and spleen.radius_mm == 10.0
    emission = tb.emission_volume()
    assert tb.true_mask(emission, tb.LIVER)[liver.mask].all()
    assert tb.true_mask(emission, tb.SPLEEN)[spleen.mask].all()
    for les in spect_ct.lesions:
        assert not (les.mask & liver.mask).any() and not (les.mask & spleen.mask).any()
    assert liver.plausible and spleen.plausible


def test_without_ct_organs_come_from_the_emission_volume() -> None:
    s = score_tomographic(
        tb.emission_volume(), ct=None, config=load_config("default"), tomo=tb.tomo_config()
    )
    assert not s.ct_fused and s.pairing is None and s.organ_method == "emission"
    assert any("no CT fused" in w for w in s.warnings)
    assert len(s.lesions) == 3
    assert sorted(les.grade for les in s.lesions) == sorted(TRUE_GRADES)
    regions = {les.region for les in s.lesions}
    assert regions == {"liver", "extrahepatic"}


def test_ct_of_another_frame_is_not_fused() -> None:
    ct = tb.ct_volume(frame_uid="1.2.826.0.1.3680043.8.498.55")
    s = score_tomographic(
        tb.emission_volume(), ct=ct, config=load_config("default"), tomo=tb.tomo_config()
    )
    assert s.pairing is not None and not s.pairing.fused and not s.ct_fused
    assert any("not fused: emission and CT have different" in w for w in s.warnings)
    assert s.organ_method == "emission"


def test_uncorrected_grading_and_pvc_choice() -> None:
    raw = tb.tomo_raw()
    raw["pvc"]["grade_on"] = "uncorrected"
    from octoscan.models.tomo_config import tomo_config_from_dict

    s = score_tomographic(
        tb.emission_volume(), ct=None, config=load_config("default"),
        tomo=tomo_config_from_dict(raw),
    )  # fmt: skip
    for les in s.lesions:
        m = s.metrics(les.id)
        assert m is not None and m.ratio_liver_uncorrected is not None
        assert les.ratio_liver == pytest.approx(m.ratio_liver_uncorrected.ratio)
        assert les.grading_method.endswith("uncorrected / reference mean")
    assert "uncorrected peak" in s.grading_method


def test_splenectomy_uses_the_kidneys_for_grade_4() -> None:
    s = score_tomographic(
        tb.emission_volume(spleen=False), ct=tb.ct_volume(spleen=False),
        config=load_config("default"), tomo=tb.tomo_config(),
    )  # fmt: skip
    assert s.reference("spleen") is None
    kidney = s.reference("kidney")
    assert kidney is not None
    assert kidney.mean == pytest.approx(tb.LEVELS["kidney"] * tb.LIVER_COUNTS, rel=0.15)
    assert any("kidneys used as the grade-4 reference" in w for w in kidney.warnings)
    node = _by_truth(s, tb.DEFAULT_LESIONS[1])  # 8 x liver > kidney 3.5 x liver
    assert node.spleen_reference_organ == "kidney" and node.grade == 4


def test_diffusely_involved_liver_goes_to_review() -> None:
    emission = tb.emission_volume()
    conc = tb.concentration(emission.shape, emission.affine, tb.DEFAULT_LESIONS)
    liver = tb.true_mask(emission, tb.LIVER)
    array = emission.array.copy()
    array[liver] *= 4.5  # liver as avid as the spleen
    s = score_tomographic(
        dataclasses.replace(emission, array=array), ct=None, config=load_config("default"),
        tomo=tb.tomo_config(),
    )  # fmt: skip
    ref = s.reference("liver")
    assert conc.max() > 0
    assert ref is not None and not ref.plausible
    assert any("diffuse liver involvement" in w for w in ref.warnings)
    assert s.decision.status == "needs_review"
    assert any("liver reference implausible" in r for r in s.decision.reasons)


def test_pet_in_suv_reports_suv_and_uses_the_pet_rule() -> None:
    pet = tb.emission_volume(
        kind=SeriesKind.PET, units="SUVbw", radionuclide="Ga-68",
        radiopharmaceutical="DOTATATE", resolution_fwhm_mm=None, fwhm_mm=6.5, scale=8.0,
    )  # fmt: skip
    s = score_tomographic(pet, ct=None, config=load_config("netter1"), tomo=tb.tomo_config())
    assert s.modality == "pet" and s.tracer == "68Ga-DOTATATE"
    assert s.resolution_fwhm_mm == 6.5 and s.resolution_source.startswith("configured")
    assert any("6.5 mm FWHM assumed" in w for w in s.warnings)
    # netter1 reads "not significantly below liver", but PET uses the PET-era rule
    assert s.decision.uptake_rule == "significantly_above_liver"
    assert len(s.lesions) == 3
    node = _by_truth(s, tb.DEFAULT_LESIONS[1])
    m = s.metrics(node.id)
    assert m is not None and m.suv_max is not None and m.suv_mean is not None
    assert m.suv_peak == pytest.approx(node.peak)
    assert m.suv_max >= m.suv_peak >= m.suv_mean
    assert m.suv_max == pytest.approx(8.0 * 8.0, rel=0.2)


def test_spect_follows_the_rule_set() -> None:
    s = score_tomographic(
        tb.emission_volume(), ct=None, config=load_config("netter1"), tomo=tb.tomo_config()
    )
    assert s.decision.uptake_rule == "not_significantly_below_liver"
    assert s.decision.rule_set == "netter1"


def test_tracer_named_by_the_user() -> None:
    post_therapy = tb.emission_volume(
        radionuclide="Lu-177", radiopharmaceutical=None, units="Bq/mL"
    )
    with pytest.raises(UnsupportedAcquisitionError, match="tracer not identified") as err:
        score_tomographic(
            post_therapy, ct=None, config=load_config("default"), tomo=tb.tomo_config()
        )
    assert err.value.code == "unknown_tracer"
    s = score_tomographic(
        post_therapy, ct=None, config=load_config("default"), tomo=tb.tomo_config(),
        radiopharmaceutical="DOTATATE",
    )  # fmt: skip
    assert s.tracer == "177Lu-DOTATATE" and not s.tracer_assumed
    assert any("named by the user" in w for w in s.warnings)
    assumed = score_tomographic(
        post_therapy, ct=None, config=load_config("default"), tomo=tb.tomo_config(),
        assume_sstr=True,
    )  # fmt: skip
    assert assumed.tracer_assumed and assumed.tracer == "unknown (Lu-177)"


def test_non_sstr_tracer_and_non_emission_volume_are_refused() -> None:
    bone = tb.emission_volume(radionuclide="Tc-99m", radiopharmaceutical="medronate")
    with pytest.raises(UnsupportedAcquisitionError, match="bone scan") as err:
        score_tomographic(bone, ct=None, config=load_config("default"), tomo=tb.tomo_config())
    assert err.value.code == "not_sstr_tracer"
    ct = tb.ct_volume()
    with pytest.raises(UnsupportedAcquisitionError, match="kind 'ct' is not an emission") as err:
        score_tomographic(ct, ct=None, config=load_config("default"), tomo=tb.tomo_config())
    assert err.value.code == "not_emission_volume"


def test_negative_voxels_and_odd_units_are_reported() -> None:
    emission = tb.emission_volume(units="cnts/s")
    array = emission.array.copy()
    array[0, 0, :5] = -3.0
    s = score_tomographic(
        dataclasses.replace(emission, array=array), ct=None, config=load_config("default"),
        tomo=tb.tomo_config(),
    )  # fmt: skip
    assert any("negative: set to 0" in w for w in s.warnings)
    assert any("emission units 'cnts/s'" in w for w in s.warnings)
    assert len(s.lesions) == 3


def test_no_lesion_is_not_eligible() -> None:
    s = score_tomographic(
        tb.emission_volume(()), ct=None, config=load_config("default"), tomo=tb.tomo_config()
    )
    assert s.lesions == () and s.decision.status == "not_eligible"
    assert s.decision.reasons == ("no lesion found",)


def test_ct_liver_lesion_without_uptake_sends_an_eligible_study_to_review() -> None:
    """A 24 mm hypodense liver lesion at 0.3 x liver beside the three avid default lesions:
    not a hot spot, so not a lesion, but counting it (grade 1, 15 mm or more) would change
    the imaging decision: review, naming it. Switched off, the study stays eligible."""
    cold = tb.Sphere((-110.0, 15.0, 1065.0), 12.0, 0.3)
    lesions = (*tb.DEFAULT_LESIONS, cold)
    emission = tb.emission_volume(lesions)
    ct = tb.ct_volume(lesions, lesion_hu=[40.0, 40.0, 40.0, 35.0])
    config = load_config("default")
    s = score_tomographic(emission, ct=ct, config=config, tomo=tb.tomo_config())
    assert len(s.lesions) == 3  # the avid ones; the cold one is not reported
    assert s.decision.status == "needs_review"
    (reason,) = [r for r in s.decision.reasons if "hypodense liver lesion" in r]
    assert "CT shows 1 hypodense liver lesion(s) without a hot spot" in reason
    assert "grade 1" in reason and "eligible if not" in reason
    (note,) = [w for w in s.warnings if w.startswith("hypodense liver lesion on CT")]
    ratio = float(note.split("uptake ")[1].split(" x liver")[0])
    assert ratio < 0.5  # measured inside the CT outline, corrected for the liver around it
    off = dataclasses.replace(
        tb.tomo_config(),
        ct_lesions=dataclasses.replace(tb.tomo_config().ct_lesions, review_without_uptake=False),
    )
    plain = score_tomographic(emission, ct=ct, config=config, tomo=off)
    assert plain.decision.status == "eligible"
    assert not any("hypodense liver lesion" in w for w in plain.warnings)


def test_ct_liver_lesion_at_grade_2_sends_a_study_without_hot_lesions_to_review() -> None:
    """No hot lesion at all: not eligible by the lesions found. A 24 mm hypodense liver
    lesion at 0.75 x liver would be grade-2 disease (needs review) if it is a lesion, so the
    study goes to review with it named; one at 0.2 x liver (grade 1: not eligible either way)
    changes nothing, even though its uptake interval is wide."""
    config = load_config("default")
    for uptake, status in ((0.75, "needs_review"), (0.2, "not_eligible")):
        cold = tb.Sphere((-110.0, 15.0, 1065.0), 12.0, uptake)
        emission = tb.emission_volume((cold,))
        ct = tb.ct_volume((cold,), lesion_hu=[35.0])
        s = score_tomographic(emission, ct=ct, config=config, tomo=tb.tomo_config())
        assert s.lesions == ()
        assert (s.decision.status, s.decision.imaging_status) == (status, "not_eligible")
        (note,) = [w for w in s.warnings if w.startswith("hypodense liver lesion on CT")]
        grade = int(note.split("grade ")[1][0])
        assert grade == (2 if uptake > 0.5 else 1)
        unresolved = [r for r in s.decision.reasons if r.startswith("unresolved: ")]
        if status == "needs_review":
            (reason,) = unresolved
            assert "needs_review if they are lesions, not_eligible if not" in reason
        else:
            assert unresolved == []
