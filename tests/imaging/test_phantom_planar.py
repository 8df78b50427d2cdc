"""Planar projection physics on tiny hand-made phantoms: blur vs depth, attenuation, mirroring."""

import math

import numpy as np
import pytest

from octoscan.imaging.phantom.anatomy import Grid, Tissue
from octoscan.imaging.phantom.planar import (
    FWHM_TO_SIGMA,
    MU_IN111_PER_MM,
    CameraModel,
    PlanarGeometry,
    simulate_planar,
)

VOX = 4.0
GRID = Grid(shape=(41, 50, 41), spacing_mm=(VOX, VOX, VOX), origin_mm=(-80.0, -100.0, 0.0))
GEOMETRY = PlanarGeometry(rows=80, cols=80, pixel_mm=2.4, z_top_mm=160.0 - 1.2, x_left_mm=-94.8)
BODY_ROWS = (5, 44)  # y rows holding soft tissue


def _phantom(sources):
    """Soft-tissue slab (rows 5-44) with unit-concentration voxels at (plane, row, col)."""
    labels = np.zeros(GRID.shape, dtype=np.uint8)
    labels[:, BODY_ROWS[0] : BODY_ROWS[1] + 1, :] = Tissue.SOFT_TISSUE
    conc = np.zeros(GRID.shape, dtype=np.float32)
    for src in sources:
        conc[src] = 1.0
    return labels, conc


def _sigma_cols(image, row):
    profile = image[row]
    c = np.arange(profile.size)
    mean = (profile * c).sum() / profile.sum()
    return math.sqrt((profile * (c - mean) ** 2).sum() / profile.sum()) * GEOMETRY.pixel_mm, mean


@pytest.mark.parametrize("row", [10, 25, 40])
def test_blur_follows_the_collimator_model(row):
    camera = CameraModel()
    labels, conc = _phantom([(20, row, 20)])
    sim = simulate_planar(conc, labels, GRID, GEOMETRY, expected_counts=1e6, seed=1, camera=camera)
    r_img = int(np.argmax(sim.anterior_expected.max(axis=1)))
    sigma, _ = _sigma_cols(sim.anterior_expected, r_img)
    y = GRID.axis_mm(1)
    face = y[BODY_ROWS[0]] - VOX / 2 - camera.gap_anterior_mm
    model = camera.fwhm_mm(y[row] - face) * FWHM_TO_SIGMA
    # the 4 mm source voxel and the bilinear resampling add a little width
    expected = math.sqrt(model**2 + VOX**2 / 12 + GEOMETRY.pixel_mm**2 / 6)
    assert sigma == pytest.approx(expected, rel=0.08)


def test_blur_grows_with_distance_on_each_head():
    labels, conc = _phantom([(20, 10, 20)])
    near_front = simulate_planar(conc, labels, GRID, GEOMETRY, expected_counts=1e6, seed=1)
    labels, conc = _phantom([(20, 40, 20)])
    near_back = simulate_planar(conc, labels, GRID, GEOMETRY, expected_counts=1e6, seed=1)

    def width(img):
        return _sigma_cols(img, int(np.argmax(img.max(axis=1))))[0]

    assert width(near_front.anterior_expected) < width(near_back.anterior_expected)
    assert width(near_front.posterior_aligned_expected) > width(
        near_back.posterior_aligned_expected
    )


def test_attenuation_and_geometric_mean_depth_independence():
    # two equal sources at the same height: one 5 rows (20 mm) deep, one 35 rows deep
    shallow, deep = (20, 10, 12), (20, 40, 28)
    labels, conc = _phantom([shallow, deep])
    sim = simulate_planar(conc, labels, GRID, GEOMETRY, expected_counts=1e6, seed=1)
    half = GEOMETRY.cols // 2
    a = sim.anterior_expected
    p = sim.posterior_aligned_expected
    a_sh, a_dp = a[:, :half].sum(), a[:, half:].sum()
    mu = MU_IN111_PER_MM[Tissue.SOFT_TISSUE]
    assert a_sh / a_dp == pytest.approx(math.exp(mu * 30 * VOX), rel=0.02)
    assert p[:, half:].sum() / p[:, :half].sum() == pytest.approx(math.exp(mu * 30 * VOX), rel=0.02)
    gm = np.sqrt(a * p)
    assert gm[:, :half].max() == pytest.approx(gm[:, half:].max(), rel=0.2)
    assert np.sqrt(a_sh * p[:, :half].sum()) == pytest.approx(
        np.sqrt(a_dp * p[:, half:].sum()), rel=0.01
    )


def test_posterior_is_mirrored_and_shifted_and_counts_are_poisson():
    labels, conc = _phantom([(30, 25, 10)])
    shift = (2.0, -3.0)
    sim = simulate_planar(
        conc, labels, GRID, GEOMETRY, expected_counts=2e5, seed=4, posterior_shift_rc=shift
    )
    ra, ca = np.unravel_index(np.argmax(sim.anterior_expected), sim.anterior_expected.shape)
    # source at x = -80 + 10 * 4 = -40 mm (patient right): left half of the anterior image
    assert ca < GEOMETRY.cols / 2
    assert GEOMETRY.anterior_rc(-40.0, 120.0) == pytest.approx((ra, ca), abs=0.6)
    post = sim.posterior_expected
    mirrored = post[:, ::-1]
    rp, cp = np.unravel_index(np.argmax(mirrored), mirrored.shape)
    assert (rp - ra, cp - ca) == (2, -3)
    assert np.unravel_index(np.argmax(post), post.shape)[1] > GEOMETRY.cols / 2
    # noisy totals match the expectation within Poisson error
    for noisy, expected in (
        (sim.anterior_counts, sim.anterior_expected),
        (sim.posterior_counts, sim.posterior_expected),
    ):
        assert abs(noisy.sum() - expected.sum()) < 5 * math.sqrt(expected.sum())
    assert sim.anterior_expected.sum() == pytest.approx(2e5)
    # photopeak windows split 55/45
    w = sim.anterior_windows.sum(axis=(1, 2))
    assert w[0] / w.sum() == pytest.approx(0.55, abs=0.01)


def test_same_seed_same_counts():
    labels, conc = _phantom([(20, 20, 20)])
    a = simulate_planar(conc, labels, GRID, GEOMETRY, expected_counts=1e5, seed=9)
    b = simulate_planar(conc, labels, GRID, GEOMETRY, expected_counts=1e5, seed=9)
    c = simulate_planar(conc, labels, GRID, GEOMETRY, expected_counts=1e5, seed=10)
    assert np.array_equal(a.anterior_windows, b.anterior_windows)
    assert np.array_equal(a.posterior_scatter, b.posterior_scatter)
    assert not np.array_equal(a.anterior_windows, c.anterior_windows)


def test_empty_phantom_is_refused():
    labels, conc = _phantom([])
    with pytest.raises(ValueError, match="projection is empty"):
        simulate_planar(conc, labels, GRID, GEOMETRY, expected_counts=1e5, seed=1)
    with pytest.raises(ValueError, match="labels hold no body"):
        simulate_planar(conc, np.zeros_like(labels), GRID, GEOMETRY, expected_counts=1e5, seed=1)


def test_whole_body_geometry_keeps_the_head_in_the_field():
    geo = PlanarGeometry.whole_body(1850.0)
    assert (geo.rows, geo.cols, geo.pixel_mm) == (1024, 256, 2.4)
    assert geo.anterior_rc(0.0, 1850.0)[0] == pytest.approx(25.0)
    assert geo.anterior_rc(0.0, 0.0)[1] == pytest.approx(127.5)
