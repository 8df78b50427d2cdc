"""Organs on the emission volume (and the CT) and reference VOIs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from octoscan.imaging.errors import InvalidInputError
from octoscan.models.tomo_organs import (
    METHOD_CT,
    METHOD_EMISSION,
    _spleen_from_ct,
    ball,
    close_mm,
    dilate_mm,
    distance_inside_mm,
    distance_to_mm,
    effective_resels,
    erode_mm,
    gaussian_mm,
    locate_organs,
    open_mm,
    place_reference,
    sphere_mask,
)
from octoscan.models.tomo_pairing import resample_ct_to, working_grid
from tests.models import tomo_builders as tb


def _organs(*, ct: bool, spleen: bool = True, liver_ratio: float = 1.0):
    cfg = tb.tomo_config()
    emission = tb.emission_volume(spleen=spleen)
    if liver_ratio != 1.0:
        emission = tb.emission_volume(spleen=spleen, scale=tb.LIVER_COUNTS)
    grid = working_grid(emission, working_voxel_mm=cfg.resolution.working_voxel_mm)
    hu = None
    if ct:
        hu = resample_ct_to(tb.ct_volume(spleen=spleen), grid.shape, grid.affine).array
    organs = locate_organs(
        grid.reduce(emission.array), grid, ct_hu=hu, organs=cfg.organs, ct=cfg.ct
    )
    return organs, grid, emission


def _centre(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(axis=0) @ affine[:3, :3].T + affine[:3, 3]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.mark.parametrize("ct", [False, True])
def test_organs_by_anatomy(ct: bool) -> None:
    organs, grid, emission = _organs(ct=ct)
    assert organs.method == (METHOD_CT if ct else METHOD_EMISSION)
    assert organs.body.midline_x_mm == pytest.approx(0.0, abs=5.0)
    assert organs.body.soft_tissue_level == pytest.approx(
        tb.LEVELS["soft"] * tb.LIVER_COUNTS, rel=0.2
    )
    assert organs.liver is not None and organs.spleen is not None
    assert organs.liver_level == pytest.approx(tb.LIVER_COUNTS, rel=0.1)
    np.testing.assert_allclose(_centre(organs.liver, grid.affine), tb.LIVER.centre, atol=12.0)
    np.testing.assert_allclose(_centre(organs.spleen, grid.affine), tb.SPLEEN.centre, atol=8.0)
    assert len(organs.kidneys) == 2
    xs = sorted(float(_centre(k, grid.affine)[0]) for k in organs.kidneys)
    assert xs[0] == pytest.approx(tb.KIDNEY_RIGHT.centre[0], abs=6.0)
    assert xs[1] == pytest.approx(tb.KIDNEY_LEFT.centre[0], abs=6.0)
    assert organs.bladder is None
    true_liver = tb.true_mask(emission, tb.LIVER)[: grid.shape[0], :, :]
    assert _dice(organs.liver, true_liver) > (0.85 if ct else 0.8)
    assert organs.liver_hull is not None and organs.liver_hull.sum() >= organs.liver.sum()
    phys = organs.physiological_mask()
    assert phys[organs.spleen].all() and not phys[organs.liver].any()
    assert any("no CT fused" in w for w in organs.warnings) == (not ct)


def test_splenectomy_is_reported() -> None:
    organs, _, _ = _organs(ct=False, spleen=False)
    assert organs.spleen is None
    assert len(organs.kidneys) == 2
    assert any("no spleen found" in w for w in organs.warnings)


@pytest.mark.parametrize("spleen", [True, False])
def test_spleen_found_on_ct_when_the_emission_search_misses_it(spleen: bool) -> None:
    """The CT fallback for a spleen hidden by an equally avid liver: the spleen window on
    the patient's left with organ-level uptake, cut at half its uptake; nothing after a
    splenectomy."""
    cfg = tb.tomo_config()
    organs, grid, emission = _organs(ct=True, spleen=spleen)
    hu = resample_ct_to(tb.ct_volume(spleen=spleen), grid.shape, grid.affine).array
    assert organs.liver_hull is not None
    s = gaussian_mm(grid.reduce(emission.array), cfg.organs.smoothing_fwhm_mm, grid.spacing_mm)
    found = _spleen_from_ct(
        s,
        hu,
        organs.body,
        organs.liver_hull,
        organs.kidneys,
        grid.affine,
        grid.spacing_mm,
        cfg.organs,
        cfg.ct,
        min_level=organs.organ_level,
    )
    if not spleen:
        assert found is None
        return
    assert found is not None
    np.testing.assert_allclose(_centre(found, grid.affine), tb.SPLEEN.centre, atol=8.0)
    true_spleen = tb.true_mask(emission, tb.SPLEEN)[: grid.shape[0], :, :]
    assert _dice(found, true_spleen) > 0.8
    # the body wall shares the spleen's HU (40 vs 46) but is cut off at half its uptake
    assert float(found.sum()) == pytest.approx(float(true_spleen.sum()), rel=0.25)


def test_empty_volume_is_refused() -> None:
    cfg = tb.tomo_config()
    emission = tb.emission_volume()
    grid = working_grid(emission, working_voxel_mm=4.0)
    with pytest.raises(InvalidInputError, match="holds no positive value"):
        locate_organs(
            np.zeros(grid.shape, np.float32), grid, ct_hu=None, organs=cfg.organs, ct=cfg.ct
        )


def test_reference_sphere_avoids_lesions_and_edges() -> None:
    organs, grid, emission = _organs(ct=False)
    lesion = tb.DEFAULT_LESIONS[0]
    avoid = sphere_mask(grid.shape, grid.affine, np.array(lesion.centre), lesion.radius_mm)
    ref = place_reference(
        "liver",
        organs.liver,
        grid.reduce(emission.array),
        grid,
        emission.array,
        diameter_mm=30.0,
        edge_margin_mm=10.0,
        lesion_margin_mm=10.0,
        avoid=avoid,
        fwhm_mm=10.0,
        method=organs.method,
    )
    assert ref is not None and ref.organ == "liver" and ref.plausible
    centre = np.asarray(ref.center_lps_mm)
    assert np.linalg.norm(centre - np.asarray(lesion.centre)) >= 15.0 + 15.0 + 10.0 - 4.0
    assert ref.mask is not None and ref.mask.shape == emission.shape
    truth = tb.true_mask(emission, tb.LIVER)
    assert truth[ref.mask].all()  # entirely in liver parenchyma
    assert ref.volume_ml == pytest.approx(4.0 / 3.0 * math.pi * 15.0**3 / 1000.0, rel=0.15)
    assert ref.mean == pytest.approx(tb.LIVER_COUNTS, rel=0.05)
    # noise of the mean from the region itself, over the number of resolution elements
    n_eff = effective_resels(ref.volume_ml, 10.0)
    assert n_eff == pytest.approx(ref.volume_ml / 1.0, rel=1e-9)  # FWHM^3 = 1 mL
    assert ref.variance_of_mean >= ref.std**2 / n_eff * 0.999
    assert ref.variance_method == "empirical"
    assert "n_eff = V / FWHM^3" in ref.method


def test_reference_placed_at_the_deepest_point_when_it_does_not_fit() -> None:
    organs, grid, emission = _organs(ct=False)
    ref = place_reference(
        "spleen",
        organs.spleen,
        grid.reduce(emission.array),
        grid,
        emission.array,
        diameter_mm=60.0,
        edge_margin_mm=10.0,
        lesion_margin_mm=10.0,
        avoid=None,
        fwhm_mm=10.0,
        method=organs.method,
    )
    assert ref is not None
    assert ref.warnings and "does not fit" in ref.warnings[0]
    np.testing.assert_allclose(ref.center_lps_mm, tb.SPLEEN.centre, atol=10.0)


def test_effective_resels_never_below_one() -> None:
    assert effective_resels(0.5, 13.0) == 1.0
    assert effective_resels(14.14, 13.0) == pytest.approx(14.14 / 2.197, rel=1e-3)


def test_place_reference_on_empty_organ_is_none() -> None:
    _, grid, emission = _organs(ct=False)
    empty = np.zeros(grid.shape, dtype=bool)
    ref = place_reference(
        "spleen", empty, grid.reduce(emission.array), grid, emission.array,
        diameter_mm=20.0, edge_margin_mm=5.0, lesion_margin_mm=10.0, avoid=None,
        fwhm_mm=10.0, method="emission",
    )  # fmt: skip
    assert ref is None


def test_morphology_in_millimetres() -> None:
    spacing = (2.0, 1.0, 1.0)
    mask = np.zeros((21, 41, 41), dtype=bool)
    mask[10, 20, 20] = True
    grown = dilate_mm(mask, 6.0, spacing)
    assert grown.sum() == ball(6.0, spacing).sum()
    assert grown[13, 20, 20] and not grown[14, 20, 20]  # 6 mm = 3 planes of 2 mm
    assert erode_mm(grown, 2.5, spacing).sum() < grown.sum()
    cube = np.zeros((21, 41, 41), dtype=bool)
    cube[5:16, 10:31, 10:31] = True
    assert open_mm(cube, 3.0, spacing).sum() > 0.8 * cube.sum()
    holed = cube.copy()
    holed[10, 20, 20] = False
    assert close_mm(holed, 3.0, spacing)[10, 20, 20]
    inside = distance_inside_mm(cube, spacing)
    assert inside[10, 20, 20] == pytest.approx(11.0)  # 11 columns of 1 mm to the edge
    away = distance_to_mm(mask, spacing, max_mm=5.0)
    assert away[10, 20, 24] == pytest.approx(4.0) and math.isinf(float(away[10, 20, 30]))
    assert math.isinf(float(distance_to_mm(np.zeros_like(mask), spacing)[0, 0, 0]))


def test_avid_nodule_in_a_lung_open_to_the_outside_is_inside_the_body() -> None:
    """A hot nodule in lung tissue that reaches the body's edge in its planes (no chest wall
    closes it off on the working grid) is an island of the CT body: it stays in the body
    because it lies inside the torso's outline and takes up tracer."""
    cfg = tb.tomo_config()
    nodule = tb.Sphere((110.0, -20.0, 1120.0), 8.0, 6.0)
    emission = tb.emission_volume((nodule,))
    ct = tb.ct_volume((nodule,))
    hu = ct.array.copy()
    # lung from the nodule out through the body's left side, in the nodule's planes
    inv = np.linalg.inv(ct.affine)
    lo = np.round(inv[:3, :3] @ np.array([95.0, -40.0, 1100.0]) + inv[:3, 3]).astype(int)
    hi = np.round(inv[:3, :3] @ np.array([170.0, 0.0, 1140.0]) + inv[:3, 3]).astype(int)
    sl = tuple(slice(min(a, b), max(a, b) + 1) for a, b in zip(lo, hi, strict=True))
    nodule_mask = tb.true_mask(ct, tb.Ellipsoid(nodule.centre, (8.0, 8.0, 8.0)))
    box = np.zeros(hu.shape, dtype=bool)
    box[sl] = True
    hu[box & ~nodule_mask] = -850.0
    ct = dataclasses.replace(ct, array=hu)
    grid = working_grid(emission, working_voxel_mm=cfg.resolution.working_voxel_mm)
    ct_hu = resample_ct_to(ct, grid.shape, grid.affine).array
    organs = locate_organs(
        grid.reduce(emission.array), grid, ct_hu=ct_hu, organs=cfg.organs, ct=cfg.ct
    )
    inv_w = np.linalg.inv(grid.affine)
    centre = tuple(np.round(inv_w[:3, :3] @ np.array(nodule.centre) + inv_w[:3, 3]).astype(int))
    assert ct_hu[centre] > 0.0  # the nodule itself is soft tissue on the CT
    assert organs.body.mask[centre]
    # the lung around it (air-dense, no uptake) stays outside
    beside = tuple(
        np.round(inv_w[:3, :3] @ np.array([140.0, -20.0, 1120.0]) + inv_w[:3, 3]).astype(int)
    )
    assert not organs.body.mask[beside]
