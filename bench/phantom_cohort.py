"""Benchmark: generate a phantom cohort (default 20 studies, planar + SPECT/CT) and time it.

    .venv/bin/python bench/phantom_cohort.py [-n 20] [--workers 2] [--kind all] [--out DIR]

Prints seconds per study (inside its worker), the wall-clock total, studies per minute and the
size on disk. Target (issue 3): 20 studies in under a minute on 2 cores. Without ``--out`` the
cohort is written to a temporary folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from octoscan.imaging.phantom.cohort import cohort_specs
from octoscan.pipelines.cmd_phantom import generate_cohort


def _size_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def run(n: int, seed: int, workers: int, kind: str, out: Path) -> int:
    entries = cohort_specs(n, seed=seed, kind=kind)
    t0 = time.perf_counter()
    rows = generate_cohort(out, entries, workers=workers)
    total = time.perf_counter() - t0
    per = [r["seconds"] for r in rows]
    for r in rows:
        print(
            f"{r['name']}  {r['edge_case']:<15} {r['n_lesions']} lesion(s)  {r['seconds']:6.2f} s"
        )
    print(
        f"{len(rows)} studies ({kind}) with {workers} worker(s): total {total:.1f} s wall, "
        f"{total / len(rows):.2f} s per study wall; per study in its worker: "
        f"median {statistics.median(per):.2f} s, max {max(per):.2f} s; "
        f"{60.0 * len(rows) / total:.0f} studies/min; {_size_mb(out):.0f} MB on disk"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kind", default="all", choices=("planar", "spect-ct", "pet-ct", "all"))
    parser.add_argument("--out", type=Path, default=None, help="keep the cohort here")
    args = parser.parse_args(argv)
    if args.out is not None:
        return run(args.n, args.seed, args.workers, args.kind, args.out)
    with tempfile.TemporaryDirectory(prefix="octoscan-bench-") as tmp:
        return run(args.n, args.seed, args.workers, args.kind, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
