"""The batch pipeline (run_batch), its executors and its progress display."""

from __future__ import annotations

import csv
import fcntl
import functools
import io
import json
import operator
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest

from octoscan.imaging.errors import InvalidInputError
from octoscan.models.config import config_hash, load_config
from octoscan.pipelines import batch as batch_module
from octoscan.pipelines.atomic import TEMP_PREFIX
from octoscan.pipelines.batch import (
    LOCK_NAME,
    STUDY_KEY_COLLISION,
    BatchSetupError,
    check_batch_paths,
    run_batch,
)
from octoscan.pipelines.executors import (
    LocalProcessExecutor,
    SerialExecutor,
    WorkerCrashedError,
    make_executor,
)
from octoscan.pipelines.identity import study_key
from octoscan.pipelines.outputs import LESIONS_COLUMNS, RESULTS_COLUMNS
from octoscan.pipelines.progress import Progress, format_duration
from octoscan.pipelines.result_json import validate_result
from octoscan.pipelines.resume import MANIFEST_NAME
from octoscan.pipelines.study import StudyOptions, StudyOutcome
from tests.pipelines.batch_inputs import (
    PSEUDONYM_KEY,
    cached_batch_input,
    hash_tree,
    write_tomo_only_study,
)

OPTIONS = StudyOptions(pseudonym_key=PSEUDONYM_KEY.encode())


@pytest.fixture(scope="module")
def config():
    return load_config("default")


@pytest.fixture(scope="module")
def batch_input(tmp_path_factory):
    return cached_batch_input(tmp_path_factory.getbasetemp(), "batch-main")


@pytest.fixture(scope="module")
def first_run(batch_input, config, tmp_path_factory):
    """One batch over the shared input with a local pool of 2 processes."""
    before = hash_tree(batch_input.root)
    out = tmp_path_factory.mktemp("batch-first") / "out"
    summary = run_batch(batch_input.root, out, config=config, options=OPTIONS, workers=2)
    return summary, out, before


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _copy_studies(batch_input, target: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        shutil.copytree(batch_input.root / name, target / name)
    return target


# --------------------------------------------------------------------------- a full batch


def test_batch_scores_every_study(first_run, batch_input):
    summary, out, _ = first_run
    keys = sorted(study_key(uid) for uid in batch_input.study_uids)
    assert summary.n_studies == 5
    assert (summary.n_ok, summary.n_failed, summary.n_unchanged, summary.n_scored) == (5, 0, 0, 5)
    assert summary.exit_code == 0
    assert [r.study_key for r in summary.records] == keys
    assert summary.executor == "local processes (2 worker(s))"
    assert all(r.seconds > 0 and r.cpu_seconds > 0 for r in summary.records)
    for uid in batch_input.study_uids:
        key = study_key(uid)
        result = json.loads((out / key / "result.json").read_text())
        validate_result(result)
        assert result["study_key"] == key
        assert result["study_instance_uid"] == uid
        assert result["provenance"]["config_hash"] == config_hash(load_config("default"))
        manifest = json.loads((out / key / MANIFEST_NAME).read_text())
        assert manifest["status"] == "ok"
        assert manifest["inputs"]["n_files"] == 1
        assert manifest["inputs"]["n_bytes"] > 1_000_000
    # no DICOM value in any output path
    for path in out.rglob("*"):
        rel = path.relative_to(out).as_posix()
        assert not any(uid in rel for uid in batch_input.study_uids)
        assert "PHANTOM" not in rel


def test_batch_writes_overlays_and_the_review_report(first_run, batch_input):
    _, out, _ = first_run
    index = (out / "index.html").read_text()
    for uid in batch_input.study_uids:
        key = study_key(uid)
        pngs = sorted(p.name for p in (out / key).glob("overlay_*.png"))
        assert "overlay_summary.png" in pngs and "overlay_anterior.png" in pngs
        assert (out / key / "overlay_summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        page = (out / key / "report.html").read_text()
        assert "overlay_summary.png" in page
        assert f"{key}/report.html" in index
        dicom = sorted(p.name for p in (out / key / "dicom").glob("*.dcm"))
        assert len(dicom) >= 2, dicom  # at least the SR and the overlay Secondary Capture
        for path in (out / key / "dicom").glob("*.dcm"):
            ds = pydicom.dcmread(path)
            assert ds.StudyInstanceUID == uid
            assert ds.SeriesDescription.startswith("octoscan")
    assert MANIFEST_NAME not in index


def test_single_view_study_is_ok_with_a_view_warning(first_run, batch_input):
    summary, out, _ = first_run
    key = study_key(batch_input.single_view_uid)
    record = next(r for r in summary.records if r.study_key == key)
    assert record.status == "ok"
    result = json.loads((out / key / "result.json").read_text())
    assert result["provenance"]["views_used"] == ["anterior"]
    assert any("only the anterior view" in w for w in result["warnings"])
    assert record.results_row["views_used"] == "anterior"
    assert int(record.results_row["n_warnings"]) == len(result["warnings"]) >= 1
    # the others are conjugate-view studies without that warning
    for other in summary.records:
        if other.study_key != key:
            assert other.results_row["views_used"] == "anterior+posterior"


def test_corrupt_files_are_reported_with_codes(first_run):
    summary, out, _ = first_run
    failed = json.loads((out / "failed.json").read_text())
    assert failed["failed_studies"] == []
    assert [(f["path"], f["code"]) for f in failed["skipped_files"]] == [
        ("broken/not_dicom.dcm", "not_dicom"),
        ("broken/truncated.dcm", "truncated"),
    ]
    assert all(f["reason"] for f in failed["skipped_files"])
    assert summary.n_skipped_files == 2
    batch = json.loads((out / "batch.json").read_text())
    assert (batch["n_studies"], batch["n_ok"], batch["n_failed"], batch["n_skipped_files"]) == (
        5,
        5,
        0,
        2,
    )
    assert batch["study_keys"] == [r.study_key for r in summary.records]


def test_results_and_lesions_csv_match_result_files(first_run):
    _, out, _ = first_run
    rows = _csv(out / "results.csv")
    assert list(rows[0]) == list(RESULTS_COLUMNS)
    assert [r["study_key"] for r in rows] == sorted(r["study_key"] for r in rows)
    lesion_rows = _csv(out / "lesions.csv")
    assert list(lesion_rows[0]) == list(LESIONS_COLUMNS)
    n_lesions = 0
    for row in rows:
        result = json.loads((out / row["study_key"] / "result.json").read_text())
        grades = [les["grade"] for les in result["lesions"] if les["graded"]]
        assert row["status"] == "ok"
        assert row["decision"] == result["decision"]["status"]
        assert row["rule_set"] == "default"
        assert int(row["n_lesions"]) == len(result["lesions"])
        assert row["highest_grade"] == (str(max(grades)) if grades else "")
        assert row["lowest_grade"] == (str(min(grades)) if grades else "")
        assert float(row["liver_mean"]) == result["references"]["liver"]["mean"]
        assert row["error_code"] == ""
        mine = [r for r in lesion_rows if r["study_key"] == row["study_key"]]
        assert [int(r["lesion_id"]) for r in mine] == [les["id"] for les in result["lesions"]]
        for les, lrow in zip(result["lesions"], mine, strict=True):
            assert int(lrow["grade"]) == les["grade"]
            assert float(lrow["ratio_liver"]) == les["ratio_liver"]
            assert float(lrow["ratio_liver_ci_low"]) == les["ratio_liver_ci"][0]
            assert float(lrow["ratio_liver_ci_high"]) == les["ratio_liver_ci"][1]
            assert float(lrow["diameter_mm"]) == les["diameter_mm"]
            assert lrow["region"] == les["region"]
            assert lrow["borderline"] == ("true" if les["borderline"] else "false")
        n_lesions += len(result["lesions"])
    assert len(lesion_rows) == n_lesions > 0
    decisions = {r["decision"] for r in rows}
    assert decisions <= {"eligible", "not_eligible", "needs_review"}


def test_inputs_are_never_modified(first_run, batch_input):
    _, _, before = first_run
    assert hash_tree(batch_input.root) == before


def test_no_patient_identifier_in_outputs(first_run):
    """Non-DICOM outputs carry no PHI; DICOM results carry the source Patient module."""
    _, out, _ = first_run
    for path in out.rglob("*"):
        if path.parent.name == "dicom" and path.suffix == ".dcm":
            assert b"PHANTOM^" in path.read_bytes()  # by design, unless --pseudonymise
            continue
        if path.is_file() and path.name != ".octoscan-pseudonym-key":
            data = path.read_bytes()
            for phi in (b"PHANTOM^", b"PHANTOM-", b"19610101"):
                assert phi not in data, (path, phi)


# --------------------------------------------------------------------------- resume


def test_second_run_does_no_scoring_work(first_run, batch_input, config, tmp_path, monkeypatch):
    _, out_first, _ = first_run
    out = tmp_path / "out"
    shutil.copytree(out_first, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (out / f"{TEMP_PREFIX}abc").write_bytes(b"partial")
    some_key = next(p for p in out.iterdir() if p.is_dir()).name
    (out / some_key / f"{TEMP_PREFIX}result").write_bytes(b"{ partial")

    def no_scoring(*args, **kwargs):
        raise AssertionError("a study was scored although its outputs are complete")

    monkeypatch.setattr(batch_module, "process_study", no_scoring)
    summary = run_batch(
        batch_input.root, out, config=config, options=OPTIONS, executor=SerialExecutor()
    )
    assert (summary.n_unchanged, summary.n_scored, summary.n_ok) == (5, 0, 5)
    assert summary.executor == "nothing to process"
    assert all(r.reused for r in summary.records)
    assert summary.n_temp_removed == 2
    assert not list(out.rglob(f"{TEMP_PREFIX}*"))
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # every result, manifest and table is byte-identical


def test_config_change_redoes_studies(first_run, batch_input, tmp_path):
    _, out_first, _ = first_run
    out = tmp_path / "out"
    shutil.copytree(out_first, out)
    netter1 = load_config("netter1")
    summary = run_batch(batch_input.root, out, config=netter1, options=OPTIONS, workers=1)
    assert (summary.n_unchanged, summary.n_scored, summary.n_ok) == (0, 5, 5)
    for record in summary.records:
        result = json.loads((out / record.study_key / "result.json").read_text())
        assert result["decision"]["rule_set"] == "netter1"
        assert result["decision"]["uptake_rule"] == "not_significantly_below_liver"
        manifest = json.loads((out / record.study_key / MANIFEST_NAME).read_text())
        assert manifest["config_hash"] == config_hash(netter1)
    assert {r["rule_set"] for r in _csv(out / "results.csv")} == {"netter1"}
    again = run_batch(batch_input.root, out, config=netter1, options=OPTIONS, workers=1)
    assert (again.n_unchanged, again.n_scored) == (5, 0)
    # another pseudonym key changes patient_key: everything is redone
    other = run_batch(
        batch_input.root,
        out,
        config=netter1,
        options=StudyOptions(pseudonym_key=b"another key"),
        workers=1,
    )
    assert (other.n_unchanged, other.n_scored) == (0, 5)


def test_content_change_with_same_size_and_mtime_is_redone(batch_input, config, tmp_path):
    root = _copy_studies(batch_input, tmp_path / "in", ("study_21", "study_22"))
    out = tmp_path / "out"
    first = run_batch(root, out, config=config, options=OPTIONS, workers=1)
    assert (first.n_ok, first.n_scored) == (2, 2)
    target = next((root / "study_22").rglob("*.dcm"))
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[-2] ^= 0x01  # one bit of the last pixel: same size
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == st.st_size
    assert target.stat().st_mtime_ns == st.st_mtime_ns
    second = run_batch(root, out, config=config, options=OPTIONS, workers=1)
    changed = next(r for r in second.records if not r.reused)
    assert (second.n_unchanged, second.n_scored) == (1, 1)
    uid_22 = batch_input.study_uids[1]
    assert changed.study_key == study_key(uid_22)


def test_failed_study_is_recorded_and_reused(batch_input, config, tmp_path):
    root = _copy_studies(batch_input, tmp_path / "in", ("study_21",))
    source = next((root / "study_21").rglob("*.dcm"))
    failing_uid = write_tomo_only_study(source, root / "tomo" / "T1.dcm", seed=7)
    out = tmp_path / "out"
    summary = run_batch(root, out, config=config, options=OPTIONS, workers=1)
    assert (summary.n_ok, summary.n_failed, summary.exit_code) == (1, 1, 1)
    key = study_key(failing_uid)
    error = json.loads((out / key / "error.json").read_text())
    assert error["error_code"] == "no_usable_series"
    assert "tomo_projections" in error["error_reason"]
    assert not (out / key / "result.json").exists()
    failed = json.loads((out / "failed.json").read_text())
    assert [(f["study_key"], f["error_code"]) for f in failed["failed_studies"]] == [
        (key, "no_usable_series")
    ]
    row = next(r for r in _csv(out / "results.csv") if r["study_key"] == key)
    assert (row["status"], row["error_code"], row["decision"]) == ("failed", "no_usable_series", "")
    again = run_batch(root, out, config=config, options=OPTIONS, workers=1)
    assert (again.n_unchanged, again.n_failed, again.exit_code) == (2, 1, 1)
    assert next(r for r in again.records if r.study_key == key).error_code == "no_usable_series"


def test_internal_failure_is_retried_and_stale_result_removed(
    batch_input, config, tmp_path, monkeypatch
):
    root = _copy_studies(batch_input, tmp_path / "in", ("study_21",))
    out = tmp_path / "out"
    key = study_key(batch_input.study_uids[0])
    ok = run_batch(root, out, config=config, options=OPTIONS, workers=1)
    assert ok.n_ok == 1 and (out / key / "result.json").is_file()

    def broken(series, cfg, options):
        return StudyOutcome(
            study_instance_uid=series[0].study_instance_uid,
            study_key=key,
            status="failed",
            seconds=0.0,
            input_series_uids=(),
            error_code="internal",
            error_reason="RuntimeError: simulated bug",
        )

    monkeypatch.setattr(batch_module, "process_study", broken)
    # --no-resume: the study is redone, fails with a bug, loses its stale result
    failed = run_batch(root, out, config=config, options=OPTIONS, workers=1, resume=False)
    assert (failed.n_failed, failed.records[0].error_code) == (1, "internal")
    assert not (out / key / "result.json").exists()
    assert not (out / key / MANIFEST_NAME).exists()  # never reused
    monkeypatch.undo()
    retried = run_batch(root, out, config=config, options=OPTIONS, workers=1)
    assert (retried.n_ok, retried.n_unchanged, retried.n_scored) == (1, 0, 1)
    assert not (out / key / "error.json").exists()


def test_worker_exception_becomes_internal_failure(batch_input, config, tmp_path, monkeypatch):
    root = _copy_studies(batch_input, tmp_path / "in", ("study_21",))

    def explode(task):
        raise MemoryError("simulated")

    monkeypatch.setattr(batch_module, "run_study_task", explode)
    summary = run_batch(root, tmp_path / "out", config=config, options=OPTIONS, workers=1)
    record = summary.records[0]
    assert (record.status, record.error_code) == ("failed", "internal")
    assert record.error_reason == "MemoryError: simulated"
    error = json.loads((tmp_path / "out" / record.study_key / "error.json").read_text())
    assert error["error_code"] == "internal"


def test_study_key_collision_fails_all_colliding_studies(
    batch_input, config, tmp_path, monkeypatch
):
    root = _copy_studies(batch_input, tmp_path / "in", ("study_21", "study_22"))
    monkeypatch.setattr(batch_module, "study_key", lambda uid: "0" * 12)
    summary = run_batch(root, tmp_path / "out", config=config, options=OPTIONS, workers=1)
    assert [(r.status, r.error_code) for r in summary.records] == [("failed", STUDY_KEY_COLLISION)]
    assert "2 studies share the study key 000000000000" in summary.records[0].error_reason
    assert not (tmp_path / "out" / ("0" * 12)).exists()
    assert summary.exit_code == 1


def test_input_inside_output_folder_is_left_alone(batch_input, config, tmp_path):
    out = tmp_path / "out"
    root = _copy_studies(batch_input, out / "in", ("study_21",))
    (root / f"{TEMP_PREFIX}not-ours").write_bytes(b"an input file that looks like a temp file")
    before = hash_tree(root)
    summary = run_batch(root, out, config=config, options=OPTIONS, workers=1)
    assert (summary.n_ok, summary.n_temp_removed) == (1, 0)
    assert hash_tree(root) == before


def test_empty_input_writes_empty_tables(config, tmp_path):
    (tmp_path / "in").mkdir()
    summary = run_batch(tmp_path / "in", tmp_path / "out", config=config, options=OPTIONS)
    assert (summary.n_studies, summary.exit_code) == (0, 0)
    assert (tmp_path / "out" / "results.csv").read_text().splitlines() == [
        ",".join(RESULTS_COLUMNS)
    ]


# --------------------------------------------------------------------------- refusals


def test_out_inside_input_is_refused(batch_input, config, tmp_path):
    with pytest.raises(BatchSetupError, match="is inside INPUT"):
        check_batch_paths(batch_input.root, batch_input.root / "out")
    with pytest.raises(BatchSetupError, match="is inside INPUT"):
        run_batch(batch_input.root, batch_input.root, config=config, options=OPTIONS)
    assert not (batch_input.root / "out").exists()
    with pytest.raises(BatchSetupError, match="INPUT is not a folder") as exc:
        run_batch(tmp_path / "missing", tmp_path / "out", config=config, options=OPTIONS)
    assert exc.value.code == "not_found"
    (tmp_path / "file").write_text("x")
    with pytest.raises(BatchSetupError, match="exists and is not a folder"):
        run_batch(batch_input.root, tmp_path / "file", config=config, options=OPTIONS)
    with pytest.raises(BatchSetupError, match="workers 0: expected 1 or more"):
        run_batch(batch_input.root, tmp_path / "out", config=config, options=OPTIONS, workers=0)


def test_output_folder_in_use_is_refused(batch_input, config, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(BatchSetupError, match="another octoscan batch is writing") as exc:
            run_batch(batch_input.root, out, config=config, options=OPTIONS)
        assert exc.value.code == "output_locked"
    finally:
        os.close(fd)
    assert not any(p.is_dir() for p in out.iterdir())


# --------------------------------------------------------------------------- executors


def test_serial_executor_returns_exceptions_in_order():
    items = [functools.partial(abs, -1), functools.partial(int, "x"), functools.partial(abs, -3)]
    out = list(SerialExecutor().map_unordered(operator.call, items))
    assert [r for _, r in out][0::2] == [1, 3]
    assert isinstance(out[1][1], ValueError)


def test_local_pool_survives_a_worker_crash():
    items = [functools.partial(abs, -k) for k in range(1, 6)]
    items.insert(2, functools.partial(os._exit, 3))  # kills its worker process
    with LocalProcessExecutor(2, preload=()) as executor:
        results = list(executor.map_unordered(operator.call, items))
        restarts = executor.n_pool_restarts
    assert len(results) == 6
    values = sorted(r for _, r in results if isinstance(r, int))
    assert values == [1, 2, 3, 4, 5]
    crashed = [(item, r) for item, r in results if isinstance(r, BaseException)]
    assert len(crashed) == 1
    assert crashed[0][0] is items[2]
    assert isinstance(crashed[0][1], WorkerCrashedError)
    assert restarts >= 2  # once for the crash among others, once when it crashed alone


@pytest.mark.parametrize("refused_call", [1, 3])
def test_local_pool_resends_items_a_broken_pool_refused(monkeypatch, refused_call):
    # a worker can die between two submits: the pool then refuses new items at once
    # (BrokenProcessPool from submit itself); those items never ran and are sent again
    from concurrent.futures.process import BrokenProcessPool

    items = [functools.partial(abs, -k) for k in range(1, 7)]
    executor = LocalProcessExecutor(2, preload=())
    real_submit = executor._submit
    calls = {"n": 0}

    def flaky_submit(fn, item):
        calls["n"] += 1
        if calls["n"] == refused_call:
            raise BrokenProcessPool("simulated: a worker died before this submit")
        return real_submit(fn, item)

    monkeypatch.setattr(executor, "_submit", flaky_submit)
    with executor:
        results = list(executor.map_unordered(operator.call, items))
        restarts = executor.n_pool_restarts
    assert sorted(r for _, r in results) == [1, 2, 3, 4, 5, 6]
    assert calls["n"] == 7  # every item sent once, the refused one twice
    # refused with nothing in flight: the pool is restarted before sending again
    assert restarts == (1 if refused_call == 1 else 0)


_ORPHAN_SCRIPT = """
import operator, os, sys, time
from octoscan.pipelines.executors import LocalProcessExecutor
ex = LocalProcessExecutor(1, preload=())
for _, pid in ex.map_unordered(operator.call, [os.getpid]):
    print(pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_local_worker_exits_when_its_parent_is_killed(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT],
        stdout=subprocess.PIPE,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        worker_pid = int(parent.stdout.readline())
        assert _alive(worker_pid) and worker_pid != parent.pid
        parent.kill()  # SIGKILL the parent only
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10.0
        while _alive(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker_pid), "the worker outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()


def test_make_executor_choices():
    assert isinstance(make_executor(workers=1), SerialExecutor)
    pool = make_executor(workers=2)
    assert isinstance(pool, LocalProcessExecutor) and pool.slots == 2
    pool.close()
    with pytest.raises(InvalidInputError, match="--workers and --dask exclude each other"):
        make_executor(workers=2, dask_address="tcp://127.0.0.1:1")
    with pytest.raises(InvalidInputError, match="workers 0: expected 1 or more"):
        make_executor(workers=0)
    with pytest.raises(InvalidInputError, match="workers -1: expected 1 or more"):
        LocalProcessExecutor(-1)


# --------------------------------------------------------------------------- progress


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_progress_plain_lines_with_rate_and_time_left():
    clock = _Clock()
    stream = io.StringIO()
    bar = Progress(4, stream=stream, clock=clock, plain_interval_s=10.0)
    assert bar.tty is False
    assert bar.rate_per_minute() is None and bar.seconds_left() is None
    clock.t += 30.0
    bar.update("ok")  # first update always prints
    clock.t += 30.0
    bar.update("failed")  # 30 s after the last line: printed
    clock.t += 1.0
    bar.update("unchanged")  # 1 s later: not printed
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "1/4 studies" in lines[0] and "2.0/min" in lines[0] and "left 1:30" in lines[0]
    assert "2/4 studies" in lines[1] and "ok 1" in lines[1] and "failed 1" in lines[1]
    assert "left 1:00" in lines[1] and "elapsed 1:00" in lines[1]
    bar.close()
    last = stream.getvalue().splitlines()[-1]
    assert "3/4 studies" in last and "unchanged 1" in last
    assert "[" + "#" * 18 + "-" * 6 + "]" in last


def test_progress_tty_redraws_one_line():
    clock = _Clock()
    stream = io.StringIO()
    bar = Progress(2, stream=stream, tty=True, clock=clock)
    clock.t += 1.0
    bar.update("ok")
    bar.clear()
    stream.write("a log line\n")
    bar.update("ok")  # redrawn at once after a clear
    bar.close()
    text = stream.getvalue()
    assert text.count("\r\x1b[K") == 4  # draw, clear, draw, final draw
    assert text.endswith("2/2 studies  ok 2  failed 0  120.0/min  elapsed 0:01\n")
    assert "left" not in text.splitlines()[-1]


def test_progress_refuses_bad_values():
    with pytest.raises(ValueError, match="total -1: expected a number of studies >= 0"):
        Progress(-1)
    with pytest.raises(ValueError, match="status 'skipped': expected 'ok', 'failed'"):
        Progress(1, stream=io.StringIO()).update("skipped")


def test_format_duration():
    assert format_duration(0) == "0:00"
    assert format_duration(59.6) == "1:00"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(-5) == "0:00"
