"""The ``octoscan`` command: a thin layer over the Python API.

Each subcommand lives in its own module under ``octoscan.pipelines`` (``cmd_*.py``) exposing
``register(subparsers) -> None`` which adds its parser and sets ``func(args) -> int``.
Exit codes: 0 all ok, 1 some studies failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from importlib.metadata import PackageNotFoundError, version

from octoscan.imaging.errors import ConfigError, OctoscanError

# Subcommand modules, in the order ``octoscan --help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "cmd_index",
    "cmd_score",
    "cmd_run",
    "cmd_config",
    "cmd_criteria",
    "cmd_phantom",
    "cmd_demo",
    "cmd_train",
)


def _version() -> str:
    try:
        return version("octoscan")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="octoscan",
        description=(
            "Krenning scoring of somatostatin-receptor scans from DICOM. Decision support for "
            "a nuclear-medicine physician, not a medical device."
        ),
    )
    parser.add_argument("--version", action="version", version=f"octoscan {_version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"octoscan.pipelines.{name}")
        module.register(sub)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    fmt = "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help/--version
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _configure_logging(args.verbose)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"octoscan: configuration error [{exc.code}]: {exc}", file=sys.stderr)
        return 2
    except OctoscanError as exc:
        print(f"octoscan: error [{exc.code}]: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
