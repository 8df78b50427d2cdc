"""``octoscan index FOLDER``: list the series found under a folder (placeholder until discovery)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("index", help="list DICOM studies and series under a folder")
    p.add_argument("folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise SystemExit("not yet")
