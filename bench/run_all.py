"""Run every speed benchmark of issue 11 and write bench/RESULTS.md.

    .venv/bin/python bench/run_all.py [--quick] [--work DIR] [--out bench/RESULTS.md]

Each bench runs as its own process (``sys.executable bench/<name>.py ...``); its last JSON
line is kept. ``--quick`` uses smaller sizes (a smoke run, not figures to report). The page
written holds one table per bench, the ratios against the issue's targets, the load average
and the command lines that reproduce it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _commands(work: str, quick: bool) -> dict[str, list[str]]:
    w = ["--work", work]
    if quick:
        return {
            "discovery_speed": ["--sizes", "200,1000", "--repeats", "1", *w],
            "ct_load_speed": ["--slices", "50", "--repeats", "1", *w],
            "stage_times": ["--repeats", "1", *w],
            "batch_throughput": ["-n", "4", "--repeats", "1"],
        }
    return {
        "discovery_speed": ["--sizes", "1000,5000", "--repeats", "3", *w],
        "ct_load_speed": ["--slices", "100,300", "--repeats", "3", *w],
        "stage_times": ["--repeats", "3", *w],
        # 24 studies: with 12, the two workers' last studies rarely end together and that
        # tail (on average half a study, about 7 % of the 2-worker wall) showed in the scaling
        "batch_throughput": ["-n", "24", "--input", f"{work}/batch-input-24"],
    }


def _run(name: str, args: list[str]) -> tuple[dict[str, Any], str, float]:
    cmd = [sys.executable, str(HERE / f"{name}.py"), *args]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    line = next(ln for ln in reversed(done.stdout.splitlines()) if ln.startswith("{"))
    return json.loads(line), done.stdout, wall


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join("-" if v is None else str(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def _discovery_md(d: dict[str, Any]) -> str:
    lo, hi = d["sizes"]
    octo = d["per_file_us"]["octoscan"]
    rows = [
        [peer, d["median_s"][str(lo)][peer], d["median_s"][str(hi)][peer], us, round(us / octo, 2)]
        for peer, us in d["per_file_us"].items()
    ]
    table = _md_table(
        ["peer", f"{lo} files (s)", f"{hi} files (s)", "us/file (slope)", "x octoscan"], rows
    )
    return (
        f"{table}\n\noctoscan per file vs pydicom header-only: "
        f"**{d['speedup_vs_pydicom_header']}x faster** (target >= 5x); "
        f"octoscan / 4 KiB floor: **{d['ratio_to_floor']}x** (goal <= 2x)."
    )


def _ct_md(d: dict[str, Any]) -> str:
    rows = []
    for run in d["runs"]:
        for peer, ms in run["ms_per_slice"].items():
            rows.append([run["slices"], run["variant"], peer, ms, run["ratio_to_octoscan"][peer]])
    notes = "".join(f"\n\n{n}" for n in d.get("notes", []))
    return (
        _md_table(["slices", "variant", "peer", "ms/slice", "peer time / octoscan time"], rows)
        + "\n\nTargets: sitk / octoscan >= 1 (no slower than SimpleITK); dcm2niix / octoscan "
        ">= 0.67 (within 1.5x of dcm2niix)." + notes
    )


def _stages_md(d: dict[str, Any]) -> str:
    studies = d["studies"]
    stages = ["discovery", "load", "score", "result", "overlays", "report", "dicom"]
    rows = [[s, *(studies[k]["stages_s"].get(s) for k in studies)] for s in stages]
    rows.append(["**total**", *(studies[k]["total_s"] for k in studies)])
    imports = _md_table(
        ["import (fresh process)", "s"], [[k, v] for k, v in d["imports_s"].items()]
    )
    return (
        _md_table(["stage (median s)", *studies], rows)
        + f"\n\n{imports}\n\nPeak RSS of the process: **{d['peak_rss_mib']} MiB** "
        "(target <= 2048 MiB per worker). Targets: planar <= 2 s, SPECT/CT <= 10 s (warm, "
        "imports excluded)."
    )


def _batch_md(d: dict[str, Any]) -> str:
    rows = [
        [r["workers"], r.get("mode", "cold"), r["studies"], r["ok"], r["wall_s"],
         r["studies_per_min"], "-" if r["median_study_s"] is None else r["median_study_s"],
         r["scaling"],
         " ".join(str(v) for v in r.get("scaling_runs", []))]
        for r in d["runs"]
    ]  # fmt: skip
    res = d["resume"]
    warmup = d.get("warmup_s") or {}
    return (
        _md_table(
            [
                "workers",
                "mode",
                "studies",
                "ok",
                "wall s",
                "studies/min",
                "median s/study",
                "scaling",
                "scaling per round",
            ],
            rows,
        )
        + f"\n\nMedians of {d.get('repeats', 1)} rounds, the configurations interleaved in each. "
        "Target: 2 workers >= 1.7x of 1. `cold`: a fresh `octoscan run --workers N` process, "
        "its interpreter start, imports, worker start-up and exit included; `warm`: an "
        "executor started and warmed on a batch of "
        f"{d.get('warmup_studies', '-')} studies first (start-up and warm-up: "
        + ", ".join(f"{k} worker(s) {v} s" for k, v in warmup.items())
        + f"); scaling against 1 worker in the same mode. Re-run with resume: "
        f"{res['unchanged']} unchanged in {res['wall_s']} s."
    )


RENDER = {
    "discovery_speed": ("Header discovery", _discovery_md),
    "ct_load_speed": ("CT series load (512 x 512)", _ct_md),
    "stage_times": ("Per-stage time of one study (warm worker)", _stages_md),
    "batch_throughput": ("Batch throughput (planar phantom studies)", _batch_md),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--work", default="/tmp/octoscan-bench", help="data folder (reused)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--only", default=None, help="comma-separated bench names")
    args = parser.parse_args(argv)
    commands = _commands(args.work, args.quick)
    if args.only:
        commands = {k: v for k, v in commands.items() if k in args.only.split(",")}
    sections = []
    for name, bench_args in commands.items():
        load_before = os.getloadavg()
        figures, _, wall = _run(name, bench_args)
        title, render = RENDER[name]
        cmd = " ".join([".venv/bin/python", f"bench/{name}.py", *bench_args])
        sections.append(
            f"## {title}\n\n`{cmd}`  \nload average before: "
            f"{', '.join(f'{v:.2f}' for v in load_before)}; bench wall {wall:.0f} s\n\n"
            f"{render(figures)}\n"
        )
    head = (
        "# octoscan speed benchmarks (issue 11)\n\n"
        f"Written by `.venv/bin/python bench/run_all.py{' --quick' if args.quick else ''}` on "
        f"{time.strftime('%Y-%m-%d %H:%M')}; {platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}. Peers run round-robin in the same process and "
        "run, medians of the repeats after one warm-up pass; the machine is shared, so the "
        "ratios (same run) matter more than the absolute times.\n"
    )
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(head + "\n" + "\n".join(sections))
    os.replace(tmp, args.out)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
