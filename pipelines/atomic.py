"""Atomic, deterministic file writing: a temp file in the target folder, fsync, then rename.

A reader (or a batch re-run after SIGKILL) therefore sees either the old complete file or the
new complete file, never a partial one. Temp names start with ``.octoscan-tmp-`` so that a
crashed run's leftovers are recognisable and removed by :func:`remove_stale_temp_files`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".octoscan-tmp-"
_FILE_MODE = 0o666  # like open(): the user's umask decides (mkstemp alone would give 0600)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; creates parent folders. Returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
    try:
        os.fchmod(fd, _FILE_MODE & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically (newline ``\\n`` on every platform)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def dumps_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, 2-space indent, no NaN, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as deterministic JSON atomically."""
    return write_text_atomic(path, dumps_json(obj))


def remove_stale_temp_files(folders: Iterable[str | Path]) -> int:
    """Delete temp files left by a killed run in ``folders`` (recursively). Returns the count."""
    removed = 0
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            continue
        for p in root.rglob(f"{TEMP_PREFIX}*"):
            if p.is_file():
                p.unlink(missing_ok=True)
                removed += 1
    return removed
