"""Reading a clinical file (``--clinical FILE``) into a validated table (issue 7).

The format follows the suffix (``.csv``, ``.tsv``, ``.txt``: CSV; ``.json``: JSON); any other
suffix is sniffed from the content. Parsing and validation live in
:mod:`octoscan.models.clinical`; this module only reads the bytes.
"""

from __future__ import annotations

from pathlib import Path

from octoscan.imaging.errors import InvalidInputError
from octoscan.models.clinical import (
    ClinicalCheck,
    ClinicalTable,
    check_clinical,
    format_for,
    parse_clinical,
    sniff_format,
)

MAX_CLINICAL_BYTES = 64 * 1024 * 1024
"""Refuse larger files (a clinical table of 100 000 rows is a few MB)."""


def _read(path: str | Path) -> tuple[bytes, str]:
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(
            "clinical file not found; expected a CSV or JSON file", code="not_found", path=p
        )
    size = p.stat().st_size
    if size > MAX_CLINICAL_BYTES:
        raise InvalidInputError(
            f"clinical file of {size} bytes; expected at most {MAX_CLINICAL_BYTES}",
            code="invalid_clinical",
            path=p,
        )
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InvalidInputError(
            f"clinical file unreadable: {exc.strerror}", code="not_found", path=p
        ) from exc
    return data, format_for(p.name) or sniff_format(data)


def read_clinical_file(path: str | Path) -> ClinicalTable:
    """The validated table of a clinical file.

    Raises :class:`InvalidInputError`: code ``not_found`` (missing or unreadable) or
    ``invalid_clinical`` (any invalid row or field, all named with row and field).
    """
    data, fmt = _read(path)
    return parse_clinical(data, fmt=fmt, source=str(path))


def check_clinical_file(path: str | Path) -> ClinicalCheck:
    """Every record and every problem of a clinical file (for ``octoscan criteria check``).

    Raises :class:`InvalidInputError` only when the file cannot be read at all.
    """
    data, fmt = _read(path)
    return check_clinical(data, fmt=fmt, source=str(path))
