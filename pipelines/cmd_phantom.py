"""``octoscan phantom`` and ``octoscan phantom-cohort``: synthetic SSTR studies with known truth.

``octoscan phantom OUT_DIR`` writes one study (DICOM series in sub-folders) and OUT_DIR/truth.json;
``octoscan phantom-cohort OUT_DIR -n N`` writes N studies OUT_DIR/study_NNN/ (each with its
truth.json) in parallel processes and an index OUT_DIR/cohort.json. Same seed, same bytes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.phantom.cohort import CohortEntry, cohort_specs
from octoscan.imaging.phantom.dicom_write import COMPRESSIONS, PLANAR_VARIANTS
from octoscan.imaging.phantom.lesions import parse_lesion_specs
from octoscan.imaging.phantom.study import KINDS, StudySpec, generate_study
from octoscan.imaging.phantom.truth import StudyTruth
from octoscan.models.config import ScoringConfig, load_config
from octoscan.pipelines.atomic import write_json_atomic
from octoscan.pipelines.phantom_truth import compose_truth, write_truth

TRUTH_NAME = "truth.json"
COHORT_INDEX = "cohort.json"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "phantom",
        help="write a synthetic SSTR phantom study (DICOM) with its truth.json",
        description=(
            "Write one synthetic somatostatin-receptor study as DICOM under OUT_DIR, with "
            "OUT_DIR/truth.json (organ and lesion truth, grades, expected decision)."
        ),
    )
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--seed", type=int, default=1, help="study seed (default 1)")
    p.add_argument(
        "--kind",
        choices=KINDS,
        default="all",
        help="planar, spect-ct, pet-ct (68Ga study) or all (planar + SPECT/CT)",
    )
    p.add_argument(
        "--lesions",
        default=None,
        help="number of random lesions (0-20), or SITE:DIAMETER_MM:RATIO_LIVER[:ELONGATION] "
        "items separated by commas (sites: liver, pancreas, lymph_node, bone, lung)",
    )
    p.add_argument(
        "--counts",
        type=float,
        default=1.5e6,
        help="expected counts of the anterior whole-body view (default 1.5e6)",
    )
    p.add_argument("--ct-slices", type=int, default=None, help="number of CT slices")
    p.add_argument(
        "--compress",
        choices=sorted(COMPRESSIONS),
        default=None,
        help="compress pixel data (lossless)",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME",
        help=f"DICOM variant of the whole-body views, repeatable or comma-separated: "
        f"{', '.join(PLANAR_VARIANTS)}",
    )
    p.add_argument(
        "--hours",
        default="24",
        help="planar time point(s) in hours post injection, e.g. 24 or 4,24",
    )
    p.add_argument("--splenectomy", action="store_true", help="no spleen")
    p.add_argument("--diffuse-liver", action="store_true", help="diffuse liver involvement")
    p.add_argument("--config", default="default", help="rule set for the truth's grades")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUT_DIR when it holds an earlier phantom (truth.json)",
    )
    p.set_defaults(func=run_phantom)

    c = sub.add_parser(
        "phantom-cohort",
        help="write a deterministic cohort of phantom studies",
        description=(
            "Write N phantom studies OUT_DIR/study_NNN spanning grades, sizes, count levels and "
            "edge cases (splenectomy, diffuse liver, no lesions, 4 h, single view), each with "
            "its truth.json, and OUT_DIR/cohort.json."
        ),
    )
    c.add_argument("out_dir", metavar="OUT_DIR")
    c.add_argument("-n", type=int, required=True, help="number of studies")
    c.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    c.add_argument("--kind", choices=KINDS, default="all")
    c.add_argument("--ct-slices", type=int, default=None)
    c.add_argument(
        "--workers", type=int, default=None, help="parallel processes (default: number of CPUs)"
    )
    c.add_argument("--config", default="default", help="rule set for the truth's grades")
    c.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUT_DIR when it holds an earlier cohort (cohort.json)",
    )
    c.set_defaults(func=run_cohort)


def prepare_out_dir(out: Path, marker: str, overwrite: bool) -> None:
    """Refuse a non-empty OUT_DIR unless it is an earlier phantom output and --overwrite."""
    if out.exists() and not out.is_dir():
        raise InvalidInputError(
            "OUT_DIR exists and is not a folder", code="invalid_option", path=out
        )
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InvalidInputError(
                "OUT_DIR is not empty; choose an empty or new folder, or pass --overwrite to "
                f"replace an earlier phantom output (a folder holding {marker})",
                code="invalid_option",
                path=out,
            )
        if not (out / marker).is_file():
            raise InvalidInputError(
                f"--overwrite only replaces an earlier phantom output; no {marker} here",
                code="invalid_option",
                path=out,
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _parse_hours(text: str) -> tuple[float, ...]:
    try:
        hours = tuple(sorted({float(h) for h in text.split(",") if h.strip()}))
    except ValueError:
        raise InvalidInputError(
            f"--hours {text!r}: expected numbers separated by commas, e.g. 24 or 4,24",
            code="invalid_option",
        ) from None
    if not 1 <= len(hours) <= 3:
        raise InvalidInputError(f"--hours {text!r}: give 1 to 3 time points", code="invalid_option")
    return hours


def _parse_lesions(text: str | None) -> Any:
    if text is None:
        return None
    if text.strip().isdigit():
        return int(text)
    return parse_lesion_specs(text)


def spec_from_args(args: argparse.Namespace) -> StudySpec:
    """The :class:`StudySpec` of ``octoscan phantom`` arguments (validated)."""
    variants = tuple(v.strip() for item in args.variant for v in item.split(",") if v.strip())
    return StudySpec(
        seed=args.seed,
        kind=args.kind,
        lesions=_parse_lesions(args.lesions),
        counts=args.counts,
        ct_slices=args.ct_slices,
        compress=args.compress,
        variants=variants,
        hours_post_injection=_parse_hours(args.hours),
        splenectomy=args.splenectomy,
        diffuse_liver=args.diffuse_liver,
    )


def print_summary(
    truth: StudyTruth, composed: dict[str, Any], out: Path, *, file: Any = None
) -> None:
    """A short human-readable summary of one written study (no patient identifiers)."""
    f = file or sys.stdout
    print(f"phantom study seed {truth.seed} ({truth.kind}, {truth.tracer}) -> {out}", file=f)
    for s in truth.series:
        print(
            f"  {s.folder:<20} {s.modality:<3} {s.role:<18} {s.n_files:>4} file(s)  "
            f"{s.series_description}",
            file=f,
        )
    if truth.primary_planar is not None:
        p = truth.primary_planar
        print(
            f"  planar {p.hours_post_injection:g} h: anterior {p.counts_anterior} counts, "
            f"posterior {p.counts_posterior} counts",
            file=f,
        )
    print(f"  lesions: {len(truth.lesions)}", file=f)
    for les in composed["lesions"]:
        app = les.get("apparent_grade")
        extra = (
            f" apparent grade {app} (ratio to liver {les['apparent_ratio_liver']})"
            f"{'' if les.get('visible') else ' not visible'}"
            if app is not None
            else ""
        )
        print(
            f"    {les['id']:<4} {les['site']:<11} {les['diameter_mm']:>5.1f} mm  "
            f"true ratio to liver {les['true_ratio_liver']:<7g} true grade "
            f"{les['true_grade']}{extra}{'  borderline' if les['borderline'] else ''}",
            file=f,
        )
    for name, d in composed["expected_decision"].items():
        if isinstance(d, dict):
            print(
                f"  expected decision ({name}, {composed['grading']['config']}): {d['status']}"
                f"{' (review justified)' if d['review_justified'] else ''}",
                file=f,
            )


def run_phantom(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    config = load_config(args.config)
    out = Path(args.out_dir)
    prepare_out_dir(out, TRUTH_NAME, args.overwrite)
    t0 = time.perf_counter()
    truth = generate_study(spec, out)
    composed = compose_truth(truth, config)
    write_json_atomic(out / TRUTH_NAME, composed)
    print_summary(truth, composed, out)
    print(f"  written in {time.perf_counter() - t0:.1f} s", file=sys.stdout)
    return 0


def _cohort_worker(job: tuple[CohortEntry, str, ScoringConfig]) -> dict[str, Any]:
    entry, root, config = job
    t0 = time.perf_counter()
    out = Path(root) / entry.name
    if out.exists():
        shutil.rmtree(out)
    truth = generate_study(entry.spec, out)
    write_truth(out / TRUTH_NAME, truth, config)
    return {
        "name": entry.name,
        "index": entry.index,
        "seed": entry.spec.seed,
        "edge_case": entry.edge_case,
        "kind": entry.spec.kind,
        "counts": entry.spec.counts,
        "variants": list(entry.spec.variants),
        "study_instance_uid": truth.study_instance_uid,
        "n_lesions": len(truth.lesions),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def generate_cohort(
    out_dir: str | Path,
    entries: Sequence[CohortEntry],
    *,
    config: ScoringConfig | None = None,
    workers: int | None = None,
) -> list[dict[str, Any]]:
    """Write every study of ``entries`` under ``out_dir`` (in ``workers`` processes) and the
    index ``cohort.json``; returns the index rows in cohort order. ``config`` (default: the
    ``default`` rule set) grades the truth."""
    config = config or load_config("default")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(e, str(root), config) for e in entries]
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if n_workers == 1:
        rows = [_cohort_worker(j) for j in jobs]
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(n_workers) as pool:
            rows = pool.map(_cohort_worker, jobs, chunksize=1)
    rows.sort(key=lambda r: r["index"])
    write_json_atomic(root / COHORT_INDEX, {"studies": rows, "config": config.name})
    return rows


def run_cohort(args: argparse.Namespace) -> int:
    entries = cohort_specs(args.n, seed=args.seed, kind=args.kind, ct_slices=args.ct_slices)
    config = load_config(args.config)
    out = Path(args.out_dir)
    prepare_out_dir(out, COHORT_INDEX, args.overwrite)
    t0 = time.perf_counter()
    rows = generate_cohort(out, entries, config=config, workers=args.workers)
    total = time.perf_counter() - t0
    for r in rows:
        print(
            f"  {r['name']}  seed {r['seed']:<8} {r['edge_case']:<15} {r['n_lesions']} lesion(s) "
            f"{int(r['counts']):>8} counts  {r['seconds']:.2f} s"
        )
    print(f"phantom cohort: {len(rows)} studies in {total:.1f} s -> {out}")
    return 0
