"""Manifests, input digests, the commit protocol, and a batch killed with SIGKILL and resumed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from octoscan.models.config import load_config
from octoscan.pipelines.atomic import TEMP_PREFIX
from octoscan.pipelines.batch import LOCK_NAME, run_batch
from octoscan.pipelines.identity import KEY_ENV, study_key
from octoscan.pipelines.resume import (
    MANIFEST_NAME,
    InputDigest,
    RunFingerprint,
    StudyManifest,
    commit_study_files,
    complete_manifest,
    digest_inputs,
    hash_file,
    options_hash,
    read_manifest,
)
from octoscan.pipelines.study import StudyOptions
from tests.pipelines.batch_inputs import PSEUDONYM_KEY, cached_batch_input, hash_tree

RUN = RunFingerprint(config_hash="c" * 64, options_hash="o" * 64, octoscan_version="9.9")
INPUTS = InputDigest(digest="d" * 64, n_files=2, n_bytes=10)


# --------------------------------------------------------------------------- digests


def test_hash_file_is_sha256_of_the_bytes(tmp_path):
    data = bytes(range(256)) * 5000  # over one read chunk
    (tmp_path / "f").write_bytes(data)
    assert hash_file(tmp_path / "f") == (hashlib.sha256(data).hexdigest(), len(data))
    with pytest.raises(FileNotFoundError):
        hash_file(tmp_path / "missing")


def test_digest_depends_on_content_and_relative_place_not_on_order(tmp_path):
    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.dcm").write_bytes(b"one")
    (root / "a" / "y.dcm").write_bytes(b"two")
    files = [str(root / "a" / "x.dcm"), str(root / "a" / "y.dcm")]
    d1 = digest_inputs(files, root)
    assert (d1.n_files, d1.n_bytes) == (2, 6)
    assert digest_inputs(list(reversed(files)), root) == d1
    # the same tree elsewhere digests the same (paths are relative to INPUT)
    moved = tmp_path / "moved"
    (root).rename(moved)
    assert digest_inputs([f.replace(str(root), str(moved)) for f in files], moved) == d1
    # same size, same mtime, one byte different: another digest
    target = moved / "a" / "y.dcm"
    st = target.stat()
    target.write_bytes(b"twO")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed = digest_inputs([f.replace(str(root), str(moved)) for f in files], moved)
    assert changed.digest != d1.digest and changed.n_bytes == d1.n_bytes
    # the same bytes under another name: another digest
    target.write_bytes(b"two")
    target.rename(moved / "a" / "z.dcm")
    renamed = digest_inputs([str(moved / "a" / "x.dcm"), str(moved / "a" / "z.dcm")], moved)
    assert renamed.digest != d1.digest
    with pytest.raises(FileNotFoundError):
        digest_inputs([str(moved / "a" / "gone.dcm")], moved)


def test_options_hash_follows_every_option_and_hides_the_key():
    base = StudyOptions(pseudonym_key=b"secret-key")
    h = options_hash(base)
    assert options_hash(StudyOptions(pseudonym_key=b"secret-key")) == h
    assert options_hash(replace(base, assume_sstr=True)) != h
    assert options_hash(replace(base, show_phi=True)) != h
    assert options_hash(replace(base, pseudonym_key=b"other")) != h
    assert "secret" not in h and len(h) == 64


# --------------------------------------------------------------------------- manifests


def _manifest(**changes) -> StudyManifest:
    m = StudyManifest(
        study_key="abc123abc123",
        status="ok",
        inputs=INPUTS,
        run=RUN,
        outputs={"result.json": "0" * 64},
    )
    return replace(m, **changes)


def test_manifest_round_trip_and_malformed_manifests(tmp_path):
    m = _manifest()
    assert StudyManifest.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    folder = tmp_path / "s"
    folder.mkdir()
    assert read_manifest(folder) is None  # absent
    for text in (
        "{not json",
        "[]",
        json.dumps({**m.to_dict(), "manifest_version": 2}),
        json.dumps({**m.to_dict(), "status": "maybe"}),
        json.dumps({**m.to_dict(), "outputs": ["result.json"]}),
    ):
        (folder / MANIFEST_NAME).write_text(text)
        assert read_manifest(folder) is None, text
    with pytest.raises(ValueError, match="manifest_version 2"):
        StudyManifest.from_dict({**m.to_dict(), "manifest_version": 2})
    with pytest.raises(ValueError, match="status 'maybe'"):
        StudyManifest.from_dict({**m.to_dict(), "status": "maybe"})
    with pytest.raises(TypeError, match="outputs must map file names to hashes"):
        StudyManifest.from_dict({**m.to_dict(), "outputs": {"result.json": 3}})
    with pytest.raises(KeyError, match="inputs"):
        StudyManifest.from_dict({k: v for k, v in m.to_dict().items() if k != "inputs"})


def test_commit_writes_outputs_then_manifest_and_removes_stale_outputs(tmp_path):
    folder = tmp_path / "key"
    folder.mkdir()
    (folder / "error.json").write_text("stale")
    (folder / "notes.txt").write_text("not an output: kept")
    files = {"result.json": b'{"a": 1}\n'}
    m = commit_study_files(
        folder,
        files,
        known_outputs=("result.json", "error.json"),
        study_key="key",
        status="ok",
        inputs=INPUTS,
        run=RUN,
    )
    assert m is not None
    assert m.outputs == {"result.json": hashlib.sha256(b'{"a": 1}\n').hexdigest()}
    assert not (folder / "error.json").exists()
    assert (folder / "notes.txt").exists()
    assert read_manifest(folder) == m
    assert complete_manifest(folder, "key", RUN) == m
    # manifest bytes are deterministic
    first = (folder / MANIFEST_NAME).read_bytes()
    commit_study_files(
        folder,
        files,
        known_outputs=("result.json", "error.json"),
        study_key="key",
        status="ok",
        inputs=INPUTS,
        run=RUN,
    )
    assert (folder / MANIFEST_NAME).read_bytes() == first
    assert not list(folder.glob(f"{TEMP_PREFIX}*"))


def test_commit_without_inputs_leaves_no_manifest(tmp_path):
    folder = tmp_path / "key"
    commit_study_files(
        folder,
        {"result.json": b"{}"},
        known_outputs=("result.json",),
        study_key="key",
        status="ok",
        inputs=INPUTS,
        run=RUN,
    )
    assert (folder / MANIFEST_NAME).exists()
    m = commit_study_files(
        folder,
        {"error.json": b"{}"},
        known_outputs=("result.json",),
        study_key="key",
        status="failed",
        inputs=None,
        run=RUN,
    )
    assert m is None
    assert not (folder / MANIFEST_NAME).exists()  # the old one is gone: redone next time
    assert not (folder / "result.json").exists()


def test_commit_refuses_paths_and_the_manifest_name(tmp_path):
    for name in ("../escape.json", "sub/result.json", MANIFEST_NAME):
        with pytest.raises(ValueError, match="expected a plain file name"):
            commit_study_files(
                tmp_path / "k",
                {name: b"x"},
                known_outputs=(),
                study_key="k",
                status="ok",
                inputs=INPUTS,
                run=RUN,
            )
    assert not (tmp_path / "escape.json").exists()


def test_complete_manifest_checks_run_key_and_output_hashes(tmp_path):
    folder = tmp_path / "key"
    commit_study_files(
        folder,
        {"result.json": b"{}\n"},
        known_outputs=("result.json",),
        study_key="key",
        status="ok",
        inputs=INPUTS,
        run=RUN,
    )
    assert complete_manifest(folder, "key", RUN) is not None
    assert complete_manifest(folder, "other", RUN) is None
    assert complete_manifest(folder, "key", replace(RUN, config_hash="e" * 64)) is None
    assert complete_manifest(folder, "key", replace(RUN, options_hash="e" * 64)) is None
    assert complete_manifest(folder, "key", replace(RUN, octoscan_version="10.0")) is None
    (folder / "result.json").write_bytes(b"{}\r\n")  # edited after the run
    assert complete_manifest(folder, "key", RUN) is None
    (folder / "result.json").unlink()
    assert complete_manifest(folder, "key", RUN) is None
    m = _manifest(study_key="key", outputs={"../result.json": "0" * 64})
    (folder / MANIFEST_NAME).write_text(json.dumps(m.to_dict()))
    assert complete_manifest(folder, "key", RUN) is None
    m = _manifest(study_key="key", outputs={})
    (folder / MANIFEST_NAME).write_text(json.dumps(m.to_dict()))
    assert complete_manifest(folder, "key", RUN) is None


# --------------------------------------------------------------------------- kill and resume


@pytest.fixture(scope="module")
def batch_input(tmp_path_factory):
    return cached_batch_input(tmp_path_factory.getbasetemp(), "batch-main")


def _manifests(out: Path) -> list[Path]:
    return sorted(out.glob(f"*/{MANIFEST_NAME}"))


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".octoscan-lock"
    }


@pytest.fixture(scope="module")
def reference_run(batch_input, tmp_path_factory):
    """An uninterrupted batch (in-process, serial) with the fixed pseudonym key."""
    out = tmp_path_factory.mktemp("reference") / "out"
    mp = pytest.MonkeyPatch()
    mp.setenv(KEY_ENV, PSEUDONYM_KEY)
    try:
        summary = run_batch(batch_input.root, out, config=load_config("default"), workers=1)
    finally:
        mp.undo()
    assert (summary.n_ok, summary.n_failed) == (5, 0)
    return _files(out)


def _run_and_kill(input_dir: Path, out: Path, log_path: Path, committed: int) -> None:
    """Start `octoscan run` in its own process group and SIGKILL the group once
    ``committed`` studies have their manifest (0: as soon as the output folder is locked)."""
    env = {**os.environ, KEY_ENV: PSEUDONYM_KEY}
    argv = [sys.executable, "-m", "octoscan.pipelines.cli", "run", str(input_dir)]
    argv += ["--out", str(out), "--workers", "2", "--no-progress"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=log_path.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180.0
            while True:
                started = (out / LOCK_NAME).exists()
                if started and len(_manifests(out)) >= committed:
                    break
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, f"{committed} commits not seen in 180 s"
                time.sleep(0.01)
            assert proc.poll() is None  # still working
            os.killpg(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("committed", [0, 1, 3])
def test_sigkill_then_resume_gives_identical_outputs(
    batch_input, reference_run, tmp_path, monkeypatch, committed
):
    """Kill `octoscan run` (its whole process group: parent and worker processes) at a
    point of the batch, re-run it, and compare every output file with an uninterrupted run
    byte for byte: results, manifests, CSV tables, failed.json and batch.json."""
    inputs_before = hash_tree(batch_input.root)
    killed = tmp_path / "killed"
    _run_and_kill(batch_input.root, killed, tmp_path / "killed.log", committed)
    committed_at_kill = len(_manifests(killed))
    assert committed <= committed_at_kill < 5
    assert not (killed / "results.csv").exists()  # the tables come last
    # what a kill in the middle of a write leaves behind
    (killed / f"{TEMP_PREFIX}results.csv.x").write_bytes(b"study_key,sta")
    for manifest in _manifests(killed)[:1]:
        (manifest.parent / f"{TEMP_PREFIX}result.json.x").write_bytes(b'{"half": ')
        dicom_dir = manifest.parent / "dicom"
        dicom_dir.mkdir(exist_ok=True)
        (dicom_dir / f"{TEMP_PREFIX}sc.dcm.x").write_bytes(b"\x00" * 132)

    monkeypatch.setenv(KEY_ENV, PSEUDONYM_KEY)
    resumed = run_batch(batch_input.root, killed, config=load_config("default"), workers=1)
    assert (resumed.n_ok, resumed.n_failed) == (5, 0)
    assert resumed.n_unchanged == committed_at_kill
    assert resumed.n_scored == 5 - committed_at_kill
    assert resumed.n_temp_removed >= 1

    got = _files(killed)
    assert sorted(got) == sorted(reference_run)
    keys = {study_key(uid) for uid in batch_input.study_uids}
    assert {name.split("/")[0] for name in reference_run if "/" in name} == keys
    for name, data in reference_run.items():
        assert got[name] == data, name
    assert not [p for p in killed.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    assert hash_tree(batch_input.root) == inputs_before


def test_options_hash_changes_with_outputs_and_tracer_options():
    from octoscan.pipelines.resume import options_hash
    from octoscan.pipelines.study import StudyOptions

    base = StudyOptions(pseudonym_key=b"k")
    variants = [
        StudyOptions(pseudonym_key=b"k", dicom_out=False),
        StudyOptions(pseudonym_key=b"k", pseudonymise=True),
        StudyOptions(pseudonym_key=b"k", radiopharmaceutical="DOTATATE"),
    ]
    hashes = {options_hash(base), *(options_hash(v) for v in variants)}
    assert len(hashes) == 4
    assert options_hash(StudyOptions(pseudonym_key=b"k")) == options_hash(base)


# --------------------------------------------------------------------------- kill in the tables

# Runs `octoscan run` with one of the batch's final writes replaced by a suicide: the process
# writes half a temp file (as a kill inside an atomic write leaves it) and SIGKILLs itself.
_DIES_IN_FINAL_WRITE = """
import os, signal, sys
from pathlib import Path
import octoscan.pipelines.batch as batch
from octoscan.pipelines.atomic import TEMP_PREFIX
from octoscan.pipelines.cli import main

target = sys.argv[1]

def die(out_dir: Path, name: str) -> None:
    (out_dir / f"{TEMP_PREFIX}{name}.x").write_bytes(b"half a fi")
    os.kill(os.getpid(), signal.SIGKILL)

def wrap(real):
    def write(path, *args, **kwargs):
        if Path(path).name == target:
            die(Path(path).parent, target)
        return real(path, *args, **kwargs)
    return write

batch.write_json_atomic = wrap(batch.write_json_atomic)
batch.write_csv_atomic = wrap(batch.write_csv_atomic)
real_report = batch.build_report
def build_report(out_dir, **kwargs):
    if target == "index.html":
        die(Path(out_dir), target)
    return real_report(out_dir, **kwargs)
batch.build_report = build_report
sys.exit(main(sys.argv[2:]))
"""
_TABLES = ("results.csv", "lesions.csv", "failed.json", "batch.json", "index.html")


@pytest.mark.slow
@pytest.mark.parametrize("dies_at", ["failed.json", "index.html"])
def test_sigkill_in_the_final_table_writes_then_resume(
    batch_input, reference_run, tmp_path, monkeypatch, dies_at
):
    """Every study committed, tables of an older run on disk, and the run dies while it
    rewrites them (after results.csv and lesions.csv, or while building the report): the
    folder then mixes new and old tables and a temp file. A re-run scores nothing and leaves
    every file byte-identical to an uninterrupted run."""
    out = tmp_path / "out"
    for name, data in reference_run.items():  # every study committed by an earlier run
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    old = {"results.csv": b"study_key,status\n", "failed.json": b'{"from": "an older run"}\n'}
    for name in _TABLES:
        (out / name).unlink()
        if name in old:
            (out / name).write_bytes(old[name])
    env = {**os.environ, KEY_ENV: PSEUDONYM_KEY}
    argv = [sys.executable, "-c", _DIES_IN_FINAL_WRITE, dies_at, "run", str(batch_input.root)]
    argv += ["--out", str(out), "--workers", "1", "--no-progress"]
    done = subprocess.run(argv, env=env, capture_output=True, timeout=300, cwd=tmp_path)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode(errors="replace")[-2000:]
    assert (out / f"{TEMP_PREFIX}{dies_at}.x").is_file()
    written_before_death = {"failed.json": 2, "index.html": 4}[dies_at]
    for name in _TABLES[:written_before_death]:
        assert (out / name).read_bytes() == reference_run[name], name  # rewritten already
    if dies_at == "failed.json":
        assert (out / "failed.json").read_bytes() == old["failed.json"]  # the older run's
    assert not (out / "index.html").exists()

    monkeypatch.setenv(KEY_ENV, PSEUDONYM_KEY)
    resumed = run_batch(batch_input.root, out, config=load_config("default"), workers=1)
    assert (resumed.n_unchanged, resumed.n_scored, resumed.n_temp_removed) == (5, 0, 1)
    got = _files(out)
    assert sorted(got) == sorted(reference_run)
    for name, data in reference_run.items():
        assert got[name] == data, name
    assert not [p for p in out.rglob("*") if p.name.startswith(TEMP_PREFIX)]
