"""``octoscan run INPUT``: score every study under a folder (the batch pipeline).

A thin layer over :func:`octoscan.pipelines.batch.run_batch`. Exit codes: 0 when every
study is ok (skipped non-study files do not count), 1 when any study failed, 2 for a usage
or configuration error (bad option, INPUT missing, ``--out`` inside INPUT, output folder in
use, Dask scheduler unreachable, an invalid ``--clinical`` file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from octoscan.imaging.errors import InvalidInputError
from octoscan.models.config import load_config
from octoscan.pipelines.batch import BatchSetupError, check_batch_paths, run_batch
from octoscan.pipelines.cli_options import add_scoring_options
from octoscan.pipelines.clinical_io import read_clinical_file
from octoscan.pipelines.executors import DASK_UNAVAILABLE, DaskExecutor, StudyExecutor
from octoscan.pipelines.identity import load_pseudonym_key
from octoscan.pipelines.study import StudyOptions

DEFAULT_OUT = Path("octoscan-out")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: expected 1 or more")
    return value


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "run",
        help="score every study under a folder (parallel, resumable) into CSV and JSON",
        description=(
            "Discover every study under INPUT, score each in parallel and write "
            "DIR/<study key>/result.json, DIR/results.csv, DIR/lesions.csv and "
            "DIR/failed.json. A re-run skips studies whose outputs are complete for the same "
            "input files (content hashes), config and options. Exit 0 when all studies are "
            "ok, 1 when any failed, 2 for a usage or configuration error."
        ),
    )
    p.add_argument("input", metavar="INPUT", help="folder of DICOM studies (read only)")
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"output folder, outside INPUT (default ./{DEFAULT_OUT})",
    )
    p.add_argument(
        "--config",
        default="default",
        metavar="FILE",
        help="rule set name or TOML file (default: default)",
    )
    p.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="worker processes (default: number of CPUs; 1 runs in this process)",
    )
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reuse complete outputs of an earlier run (default: on)",
    )
    p.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="run the studies on a Dask scheduler, e.g. tcp://127.0.0.1:8786 "
        "(inputs must be readable at the same paths on its workers)",
    )
    add_scoring_options(p)
    p.add_argument(
        "--dicom-out",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write DICOM results (SR, SEG, overlay Secondary Capture) under DIR/<key>/dicom/",
    )
    p.add_argument(
        "--pseudonymise",
        action="store_true",
        help="replace the Patient module of DICOM results with the keyed pseudonym",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
    p.set_defaults(func=run)


def _usage_error(exc: InvalidInputError) -> int:
    print(f"octoscan run: error [{exc.code}]: {exc}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if args.dask is not None and args.workers is not None:
        print(
            "octoscan run: error [invalid_option]: --workers and --dask exclude each other "
            "(a Dask cluster's size is set when its workers start)",
            file=sys.stderr,
        )
        return 2
    config = load_config(args.config)  # ConfigError: exit 2 through cli.main
    try:
        clinical = read_clinical_file(args.clinical) if args.clinical is not None else None
    except InvalidInputError as exc:
        return _usage_error(exc)
    try:
        input_dir, out_dir = check_batch_paths(args.input, args.out)
    except BatchSetupError as exc:
        return _usage_error(exc)
    executor: StudyExecutor | None = None
    try:
        if args.dask is not None:
            executor = DaskExecutor(args.dask)
        options = StudyOptions(
            assume_sstr=args.assume_sstr,
            radiopharmaceutical=args.radiopharmaceutical,
            cnn=args.cnn,
            show_phi=args.show_phi,
            pseudonym_key=load_pseudonym_key(out_dir),
            clinical=clinical,
            dicom_out=args.dicom_out,
            pseudonymise=args.pseudonymise,
        )
        summary = run_batch(
            input_dir,
            out_dir,
            config=config,
            options=options,
            workers=args.workers,
            resume=args.resume,
            executor=executor,
            progress=not args.no_progress,
        )
    except BatchSetupError as exc:
        return _usage_error(exc)
    except InvalidInputError as exc:
        if exc.code == DASK_UNAVAILABLE:
            return _usage_error(exc)
        raise
    finally:
        if executor is not None:
            executor.close()
    print(summary.format())
    return summary.exit_code
