"""Counting statistics: variance propagation and ratio intervals, checked by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from octoscan.models.stats import (
    EMPIRICAL_CI_METHOD,
    POISSON_CI_METHOD,
    empirical_noise_gain,
    fwhm_to_sigma_px,
    gaussian_kernel_1d,
    ratio_ci,
    region_mean_variance,
    residual_noise_gain,
    smooth,
    smooth_variance,
    z_value,
)


def test_z_value() -> None:
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert z_value(0.90) == pytest.approx(1.644854, abs=1e-6)
    with pytest.raises(ValueError, match=r"confidence = 1.0; expected a value in \(0, 1\)"):
        z_value(1.0)


def test_ratio_ci_by_hand() -> None:
    # N = 200 +- sqrt(400), D = 100 +- sqrt(25): var(log R) = 400/200^2 + 25/100^2 = 0.0125
    r = ratio_ci(200.0, 400.0, 100.0, 25.0, confidence=0.95)
    sd = math.sqrt(0.0125)
    assert r.ratio == 2.0
    assert r.low == pytest.approx(2.0 * math.exp(-1.959964 * sd), rel=1e-6)
    assert r.high == pytest.approx(2.0 * math.exp(1.959964 * sd), rel=1e-6)
    assert r.method == POISSON_CI_METHOD
    exact = ratio_ci(3.0, 0.0, 2.0, 0.0, confidence=0.95, method=EMPIRICAL_CI_METHOD)
    assert (exact.ratio, exact.low, exact.high) == (1.5, 1.5, 1.5)
    assert exact.method == EMPIRICAL_CI_METHOD


def test_ratio_ci_edge_cases() -> None:
    zero = ratio_ci(0.0, 4.0, 10.0, 1.0, confidence=0.95)
    assert zero.ratio == 0.0 and zero.low == 0.0
    assert zero.high == pytest.approx(1.959964 * 2.0 / 10.0, rel=1e-6)
    with pytest.raises(ValueError, match=r"denominator = 0.0; a reference mean must be positive"):
        ratio_ci(1.0, 1.0, 0.0, 1.0, confidence=0.95)
    with pytest.raises(ValueError, match=r"variances must be >= 0"):
        ratio_ci(1.0, -1.0, 2.0, 1.0, confidence=0.95)


def test_ratio_ci_coverage_for_roi_means() -> None:
    """2000 Poisson draws: the 95 % interval holds the true ratio 93-97 % of the time."""
    rng = np.random.default_rng(20240601)
    lam_num, n_num, lam_den, n_den = 30.0, 9, 20.0, 60
    truth = lam_num / lam_den
    hits = 0
    for _ in range(2000):
        num = rng.poisson(lam_num, n_num)
        den = rng.poisson(lam_den, n_den)
        r = ratio_ci(
            num.mean(), num.mean() / n_num, den.mean(), den.mean() / n_den, confidence=0.95
        )
        hits += r.low <= truth <= r.high
    assert 0.93 <= hits / 2000 <= 0.97


def test_ratio_ci_coverage_for_geometric_mean_rois() -> None:
    """Conjugate views: GM pixels sqrt(A P) with the delta-method variance (A + P) / 4."""
    rng = np.random.default_rng(7)
    a_les, p_les, a_ref, p_ref = 90.0, 40.0, 50.0, 60.0
    truth = math.sqrt(a_les * p_les) / math.sqrt(a_ref * p_ref)
    hits = 0
    for _ in range(2000):
        a1, p1 = rng.poisson(a_les, 12), rng.poisson(p_les, 12)
        a2, p2 = rng.poisson(a_ref, 80), rng.poisson(p_ref, 80)
        gm1, gm2 = np.sqrt(a1 * p1), np.sqrt(a2 * p2)
        v1 = float(((a1 + p1) / 4.0).sum()) / 12**2
        v2 = float(((a2 + p2) / 4.0).sum()) / 80**2
        r = ratio_ci(gm1.mean(), v1, gm2.mean(), v2, confidence=0.95)
        hits += r.low <= truth <= r.high
    assert 0.93 <= hits / 2000 <= 0.97


def test_gaussian_kernel_and_fwhm() -> None:
    assert gaussian_kernel_1d(0.0).tolist() == [1.0]
    k = gaussian_kernel_1d(2.0)
    assert k.sum() == pytest.approx(1.0)
    assert k.size == 17 and k.argmax() == 8
    assert fwhm_to_sigma_px(2.3548200450309493, (1.0, 2.0)) == pytest.approx((1.0, 0.5))


def test_smooth_variance_matches_simulation() -> None:
    rng = np.random.default_rng(3)
    lam = np.full((40, 40), 50.0)
    sigma = (1.5, 2.5)
    draws = np.stack([smooth(rng.poisson(lam).astype(float), sigma) for _ in range(400)])
    predicted = smooth_variance(lam, sigma)[20, 20]
    assert draws[:, 20, 20].var(ddof=1) == pytest.approx(predicted, rel=0.15)
    assert predicted == pytest.approx(
        50.0 * (gaussian_kernel_1d(1.5) ** 2).sum() * (gaussian_kernel_1d(2.5) ** 2).sum()
    )


def test_region_mean_variance_poisson_and_empirical() -> None:
    img = np.array([[1.0, 2.0], [3.0, 4.0]])
    var = np.array([[1.0, 1.0], [2.0, 2.0]])
    mask = np.array([[True, True], [True, False]])
    mean, std, vmean, n = region_mean_variance(img, var, mask)
    assert (mean, n) == (2.0, 3)
    assert std == pytest.approx(1.0)
    assert vmean == pytest.approx(4.0 / 9.0)
    _, _, vmean_emp, _ = region_mean_variance(img, None, mask)
    assert vmean_emp == pytest.approx(1.0 / 3.0)
    with pytest.raises(ValueError, match="region is empty"):
        region_mean_variance(img, var, np.zeros((2, 2), dtype=bool))


def test_noise_gains_recover_a_count_scale() -> None:
    rng = np.random.default_rng(11)
    lam = np.full((80, 80), 40.0)
    counts = rng.poisson(lam).astype(float)
    mask = np.ones_like(counts, dtype=bool)
    assert empirical_noise_gain(counts, mask) == pytest.approx(1.0, rel=0.1)
    assert empirical_noise_gain(4.0 * counts, mask) == pytest.approx(4.0, rel=0.1)
    assert residual_noise_gain(counts, mask, sigma_rc_px=(2.0, 2.0)) == pytest.approx(1.0, rel=0.15)
    assert residual_noise_gain(3.0 * counts, mask, sigma_rc_px=(2.0, 2.0)) == pytest.approx(
        3.0, rel=0.15
    )
    with pytest.raises(ValueError, match="at least two pixels"):
        empirical_noise_gain(counts, np.zeros_like(mask))
    with pytest.raises(ValueError, match="expected a positive signal"):
        empirical_noise_gain(np.zeros((3, 3)), np.ones((3, 3), dtype=bool))
