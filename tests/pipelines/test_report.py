"""HTML review report and overlay PNGs: content, escaping, links, determinism, failures."""

from __future__ import annotations

import copy
import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from octoscan.imaging.types import AcquisitionInfo, PlanarImage, SeriesKind, SourceRef, View
from octoscan.models.config import config_hash, load_config
from octoscan.models.types import (
    CriterionResult,
    Decision,
    Lesion,
    OrganRegion,
    PlanarScore,
    ReferenceRegion,
)
from octoscan.pipelines.atomic import write_json_atomic
from octoscan.pipelines.overlays import render_planar_overlays
from octoscan.pipelines.report import (
    INDEX_NAME,
    STUDY_PAGE_NAME,
    build_report,
    encode_png,
    find_overlays,
    overlay_file_name,
    render_index,
    render_overlay_pngs,
    render_study_page,
    study_row,
    write_index,
    write_overlay_pngs,
    write_study_page,
)
from octoscan.pipelines.result_json import planar_result_to_dict, validate_result
from octoscan.pipelines.study import StudyOutcome

HOSTILE = '<script>alert("x")</script> & "quoted" \'single\''
CONFIG = load_config("default")
KEY_A, KEY_B, KEY_C, KEY_FAILED, KEY_LISTED = (
    "aaaaaaaaaaaa",
    "bbbbbbbbbbbb",
    "cccccccccccc",
    "dddddddddddd",
    "eeeeeeeeeeee",
)


# --------------------------------------------------------------------------- parsing


class _Page(HTMLParser):
    """Tags with attributes, text per table row, and every id of one HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: set[str] = set()
        self.rows: dict[str, list[dict]] = {}  # table id -> rows (attrs, cell texts)
        self._table: list[str | None] = []
        self._row: dict | None = None
        self._cell: list[str] | None = None
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "table":
            self._table.append(a.get("id"))
        elif tag == "tr" and self._table:
            self._row = {"attrs": a, "cells": [], "cell_attrs": [], "tags": []}
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            self._row["cell_attrs"].append(a)
            self._row["tags"].append(tag)
        elif tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "table" and self._table:
            self._table.pop()
        elif tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row["cells"].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.setdefault(self._table[-1] or "", []).append(self._row)
            self._row = None
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_script:
            self.scripts[-1] += data

    def links(self) -> list[str]:
        return [
            value
            for tag, attrs in self.tags
            for name, value in attrs.items()
            if name in ("href", "src") and value is not None
        ]


def _data_rows(page: _Page, table: str) -> list[dict]:
    """Rows of ``table`` made of td cells (the header row holds th cells)."""
    return [row for row in page.rows.get(table, []) if row["tags"] and "th" not in row["tags"]]


# --------------------------------------------------------------------------- data


def _lesion_dict(id_, **kw):
    base = {
        "id": id_,
        "grade": 3,
        "graded": True,
        "grade_range": [3, 3],
        "borderline": False,
        "ratio_liver": 1.8353,
        "ratio_liver_ci": [1.7905, 1.8812],
        "ratio_spleen": 0.6169,
        "ratio_spleen_ci": [0.6019, 0.6322],
        "spleen_reference_organ": "spleen",
        "center_rc": [288.0, 85.0],
        "center_lps_mm": None,
        "diameter_mm": 27.9,
        "area_cm2": 6.11,
        "volume_ml": None,
        "peak_counts": 216.9653,
        "mean_counts": 202.6755,
        "units": "counts/pixel (conjugate-view geometric mean)",
        "region": "liver",
        "grading_method": "planar conjugate-view geometric mean",
        "ci_method": "poisson_log_delta",
        "source": "threshold",
        "warnings": [],
    }
    base.update(kw)
    return base


def _result(
    key=KEY_A,
    *,
    status="needs_review",
    lesions=None,
    warnings=(),
    criteria=(),
    patient_id=None,
    cfg=CONFIG,
):
    result = {
        "schema_version": "1.0",
        "study_key": key,
        "study_instance_uid": "1.2.826.0.1.3680043.8.498.12345",
        "patient_key": "34295b56767f484c",
        "modalities_used": ["NM planar"],
        "tracer": {
            "name": "111In-pentetreotide",
            "radionuclide": "In-111",
            "radiopharmaceutical": "Indium (111-In) pentetreotide",
            "sstr": True,
            "assumed": False,
        },
        "hours_post_injection": 24.0,
        "references": {
            "liver": {
                "mean": 118.2199,
                "std": 13.3851,
                "n_pixels": 121,
                "region": {"shape": "circle", "radius_mm": 15.0, "center_rc": [303.0, 75.0]},
                "method": "30 mm circle in the liver",
                "variance_method": "poisson",
                "usable": True,
                "warnings": ["liver reference kept only 19 mm from the outline"],
            },
            "spleen": {
                "mean": 351.7307,
                "std": 20.8172,
                "n_pixels": 57,
                "region": {"shape": "circle", "radius_mm": 10.0, "center_rc": [282.0, 168.0]},
                "method": "20 mm circle in the spleen",
                "variance_method": "poisson",
                "usable": True,
                "warnings": [],
            },
        },
        "lesions": lesions
        if lesions is not None
        else [
            _lesion_dict(
                1,
                grade=2,
                grade_range=[2, 2],
                ratio_liver=0.5995,
                ratio_liver_ci=[0.5693, 0.6313],
                ratio_spleen=0.2015,
                ratio_spleen_ci=[0.1913, 0.2122],
                region="thorax",
                diameter_mm=19.0,
            ),
            _lesion_dict(
                2,
                grade=1,
                grade_range=[1, 2],
                borderline=True,
                ratio_liver=0.4823,
                ratio_liver_ci=[0.4609, 0.5047],
                ratio_spleen=0.1621,
                ratio_spleen_ci=[0.1549, 0.1696],
                region="abdomen",
                diameter_mm=16.7,
            ),
            _lesion_dict(3),
            _lesion_dict(
                4,
                grade=4,
                grade_range=[4, 4],
                ratio_liver=3.4419,
                ratio_liver_ci=[3.38, 3.50],
                ratio_spleen=1.157,
                ratio_spleen_ci=[1.12, 1.19],
                source="both",
                region="bone",
            ),
        ],
        "decision": {
            "status": status,
            "imaging_status": status,
            "rule_set": cfg.name,
            "uptake_rule": "significantly_above_liver",
            "reasons": ["lesion 2 straddles the grade-2 threshold"],
            "criteria": list(criteria),
        },
        "warnings": list(warnings),
        "provenance": {
            "octoscan_version": "0.1.0",
            "config_name": cfg.name,
            "config_hash": config_hash(cfg),
            "input_series_uids": ["1.2.826.0.1.3680043.8.498.999"],
            "views_used": ["anterior", "posterior"],
            "view_rules": {"anterior": "ViewCodeSequence", "posterior": "ViewCodeSequence"},
            "grid": "anterior",
        },
    }
    if patient_id is not None:
        result["patient_id"] = patient_id
    validate_result(result)
    return result


def _write_study(root: Path, result: dict, *, pngs=("geometric_mean", "anterior")) -> Path:
    folder = root / result["study_key"]
    write_json_atomic(folder / "result.json", result)
    for panel in pngs:
        rgb = np.full((8, 6, 3), 200, dtype=np.uint8)
        (folder / overlay_file_name(panel)).write_bytes(encode_png(rgb))
    return folder


def _write_failed(root: Path, key: str, code: str, reason: str) -> Path:
    folder = root / key
    write_json_atomic(
        folder / "error.json",
        {"study_key": key, "status": "failed", "error_code": code, "error_reason": reason},
    )
    return folder


@pytest.fixture
def batch(tmp_path):
    """An output folder: three scored studies, one failed with error.json, one failed study
    known only from failed.json, and the batch CSV files."""
    root = tmp_path / "out"
    _write_study(root, _result(KEY_A, status="needs_review", warnings=[HOSTILE]))
    _write_study(root, _result(KEY_B, status="eligible", lesions=[_lesion_dict(1)]))
    _write_study(root, _result(KEY_C, status="not_eligible", lesions=[]), pngs=())
    _write_failed(root, KEY_FAILED, "no_usable_series", "no planar series <b>here</b>")
    write_json_atomic(
        root / "failed.json",
        {
            "failed_studies": [
                {"study_key": KEY_FAILED, "error_code": "no_usable_series", "error_reason": "x"},
                {"study_key": KEY_LISTED, "error_code": "internal", "error_reason": "boom"},
            ],
            "skipped_files": [{"path": "a.txt", "code": "not_dicom", "reason": "no preamble"}],
            "n_non_dicom_files": 1,
        },
    )
    (root / "results.csv").write_text("study_key\n", encoding="utf-8")
    return root


# --------------------------------------------------------------------------- study page


def test_lesion_rows_carry_the_values_of_result_json():
    result = _result()
    page = _Page(render_study_page(result, {"geometric_mean": "overlay_geometric_mean.png"}))
    rows = _data_rows(page, "lesions")
    assert [row["attrs"]["data-lesion-id"] for row in rows] == ["1", "2", "3", "4"]
    for row, lesion in zip(rows, result["lesions"], strict=True):
        cells = row["cells"]
        attrs = {a.get("class", "").split()[-1]: a for a in row["cell_attrs"]}
        assert cells[0] == str(lesion["id"])
        assert cells[1].split()[0] == str(lesion["grade"])
        assert cells[2] == ("yes" if lesion["borderline"] else "no")
        lo, hi = lesion["ratio_liver_ci"]
        assert cells[3] == f"{lesion['ratio_liver']:.2f} ({lo:.2f}–{hi:.2f})"
        lo, hi = lesion["ratio_spleen_ci"]
        assert cells[4] == f"{lesion['ratio_spleen']:.2f} ({lo:.2f}–{hi:.2f})"
        assert json.loads(attrs["ratio-liver"]["data-value"]) == lesion["ratio_liver"]
        assert json.loads(attrs["ratio-liver"]["data-ci"]) == lesion["ratio_liver_ci"]
        assert json.loads(attrs["ratio-spleen"]["data-value"]) == lesion["ratio_spleen"]
        assert cells[5] == f"{lesion['peak_counts']:.1f}"
        assert cells[6] == f"{lesion['diameter_mm']:.0f} mm"
        assert cells[7] == lesion["region"]
        assert cells[8] == lesion["source"]
    # the grade range of a borderline lesion, and its swatch in the grade colour class
    assert rows[1]["cells"][1] == "1 (range 1–2)"
    assert 'class="swatch g1"' in render_study_page(result, {})


def test_references_decision_criteria_and_thresholds_shown():
    criteria = [
        CriterionResult("ki67", "fail", "Ki-67 above limit", 35.0, "<= 20", "%", "NETTER-1"),
        CriterionResult("creatinine", "not_assessed", "no value given"),
    ]
    result = _result(
        criteria=[
            {
                "name": c.name,
                "verdict": c.verdict,
                "reason": c.reason,
                "value": c.value,
                "limit": c.limit,
                "unit": c.unit,
                "source": c.source,
            }
            for c in criteria
        ]
    )
    text = render_study_page(result, {})
    page = _Page(text)
    refs = {row["attrs"]["data-organ"]: row["cells"] for row in _data_rows(page, "references")}
    assert refs["liver"][1] == "118.2" and refs["spleen"][1] == "351.7"
    assert refs["liver"][4] == "circle, radius 15 mm at row 303, col 75"
    assert "liver reference kept only 19 mm from the outline" in refs["liver"][6]
    crit = _data_rows(page, "criteria")
    assert crit[0]["cells"] == ["ki67", "fail", "35.0 %", "<= 20", "Ki-67 above limit", "NETTER-1"]
    assert crit[1]["cells"][:2] == ["creatinine", "not assessed"]
    assert "lesion 2 straddles the grade-2 threshold" in text
    # thresholds of the shipped rule set whose hash matches
    t = CONFIG.krenning
    assert (
        f"1 below {t.grade2_min_ratio_liver:.2f} × liver; 2 from "
        f"{t.grade2_min_ratio_liver:.2f} to {t.grade3_min_ratio_liver:.2f} × liver"
    ) in page_text(text)
    assert config_hash(CONFIG) in text


def page_text(text: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", text.replace("&times;", "×")).split())


def test_unknown_rule_set_hash_shows_no_thresholds_and_empty_criteria_are_explained():
    result = _result()
    result["provenance"]["config_hash"] = "f" * 64
    text = page_text(render_study_page(result, {}))
    assert "are not in this result or this octoscan installation" in text
    assert "1 below" not in text
    # thresholds carried by the result itself win over any lookup
    result["provenance"]["krenning_thresholds"] = {
        "grade2_min_ratio_liver": 0.4,
        "grade3_min_ratio_liver": 1.1,
        "grade4_min_ratio_spleen": 0.9,
    }
    text = page_text(render_study_page(result, {}))
    assert "1 below 0.40 × liver; 2 from 0.40 to 1.10 × liver; 3 above 1.10 × liver; " in text
    assert "4 above 0.90 × spleen" in text
    assert "No clinical criterion in this result: the decision covers imaging only." in text


def test_hostile_strings_are_escaped():
    lesion = _lesion_dict(1, region='"><img src=x onerror=alert(1)>', warnings=[HOSTILE])
    result = _result(lesions=[lesion], warnings=[HOSTILE])
    result["decision"]["reasons"] = [HOSTILE]
    result["references"]["liver"]["method"] = HOSTILE
    text = render_study_page(result, {})
    page = _Page(text)
    assert page.scripts == []  # the study page runs no script at all
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quoted&quot;" in text
    assert not any(tag == "img" for tag, _ in page.tags)  # the region did not become a tag
    assert _data_rows(page, "lesions")[0]["cells"][7] == '"><img src=x onerror=alert(1)>'
    failed = {"study_key": KEY_FAILED, "error_code": "x<y", "error_reason": HOSTILE}
    failed_text = render_study_page(None, {}, failed=failed)
    assert "<script>alert" not in failed_text and "x&lt;y" in failed_text
    index = render_index([study_row(KEY_FAILED, failed=failed)])
    assert "<script>alert" not in index
    assert len(_Page(index).scripts) == 1  # only the sort script


def test_patient_identifiers_only_with_show_phi():
    result = _result(patient_id="DOE^JANE-778899")
    hidden = render_study_page(result, {})
    assert "DOE^JANE" not in hidden
    assert result["study_instance_uid"] not in hidden
    assert result["provenance"]["input_series_uids"][0] not in hidden
    shown = render_study_page(result, {}, show_phi=True)
    assert "DOE^JANE-778899" in shown and result["study_instance_uid"] in shown
    row = study_row(KEY_A, result, page="x/report.html")
    assert "DOE^JANE" not in render_index([row])
    assert "DOE^JANE-778899" in render_index([row], show_phi=True)


def test_kidney_reference_and_ungraded_lesion():
    lesions = [
        _lesion_dict(1, spleen_reference_organ="kidney"),
        _lesion_dict(
            2,
            grade=0,
            graded=False,
            grade_range=[0, 0],
            ratio_liver=None,
            ratio_liver_ci=None,
            spleen_reference_organ="kidney",
        ),
    ]
    page = _Page(render_study_page(_result(lesions=lesions), {}))
    head = page.rows["lesions"][0]["cells"]
    assert head[4] == "Lesion / kidney (95 % CI)"
    rows = _data_rows(page, "lesions")
    assert rows[1]["cells"][1] == "not graded" and rows[1]["cells"][3] == "-"
    assert study_row(KEY_A, _result(lesions=lesions)).highest_grade == 3


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="needs a result"):
        render_study_page(None, {})
    with pytest.raises(ValueError, match="expected a relative path"):
        render_study_page(_result(), {"geometric_mean": "../elsewhere.png"})
    with pytest.raises(ValueError, match="expected a relative path"):
        render_study_page(_result(), {"anterior": "http://example.org/a.png"})
    with pytest.raises(ValueError, match="expected a relative path"):
        render_index([study_row(KEY_A, _result(), page="/abs/report.html")])
    with pytest.raises(ValueError, match="expected lower-case letters"):
        overlay_file_name("../x")
    with pytest.raises(ValueError, match=r"expected uint8 \(row, col, 3\)"):
        encode_png(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="expected at least one pixel"):
        encode_png(np.zeros((0, 4, 3), dtype=np.uint8))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_report("/nonexistent/octoscan-report")


# --------------------------------------------------------------------------- whole report


def _pages(root: Path) -> list[Path]:
    return sorted(root.rglob("*.html"))


def test_build_report_lists_every_study_with_decision_and_failures(batch):
    index_path = build_report(batch)
    assert index_path == batch / INDEX_NAME
    page = _Page(index_path.read_text(encoding="utf-8"))
    rows = {row["attrs"]["data-key"]: row for row in _data_rows(page, "studies")}
    assert list(rows) == sorted(rows)  # study-key order without the script
    assert set(rows) == {KEY_A, KEY_B, KEY_C, KEY_FAILED, KEY_LISTED}
    cells = {key: row["cells"] for key, row in rows.items()}
    # Study, Status, Decision, Rule set, Lesions, Highest grade, Borderline, ..., Failure
    assert cells[KEY_A][:7] == [KEY_A, "ok", "Needs review", "default", "4", "4", "1"]
    assert cells[KEY_B][:7] == [KEY_B, "ok", "Eligible", "default", "1", "3", "0"]
    assert cells[KEY_C][:7] == [KEY_C, "ok", "Not eligible", "default", "0", "-", "0"]
    assert cells[KEY_FAILED][1:3] == ["failed", "Failed"]
    assert cells[KEY_FAILED][-1] == "no_usable_series: no planar series <b>here</b>"
    assert cells[KEY_LISTED][-1] == "internal: boom"
    # the decision sort keys: needs review, not eligible, eligible, then failed
    ranks = {key: row["cell_attrs"][2]["data-sort"] for key, row in rows.items()}
    assert ranks == {KEY_A: "0", KEY_C: "1", KEY_B: "2", KEY_FAILED: "3", KEY_LISTED: "3"}
    assert "5 studies: 1 needs review, 1 not eligible, 1 eligible, 2 failed" in page_text(
        index_path.read_text(encoding="utf-8")
    )
    assert "1 files skipped by discovery" in index_path.read_text(encoding="utf-8")
    # a page per study folder; the study known only from failed.json has none
    assert {p.parent.name for p in _pages(batch) if p.name == STUDY_PAGE_NAME} == {
        KEY_A,
        KEY_B,
        KEY_C,
        KEY_FAILED,
    }
    failed_page = (batch / KEY_FAILED / STUDY_PAGE_NAME).read_text(encoding="utf-8")
    assert "no_usable_series" in failed_page and 'href="error.json"' in failed_page


def test_links_are_relative_and_resolve(batch):
    build_report(batch)
    for path in _pages(batch):
        page = _Page(path.read_text(encoding="utf-8"))
        links = page.links()
        assert links, path
        for link in links:
            assert not re.match(r"^[a-z][a-z0-9+.-]*:", link, re.I), (path, link)
            assert not link.startswith("//") and not link.startswith("/"), (path, link)
            target, _, anchor = link.partition("#")
            if target:
                assert (path.parent / target).resolve().is_file(), (path, link)
            else:
                assert anchor in page.ids, (path, link)
    study = _Page((batch / KEY_A / STUDY_PAGE_NAME).read_text(encoding="utf-8"))
    assert {"../index.html", "result.json", "overlay_geometric_mean.png"} <= set(study.links())
    index = _Page((batch / INDEX_NAME).read_text(encoding="utf-8"))
    assert {f"{KEY_A}/report.html", "results.csv", "failed.json"} <= set(index.links())
    assert "lesions.csv" not in index.links()  # not on disk: not linked


def test_pages_load_nothing_external(batch):
    build_report(batch)
    for path in _pages(batch):
        text = path.read_text(encoding="utf-8")
        page = _Page(text)
        for tag, attrs in page.tags:
            for name in ("src", "href", "action", "srcset", "poster", "data"):
                value = attrs.get(name) or ""
                assert "http://" not in value and "https://" not in value, (path, tag)
                assert not value.startswith("//"), (path, tag)
        assert "@import" not in text and "url(" not in text
        assert not re.search(r"https?://", text.split("<body")[0])  # head: no URL at all
        csp = [
            a["content"] for t, a in page.tags if a.get("http-equiv") == "Content-Security-Policy"
        ]
        assert len(csp) == 1 and "default-src 'none'" in csp[0]
        directives = dict(d.strip().split(" ", 1) for d in csp[0].split(";"))
        script_src = directives.get("script-src", "'none'")  # default-src 'none' without it
        assert re.fullmatch(r"'none'|'sha256-[A-Za-z0-9+/=]+'", script_src), script_src
        assert (script_src == "'none'") == (path.name == STUDY_PAGE_NAME)


def test_build_is_deterministic(batch, tmp_path):
    copy_root = tmp_path / "copy"
    shutil.copytree(batch, copy_root)
    build_report(batch)
    first = {p.relative_to(batch): p.read_bytes() for p in _pages(batch)}
    build_report(batch)
    again = {p.relative_to(batch): p.read_bytes() for p in _pages(batch)}
    build_report(copy_root)
    other = {p.relative_to(copy_root): p.read_bytes() for p in _pages(copy_root)}
    assert first == again == other
    assert len(first) == 5


def test_unreadable_result_is_listed_as_failed(tmp_path):
    root = tmp_path / "out"
    (root / KEY_A).mkdir(parents=True)
    (root / KEY_A / "result.json").write_text("{not json", encoding="utf-8")
    build_report(root)
    rows = _data_rows(_Page((root / INDEX_NAME).read_text(encoding="utf-8")), "studies")
    assert rows[0]["cells"][1] == "failed"
    assert rows[0]["cells"][-1].startswith("unreadable_result: result.json unreadable")


def test_empty_folder_gives_an_index_without_table(tmp_path):
    text = build_report(tmp_path).read_text(encoding="utf-8")
    assert "No study in this folder." in text and "<script>" not in text


def test_write_study_page_links_only_existing_json(tmp_path):
    path = write_study_page(tmp_path, _result(), {})
    assert path == tmp_path / STUDY_PAGE_NAME
    assert 'href="result.json"' not in path.read_text(encoding="utf-8")
    write_json_atomic(tmp_path / "result.json", _result())
    assert 'href="result.json"' in write_study_page(tmp_path, _result(), {}).read_text("utf-8")
    assert write_index(tmp_path, []).name == INDEX_NAME


# --------------------------------------------------------------------------- overlay PNGs

H, W = 120, 100
SMALL = 450  # panel height asked for in these tests: fewer, smaller renders


def _box(r0, r1, c0, c1):
    m = np.zeros((H, W), dtype=bool)
    m[r0:r1, c0:c1] = True
    return m


def _planar(counts, view, *, series="1.2.3", hours=24.0):
    return PlanarImage(
        counts=np.asarray(counts, dtype=np.float32),
        view=view,
        view_rule="test",
        pixel_spacing_mm=(2.0, 2.0),
        acquisition=AcquisitionInfo(hours_post_injection=hours),
        source=SourceRef("1.2", series),
        kind=SeriesKind.PLANAR_WHOLE_BODY,
    )


def _outcome(*, extra_images=()):
    body = np.zeros((H, W))
    body[10:110, 20:80] = 10.0
    liver = _box(40, 60, 25, 45)
    spleen = _box(40, 55, 60, 72)
    lesion = _box(80, 86, 40, 46)
    body[liver] = 20.0
    body[spleen] = 40.0
    body[lesion] = 60.0
    refs = (
        ReferenceRegion("liver", 20.0, 1.0, 0.01, "poisson", "test", 6.0, center_rc=(50.0, 35.0)),
        ReferenceRegion("spleen", 40.0, 1.0, 0.01, "poisson", "test", 4.0, center_rc=(47.0, 66.0)),
    )
    lesions = (
        Lesion(
            id=1,
            diameter_mm=12.0,
            peak=60.0,
            mean=55.0,
            units="counts/pixel",
            ratio_liver=3.0,
            ratio_liver_ci=(2.7, 3.3),
            ratio_spleen=1.5,
            ratio_spleen_ci=(1.3, 1.7),
            spleen_reference_organ="spleen",
            grade=4,
            grade_range=(4, 4),
            borderline=False,
            region="abdomen",
            grading_method="test",
            ci_method="poisson",
            center_rc=(83.0, 43.0),
            mask=lesion,
        ),
    )
    score = PlanarScore(
        tracer="111In-pentetreotide",
        tracer_assumed=False,
        views_used=("anterior", "posterior"),
        grid="anterior",
        hours_post_injection=24.0,
        grading_method="test",
        ci_method="poisson",
        pixel_spacing_mm=(2.0, 2.0),
        posterior_shift_rc=(0.0, 0.0),
        orientation="head up",
        organs=(OrganRegion("bladder", None, 5.0, "test", mask=_box(100, 105, 45, 55)),),
        references=refs,
        lesions=lesions,
        decision=Decision(
            "eligible",
            "eligible",
            "default",
            "significantly_above_liver",
            ("lesion 1 above liver",),
        ),
        config_name="default",
        config_hash="0" * 64,
        series_instance_uids=("1.2.3",),
        warnings=(),
        scoring_image=body.astype(np.float32),
    )
    ant = _planar(body, View.ANTERIOR)
    post = _planar(body[:, ::-1] * 0.5, View.POSTERIOR)
    images = (*extra_images, ant, post)
    result = planar_result_to_dict(
        score,
        study_instance_uid="1.2.3.4",
        study_key=KEY_A,
        patient_key=None,
        patient_id="PAT-0042",
        octoscan_version="0.1.0",
        config_hash="0" * 64,
        krenning_thresholds={
            "grade2_min_ratio_liver": 0.5,
            "grade3_min_ratio_liver": 1.0,
            "grade4_min_ratio_spleen": 1.0,
        },
        images=images,
    )
    outcome = StudyOutcome(
        study_instance_uid="1.2.3.4",
        study_key=KEY_A,
        status="ok",
        seconds=0.1,
        input_series_uids=("1.2.3",),
        result=result,
        planar=score,
        planar_images=images,
    )
    return outcome, ant, post


def _png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return chunks


def test_overlay_pngs_hold_the_rendered_panels_at_screen_scale(tmp_path):
    outcome, ant, post = _outcome()
    files = render_overlay_pngs(outcome, max_panel_height_px=SMALL)
    assert sorted(files) == [
        "overlay_anterior.png",
        "overlay_geometric_mean.png",
        "overlay_posterior.png",
        "overlay_summary.png",
    ]
    images = {"anterior": ant, "posterior": post}

    def view_height(scale):
        panels = render_planar_overlays(outcome.planar, images, scale=scale)
        return max(rgb.shape[0] for name, rgb in panels.items() if name != "summary")

    # the largest scale whose view panels fit the height asked for (a small image is enlarged)
    scale = max(s for s in range(1, 6) if view_height(s) <= SMALL)
    assert scale >= 2 and view_height(scale + 1) > SMALL
    expected = render_planar_overlays(outcome.planar, images, scale=scale)
    for name, data in files.items():
        decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        panel = name[len("overlay_") : -len(".png")]
        np.testing.assert_array_equal(decoded, expected[panel])
        assert set(_png_chunks(data)) == {b"IHDR", b"IDAT", b"IEND"}  # no time, no text
    assert render_overlay_pngs(outcome, max_panel_height_px=SMALL) == files  # same bytes
    # the patient ID is drawn only with show_phi
    with_phi = render_overlay_pngs(outcome, show_phi=True, max_panel_height_px=SMALL)
    assert with_phi["overlay_summary.png"] != files["overlay_summary.png"]
    assert with_phi["overlay_anterior.png"] == files["overlay_anterior.png"]
    with pytest.raises(ValueError, match="max_panel_height_px=0; expected >= 1"):
        render_overlay_pngs(outcome, max_panel_height_px=0)


def test_overlays_use_the_scored_time_point(tmp_path):
    early = _planar(np.zeros((H, W)), View.ANTERIOR, hours=4.0)
    other_series = _planar(np.zeros((H, W)), View.ANTERIOR, series="9.9.9")
    outcome, _, _ = _outcome(extra_images=(early, other_series))
    reference, _, _ = _outcome()
    assert render_overlay_pngs(outcome, max_panel_height_px=SMALL) == render_overlay_pngs(
        reference, max_panel_height_px=SMALL
    )


def test_write_overlay_pngs_writes_and_removes_stale_panels(tmp_path):
    outcome, _, _ = _outcome()
    stale = tmp_path / "overlay_lesion_9.png"
    stale.write_bytes(b"old")
    keep = tmp_path / "result.json"
    keep.write_text("{}", encoding="utf-8")
    written = write_overlay_pngs(outcome, tmp_path, max_panel_height_px=SMALL)
    assert set(written) == {"anterior", "posterior", "geometric_mean", "summary"}
    expected = render_overlay_pngs(outcome, max_panel_height_px=SMALL)
    assert all(path.read_bytes() == expected[path.name] for path in written.values())
    assert not stale.exists() and keep.exists()
    assert list(find_overlays(tmp_path)) == ["geometric_mean", "anterior", "posterior", "summary"]
    failed = StudyOutcome(
        study_instance_uid="1.2",
        study_key=KEY_FAILED,
        status="failed",
        seconds=0.0,
        input_series_uids=(),
        error_code="internal",
        error_reason="x",
    )
    assert write_overlay_pngs(failed, tmp_path / "failed") == {}
    assert not (tmp_path / "failed").exists()


def test_study_page_from_real_result_and_overlays(tmp_path):
    outcome, _, _ = _outcome()
    folder = tmp_path / outcome.study_key
    write_json_atomic(folder / "result.json", outcome.result)
    write_overlay_pngs(outcome, folder, max_panel_height_px=SMALL)
    build_report(tmp_path)
    page = _Page((folder / STUDY_PAGE_NAME).read_text(encoding="utf-8"))
    srcs = [a["src"] for t, a in page.tags if t == "img"]
    assert srcs == [
        "overlay_geometric_mean.png",
        "overlay_anterior.png",
        "overlay_posterior.png",
        "overlay_summary.png",
    ]
    row = _data_rows(page, "lesions")[0]
    assert row["cells"][1] == "4" and row["cells"][3] == "3.00 (2.70–3.30)"
    assert "PAT-0042" not in (folder / STUDY_PAGE_NAME).read_text(encoding="utf-8")
    result = copy.deepcopy(outcome.result)
    assert study_row(KEY_A, result).highest_grade == 4


def test_index_notes_an_imaging_decision_that_differs():
    result = _result(status="not_eligible")
    result["decision"]["imaging_status"] = "eligible"
    row = study_row(KEY_A, result, page=f"{KEY_A}/report.html")
    assert row.decision == "not_eligible" and row.imaging_decision == "eligible"
    cells = _data_rows(_Page(render_index([row])), "studies")[0]["cells"]
    assert cells[2] == "Not eligible (imaging: Eligible)"
