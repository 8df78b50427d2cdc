"""Overlay PNGs and the static HTML review report of scored studies.

Layout under an output folder DIR (every link is relative, so the folder can be moved, copied
or opened from disk without a server):

* ``DIR/index.html``: every study with its status, decision, rule set, number of lesions,
  highest grade and, for a failed study, the error code and reason; the table sorts in the
  browser (a small inline script) and reads in study-key order without it;
* ``DIR/<study key>/report.html``: one study. Its first screen holds what a reader needs to
  confirm or dispute each grade: the overlay (lesions numbered as in the tables, reference
  regions drawn), the decision with its reasons, the lesion table (ratios to the references
  with their 95 % intervals) and the reference table (means the ratios divide by). Below
  follow the criteria, the warnings, further overlay panels, provenance and links to the
  JSON;
* ``DIR/<study key>/overlay_<panel>.png``: the panels of
  :func:`octoscan.pipelines.overlays.render_planar_overlays`.

Pages load nothing from outside their folder tree: CSS and the script are inline, and a
Content-Security-Policy allows no other source (the script runs by its SHA-256 hash, so an
injected script would not run even if escaping failed). Every value taken from a result file
is HTML-escaped. Nothing time-dependent is written: the same results give the same bytes.
Patient identifiers (``patient_id``, present in result.json only under ``--show-phi``, and
the DICOM UIDs) are shown only when the caller passes ``show_phi=True``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote

import numpy as np
from PIL import Image

from octoscan.imaging.errors import OctoscanError
from octoscan.imaging.render import GRADE_COLOURS, REFERENCE_COLOUR, UNGRADED_COLOUR
from octoscan.imaging.types import PlanarImage, SeriesKind
from octoscan.models.config import available_configs, config_hash, load_config
from octoscan.models.krenning import KrenningThresholds
from octoscan.pipelines.atomic import TEMP_PREFIX, write_bytes_atomic, write_text_atomic
from octoscan.pipelines.outputs import ERROR_NAME, FAILED_JSON, RESULT_NAME
from octoscan.pipelines.overlays import render_planar_overlays, render_volume_overlays
from octoscan.pipelines.study import StudyOutcome, octoscan_version

__all__ = [
    "DECISION_LABELS",
    "DECISION_SORT_ORDER",
    "INDEX_NAME",
    "OVERLAY_PREFIX",
    "OVERLAY_SUFFIX",
    "SCREEN_PANEL_HEIGHT_PX",
    "STUDY_PAGE_NAME",
    "VIEW_PANELS",
    "StudyRow",
    "build_report",
    "encode_png",
    "find_overlays",
    "overlay_file_name",
    "render_index",
    "render_overlay_pngs",
    "render_study_page",
    "study_row",
    "write_index",
    "write_overlay_pngs",
    "write_study_page",
]

INDEX_NAME = "index.html"
STUDY_PAGE_NAME = "report.html"
OVERLAY_PREFIX = "overlay_"
OVERLAY_SUFFIX = ".png"
# Panels offered in the study page's switcher, in this order (the first present is shown
# first); any other panel (one per lesion of a volume, say) is listed below the tables.
VIEW_PANELS: tuple[str, ...] = ("geometric_mean", "anterior", "posterior", "mip")
_VIEW_TITLES = {
    "geometric_mean": "Geo mean",
    "anterior": "Anterior",
    "posterior": "Posterior",
    "mip": "MIP",
    "summary": "All views with colour bar, legend and lesion list",
}
# Planar panels are rendered at the largest integer scale whose view panel stays within this
# height, so that a whole-body view fits a screen at its native pixel size (labels keep their
# size: a page scaling the image down would shrink them) and a small static view is enlarged.
SCREEN_PANEL_HEIGHT_PX = 780
_TITLE_ALLOWANCE_PX = 160  # panel titles and labels above the image: at most this tall
DECISION_LABELS: Mapping[str, str] = {
    "eligible": "Eligible",
    "not_eligible": "Not eligible",
    "needs_review": "Needs review",
}
# Sorting the index by decision puts what needs a reader first; failed studies come last.
DECISION_SORT_ORDER: tuple[str, ...] = ("needs_review", "not_eligible", "eligible")
_VERDICT_LABELS = {
    "pass": "pass",
    "fail": "fail",
    "review": "review",
    "not_assessed": "not assessed",
}
_UPTAKE_RULES = {
    "significantly_above_liver": (
        "a lesion counts as grade 3 or more when its whole 95 % interval of ratio to liver "
        "lies above the grade-3 threshold"
    ),
    "not_significantly_below_liver": (
        "a lesion counts as grade 3 or more when its 95 % interval of ratio to liver reaches "
        "the grade-3 threshold (NETTER-1 reading)"
    ),
}
_PANEL_NAME = re.compile(r"[a-z0-9_]+")
_TIME_POINT_ROUND_H = 1.0  # images within this many hours are one time point (as scoring)
_PNG_COMPRESS_LEVEL = 6
_DISCLAIMER = (
    "Decision support for a physician, not an autonomous decision: octoscan measures and "
    "grades; the physician reviews the images and decides."
)


# --------------------------------------------------------------------------- overlay PNGs


def overlay_file_name(panel: str) -> str:
    """File name of one overlay panel, ``overlay_<panel>.png`` (panel: ``[a-z0-9_]+``)."""
    if not _PANEL_NAME.fullmatch(panel):
        raise ValueError(f"overlay panel name {panel!r}: expected lower-case letters, digits, _")
    return f"{OVERLAY_PREFIX}{panel}{OVERLAY_SUFFIX}"


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of a uint8 RGB (row, col, 3) image; deterministic (no time or metadata
    chunk), so the same pixels always give the same bytes."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(
            f"overlay image of dtype {arr.dtype} and shape {arr.shape}; expected uint8 "
            "(row, col, 3)"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"overlay image of shape {arr.shape}; expected at least one pixel")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(
        buffer, format="PNG", optimize=False, compress_level=_PNG_COMPRESS_LEVEL
    )
    return buffer.getvalue()


def _time_point(hours: float | None) -> float | None:
    return None if hours is None else round(hours / _TIME_POINT_ROUND_H) * _TIME_POINT_ROUND_H


def _scored_views(outcome: StudyOutcome) -> dict[str, PlanarImage]:
    """The loaded anterior/posterior images that went into the planar score: same series,
    same time point; whole-body before static, count data before derived images."""
    score = outcome.planar
    assert score is not None
    series = set(score.series_instance_uids)
    point = _time_point(score.hours_post_injection)
    views: dict[str, PlanarImage] = {}
    for view in ("anterior", "posterior"):
        if view not in score.views_used:
            continue
        candidates = [
            im
            for im in outcome.planar_images
            if im.view.value == view
            and im.source.series_instance_uid in series
            and (point is None or _time_point(im.acquisition.hours_post_injection) == point)
        ]
        candidates.sort(
            key=lambda im: (im.kind != SeriesKind.PLANAR_WHOLE_BODY, not im.is_count_data)
        )
        if candidates:
            views[view] = candidates[0]
    return views


def _view_height(panels: Mapping[str, np.ndarray]) -> int:
    """Height (pixels) of the tallest view panel (the summary aside)."""
    return max((rgb.shape[0] for name, rgb in panels.items() if name != "summary"), default=1)


def render_overlay_pngs(
    outcome: StudyOutcome,
    *,
    show_phi: bool = False,
    max_panel_height_px: int = SCREEN_PANEL_HEIGHT_PX,
) -> dict[str, bytes]:
    """Overlay PNGs of one outcome: file name (``overlay_<panel>.png``) -> PNG bytes.

    Planar panels come from :func:`render_planar_overlays` on the views that were scored,
    at the largest integer scale that keeps a view panel within ``max_panel_height_px``
    (at least 1: native pixels).
    A study scored on SPECT/PET adds :func:`render_volume_overlays` panels ("mip" and
    "lesion_<id>", ids as in the result); its planar lesion panels are then named
    "planar_lesion_<planar id>". An outcome without a score (a failed study) has no
    overlay: the result is empty.
    The patient ID is drawn only with ``show_phi`` and only when the result holds it (it
    does only when the study was scored with ``--show-phi``).
    """
    volume_panels: dict[str, np.ndarray] = {}
    if outcome.tomo is not None and outcome.tomo_volume is not None:
        volume_panels = render_volume_overlays(
            outcome.tomo_volume, outcome.tomo.lesions, outcome.tomo.references, outcome.ct_volume
        )
    if outcome.planar is None:
        return {overlay_file_name(n): encode_png(rgb) for n, rgb in sorted(volume_panels.items())}
    patient_text = None
    if show_phi and outcome.result is not None and outcome.result.get("patient_id"):
        patient_text = f"Patient ID {outcome.result['patient_id']}"
    views = _scored_views(outcome)
    score = outcome.planar

    def render(scale: int) -> dict[str, np.ndarray]:
        return render_planar_overlays(
            score, views, show_phi=show_phi, patient_text=patient_text, scale=scale
        )

    # A panel at scale s is at most s times its height at scale 1 (the image grows s-fold,
    # its title wraps less), so target // height(1) always fits; then try larger scales while
    # the image part alone (height less a title allowance) leaves room for one more step.
    if max_panel_height_px < 1:
        raise ValueError(f"max_panel_height_px={max_panel_height_px}; expected >= 1")
    panels = render(1)
    scale = max(1, max_panel_height_px // _view_height(panels))
    if scale > 1:
        panels = render(scale)
    while (scale + 1) * max(_view_height(panels) - _TITLE_ALLOWANCE_PX, 1) <= (
        scale * max_panel_height_px
    ):
        larger = render(scale + 1)
        if _view_height(larger) > max_panel_height_px:
            break
        panels, scale = larger, scale + 1
    if volume_panels:
        panels = {
            (f"planar_{name}" if name.startswith("lesion_") else name): rgb
            for name, rgb in panels.items()
        }
        panels.update(volume_panels)
    return {overlay_file_name(name): encode_png(rgb) for name, rgb in sorted(panels.items())}


def write_overlay_pngs(
    outcome: StudyOutcome,
    study_dir: str | Path,
    *,
    show_phi: bool = False,
    max_panel_height_px: int = SCREEN_PANEL_HEIGHT_PX,
) -> dict[str, Path]:
    """Write the overlay PNGs of ``outcome`` into ``study_dir`` atomically; returns
    panel name -> path. Overlay files of an earlier run that this run did not produce are
    removed, so the folder never shows a stale panel."""
    folder = Path(study_dir)
    files = render_overlay_pngs(outcome, show_phi=show_phi, max_panel_height_px=max_panel_height_px)
    written: dict[str, Path] = {}
    for name, data in files.items():
        panel = name[len(OVERLAY_PREFIX) : -len(OVERLAY_SUFFIX)]
        written[panel] = write_bytes_atomic(folder / name, data)
    if folder.is_dir():
        for stale in folder.glob(f"{OVERLAY_PREFIX}*{OVERLAY_SUFFIX}"):
            if stale.name not in files:
                stale.unlink(missing_ok=True)
    return written


def find_overlays(study_dir: str | Path) -> dict[str, str]:
    """Overlay PNGs present in ``study_dir``: panel name -> file name, in display order."""
    folder = Path(study_dir)
    found: dict[str, str] = {}
    if not folder.is_dir():
        return found
    for path in folder.glob(f"{OVERLAY_PREFIX}*{OVERLAY_SUFFIX}"):
        panel = path.name[len(OVERLAY_PREFIX) : -len(OVERLAY_SUFFIX)]
        if path.is_file() and _PANEL_NAME.fullmatch(panel):
            found[panel] = path.name
    return {panel: found[panel] for panel in _panel_order(found)}


def _panel_order(panels: Iterable[str]) -> list[str]:
    def key(panel: str) -> tuple[int, int, str]:
        if panel in VIEW_PANELS:
            return (0, VIEW_PANELS.index(panel), "")
        if panel == "summary":
            return (1, 0, "")
        match = re.fullmatch(r"lesion_(\d+)", panel)
        if match:
            return (2, int(match.group(1)), "")
        return (3, 0, panel)

    return sorted(panels, key=key)


# --------------------------------------------------------------------------- HTML helpers


def _e(value: Any) -> str:
    """HTML-escaped text of ``value`` (quotes too, so it is safe in attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def _href(name: str, *, allow_parent: bool = False) -> str:
    """An escaped relative link to a file in the page's folder or below (with
    ``allow_parent``, leading ``..`` steps may climb out); never a scheme, host or absolute
    path."""
    parts = name.split("/")
    if allow_parent:
        while len(parts) > 1 and parts[0] == "..":
            parts = parts[1:]
    if (
        not name
        or name.startswith(("/", "\\"))
        or ":" in name
        or "\\" in name
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ValueError(f"link target {name!r}: expected a relative path inside the report")
    return _e(quote(name, safe="/"))


@cache
def _template_text(name: str) -> str:
    return resources.files("octoscan.pipelines").joinpath(f"templates/{name}").read_text("utf-8")


def _colour_hex(colour: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def _grade_css() -> str:
    rules = [
        f".g{grade} {{ background: {_colour_hex(colour)}; }}"
        for grade, colour in sorted(GRADE_COLOURS.items())
    ]
    rules.append(f".gnone {{ background: {_colour_hex(UNGRADED_COLOUR)}; }}")
    rules.append(f".ref {{ background: {_colour_hex(REFERENCE_COLOUR)}; }}")
    return "\n".join(rules)


def _script_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _page(
    *, title: str, body: str, extra_css: str = "", script: str | None = None, body_class: str
) -> str:
    """A whole HTML document: inline CSS, optional inline script, strict CSP."""
    csp = [
        "default-src 'none'",
        "img-src 'self'",
        "style-src 'unsafe-inline'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
    script_html = ""
    if script is not None:
        csp.append(f"script-src {_script_hash(script)}")
        script_html = f"<script>{script}</script>"
    css = "\n".join(
        part for part in (_template_text("report.css"), _grade_css(), extra_css) if part
    )
    return Template(_template_text("page.html")).substitute(
        csp=_e("; ".join(csp)),
        version=_e(octoscan_version()),
        title=_e(title),
        css=css,
        body=body,
        script=script_html,
        body_class=_e(body_class),
    )


def _num(value: Any, digits: int = 2) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    if not math.isfinite(float(value)):
        return "-"
    return f"{float(value):.{digits}f}"


def _interval(ci: Any, digits: int = 2) -> str:
    if not isinstance(ci, list | tuple) or len(ci) != 2:
        return "-"
    low, high = _num(ci[0], digits), _num(ci[1], digits)
    if low == "-" or high == "-":
        return "-"
    return f"{low}&ndash;{high}"


def _data_value(value: Any) -> str:
    """The exact JSON value, for a ``data-value`` attribute (tests and scripts read it)."""
    return _e(json.dumps(value))


def _yes_no(value: Any) -> str:
    return "yes" if value else "no"


def _decision_badge(status: str | None) -> str:
    if status is None:
        return '<span class="badge failed">Failed</span>'
    label = DECISION_LABELS.get(status, status)
    return f'<span class="badge {_e(status)}">{_e(label)}</span>'


def _list_items(items: Iterable[Any]) -> str:
    return "".join(f"<li>{_e(item)}</li>" for item in items)


def _grade_text(lesion: Mapping[str, Any]) -> tuple[str, str]:
    """(HTML of the grade cell, CSS class of its swatch)."""
    if not lesion.get("graded", True):
        return '<span class="grade">not graded</span>', "gnone"
    grade = lesion.get("grade")
    swatch = f"g{grade}" if grade in GRADE_COLOURS else "gnone"
    text = f'<span class="grade">{_e(grade)}</span>'
    grade_range = lesion.get("grade_range")
    if isinstance(grade_range, list | tuple) and len(grade_range) == 2:
        low, high = grade_range
        if low != high:
            text += f' <span class="small">(range {_e(low)}&ndash;{_e(high)})</span>'
    return text, swatch


def _ratio_cell(css: str, value: Any, ci: Any, note: str = "") -> str:
    """A ratio with its interval; the exact JSON values ride along in data attributes."""
    interval = _interval(ci)
    ci_html = f' <span class="ci">({interval})</span>' if interval != "-" else ""
    return (
        f'<td class="num {css}" data-value="{_data_value(value)}" data-ci="{_data_value(ci)}">'
        f'<span class="ratio">{_num(value)}</span>{ci_html}{note}</td>'
    )


def _upper_organ_label(lesions: Sequence[Mapping[str, Any]]) -> str:
    organs = {les.get("spleen_reference_organ") for les in lesions} - {None}
    if organs == {"kidney"}:
        return "kidney"
    if organs == {"kidney", "spleen"}:
        return "spleen or kidney"
    return "spleen"


# --------------------------------------------------------------------------- study page


def _figure_html(overlays: Mapping[str, str]) -> tuple[str, str]:
    """(HTML of the view switcher, its CSS). The switcher is radio buttons and CSS only, so
    it needs no script; each image links to its PNG at full size."""
    views = [panel for panel in VIEW_PANELS if panel in overlays]
    if not views:
        return "", ""
    radios, labels, figures, css = [], [], [], []
    for i, panel in enumerate(views):
        checked = " checked" if i == 0 else ""
        radios.append(
            f'<input type="radio" name="view" id="view-{i}" value="{_e(panel)}"{checked}>'
        )
        title = _VIEW_TITLES.get(panel, panel)
        labels.append(f'<label for="view-{i}">{_e(title)}</label>')
        href = _href(overlays[panel])
        figures.append(
            f'<figure class="panel" id="panel-{_e(panel)}">'
            f'<a href="{href}"><img src="{href}" alt="{_e(title)} overlay"></a></figure>'
        )
        css.append(f"#view-{i}:checked ~ .views #panel-{panel} {{ display: block; }}")
        css.append(
            f"#view-{i}:checked ~ .tabs label[for=view-{i}] "
            "{ background: #fff; border-color: #444; font-weight: bold; }"
        )
        css.append(
            f"#view-{i}:focus-visible ~ .tabs label[for=view-{i}] {{ outline: 2px solid #0b5394; }}"
        )
    key = " ".join(
        f'<span class="swatch g{grade}"></span>{grade}' for grade in sorted(GRADE_COLOURS)
    )
    more = ""
    if "summary" in overlays:
        more = '; <a href="#panel-summary">all views with legend</a>'
    caption = (
        f'<p class="small caption">Lesions numbered as in the table, outlined by grade '
        f'({key}); reference regions <span class="swatch ref"></span>outlined. Click the '
        f"image for its PNG{more}.</p>"
    )
    body = (
        '<section class="figure" aria-label="Overlays">'
        + "".join(radios)
        + '<div class="tabs">'
        + "".join(labels)
        + '</div><div class="views">'
        + "".join(figures)
        + "</div>"
        + caption
        + "</section>"
    )
    return body, "\n".join(css)


def _decision_html(decision: Mapping[str, Any]) -> str:
    status = decision.get("status")
    imaging = decision.get("imaging_status")
    parts = [
        '<section class="decision" aria-label="Decision">',
        f"<h2>Decision: {_decision_badge(status)}</h2>",
        '<p class="small">rule set <b>',
        _e(decision.get("rule_set", "-")),
        "</b>; uptake rule <b>",
        _e(decision.get("uptake_rule", "-")),
        "</b>",
    ]
    if imaging is not None and imaging != status:
        parts.append(f"; from imaging alone: {_e(DECISION_LABELS.get(imaging, imaging))}")
    rule_text = _UPTAKE_RULES.get(str(decision.get("uptake_rule")))
    if rule_text:
        parts.append(f": {_e(rule_text)}")
    parts.append("</p>")
    reasons = decision.get("reasons") or []
    if reasons:
        parts.append(f'<ul class="reasons">{_list_items(reasons)}</ul>')
    parts.append("</section>")
    return "".join(parts)


@cache
def _shipped_thresholds(name: str, digest: str) -> KrenningThresholds | None:
    """The Krenning thresholds of the shipped rule set ``name`` when its hash is ``digest``
    (the rule set that scored the study), else None."""
    if name not in available_configs():
        return None
    try:
        cfg = load_config(name)
    except OctoscanError:
        return None
    return cfg.krenning if config_hash(cfg) == digest else None


def _thresholds_of(provenance: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """(grade-2 and grade-3 minimum ratio to liver, grade-4 minimum ratio to spleen): from
    ``provenance["krenning_thresholds"]`` when the result carries them, else from the
    shipped rule set of the same name and hash; None when neither is known."""
    given = provenance.get("krenning_thresholds")
    names = ("grade2_min_ratio_liver", "grade3_min_ratio_liver", "grade4_min_ratio_spleen")
    if isinstance(given, Mapping) and all(
        isinstance(given.get(n), int | float) and not isinstance(given.get(n), bool) for n in names
    ):
        return (
            float(given[names[0]]),
            float(given[names[1]]),
            float(given[names[2]]),
        )
    shipped = _shipped_thresholds(
        str(provenance.get("config_name", "")), str(provenance.get("config_hash", ""))
    )
    if shipped is None:
        return None
    return (
        shipped.grade2_min_ratio_liver,
        shipped.grade3_min_ratio_liver,
        shipped.grade4_min_ratio_spleen,
    )


def _grade_scale_text(result: Mapping[str, Any], upper: str) -> str:
    """The Krenning scale as applied: with the thresholds when the rule set is known."""
    provenance = result.get("provenance") or {}
    thresholds = _thresholds_of(provenance)
    if thresholds is None:
        digest = str(provenance.get("config_hash") or "")[:12]
        return (
            "Krenning grade: 0 none; 1 much lower than liver; 2 up to liver; 3 above liver; "
            f"4 above {_e(upper)}. The thresholds of rule set "
            f"{_e(provenance.get('config_name', '-'))} (config hash {_e(digest)}) are not in "
            "this result or this octoscan installation."
        )
    g2, g3, g4 = (f"{value:.2f}" for value in thresholds)
    return (
        f"Krenning grade from the ratios: 1 below {g2} &times; liver; 2 from {g2} to {g3} "
        f"&times; liver; 3 above {g3} &times; liver; 4 above {g4} &times; {_e(upper)} "
        f"(rule set {_e(provenance.get('config_name', '-'))})."
    )


def _lesion_table(result: Mapping[str, Any], overlays: Mapping[str, str]) -> str:
    lesions: Sequence[Mapping[str, Any]] = result.get("lesions") or []
    if not lesions:
        return '<h2>Lesions</h2><p id="no-lesions">No lesion found.</p>'
    upper = _upper_organ_label(lesions)
    mixed = upper == "spleen or kidney"
    units = next((les.get("units") for les in lesions if les.get("units")), None)
    has_notes = any(les.get("warnings") for les in lesions)
    head = (
        "<thead><tr>"
        '<th class="num">#</th><th>Grade</th><th>Borderline</th>'
        '<th class="num">Lesion / liver (95 % CI)</th>'
        f'<th class="num">Lesion / {_e(upper)} (95 % CI)</th>'
        '<th class="num">Peak</th><th class="num">Size</th><th>Region</th><th>Source</th>'
        + ("<th>Notes</th>" if has_notes else "")
        + "</tr></thead>"
    )
    rows = []
    for les in sorted(lesions, key=lambda item: item.get("id", 0)):
        lesion_id = les.get("id")
        grade_html, swatch = _grade_text(les)
        panel = f"lesion_{lesion_id}"
        id_html = _e(lesion_id)
        if panel in overlays:
            id_html = f'<a href="#panel-{_e(panel)}">{id_html}</a>'
        organ = les.get("spleen_reference_organ")
        organ_note = f' <span class="small">{_e(organ)}</span>' if mixed and organ else ""
        size_title = []
        if isinstance(les.get("area_cm2"), int | float):
            size_title.append(f"area {_num(les['area_cm2'], 2)} cm2")
        if isinstance(les.get("volume_ml"), int | float):
            size_title.append(f"volume {_num(les['volume_ml'], 2)} mL")
        borderline = '<span class="flag">yes</span>' if les.get("borderline") else "no"
        notes = ""
        if has_notes:
            notes = f'<td class="small">{"<br>".join(_e(w) for w in les.get("warnings", []))}</td>'
        rows.append(
            f'<tr data-lesion-id="{_e(lesion_id)}" data-grade="{_e(les.get("grade"))}" '
            f'data-graded="{_e(json.dumps(bool(les.get("graded", True))))}">'
            f'<td class="num"><span class="swatch {swatch}"></span>{id_html}</td>'
            f'<td class="grade-cell">{grade_html}</td>'
            f'<td class="borderline">{borderline}</td>'
            + _ratio_cell("ratio-liver", les.get("ratio_liver"), les.get("ratio_liver_ci"))
            + _ratio_cell(
                "ratio-spleen", les.get("ratio_spleen"), les.get("ratio_spleen_ci"), organ_note
            )
            + f'<td class="num peak">{_num(les.get("peak_counts"), 1)}</td>'
            f'<td class="num size" title="{_e("; ".join(size_title))}">'
            f"{_num(les.get('diameter_mm'), 0)} mm</td>"
            f'<td class="region">{_e(les.get("region", "-"))}</td>'
            f'<td class="source">{_e(les.get("source", "-"))}</td>'
            f"{notes}</tr>"
        )
    methods = sorted({str(les["grading_method"]) for les in lesions if les.get("grading_method")})
    foot = [
        _grade_scale_text(result, upper),
        "Ratio = lesion peak / reference mean"
        + (f" ({_e(units)})" if units else "")
        + ", 95 % confidence interval in brackets; borderline: the interval spans a grade "
        "threshold.",
    ]
    foot.extend(f"Grading: {_e(method.rstrip('.'))}." for method in methods)
    return (
        f"<h2>Lesions ({len(lesions)})</h2>"
        f'<table id="lesions">{head}<tbody>{"".join(rows)}</tbody></table>'
        + "".join(f'<p class="small">{line}</p>' for line in foot)
    )


def _region_text(region: Any) -> str:
    if not isinstance(region, Mapping):
        return "-"
    parts = []
    shape = region.get("shape")
    radius = region.get("radius_mm")
    if shape:
        parts.append(
            f"{_e(shape)}, radius {_num(radius, 0)} mm" if radius is not None else _e(shape)
        )
    if region.get("center_rc") is not None:
        r, c = region["center_rc"]
        parts.append(f"at row {_num(r, 0)}, col {_num(c, 0)}")
    if region.get("center_lps_mm") is not None:
        x, y, z = region["center_lps_mm"]
        parts.append(f"at LPS ({_num(x, 0)}, {_num(y, 0)}, {_num(z, 0)}) mm")
    if region.get("volume_ml") is not None:
        parts.append(f"{_num(region['volume_ml'], 1)} mL")
    return " ".join(parts) or "-"


def _reference_table(references: Mapping[str, Any]) -> str:
    if not references:
        return (
            '<h2>References</h2><p id="no-references">No reference region found: no lesion '
            "could be graded against liver or spleen.</p>"
        )
    order = {"liver": 0, "spleen": 1, "kidney": 2}
    rows = []
    for organ in sorted(references, key=lambda name: (order.get(name, 9), name)):
        ref = references[organ]
        usable = ref.get("usable", True)
        usable_html = "yes" if usable else '<span class="unusable">NO</span>'
        notes = [ref.get("method", "")]
        notes.extend(ref.get("warnings", []))
        rows.append(
            f'<tr data-organ="{_e(organ)}">'
            f'<td class="organ"><span class="swatch ref"></span>{_e(organ)}</td>'
            f'<td class="num ref-mean" data-value="{_data_value(ref.get("mean"))}">'
            f"{_num(ref.get('mean'), 1)}</td>"
            f'<td class="num">{_num(ref.get("std"), 1)}</td>'
            f'<td class="num">{_e(ref.get("n_pixels", "-"))}</td>'
            f"<td>{_region_text(ref.get('region'))}</td>"
            f"<td>{usable_html}</td>"
            f'<td class="small">{"<br>".join(_e(n) for n in notes if n)}</td>'
            "</tr>"
        )
    return (
        "<h2>Reference regions</h2>"
        '<table id="references"><thead><tr><th>Organ</th><th class="num">Mean</th>'
        '<th class="num">SD</th><th class="num">Pixels</th><th>Region</th><th>Usable</th>'
        "<th>Method, warnings</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _criteria_html(criteria: Sequence[Mapping[str, Any]]) -> str:
    if not criteria:
        return (
            '<h2>Clinical criteria</h2><p id="no-criteria">No clinical criterion in this '
            "result: the decision covers imaging only.</p>"
        )
    rows = []
    for crit in criteria:
        verdict = str(crit.get("verdict", ""))
        unit = crit.get("unit")
        value = crit.get("value")
        value_text = "-" if value is None else f"{value}{' ' + str(unit) if unit else ''}"
        rows.append(
            f"<tr><td>{_e(crit.get('name'))}</td>"
            f'<td class="verdict-{_e(verdict)}">{_e(_VERDICT_LABELS.get(verdict, verdict))}</td>'
            f"<td>{_e(value_text)}</td><td>{_e(crit.get('limit') or '-')}</td>"
            f"<td>{_e(crit.get('reason'))}</td><td>{_e(crit.get('source') or '-')}</td></tr>"
        )
    return (
        "<h2>Clinical criteria</h2>"
        '<table id="criteria"><thead><tr><th>Criterion</th><th>Verdict</th><th>Value</th>'
        "<th>Limit</th><th>Reason</th><th>Source</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _warnings_html(warnings: Sequence[Any]) -> str:
    if not warnings:
        return '<section class="warnings"><h2>Warnings</h2><p>None.</p></section>'
    return (
        f'<section class="warnings"><h2>Warnings ({len(warnings)})</h2>'
        f'<ul id="warnings">{_list_items(warnings)}</ul></section>'
    )


def _value_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return _yes_no(value)
    if isinstance(value, list | tuple):
        return ", ".join(_value_text(v) for v in value) or "-"
    if isinstance(value, Mapping):
        return "; ".join(f"{_e(k)}: {_value_text(v)}" for k, v in sorted(value.items())) or "-"
    return _e(value)


_PHI_PROVENANCE = frozenset({"input_series_uids"})


def _provenance_html(result: Mapping[str, Any], *, show_phi: bool) -> str:
    items: list[tuple[str, str]] = []
    tracer = result.get("tracer") or {}
    items.append(
        (
            "tracer",
            f"{_e(tracer.get('name', '-'))} (radionuclide {_e(tracer.get('radionuclide') or '-')}; "
            f"radiopharmaceutical {_e(tracer.get('radiopharmaceutical') or '-')}"
            + ("; assumed SSTR tracer (--assume-sstr)" if tracer.get("assumed") else "")
            + ")",
        )
    )
    items.append(("modalities used", _value_text(result.get("modalities_used"))))
    items.append(("hours post injection", _num(result.get("hours_post_injection"), 1)))
    provenance = result.get("provenance") or {}
    for key in sorted(provenance):
        if key in _PHI_PROVENANCE:
            uids = provenance[key] or []
            text = _value_text(uids) if show_phi else f"{len(uids)} series (UIDs with --show-phi)"
            items.append((key.replace("_", " "), text))
            continue
        items.append((key.replace("_", " "), _value_text(provenance[key])))
    items.append(("patient key (pseudonym)", _e(result.get("patient_key") or "-")))
    if show_phi:
        items.append(("study instance UID", _e(result.get("study_instance_uid", "-"))))
    items.append(("result schema", _e(result.get("schema_version", "-"))))
    body = "".join(f"<dt>{_e(name)}</dt><dd>{text}</dd>" for name, text in items)
    return f'<h2>Provenance</h2><dl class="prov" id="provenance">{body}</dl>'


def _more_panels_html(overlays: Mapping[str, str]) -> str:
    others = [panel for panel in _panel_order(overlays) if panel not in VIEW_PANELS]
    if not others:
        return ""
    figures = []
    for panel in others:
        href = _href(overlays[panel])
        title = _VIEW_TITLES.get(panel, panel.replace("_", " "))
        figures.append(
            f'<figure id="panel-{_e(panel)}"><a href="{href}"><img src="{href}" '
            f'alt="{_e(title)} overlay"></a><figcaption>{_e(title)}</figcaption></figure>'
        )
    return f'<section class="panels"><h2>Overlay panels, full size</h2>{"".join(figures)}</section>'


def _header(*, title_html: str, sub: str, links: Sequence[tuple[str, str]]) -> str:
    nav = "".join(f'<a href="{href}">{_e(text)}</a>' for href, text in links)
    return (
        f'<header class="top"><h1>{title_html}</h1><p class="sub">{sub}</p>'
        f"<nav>{nav}</nav></header>"
    )


def render_study_page(
    result: Mapping[str, Any] | None,
    overlays: Mapping[str, str],
    *,
    failed: Mapping[str, Any] | None = None,
    show_phi: bool = False,
    index_href: str | None = "../" + INDEX_NAME,
    result_href: str | None = RESULT_NAME,
    error_href: str | None = None,
) -> str:
    """HTML of one study page (a pure function; see :func:`write_study_page`).

    ``result``: the result.json dict of a scored study (None for a failed one).
    ``overlays``: panel name -> file name relative to the page (``find_overlays``).
    ``failed``: for a failed study, a dict with ``error_code`` and ``error_reason`` (the
    content of error.json). Links (``index_href``, ``result_href``, ``error_href``) are
    relative; None leaves a link out.
    """
    if result is None and failed is None:
        raise ValueError("render_study_page needs a result (scored study) or failed (error)")
    for name in overlays.values():
        _href(name)
    links: list[tuple[str, str]] = []
    if index_href is not None:
        links.append((_href(index_href, allow_parent=True), "All studies"))
    if result is None:
        assert failed is not None
        key = failed.get("study_key", "")
        if error_href is not None:
            links.append((_href(error_href), "error.json"))
        header = _header(
            title_html=f"Study {_e(key)} {_decision_badge(None)}",
            sub="Not scored: the study failed before a result could be made.",
            links=links,
        )
        body = (
            header
            + '<main><section class="failure" id="failure">'
            + f"<p><b>Error code:</b> <code>{_e(failed.get('error_code', 'internal'))}</code></p>"
            + f"<p><b>Reason:</b> {_e(failed.get('error_reason', ''))}</p>"
            + "</section>"
            + f'<p class="note">{_e(_DISCLAIMER)}</p></main>'
        )
        return _page(title=f"octoscan study {key}: failed", body=body, body_class="study failed")

    if result_href is not None:
        links.append((_href(result_href), "result.json"))
    key = result.get("study_key", "")
    decision = result.get("decision") or {}
    provenance = result.get("provenance") or {}
    tracer = result.get("tracer") or {}
    views = provenance.get("views_used") or []
    sub_parts = [
        _e(tracer.get("name", "tracer unknown")),
        f"{_num(result.get('hours_post_injection'), 1)} h p.i.",
        f"views {_e(' + '.join(views) or '-')}",
        f"rule set {_e(decision.get('rule_set', '-'))}",
    ]
    if show_phi and result.get("patient_id"):
        sub_parts.insert(0, f"Patient ID {_e(result['patient_id'])}")
    header = _header(
        title_html=f"Study {_e(key)} {_decision_badge(decision.get('status'))}",
        sub=" &middot; ".join(sub_parts),
        links=links,
    )
    figure, figure_css = _figure_html(overlays)
    numbers = (
        '<section class="numbers">'
        + _decision_html(decision)
        + _lesion_table(result, overlays)
        + _reference_table(result.get("references") or {})
        + "</section>"
    )
    review = f'<div class="review">{figure}{numbers}</div>' if figure else numbers
    body = (
        header
        + "<main>"
        + review
        + _criteria_html(decision.get("criteria") or [])
        + _warnings_html(result.get("warnings") or [])
        + _more_panels_html(overlays)
        + _provenance_html(result, show_phi=show_phi)
        + f'<p class="note">{_e(_DISCLAIMER)}</p>'
        + "</main>"
    )
    return _page(
        title=f"octoscan study {key}: {DECISION_LABELS.get(decision.get('status', ''), '-')}",
        body=body,
        extra_css=figure_css,
        body_class="study",
    )


def write_study_page(
    study_dir: str | Path,
    result: Mapping[str, Any] | None,
    overlays: Mapping[str, str],
    *,
    failed: Mapping[str, Any] | None = None,
    show_phi: bool = False,
) -> Path:
    """Write ``study_dir/report.html`` atomically (see :func:`render_study_page`); links to
    result.json or error.json only when that file is in ``study_dir``. Returns the path."""
    folder = Path(study_dir)
    result_href = RESULT_NAME if (folder / RESULT_NAME).is_file() else None
    error_href = ERROR_NAME if (folder / ERROR_NAME).is_file() else None
    text = render_study_page(
        result,
        overlays,
        failed=failed,
        show_phi=show_phi,
        index_href="../" + INDEX_NAME,
        result_href=result_href,
        error_href=error_href,
    )
    return write_text_atomic(folder / STUDY_PAGE_NAME, text)


# --------------------------------------------------------------------------- index


@dataclass(frozen=True)
class StudyRow:
    """One study in the index. ``page`` is the study page relative to the index (None when
    the study has no page); ``highest_grade`` counts graded lesions only."""

    study_key: str
    status: str  # "ok" or "failed"
    page: str | None = None
    decision: str | None = None
    imaging_decision: str | None = None
    rule_set: str | None = None
    tracer: str | None = None
    hours_post_injection: float | None = None
    n_lesions: int | None = None
    highest_grade: int | None = None
    n_borderline: int | None = None
    n_warnings: int | None = None
    error_code: str | None = None
    error_reason: str | None = None
    patient_id: str | None = None


def study_row(
    study_key: str,
    result: Mapping[str, Any] | None = None,
    *,
    failed: Mapping[str, Any] | None = None,
    page: str | None = None,
) -> StudyRow:
    """The index row of a scored study (``result``: its result.json dict) or of a failed one
    (``failed``: error.json's dict, with error_code and error_reason)."""
    if result is None:
        failed = failed or {}
        return StudyRow(
            study_key=study_key,
            status="failed",
            page=page,
            error_code=str(failed.get("error_code") or "internal"),
            error_reason=str(failed.get("error_reason") or ""),
        )
    decision = result.get("decision") or {}
    lesions = result.get("lesions") or []
    graded = [les["grade"] for les in lesions if les.get("graded", True) and "grade" in les]
    return StudyRow(
        study_key=study_key,
        status="ok",
        page=page,
        decision=decision.get("status"),
        imaging_decision=decision.get("imaging_status"),
        rule_set=decision.get("rule_set"),
        tracer=(result.get("tracer") or {}).get("name"),
        hours_post_injection=result.get("hours_post_injection"),
        n_lesions=len(lesions),
        highest_grade=max(graded) if graded else None,
        n_borderline=sum(1 for les in lesions if les.get("borderline")),
        n_warnings=len(result.get("warnings") or []),
        patient_id=result.get("patient_id"),
    )


def _decision_rank(row: StudyRow) -> int:
    if row.decision in DECISION_SORT_ORDER:
        return DECISION_SORT_ORDER.index(row.decision)
    return len(DECISION_SORT_ORDER)


def _num_cell(value: Any, css: str, *, digits: int = 0) -> str:
    """A numeric index cell; a missing value shows "-" and sorts below zero."""
    sort = "-1" if value is None else _e(value)
    text = "-" if value is None else _num(value, digits)
    return f'<td class="num {css}" data-sort="{sort}">{text}</td>'


def _sortable_head(label: str, *, numeric: bool = False) -> str:
    cls = ' class="num"' if numeric else ""
    return f'<th{cls}><button type="button" class="sort">{_e(label)}</button></th>'


def render_index(
    rows: Sequence[StudyRow],
    *,
    show_phi: bool = False,
    links: Sequence[tuple[str, str]] = (),
    n_skipped_files: int | None = None,
) -> str:
    """HTML of the index page (a pure function; see :func:`write_index`). Rows appear in
    study-key order; the column buttons sort in the browser (Decision by
    ``DECISION_SORT_ORDER``, failed studies last). ``links``: (relative href, text) pairs
    for the header (the batch CSV/JSON files)."""
    ordered = sorted(rows, key=lambda row: row.study_key)
    with_phi = show_phi and any(row.patient_id for row in ordered)
    heads = [
        _sortable_head("Study"),
        *([_sortable_head("Patient ID")] if with_phi else []),
        _sortable_head("Status"),
        _sortable_head("Decision"),
        _sortable_head("Rule set"),
        _sortable_head("Lesions", numeric=True),
        _sortable_head("Highest grade", numeric=True),
        _sortable_head("Borderline", numeric=True),
        _sortable_head("Tracer"),
        _sortable_head("h p.i.", numeric=True),
        _sortable_head("Warnings", numeric=True),
        _sortable_head("Failure"),
    ]
    body_rows = []
    for row in ordered:
        key_html = _e(row.study_key)
        if row.page is not None:
            key_html = f'<a href="{_href(row.page)}">{key_html}</a>'
        decision_html = (
            _decision_badge(row.decision) if row.status == "ok" else _decision_badge(None)
        )
        if row.status == "ok" and row.imaging_decision not in (None, row.decision):
            label = DECISION_LABELS.get(str(row.imaging_decision), str(row.imaging_decision))
            decision_html += f' <span class="small">(imaging: {_e(label)})</span>'
        failure = "-"
        if row.status != "ok":
            failure = f"<code>{_e(row.error_code)}</code>: {_e(row.error_reason)}"

        cells = [
            f'<td class="study" data-sort="{_e(row.study_key)}">{key_html}</td>',
            *([f'<td class="patient">{_e(row.patient_id or "-")}</td>'] if with_phi else []),
            f'<td class="status" data-sort="{_e(row.status)}">{_e(row.status)}</td>',
            f'<td class="decision-cell" data-sort="{_decision_rank(row)}" '
            f'data-decision="{_e(row.decision or "failed")}">{decision_html}</td>',
            f'<td class="rule-set">{_e(row.rule_set or "-")}</td>',
            _num_cell(row.n_lesions, "lesions"),
            _num_cell(row.highest_grade, "highest-grade"),
            _num_cell(row.n_borderline, "borderline"),
            f'<td class="tracer">{_e(row.tracer or "-")}</td>',
            _num_cell(row.hours_post_injection, "hours", digits=1),
            _num_cell(row.n_warnings, "warnings"),
            f'<td class="reason" data-sort="{_e(row.error_code or "")}">{failure}</td>',
        ]
        body_rows.append(
            f'<tr data-key="{_e(row.study_key)}" data-status="{_e(row.status)}">'
            + "".join(cells)
            + "</tr>"
        )
    counts = {name: 0 for name in (*DECISION_SORT_ORDER, "failed")}
    for row in ordered:
        name = row.decision if row.status == "ok" and row.decision in counts else "failed"
        counts[name] += 1
    summary = ", ".join(
        f"{n} {DECISION_LABELS.get(name, name).lower()}" for name, n in counts.items() if n
    )
    sub = f"{len(ordered)} studies" + (f": {summary}" if summary else "")
    if n_skipped_files:
        sub += f"; {n_skipped_files} files skipped by discovery"
    header = _header(
        title_html="octoscan review",
        sub=_e(sub),
        links=[(_href(href), text) for href, text in links],
    )
    table = (
        '<table id="studies"><thead><tr>'
        + "".join(heads)
        + "</tr></thead><tbody>"
        + "".join(body_rows)
        + "</tbody></table>"
        if ordered
        else '<p id="no-studies">No study in this folder.</p>'
    )
    body = (
        header
        + "<main>"
        + '<p class="small">Click a column title to sort (Decision: needs review, not '
        "eligible, eligible, failed). Open a study for its overlays and tables.</p>"
        + table
        + f'<p class="note">{_e(_DISCLAIMER)}</p></main>'
    )
    script = _template_text("sort.js") if ordered else None
    return _page(title="octoscan review", body=body, script=script, body_class="index")


_BATCH_FILES: tuple[tuple[str, str], ...] = (
    ("results.csv", "results.csv"),
    ("lesions.csv", "lesions.csv"),
    (FAILED_JSON, FAILED_JSON),
)


def write_index(
    out_dir: str | Path,
    rows: Sequence[StudyRow],
    *,
    show_phi: bool = False,
    n_skipped_files: int | None = None,
) -> Path:
    """Write ``out_dir/index.html`` atomically; links the batch files (results.csv,
    lesions.csv, failed.json) present in ``out_dir``. Returns the path."""
    root = Path(out_dir)
    links = [(href, text) for href, text in _BATCH_FILES if (root / href).is_file()]
    text = render_index(rows, show_phi=show_phi, links=links, n_skipped_files=n_skipped_files)
    return write_text_atomic(root / INDEX_NAME, text)


# --------------------------------------------------------------------------- whole report


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path.name} unreadable: {exc}"
    if not isinstance(data, dict):
        return None, f"{path.name} holds {type(data).__name__}; expected an object"
    return data, None


def build_report(out_dir: str | Path, *, show_phi: bool = False) -> Path:
    """Rebuild the whole report of ``out_dir`` from the files on disk: a study page for
    every ``<study key>/result.json`` (with the overlay PNGs found beside it) or
    ``<study key>/error.json``, then ``index.html`` (failed studies of failed.json without a
    folder are listed too). A result file that cannot be read is listed as failed with code
    ``unreadable_result``. Returns the index path."""
    root = Path(out_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"report folder {root} does not exist")
    rows: list[StudyRow] = []
    seen: set[str] = set()
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.startswith((".", TEMP_PREFIX)):
            continue
        result_path, error_path = folder / RESULT_NAME, folder / ERROR_NAME
        page = f"{folder.name}/{STUDY_PAGE_NAME}"
        if result_path.is_file():
            result, problem = _read_json(result_path)
            if result is not None:
                write_study_page(folder, result, find_overlays(folder), show_phi=show_phi)
                rows.append(study_row(folder.name, result, page=page))
            else:
                failed = {
                    "study_key": folder.name,
                    "error_code": "unreadable_result",
                    "error_reason": problem,
                }
                write_study_page(folder, None, {}, failed=failed, show_phi=show_phi)
                rows.append(study_row(folder.name, failed=failed, page=page))
        elif error_path.is_file():
            record, problem = _read_json(error_path)
            failed = record or {
                "study_key": folder.name,
                "error_code": "unreadable_result",
                "error_reason": problem,
            }
            failed = {**failed, "study_key": folder.name}
            write_study_page(folder, None, {}, failed=failed, show_phi=show_phi)
            rows.append(study_row(folder.name, failed=failed, page=page))
        else:
            continue
        seen.add(folder.name)
    n_skipped = None
    batch_failed, _ = (
        _read_json(root / FAILED_JSON) if (root / FAILED_JSON).is_file() else ({}, None)
    )
    if batch_failed:
        for item in batch_failed.get("failed_studies") or []:
            key = str(item.get("study_key", ""))
            if key and key not in seen:
                rows.append(study_row(key, failed=item))
                seen.add(key)
        skipped = batch_failed.get("skipped_files")
        n_skipped = len(skipped) if isinstance(skipped, list) else None
    return write_index(root, rows, show_phi=show_phi, n_skipped_files=n_skipped)
