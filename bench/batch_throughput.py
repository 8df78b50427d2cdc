"""Benchmark: `octoscan run` throughput with 1 and 2 worker processes on N phantom studies.

    .venv/bin/python bench/batch_throughput.py [-n 12] [--workers 1,2] [--repeats 3]
        [--seed 0] [--input DIR]

Writes N planar phantom studies (a deterministic cohort; reused when ``--input`` names a
folder that already holds studies), then, in each of ``--repeats`` rounds and per worker
count in turn, runs the batch into a fresh output folder (no resume) twice:

* cold: a fresh ``octoscan run INPUT --workers N --no-resume`` process, as a user starts
  it: the wall time includes the interpreter's start and imports, for 2 or more workers
  also starting the worker processes (spawn, imports), each worker's first study (lazy
  loads: highdicom's tables, fonts) and their exit;
* warm: an executor started and warmed once (a batch of a few studies into a scratch
  folder, its wall time reported as the start-up cost) runs the timed batch: the
  throughput of a long batch, where start-up no longer counts.

The machine this runs on is a shared virtual one whose speed drifts by 10-30 % from minute
to minute; the rounds interleave the configurations and the table reports medians, with
the scaling of every round beside it. Then once more with resume into a scored folder
(every study unchanged). Prints a table (median wall seconds, studies per minute, median
wall and CPU seconds per study inside its worker for the warm runs, scaling against the
first worker count, cold and warm) and one JSON line with the same figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average

from octoscan.imaging.phantom.cohort import cohort_specs
from octoscan.models.config import load_config
from octoscan.pipelines.batch import run_batch
from octoscan.pipelines.cmd_phantom import generate_cohort
from octoscan.pipelines.executors import LocalProcessExecutor, SerialExecutor, StudyExecutor
from octoscan.pipelines.study import StudyOptions


def _worker_counts(text: str) -> list[int]:
    counts = [int(v) for v in text.split(",") if v.strip()]
    if not counts or any(c < 1 for c in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected worker counts like 1,2")
    return counts


def _warmup_input(input_dir: Path, work: Path, n: int) -> Path:
    """A folder holding copies of the first ``n`` study folders of ``input_dir``."""
    folder = work / "warmup-input"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        studies = sorted(p for p in input_dir.iterdir() if p.is_dir())[:n]
        for study in studies:
            shutil.copytree(study, folder / study.name)
    return folder


def _row(
    workers: int,
    mode: str,
    walls: list[float],
    counts: list[tuple[int, int, int]],
    per_study: list[float],
    cpu: list[float],
) -> dict[str, Any]:
    """Figures of one (workers, mode) over its repeats: the median wall time, and the median
    per-study wall and CPU time over every study of every repeat (None when the batch ran in
    another process). ``counts``: (studies, ok, failed) of each repeat."""
    wall = statistics.median(walls)
    n_studies = counts[0][0]
    return {
        "workers": workers,
        "mode": mode,
        "studies": n_studies,
        "ok": min(c[1] for c in counts),
        "failed": max(c[2] for c in counts),
        "wall_s": round(wall, 2),
        "wall_s_runs": [round(w, 2) for w in walls],
        "studies_per_min": round(60.0 * n_studies / wall, 1),
        "median_study_s": round(statistics.median(per_study), 2) if per_study else None,
        "median_study_cpu_s": round(statistics.median(cpu), 2) if cpu else None,
    }


def _cli_batch(input_dir: Path, out: Path, workers: int) -> tuple[float, tuple[int, int, int]]:
    """Wall seconds of a fresh ``octoscan run`` process (interpreter start and imports
    included), and its (studies, ok, failed) from the batch.json it wrote."""
    cmd = [
        sys.executable,
        "-c",
        "import sys; from octoscan.pipelines.cli import main; sys.exit(main())",
        "run",
        str(input_dir),
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--no-resume",
        "--no-progress",
    ]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise RuntimeError(f"octoscan run failed ({done.returncode}): {done.stderr[-2000:]}")
    batch = json.loads((out / "batch.json").read_text(encoding="utf-8"))
    return wall, (int(batch["n_studies"]), int(batch["n_ok"]), int(batch["n_failed"]))


def measure(
    input_dir: Path, work: Path, worker_counts: list[int], repeats: int = 1
) -> dict[str, Any]:
    """Cold and warm batches per worker count, ``repeats`` rounds; within a round the worker
    counts run one after the other, so that a slow spell of the machine (a shared host)
    falls on all of them alike rather than on one configuration's every repeat."""
    config = load_config("default")
    options = StudyOptions(pseudonym_key=b"bench")
    startup: dict[str, float] = {}
    warmup = _warmup_input(input_dir, work, 2 * max(worker_counts))
    executors: dict[int, StudyExecutor] = {}
    walls: dict[tuple[int, str], list[float]] = {}
    counts: dict[tuple[int, str], list[tuple[int, int, int]]] = {}
    per_study: dict[tuple[int, str], list[float]] = {}
    cpu: dict[tuple[int, str], list[float]] = {}
    out = work
    try:
        for workers in worker_counts:
            executor: StudyExecutor = (
                SerialExecutor() if workers == 1 else LocalProcessExecutor(workers)
            )
            executors[workers] = executor
            t0 = time.perf_counter()
            run_batch(
                warmup,
                work / f"warmup-out-{workers}",
                config=config,
                options=options,
                executor=executor,
                resume=False,
            )
            startup[str(workers)] = round(time.perf_counter() - t0, 2)
        for _ in range(repeats):
            for workers in worker_counts:
                out = work / f"out-{workers}"
                wall, n = _cli_batch(input_dir, out, workers)
                walls.setdefault((workers, "cold"), []).append(wall)
                counts.setdefault((workers, "cold"), []).append(n)
                shutil.rmtree(out)
                t0 = time.perf_counter()
                summary = run_batch(
                    input_dir,
                    out,
                    config=config,
                    options=options,
                    executor=executors[workers],
                    resume=False,
                )
                key = (workers, "warm")
                walls.setdefault(key, []).append(time.perf_counter() - t0)
                counts.setdefault(key, []).append(
                    (summary.n_studies, summary.n_ok, summary.n_failed)
                )
                per_study.setdefault(key, []).extend(r.seconds for r in summary.records)
                cpu.setdefault(key, []).extend(r.cpu_seconds for r in summary.records)
                shutil.rmtree(out)
    finally:
        for executor in executors.values():
            executor.close()
    rows = [
        _row(
            workers,
            mode,
            walls[(workers, mode)],
            counts[(workers, mode)],
            per_study.get((workers, mode), []),
            cpu.get((workers, mode), []),
        )
        for mode in ("cold", "warm")
        for workers in worker_counts
    ]
    base_workers = worker_counts[0]
    for row in rows:
        key = (base_workers, str(row["mode"]))
        base = next(r for r in rows if (r["workers"], r["mode"]) == key)
        row["scaling"] = round(base["wall_s"] / row["wall_s"], 2)
        own = walls[(int(row["workers"]), str(row["mode"]))]
        row["scaling_runs"] = [round(b / w, 2) for b, w in zip(walls[key], own, strict=True)]
    run_batch(input_dir, out, config=config, options=options, workers=1, resume=False)
    t0 = time.perf_counter()
    again = run_batch(
        input_dir, out, config=config, options=options, workers=worker_counts[-1], resume=True
    )
    resume_wall = time.perf_counter() - t0
    return {
        "runs": rows,
        "repeats": repeats,
        "warmup_s": startup,
        "warmup_studies": 2 * max(worker_counts),
        "resume": {
            "workers": worker_counts[-1],
            "unchanged": again.n_unchanged,
            "scored": again.n_scored,
            "wall_s": round(resume_wall, 2),
        },
    }


def _fixed(value: float | None, width: int) -> str:
    return f"{value:>{width}.2f}" if value is not None else f"{'-':>{width}}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=12, help="number of phantom studies")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed")
    parser.add_argument(
        "--workers",
        type=_worker_counts,
        default=[1, 2],
        help="comma-separated worker counts (default 1,2)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="rounds of every measurement; medians are reported (default 3)",
    )
    parser.add_argument(
        "--input",
        type=Path,
        default=None,
        help="folder for the phantom studies (kept; reused when not empty)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="octoscan-bench-") as tmp:
        work = Path(tmp)
        input_dir = args.input or work / "input"
        t0 = time.perf_counter()
        if not (input_dir.is_dir() and any(input_dir.iterdir())):
            generate_cohort(
                input_dir,
                cohort_specs(args.n, seed=args.seed, kind="planar"),
                workers=max(args.workers),
            )
        generation_s = time.perf_counter() - t0
        figures = measure(input_dir, work, args.workers, args.repeats)
    print(
        f"{'workers':>7}  {'mode':>4}  {'studies':>7}  {'ok':>3}  {'failed':>6}  {'wall s':>7}  "
        f"{'studies/min':>11}  {'median s/study':>14}  {'cpu s/study':>11}  {'scaling':>7}"
    )
    for r in figures["runs"]:
        print(
            f"{r['workers']:>7}  {r['mode']:>4}  {r['studies']:>7}  {r['ok']:>3}  "
            f"{r['failed']:>6}  {r['wall_s']:>7.2f}  {r['studies_per_min']:>11.1f}  "
            f"{_fixed(r['median_study_s'], 14)}  {_fixed(r['median_study_cpu_s'], 11)}  "
            f"{r['scaling']:>7.2f}  " + " ".join(f"{v:.2f}" for v in r["scaling_runs"])
        )
    warm = ", ".join(f"{k} worker(s) {v:.2f} s" for k, v in figures["warmup_s"].items())
    print(f"start-up + warm-up batch of {figures['warmup_studies']} studies: {warm}")
    res = figures["resume"]
    print(
        f"re-run with resume ({res['workers']} workers): {res['unchanged']} unchanged, "
        f"{res['scored']} scored in {res['wall_s']:.2f} s; phantom generation "
        f"{generation_s:.1f} s"
    )
    print(
        json.dumps(
            {
                "benchmark": "batch_throughput",
                "n": args.n,
                "load_average": load_average(),
                **figures,
            },
            sort_keys=True,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
