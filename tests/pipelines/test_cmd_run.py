"""``octoscan run``: exit codes, usage errors, logging and the default output folder."""

from __future__ import annotations

import json
import logging
import shutil
import socket

import pytest

from octoscan.imaging.errors import InvalidInputError
from octoscan.pipelines.cli import main
from octoscan.pipelines.executors import DASK_UNAVAILABLE, DaskExecutor
from octoscan.pipelines.identity import KEY_ENV, study_key
from tests.pipelines.batch_inputs import (
    PSEUDONYM_KEY,
    cached_batch_input,
    hash_tree,
    write_tomo_only_study,
)


@pytest.fixture(scope="module")
def batch_input(tmp_path_factory):
    return cached_batch_input(tmp_path_factory.getbasetemp(), "batch-main")


@pytest.fixture()
def small_input(batch_input, tmp_path):
    """One scorable study, one unscorable (raw TOMO only) study and the two broken files."""
    root = tmp_path / "in"
    shutil.copytree(batch_input.root / "study_21", root / "study_21")
    shutil.copytree(batch_input.root / "broken", root / "broken")
    source = next((root / "study_21").rglob("*.dcm"))
    failing = write_tomo_only_study(source, root / "tomo" / "T1.dcm", seed=5)
    return root, study_key(batch_input.study_uids[0]), study_key(failing)


@pytest.fixture(autouse=True)
def _pseudonym_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, PSEUDONYM_KEY)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_all_ok_exits_0_and_logs_one_line_per_study(batch_input, tmp_path, capsys, caplog):
    root = tmp_path / "in"
    shutil.copytree(batch_input.root / "study_21", root / "study_21")
    shutil.copytree(batch_input.root / "broken", root / "broken")
    out = tmp_path / "out"
    key = study_key(batch_input.study_uids[0])
    with caplog.at_level(logging.DEBUG, logger="octoscan"):
        rc = main(["-vv", "run", str(root), "--out", str(out), "--workers", "1"])
    assert rc == 0  # broken files are reported, they are not failed studies
    captured = capsys.readouterr()
    assert "1 studies: 1 ok, 0 failed (1 processed, 0 unchanged" in captured.out
    assert "skipped files: 2" in captured.out
    assert "1/1 studies  ok 1  failed 0" in captured.err  # the progress line (not a TTY)
    study_lines = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.INFO and r.getMessage().startswith("study ")
    ]
    assert len(study_lines) == 1
    assert study_lines[0].startswith(f"study {key} ok ")
    assert study_lines[0].endswith(" s")
    assert "batch done: 1 ok, 0 failed" in caplog.text
    for phi in ("PHANTOM^", "PHANTOM-21", "19610101"):
        assert phi not in caplog.text and phi not in captured.out and phi not in captured.err
    result = json.loads((out / key / "result.json").read_text())
    assert "patient_id" not in result


def test_a_failed_study_exits_1_and_is_listed(small_input, tmp_path, capsys):
    root, ok_key, failed_key = small_input
    before = hash_tree(root)
    out = tmp_path / "out"
    rc = main(["run", str(root), "--out", str(out), "--workers", "1", "--no-progress"])
    assert rc == 1
    captured = capsys.readouterr()
    assert "2 studies: 1 ok, 1 failed" in captured.out
    assert f"FAILED {failed_key} [no_usable_series]" in captured.out
    assert captured.err == ""  # --no-progress, no -v: nothing on stderr
    failed = json.loads((out / "failed.json").read_text())
    assert [f["study_key"] for f in failed["failed_studies"]] == [failed_key]
    assert len(failed["skipped_files"]) == 2
    assert (out / ok_key / "result.json").is_file()
    assert hash_tree(root) == before
    # a re-run reuses both (the failure is deterministic), --no-resume redoes both
    assert main(["run", str(root), "--out", str(out), "--workers", "1", "--no-progress"]) == 1
    assert "(0 processed, 2 unchanged" in capsys.readouterr().out
    assert (
        main(
            ["run", str(root), "--out", str(out), "--workers", "1", "--no-progress", "--no-resume"]
        )
        == 1
    )
    assert "(2 processed, 0 unchanged" in capsys.readouterr().out


def test_show_phi_puts_the_patient_id_in_results(small_input, tmp_path, capsys):
    root, ok_key, _ = small_input
    out = tmp_path / "out"
    assert (
        main(["run", str(root), "--out", str(out), "--workers", "1", "--no-progress", "--show-phi"])
        == 1
    )
    result = json.loads((out / ok_key / "result.json").read_text())
    assert result["patient_id"] == "PHANTOM-21"
    rows = (out / "results.csv").read_text().splitlines()
    header = rows[0].split(",")
    ok_row = next(r for r in rows if r.startswith(ok_key)).split(",")
    assert ok_row[header.index("patient_id")] == "PHANTOM-21"
    capsys.readouterr()
    # without --show-phi the same study is redone (options changed) and the ID is gone
    assert main(["run", str(root), "--out", str(out), "--workers", "1", "--no-progress"]) == 1
    assert "(2 processed, 0 unchanged" in capsys.readouterr().out
    assert b"PHANTOM-21" not in (out / ok_key / "result.json").read_bytes()
    assert b"PHANTOM-21" not in (out / "results.csv").read_bytes()


def test_default_output_folder(batch_input, tmp_path, monkeypatch, capsys):
    root = tmp_path / "in"
    shutil.copytree(batch_input.root / "study_21", root / "study_21")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["run", str(root), "--workers", "1", "--no-progress"]) == 0
    key = study_key(batch_input.study_uids[0])
    assert (work / "octoscan-out" / key / "result.json").is_file()
    assert (work / "octoscan-out" / "results.csv").is_file()
    capsys.readouterr()


def test_out_inside_input_exits_2_and_writes_nothing(small_input, capsys):
    root, _, _ = small_input
    before = hash_tree(root)
    assert main(["run", str(root), "--out", str(root / "results")]) == 2
    err = capsys.readouterr().err
    assert "error [invalid_option]" in err and "is inside INPUT" in err
    assert main(["run", str(root), "--out", str(root)]) == 2
    assert "is inside INPUT" in capsys.readouterr().err
    assert hash_tree(root) == before
    assert not (root / "results").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers", "0"], "argument --workers: 0: expected 1 or more"),
        (["--workers", "two"], "argument --workers: 'two' is not a whole number"),
        (["--workers", "2", "--dask", "tcp://127.0.0.1:1"], "--workers and --dask exclude"),
        (["--config", "/nonexistent/rules.toml"], "configuration error"),
    ],
)
def test_usage_and_config_errors_exit_2(small_input, tmp_path, capsys, argv, message):
    root, _, _ = small_input
    out = tmp_path / "out"
    assert main(["run", str(root), "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_input_exits_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "error [not_found]" in err and "INPUT is not a folder" in err
    assert not (tmp_path / "out").exists()


def test_unreachable_dask_scheduler(small_input, tmp_path, capsys, monkeypatch):
    port = _free_port()  # nothing listens there
    with pytest.raises(InvalidInputError, match="cannot connect to the Dask scheduler") as exc:
        DaskExecutor(f"tcp://127.0.0.1:{port}", timeout_s=1.0)
    assert exc.value.code == DASK_UNAVAILABLE
    # the command maps it to a usage error, before writing anything
    root, _, _ = small_input
    original = DaskExecutor.__init__

    def quick(self, address, *, timeout_s=20.0):
        original(self, address, timeout_s=1.0)

    monkeypatch.setattr(DaskExecutor, "__init__", quick)
    out = tmp_path / "out"
    assert main(["run", str(root), "--out", str(out), "--dask", f"tcp://127.0.0.1:{port}"]) == 2
    assert f"error [{DASK_UNAVAILABLE}]" in capsys.readouterr().err
    assert not out.exists()
