"""Long fuzzing run: the properties of tests/imaging/test_fuzz.py with a large random budget.

    .venv/bin/python bench/fuzz_long.py [--minutes 10] [--examples 500] [--seed 0]
                                        [--target nm_planar ...] [--crashes DIR]

Each round runs every target (seed file) for ``--examples`` hypothesis examples with a new
random seed, until ``--minutes`` have passed (at least one round). Warnings are errors, as in
the test suite. A broken promise (an exception outside the OctoscanError family, a reason on
several lines, an error not naming the file, a hang past the per-example deadline) stops the
target: hypothesis shrinks the mutant, which is written to ``--crashes`` (default
./fuzz-crashes) as ``<target>-<sha256 prefix>.dcm`` with the traceback beside it, ready to
become a regression test (an ``@example`` in test_fuzz.py or a case of the broken corpus).
Prints a table of outcomes per target (loaded, or the error code) and exits 1 when anything
was found.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the seeds and properties live in the tests package

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402

from tests.imaging.test_fuzz import check_mutant, mutations, seeds  # noqa: E402


def run_target(
    name: str, examples: int, rng_seed: int, outcomes: Counter, crashes: Path
) -> Path | None:
    """Fuzz one target; returns the crash file written, or None when every example passed."""
    failing: list[bytes] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @hypothesis_seed(rng_seed)
    @given(data=mutations(name))
    def prop(data: bytes) -> None:
        try:
            outcomes[check_mutant(name, data)] += 1
        except BaseException:
            failing.append(data)
            raise

    try:
        prop()
    except Exception:
        data = failing[-1]  # the last failure is the shrunk one
        crashes.mkdir(parents=True, exist_ok=True)
        stem = f"{name}-{hashlib.sha256(data).hexdigest()[:12]}"
        path = crashes / f"{stem}.dcm"
        path.write_bytes(data)
        (crashes / f"{stem}.txt").write_text(traceback.format_exc())
        return path
    return None


def main(argv: list[str] | None = None) -> int:
    targets = sorted(seeds())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="time budget (default 10)")
    parser.add_argument("--examples", type=int, default=500, help="examples per target per round")
    parser.add_argument("--seed", type=int, default=None, help="first random seed (default: time)")
    parser.add_argument("--target", action="append", choices=targets, help="default: all")
    parser.add_argument("--crashes", type=Path, default=Path("fuzz-crashes"))
    args = parser.parse_args(argv)
    warnings.simplefilter("error")  # as the test suite's filterwarnings
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    chosen = args.target or targets
    rng_seed = args.seed if args.seed is not None else int(time.time())
    outcomes = {name: Counter() for name in chosen}
    found: dict[str, Path] = {}
    deadline = time.monotonic() + 60.0 * args.minutes
    rounds = 0
    while True:
        for name in chosen:
            if name in found:
                continue
            crash = run_target(name, args.examples, rng_seed + rounds, outcomes[name], args.crashes)
            if crash is not None:
                found[name] = crash
                print(f"{name}: broken promise, mutant written to {crash}", flush=True)
        rounds += 1
        if time.monotonic() >= deadline or len(found) == len(chosen):
            break
    print(f"{rounds} round(s), first seed {rng_seed}, {args.examples} examples per round")
    for name in chosen:
        total = sum(outcomes[name].values())
        top = ", ".join(f"{k} {v}" for k, v in outcomes[name].most_common(8))
        status = f"FOUND {found[name]}" if name in found else "ok"
        print(f"  {name:15s} {total:7d} examples  {status}  [{top}]")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
