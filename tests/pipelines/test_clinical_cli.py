"""Clinical criteria end to end: ``score --clinical``, ``run --clinical`` (resume),
``criteria check`` and ``config show`` on a phantom planar study."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from octoscan.imaging.discovery import discover
from octoscan.imaging.errors import InvalidInputError
from octoscan.models.config import load_config
from octoscan.models.criteria import NO_RECORD_REASON
from octoscan.pipelines import clinical_io
from octoscan.pipelines import study as study_module
from octoscan.pipelines.batch import run_batch
from octoscan.pipelines.cli import main
from octoscan.pipelines.clinical_io import check_clinical_file, read_clinical_file
from octoscan.pipelines.identity import study_key
from octoscan.pipelines.result_json import validate_result
from octoscan.pipelines.resume import options_hash
from octoscan.pipelines.study import StudyOptions, score_series

PASSING = {
    "ki67_percent": "12",
    "creatinine_umol_l": "80",
    "age_years": "60",
    "sex": "F",
    "weight_kg": "70",
    "hemoglobin_mmol_l": "8.1",
    "wbc_10e9_l": "5.5",
    "platelets_10e9_l": "230",
    "bilirubin_x_uln": "0.6",
    "albumin_g_l": "41",
    "ecog": "1",
    "prior_treatment_lines": "2",
}


def _write_csv(path: Path, key: str, key_value: str, values: dict[str, str]) -> Path:
    columns = [key, *values]
    path.write_text(",".join(columns) + "\n" + ",".join([key_value, *values.values()]) + "\n")
    return path


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """A planar phantom with one large, clearly avid liver lesion, and its imaging-only result."""
    root = tmp_path_factory.mktemp("clinical")
    folder = root / "study"
    assert (
        main(
            ["phantom", str(folder), "--seed", "3", "--kind", "planar", "--lesions", "liver:40:5.0"]
        )
        == 0
    )
    truth = json.loads((folder / "truth.json").read_text())
    assert main(["score", str(folder), "--out", str(root / "imaging")]) == 0
    imaging = json.loads((root / "imaging" / "result.json").read_text())
    assert imaging["decision"]["criteria"] == []
    return folder, truth, imaging["decision"]["status"]


def _score(folder: Path, out: Path, clinical: Path, *extra: str) -> dict:
    assert main(["score", str(folder), "--out", str(out), "--clinical", str(clinical), *extra]) == 0
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    return result


def test_score_with_a_review_band_value_writes_the_audit_trail(phantom, tmp_path):
    folder, truth, imaging_status = phantom
    assert imaging_status == "eligible", "a 40 mm lesion at 5 x liver should be eligible"
    csv = _write_csv(
        tmp_path / "clinical.csv",
        "study_instance_uid",
        truth["study_instance_uid"],
        {**PASSING, "ki67_percent": "45"},
    )
    result = _score(folder, tmp_path / "out", csv)
    decision = result["decision"]
    assert decision["imaging_status"] == "eligible"
    assert decision["status"] == "needs_review"
    assert (
        "ki67: Ki-67 45 % is in the review band (pass < 40; review 40-50; fail > 50)"
        in (decision["reasons"])
    )
    assert not any("not assessed" in r for r in decision["reasons"])
    by_name = {c["name"]: c for c in decision["criteria"]}
    assert list(by_name) == [
        "ki67",
        "creatinine",
        "creatinine_clearance",
        "hemoglobin",
        "wbc",
        "platelets",
        "bilirubin",
        "albumin",
        "performance",
        "prior_treatment",
    ]
    ki67 = by_name["ki67"]
    assert (ki67["verdict"], ki67["value"], ki67["unit"]) == ("review", 45.0, "%")
    assert ki67["limit"] == "pass < 40; review 40-50; fail > 50"
    assert ki67["source"] == "Oslo University Hospital PRRT page: Ki-67 below 40-50 %"
    # Cockcroft-Gault: 80 x 70 x 0.85 = 4760; 72 x 80 / 88.4 = 65.158; 4760 / 65.158 = 73.05
    crcl = by_name["creatinine_clearance"]
    assert crcl["verdict"] == "pass" and crcl["value"] == pytest.approx(73.0528, abs=1e-3)
    # 8.1 mmol/L = 13.05 g/dL; 41 g/L = 4.1 g/dL; ECOG 1 = Karnofsky 70-80
    assert by_name["hemoglobin"]["value"] == pytest.approx(13.0519, abs=1e-3)
    assert by_name["albumin"]["value"] == pytest.approx(4.1)
    assert by_name["performance"]["value"] == "70-80"
    assert {c["verdict"] for n, c in by_name.items() if n != "ki67"} == {"pass"}
    assert "NETTER-1" in by_name["platelets"]["source"]
    provenance = result["provenance"]["clinical"]
    assert provenance == {
        "file_sha256": hashlib.sha256(csv.read_bytes()).hexdigest(),
        "matched_by": "study_instance_uid",
        "row": "line 2",
    }


def test_score_by_patient_id_with_a_failed_criterion(phantom, tmp_path):
    folder, truth, _ = phantom
    path = tmp_path / "clinical.json"
    path.write_text(json.dumps([{"patient_id": truth["patient_id"], "ki67_percent": 25}]))
    result = _score(folder, tmp_path / "out", path, "--config", "netter1")
    decision = result["decision"]
    assert decision["status"] == "not_eligible" and decision["rule_set"] == "netter1"
    assert "ki67: Ki-67 25 % fails (> 20 %)" in decision["reasons"]
    assert decision["reasons"][-1] == (
        "not assessed: creatinine, creatinine_clearance, hemoglobin, wbc, platelets, bilirubin, "
        "albumin, performance; the decision covers imaging and the assessed criteria only"
    )
    assert result["provenance"]["clinical"]["matched_by"] == "patient_id"
    text = (tmp_path / "out" / "result.json").read_text()
    assert truth["patient_id"] not in text


def test_a_study_without_a_row_is_not_assessed_and_keeps_its_imaging_status(phantom, tmp_path):
    folder, _, imaging_status = phantom
    csv = _write_csv(tmp_path / "other.csv", "study_instance_uid", "1.2.3.4", PASSING)
    result = _score(folder, tmp_path / "out", csv, "--config", "erasmus")
    decision = result["decision"]
    assert decision["status"] == imaging_status
    assert {c["verdict"] for c in decision["criteria"]} == {"not_assessed"}
    assert {c["reason"] for c in decision["criteria"]} == {NO_RECORD_REASON}
    assert decision["reasons"][-1].endswith(
        "the decision covers imaging and the assessed criteria only"
    )
    assert result["provenance"]["clinical"]["matched_by"] is None


def test_score_with_an_invalid_clinical_file_fails_before_scoring(phantom, tmp_path, capsys):
    folder, truth, _ = phantom
    bad = _write_csv(
        tmp_path / "bad.csv",
        "study_instance_uid",
        truth["study_instance_uid"],
        {"hemoglobin_g_dl": "120"},
    )
    assert main(["score", str(folder), "--out", str(tmp_path / "out"), "--clinical", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "[invalid_clinical]" in err
    assert "line 2, hemoglobin_g_dl: 120 g/dL is not plausible; it looks like g/L" in err
    assert not (tmp_path / "out" / "result.json").exists()
    assert main(["score", str(folder), "--clinical", str(tmp_path / "absent.csv")]) == 1
    assert "clinical file not found" in capsys.readouterr().err


def test_rescoring_must_reproduce_the_scorers_decision(phantom, tmp_path):
    folder, truth, _ = phantom
    (series,) = discover(folder).studies().values()
    config = load_config()
    outcome = score_series(series, config, StudyOptions())
    csv = _write_csv(tmp_path / "c.csv", "study_instance_uid", truth["study_instance_uid"], PASSING)
    table = read_clinical_file(csv)
    tampered = dataclasses.replace(
        outcome.planar,
        decision=dataclasses.replace(
            outcome.planar.decision, status="needs_review", reasons=("x",)
        ),
    )
    with pytest.raises(RuntimeError, match=r"does not reproduce the planar scorer's decision"):
        study_module._apply_clinical(
            tampered, config, table, study_instance_uid=truth["study_instance_uid"], patient_id=None
        )


# --------------------------------------------------------------------------- batch and resume


def test_options_hash_follows_the_clinical_file_and_keeps_old_hashes(tmp_path):
    key = b"k"
    legacy = json.dumps(
        {
            "assume_sstr": False,
            "show_phi": False,
            "pseudonym_key_check": hmac.new(
                key, b"octoscan manifest pseudonym-key check", hashlib.sha256
            ).hexdigest(),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    assert (
        options_hash(StudyOptions(pseudonym_key=key)) == hashlib.sha256(legacy.encode()).hexdigest()
    )
    a = read_clinical_file(
        _write_csv(tmp_path / "a.csv", "patient_id", "P1", {"ki67_percent": "5"})
    )
    b = read_clinical_file(
        _write_csv(tmp_path / "b.csv", "patient_id", "P1", {"ki67_percent": "6"})
    )
    hashes = {options_hash(StudyOptions(pseudonym_key=key, clinical=t)) for t in (None, a, b)}
    assert len(hashes) == 3


def test_batch_with_clinical_file_redoes_studies_when_the_file_changes(phantom, tmp_path):
    folder, truth, _ = phantom
    uid = truth["study_instance_uid"]
    out = tmp_path / "out"
    config = load_config("netter1")
    first = _write_csv(tmp_path / "c1.csv", "study_instance_uid", uid, PASSING)
    options = StudyOptions(pseudonym_key=b"k", clinical=read_clinical_file(first))
    summary = run_batch(folder, out, config=config, options=options, workers=1)
    assert (summary.n_ok, summary.n_scored) == (1, 1)
    result = json.loads((out / study_key(uid) / "result.json").read_text())
    assert {c["verdict"] for c in result["decision"]["criteria"]} == {"pass"}
    again = run_batch(folder, out, config=config, options=options, workers=1)
    assert again.n_unchanged == 1
    second = _write_csv(
        tmp_path / "c2.csv", "study_instance_uid", uid, {**PASSING, "wbc_10e9_l": "1.5"}
    )
    options = dataclasses.replace(options, clinical=read_clinical_file(second))
    changed = run_batch(folder, out, config=config, options=options, workers=1)
    assert (changed.n_scored, changed.n_unchanged) == (1, 0)
    result = json.loads((out / study_key(uid) / "result.json").read_text())
    assert result["decision"]["status"] == "not_eligible"
    assert "wbc: white blood cells 1.5 10^9/L fails (< 2 10^9/L)" in result["decision"]["reasons"]


def test_run_with_an_invalid_clinical_file_is_a_usage_error(phantom, tmp_path, capsys):
    folder, _, _ = phantom
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,colour\nP1,blue\n")
    assert main(["run", str(folder), "--out", str(tmp_path / "out"), "--clinical", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "octoscan run: error [invalid_clinical]" in err
    assert "header, colour: unknown column" in err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- criteria check


def test_criteria_check_reports_bad_rows_with_row_and_field(tmp_path, capsys):
    path = tmp_path / "lab.csv"
    path.write_text(
        "study_instance_uid,patient_id,ki67_percent,hemoglobin_g_dl,karnofsky\n"
        "1.2.3,,45,12.0,70\n"
        "1.2.4,,10,120,80\n"
        ",SECRET-7,10,11.0,65\n"
    )
    assert main(["criteria", "check", str(path)]) == 1
    captured = capsys.readouterr()
    assert f"line 2 (study {study_key('1.2.3')}): clinical review" in captured.out
    assert "  ki67                   review        Ki-67 45 % is in the review band" in captured.out
    assert "  creatinine             not_assessed  no creatinine_umol_l in the clinical record" in (
        captured.out
    )
    assert "3 row(s), 1 valid, 2 with problems" in captured.out
    assert (
        f"{path}: line 3, hemoglobin_g_dl: 120 g/dL is not plausible; it looks like g/L"
        in captured.err
    )
    assert "line 4, karnofsky: 65: the Karnofsky scale goes in steps of 10" in captured.err
    assert "SECRET-7" not in captured.out + captured.err
    assert "1.2.3 " not in captured.out


def test_criteria_check_of_a_valid_file_exits_0(tmp_path, capsys):
    path = tmp_path / "lab.json"
    path.write_text(json.dumps([{"patient_id": "P1", "ki67_percent": 25, "ecog": 2}]))
    assert main(["criteria", "check", str(path), "--config", "erasmus"]) == 0
    out = capsys.readouterr().out
    assert "rule set erasmus (package:erasmus)" in out
    assert "item 1 (patient row): clinical fail (pass 0, review 1, fail 1, not assessed 8)" in out
    assert (
        "  performance            review        performance status Karnofsky 50-60 (ECOG 2)" in out
    )
    assert "  life_expectancy        not_assessed  life expectancy is not a column" in out


def test_criteria_check_errors(tmp_path, capsys):
    assert main(["criteria", "check", str(tmp_path / "absent.csv")]) == 1
    assert "clinical file not found" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    assert main(["criteria", "check", str(broken)]) == 1
    assert "[invalid_clinical]" in capsys.readouterr().err
    ok = tmp_path / "ok.csv"
    ok.write_text("patient_id,ki67_percent\nP1,5\n")
    assert main(["criteria", "check", str(ok), "--config", "nonexistent"]) == 2
    assert "no shipped rule set named 'nonexistent'" in capsys.readouterr().err
    assert check_clinical_file(ok).valid


def test_config_show_lists_the_criteria(capsys):
    assert main(["config", "show", "erasmus"]) == 0
    out = capsys.readouterr().out
    assert "# clinical criteria of rule set erasmus (a missing value is not assessed):" in out
    assert "#   creatinine             pass < 150; fail >= 150 [umol/L]" in out
    assert (
        "#                          source: Erasmus MC PRRT centre inclusion: "
        "creatinine < 150 umol/L" in out
    )
    assert "#   prior_treatment        (not part of this rule set)" in out
    assert "#   life_expectancy        pass > 3; fail <= 3 [months]" in out
    assert main(["config", "show"]) == 0
    assert (
        "#   ki67                   pass < 40; review 40-50; fail > 50 [%]"
        in capsys.readouterr().out
    )


def test_clinical_file_reader_errors_and_format_sniffing(tmp_path, monkeypatch):
    odd = tmp_path / "lab.dat"
    odd.write_text('[{"patient_id": "P1", "ki67_percent": 4}]')
    (record,) = read_clinical_file(odd).records
    assert (record.row, record.ki67_percent) == ("item 1", 4.0)
    monkeypatch.setattr(clinical_io, "MAX_CLINICAL_BYTES", 10)
    size = odd.stat().st_size
    with pytest.raises(InvalidInputError, match=rf"file of {size} bytes; expected at most 10"):
        read_clinical_file(odd)
    monkeypatch.setattr(clinical_io, "MAX_CLINICAL_BYTES", 1 << 20)

    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(InvalidInputError, match=r"clinical file unreadable: Permission denied"):
        check_clinical_file(odd)
