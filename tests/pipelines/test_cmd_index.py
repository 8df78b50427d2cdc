"""``octoscan index``: table and JSON output, skipped files, no patient identifiers."""

from __future__ import annotations

import json

from octoscan.pipelines.cli import main
from tests.imaging import nm_builders as b


def _folder(tmp_path):
    root = tmp_path / "study"
    b.write(b.nm_planar(), root / "wb.dcm")
    b.write(b.ct_slice(instance=1), root / "ct" / "1")
    b.write(b.ct_slice(instance=2), root / "ct" / "2")
    b.truncate(b.write(b.ct_slice(series_key="cut"), root / "cut.dcm"), drop_bytes=4)
    b.write_text(root / "README.txt")
    return root


def test_index_json(tmp_path, capsys):
    root = _folder(tmp_path)
    assert main(["index", str(root), "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["n_non_dicom"] == 1
    series = {s["kind"]: s for s in data["series"]}
    assert set(series) == {"planar_whole_body", "ct"}
    wb = series["planar_whole_body"]
    assert wb["files"] == [str(root / "wb.dcm")]
    assert wb["views"] == {"anterior": [[0, 0], [0, 1]], "posterior": [[0, 2], [0, 3]]}
    assert wb["view_rule"] == "ViewCodeSequence"
    assert wb["radionuclide"] == "In-111"
    assert wb["hours_post_injection"] == 24.0
    assert wb["n_images"] == 4
    assert wb["modality"] == "NM"
    assert wb["study_instance_uid"] == b.uid("study")
    assert wb["kind_reason"] == "NM WHOLE BODY planar acquisition"
    assert sorted(series["ct"]["files"]) == [str(root / "ct" / "1"), str(root / "ct" / "2")]
    assert data["skipped"] == [
        {
            "path": str(root / "cut.dcm"),
            "code": "truncated",
            "reason": "Pixel Data declares 32 bytes but only 28 remain in the file",
        }
    ]
    assert b.PATIENT_ID not in out
    assert "Doe" not in out


def test_index_table(tmp_path, capsys):
    root = _folder(tmp_path)
    assert main(["index", str(root)]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:5] == ["study", "series", "kind", "modality", "manufacturer"]
    wb_row = next(line for line in out.splitlines() if "planar_whole_body" in line)
    assert "anterior x2, posterior x2" in wb_row
    assert "In-111" in wb_row and "24.0" in wb_row
    assert "[truncated]" in out
    assert "1 study, 2 series, 1 skipped file(s), 1 non-DICOM file(s), 5 file(s) seen" in out
    assert b.PATIENT_ID not in out and "Doe" not in out


def test_index_missing_folder_exits_1(tmp_path, capsys):
    assert main(["index", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert "[not_found]" in err and "folder not found" in err


def test_index_empty_folder(tmp_path, capsys):
    assert main(["index", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["series"] == [] and data["skipped"] == [] and data["n_non_dicom"] == 0
