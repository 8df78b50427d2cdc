"""Conjugate views: mirroring, registration by translation, geometric mean and its variance."""

from __future__ import annotations

import numpy as np
import pytest

from octoscan.imaging.types import AcquisitionInfo, PlanarImage, SeriesKind, SourceRef, View
from octoscan.models.config import load_config
from octoscan.models.planar_align import (
    conjugate_view,
    estimate_shift,
    geometric_mean,
    mirror_posterior,
    shift_image,
)

ALIGN = load_config().planar.alignment


def _image(
    counts: np.ndarray, view: View, *, spacing=(4.0, 4.0), is_count_data=True
) -> PlanarImage:
    return PlanarImage(
        counts.astype(np.float32),
        view,
        "test",
        spacing,
        AcquisitionInfo(radionuclide="In-111", radiopharmaceutical="pentetreotide"),
        SourceRef("1.2.3", "1.2.3.4"),
        SeriesKind.PLANAR_WHOLE_BODY,
        is_count_data=is_count_data,
    )


def _scene(shape=(200, 80)) -> np.ndarray:
    r, c = np.mgrid[0 : shape[0], 0 : shape[1]]
    img = 200.0 * np.exp(-((r - 70) ** 2 / 300.0 + (c - 25) ** 2 / 120.0))
    img += 90.0 * np.exp(-((r - 120) ** 2 / 900.0 + (c - 55) ** 2 / 150.0))
    body = (np.abs(c - 40) < 30) & (r > 10) & (r < 190)
    return img + 5.0 * body


def test_mirror_posterior_reverses_columns() -> None:
    a = np.arange(6).reshape(2, 3)
    assert mirror_posterior(a).tolist() == [[2, 1, 0], [5, 4, 3]]


def test_integer_shift_is_exact_and_fills_with_zero() -> None:
    a = np.arange(12.0).reshape(3, 4)
    out, var = shift_image(a, (1.0, -1.0), variance=a)
    assert out.tolist() == [[0, 0, 0, 0], [1, 2, 3, 0], [5, 6, 7, 0]]
    assert var is not None and var.tolist() == out.tolist()


def test_subpixel_shift_weights_and_variance() -> None:
    flat = np.full((5, 5), 8.0)
    out, var = shift_image(flat, (0.5, 0.0), variance=flat)
    assert out[2, 2] == pytest.approx(8.0)
    assert var is not None and var[2, 2] == pytest.approx(8.0 * (0.25 + 0.25))
    ramp = np.tile(np.arange(5.0), (3, 1))
    out, _ = shift_image(ramp, (0.0, 0.25))
    assert out[1, 2] == pytest.approx(1.75)  # value at column 2 - 0.25


@pytest.mark.parametrize("shift", [(3.0, 0.0), (0.0, -2.0), (3.4, -2.3), (-7.6, 4.2)])
def test_estimate_shift_recovers_a_known_translation(shift: tuple[float, float]) -> None:
    rng = np.random.default_rng(5)
    scene = _scene()
    moved, _ = shift_image(scene, (-shift[0], -shift[1]))
    fixed = rng.poisson(scene).astype(float)
    moving = rng.poisson(np.clip(moved, 0, None)).astype(float)
    est, corr = estimate_shift(
        fixed, moving, spacing_mm=(4.0, 4.0), max_shift_mm=60.0, smoothing_fwhm_mm=12.0
    )
    assert est[0] == pytest.approx(shift[0], abs=0.5)
    assert est[1] == pytest.approx(shift[1], abs=0.5)
    assert corr > 0.9


def test_estimate_shift_rejects_mismatched_shapes_and_flat_images() -> None:
    with pytest.raises(ValueError, match=r"shapes differ"):
        estimate_shift(
            np.ones((4, 4)),
            np.ones((4, 5)),
            spacing_mm=(1, 1),
            max_shift_mm=2,
            smoothing_fwhm_mm=2,
        )
    assert estimate_shift(
        np.zeros((40, 40)),
        np.zeros((40, 40)),
        spacing_mm=(1, 1),
        max_shift_mm=5,
        smoothing_fwhm_mm=2,
    ) == ((0.0, 0.0), 0.0)


def test_geometric_mean_and_delta_method_variance() -> None:
    a = np.array([[100.0, 0.0]])
    p = np.array([[25.0, 9.0]])
    gm, var = geometric_mean(a, p, var_anterior=a, var_posterior=p)
    assert gm.tolist() == [[50.0, 0.0]]
    assert var is not None
    assert var[0, 0] == pytest.approx(0.25 * (25.0 / 100.0 * 100.0 + 100.0 / 25.0 * 25.0))
    assert np.isfinite(var).all()
    gm2, var2 = geometric_mean(a, p)
    assert var2 is None and gm2.tolist() == gm.tolist()


def test_conjugate_pair_is_aligned_on_the_anterior_grid() -> None:
    rng = np.random.default_rng(9)
    scene = _scene()
    post_cam = np.roll(scene, (2, -1), axis=(0, 1))[:, ::-1]  # offset head, mirrored view
    ant = _image(rng.poisson(scene), View.ANTERIOR)
    post = _image(rng.poisson(post_cam), View.POSTERIOR)
    conj = conjugate_view(ant, post, config=ALIGN)
    assert conj.views_used == ("anterior", "posterior")
    assert conj.grid == "anterior"
    assert conj.shift_rc is not None
    assert conj.shift_rc[0] == pytest.approx(-2.0, abs=0.5)
    assert conj.shift_rc[1] == pytest.approx(1.0, abs=0.5)
    assert conj.is_count_data and conj.variance is not None
    # the geometric mean of two matching views is close to the scene at its hot spot
    assert conj.image[70, 25] == pytest.approx(scene[70, 25], rel=0.15)
    assert conj.warnings == ()


def test_single_posterior_is_mirrored_with_a_warning() -> None:
    scene = _scene()
    post = _image(scene[:, ::-1], View.POSTERIOR)
    conj = conjugate_view(None, post, config=ALIGN)
    assert conj.grid == "posterior_mirrored"
    assert conj.views_used == ("posterior",)
    assert np.allclose(conj.image, scene, atol=1e-3)
    assert conj.anterior is None and conj.posterior is not None
    assert "only the posterior view" in conj.warnings[0]


def test_unknown_view_is_read_as_anterior() -> None:
    conj = conjugate_view(_image(_scene(), View.UNKNOWN), None, config=ALIGN)
    assert conj.grid == "anterior"
    assert any("view (anterior/posterior) unknown" in w for w in conj.warnings)


def test_derived_images_have_no_variance() -> None:
    conj = conjugate_view(_image(_scene(), View.ANTERIOR, is_count_data=False), None, config=ALIGN)
    assert conj.variance is None and not conj.is_count_data


def test_pair_with_different_spacing_falls_back_to_anterior() -> None:
    ant = _image(_scene(), View.ANTERIOR, spacing=(4.0, 4.0))
    post = _image(_scene()[:, ::-1], View.POSTERIOR, spacing=(4.8, 4.8))
    conj = conjugate_view(ant, post, config=ALIGN)
    assert conj.views_used == ("anterior",)
    assert any("pixel spacing" in w and "anterior view only" in w for w in conj.warnings)


def test_unrelated_posterior_falls_back_to_anterior() -> None:
    rng = np.random.default_rng(2)
    ant = _image(_scene(), View.ANTERIOR)
    noise = _image(rng.poisson(3.0, (200, 80)), View.POSTERIOR)
    conj = conjugate_view(ant, noise, config=ALIGN)
    assert conj.views_used == ("anterior",)
    assert any("correlates poorly" in w for w in conj.warnings)


def test_missing_views_and_spacing_are_programming_errors() -> None:
    with pytest.raises(ValueError, match=r"needs at least one view"):
        conjugate_view(None, None, config=ALIGN)
    img = _image(_scene(), View.ANTERIOR)
    no_spacing = PlanarImage(
        img.counts, img.view, img.view_rule, None, img.acquisition, img.source, img.kind
    )
    with pytest.raises(ValueError, match=r"pixel spacing unknown"):
        conjugate_view(no_spacing, None, config=ALIGN)


def test_normalized_cross_correlation_matches_scikit_image() -> None:
    """The registration's own NCC (kept free of scipy.signal, which costs each worker 0.8 s
    of imports) equals scikit-image's match_template, flat windows included (0)."""
    from skimage.feature import match_template

    from octoscan.models.planar_align import normalized_cross_correlation

    rng = np.random.default_rng(3)
    image = rng.poisson(20.0, (70, 48)).astype(np.float64)
    image[:20, :15] = 7.0  # flat windows: correlation 0
    template = image[31:61, 12:40] + rng.normal(0.0, 0.5, (30, 28))
    ours = normalized_cross_correlation(image, template)
    theirs = match_template(image, template)
    assert ours.shape == theirs.shape == (41, 21)
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    assert np.unravel_index(int(np.argmax(ours)), ours.shape) == (31, 12)
    assert ours.max() > 0.99
    flat = normalized_cross_correlation(np.full((10, 10), 3.0), template[:4, :4])
    assert np.all(flat == 0.0)
