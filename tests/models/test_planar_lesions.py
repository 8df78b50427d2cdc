"""Hot-spot detection on synthetic whole-body images: a lesion in the liver, one in the
abdomen and one next to the spleen; organs are not lesions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from octoscan.models.config import load_config
from octoscan.models.planar_align import conjugate_view
from octoscan.models.planar_lesions import apparent_peak, background, find_lesions
from octoscan.models.planar_organs import find_organs
from octoscan.models.stats import fwhm_to_sigma_px, smooth, smooth_variance

CFG = load_config()


def _detect(study):
    ant, post, _, _ = study
    conj = conjugate_view(ant, post, config=CFG.planar.alignment)
    organs = find_organs(
        conj.image,
        spacing_mm=conj.pixel_spacing_mm,
        config=CFG.planar.organs,
        anterior=conj.anterior,
        posterior=conj.posterior,
    )
    det = find_lesions(
        conj.image,
        conj.variance,
        organs,
        spacing_mm=conj.pixel_spacing_mm,
        config=CFG.planar.detection,
        anterior=conj.anterior,
        posterior=conj.posterior,
    )
    return conj, organs, det


def test_three_lesions_found_at_their_centres(synth, three_lesion_spec, three_lesion_study) -> None:
    _, _, det = _detect(three_lesion_study)
    assert len(det.spots) == 3
    assert det.noise_method == "poisson"
    expected = {
        "liver_lesion": "liver",
        "abdomen_lesion": "abdomen",
        "spleen_lesion": "abdomen",
    }
    for blob in three_lesion_spec.lesions:
        rc = synth.lesion_rc(blob, three_lesion_spec)
        near = [s for s in det.spots if math.dist(s.center_rc, rc) <= 2.0]
        assert len(near) == 1, blob.name
        spot = near[0]
        assert spot.region == expected[blob.name]
        assert spot.z_score >= CFG.planar.detection.min_z_score
        assert spot.contrast >= CFG.planar.detection.min_contrast
        assert 15.0 <= spot.diameter_mm <= 45.0  # blurred 26-32 mm spheres
        assert spot.area_cm2 == pytest.approx(math.pi * (spot.diameter_mm / 20.0) ** 2, rel=0.02)
        assert spot.mask[round(spot.center_rc[0]), round(spot.center_rc[1])]
        assert spot.peak > spot.background > 0 and spot.peak_variance > 0


def test_physiological_uptake_is_set_aside(three_lesion_study) -> None:
    _, organs, det = _detect(three_lesion_study)
    aside = {s.organ for s in det.set_aside}
    assert {"spleen", "kidney_left", "bladder"} <= aside
    for spot in det.spots:
        for name in ("spleen", "kidney_left", "kidney_right", "bladder"):
            organ = organs.organ(name)
            assert organ is not None and organ.mask is not None
            r, c = (round(x) for x in spot.center_rc)
            assert not organ.mask[r, c], name


def test_lesion_free_study_has_no_lesion(lesion_free_study) -> None:
    _, _, det = _detect(lesion_free_study)
    assert det.spots == ()


def test_faint_lesion_below_the_criteria_is_not_reported(synth) -> None:
    faint = synth.Blob("faint", 20.0, 720.0, -10.0, 6.0, 6.0, 6.0, 0.4)
    study = synth.planar_pair(synth.BodySpec(lesions=(faint,), seed=3))
    _, _, det = _detect(study)
    assert det.spots == ()


def test_derived_image_uses_empirical_noise(three_lesion_study) -> None:
    ant, _, _, _ = three_lesion_study
    derived = type(ant)(**{**ant.__dict__, "is_count_data": False})
    conj = conjugate_view(derived, None, config=CFG.planar.alignment)
    organs = find_organs(conj.image, spacing_mm=conj.pixel_spacing_mm, config=CFG.planar.organs)
    det = find_lesions(
        conj.image, None, organs, spacing_mm=conj.pixel_spacing_mm, config=CFG.planar.detection
    )
    assert det.noise_method == "empirical"
    assert any("without counting statistics" in w for w in det.warnings)
    assert len(det.spots) >= 2


def test_apparent_peak_is_the_smoothed_value_at_the_peak() -> None:
    rng = np.random.default_rng(4)
    img = rng.poisson(50.0, (40, 40)).astype(float)
    var = img.copy()
    value, variance = apparent_peak(img, var, (20, 21), spacing_mm=(2.0, 2.0), fwhm_mm=5.0)
    sigma = fwhm_to_sigma_px(5.0, (2.0, 2.0))
    assert value == pytest.approx(smooth(img, sigma)[20, 21])
    assert variance == pytest.approx(smooth_variance(var, sigma)[20, 21])
    assert apparent_peak(img, None, (20, 21), spacing_mm=(2.0, 2.0), fwhm_mm=5.0)[1] == 0.0


def test_background_keeps_ridges_and_removes_compact_spots() -> None:
    r, c = np.mgrid[0:120, 0:120]
    ridge = 50.0 * np.exp(-((c - 30) ** 2) / (2 * 6.0**2))  # a limb or bowel loop
    spot = 50.0 * np.exp(-((r - 60) ** 2 + (c - 90) ** 2) / (2 * 4.0**2))
    img = 10.0 + ridge + spot
    bg = background(img, radius_mm=30.0, spacing_mm=(2.0, 2.0))
    assert bg[60, 30] == pytest.approx(img[60, 30], rel=0.05)  # ridge stays background
    assert bg[60, 90] < 10.0 + 0.2 * 50.0  # the spot stands out
    assert bg[10, 100] == pytest.approx(10.0, abs=0.5)
