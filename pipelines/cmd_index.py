"""``octoscan index FOLDER [--json]``: list the DICOM studies and series under a folder.

One row per series (study, series, kind, modality, manufacturer, frames/slices, views,
radionuclide, hours post-injection), then the skipped files with their code and reason, then
counts. ``--json`` prints the same on stdout as one JSON object. Patient names and IDs are
never printed. Exit code 0; a missing folder is an input error (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from octoscan.imaging.discovery import discover
from octoscan.imaging.types import SeriesEntry, StudyIndex

_COLUMNS = (
    "study",
    "series",
    "kind",
    "modality",
    "manufacturer",
    "images",
    "views",
    "radionuclide",
    "h p.i.",
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index",
        help="list DICOM studies and series under a folder",
        description="Walk FOLDER, read DICOM headers, and list each series with its kind, "
        "views and radionuclide, then every file that cannot be used and why.",
    )
    p.add_argument("folder", help="folder to search recursively")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument(
        "--follow-symlinks", action="store_true", help="enter symlinked folders (loop-safe)"
    )
    p.set_defaults(func=run)


def _short(uid: str, n: int = 12) -> str:
    return uid if len(uid) <= n else "…" + uid[-(n - 1) :]


def _views_summary(entry: SeriesEntry) -> str:
    if not entry.views:
        return "-"
    return ", ".join(f"{view} x{len(frames)}" for view, frames in entry.views.items())


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def series_to_json(entry: SeriesEntry) -> dict[str, Any]:
    """JSON-ready description of one series (no patient identifiers)."""
    return {
        "study_instance_uid": entry.study_instance_uid,
        "series_instance_uid": entry.series_instance_uid,
        "kind": entry.kind.value,
        "kind_reason": entry.kind_reason,
        "modality": entry.modality,
        "manufacturer": entry.manufacturer,
        "series_description": entry.series_description,
        "files": list(entry.files),
        "n_images": entry.n_images,
        "views": {view: [list(pair) for pair in pairs] for view, pairs in entry.views.items()},
        "view_rule": entry.view_rule,
        "radionuclide": entry.radionuclide,
        "hours_post_injection": entry.hours_post_injection,
        "warnings": list(entry.warnings),
    }


def index_to_json(index: StudyIndex) -> dict[str, Any]:
    """JSON-ready description of a discovery result."""
    return {
        "root": index.root,
        "series": [series_to_json(s) for s in index.series],
        "skipped": [{"path": k.path, "code": k.code, "reason": k.reason} for k in index.skipped],
        "n_files_seen": index.n_files_seen,
        "n_non_dicom": index.n_non_dicom,
    }


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]


def format_index(index: StudyIndex) -> str:
    """Human-readable table of a discovery result."""
    lines: list[str] = []
    if index.series:
        rows: list[tuple[str, ...]] = [_COLUMNS]
        for s in index.series:
            rows.append(
                (
                    _short(s.study_instance_uid),
                    _short(s.series_instance_uid),
                    s.kind.value,
                    s.modality or "-",
                    (s.manufacturer or "-")[:24],
                    str(s.n_images),
                    _views_summary(s),
                    s.radionuclide or "-",
                    _hours(s.hours_post_injection),
                )
            )
        lines.extend(_table(rows))
    else:
        lines.append("no DICOM series found")
    if index.skipped:
        lines.append("")
        lines.append("skipped files:")
        for k in index.skipped:
            lines.append(f"  [{k.code}] {k.path}: {k.reason}")
    n_studies = len(index.studies())
    lines.append("")
    lines.append(
        f"{n_studies} stud{'y' if n_studies == 1 else 'ies'}, {len(index.series)} series, "
        f"{len(index.skipped)} skipped file(s), {index.n_non_dicom} non-DICOM file(s), "
        f"{index.n_files_seen} file(s) seen"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    index = discover(args.folder, follow_symlinks=args.follow_symlinks)
    if args.json:
        json.dump(index_to_json(index), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(format_index(index))
    return 0
