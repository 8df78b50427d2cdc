"""Shared helpers of the speed benchmarks (issue 11): work folders, timing, memory, output.

Every bench script prints a small table and one JSON line (``{"benchmark": NAME, ...}``).
Timings are wall seconds from :func:`time.perf_counter`; a figure is the median of
``repeats`` runs after one warm-up run (so the page cache is warm). The load average at the
time of the run goes into every JSON line: the benches share cores with other work.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WORK = Path("/tmp/octoscan-bench")
OCTOSCAN = str(Path(sys.executable).with_name("octoscan"))


def work_dir(work: str | Path | None, name: str) -> Path:
    """``work/name`` (default ``/tmp/octoscan-bench/name``), created; data there is reused."""
    base = Path(work) if work is not None else DEFAULT_WORK
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_average() -> tuple[float, float, float]:
    """1, 5 and 15 minute load averages, rounded."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def time_call(fn: Callable[[], Any], *, repeats: int = 3, warmup: int = 1) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def time_interleaved(
    fns: dict[str, Callable[[], Any]], *, repeats: int = 3, warmup: int = 1
) -> dict[str, list[float]]:
    """Like :func:`time_call` for several peers, run round-robin so load drifts hit all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def peak_rss_mib(*, children: bool = False) -> float:
    """Peak resident set size of this process (or of its waited-for children), MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return round(resource.getrusage(who).ru_maxrss / 1024.0, 1)  # Linux: KiB


def run_octoscan(args: Sequence[str]) -> None:
    """Run the installed ``octoscan`` command; raise with its output when it fails."""
    done = subprocess.run([OCTOSCAN, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"octoscan {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def tool(name: str) -> str | None:
    """Absolute path of an external program, or None when it is not installed."""
    return shutil.which(name)


def dicom_files(folder: Path) -> list[str]:
    """Every file under ``folder``, sorted (the listing peers get, taken fresh per call)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        out.extend(os.path.join(dirpath, f) for f in sorted(filenames))
    return out


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned text table."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def emit_json(name: str, payload: dict[str, Any]) -> None:
    """Print the machine-readable line of a benchmark (with the load average)."""
    record = {"benchmark": name, "load_average": load_average(), **payload}
    print(json.dumps(record, sort_keys=True))
