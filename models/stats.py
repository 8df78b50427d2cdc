"""Counting statistics: smoothing with variance propagation and ratio confidence intervals.

Raw planar counts are Poisson: a pixel's variance equals its expected count. Every linear
operation here (Gaussian smoothing, region means) carries its variance exactly (weights
squared); the geometric mean of two views is propagated in ``planar_align``. The ratio of two
independent estimates gets an interval from the log-ratio delta method:

    var(log R) ~= var(N) / N^2 + var(D) / D^2,   R * exp(+-z * sqrt(var(log R)))

which stays positive and is accurate once each estimate holds some tens of counts (checked by
simulation in the tests). Images without counting statistics (secondary captures, resampled
data) get an *empirical* interval instead: the reference region's own pixel noise sets a
noise gain (variance per unit of signal) that replaces the Poisson variance; results label
it so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.special import ndtri

POISSON_CI_METHOD = "poisson_log_delta"
EMPIRICAL_CI_METHOD = "empirical_reference_noise_log_delta"


@dataclass(frozen=True)
class RatioInterval:
    """A ratio and its two-sided interval at ``confidence``."""

    ratio: float
    low: float
    high: float
    confidence: float
    method: str


def z_value(confidence: float) -> float:
    """Two-sided standard-normal quantile: 0.95 -> 1.95996."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence = {confidence!r}; expected a value in (0, 1)")
    return float(ndtri(0.5 + confidence / 2.0))  # the standard normal quantile


def ratio_ci(
    numerator: float,
    var_numerator: float,
    denominator: float,
    var_denominator: float,
    *,
    confidence: float,
    method: str = POISSON_CI_METHOD,
) -> RatioInterval:
    """Interval of numerator / denominator for two independent estimates.

    Log-ratio delta method (module docstring). A numerator at or below zero gives ratio 0 with
    an upper bound from its standard deviation. ``denominator`` must be positive.
    """
    if not denominator > 0.0:
        raise ValueError(f"denominator = {denominator!r}; a reference mean must be positive")
    if var_numerator < 0.0 or var_denominator < 0.0:
        raise ValueError(f"variances must be >= 0, got {var_numerator!r} and {var_denominator!r}")
    z = z_value(confidence)
    if numerator <= 0.0:
        high = z * math.sqrt(var_numerator) / denominator
        return RatioInterval(0.0, 0.0, high, confidence, method)
    ratio = numerator / denominator
    sd_log = math.sqrt(var_numerator / numerator**2 + var_denominator / denominator**2)
    return RatioInterval(
        ratio, ratio * math.exp(-z * sd_log), ratio * math.exp(z * sd_log), confidence, method
    )


def fwhm_to_sigma_px(fwhm_mm: float, spacing_mm: tuple[float, float]) -> tuple[float, float]:
    """Gaussian sigma in pixels (row, col) for a FWHM in mm on a grid of ``spacing_mm``."""
    s = fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    return (s / spacing_mm[0], s / spacing_mm[1])


def gaussian_kernel_1d(sigma_px: float) -> np.ndarray:
    """Normalised discrete Gaussian (sum 1), truncated at 4 sigma; [1.0] for sigma ~ 0."""
    if sigma_px < 0.05:
        return np.ones(1)
    radius = max(1, math.ceil(4.0 * sigma_px))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma_px) ** 2)
    return k / k.sum()


def _separable(image: np.ndarray, kr: np.ndarray, kc: np.ndarray) -> np.ndarray:
    out = ndimage.correlate1d(np.asarray(image, dtype=np.float64), kr, axis=0, mode="nearest")
    return ndimage.correlate1d(out, kc, axis=1, mode="nearest")


def smooth(image: np.ndarray, sigma_rc_px: tuple[float, float]) -> np.ndarray:
    """Gaussian smoothing (float64) with the discrete kernel of :func:`gaussian_kernel_1d`."""
    return _separable(image, gaussian_kernel_1d(sigma_rc_px[0]), gaussian_kernel_1d(sigma_rc_px[1]))


def smooth_variance(variance: np.ndarray, sigma_rc_px: tuple[float, float]) -> np.ndarray:
    """Per-pixel variance of :func:`smooth` output for independent pixels of ``variance``.

    var(sum_k w_k x_k) = sum_k w_k^2 var(x_k): the same separable filter with squared weights.
    """
    kr = gaussian_kernel_1d(sigma_rc_px[0])
    kc = gaussian_kernel_1d(sigma_rc_px[1])
    return _separable(variance, kr**2, kc**2)


def region_mean_variance(
    image: np.ndarray, variance: np.ndarray | None, mask: np.ndarray
) -> tuple[float, float, float, int]:
    """(mean, pixel std, variance of the mean, n pixels) of ``image`` inside ``mask``.

    With a ``variance`` map (Poisson) the variance of the mean is sum(var) / n^2; without one
    it is the empirical pixel variance / n.
    """
    values = np.asarray(image, dtype=np.float64)[mask]
    n = int(values.size)
    if n == 0:
        raise ValueError("region is empty")
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if n > 1 else 0.0
    if variance is not None:
        var_mean = float(np.asarray(variance, dtype=np.float64)[mask].sum()) / n**2
    else:
        var_mean = std**2 / n
    return mean, std, var_mean, n


def empirical_noise_gain(image: np.ndarray, mask: np.ndarray) -> float:
    """Noise variance per unit of signal in a region: pixel variance / mean (>= 0).

    For Poisson counts this is about 1; for scaled counts it is the scale; for a
    heterogeneous region it also holds the heterogeneity (a conservative estimate).
    """
    values = np.asarray(image, dtype=np.float64)[mask]
    if values.size < 2:
        raise ValueError("need at least two pixels to estimate noise")
    mean = float(values.mean())
    if mean <= 0.0:
        raise ValueError(f"region mean = {mean!r}; expected a positive signal")
    return float(values.var(ddof=1)) / mean


def residual_noise_gain(
    image: np.ndarray, mask: np.ndarray, *, sigma_rc_px: tuple[float, float]
) -> float:
    """Image-wide noise gain (variance per unit of signal) from high-frequency residuals.

    Used to build a variance map for images without counting statistics: the residual
    ``image - smooth(image)`` of independent pixels has variance var * (1 - 2 w0 + sum w^2);
    the median of residual^2 / (signal * that factor) over ``mask`` estimates the gain.
    Correlated (resampled) noise makes it an underestimate; callers label the result.
    """
    img = np.asarray(image, dtype=np.float64)
    kr = gaussian_kernel_1d(sigma_rc_px[0])
    kc = gaussian_kernel_1d(sigma_rc_px[1])
    s = _separable(img, kr, kc)
    w0 = kr[len(kr) // 2] * kc[len(kc) // 2]
    factor = 1.0 - 2.0 * w0 + float((kr**2).sum() * (kc**2).sum())
    sel = mask & (s > 0)
    if int(sel.sum()) < 10:
        return 1.0
    ratio = (img[sel] - s[sel]) ** 2 / (s[sel] * factor)
    # median of a scaled chi-square(1) is 0.455 times its mean
    return float(np.median(ratio) / 0.4549364)
