"""``octoscan phantom``, ``phantom-cohort`` and ``demo``: files, truth.json, grades, decision,
errors, and no patient identifiers on the console."""

import json
import shutil
from pathlib import Path

import pytest

from octoscan.imaging.phantom.study import StudySpec, simulate_study
from octoscan.imaging.phantom.study import describe_study as describe
from octoscan.models.config import load_config
from octoscan.models.krenning import grade_from_ratios
from octoscan.pipelines.cli import main
from octoscan.pipelines.phantom_truth import borderline_reasons, compose_truth


@pytest.fixture(scope="module")
def phantom_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "study"
    code = main(
        [
            "phantom",
            str(out),
            "--seed",
            "21",
            "--kind",
            "all",
            "--ct-slices",
            "4",
            "--lesions",
            "liver:50:30,lymph_node:25:0.3,pancreas:20:8,liver:20:0.95",
            "--counts",
            "1e6",
            "--variant",
            "summed-windows",
        ]
    )
    assert code == 0
    return out


def test_phantom_writes_series_and_truth(phantom_out):
    truth = json.loads((phantom_out / "truth.json").read_text())
    assert sorted(p.name for p in phantom_out.iterdir()) == [
        "CT",
        "NM_SPECT",
        "NM_WB_24H",
        "truth.json",
    ]
    assert len(list((phantom_out / "CT").glob("*.dcm"))) == 4
    assert truth["grading"]["config"] == "default"
    assert truth["grading"]["thresholds"]["grade3_min_ratio_liver"] == 1.0
    assert truth["variants"] == ["summed-windows"]
    assert truth["count_level"] == 1e6
    hot, node, pancreas, iso = truth["lesions"]
    assert hot["true_grade"] == 4 and hot["apparent_grade"] == 4 and hot["visible"]
    assert node["true_grade"] == 1 and node["apparent_ratio_liver"] < 0.5
    assert node["apparent_grade"] in (0, 1)
    assert pancreas["true_grade"] == 4 and pancreas["apparent_grade"] < 4
    # ratio 0.95 to liver: within 10 % of the grade-3 threshold
    assert (
        iso["borderline"]
        and "true ratio to liver 0.95 within 10 % of 1" in iso["borderline_reasons"]
    )
    assert iso["apparent_grade"] == 0 and not iso["visible"]
    planar = truth["expected_decision"]["planar"]
    assert planar["status"] in ("eligible", "not_eligible", "needs_review")
    assert truth["expected_decision"]["true"]["n_lesions_considered"] == 4
    assert planar["n_lesions_considered"] == sum(les["visible"] for les in truth["lesions"])


def test_truth_grades_use_the_models_rule(phantom_out):
    truth = json.loads((phantom_out / "truth.json").read_text())
    thr = load_config("default").krenning
    for les in truth["lesions"]:
        assert les["true_grade"] == grade_from_ratios(
            les["true_ratio_liver"], les["true_ratio_spleen"], thr
        )
        assert les["apparent_grade"] == grade_from_ratios(
            les["apparent_ratio_liver"], les["apparent_ratio_spleen"], thr, visible=les["visible"]
        )


def test_console_and_logs_carry_no_patient_identifiers(tmp_path, capsys):
    assert (
        main(
            [
                "phantom",
                str(tmp_path / "s"),
                "--seed",
                "77",
                "--kind",
                "planar",
                "--lesions",
                "1",
                "--counts",
                "2e5",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    assert "PHANTOM^77" not in out.out + out.err and "PHANTOM-77" not in out.out + out.err
    assert "phantom study seed 77" in out.out
    raw = (tmp_path / "s" / "NM_WB_24H" / "NM0001.dcm").read_bytes()
    assert b"PHANTOM^77" in raw  # the fake identity is in the DICOM for PHI-leak tests


def test_expected_decision_cases():
    cfg = load_config("default")
    none = compose_truth(describe(simulate_study(StudySpec(seed=5, kind="planar", lesions=0))), cfg)
    assert none["expected_decision"]["planar"]["status"] == "not_eligible"
    assert not none["expected_decision"]["planar"]["review_justified"]
    diffuse = compose_truth(
        describe(simulate_study(StudySpec(seed=5, kind="planar", lesions=2, diffuse_liver=True))),
        cfg,
    )
    assert diffuse["diffuse_liver_involvement"]
    assert diffuse["expected_decision"]["planar"]["review_justified"]
    spl = compose_truth(
        describe(simulate_study(StudySpec(seed=6, kind="planar", lesions=2, splenectomy=True))),
        cfg,
    )
    assert spl["grading"]["grade4_reference"] == "kidney"
    assert all(les["true_ratio_spleen"] is None for les in spl["lesions"])
    assert "kidney" in spl["planar"][0]["references"]


def test_borderline_reasons():
    thr = load_config("default").krenning
    assert borderline_reasons(0.52, 0.1, thr, what="true") == [
        "true ratio to liver 0.52 within 10 % of 0.5"
    ]
    assert borderline_reasons(3.0, 1.08, thr, what="apparent") == [
        "apparent ratio to spleen/kidney 1.08 within 10 % of 1"
    ]
    assert borderline_reasons(0.7, None, thr, what="true") == []


def test_phantom_refuses_a_non_empty_folder_and_overwrites_its_own(tmp_path, capsys):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    assert main(["phantom", str(target), "--kind", "planar", "--lesions", "0"]) == 1
    assert "OUT_DIR is not empty" in capsys.readouterr().err
    assert main(["phantom", str(target), "--kind", "planar", "--overwrite"]) == 1
    assert "no truth.json here" in capsys.readouterr().err
    assert (target / "notes.txt").read_text() == "keep me"
    own = tmp_path / "own"
    args = ["phantom", str(own), "--kind", "planar", "--lesions", "0", "--counts", "1e5"]
    assert main(args) == 0
    assert main(args) == 1
    assert main([*args, "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lesions", "liver-20"], "not SITE:DIAMETER_MM:RATIO_LIVER"),
        (["--lesions", "spleen:20:2"], "lesion site 'spleen' unknown"),
        (["--variant", "upside-down"], "unknown variant"),
        (["--hours", "4,x"], "--hours '4,x': expected numbers"),
        (["--counts", "5"], "counts 5 outside"),
    ],
)
def test_phantom_bad_options_are_input_errors(tmp_path, capsys, args, message):
    assert main(["phantom", str(tmp_path / "x"), "--kind", "planar", *args]) == 1
    assert message in capsys.readouterr().err


def test_unknown_config_is_a_config_error(tmp_path, capsys):
    assert main(["phantom", str(tmp_path / "x"), "--config", "no-such-rules"]) == 2
    assert "configuration error" in capsys.readouterr().err


def test_phantom_cohort_writes_studies_and_index(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert (
        main(
            [
                "phantom-cohort",
                str(out),
                "-n",
                "2",
                "--seed",
                "3",
                "--kind",
                "planar",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    index = json.loads((out / "cohort.json").read_text())
    assert [s["name"] for s in index["studies"]] == ["study_000", "study_001"]
    assert [s["edge_case"] for s in index["studies"]] == ["standard", "splenectomy"]
    for s in index["studies"]:
        truth = json.loads((out / s["name"] / "truth.json").read_text())
        assert truth["seed"] == s["seed"] and truth["study_instance_uid"] == s["study_instance_uid"]
    assert "phantom cohort: 2 studies" in capsys.readouterr().out


def test_demo_writes_scores_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", str(out), "--ct-slices", "2"]) == 0
    text = capsys.readouterr().out
    assert "index: 3 series" in text
    assert "anterior" in text and "posterior" in text and "view by ViewCodeSequence" in text
    assert "truth: 5 lesion(s)" in text and "expected decision" in text
    assert "PHANTOM^" not in text
    assert (out / "study" / "truth.json").is_file()
    truth = json.loads((out / "study" / "truth.json").read_text())
    results = sorted((out / "results").glob("*/result.json"))
    assert len(results) == 1
    result = json.loads(results[0].read_text())
    assert result["study_instance_uid"] == truth["study_instance_uid"]
    assert f"decision: {result['decision']['status'].upper()}" in text
    report = out / "results" / "index.html"
    assert report.is_file() and f"report: {report}" in text
    # --overwrite replaces an earlier demo; without it a second run is refused
    assert main(["demo", str(out), "--ct-slices", "2"]) == 1
    assert main(["demo", str(out), "--ct-slices", "2", "--overwrite"]) == 0


def test_demo_in_a_temporary_folder(capsys):
    assert main(["demo", "--ct-slices", "1"]) == 0
    text = capsys.readouterr().out
    assert "demo study written to" in text
    report = Path(text.rsplit("report: ", 1)[1].strip())
    assert report.is_file()
    shutil.rmtree(report.parents[1])
