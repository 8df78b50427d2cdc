"""Hot-spot detection on synthetic whole-body images: a lesion in the liver, one in the
abdomen and one next to the spleen; organs are not lesions."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import ndimage

from octoscan.models.config import load_config
from octoscan.models.planar_align import conjugate_view
from octoscan.models.planar_lesions import (
    apparent_peak,
    axis_lengths_mm,
    background,
    find_lesions,
    organ_depth_background,
)
from octoscan.models.planar_organs import find_organs
from octoscan.models.stats import fwhm_to_sigma_px, smooth, smooth_variance

CFG = load_config()


def _detect(study, detection=None):
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
        config=detection or CFG.planar.detection,
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


def _dome(shape=(160, 160)):
    """A projected ellipsoidal organ (thickness sqrt(1 - u^2)) on a flat body, blurred, and
    its half-level outline (as organ finding outlines organs)."""
    r, c = np.mgrid[0 : shape[0], 0 : shape[1]]
    u2 = ((r - 80) / 60.0) ** 2 + ((c - 80) / 50.0) ** 2
    free = ndimage.gaussian_filter(10.0 + 100.0 * np.sqrt(np.clip(1 - u2, 0, None)), 4.0)
    outline = free > 10.0 + 0.5 * (free.max() - 10.0)
    return r, c, free, outline


DEPTH_KW = {
    "spacing_mm": (2.0, 2.0),
    "window_mm": 50.0,
    "exclusion_mm": 12.0,
    "depth_tolerance_mm": 4.0,
    "influence_mm": 40.0,
}


def test_depth_background_follows_the_slope_of_a_thinning_organ() -> None:
    r, c, free, organ = _dome()
    # a lesion on the organ's slope: not a local maximum along the slope
    bump = 0.25 * free[80, 118] * np.exp(-((r - 80) ** 2 + (c - 118) ** 2) / (2 * 4.0**2))
    img = free + bump
    depth = organ_depth_background(img, [organ], organ, **DEPTH_KW)
    assert depth[80, 118] == pytest.approx(free[80, 118], rel=0.03)
    # the line openings slide up the slope and absorb most of it
    line = background(img, radius_mm=30.0, spacing_mm=(2.0, 2.0))
    assert line[80, 118] - free[80, 118] > 0.8 * bump[80, 118]
    # without a lesion the organ is its own background, the dome top included
    clean = organ_depth_background(free, [organ], organ, **DEPTH_KW)
    inner = ndimage.binary_erosion(organ, iterations=3)
    ok = np.isfinite(clean) & inner
    assert ok.sum() >= 0.99 * inner.sum()
    rel = np.abs(clean[ok] / free[ok] - 1.0)
    assert np.median(rel) < 0.02 and np.percentile(rel, 95) < 0.05
    assert clean[80, 100] == pytest.approx(free[80, 100], rel=0.02)
    # the deepest point has no other pixel at its depth: not estimated there
    assert np.isinf(clean[80, 80])
    # outside the zone nothing is estimated
    assert np.isinf(clean[5, 5]) and np.isinf(clean[~organ]).all()


def test_depth_background_abstains_beside_a_hot_neighbour() -> None:
    """Near a hot organ overlapping the organ (a kidney behind the liver) the organ's own
    depth is not enough: pixels at the same depth far from the neighbour lack its blur. With
    the neighbour's distance in the signature, the estimate there is left undefined (the
    caller falls back to the line openings) instead of being wrong."""
    r, c, free, organ = _dome()
    hot = (r - 115) ** 2 + (c - 80) ** 2 <= 12**2
    img = free + ndimage.gaussian_filter(300.0 * hot, 5.0)
    zone = organ & ~hot
    alone = organ_depth_background(img, [organ], zone, **DEPTH_KW)
    both = organ_depth_background(img, [organ, hot], zone, **DEPTH_KW)
    for point in ((97, 80), (115, 98), (115, 60)):
        assert abs(alone[point] / img[point] - 1.0) > 0.15
        assert np.isinf(both[point])
    # far from the neighbour both agree with the image
    far = (40, 80)
    assert both[far] == pytest.approx(img[far], rel=0.03)
    assert alone[far] == pytest.approx(img[far], rel=0.03)


def test_depth_background_without_masks_or_zone_is_infinite() -> None:
    _, _, free, organ = _dome()
    assert np.isinf(organ_depth_background(free, [], organ, **DEPTH_KW)).all()
    empty = np.zeros_like(organ)
    assert np.isinf(organ_depth_background(free, [organ], empty, **DEPTH_KW)).all()


def test_lesion_on_the_slope_of_the_thinning_liver_needs_the_liver_background(synth) -> None:
    """The medial part of the liver thins towards the midline; a lesion there is a shoulder
    on a slope, which the line openings absorb and the liver's depth background finds."""
    lesion = synth.Blob("liver_lesion_slope", 5.0, 520.0, -10.0, 12.0, 12.0, 12.0, 4.0)
    spec = synth.BodySpec(lesions=(lesion,), seed=3)
    study = synth.planar_pair(spec)
    rc = synth.lesion_rc(lesion, spec)
    _, organs, det = _detect(study)
    assert organs.organ("liver").mask[round(rc[0]), round(rc[1])]
    assert len(det.spots) == 1
    spot = det.spots[0]
    assert math.dist(spot.center_rc, rc) <= 2.0 and spot.region == "liver"
    assert spot.contrast >= CFG.planar.detection.min_contrast
    off = dataclasses.replace(CFG.planar.detection, liver_opening_radius_mm=0.0)
    assert _detect(study, off)[2].spots == ()


def test_axis_lengths_of_a_disk_and_an_ellipse() -> None:
    r, c = np.mgrid[0:200, 0:200]
    disk = (r - 100) ** 2 + (c - 100) ** 2 <= 30**2
    major, minor = axis_lengths_mm(disk, (0.5, 0.5))
    assert major == pytest.approx(30.0, rel=0.02) and minor == pytest.approx(30.0, rel=0.02)
    ellipse = ((r - 100) / 80.0) ** 2 + ((c - 100) / 20.0) ** 2 <= 1.0
    major, minor = axis_lengths_mm(ellipse, (0.5, 1.0))  # anisotropic pixels
    assert major == pytest.approx(80.0, rel=0.02) and minor == pytest.approx(40.0, rel=0.02)
    single = np.zeros((5, 5), dtype=bool)
    single[2, 2] = True
    assert axis_lengths_mm(single, (2.0, 3.0)) == (3.0, 2.0)


def test_elongated_bowel_loop_is_set_aside_and_a_round_spot_kept(synth) -> None:
    loop = synth.Blob("bowel_loop", 50.0, 760.0, -40.0, 36.0, 6.0, 3.0, 3.0)
    node = synth.Blob("node", -70.0, 800.0, -40.0, 11.0, 11.0, 11.0, 2.0)
    spec = synth.BodySpec(lesions=(), extra=(loop, node), seed=3)
    _, _, det = _detect(synth.planar_pair(spec))
    assert len(det.spots) == 1
    assert math.dist(det.spots[0].center_rc, synth.lesion_rc(node, spec)) <= 2.0
    aside = [s for s in det.set_aside if s.organ.startswith("elongated")]
    assert len(aside) == 1
    assert math.dist(aside[0].center_rc, synth.lesion_rc(loop, spec)) <= 4.0
    ratio = float(aside[0].organ.split()[1].split(":")[0])
    assert ratio > CFG.planar.detection.max_elongation
    major, minor = axis_lengths_mm(det.spots[0].mask, spec_spacing(spec))
    assert major <= CFG.planar.detection.max_elongation * minor


def spec_spacing(spec) -> tuple[float, float]:
    return (spec.spacing_mm, spec.spacing_mm)


@pytest.mark.parametrize(
    ("conc", "pair", "expected_spots"),
    [(0.25, True, 0), (0.25, False, 1), (3.0, True, 2)],
)
def test_faint_symmetric_uptake_is_physiological(synth, conc, pair, expected_spots) -> None:
    """Faint spots at mirror positions (knees) are set aside; a single faint spot, or a
    bright pair (bilateral lesions), is kept."""
    left = synth.Blob("knee_left", -85.0, 1250.0, 0.0, 15.0, 15.0, 15.0, conc)
    right = synth.Blob("knee_right", 85.0, 1250.0, 0.0, 15.0, 15.0, 15.0, conc)
    spec = synth.BodySpec(lesions=(), extra=(left, right) if pair else (left,), seed=3)
    _, _, det = _detect(synth.planar_pair(spec))
    assert len(det.spots) == expected_spots
    symmetric = [s for s in det.set_aside if s.organ.startswith("symmetric")]
    assert len(symmetric) == (2 if expected_spots == 0 else 0)
    for spot in det.spots:
        assert any(
            math.dist(spot.center_rc, synth.lesion_rc(b, spec)) <= 2.0 for b in (left, right)
        )


def test_faint_bilateral_pelvic_lesions_are_kept(synth) -> None:
    """Inside the torso's abdomen and pelvis bilateral disease (iliac nodes, iliac bones) is
    common: symmetry does not set faint spots aside there."""
    left = synth.Blob("iliac_left", -90.0, 800.0, 20.0, 15.0, 15.0, 15.0, 0.3)
    right = synth.Blob("iliac_right", 90.0, 800.0, 20.0, 15.0, 15.0, 15.0, 0.3)
    spec = synth.BodySpec(lesions=(), extra=(left, right), seed=3)
    _, _, det = _detect(synth.planar_pair(spec))
    assert len(det.spots) == 2
    assert {s.region for s in det.spots} == {"pelvis"}
    assert all(s.contrast < 0.5 for s in det.spots)  # faint, as the knees above
    assert not [s for s in det.set_aside if s.organ.startswith("symmetric")]


def test_bright_elongated_spot_is_kept(synth) -> None:
    """The shape tests only judge faint spots: a bright lesion stays a lesion whatever the
    outline its neighbours leave it."""
    bright = synth.Blob("bright_bar", 50.0, 760.0, -40.0, 36.0, 6.0, 3.0, 30.0)
    spec = synth.BodySpec(lesions=(), extra=(bright,), seed=3)
    _, _, det = _detect(synth.planar_pair(spec))
    assert len(det.spots) == 1
    spot = det.spots[0]
    assert spot.contrast > CFG.planar.detection.shape_max_contrast
    assert math.dist(spot.center_rc, synth.lesion_rc(bright, spec)) <= 4.0
    assert not [s for s in det.set_aside if s.organ.startswith(("elongated", "narrower"))]
