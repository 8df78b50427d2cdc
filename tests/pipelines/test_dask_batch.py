"""``octoscan run --dask``: a batch on a real Dask scheduler with two worker processes gives
byte-identical outputs to the local process pool."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from octoscan.models.config import load_config
from octoscan.pipelines.batch import run_batch
from octoscan.pipelines.cli import main
from octoscan.pipelines.identity import KEY_ENV, study_key
from tests.pipelines.batch_inputs import PSEUDONYM_KEY, cached_batch_input, hash_tree

pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parents[2]
DASK = REPO / ".venv" / "bin" / "dask"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the Dask scheduler exited at start"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"Dask scheduler not listening on port {port} after {timeout_s} s")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process by PID, wait, then SIGKILL its process group if still running."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def batch_input(tmp_path_factory):
    return cached_batch_input(tmp_path_factory.getbasetemp(), "batch-main")


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A scheduler and a worker with 2 processes x 1 thread, each started as its own process."""
    if not DASK.is_file():
        pytest.fail(f"{DASK} not found: install the 'dask' extra (dask[distributed])")
    work = tmp_path_factory.mktemp("dask")
    port = _free_port()
    env = {**os.environ, "DASK_TEMPORARY_DIRECTORY": str(work)}
    scheduler_log = (work / "scheduler.log").open("wb")
    worker_log = (work / "worker.log").open("wb")
    scheduler = subprocess.Popen(
        [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        cwd=work,
        env=env,
        stdout=scheduler_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = None
    try:
        _wait_for_port(port, scheduler, timeout_s=60)
        address = f"tcp://127.0.0.1:{port}"
        worker = subprocess.Popen(
            [
                str(DASK),
                "worker",
                address,
                "--nworkers",
                "2",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--local-directory",
                str(work / "worker-space"),
            ],
            cwd=work,
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        from distributed import Client

        with Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
            assert sum(w["nthreads"] for w in client.scheduler_info()["workers"].values()) == 2
        yield address
    finally:
        if worker is not None:
            _stop(worker)
        _stop(scheduler)
        scheduler_log.close()
        worker_log.close()


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".octoscan-lock"
    }


def test_dask_batch_matches_the_local_pool(
    dask_cluster, batch_input, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv(KEY_ENV, PSEUDONYM_KEY)
    before = hash_tree(batch_input.root)
    on_dask = tmp_path / "dask"
    rc = main(
        [
            "run",
            str(batch_input.root),
            "--out",
            str(on_dask),
            "--dask",
            dask_cluster,
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    out = captured.out
    assert rc == 0, captured.err
    assert "5 studies: 5 ok, 0 failed (5 processed, 0 unchanged" in out
    assert f"dask at {dask_cluster} (2 worker thread(s))" in out

    local = tmp_path / "local"
    summary = run_batch(batch_input.root, local, config=load_config("default"), workers=2)
    assert summary.executor == "local processes (2 worker(s))"
    assert summary.n_ok == 5

    got, want = _files(on_dask), _files(local)
    assert sorted(got) == sorted(want)
    keys = {study_key(uid) for uid in batch_input.study_uids}
    assert {n.split("/")[0] for n in want if n.endswith("/result.json")} == keys
    for name in want:
        assert got[name] == want[name], name
    assert hash_tree(batch_input.root) == before

    # a re-run on Dask reuses everything without sending work to the cluster
    assert (
        main(
            [
                "run",
                str(batch_input.root),
                "--out",
                str(on_dask),
                "--dask",
                dask_cluster,
                "--no-progress",
            ]
        )
        == 0
    )
    assert "(0 processed, 5 unchanged" in capsys.readouterr().out
