"""Benchmark: `octoscan run` throughput with 1 and 2 worker processes on N phantom studies.

    .venv/bin/python bench/batch_throughput.py [-n 12] [--workers 1,2] [--seed 0] [--input DIR]

Writes N planar phantom studies (a deterministic cohort; reused when ``--input`` names a
folder that already holds studies), then, per worker count, runs the batch into a fresh
output folder (no resume) twice:

* cold: :func:`run_batch` starts its own executor, as ``octoscan run`` does; for 2 or more
  workers the wall time includes starting the worker processes (spawn, imports) and each
  worker's first study (lazy loads: highdicom's tables, fonts); 1 worker runs in this
  process, which has imported octoscan already;
* warm: the executor is started and warmed first (a batch of a few studies into a scratch
  folder), then the timed batch runs on it: the throughput of a long batch, where start-up
  no longer counts. The warm-up's wall time is reported as the start-up cost.

Then once more with resume into the last folder (every study unchanged). Prints a table
(wall seconds, studies per minute, median wall and CPU seconds per study inside its worker,
scaling against the first worker count, cold and warm) and one JSON line with the same
figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

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


def _row(workers: int, mode: str, summary, wall: float) -> dict[str, object]:  # type: ignore[no-untyped-def]
    per_study = [r.seconds for r in summary.records]
    cpu = [r.cpu_seconds for r in summary.records]
    return {
        "workers": workers,
        "mode": mode,
        "studies": summary.n_studies,
        "ok": summary.n_ok,
        "failed": summary.n_failed,
        "wall_s": round(wall, 2),
        "studies_per_min": round(60.0 * summary.n_studies / wall, 1),
        "median_study_s": round(statistics.median(per_study), 2) if per_study else None,
        "median_study_cpu_s": round(statistics.median(cpu), 2) if cpu else None,
    }


def measure(input_dir: Path, work: Path, worker_counts: list[int]) -> dict[str, object]:
    config = load_config("default")
    options = StudyOptions(pseudonym_key=b"bench")
    rows = []
    startup: dict[str, float] = {}
    out = work
    for workers in worker_counts:
        out = work / f"out-{workers}"
        t0 = time.perf_counter()
        summary = run_batch(
            input_dir, out, config=config, options=options, workers=workers, resume=False
        )
        rows.append(_row(workers, "cold", summary, time.perf_counter() - t0))
        shutil.rmtree(out)
        warmup = _warmup_input(input_dir, work, 2 * max(worker_counts))
        executor: StudyExecutor = (
            SerialExecutor() if workers == 1 else LocalProcessExecutor(workers)
        )
        with executor:
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
            t0 = time.perf_counter()
            summary = run_batch(
                input_dir, out, config=config, options=options, executor=executor, resume=False
            )
            rows.append(_row(workers, "warm", summary, time.perf_counter() - t0))
    for mode in ("cold", "warm"):
        base = next(r["studies_per_min"] for r in rows if r["mode"] == mode)
        for row in rows:
            if row["mode"] == mode:
                row["scaling"] = round(row["studies_per_min"] / base, 2) if base else None
    t0 = time.perf_counter()
    again = run_batch(
        input_dir, out, config=config, options=options, workers=worker_counts[-1], resume=True
    )
    resume_wall = time.perf_counter() - t0
    return {
        "runs": rows,
        "warmup_s": startup,
        "warmup_studies": 2 * max(worker_counts),
        "resume": {
            "workers": worker_counts[-1],
            "unchanged": again.n_unchanged,
            "scored": again.n_scored,
            "wall_s": round(resume_wall, 2),
        },
    }


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
        figures = measure(input_dir, work, args.workers)
    print(
        f"{'workers':>7}  {'mode':>4}  {'studies':>7}  {'ok':>3}  {'failed':>6}  {'wall s':>7}  "
        f"{'studies/min':>11}  {'median s/study':>14}  {'cpu s/study':>11}  {'scaling':>7}"
    )
    for r in figures["runs"]:  # type: ignore[union-attr]
        print(
            f"{r['workers']:>7}  {r['mode']:>4}  {r['studies']:>7}  {r['ok']:>3}  "
            f"{r['failed']:>6}  {r['wall_s']:>7.2f}  {r['studies_per_min']:>11.1f}  "
            f"{r['median_study_s']:>14.2f}  {r['median_study_cpu_s']:>11.2f}  {r['scaling']:>7.2f}"
        )
    warm = ", ".join(f"{k} worker(s) {v:.2f} s" for k, v in figures["warmup_s"].items())  # type: ignore[union-attr]
    print(f"start-up + warm-up batch of {figures['warmup_studies']} studies: {warm}")
    res = figures["resume"]
    print(
        f"re-run with resume ({res['workers']} workers): {res['unchanged']} unchanged, "  # type: ignore[index]
        f"{res['scored']} scored in {res['wall_s']:.2f} s; phantom generation "  # type: ignore[index]
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
