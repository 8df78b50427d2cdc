"""Organ localisation on synthetic whole-body images (positions in mm through the spacing)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from octoscan.models.config import load_config
from octoscan.models.planar_align import conjugate_view
from octoscan.models.planar_organs import (
    body_mask,
    circle_mask,
    find_organs,
    grey_open,
    grow_region,
    place_reference,
)

CFG = load_config()


def _organs(synth, spec, *, transform=None, single=False):
    ant, post, _, _ = synth.planar_pair(spec)
    if transform is not None:
        ant = type(ant)(**{**ant.__dict__, "counts": np.ascontiguousarray(transform(ant.counts))})
        post = type(post)(
            **{**post.__dict__, "counts": np.ascontiguousarray(transform(post.counts))}
        )
    conj = conjugate_view(ant, None if single else post, config=CFG.planar.alignment)
    both = conj.anterior is not None and conj.posterior is not None
    return conj, find_organs(
        conj.image,
        spacing_mm=conj.pixel_spacing_mm,
        config=CFG.planar.organs,
        anterior=conj.anterior if both else None,
        posterior=conj.posterior if both else None,
    )


def _dist_mm(a, b, spacing) -> float:
    return math.hypot((a[0] - b[0]) * spacing, (a[1] - b[1]) * spacing)


@pytest.mark.parametrize("spacing", [4.8, 3.2])
def test_organs_found_where_they_are(synth, spacing: float) -> None:
    spec = synth.BodySpec(spacing_mm=spacing, counts=2.0e6 * (4.8 / spacing) ** 2)
    _, om = _organs(synth, spec)
    found = {o.organ: o for o in om.organs}
    assert set(found) == {"liver", "spleen", "kidney_left", "kidney_right", "bladder"}
    for blob in synth.organ_blobs(spec):
        centre = synth.lesion_rc(blob, spec)
        assert _dist_mm(found[blob.name].center_rc, centre, spacing) < 25.0, blob.name
    assert om.whole_body
    assert om.orientation.startswith("head at row 0")
    assert om.frame.flip_rows is False and om.frame.flip_cols is False
    assert 300.0 <= om.torso_width_mm <= 420.0
    assert om.head_neck_rows is not None
    top, shoulders = om.head_neck_rows
    assert top == pytest.approx(10, abs=2)  # the synthetic head starts 10 rows down
    assert 250.0 < (shoulders - top) * spacing < 400.0  # torso from 280 mm, + 30 mm margin
    liver_area = found["liver"].area_cm2
    assert liver_area is not None and 120.0 < liver_area < 350.0
    assert all(o.mask is not None and o.mask.shape == om.body.shape for o in om.organs)
    assert om.warnings == ()


def test_feet_first_image_is_recognised_and_mapped_back(synth) -> None:
    spec = synth.BodySpec()
    _, upright = _organs(synth, spec)
    _, flipped = _organs(synth, spec, transform=lambda a: a[::-1])
    assert flipped.frame.flip_rows and not flipped.frame.flip_cols
    assert flipped.orientation.startswith("feet at row 0")
    assert any("feet first" in w for w in flipped.warnings)
    rows = upright.body.shape[0]
    for o in upright.organs:
        other = flipped.organ(o.organ)
        assert other is not None
        assert other.center_rc[0] == pytest.approx(rows - 1 - o.center_rc[0], abs=1.0)
        assert other.center_rc[1] == pytest.approx(o.center_rc[1], abs=1.0)
        assert other.mask is not None and np.array_equal(other.mask, o.mask[::-1])


def test_liver_on_the_image_right_flips_columns_with_a_warning(synth) -> None:
    spec = synth.BodySpec()
    _, om = _organs(synth, spec, transform=lambda a: a[:, ::-1])
    assert om.frame.flip_cols
    assert any("liver appears on the image right" in w for w in om.warnings)
    liver = om.organ("liver")
    assert liver is not None and liver.center_rc[1] > om.body.shape[1] / 2


def test_splenectomy_reports_a_missing_spleen(synth) -> None:
    _, om = _organs(synth, synth.BodySpec(spleen=False))
    assert om.organ("spleen") is None
    assert om.organ("kidney_left") is not None and om.organ("liver") is not None
    assert any("spleen not found" in w for w in om.warnings)


def test_single_view_still_finds_kidneys_by_their_pairing(synth) -> None:
    _, om = _organs(synth, synth.BodySpec(), single=True)
    assert om.organ("kidney_left") is not None and om.organ("kidney_right") is not None
    assert om.organ("spleen") is not None


def test_empty_image_locates_nothing() -> None:
    om = find_organs(np.zeros((100, 40)), spacing_mm=(4.0, 4.0), config=CFG.planar.organs)
    assert om.organs == () and not om.body.any()
    assert "no counts" in om.warnings[0]


def test_static_view_assumes_head_up(synth) -> None:
    spec = synth.BodySpec()
    conj, _ = _organs(synth, spec)
    crop = conj.image[60:200]  # an abdominal static view, about 67 cm long
    om = find_organs(crop, spacing_mm=conj.pixel_spacing_mm, config=CFG.planar.organs)
    assert not om.whole_body
    assert om.orientation == "head at row 0 (assumed: static view)"
    assert om.organ("liver") is not None


def test_body_mask_and_soft_tissue_level() -> None:
    img = np.zeros((50, 50))
    img[10:40, 15:35] = 10.0
    img[20:25, 20:25] = 100.0
    mask, soft = body_mask(img, fraction=0.3)
    assert soft == 10.0
    assert mask.sum() == 30 * 20


def test_grow_region_stops_at_half_height_and_in_window() -> None:
    r, c = np.mgrid[0:60, 0:60]
    img = 100.0 * np.exp(-((r - 30) ** 2 + (c - 30) ** 2) / (2 * 5.0**2)) + 10.0
    region = grow_region(img, (30, 30), window_mm=(40.0, 40.0), spacing_mm=(2.0, 2.0))
    # half of (peak - background) is reached at sigma * sqrt(2 ln 2) = 5.9 pixels
    radius = math.sqrt(region.sum() / math.pi)
    assert radius == pytest.approx(5.0 * math.sqrt(2 * math.log(2)), abs=0.6)
    small = grow_region(img, (30, 30), window_mm=(6.0, 6.0), spacing_mm=(2.0, 2.0))
    assert small.sum() <= 29  # never leaves the 3-pixel window


def test_circle_mask_uses_millimetres() -> None:
    m = circle_mask((41, 41), (20.0, 20.0), 15.0, (1.5, 3.0))
    assert m.sum() == pytest.approx(math.pi * 15.0**2 / (1.5 * 3.0), rel=0.1)
    rows = np.flatnonzero(m.any(axis=1))
    cols = np.flatnonzero(m.any(axis=0))
    assert (rows[-1] - rows[0]) == 20 and (cols[-1] - cols[0]) == 10


def test_reference_keeps_clear_of_exclusions_and_edges() -> None:
    organ = np.zeros((80, 80), dtype=bool)
    organ[10:70, 10:70] = True
    img = np.full((80, 80), 100.0)
    img[10:70, 10:40] += 20.0  # thicker on the left
    excl = np.zeros_like(organ)
    excl[30:50, 15:30] = True  # a lesion on the thick side
    p = place_reference(
        organ,
        excl,
        img,
        img.copy(),
        organ="liver",
        diameter_mm=20.0,
        edge_margin_mm=4.0,
        spacing_mm=(2.0, 2.0),
    )
    assert p is not None
    r, c = p.center_rc
    disk = circle_mask((80, 80), (r, c), 10.0, (2.0, 2.0))
    assert not (disk & excl).any()
    assert (disk & organ).sum() == disk.sum()
    assert img[r, c] == 120.0  # on the thick side, clear of the lesion
    assert p.warnings == ()
    tight = place_reference(
        organ,
        excl,
        img,
        None,
        organ="liver",
        diameter_mm=20.0,
        edge_margin_mm=40.0,
        spacing_mm=(2.0, 2.0),
    )
    assert tight is not None and "reference kept only" in tight.warnings[0]
    none = place_reference(
        organ,
        organ,
        img,
        None,
        organ="liver",
        diameter_mm=20.0,
        edge_margin_mm=4.0,
        spacing_mm=(2.0, 2.0),
    )
    assert none is None


def test_reference_prefers_the_cranial_half_when_asked() -> None:
    organ = np.zeros((100, 60), dtype=bool)
    organ[10:90, 10:50] = True
    img = np.full((100, 60), 100.0)
    img[55:90, 10:50] += 30.0  # the caudal part is brighter (an overlapping kidney)
    kwargs = {
        "organ": "liver",
        "diameter_mm": 20.0,
        "edge_margin_mm": 4.0,
        "spacing_mm": (2.0, 2.0),
    }
    free = place_reference(organ, np.zeros_like(organ), img, None, **kwargs)
    assert free is not None and free.center_rc[0] >= 55  # drawn to the bright caudal part
    upper = place_reference(organ, np.zeros_like(organ), img, None, prefer_above_row=50.0, **kwargs)
    assert upper is not None and upper.center_rc[0] <= 50
    disk = circle_mask((100, 60), upper.center_rc, 10.0, (2.0, 2.0))
    assert (disk & organ).sum() == disk.sum()
    # a preference no candidate can meet is dropped
    top = place_reference(organ, np.zeros_like(organ), img, None, prefer_above_row=5.0, **kwargs)
    assert top is not None and top.center_rc == free.center_rc


def test_lateral_preference_relaxes_the_outline_margin_before_giving_way() -> None:
    # a wide body over the midline (brighter: the organ is thickest there) and a narrow
    # lateral lobe: the circle fits the lobe only with a relaxed outline margin; it goes there
    # (with the warning) rather than onto the midline at the full margin
    organ = np.zeros((80, 100), dtype=bool)
    organ[5:75, 30:98] = True  # body: columns 30-97
    organ[25:52, 3:30] = True  # lateral lobe, 27 rows tall
    img = np.full((80, 100), 100.0)
    img[5:75, 30:98] += 40.0
    kwargs = {
        "organ": "liver",
        "diameter_mm": 40.0,
        "edge_margin_mm": 10.0,
        "spacing_mm": (1.0, 1.0),
    }
    free = place_reference(organ, np.zeros_like(organ), img, None, **kwargs)
    assert free is not None and free.center_rc[1] >= 50 and free.warnings == ()
    lateral = place_reference(
        organ, np.zeros_like(organ), img, None, prefer_lateral_of_col=20.0, **kwargs
    )
    assert lateral is not None and lateral.center_rc[1] <= 20
    assert "reference kept only" in lateral.warnings[0]
    # a preference no margin step can meet is dropped: the first step's choice stands
    far = place_reference(
        organ, np.zeros_like(organ), img, None, prefer_lateral_of_col=2.0, **kwargs
    )
    assert far is not None and far.center_rc == free.center_rc and far.warnings == ()


@pytest.mark.parametrize(
    ("spacing_mm", "radius_mm"), [((2.4, 2.4), 25.0), ((4.8, 2.4), 15.0), ((3.0, 4.5), 9.0)]
)
def test_grey_open_within_a_zone_equals_the_whole_image_opening(spacing_mm, radius_mm):
    rng = np.random.default_rng(7)
    image = rng.gamma(2.0, 10.0, (160, 90))
    image[70:74, 36:40] += 200.0  # a hot spot smaller than the disk: opened away
    zone = np.zeros(image.shape, dtype=bool)
    zone[50:100, 2:40] = True  # touches the left edge: edge padding must agree too
    zone[120, 80] = True
    whole = grey_open(image, radius_mm, spacing_mm)
    part = grey_open(image, radius_mm, spacing_mm, within=zone)
    np.testing.assert_array_equal(part[zone], whole[zone])
    assert np.isneginf(part[0, 89])  # far from the zone: not computed
    assert whole[72, 38] < image[72, 38] - 100.0
    assert np.isneginf(grey_open(image, radius_mm, spacing_mm, within=zone & False)).all()
