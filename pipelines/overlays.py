"""Overlay images of scoring results, for the radiologist's review (pure functions).

Every function returns uint8 RGB arrays (row, col, 3) keyed by panel name and writes nothing;
the report code decides where the images go. Lesions are outlined in their Krenning grade's
colour (``octoscan.imaging.render.GRADE_COLOURS``) and numbered with their ``id``, the
number used in the result tables; reference regions are outlined in
``REFERENCE_COLOUR`` and labelled "L ref", "S ref" or "K ref". No patient-identifying text
is drawn unless the caller asks for it (``show_phi``).

Planar views are shown on the anterior view's grid: the posterior view is mirrored left-right
and shifted by the registration of planar scoring, so that every contour found on the
scoring image (the conjugate-view geometric mean) lies on the same anatomy in all panels.
Tomographic views are resampled onto square display pixels in patient coordinates (LPS mm),
shown in radiological orientation: patient right on the image left, anterior (axial) or
superior (coronal) at the top.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from octoscan.imaging.geometry import resample_to
from octoscan.imaging.render import (
    BACKGROUND,
    GRADE_COLOURS,
    REFERENCE_COLOUR,
    UNGRADED_COLOUR,
    Colour,
    blend_fused,
    colour_bar,
    disc_mask,
    draw_contour,
    draw_label,
    hstack_panels,
    legend,
    readable_text_colour,
    robust_window,
    text_panel,
    text_size,
    to_rgb,
    upsample_nearest,
    vstack_panels,
    window_image,
)
from octoscan.imaging.types import PlanarImage, Volume
from octoscan.models.planar_align import mirror_posterior, shift_image
from octoscan.models.types import Lesion, PlanarScore, ReferenceRegion

__all__ = [
    "CT_WINDOW_HU",
    "render_planar_overlays",
    "render_volume_overlays",
]

CT_WINDOW_HU = (-160.0, 240.0)  # soft-tissue window: level 40 HU, width 400 HU
_MIN_PANEL_WIDTH_PX = 400  # planar panels are enlarged (integer factor) to at least this
_MIN_VOLUME_PANEL_PX = 320  # tomographic panels: smaller side at least this
_CROP_MARGIN_PX = 8  # anterior-grid pixels kept around the body
_CROP_MARGIN_MM = 15.0  # tomographic display: margin kept around the body
_BODY_FRACTION = 0.2  # smoothed image above this fraction of the soft-tissue level = body
_UPPER_REFERENCE_HEADROOM = 1.25  # planar window reaches at least 1.25 x spleen (kidney) mean
_CONTOUR_PX = 2  # contour thickness on the display grid
_LABEL_SIZE = 13
_SIDE_WIDTH_PX = 300
_REF_LABELS = {"liver": "L ref", "spleen": "S ref", "kidney": "K ref"}


def _grade_colour(grade: int | None) -> Colour:
    return UNGRADED_COLOUR if grade is None else GRADE_COLOURS[grade]


def _ref_label(ref: ReferenceRegion) -> str:
    text = _REF_LABELS.get(ref.organ, f"{ref.organ} ref")
    return text if ref.plausible else f"{text} (implausible)"


# --------------------------------------------------------------------------- labels


def _outline(mask: np.ndarray) -> np.ndarray:
    """The region grown by the contour thickness, so that its contour lies just outside the
    region and leaves every pixel of the lesion (or reference) visible."""
    return ndimage.binary_dilation(
        mask, structure=np.ones((3, 3), dtype=bool), iterations=_CONTOUR_PX
    )


@dataclass(frozen=True)
class _Mark:
    """One outlined region on the display grid (grown by ``_outline``), with its label."""

    mask: np.ndarray  # bool, display grid
    colour: Colour
    label: str
    halo: Colour | None = None


def _place_labels(marks: Sequence[_Mark], shape: tuple[int, int]) -> list[tuple[int, int] | None]:
    """Top-left corners for each mark's label: beside its region (right, left, above or
    below, the first that is free), inside the image, covering neither a label already
    placed nor another outlined region when that can be avoided."""
    regions: list[tuple[int, int, int, int] | None] = []
    for mark in marks:
        rows, cols = np.nonzero(mark.mask)
        regions.append(
            None
            if rows.size == 0
            else (int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)
        )
    placed: list[tuple[int, int, int, int]] = []
    out: list[tuple[int, int] | None] = []
    for mark, region in zip(marks, regions, strict=True):
        if region is None:
            out.append(None)
            continue
        r0, c0, r1, c1 = region
        h, w = text_size(mark.label, size=_LABEL_SIZE)
        mid = (r0 + r1) // 2 - h // 2
        centre = (c0 + c1) // 2 - w // 2
        candidates = [(mid, c1 + 2), (mid, c0 - w - 3), (r0 - h - 2, centre), (r1 + 2, centre)]
        best: tuple[int, int] | None = None
        best_cost = None
        for top, left in candidates:
            top = min(max(top, 0), max(shape[0] - h, 0))
            left = min(max(left, 0), max(shape[1] - w, 0))
            box = (top, left, top + h, left + w)
            cost = 2 * sum(_overlap(box, p) for p in placed) + sum(
                _overlap(box, other) for other in regions if other is not None
            )
            if best_cost is None or cost < best_cost:
                best, best_cost = (top, left), cost
            if cost == 0:
                break
        assert best is not None
        placed.append((best[0], best[1], best[0] + h, best[1] + w))
        out.append(best)
    return out


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _draw_marks(rgb: np.ndarray, marks: Sequence[_Mark], corners: Sequence) -> np.ndarray:
    out = rgb
    for mark in marks:
        out = draw_contour(out, mark.mask, mark.colour, thickness=_CONTOUR_PX, halo=mark.halo)
    for mark, corner in zip(marks, corners, strict=True):
        if corner is not None:
            out = draw_label(
                out,
                mark.label,
                corner,
                readable_text_colour(mark.colour),
                size=_LABEL_SIZE,
                background=mark.colour,
            )
    return out


def _orientation_letters(
    rgb: np.ndarray, top: str | None, bottom: str | None, *, side_row: int | None = None
) -> np.ndarray:
    """Patient directions at the panel edges: R on the left, L on the right (at mid-height,
    or at ``side_row``), ``top`` and ``bottom`` centred on those edges."""
    h, w = rgb.shape[:2]
    th, tw = text_size("R", size=_LABEL_SIZE)
    row = h // 2 - th // 2 if side_row is None else side_row
    places = [("R", (row, 0)), ("L", (row, w - tw))]
    if top:
        places.append((top, (0, w // 2 - tw // 2)))
    if bottom:
        places.append((bottom, (h - th, w // 2 - tw // 2)))
    out = rgb
    for text, at in places:
        out = draw_label(out, text, at, (255, 255, 255), size=_LABEL_SIZE, background=(0, 0, 0))
    return out


def _grade_legend(lesions: Sequence[Lesion], spleen_organ: str) -> np.ndarray:
    upper = "kidney" if spleen_organ == "kidney" else "spleen"
    entries: list[tuple[str, Sequence[int]]] = [
        ("grade 0: not seen", GRADE_COLOURS[0]),
        ("grade 1: much lower than liver", GRADE_COLOURS[1]),
        ("grade 2: up to liver", GRADE_COLOURS[2]),
        ("grade 3: above liver", GRADE_COLOURS[3]),
        (f"grade 4: above {upper}", GRADE_COLOURS[4]),
    ]
    if any(lesion.grade is None for lesion in lesions):
        entries.append(("not graded (no liver reference)", UNGRADED_COLOUR))
    entries.append(("reference region", REFERENCE_COLOUR))
    return legend(entries, size=12)


def _fmt_ratio(value: float | None, ci: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    if ci is None:
        return f"{value:.2f}"
    return f"{value:.2f} ({ci[0]:.2f}-{ci[1]:.2f})"


def _lesion_lines(lesions: Sequence[Lesion]) -> list[tuple[str, Sequence[int]]]:
    lines: list[tuple[str, Sequence[int]]] = []
    for lesion in sorted(lesions, key=lambda x: x.id):
        grade = "-" if lesion.grade is None else str(lesion.grade)
        flag = ", borderline" if lesion.borderline else ""
        other = lesion.spleen_reference_organ or "spleen"
        lines.append(
            (
                f"{lesion.id}: grade {grade}{flag}, {lesion.diameter_mm:.0f} mm, {lesion.region}",
                _grade_colour(lesion.grade),
            )
        )
        lines.append(
            (
                f"   /liver {_fmt_ratio(lesion.ratio_liver, lesion.ratio_liver_ci)}; "
                f"/{other} {_fmt_ratio(lesion.ratio_spleen, lesion.ratio_spleen_ci)}",
                BACKGROUND,
            )
        )
    return lines


def _reference_lines(refs: Sequence[ReferenceRegion], unit: str) -> list[str]:
    lines = []
    for ref in refs:
        lines.append(
            f"{_ref_label(ref)}: mean {ref.mean:.3g} {unit}, radius {ref.radius_mm:.0f} mm"
        )
    return lines


def _side_column(
    height: int,
    window: tuple[float, float],
    colormap: str,
    *,
    unit: str,
    references: Sequence[ReferenceRegion],
    lesions: Sequence[Lesion],
    spleen_organ: str,
) -> np.ndarray:
    marks = {_REF_LABELS.get(r.organ, r.organ): r.mean for r in references}
    bar = colour_bar(max(min(height, 360), 120), window, colormap, label=unit, marks=marks)
    parts = [bar, _grade_legend(lesions, spleen_organ)]
    ref_lines = _reference_lines(references, unit)
    parts.append(
        text_panel(
            ["Reference regions", *(ref_lines or ["none found"])],
            width=_SIDE_WIDTH_PX,
            size=12,
        )
    )
    head = text_panel(["Lesions (id: grade; ratio, 95 % CI)"], width=_SIDE_WIDTH_PX, size=12)
    rows = _lesion_lines(lesions)
    panel = (
        vstack_panels([head, legend(rows, size=12)], gap=0)
        if rows
        else vstack_panels([head, text_panel(["none found"], width=_SIDE_WIDTH_PX, size=12)], gap=0)
    )
    used = sum(p.shape[0] + 10 for p in parts)
    room = max(height - used, text_size("Ag", size=12)[0] * 3)
    if panel.shape[0] > room:
        panel = panel[:room].copy()
        note = text_panel(["... (more lesions in the table)"], width=_SIDE_WIDTH_PX, size=12)
        panel[-note.shape[0] :] = note
    parts.append(panel)
    return vstack_panels(parts, gap=10)


# --------------------------------------------------------------------------- planar


def _fit_shape(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, dtype=np.float64)
    r = min(shape[0], arr.shape[0])
    c = min(shape[1], arr.shape[1])
    out[:r, :c] = arr[:r, :c]
    return out


def _clean(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float64)
    return np.where(np.isfinite(a), a, 0.0)


def _planar_views(
    score: PlanarScore, images: Mapping[str, PlanarImage] | None
) -> dict[str, tuple[np.ndarray, str]]:
    """Panel name -> (image on the scoring grid, title)."""
    grid_img = _clean(score.scoring_image)
    shape = grid_img.shape
    both = "anterior" in score.views_used and "posterior" in score.views_used
    views: dict[str, tuple[np.ndarray, str]] = {}
    ant = images.get("anterior") if images is not None else None
    post = images.get("posterior") if images is not None else None
    if ant is not None:
        title = "anterior" if both else "anterior (scoring image; single view)"
        if score.grid != "anterior":
            title = "anterior (not used for scoring)"
        views["anterior"] = (_fit_shape(_clean(ant.counts), shape), title)
    elif score.grid == "anterior" and not both:
        views["anterior"] = (grid_img, "anterior (scoring image; single view)")
    if post is not None:
        mirrored = _fit_shape(_clean(mirror_posterior(post.counts)), shape)
        if score.grid == "posterior_mirrored":
            title = "posterior, mirrored left-right (scoring image; single view)"
        elif score.posterior_shift_rc is not None:
            mirrored, _ = shift_image(mirrored, score.posterior_shift_rc)
            dr, dc = score.posterior_shift_rc
            title = (
                "posterior, mirrored left-right and registered to the anterior "
                f"(shift {dr:+.1f}, {dc:+.1f} px)"
            )
        else:
            title = "posterior, mirrored left-right (not registered; not used for scoring)"
        views["posterior"] = (mirrored, title)
    elif score.grid == "posterior_mirrored":
        views["posterior"] = (grid_img, "posterior, mirrored left-right (scoring image)")
    if both and score.grid == "anterior":
        views["geometric_mean"] = (
            grid_img,
            "geometric mean sqrt(A x P), the scoring image",
        )
    if not views:  # a scoring image whose views are not named: show it as it is
        views["geometric_mean"] = (grid_img, "scoring image")
    return views


def _window_mask(score: PlanarScore) -> np.ndarray | None:
    """The scoring grid without the bladder (its urine activity says nothing about
    receptors and, when large, would darken everything else), or None without a bladder."""
    shape = score.scoring_image.shape
    keep = np.ones(shape, dtype=bool)
    for organ in score.organs:
        if organ.organ == "bladder" and organ.mask is not None and organ.mask.shape == shape:
            keep &= ~np.asarray(organ.mask, dtype=bool)
    return None if keep.all() else keep


def _crop_box(
    image: np.ndarray, points: Sequence[tuple[float, float]]
) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1), end exclusive: the body's bounding box plus a margin,
    always holding every point of ``points``.

    The body is where the smoothed image exceeds ``_BODY_FRACTION`` of its soft-tissue level
    (the median of the pixels above 1 % of the 99.5th percentile), so faint legs at 24 h
    stay in the picture whatever the display window.
    """
    rows, cols = image.shape
    smooth = ndimage.uniform_filter(image, size=9, mode="constant")
    top = float(np.percentile(smooth, 99.5))
    if not top > 0.0:
        return 0, rows, 0, cols
    soft = float(np.median(smooth[smooth > 0.01 * top]))
    body = smooth > _BODY_FRACTION * soft
    if not body.any():
        return 0, rows, 0, cols
    rr, cc = np.nonzero(body)
    r0, r1, c0, c1 = int(rr.min()), int(rr.max()), int(cc.min()), int(cc.max())
    for r, c in points:
        r0, r1 = min(r0, math.floor(r)), max(r1, math.ceil(r))
        c0, c1 = min(c0, math.floor(c)), max(c1, math.ceil(c))
    m = _CROP_MARGIN_PX
    return max(r0 - m, 0), min(r1 + m + 1, rows), max(c0 - m, 0), min(c1 + m + 1, cols)


def _planar_marks(
    score: PlanarScore,
    box: tuple[int, int, int, int],
    factors: tuple[int, int],
) -> list[_Mark]:
    r0, r1, c0, c1 = box
    fr, fc = factors
    shape = score.scoring_image.shape
    display = ((r1 - r0) * fr, (c1 - c0) * fc)
    sr, sc = score.pixel_spacing_mm

    def region(
        mask: np.ndarray | None, center_rc: tuple[float, float] | None, radius_mm: float
    ) -> np.ndarray | None:
        if mask is not None and np.shape(mask) == shape and np.any(mask):
            return upsample_nearest(np.asarray(mask, dtype=bool)[r0:r1, c0:c1], (fr, fc))
        if center_rc is None:
            return None
        centre = ((center_rc[0] - r0 + 0.5) * fr - 0.5, (center_rc[1] - c0 + 0.5) * fc - 0.5)
        radius = (max(radius_mm, 0.0) / sr * fr, max(radius_mm, 0.0) / sc * fc)
        return disc_mask(display, centre, radius)

    marks: list[_Mark] = []
    for ref in score.references:
        m = region(ref.mask, ref.center_rc, ref.radius_mm)
        if m is not None and m.any():
            marks.append(_Mark(_outline(m), REFERENCE_COLOUR, _ref_label(ref)))
    for lesion in sorted(score.lesions, key=lambda x: x.id):
        m = region(lesion.mask, lesion.center_rc, lesion.diameter_mm / 2.0)
        if m is not None and m.any():
            marks.append(_Mark(_outline(m), _grade_colour(lesion.grade), str(lesion.id)))
    return marks


def _caption(score: PlanarScore) -> str:
    d = score.decision
    both = "anterior" in score.views_used and "posterior" in score.views_used
    views = (
        "anterior + posterior (conjugate-view geometric mean)"
        if both
        else f"{' + '.join(score.views_used)} only"
    )
    hours = (
        "time p.i. unknown"
        if score.hours_post_injection is None
        else f"{score.hours_post_injection:.1f} h p.i."
    )
    status = d.status.replace("_", " ").upper()
    return (
        f"Decision: {status} | rule set: {d.rule_set} ({d.uptake_rule}) | views: {views} | "
        f"{hours} | grading: {score.grading_method} | decision support only: the physician "
        "decides"
    )


# The last planar render of this process: (call, panels). The overlay PNGs and the DICOM
# Secondary Capture of one study ask for the same panels when their scales agree; the call
# is matched by the identity of the score and images (held here, so no id is reused) and the
# equality of the options. The panels are read-only, so no caller can change the kept copy.
_last_planar: tuple[tuple[Any, ...], dict[str, np.ndarray]] | None = None
_last_planar_lock = threading.Lock()


def _same_call(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    (score_a, images_a, *options_a), (score_b, images_b, *options_b) = a, b
    if score_a is not score_b or options_a != options_b:
        return False
    if images_a is None or images_b is None:
        return images_a is images_b
    return len(images_a) == len(images_b) and all(
        na == nb and ia is ib for (na, ia), (nb, ib) in zip(images_a, images_b, strict=True)
    )


def render_planar_overlays(
    score: PlanarScore,
    images: Mapping[str, PlanarImage] | None = None,
    *,
    show_phi: bool = False,
    patient_text: str | None = None,
    colormap: str = "inverted",
    window: tuple[float, float] | None = None,
    scale: int | None = None,
    crop_to_body: bool = True,
) -> dict[str, np.ndarray]:
    """Overlay panels of a planar score, as uint8 RGB (row, col, 3) arrays.

    ``images`` maps "anterior" / "posterior" to the original views (optional: without them
    only the scoring image is shown). Returned keys: "anterior" and "posterior" for the
    views available (the posterior mirrored left-right and shifted by
    ``score.posterior_shift_rc`` onto the anterior grid, as its title says),
    "geometric_mean" when the conjugate-view geometric mean was scored, and "summary":
    those panels side by side with a colour bar (reference means marked), the grade legend,
    the reference regions and the lesion ratios, and a caption (decision, rule set, views,
    hours post-injection).

    All panels share one window (counts per pixel): ``window`` or a percentile window of
    the shown views without the bladder (``robust_window``), low end 0, widened when needed
    to 1.25 x the spleen (or kidney) reference mean, so that uptake above the spleen (grade
    4) stays distinguishable from the spleen instead of both saturating. The display is
    cropped to the body (``crop_to_body``) and enlarged by an integer factor (``scale``; by
    default enough for a panel width of at least 400 pixels), with extra row repetition
    when rows and columns have different spacing, so that display pixels are square in mm.
    ``patient_text`` is drawn only when ``show_phi`` is True.

    The panels are read-only arrays. A repeated call with the same ``score`` and ``images``
    objects and equal options returns the panels of the previous call without drawing
    them again (one call is remembered per process).
    """
    global _last_planar
    call = (
        score,
        None if images is None else tuple(sorted(images.items(), key=lambda kv: kv[0])),
        bool(show_phi),
        patient_text if show_phi else None,
        colormap,
        None if window is None else (float(window[0]), float(window[1])),
        scale,
        bool(crop_to_body),
    )
    with _last_planar_lock:
        last = _last_planar
    if last is not None and _same_call(last[0], call):
        return dict(last[1])
    out = _draw_planar_overlays(
        score,
        images,
        show_phi=show_phi,
        patient_text=patient_text,
        colormap=colormap,
        window=window,
        scale=scale,
        crop_to_body=crop_to_body,
    )
    for panel in out.values():
        panel.flags.writeable = False
    with _last_planar_lock:
        _last_planar = (call, out)
    return dict(out)


def _draw_planar_overlays(
    score: PlanarScore,
    images: Mapping[str, PlanarImage] | None,
    *,
    show_phi: bool,
    patient_text: str | None,
    colormap: str,
    window: tuple[float, float] | None,
    scale: int | None,
    crop_to_body: bool,
) -> dict[str, np.ndarray]:
    """The panels of :func:`render_planar_overlays`, drawn."""
    views = _planar_views(score, images)
    arrays = [v[0] for v in views.values()]
    if window is None:
        _, high = robust_window(arrays, mask=_window_mask(score))
        upper = score.reference("spleen") or score.reference("kidney")
        if upper is not None and upper.plausible and math.isfinite(upper.mean):
            high = max(high, _UPPER_REFERENCE_HEADROOM * upper.mean)
        window = (0.0, high)
    low, high = float(window[0]), float(window[1])
    sr, sc = score.pixel_spacing_mm
    if not (sr > 0 and sc > 0):
        raise ValueError(f"pixel_spacing_mm {score.pixel_spacing_mm}; expected positive values")
    points = [ref.center_rc for ref in score.references if ref.center_rc is not None]
    points += [les.center_rc for les in score.lesions if les.center_rc is not None]
    grid_img = _clean(score.scoring_image)
    rows, cols = grid_img.shape
    box = _crop_box(grid_img, points) if crop_to_body else (0, rows, 0, cols)
    width = box[3] - box[2]
    fc = scale if scale is not None else max(1, math.ceil(_MIN_PANEL_WIDTH_PX / max(width, 1)))
    if fc < 1:
        raise ValueError(f"scale={scale}; expected an integer >= 1")
    fr = max(1, round(fc * sr / sc))
    marks = _planar_marks(score, box, (fr, fc))
    display_shape = ((box[1] - box[0]) * fr, (box[3] - box[2]) * fc)
    corners = _place_labels(marks, display_shape)

    out: dict[str, np.ndarray] = {}
    bare: list[np.ndarray] = []
    titles: list[str] = []
    for name, (image, title) in views.items():
        crop = image[box[0] : box[1], box[2] : box[3]]
        rgb = upsample_nearest(to_rgb(window_image(crop, low=low, high=high), colormap), (fr, fc))
        rgb = _orientation_letters(_draw_marks(rgb, marks, corners), None, None, side_row=0)
        bare.append(rgb)
        titles.append(title)
        out[name] = hstack_panels([rgb], titles=[title])
    spleen = score.reference("spleen")
    spleen_organ = "spleen" if spleen is not None else "kidney"
    if spleen is None and score.reference("kidney") is None:
        spleen_organ = "spleen"
    side = _side_column(
        display_shape[0],
        (low, high),
        colormap,
        unit="counts/pixel",
        references=score.references,
        lesions=score.lesions,
        spleen_organ=spleen_organ,
    )
    body = hstack_panels([*bare, side], gap=12, titles=[*titles, None])
    caption = text_panel([_caption(score)], width=body.shape[1], size=14)
    parts = [body, caption]
    if show_phi and patient_text:
        parts.insert(0, text_panel([patient_text], width=body.shape[1], size=14))
    out["summary"] = vstack_panels(parts, gap=8)
    return out


# --------------------------------------------------------------------------- tomographic


@dataclass(frozen=True)
class _DisplayGrid:
    """Axis-aligned LPS grid with square pixels of ``pixel_mm`` covering the emission."""

    lo: np.ndarray  # (x, y, z) minimum, mm
    hi: np.ndarray  # (x, y, z) maximum, mm
    pixel_mm: float

    def n(self, axis: int) -> int:
        return math.floor((self.hi[axis] - self.lo[axis]) / self.pixel_mm + 1e-6) + 1

    def axial(self, z_mm: float) -> tuple[tuple[int, int, int], np.ndarray]:
        """One axial plane at z: rows anterior -> posterior (+y), columns right -> left (+x)."""
        p = self.pixel_mm
        affine = np.eye(4)
        affine[:3, 0] = (0.0, 0.0, -p)
        affine[:3, 1] = (0.0, p, 0.0)
        affine[:3, 2] = (p, 0.0, 0.0)
        affine[:3, 3] = (self.lo[0], self.lo[1], z_mm)
        return (1, self.n(1), self.n(0)), affine

    def coronal(self, y_mm: float) -> tuple[tuple[int, int, int], np.ndarray]:
        """One coronal plane at y: rows superior -> inferior (-z), columns right -> left."""
        p = self.pixel_mm
        affine = np.eye(4)
        affine[:3, 0] = (0.0, p, 0.0)
        affine[:3, 1] = (0.0, 0.0, -p)
        affine[:3, 2] = (p, 0.0, 0.0)
        affine[:3, 3] = (self.lo[0], y_mm, self.hi[2])
        return (1, self.n(2), self.n(0)), affine

    def axial_rc(self, lps: Sequence[float]) -> tuple[float, float]:
        return ((lps[1] - self.lo[1]) / self.pixel_mm, (lps[0] - self.lo[0]) / self.pixel_mm)

    def coronal_rc(self, lps: Sequence[float]) -> tuple[float, float]:
        return ((self.hi[2] - lps[2]) / self.pixel_mm, (lps[0] - self.lo[0]) / self.pixel_mm)


def _index_box_lps(volume: Volume, lo: Sequence[int], hi: Sequence[int]) -> np.ndarray:
    corners = np.array(
        [[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])],
        dtype=np.float64,
    )
    return volume.index_to_lps(corners)


def _display_grid(
    volume: Volume,
    emission: np.ndarray,
    pixel_mm: float,
    spheres: Sequence[tuple[tuple[float, float, float], float]],
    *,
    crop: bool,
) -> _DisplayGrid:
    """Display grid over the emission volume, cropped (``crop``) to the body (where the
    smoothed emission exceeds ``_BODY_FRACTION`` of its soft-tissue level) plus
    ``_CROP_MARGIN_MM``, always holding every (centre, radius) sphere of ``spheres``."""
    last = [n - 1 for n in volume.shape]
    full = _index_box_lps(volume, (0, 0, 0), last)
    lo, hi = full.min(axis=0), full.max(axis=0)
    if not crop:
        return _DisplayGrid(lo, hi, float(pixel_mm))
    smooth = ndimage.uniform_filter(emission, size=3, mode="constant")
    top = float(np.percentile(smooth, 99.5))
    if top > 0.0:
        soft = float(np.median(smooth[smooth > 0.01 * top]))
        body = np.nonzero(smooth > _BODY_FRACTION * soft)
        if body[0].size:
            box = _index_box_lps(volume, [int(b.min()) for b in body], [int(b.max()) for b in body])
            blo = box.min(axis=0) - _CROP_MARGIN_MM
            bhi = box.max(axis=0) + _CROP_MARGIN_MM
            for centre, radius in spheres:
                c = np.asarray(centre, dtype=np.float64)
                blo = np.minimum(blo, c - radius - _CROP_MARGIN_MM)
                bhi = np.maximum(bhi, c + radius + _CROP_MARGIN_MM)
            lo, hi = np.maximum(lo, blo), np.minimum(hi, bhi)
    return _DisplayGrid(lo, hi, float(pixel_mm))


def _plane(
    volume: Volume, shape: tuple[int, int, int], affine: np.ndarray, *, order: int, cval: float
) -> np.ndarray:
    res = resample_to(volume, shape, affine, order=order, cval=cval)
    return _clean(res.array[0])


def _label_volume(volume: Volume, masks: Sequence[np.ndarray | None]) -> Volume | None:
    """Region k+1 where masks[k] is set (later masks win on overlaps), or None when no mask
    fits the volume grid."""
    labels = np.zeros(volume.shape, dtype=np.float32)
    any_mask = False
    for k, m in enumerate(masks):
        if m is not None and np.shape(m) == volume.shape:
            labels[np.asarray(m, dtype=bool)] = k + 1
            any_mask = True
    if not any_mask:
        return None
    return Volume(
        array=labels,
        affine=volume.affine,
        units="label",
        kind=volume.kind,
        acquisition=volume.acquisition,
        source=volume.source,
    )


@dataclass(frozen=True)
class _Region3D:
    label: str
    colour: Colour
    center_lps_mm: tuple[float, float, float] | None
    radius_mm: float
    has_mask: bool
    halo: Colour | None = (0, 0, 0)


def _slice_marks(
    regions: Sequence[_Region3D],
    labels: np.ndarray | None,
    plane_shape: tuple[int, int],
    centre_rc_of: Callable[[Sequence[float]], tuple[float, float]],
    distance_of: Callable[[Sequence[float]], float],
    pixel_mm: float,
    factor: int,
) -> list[_Mark]:
    """Marks of every region crossing one display plane (upsampled by ``factor``)."""
    marks: list[_Mark] = []
    big = (plane_shape[0] * factor, plane_shape[1] * factor)
    for k, reg in enumerate(regions):
        mask = None
        if reg.has_mask and labels is not None:
            m = labels == k + 1
            if m.any():
                mask = upsample_nearest(m, factor)
        elif reg.center_lps_mm is not None:
            d = float(distance_of(reg.center_lps_mm))
            if abs(d) <= reg.radius_mm:
                r_plane = math.sqrt(max(reg.radius_mm**2 - d**2, 0.0)) / pixel_mm * factor
                cr, cc = centre_rc_of(reg.center_lps_mm)
                mask = disc_mask(
                    big, ((cr + 0.5) * factor - 0.5, (cc + 0.5) * factor - 0.5), r_plane
                )
        if mask is not None and mask.any():
            marks.append(_Mark(_outline(mask), reg.colour, reg.label, reg.halo))
    return marks


def _regions(
    lesions: Sequence[Lesion], references: Sequence[ReferenceRegion], shape: tuple[int, ...]
) -> tuple[list[_Region3D], list[np.ndarray | None]]:
    regions: list[_Region3D] = []
    masks: list[np.ndarray | None] = []
    for ref in references:
        ok = ref.mask is not None and np.shape(ref.mask) == shape and bool(np.any(ref.mask))
        regions.append(
            _Region3D(_ref_label(ref), REFERENCE_COLOUR, ref.center_lps_mm, ref.radius_mm, ok)
        )
        masks.append(ref.mask if ok else None)
    for lesion in sorted(lesions, key=lambda x: x.id):
        ok = (
            lesion.mask is not None and np.shape(lesion.mask) == shape and bool(np.any(lesion.mask))
        )
        regions.append(
            _Region3D(
                str(lesion.id),
                _grade_colour(lesion.grade),
                lesion.center_lps_mm,
                lesion.diameter_mm / 2.0,
                ok,
            )
        )
        masks.append(lesion.mask if ok else None)
    return regions, masks


def _mip(
    volume: Volume,
    grid: _DisplayGrid,
    label_vol: Volume | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Coronal maximum-intensity projection (along y, anterior-posterior) on the display
    grid, and the labels projected the same way (a region shows where any voxel along the
    ray belongs to it; the highest label wins)."""
    spacing = min(volume.spacing_mm)
    ny = max(math.floor((grid.hi[1] - grid.lo[1]) / spacing + 1e-6) + 1, 1)
    p = grid.pixel_mm
    affine = np.eye(4)
    affine[:3, 0] = (0.0, spacing, 0.0)
    affine[:3, 1] = (0.0, 0.0, -p)
    affine[:3, 2] = (p, 0.0, 0.0)
    affine[:3, 3] = (grid.lo[0], grid.lo[1], grid.hi[2])
    shape = (ny, grid.n(2), grid.n(0))
    # project slab by slab so that a large volume never needs a full display-resolution copy
    mip = np.zeros(shape[1:], dtype=np.float64)
    lab = np.zeros(shape[1:], dtype=np.float64) if label_vol is not None else None
    step = max(1, int(4_000_000 // max(shape[1] * shape[2], 1)))
    for start in range(0, ny, step):
        n = min(step, ny - start)
        sub = affine.copy()
        sub[:3, 3] = affine[:3, 3] + start * affine[:3, 0]
        block = _clean(resample_to(volume, (n, *shape[1:]), sub, order=1).array)
        mip = np.maximum(mip, block.max(axis=0))
        if lab is not None and label_vol is not None:
            lb = resample_to(label_vol, (n, *shape[1:]), sub, order=0).array
            lab = np.maximum(lab, lb.max(axis=0))
    return mip, lab


def _volume_factor(shape: tuple[int, int]) -> int:
    return max(1, math.ceil(_MIN_VOLUME_PANEL_PX / max(min(shape), 1)))


def render_volume_overlays(
    volume: Volume,
    lesions: Sequence[Lesion],
    references: Sequence[ReferenceRegion] = (),
    ct: Volume | None = None,
    *,
    window: tuple[float, float] | None = None,
    ct_window_hu: tuple[float, float] = CT_WINDOW_HU,
    pixel_mm: float | None = None,
    crop_to_body: bool = True,
) -> dict[str, np.ndarray]:
    """Overlay panels of a SPECT or PET volume, as uint8 RGB (row, col, 3) arrays.

    Returned keys: "mip", a coronal maximum-intensity projection of the emission (inverted
    grey) with every lesion and reference outlined; and "lesion_<id>" per lesion, its axial
    and coronal planes through ``lesion.center_lps_mm`` side by side, with a colour bar.
    With ``ct`` the emission is laid over the CT (grey, ``ct_window_hu``) in "hot" colours;
    a CT on another grid is resampled in LPS mm (``resample_to``) onto the same display
    planes. Without CT the emission is shown alone ("hot").

    Outlines come from the masks (on the emission grid); a lesion or reference without a
    mask is drawn as the section of a sphere of its diameter (radius) through the plane.
    Display pixels are square, ``pixel_mm`` wide (default: the finest emission spacing,
    or with CT the CT's in-plane spacing, at least 1 mm, when that is finer). ``window`` is
    the emission window in ``volume.units`` (default: 0 to a percentile of the positive
    voxels, ``robust_window``). The planes are cropped to the body plus a margin
    (``crop_to_body``; every lesion and reference stays inside).
    """
    spacing = min(volume.spacing_mm)
    if pixel_mm is None:
        pixel_mm = spacing
        if ct is not None:
            pixel_mm = min(spacing, max(min(ct.spacing_mm[1:]), 1.0))
    if not pixel_mm > 0:
        raise ValueError(f"pixel_mm={pixel_mm}; expected > 0")
    for lesion in lesions:
        if lesion.center_lps_mm is None:
            raise ValueError(
                f"lesion {lesion.id} has no center_lps_mm: volume overlays need tomographic "
                "lesions (planar lesions go to render_planar_overlays)"
            )
        idx = volume.lps_to_index(np.asarray(lesion.center_lps_mm))
        if np.any(idx < -0.5) or np.any(idx > np.asarray(volume.shape) - 0.5):
            raise ValueError(
                f"lesion {lesion.id} centre {lesion.center_lps_mm} mm lies outside the volume "
                f"(index {np.round(idx, 1).tolist()}, shape {volume.shape})"
            )
    emission = _clean(volume.array)
    clean_volume = Volume(
        array=emission.astype(np.float32),
        affine=volume.affine,
        units=volume.units,
        kind=volume.kind,
        acquisition=volume.acquisition,
        source=volume.source,
    )
    if window is None:
        _, high = robust_window(emission)
        window = (0.0, high)
    low, high = float(window[0]), float(window[1])
    regions, masks = _regions(lesions, references, volume.shape)
    spheres = [(r.center_lps_mm, r.radius_mm) for r in regions if r.center_lps_mm is not None]
    grid = _display_grid(volume, emission, pixel_mm, spheres, crop=crop_to_body)
    label_vol = _label_volume(volume, masks)
    unit = volume.units
    colormap = "hot"
    legend_panel = _grade_legend(lesions, _upper_organ(lesions))

    out: dict[str, np.ndarray] = {}
    mip, mip_labels = _mip(clean_volume, grid, label_vol)
    _, mip_high = robust_window(mip)  # projections are brighter than planes: own window
    mip_window = (0.0, mip_high)
    factor = _volume_factor(mip.shape)
    mip_rgb = upsample_nearest(
        to_rgb(window_image(mip, low=mip_window[0], high=mip_window[1]), "inverted"), factor
    )
    mip_regions = [
        _Region3D(r.label, r.colour, r.center_lps_mm, r.radius_mm, r.has_mask, None)
        for r in regions
    ]
    marks = _slice_marks(
        mip_regions,
        mip_labels,
        mip.shape,
        grid.coronal_rc,
        lambda c: 0.0,
        grid.pixel_mm,
        factor,
    )
    mip_rgb = _draw_marks(mip_rgb, marks, _place_labels(marks, mip_rgb.shape[:2]))
    mip_rgb = _orientation_letters(mip_rgb, "S", "I")
    bar = colour_bar(
        max(min(mip_rgb.shape[0], 360), 120), mip_window, "inverted", label=f"{unit} (MIP)"
    )
    out["mip"] = hstack_panels(
        [mip_rgb, vstack_panels([bar, legend_panel], gap=10)],
        gap=12,
        titles=["coronal maximum-intensity projection", None],
    )

    for lesion in sorted(lesions, key=lambda x: x.id):
        centre = lesion.center_lps_mm
        assert centre is not None
        panels = []
        titles = []
        for plane in ("axial", "coronal"):
            if plane == "axial":
                shape, affine = grid.axial(centre[2])
                rc_of, dist_of = grid.axial_rc, (lambda c, z=centre[2]: c[2] - z)
                letters = ("A", "P")
                title = f"axial, z = {centre[2]:.0f} mm"
            else:
                shape, affine = grid.coronal(centre[1])
                rc_of, dist_of = grid.coronal_rc, (lambda c, y=centre[1]: c[1] - y)
                letters = ("S", "I")
                title = f"coronal, y = {centre[1]:.0f} mm"
            em = _plane(clean_volume, shape, affine, order=1, cval=0.0)
            em01 = window_image(em, low=low, high=high)
            if ct is not None:
                hu = _plane(ct, shape, affine, order=1, cval=-1000.0)
                ct01 = window_image(hu, low=ct_window_hu[0], high=ct_window_hu[1])
                rgb = blend_fused(ct01, em01, colormap=colormap)
            else:
                rgb = to_rgb(em01, colormap)
            labels = (
                _plane(label_vol, shape, affine, order=0, cval=0.0).round()
                if label_vol is not None
                else None
            )
            factor = _volume_factor(em.shape)
            rgb = upsample_nearest(rgb, factor)
            marks = _slice_marks(regions, labels, em.shape, rc_of, dist_of, grid.pixel_mm, factor)
            rgb = _draw_marks(rgb, marks, _place_labels(marks, rgb.shape[:2]))
            panels.append(_orientation_letters(rgb, *letters))
            titles.append(title)
        grade = "not graded" if lesion.grade is None else f"grade {lesion.grade}"
        flag = " (borderline)" if lesion.borderline else ""
        bar = colour_bar(max(min(panels[0].shape[0], 360), 120), (low, high), colormap, label=unit)
        row = hstack_panels([*panels, bar], gap=12, titles=[*titles, None])
        head = text_panel(
            [
                (
                    f"Lesion {lesion.id}: {grade}{flag}, {lesion.diameter_mm:.0f} mm, "
                    f"{lesion.region}",
                    _grade_colour(lesion.grade),
                ),
                f"/liver {_fmt_ratio(lesion.ratio_liver, lesion.ratio_liver_ci)}; "
                f"/{lesion.spleen_reference_organ or 'spleen'} "
                f"{_fmt_ratio(lesion.ratio_spleen, lesion.ratio_spleen_ci)}",
            ],
            width=row.shape[1],
            size=14,
        )
        out[f"lesion_{lesion.id}"] = vstack_panels([head, row], gap=4)
    return out


def _upper_organ(lesions: Sequence[Lesion]) -> str:
    organs = {lesion.spleen_reference_organ for lesion in lesions}
    return "kidney" if organs == {"kidney"} else "spleen"
