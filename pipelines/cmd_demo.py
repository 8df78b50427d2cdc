"""``octoscan demo [OUT_DIR]``: write a phantom study and run the main job on it.

The study (planar whole body + SPECT/CT, with its ``truth.json``) goes to ``OUT_DIR/study``;
the main job, :func:`octoscan.pipelines.batch.run_batch`, writes results, overlays and the
HTML review report to ``OUT_DIR/results``. The summary lists every series as loaded, the
scored result and the truth, and ends with the path of the report. Without OUT_DIR a new
folder under the system's temporary directory is used (and kept, so the report can be
opened).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from octoscan.imaging.discovery import discover
from octoscan.imaging.errors import OctoscanError
from octoscan.imaging.phantom.lesions import parse_lesion_specs
from octoscan.imaging.phantom.study import StudySpec, generate_study
from octoscan.imaging.planar import load_planar
from octoscan.imaging.types import SeriesKind
from octoscan.imaging.volume import load_ct, load_pet, load_spect
from octoscan.models.config import load_config
from octoscan.pipelines.atomic import write_json_atomic
from octoscan.pipelines.batch import run_batch
from octoscan.pipelines.cmd_phantom import TRUTH_NAME, prepare_out_dir
from octoscan.pipelines.outputs import RESULT_NAME
from octoscan.pipelines.phantom_truth import compose_truth
from octoscan.pipelines.report import INDEX_NAME
from octoscan.pipelines.tables import format_result

STUDY_SUBDIR = "study"
RESULTS_SUBDIR = "results"
DEMO_SEED = 20240501
DEMO_LESIONS = "liver:35:6,liver:18:0.8,pancreas:25:12,lymph_node:15:0.35,bone:20:3"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="write a phantom study and run octoscan on it",
        description=(
            "Write a synthetic Octreoscan study (planar whole body + SPECT/CT) to OUT_DIR (a "
            "temporary folder when omitted) and run the main job on it."
        ),
    )
    p.add_argument("out_dir", nargs="?", default=None, metavar="OUT_DIR")
    p.add_argument("--seed", type=int, default=DEMO_SEED, help=f"study seed (default {DEMO_SEED})")
    p.add_argument("--ct-slices", type=int, default=None, help="number of CT slices")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUT_DIR when it holds an earlier phantom (truth.json)",
    )
    p.set_defaults(func=run)


def _load_and_describe(root: Path, out: TextIO) -> tuple[int, int]:
    """Discover and load every series under ``root``; returns (series loaded, failures)."""
    index = discover(root)
    loaded = failed = 0
    print(
        f"index: {len(index.series)} series, {index.n_files_seen} files, "
        f"{len(index.skipped)} skipped",
        file=out,
    )
    for entry in index.series:
        head = (
            f"  {entry.kind.value:<18} {entry.modality or '-':<3} {entry.series_description or ''}"
        )
        try:
            if entry.kind in (SeriesKind.PLANAR_WHOLE_BODY, SeriesKind.PLANAR_STATIC):
                images = load_planar(entry)
                print(f"{head}: {len(images)} view(s)", file=out)
                for im in images:
                    windows = ", ".join(im.acquisition.energy_windows_used) or "-"
                    print(
                        f"      {im.view.value:<9} {im.counts.shape[0]}x{im.counts.shape[1]} "
                        f"{im.total_counts:>10.0f} counts  (view by {im.view_rule}; "
                        f"windows summed: {windows})",
                        file=out,
                    )
            elif entry.kind in (SeriesKind.CT, SeriesKind.SPECT, SeriesKind.PET):
                loader = {
                    SeriesKind.CT: load_ct,
                    SeriesKind.SPECT: load_spect,
                    SeriesKind.PET: load_pet,
                }[entry.kind]
                vol = loader(entry.files)
                spacing = " x ".join(f"{s:.2f}" for s in vol.spacing_mm)
                print(
                    f"{head}: {vol.shape} voxels of {spacing} mm, {vol.units}, "
                    f"range {float(vol.array.min()):.0f}..{float(vol.array.max()):.0f}",
                    file=out,
                )
            else:
                print(f"{head}: not loaded ({entry.kind_reason or entry.kind.value})", file=out)
                continue
            loaded += 1
        except OctoscanError as exc:
            failed += 1
            print(f"{head}: FAILED [{exc.code}] {exc.reason}", file=out)
    return loaded, failed


def _describe_truth(composed: dict[str, Any], out: TextIO) -> None:
    print(f"truth: {len(composed['lesions'])} lesion(s)", file=out)
    for les in composed["lesions"]:
        seen = "visible" if les.get("visible") else "not visible on planar"
        print(
            f"  {les['id']:<4} {les['site']:<11} {les['diameter_mm']:>5.1f} mm  true grade "
            f"{les['true_grade']}, apparent planar grade {les.get('apparent_grade')} ({seen})",
            file=out,
        )
    planar = composed["expected_decision"].get("planar")
    if planar:
        print(
            f"expected decision ({composed['grading']['config']}, planar): {planar['status']}",
            file=out,
        )


def run_demo(out_dir: Path, *, seed: int, ct_slices: int | None, out: TextIO) -> int:
    """Write the demo study to ``out_dir/study``, score it into ``out_dir/results``.

    Returns the exit code (0 when the study was scored and every series loaded).
    """
    study_dir = out_dir / STUDY_SUBDIR
    results_dir = out_dir / RESULTS_SUBDIR
    spec = StudySpec(
        seed=seed, kind="all", lesions=parse_lesion_specs(DEMO_LESIONS), ct_slices=ct_slices
    )
    config = load_config("default")
    truth = generate_study(spec, study_dir)
    composed = compose_truth(truth, config)
    write_json_atomic(study_dir / TRUTH_NAME, composed)
    print(f"demo study written to {study_dir}", file=out)
    _, failed = _load_and_describe(study_dir, out)
    summary = run_batch(study_dir, results_dir, config=config, workers=1, resume=False)
    for record in summary.records:
        result_path = results_dir / record.study_key / RESULT_NAME
        if record.status == "ok" and result_path.is_file():
            print(format_result(json.loads(result_path.read_text(encoding="utf-8"))), file=out)
        else:
            print(f"study {record.study_key}: FAILED [{record.error_code}]", file=out)
    _describe_truth(composed, out)
    print(f"report: {results_dir / INDEX_NAME}", file=out)
    return 1 if failed or summary.exit_code else 0


def run(args: argparse.Namespace) -> int:
    if args.out_dir is None:
        out_dir = Path(tempfile.mkdtemp(prefix="octoscan-demo-"))
    else:
        out_dir = Path(args.out_dir)
        prepare_out_dir(out_dir / STUDY_SUBDIR, TRUTH_NAME, args.overwrite)
        if args.overwrite and (out_dir / RESULTS_SUBDIR).is_dir():
            shutil.rmtree(out_dir / RESULTS_SUBDIR)
    return run_demo(out_dir, seed=args.seed, ct_slices=args.ct_slices, out=sys.stdout)
