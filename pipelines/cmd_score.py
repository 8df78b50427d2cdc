"""``octoscan score STUDY_FOLDER``: score the study (or studies) found in one folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from octoscan.imaging.discovery import discover
from octoscan.imaging.errors import InvalidInputError
from octoscan.models.config import load_config
from octoscan.pipelines.cli_options import add_scoring_options
from octoscan.pipelines.clinical_io import read_clinical_file
from octoscan.pipelines.identity import load_pseudonym_key
from octoscan.pipelines.outputs import write_study_outputs
from octoscan.pipelines.study import StudyOptions, process_study
from octoscan.pipelines.tables import format_result

DEFAULT_OUT = Path("octoscan-out")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "score",
        help="score one study folder and write result.json",
        description=(
            "Find the study in STUDY_FOLDER, score it and write DIR/result.json. With one "
            "study, --out DIR is the study's output folder; with several, each goes to "
            "DIR/<study key>/. Default DIR: ./octoscan-out/<study key>."
        ),
    )
    p.add_argument("folder", metavar="STUDY_FOLDER")
    p.add_argument("--config", default="default", help="rule set name or TOML file")
    p.add_argument("--out", type=Path, default=None, metavar="DIR")
    add_scoring_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        raise InvalidInputError("not a folder", code="not_found", path=folder)
    config = load_config(args.config)
    clinical = read_clinical_file(args.clinical) if args.clinical is not None else None
    index = discover(folder)
    studies = index.studies()
    if not studies:
        raise InvalidInputError("no DICOM study found", code="no_study", path=folder)
    key_root = args.out if args.out is not None else DEFAULT_OUT
    options = StudyOptions(
        assume_sstr=args.assume_sstr,
        radiopharmaceutical=args.radiopharmaceutical,
        cnn=args.cnn,
        show_phi=args.show_phi,
        pseudonym_key=load_pseudonym_key(key_root),
        clinical=clinical,
    )
    failed = 0
    for series in studies.values():
        outcome = process_study(series, config, options)
        if args.out is not None and len(studies) == 1:
            out_dir = args.out
        else:
            out_dir = key_root / outcome.study_key
        if outcome.status != "ok" or outcome.result is None:
            failed += 1
            print(
                f"study {outcome.study_key}: FAILED [{outcome.error_code}] {outcome.error_reason}",
                file=sys.stderr,
            )
            continue
        paths = write_study_outputs(outcome, out_dir)
        print(format_result(outcome.result))
        print(f"written: {paths[0]}")
    return 1 if failed else 0
