"""The review report in headless Chromium: a phantom study scored in-process, its overlays,
study page and index opened from disk, checked as a reader's browser shows them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from PIL import Image

from octoscan.imaging.discovery import discover
from octoscan.models.config import load_config
from octoscan.pipelines.atomic import write_json_atomic
from octoscan.pipelines.cli import main as cli_main
from octoscan.pipelines.outputs import write_study_outputs
from octoscan.pipelines.report import (
    INDEX_NAME,
    STUDY_PAGE_NAME,
    build_report,
    write_overlay_pngs,
)
from octoscan.pipelines.screenshot import (
    CHROMIUM_PATH,
    chromium_available,
    open_browser,
    page_url,
    save_screenshot,
)
from octoscan.pipelines.study import process_study

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not chromium_available(),
        reason=f"headless Chromium not installed ({CHROMIUM_PATH}; Debian packages chromium "
        "and chromium-driver) or playwright missing",
    ),
]

SEED = 11
IMAGES_STATE = """() => Array.from(document.images).map(img => ({
    src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth}))"""
LESION_ROWS = """() => Array.from(document.querySelectorAll('#lesions tbody tr')).map(tr => ({
    id: tr.dataset.lesionId,
    grade: tr.querySelector('.grade-cell').innerText.trim(),
    borderline: tr.querySelector('.borderline').innerText.trim(),
    liver: JSON.parse(tr.querySelector('.ratio-liver').dataset.value),
    liverCi: JSON.parse(tr.querySelector('.ratio-liver').dataset.ci),
    liverText: tr.querySelector('.ratio-liver').innerText.trim(),
    spleen: JSON.parse(tr.querySelector('.ratio-spleen').dataset.value),
    spleenText: tr.querySelector('.ratio-spleen').innerText.trim()}))"""
INDEX_ORDER = """() => Array.from(document.querySelectorAll('#studies tbody tr')).map(
    tr => [tr.dataset.key, tr.querySelector('.decision-cell').dataset.decision])"""


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, dict]:
    """One phantom planar study scored and reported, plus three more studies (the scored
    result with other decisions, and a failure) so that the index has something to sort."""
    root = tmp_path_factory.mktemp("browser")
    study_in = root / "phantom"
    assert cli_main(["phantom", str(study_in), "--seed", str(SEED), "--kind", "planar"]) == 0
    series = next(iter(discover(study_in).studies().values()))
    outcome = process_study(series, load_config("default"))
    assert outcome.status == "ok", outcome.error_reason
    out = root / "out"
    study_dir = out / outcome.study_key
    write_study_outputs(outcome, study_dir)
    assert set(write_overlay_pngs(outcome, study_dir)) >= {"geometric_mean", "summary"}
    result = outcome.result
    assert result is not None and result["lesions"], "the phantom should hold lesions"
    for key, status in (("000000000001", "eligible"), ("ffffffffffff", "not_eligible")):
        other = copy.deepcopy(result)
        other["study_key"] = key
        other["decision"]["status"] = status
        write_json_atomic(out / key / "result.json", other)
    write_json_atomic(
        out / "0000000000aa" / "error.json",
        {
            "study_key": "0000000000aa",
            "status": "failed",
            "error_code": "no_usable_series",
            "error_reason": "no planar nuclear-medicine series to score",
        },
    )
    build_report(out)
    return out, result


def _open(context, path: Path, console: list[str]):
    page = context.new_page()
    page.on("console", lambda msg: console.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: console.append(str(exc)))
    page.goto(page_url(path), wait_until="load")
    return page


def test_study_page_in_chromium(report, tmp_path):
    out, result = report
    key = result["study_key"]
    blocked: list[str] = []
    console: list[str] = []
    with open_browser(blocked=blocked) as context:
        page = _open(context, out / key / STUDY_PAGE_NAME, console)
        images = page.evaluate(IMAGES_STATE)
        assert len(images) >= 2
        assert all(img["complete"] and img["width"] > 0 for img in images), images
        rows = page.evaluate(LESION_ROWS)
        lesions = sorted(result["lesions"], key=lambda les: les["id"])
        assert [row["id"] for row in rows] == [str(les["id"]) for les in lesions]
        for row, les in zip(rows, lesions, strict=True):
            assert row["grade"].split()[0] == str(les["grade"])
            assert row["borderline"] == ("yes" if les["borderline"] else "no")
            assert row["liver"] == les["ratio_liver"] and row["liverCi"] == les["ratio_liver_ci"]
            assert row["spleen"] == les["ratio_spleen"]
            lo, hi = les["ratio_liver_ci"]
            assert row["liverText"] == f"{les['ratio_liver']:.2f} ({lo:.2f}–{hi:.2f})"
            assert row["spleenText"].startswith(f"{les['ratio_spleen']:.2f} (")
        # the overlay, the lesion table and the reference table share the first screen
        viewport = page.viewport_size
        for selector in ("#panel-geometric_mean img", "#lesions", "#references"):
            box = page.locator(selector).bounding_box()
            assert box is not None and box["y"] >= 0, selector
            assert box["y"] + box["height"] <= viewport["height"], selector
            assert box["x"] + box["width"] <= viewport["width"], selector
        # the view switcher: one panel at a time, no script needed
        assert page.locator("#panel-geometric_mean").is_visible()
        assert not page.locator("#panel-anterior").is_visible()
        page.click("label[for=view-1]")
        assert page.locator("#panel-anterior").is_visible()
        assert not page.locator("#panel-geometric_mean").is_visible()
        shot = tmp_path / "study.png"
        shot.write_bytes(page.screenshot(type="png"))
    assert blocked == [] and console == []
    with Image.open(shot) as im:
        assert im.size == (viewport["width"], viewport["height"])


def test_index_sorts_and_links_in_chromium(report, tmp_path):
    out, result = report
    blocked: list[str] = []
    console: list[str] = []
    with open_browser(blocked=blocked) as context:
        page = _open(context, out / INDEX_NAME, console)
        assert all(img["width"] > 0 for img in page.evaluate(IMAGES_STATE))
        keys = ["000000000001", "0000000000aa", result["study_key"], "ffffffffffff"]
        before = page.evaluate(INDEX_ORDER)
        assert [k for k, _ in before] == sorted(keys)
        decision_button = page.locator("#studies thead th", has_text="Decision").locator("button")
        decision_button.click()
        # needs review, not eligible, eligible, failed; ties in study-key order
        order = ["needs_review", "not_eligible", "eligible", "failed"]
        expected = sorted(before, key=lambda kd: (order.index(kd[1]), kd[0]))
        assert page.evaluate(INDEX_ORDER) == expected
        head = page.locator("#studies thead th", has_text="Decision")
        assert head.get_attribute("aria-sort") == "ascending"
        decision_button.click()
        descending = sorted(before, key=lambda kd: (-order.index(kd[1]), kd[0]))
        assert page.evaluate(INDEX_ORDER) == descending
        assert head.get_attribute("aria-sort") == "descending"
        # sorting by status puts failed before ok
        page.locator("#studies thead th", has_text="Status").locator("button").click()
        statuses = page.evaluate(
            "() => Array.from(document.querySelectorAll('#studies tbody tr'))"
            ".map(tr => tr.dataset.status)"
        )
        assert statuses == ["failed", "ok", "ok", "ok"]
        page.screenshot(path=str(tmp_path / "index.png"))
        # the study link opens the study page, whose images load
        page.click(f"a[href='{result['study_key']}/{STUDY_PAGE_NAME}']")
        page.wait_for_load_state("load")
        assert page.url.endswith(f"/{result['study_key']}/{STUDY_PAGE_NAME}")
        assert all(img["width"] > 0 for img in page.evaluate(IMAGES_STATE))
    assert blocked == [] and console == []
    assert (tmp_path / "index.png").stat().st_size > 0


def test_save_screenshot_writes_a_png(report, tmp_path):
    out, result = report
    path = save_screenshot(
        out / result["study_key"] / STUDY_PAGE_NAME, tmp_path / "shot.png", viewport_px=(800, 600)
    )
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (800, 600)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_screenshot(tmp_path / "missing.html", tmp_path / "x.png")
    data = json.loads((out / result["study_key"] / "result.json").read_text(encoding="utf-8"))
    assert data == result
