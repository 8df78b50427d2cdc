"""Overlay rendering primitives: windows, colour maps, contours, labels, panels.

Every function is pure: inputs are never modified, a new ``uint8`` RGB array (row, col, 3) is
returned. Positions are (row, col) pixel indices, 0-based, pixel centres at integers, as
everywhere in octoscan. Nothing here writes files (only the report code does) and nothing
here knows about lesions or grades beyond the colour table below.

Text is drawn with Pillow's built-in default font (``ImageFont.load_default``), so no font
file is needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from types import MappingProxyType

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

__all__ = [
    "BACKGROUND",
    "COLORMAPS",
    "DEFAULT_HIGH_PERCENTILE",
    "DEFAULT_LOW_PERCENTILE",
    "GRADE_COLOURS",
    "REFERENCE_COLOUR",
    "UNGRADED_COLOUR",
    "Colour",
    "blend_fused",
    "colour_bar",
    "disc_mask",
    "draw_circle",
    "draw_contour",
    "draw_label",
    "hstack_panels",
    "legend",
    "readable_text_colour",
    "robust_window",
    "text_panel",
    "text_size",
    "to_rgb",
    "upsample_nearest",
    "vstack_panels",
    "window_image",
]

Colour = tuple[int, int, int]

COLORMAPS: tuple[str, ...] = ("gray", "inverted", "hot")

# Krenning grade -> contour colour. Okabe & Ito's colour-blind-safe palette ("Color Universal
# Design", 2008): grey, blue #0072B2, bluish green #009E73, orange #E69F00, vermillion
# #D55E00. Blue/green/orange/vermillion stay distinguishable under deuteranopia and
# protanopia, and each keeps its meaning on a light (inverted grey) and a dark (hot) image.
# The grade is never told by colour alone: every lesion also carries its number, and the
# tables carry the grade.
GRADE_COLOURS: Mapping[int, Colour] = MappingProxyType(
    {
        0: (153, 153, 153),
        1: (0, 114, 178),
        2: (0, 158, 115),
        3: (230, 159, 0),
        4: (213, 94, 0),
    }
)
UNGRADED_COLOUR: Colour = (0, 0, 0)  # a lesion without a grade (no usable liver reference)
REFERENCE_COLOUR: Colour = (204, 121, 167)  # Okabe-Ito reddish purple: unlike any grade
BACKGROUND: Colour = (255, 255, 255)

# Window percentiles of body pixels. 99.5 % leaves the hottest 0.5 % of the body (bladder,
# the hottest parts of kidneys and spleen, grade-4 lesions) saturated instead of letting one
# hot bladder compress everything else into the lowest grey levels; the low end at the 0th
# percentile keeps the faint body outline visible.
DEFAULT_LOW_PERCENTILE = 0.0
DEFAULT_HIGH_PERCENTILE = 99.5

_LABEL_PAD = 2  # pixels of background around label text


def window_image(arr: np.ndarray, *, low: float, high: float) -> np.ndarray:
    """Map ``arr`` linearly from [low, high] to [0, 1], clipping outside (float64, same shape).

    NaN maps to 0, +inf to 1, -inf to 0. ``low`` and ``high`` are in the image's units
    (counts, SUV, HU, ...); ``high`` must exceed ``low``.
    """
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        raise ValueError(f"window (low={low}, high={high}) must be finite with high > low")
    a = np.asarray(arr, dtype=np.float64)
    out = np.clip((a - low) / (high - low), 0.0, 1.0)
    return np.where(np.isnan(out), 0.0, out)


def _as_list(arrays: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(arrays, np.ndarray):
        return [arrays]
    return [np.asarray(a) for a in arrays]


def robust_window(
    arrays: np.ndarray | Sequence[np.ndarray],
    *,
    low_percentile: float = DEFAULT_LOW_PERCENTILE,
    high_percentile: float = DEFAULT_HIGH_PERCENTILE,
    mask: np.ndarray | Sequence[np.ndarray | None] | None = None,
) -> tuple[float, float]:
    """One display window (low, high) shared by all ``arrays``, from percentiles of the body.

    The body is the positive finite pixels (inside ``mask`` when given: one boolean mask per
    array, None for none, or a single mask used for every array of its shape). Counts,
    Bq/mL and SUV are non-negative and 0 outside the patient, so a large empty background
    does not pull the percentiles down. ``high`` is the ``high_percentile`` of the body
    pixels, not their maximum, so that a small very hot structure (a full bladder, a hot
    kidney) saturates instead of darkening the whole image (see DEFAULT_HIGH_PERCENTILE).
    A hot structure larger than that fraction of the body is left out with ``mask`` (the
    planar overlays leave out the bladder found by scoring).

    Degenerate images still get a valid window: with no positive pixel the body is every
    finite pixel; with no finite pixel the window is (0, 1); when the percentiles coincide
    (a constant image) the window is (value, value + max(1, |value|)), so the image shows
    at the low end of the scale.
    """
    if not 0.0 <= low_percentile < high_percentile <= 100.0:
        raise ValueError(
            f"percentiles low={low_percentile}, high={high_percentile}; expected "
            "0 <= low < high <= 100"
        )
    arrs = _as_list(arrays)
    if not arrs:
        raise ValueError("robust_window needs at least one array")
    if mask is None:
        masks: list[np.ndarray | None] = [None] * len(arrs)
    elif isinstance(mask, np.ndarray):
        masks = [mask if mask.shape == a.shape else None for a in arrs]
        if all(m is None for m in masks):
            shapes = [a.shape for a in arrs]
            raise ValueError(f"mask shape {mask.shape} matches none of the arrays {shapes}")
    else:
        masks = list(mask)
        if len(masks) != len(arrs):
            raise ValueError(f"{len(masks)} masks given for {len(arrs)} arrays")
    values: list[np.ndarray] = []
    for a, m in zip(arrs, masks, strict=True):
        a64 = np.asarray(a, dtype=np.float64)
        if m is not None:
            if m.shape != a64.shape:
                raise ValueError(f"mask shape {m.shape} differs from array shape {a64.shape}")
            a64 = a64[np.asarray(m, dtype=bool)]
        values.append(a64[np.isfinite(a64)].ravel())
    finite = np.concatenate(values) if values else np.zeros(0)
    body = finite[finite > 0]
    if body.size == 0:
        body = finite
    if body.size == 0:
        return 0.0, 1.0
    low = float(np.percentile(body, low_percentile))
    high = float(np.percentile(body, high_percentile))
    if not high > low:
        high = low + max(1.0, abs(low))
    return low, high


def _hot(v: np.ndarray) -> np.ndarray:
    # black -> red -> yellow -> white; the breakpoints 0.365 and 0.746 are those of the
    # classic "hot" colour map (red saturates first, then green, then blue)
    r = np.clip(v / 0.365, 0.0, 1.0)
    g = np.clip((v - 0.365) / (0.746 - 0.365), 0.0, 1.0)
    b = np.clip((v - 0.746) / (1.0 - 0.746), 0.0, 1.0)
    return np.stack([r, g, b], axis=-1)


def _colour01(gray01: np.ndarray, colormap: str) -> np.ndarray:
    if colormap not in COLORMAPS:
        raise ValueError(f"colormap {colormap!r}; expected one of {COLORMAPS}")
    v = np.asarray(gray01, dtype=np.float64)
    v = np.where(np.isnan(v), 0.0, np.clip(v, 0.0, 1.0))
    if colormap == "gray":
        return np.repeat(v[..., None], 3, axis=-1)
    if colormap == "inverted":
        return np.repeat(1.0 - v[..., None], 3, axis=-1)
    return _hot(v)


def _to_uint8(rgb01: np.ndarray) -> np.ndarray:
    return np.round(np.clip(rgb01, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_rgb(gray01: np.ndarray, colormap: str = "gray") -> np.ndarray:
    """Colour a 2-D image with values in [0, 1] (from ``window_image``) to uint8 (H, W, 3).

    ``"gray"``: white = high. ``"inverted"``: black = high counts, the usual reading display
    for planar scintigraphy. ``"hot"``: black-red-yellow-white, for emission over CT.
    Values outside [0, 1] are clipped, NaN is shown as 0.
    """
    v = np.asarray(gray01)
    if v.ndim != 2:
        raise ValueError(f"to_rgb needs a 2-D (row, col) image, got shape {v.shape}")
    return _to_uint8(_colour01(v, colormap))


def blend_fused(
    anatomy01: np.ndarray,
    emission01: np.ndarray,
    *,
    colormap: str = "hot",
    alpha: float = 0.6,
    ramp: float = 0.2,
) -> np.ndarray:
    """Fuse a windowed CT (grey) with a windowed emission image (colour), both in [0, 1].

    The emission colour is laid over the CT with opacity ``alpha * min(1, e / ramp)``: no
    uptake leaves the CT untouched, uptake above ``ramp`` (a fraction of the emission
    window) is shown at full ``alpha``. Returns uint8 (H, W, 3).
    """
    ct = np.asarray(anatomy01)
    em = np.asarray(emission01)
    if ct.shape != em.shape or ct.ndim != 2:
        raise ValueError(f"fused images must be 2-D of one shape, got {ct.shape}, {em.shape}")
    if not 0.0 <= alpha <= 1.0 or ramp <= 0.0:
        raise ValueError(f"alpha={alpha} must be in [0, 1] and ramp={ramp} > 0")
    base = _colour01(ct, "gray")
    over = _colour01(em, colormap)
    e = np.where(np.isnan(em), 0.0, np.clip(em, 0.0, 1.0))
    a = (alpha * np.clip(e / ramp, 0.0, 1.0))[..., None]
    return _to_uint8(base * (1.0 - a) + over * a)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (row, col, 3) image, got {arr.dtype} {arr.shape}")
    return arr


def _check_colour(color: Sequence[int]) -> Colour:
    c = tuple(int(v) for v in color)
    if len(c) != 3 or not all(0 <= v <= 255 for v in c):
        raise ValueError(f"colour {color!r}; expected three integers 0-255")
    return (c[0], c[1], c[2])


def draw_contour(
    rgb: np.ndarray,
    mask: np.ndarray,
    color: Sequence[int],
    *,
    thickness: int = 1,
    halo: Sequence[int] | None = None,
) -> np.ndarray:
    """Draw the boundary of ``mask`` onto a copy of ``rgb``.

    The boundary is the mask pixels removed by ``thickness`` binary erosions (pixels on the
    image edge count as boundary), so the contour lies on the mask's own outer pixels. With
    ``halo``, the ring of pixels just outside the mask is drawn in that colour, which keeps
    the contour visible on any background.
    """
    img = _check_rgb(rgb)
    m = np.asarray(mask, dtype=bool)
    if m.shape != img.shape[:2]:
        raise ValueError(f"mask shape {m.shape} differs from image shape {img.shape[:2]}")
    if thickness < 1:
        raise ValueError(f"thickness={thickness}; expected >= 1")
    out = img.copy()
    if not m.any():
        return out
    if halo is not None:
        ring = ndimage.binary_dilation(m) & ~m
        out[ring] = _check_colour(halo)
    inner = ndimage.binary_erosion(m, iterations=thickness, border_value=0)
    out[m & ~inner] = _check_colour(color)
    return out


def disc_mask(
    shape: tuple[int, int], center_rc: Sequence[float], radius_px: float | Sequence[float]
) -> np.ndarray:
    """Boolean disc (or axis-aligned ellipse for a (row, col) radius pair) on a grid.

    Pixels whose centre lies within the radius of ``center_rc`` are True; the pixel nearest
    the centre is always True when it is inside the grid, so tiny regions remain visible.
    """
    radii = np.broadcast_to(np.asarray(radius_px, dtype=np.float64), (2,))
    rr, rc = float(radii[0]), float(radii[1])
    cr, cc = float(center_rc[0]), float(center_rc[1])
    rows = np.arange(shape[0], dtype=np.float64)[:, None]
    cols = np.arange(shape[1], dtype=np.float64)[None, :]
    out = ((rows - cr) / max(rr, 1e-9)) ** 2 + ((cols - cc) / max(rc, 1e-9)) ** 2 <= 1.0
    r0, c0 = round(cr), round(cc)
    if 0 <= r0 < shape[0] and 0 <= c0 < shape[1]:
        out[r0, c0] = True
    return out


def draw_circle(
    rgb: np.ndarray,
    center_rc: Sequence[float],
    radius_px: float,
    color: Sequence[int],
    *,
    thickness: int = 1,
    halo: Sequence[int] | None = None,
) -> np.ndarray:
    """Draw a circle of ``radius_px`` around ``center_rc`` on a copy of ``rgb``.

    The circle is the contour (as in ``draw_contour``) of the disc of pixels whose centres
    are within ``radius_px``; parts outside the image are cut off.
    """
    img = _check_rgb(rgb)
    if not radius_px >= 0.0:
        raise ValueError(f"radius_px={radius_px}; expected >= 0")
    disc = disc_mask(img.shape[:2], center_rc, radius_px)
    return draw_contour(img, disc, color, thickness=thickness, halo=halo)


def _luminance(colour: Sequence[int]) -> float:
    # WCAG 2 relative luminance of an sRGB colour
    lin = [
        c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
        for c in (v / 255.0 for v in colour)
    ]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def readable_text_colour(background: Sequence[int]) -> Colour:
    """Black or white, whichever has the higher WCAG contrast ratio on ``background``."""
    lum = _luminance(_check_colour(background))
    return (0, 0, 0) if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else (255, 255, 255)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def text_size(text: str, *, size: int = 12) -> tuple[int, int]:
    """(height, width) in pixels of the label box ``draw_label`` draws for ``text``."""
    font = _font(size)
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        line_h = ascent + descent
    else:  # Pillow without FreeType: the fixed bitmap font
        line_h = int(font.getbbox("Ag")[3])
    left, _top, right, _bottom = font.getbbox(text)
    return line_h + 2 * _LABEL_PAD, int(right - min(left, 0)) + 2 * _LABEL_PAD


def draw_label(
    rgb: np.ndarray,
    text: str,
    at_rc: Sequence[float],
    color: Sequence[int],
    *,
    size: int = 12,
    background: Sequence[int] | None = BACKGROUND,
) -> np.ndarray:
    """Write ``text`` with its box's top-left corner at ``at_rc`` on a copy of ``rgb``.

    The box (``text_size``) is moved inside the image when it would stick out. With
    ``background`` the box is filled first, which keeps small text readable on an image.
    """
    img = _check_rgb(rgb)
    colour = _check_colour(color)
    h, w = text_size(text, size=size)
    rows, cols = img.shape[:2]
    top = int(min(max(round(float(at_rc[0])), 0), max(rows - h, 0)))
    left = int(min(max(round(float(at_rc[1])), 0), max(cols - w, 0)))
    pil = Image.fromarray(img)  # copies
    draw = ImageDraw.Draw(pil)
    if background is not None:
        draw.rectangle((left, top, left + w - 1, top + h - 1), fill=_check_colour(background))
    draw.text((left + _LABEL_PAD, top + _LABEL_PAD), text, fill=colour, font=_font(size))
    return np.asarray(pil, dtype=np.uint8).copy()


def upsample_nearest(image: np.ndarray, factor: int | Sequence[int]) -> np.ndarray:
    """Enlarge a (row, col) or (row, col, channel) image by integer ``factor`` (or a
    (row factor, col factor) pair) with nearest-neighbour repetition: every pixel becomes a
    block, so counts are not smoothed and masks stay exact."""
    factors = np.broadcast_to(np.asarray(factor), (2,))
    fr, fc = int(factors[0]), int(factors[1])
    if fr < 1 or fc < 1 or not np.array_equal(factors, [fr, fc]):
        raise ValueError(f"factor {factor!r}; expected integers >= 1")
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected a 2-D or 3-D image, got shape {arr.shape}")
    return np.repeat(np.repeat(arr, fr, axis=0), fc, axis=1)


def _blank(height: int, width: int, background: Sequence[int] = BACKGROUND) -> np.ndarray:
    out = np.empty((max(height, 0), max(width, 0), 3), dtype=np.uint8)
    out[...] = _check_colour(background)
    return out


def _wrap(text: str, width_px: int, size: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        words = paragraph.split(" ")
        line = ""
        for word in words:
            trial = word if not line else f"{line} {word}"
            if line and text_size(trial, size=size)[1] > width_px:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def text_panel(
    lines: Sequence[str | tuple[str, Sequence[int]]],
    *,
    width: int,
    size: int = 12,
    color: Sequence[int] = (0, 0, 0),
    background: Sequence[int] = BACKGROUND,
) -> np.ndarray:
    """Lines of text (each a string, or a (string, colour) pair) wrapped to ``width`` pixels,
    one under the other, as a uint8 (row, col, 3) panel."""
    if width < 1:
        raise ValueError(f"width={width}; expected >= 1")
    items: list[tuple[str, Sequence[int]]] = []
    for entry in lines:
        text, colour = (entry, color) if isinstance(entry, str) else entry
        items.extend((part, colour) for part in _wrap(text, width, size))
    line_h = text_size("Ag", size=size)[0]
    out = _blank(line_h * len(items), width, background)
    for i, (text, colour) in enumerate(items):
        if text:
            out = draw_label(out, text, (i * line_h, 0), colour, size=size, background=None)
    return out


def legend(
    entries: Sequence[tuple[str, Sequence[int]]],
    *,
    size: int = 12,
    swatch: int = 12,
    background: Sequence[int] = BACKGROUND,
) -> np.ndarray:
    """A legend: one row per (text, colour) entry, a colour square then the text."""
    line_h = max(text_size("Ag", size=size)[0], swatch + 2)
    width = max((text_size(t, size=size)[1] for t, _ in entries), default=0) + swatch + 6
    out = _blank(line_h * len(entries), width, background)
    for i, (text, colour) in enumerate(entries):
        top = i * line_h + (line_h - swatch) // 2
        out[top : top + swatch, 1 : 1 + swatch] = _check_colour(colour)
        out = draw_label(out, text, (i * line_h, swatch + 4), (0, 0, 0), size=size, background=None)
    return out


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def colour_bar(
    height: int,
    window: tuple[float, float],
    colormap: str,
    *,
    label: str,
    marks: Mapping[str, float] | None = None,
    bar_width: int = 16,
    size: int = 12,
    background: Sequence[int] = BACKGROUND,
) -> np.ndarray:
    """A vertical colour bar ``height`` pixels tall for ``window`` = (low, high).

    ``label`` (the unit) on top; the high value at the top of the bar and the low value at
    its bottom; ``marks`` (name -> value, e.g. the liver and spleen reference means) as
    ticks with their names beside the bar, at the value's level (marks outside the window
    are drawn at the end of the bar with a ">" or "<" prefix).
    """
    low, high = float(window[0]), float(window[1])
    if not high > low:
        raise ValueError(f"window {window}; expected high > low")
    text_h = text_size("Ag", size=size)[0]
    top = text_h + text_h // 2
    bottom = height - text_h // 2 - 1
    if bottom - top < 2:
        raise ValueError(f"height={height} too small for a colour bar (needs {top + 3 + text_h})")
    texts = [_fmt(low), _fmt(high), label] + [
        f"> {k}" if v > high else f"< {k}" if v < low else f"{k} {_fmt(v)}"
        for k, v in (marks or {}).items()
    ]
    width = bar_width + 6 + max(text_size(t, size=size)[1] for t in texts)
    out = _blank(height, width, background)
    ramp = np.linspace(1.0, 0.0, bottom - top + 1)[:, None]
    out[top : bottom + 1, :bar_width] = to_rgb(np.repeat(ramp, bar_width, axis=1), colormap)
    out[top : bottom + 1, bar_width] = (0, 0, 0)
    out = draw_label(out, label, (0, 0), (0, 0, 0), size=size, background=None)

    def level_row(value: float) -> int:
        frac = (min(max(value, low), high) - low) / (high - low)
        return round(bottom - frac * (bottom - top))

    def free_row(want: int) -> int:
        # the text row nearest ``want`` whose line overlaps no text already written
        for d in range(height):
            for tr in (want + d, want - d):
                if 0 <= tr <= height - text_h and all(
                    tr + text_h <= p or tr >= p + text_h for p in placed
                ):
                    return tr
        return min(max(want, 0), max(height - text_h, 0))

    placed: list[int] = [0]  # top rows of the text lines written so far: the unit label
    for text, value in [(_fmt(high), high), (_fmt(low), low)]:
        r = level_row(value)
        out[r, bar_width : bar_width + 4] = (0, 0, 0)
        tr = free_row(r - text_h // 2)
        out = draw_label(out, text, (tr, bar_width + 6), (0, 0, 0), size=size, background=None)
        placed.append(tr)
    for name, value in (marks or {}).items():
        r = level_row(value)
        out[r, : bar_width + 4] = REFERENCE_COLOUR
        text = f"> {name}" if value > high else f"< {name}" if value < low else name
        tr = free_row(r - text_h // 2)
        out = draw_label(
            out, text, (tr, bar_width + 6), REFERENCE_COLOUR, size=size, background=background
        )
        placed.append(tr)
    return out


def _with_title(
    panel: np.ndarray, title: str | None, *, size: int, title_h: int, background: Sequence[int]
) -> np.ndarray:
    if title_h == 0:
        return panel
    head = text_panel([title or ""], width=panel.shape[1], size=size, background=background)
    strip = _blank(title_h, panel.shape[1], background)
    strip[: head.shape[0]] = head[:title_h]
    return np.concatenate([strip, panel], axis=0)


def hstack_panels(
    panels: Sequence[np.ndarray],
    *,
    gap: int = 8,
    titles: Sequence[str | None] | None = None,
    title_size: int = 14,
    background: Sequence[int] = BACKGROUND,
) -> np.ndarray:
    """Place uint8 RGB panels side by side, top-aligned, ``gap`` pixels apart.

    ``titles`` (one per panel, None for none) are written above the panels, wrapped to the
    panel's width; shorter panels are padded below with ``background``.
    """
    imgs = [_check_rgb(p) for p in panels]
    if not imgs:
        raise ValueError("hstack_panels needs at least one panel")
    if titles is not None and len(titles) != len(imgs):
        raise ValueError(f"{len(titles)} titles for {len(imgs)} panels")
    if gap < 0:
        raise ValueError(f"gap={gap}; expected >= 0")
    title_h = 0
    if titles is not None and any(titles):
        title_h = max(
            text_panel([t or ""], width=p.shape[1], size=title_size).shape[0]
            for t, p in zip(titles, imgs, strict=True)
        )
        imgs = [
            _with_title(p, t, size=title_size, title_h=title_h, background=background)
            for t, p in zip(titles, imgs, strict=True)
        ]
    height = max(p.shape[0] for p in imgs)
    width = sum(p.shape[1] for p in imgs) + gap * (len(imgs) - 1)
    out = _blank(height, width, background)
    col = 0
    for p in imgs:
        out[: p.shape[0], col : col + p.shape[1]] = p
        col += p.shape[1] + gap
    return out


def vstack_panels(
    panels: Sequence[np.ndarray], *, gap: int = 8, background: Sequence[int] = BACKGROUND
) -> np.ndarray:
    """Place uint8 RGB panels one under the other, left-aligned, ``gap`` pixels apart."""
    imgs = [_check_rgb(p) for p in panels]
    if not imgs:
        raise ValueError("vstack_panels needs at least one panel")
    if gap < 0:
        raise ValueError(f"gap={gap}; expected >= 0")
    width = max(p.shape[1] for p in imgs)
    height = sum(p.shape[0] for p in imgs) + gap * (len(imgs) - 1)
    out = _blank(height, width, background)
    row = 0
    for p in imgs:
        out[row : row + p.shape[0], : p.shape[1]] = p
        row += p.shape[0] + gap
    return out
