"""Command-line options shared by ``octoscan score`` and ``octoscan run``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_scoring_options(p: argparse.ArgumentParser) -> None:
    """--cnn, --assume-sstr, --radiopharmaceutical, --show-phi, --clinical."""
    p.add_argument(
        "--cnn",
        action="store_true",
        help="add the optional CNN's lesion proposals (needs torch; grades stay measured)",
    )
    p.add_argument("--assume-sstr", action="store_true", help="score an unidentified tracer")
    p.add_argument(
        "--radiopharmaceutical",
        default=None,
        metavar="NAME",
        help="the agent of a SPECT/PET whose headers name only the radionuclide, e.g. "
        "DOTATATE for a post-therapy 177Lu-DOTATATE SPECT (Lu-177 is also used with PSMA "
        "ligands, so octoscan does not guess); checked like a header value, named in the result",
    )
    p.add_argument("--show-phi", action="store_true", help="put the raw PatientID in results")
    p.add_argument(
        "--clinical",
        type=Path,
        default=None,
        metavar="FILE",
        help="clinical values (CSV or JSON, one row per patient or study): the rule set's "
        "clinical criteria enter the decision (see 'octoscan criteria check'); in a batch a "
        "changed file redoes the studies on resume",
    )
