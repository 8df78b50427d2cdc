"""Conjugate views: mirror the posterior, register it to the anterior, form sqrt(A * P).

The posterior view is stored as seen from behind: mirrored left-right it shows the patient
like the anterior view (patient right on the image left). The two camera heads (or the two
passes) differ by a translation, estimated by cross-correlation of smoothed, log-compressed
images (integer search within ``max_shift_mm``, parabolic sub-pixel refinement) and applied
by bilinear interpolation, whose weights also carry the Poisson variance. The geometric mean
sqrt(A * P) largely cancels the depth dependence of attenuation; its variance follows from
the delta method: var(G) ~= P/(4A) var(A) + A/(4P) var(P).

All arrays are (row, col) on the anterior view's grid; shifts are (rows, cols) in pixels,
positive toward larger indices, applied to the mirrored posterior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from octoscan.imaging.types import PlanarImage, View
from octoscan.models.config import AlignmentConfig
from octoscan.models.stats import fwhm_to_sigma_px, smooth

_SPACING_RTOL = 0.01
_COARSE_GRID_MM = 4.0  # coarse registration grid
_COUNT_FLOOR = 0.5  # counts: keeps the delta-method variance finite where a view is empty


@dataclass(frozen=True)
class ConjugateImage:
    """The image planar scoring measures on, with its provenance.

    ``image``: geometric mean (or the single view), float64 (row, col). ``variance``: its
    per-pixel variance under Poisson statistics, None without counting statistics.
    ``anterior`` / ``posterior``: the anterior view and the mirrored, registered posterior
    on the same grid (None when absent). ``grid``: "anterior" or "posterior_mirrored".
    """

    image: np.ndarray
    variance: np.ndarray | None
    anterior: np.ndarray | None
    posterior: np.ndarray | None
    pixel_spacing_mm: tuple[float, float]
    views_used: tuple[str, ...]
    grid: str
    shift_rc: tuple[float, float] | None
    correlation: float | None
    is_count_data: bool
    warnings: tuple[str, ...] = ()


def mirror_posterior(counts: np.ndarray) -> np.ndarray:
    """Left-right mirror of a posterior view (columns reversed)."""
    return np.asarray(counts)[:, ::-1]


def _log_compress(image: np.ndarray, sigma_rc_px: tuple[float, float]) -> np.ndarray:
    s = np.clip(smooth(image, sigma_rc_px), 0.0, None)
    positive = s[s > 0]
    scale = float(np.mean(positive)) if positive.size else 1.0
    return np.log1p(s / max(scale, 1e-12))


def _block_mean(image: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return image
    rows, cols = image.shape
    padded = np.pad(image, ((0, (-rows) % f), (0, (-cols) % f)), mode="edge")
    return padded.reshape(padded.shape[0] // f, f, padded.shape[1] // f, f).mean(axis=(1, 3))


def _parabolic(y0: float, y1: float, y2: float) -> float:
    denom = y0 - 2.0 * y1 + y2
    if denom >= 0.0:
        return 0.0
    return float(np.clip(0.5 * (y0 - y2) / denom, -0.5, 0.5))


def estimate_shift(
    fixed: np.ndarray,
    moving: np.ndarray,
    *,
    spacing_mm: tuple[float, float],
    max_shift_mm: float,
    smoothing_fwhm_mm: float,
) -> tuple[tuple[float, float], float]:
    """Translation (rows, cols) in pixels that moves ``moving`` onto ``fixed``, and the
    normalised correlation of the compressed images at the integer optimum.

    ``shift_image(moving, shift)`` then matches ``fixed``. Both arrays must have one shape.
    Normalised cross-correlation on a grid of about 4 mm (the images are smoothed to more
    than that) within ``max_shift_mm``, with a parabolic sub-pixel fit.
    """
    if fixed.shape != moving.shape:
        raise ValueError(f"shapes differ: {fixed.shape} and {moving.shape}")
    sigma = fwhm_to_sigma_px(smoothing_fwhm_mm, spacing_mm)
    f = _log_compress(fixed, sigma)
    m = _log_compress(moving, sigma)
    if f.std() == 0.0 or m.std() == 0.0:
        return (0.0, 0.0), 0.0
    k = max(1, round(_COARSE_GRID_MM / max(min(spacing_mm), 1e-6)))
    fs, ms = _block_mean(f, k), _block_mean(m, k)
    rows, cols = fs.shape
    max_r = min(rows // 4, math.floor(max_shift_mm / (spacing_mm[0] * k)))
    max_c = min(cols // 4, math.floor(max_shift_mm / (spacing_mm[1] * k)))
    template = ms[max_r : rows - max_r, max_c : cols - max_c]
    if template.std() == 0.0:
        return (0.0, 0.0), 0.0
    # ncc[i, j] belongs to the coarse shift (i - max_r, j - max_c)
    ncc = normalized_cross_correlation(fs, template)
    i, j = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    sub_r = _parabolic(ncc[i - 1, j], ncc[i, j], ncc[i + 1, j]) if 0 < i < ncc.shape[0] - 1 else 0.0
    sub_c = _parabolic(ncc[i, j - 1], ncc[i, j], ncc[i, j + 1]) if 0 < j < ncc.shape[1] - 1 else 0.0
    return ((int(i) - max_r + sub_r) * k, (int(j) - max_c + sub_c) * k), float(ncc[i, j])


def _window_sums(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Sum of ``image`` over every placement of a ``shape`` window inside it ("valid")."""
    c = np.zeros((image.shape[0] + 1, image.shape[1] + 1))
    c[1:, 1:] = image.cumsum(axis=0).cumsum(axis=1)
    h, w = shape
    return c[h:, w:] - c[:-h, w:] - c[h:, :-w] + c[:-h, :-w]


def normalized_cross_correlation(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``template`` with every placement inside ``image``.

    out[i, j] correlates template with image[i : i + h, j : j + w] ("valid" placements,
    shape (rows - h + 1, cols - w + 1)); 0 where the image window is flat. Numerator by FFT,
    window means and variances from summed-area tables (Lewis' fast normalised
    cross-correlation).
    """
    image = np.asarray(image, dtype=np.float64)
    t = np.asarray(template, dtype=np.float64)
    h, w = t.shape
    n = float(h * w)
    t0 = t - t.mean()
    t_ss = float((t0 * t0).sum())
    fr, fc = image.shape[0] + h - 1, image.shape[1] + w - 1
    spec = np.fft.rfft2(image, (fr, fc)) * np.fft.rfft2(t0[::-1, ::-1], (fr, fc))
    full = np.fft.irfft2(spec, (fr, fc))
    numerator = full[h - 1 : image.shape[0], w - 1 : image.shape[1]]
    sums = _window_sums(image, (h, w))
    sq = _window_sums(image * image, (h, w))
    var = np.maximum(sq - sums * sums / n, 0.0)
    denom = np.sqrt(var * t_ss)
    ok = denom > 1e-12 * max(float(denom.max()), 1e-300)
    return np.where(ok, numerator / np.where(ok, denom, 1.0), 0.0)


def _shift_axis(arr: np.ndarray, shift: float, axis: int, squared: bool) -> np.ndarray:
    n = math.floor(shift)
    frac = shift - n
    w0, w1 = 1.0 - frac, frac
    if squared:
        w0, w1 = w0 * w0, w1 * w1
    out = np.zeros_like(arr)
    size = arr.shape[axis]
    for k, w in ((n, w0), (n + 1, w1)):
        if w == 0.0 or abs(k) >= size:
            continue
        src = [slice(None)] * arr.ndim
        dst = [slice(None)] * arr.ndim
        src[axis] = slice(max(-k, 0), size - max(k, 0))
        dst[axis] = slice(max(k, 0), size - max(-k, 0))
        out[tuple(dst)] += w * arr[tuple(src)]
    return out


def shift_image(
    image: np.ndarray, shift_rc: tuple[float, float], *, variance: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Translate by ``shift_rc`` pixels (out[i] = image[i - shift]) with bilinear weights.

    Pixels shifted in from outside are 0. Returns the shifted image (float64) and, when a
    ``variance`` map is given, the variance of the shifted image (weights squared).
    """
    out = np.asarray(image, dtype=np.float64)
    out = _shift_axis(_shift_axis(out, shift_rc[0], 0, False), shift_rc[1], 1, False)
    var_out = None
    if variance is not None:
        v = np.asarray(variance, dtype=np.float64)
        var_out = _shift_axis(_shift_axis(v, shift_rc[0], 0, True), shift_rc[1], 1, True)
    return out, var_out


def geometric_mean(
    anterior: np.ndarray,
    posterior: np.ndarray,
    *,
    var_anterior: np.ndarray | None = None,
    var_posterior: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """sqrt(A * P) and, with both variance maps, its delta-method variance (float64)."""
    a = np.clip(np.asarray(anterior, dtype=np.float64), 0.0, None)
    p = np.clip(np.asarray(posterior, dtype=np.float64), 0.0, None)
    gm = np.sqrt(a * p)
    if var_anterior is None or var_posterior is None:
        return gm, None
    af = np.maximum(a, _COUNT_FLOOR)
    pf = np.maximum(p, _COUNT_FLOOR)
    var = 0.25 * (pf / af * var_anterior + af / pf * var_posterior)
    return gm, var


def _fit_shape(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, dtype=np.float64)
    r = min(shape[0], arr.shape[0])
    c = min(shape[1], arr.shape[1])
    out[:r, :c] = arr[:r, :c]
    return out


def conjugate_view(
    anterior: PlanarImage | None,
    posterior: PlanarImage | None,
    *,
    config: AlignmentConfig,
) -> ConjugateImage:
    """Build the scoring image from an anterior/posterior pair or a single view.

    A single view is used as it is (posterior mirrored), with a warning: without the
    conjugate view, depth-dependent attenuation is not compensated. A pair with different
    pixel spacing, or whose registration correlates below ``config.min_correlation``, falls
    back to the anterior view with a warning.
    """
    if anterior is None and posterior is None:
        raise ValueError("conjugate_view needs at least one view")
    for img in (anterior, posterior):
        if img is not None and img.pixel_spacing_mm is None:
            raise ValueError("pixel spacing unknown: the caller must refuse the image")
    if anterior is not None and posterior is not None:
        assert anterior.pixel_spacing_mm is not None and posterior.pixel_spacing_mm is not None
        sa, sp = anterior.pixel_spacing_mm, posterior.pixel_spacing_mm
        if not all(math.isclose(x, y, rel_tol=_SPACING_RTOL) for x, y in zip(sa, sp, strict=True)):
            only = _single(anterior)
            return _with_warning(
                only,
                f"posterior pixel spacing {sp} mm differs from anterior {sa} mm: scored on "
                "the anterior view only",
            )
        return _pair(anterior, posterior, config=config)
    single = anterior if anterior is not None else posterior
    assert single is not None
    return _single(single)


def _with_warning(img: ConjugateImage, text: str) -> ConjugateImage:
    return ConjugateImage(**{**img.__dict__, "warnings": (*img.warnings, text)})


def _single(img: PlanarImage) -> ConjugateImage:
    assert img.pixel_spacing_mm is not None
    counts = np.asarray(img.counts, dtype=np.float64)
    is_post = img.view == View.POSTERIOR
    if is_post:
        counts = mirror_posterior(counts).copy()
    counts = np.clip(counts, 0.0, None)
    view_name = img.view.value
    warnings = [
        f"only the {view_name} view is available: scored on that view alone (no "
        "conjugate-view geometric mean; depth-dependent attenuation is not compensated)"
    ]
    if img.view == View.UNKNOWN:
        warnings.append("view (anterior/posterior) unknown: the image is read as an anterior view")
    return ConjugateImage(
        image=counts,
        variance=counts.copy() if img.is_count_data else None,
        anterior=None if is_post else counts,
        posterior=counts if is_post else None,
        pixel_spacing_mm=(float(img.pixel_spacing_mm[0]), float(img.pixel_spacing_mm[1])),
        views_used=(view_name,),
        grid="posterior_mirrored" if is_post else "anterior",
        shift_rc=None,
        correlation=None,
        is_count_data=img.is_count_data,
        warnings=tuple(warnings),
    )


def _pair(
    anterior: PlanarImage, posterior: PlanarImage, *, config: AlignmentConfig
) -> ConjugateImage:
    assert anterior.pixel_spacing_mm is not None
    spacing = (float(anterior.pixel_spacing_mm[0]), float(anterior.pixel_spacing_mm[1]))
    a = np.clip(np.asarray(anterior.counts, dtype=np.float64), 0.0, None)
    p = np.clip(mirror_posterior(np.asarray(posterior.counts, dtype=np.float64)), 0.0, None)
    warnings: list[str] = []
    if p.shape != a.shape:
        warnings.append(
            f"posterior matrix {posterior.counts.shape} differs from anterior {a.shape}: "
            "cropped/padded before registration"
        )
        p = _fit_shape(p, a.shape)
    shift, corr = estimate_shift(
        a,
        p,
        spacing_mm=spacing,
        max_shift_mm=config.max_shift_mm,
        smoothing_fwhm_mm=config.smoothing_fwhm_mm,
    )
    if corr < config.min_correlation:
        only = _single(anterior)
        return _with_warning(
            only,
            f"mirrored posterior correlates poorly with the anterior view (r = {corr:.2f} < "
            f"{config.min_correlation}): scored on the anterior view only",
        )
    counts = anterior.is_count_data and posterior.is_count_data
    p_shift, p_var = shift_image(p, shift, variance=p if counts else None)
    gm, var = geometric_mean(a, p_shift, var_anterior=a if counts else None, var_posterior=p_var)
    return ConjugateImage(
        image=gm,
        variance=var,
        anterior=a,
        posterior=p_shift,
        pixel_spacing_mm=spacing,
        views_used=("anterior", "posterior"),
        grid="anterior",
        shift_rc=(float(shift[0]), float(shift[1])),
        correlation=corr,
        is_count_data=counts,
        warnings=tuple(warnings),
    )
