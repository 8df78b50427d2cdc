"""Phantom anatomy, activity and lesions: geometry, sizes, concentrations, placement."""

import numpy as np
import pytest

from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.phantom.activity import (
    TRACERS,
    Tracer,
    activity_volume,
    draw_activity_model,
)
from octoscan.imaging.phantom.anatomy import (
    Grid,
    Shape,
    Tissue,
    body_grid,
    build_anatomy,
    ellipsoid_occupancy,
)
from octoscan.imaging.phantom.lesions import (
    LESION_PROFILES,
    Lesion,
    LesionSite,
    LesionSpec,
    add_lesions,
    draw_lesion_specs,
    parse_lesion_specs,
    place_lesions,
)


@pytest.fixture(scope="module")
def body():
    anatomy = build_anatomy(5)
    grid = body_grid(anatomy)
    return anatomy, grid, anatomy.rasterize(grid)


def _volume_ml(labels, grid, tissue):
    return float(np.count_nonzero(labels == tissue)) * grid.voxel_volume_ml


def test_grid_affine_maps_indices_to_lps():
    grid = Grid(shape=(3, 4, 5), spacing_mm=(2.0, 3.0, 4.0), origin_mm=(-10.0, 20.0, 100.0))
    # index (plane, row, col) = (2, 1, 3) -> x = -10 + 3*4, y = 20 + 1*3, z = 100 + 2*2
    assert np.allclose(grid.affine @ [2, 1, 3, 1], [2.0, 23.0, 104.0, 1.0])
    assert grid.index_range(0, 101.0, 103.9) == slice(1, 2)
    assert np.allclose(grid.axis_mm(2), [-10, -6, -2, 2, 6])


def test_same_seed_same_body_and_seeds_differ(body):
    anatomy, grid, labels = body
    again = build_anatomy(5)
    assert again == anatomy
    assert np.array_equal(again.rasterize(grid), labels)
    assert build_anatomy(6).height_mm != anatomy.height_mm


def test_organ_sizes_and_sides(body):
    anatomy, grid, labels = body
    assert 1.6 <= anatomy.height_mm / 1000 <= 1.9
    assert 40.0 <= anatomy.weight_kg <= 130.0
    assert 1000.0 <= _volume_ml(labels, grid, Tissue.LIVER) <= 2600.0
    assert 100.0 <= _volume_ml(labels, grid, Tissue.SPLEEN) <= 450.0
    for kidney in (Tissue.KIDNEY_LEFT, Tissue.KIDNEY_RIGHT):
        assert 80.0 <= _volume_ml(labels, grid, kidney) <= 250.0
    for tissue in (Tissue.BLADDER, Tissue.THYROID, Tissue.PITUITARY, Tissue.BONE, Tissue.LUNG):
        assert _volume_ml(labels, grid, tissue) > 0.0

    def mean_x(tissue):
        idx = np.argwhere(labels == tissue)
        return float(np.mean(grid.axis_mm(2)[idx[:, 2]]))

    # LPS: +x is the patient's left. Liver right, spleen left, heart left of midline.
    assert mean_x(Tissue.LIVER) < -20.0
    assert mean_x(Tissue.SPLEEN) > 60.0
    assert mean_x(Tissue.KIDNEY_LEFT) > 0.0 > mean_x(Tissue.KIDNEY_RIGHT)
    # supine: kidneys posterior (+y) of the bladder; head at the top (largest z)
    ky = np.argwhere(labels == Tissue.KIDNEY_LEFT)[:, 1].mean()
    by = np.argwhere(labels == Tissue.BLADDER)[:, 1].mean()
    assert ky > by
    assert (
        np.argwhere(labels == Tissue.BRAIN)[:, 0].min()
        > np.argwhere(labels == Tissue.LIVER)[:, 0].max()
    )


def test_splenectomy_removes_only_the_spleen(body):
    _, grid, labels = body
    no_spleen = build_anatomy(5, splenectomy=True).rasterize(grid)
    assert not np.any(no_spleen == Tissue.SPLEEN)
    changed = labels != no_spleen
    assert np.all(labels[changed] == Tissue.SPLEEN)


def test_occupancy_sums_to_the_ellipsoid_volume():
    grid = Grid(shape=(20, 20, 20), spacing_mm=(4.0, 4.0, 4.0), origin_mm=(-38.0, -38.0, -38.0))
    shape = Shape("ellipsoid", (1.3, -2.1, 0.7), (9.0, 6.0, 12.0), angle_deg=30.0)
    _, frac = ellipsoid_occupancy(grid, shape, supersample=8)
    expected_ml = 4 / 3 * np.pi * 9 * 6 * 12 / 1000.0
    assert frac.sum() * grid.voxel_volume_ml == pytest.approx(expected_ml, rel=0.03)
    assert frac.max() == 1.0 and frac.min() == 0.0
    assert ellipsoid_occupancy(grid, Shape("ellipsoid", (500, 0, 0), (5, 5, 5))) is None


def test_in111_uptake_pattern_and_time_points():
    m24 = draw_activity_model(
        Tracer.IN111_PENTETREOTIDE, 3, hours_post_injection=24, weight_kg=70, liver_volume_ml=1600
    )
    m4 = draw_activity_model(
        Tracer.IN111_PENTETREOTIDE, 3, hours_post_injection=4, weight_kg=70, liver_volume_ml=1600
    )
    for m in (m24, m4):
        r = m.ratio_to_liver
        assert r[Tissue.LIVER] == 1.0
        assert r[Tissue.SPLEEN] > r[Tissue.KIDNEY_LEFT] > 2.0  # spleen highest, kidneys high
        assert r[Tissue.SOFT_TISSUE] < 0.2
    # background and blood pool higher at 4 h; bowel and gallbladder appear at 24 h
    assert m4.ratio_to_liver[Tissue.SOFT_TISSUE] > m24.ratio_to_liver[Tissue.SOFT_TISSUE]
    assert m4.ratio_to_liver[Tissue.HEART] > m24.ratio_to_liver[Tissue.HEART]
    assert m24.ratio_to_liver[Tissue.BOWEL] > 3 * m4.ratio_to_liver[Tissue.BOWEL]
    assert m24.ratio_to_liver[Tissue.GALLBLADDER] > 2 * m4.ratio_to_liver[Tissue.GALLBLADDER]
    # decay: 111In half-life 2.8 d
    assert m24.decay_factor == pytest.approx(0.5 ** (24 / (2.8047 * 24)), rel=1e-6)
    assert TRACERS[Tracer.IN111_PENTETREOTIDE].radionuclide_code.value == "56609000"


def test_ga68_concentrations_follow_suv():
    m = draw_activity_model(
        Tracer.GA68_DOTATATE, 4, hours_post_injection=1.0, weight_kg=80, liver_volume_ml=1600
    )
    assert m.suv_per_kbq_per_ml is not None
    liver_suv = m.kbq_per_ml(Tissue.LIVER) * m.suv_per_kbq_per_ml
    assert 6.0 <= liver_suv <= 10.0
    # SUVbw = C / (A * decay / weight)
    expected = (
        m.kbq_per_ml(Tissue.LIVER) * 80_000 / (m.injected_activity_mbq * 1000 * m.decay_factor)
    )
    assert liver_suv == pytest.approx(expected, rel=1e-3)
    assert m.ratio_to_liver[Tissue.SPLEEN] > 1.5


def test_diffuse_liver_is_mottled_and_near_spleen(body):
    _, grid, labels = body
    m = draw_activity_model(
        Tracer.IN111_PENTETREOTIDE,
        5,
        hours_post_injection=24,
        weight_kg=70,
        liver_volume_ml=1600,
        diffuse_liver=True,
    )
    conc = activity_volume(labels, grid, m, seed=5)
    liver = conc[labels == Tissue.LIVER]
    spleen = m.kbq_per_ml(Tissue.SPLEEN)
    assert 0.7 * spleen < liver.mean() < 1.3 * spleen
    assert liver.std() / liver.mean() > 0.15
    assert liver.min() >= m.liver_kbq_per_ml * 0.999


def test_parse_lesion_specs_and_errors():
    specs = parse_lesion_specs("liver:30:2.5, pancreas:22:8:1.4")
    assert specs[0] == LesionSpec(LesionSite.LIVER, 30.0, 2.5)
    assert specs[1].elongation == 1.4 and specs[1].site is LesionSite.PANCREAS
    with pytest.raises(InvalidInputError, match="not SITE:DIAMETER_MM:RATIO_LIVER"):
        parse_lesion_specs("liver-30-2")
    with pytest.raises(InvalidInputError, match="lesion site 'kidney' unknown"):
        parse_lesion_specs("kidney:20:2")
    with pytest.raises(InvalidInputError, match=r"diameter 90\.0 mm outside 8-60 mm"):
        parse_lesion_specs("liver:90:2")
    with pytest.raises(InvalidInputError, match=r"elongation 5\.0 outside 1-3"):
        LesionSpec(LesionSite.LUNG, 20.0, 1.0, elongation=5.0)


def test_drawn_lesions_span_grades_and_sizes():
    specs = draw_lesion_specs(11, 200, spleen_ratio=5.0)
    ratios = np.array([s.ratio_liver for s in specs])
    diam = np.array([s.diameter_mm for s in specs])
    assert (ratios < 0.5).any() and ((ratios > 0.5) & (ratios < 1.0)).any()
    assert ((ratios > 1.0) & (ratios < 5.0)).any() and (ratios > 5.0).any()
    near = np.min(np.abs(ratios[:, None] / np.array([0.5, 1.0, 5.0]) - 1.0), axis=1) <= 0.07
    assert 0.1 < near.mean() < 0.5  # a share sits on a threshold on purpose
    assert diam.min() >= 8.0 and diam.max() <= 60.0 and np.median(diam) < 30.0
    assert {s.site for s in specs} == set(LesionSite)
    low = draw_lesion_specs(11, 50, spleen_ratio=5.0, profile="low")
    assert max(s.ratio_liver for s in low) <= 1.07
    assert set(LESION_PROFILES) == {"mixed", "avid", "low"}
    with pytest.raises(InvalidInputError, match="lesion profile 'hot' unknown"):
        draw_lesion_specs(1, 2, spleen_ratio=5.0, profile="hot")


def test_lesions_sit_in_their_site_apart_and_replace_tissue(body):
    anatomy, grid, labels = body
    specs = [
        LesionSpec(LesionSite.LIVER, 30.0, 3.0),
        LesionSpec(LesionSite.LUNG, 15.0, 2.0),
        LesionSpec(LesionSite.BONE, 20.0, 4.0),
        LesionSpec(LesionSite.LYMPH_NODE, 16.0, 0.4),
        LesionSpec(LesionSite.PANCREAS, 25.0, 6.0),
    ]
    lesions = place_lesions(specs, anatomy, labels, grid, seed=5)
    assert place_lesions(specs, anatomy, labels, grid, seed=5) == lesions
    inv = np.linalg.inv(grid.affine)
    expected_tissue = {
        LesionSite.LIVER: {Tissue.LIVER},
        LesionSite.LUNG: {Tissue.LUNG},
        LesionSite.BONE: {Tissue.BONE},
        LesionSite.LYMPH_NODE: {Tissue.FAT, Tissue.SOFT_TISSUE},
        LesionSite.PANCREAS: {Tissue.PANCREAS},
    }
    for lesion in lesions:
        idx = np.rint(inv[:3, :3] @ np.asarray(lesion.center_mm) + inv[:3, 3]).astype(int)
        assert Tissue(int(labels[tuple(idx)])) in expected_tissue[lesion.site], lesion
    for a in lesions:
        for b in lesions:
            if a is not b:
                d = np.hypot(a.center_mm[0] - b.center_mm[0], a.center_mm[2] - b.center_mm[2])
                assert d >= a.diameter_mm / 2 + b.diameter_mm / 2 + 10.0
    conc = np.ones(grid.shape, dtype=np.float32)
    with_lesions = add_lesions(conc, grid, lesions[:1], liver_kbq_per_ml=2.0)
    added = float((with_lesions - conc).sum()) * grid.voxel_volume_ml
    # the lesion (3 x 2 kBq/mL) replaces tissue at 1 kBq/mL over its volume
    assert added == pytest.approx(lesions[0].volume_ml * (6.0 - 1.0), rel=0.03)


def test_no_room_for_a_lesion_is_an_input_error(body):
    anatomy, grid, labels = body
    specs = [LesionSpec(LesionSite.LUNG, 35.0, 2.0)] * 40
    with pytest.raises(InvalidInputError, match=r"no room for lesion \d+ \(lung, 35 mm\)"):
        place_lesions(specs, anatomy, labels, grid, seed=1)


def test_lesion_geometry_properties():
    lesion = Lesion("L1", LesionSite.LIVER, (0, 0, 0), (10.0, 5.0, 5.0), 0.0, 2.0)
    assert lesion.diameter_mm == 20.0
    assert lesion.equivalent_diameter_mm == pytest.approx(2 * (250.0 ** (1 / 3)))
    assert lesion.volume_ml == pytest.approx(4 / 3 * np.pi * 250 / 1000)
