"""Local worker processes: the environment they start with (BLAS/OpenMP threads) and how
they end."""

from __future__ import annotations

import atexit
import functools
import operator
import os
import sys
from pathlib import Path

import pytest

from octoscan.pipelines.executors import LocalProcessExecutor

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def _start_environment(raw: bytes) -> dict[str, str]:
    pairs = (entry.split(b"=", 1) for entry in raw.split(b"\0") if b"=" in entry)
    return {k.decode(): v.decode() for k, v in pairs}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/environ")
def test_workers_start_with_one_blas_thread_and_parent_env_is_restored(monkeypatch):
    for name in _THREAD_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")  # set by the user: kept as it is
    # /proc/self/environ is the environment the process was started with: what native
    # libraries read when numpy loads, before any initializer runs
    read_start_env = functools.partial(Path.read_bytes, Path("/proc/self/environ"))
    with LocalProcessExecutor(2, preload=()) as executor:
        results = list(executor.map_unordered(operator.call, [read_start_env] * 4))
    assert len(results) == 4
    for _, raw in results:
        assert isinstance(raw, bytes), raw
        env = _start_environment(raw)
        assert {name: env.get(name) for name in _THREAD_VARS} == dict.fromkeys(_THREAD_VARS, "1")
        assert env.get("MKL_NUM_THREADS") == "3"
    assert not any(name in os.environ for name in _THREAD_VARS)  # parent: as before
    assert os.environ["MKL_NUM_THREADS"] == "3"


def test_exit_handlers_a_task_registers_still_run_before_the_fast_worker_exit(tmp_path):
    # workers skip the interpreter's teardown (os._exit) but only after every exit handler
    # registered later than their initializer: what a study's modules add still runs
    marks = [tmp_path / f"mark{i}.txt" for i in range(3)]
    tasks = [functools.partial(atexit.register, Path.write_text, m, "ran") for m in marks]
    executor = LocalProcessExecutor(1, preload=())
    with executor:
        results = list(executor.map_unordered(operator.call, tasks))
        processes = list(executor._pool._processes.values())  # type: ignore[union-attr]
    assert [r for _, r in results] == [Path.write_text] * 3
    assert processes and all(p.exitcode == 0 for p in processes)
    assert [m.read_text() for m in marks] == ["ran"] * 3
