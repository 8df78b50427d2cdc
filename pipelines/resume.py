"""Per-study manifests: when may a batch re-run reuse a study's outputs?

Every study folder ``DIR/<study key>/`` holds, besides its outputs, a ``manifest.json`` written
last, as the commit point of the study (protocol of :func:`commit_study_files`):

1. the old manifest is removed;
2. each output file is written atomically (temp file, fsync, rename);
3. output files of an earlier run that this run did not write are removed;
4. the new manifest is written atomically.

A run killed at any moment therefore leaves either no manifest (the study is redone) or a
manifest whose listed outputs are complete. A manifest names:

* ``inputs``: a SHA-256 over the study's input files (every file of every series of the
  study), each file identified by its path relative to the batch INPUT folder and the SHA-256
  of its bytes. Content is hashed, never trusted from size and mtime: a file rewritten in
  place with the same size within the mtime resolution still changes the digest. No path or
  DICOM value is stored, only the digest, the file count and the byte total;
* ``config_hash`` (:func:`octoscan.models.config.config_hash`), ``options_hash`` (the
  :class:`~octoscan.pipelines.study.StudyOptions` that change a result: ``assume_sstr``,
  ``show_phi``, a keyed check of the pseudonym key, never the key itself, and the SHA-256 of
  the clinical file when one is given) and the octoscan version;
* ``outputs``: the SHA-256 of each output file, checked on reuse, so a result file edited or
  damaged after the run is redone.

Nothing time-dependent is stored: the manifest of an uninterrupted run and of a killed and
resumed run are byte-identical.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from octoscan.models.config import ScoringConfig, config_hash
from octoscan.pipelines.atomic import write_bytes_atomic, write_json_atomic
from octoscan.pipelines.study import StudyOptions, octoscan_version

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "InputDigest",
    "RunFingerprint",
    "StudyManifest",
    "commit_study_files",
    "complete_manifest",
    "digest_inputs",
    "hash_file",
    "options_hash",
    "read_manifest",
    "run_fingerprint",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
_CHUNK_BYTES = 1 << 20
_KEY_CHECK_MESSAGE = b"octoscan manifest pseudonym-key check"


def hash_file(path: str | Path) -> tuple[str, int]:
    """(SHA-256 hex of the file's bytes, size in bytes). Raises OSError when unreadable."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK_BYTES):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


@dataclass(frozen=True)
class InputDigest:
    """Content digest of one study's input files (see the module docstring)."""

    digest: str
    n_files: int
    n_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "n_files": self.n_files, "n_bytes": self.n_bytes}


def _relative(path: str, root: Path) -> str:
    p = Path(path)
    try:
        return p.relative_to(root).as_posix()
    except ValueError:  # a file outside the root (not produced by discovery): keep it whole
        return p.as_posix()


def digest_inputs(paths: Sequence[str], root: str | Path) -> InputDigest:
    """Digest of ``paths`` (content and place relative to ``root``), independent of order.

    Reads every byte of every file. Raises OSError when a file cannot be read.
    """
    root_path = Path(root)
    items: list[tuple[str, str]] = []
    total = 0
    for path in paths:
        file_hash, size = hash_file(path)
        items.append((_relative(path, root_path), file_hash))
        total += size
    h = hashlib.sha256()
    for rel, file_hash in sorted(items):
        h.update(rel.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
        h.update(file_hash.encode("ascii"))
        h.update(b"\n")
    return InputDigest(digest=h.hexdigest(), n_files=len(items), n_bytes=total)


def options_hash(options: StudyOptions) -> str:
    """SHA-256 of the study options that change a result file.

    The pseudonym key enters as an HMAC of a fixed message under the key, so the manifest
    tells whether the key changed without revealing it.
    """
    key_check = hmac.new(options.pseudonym_key, _KEY_CHECK_MESSAGE, hashlib.sha256).hexdigest()
    content = {
        "assume_sstr": options.assume_sstr,
        "show_phi": options.show_phi,
        "pseudonym_key_check": key_check,
    }
    # Options below enter only when they differ from their default, so hashes of runs that
    # did not use them stay as they were.
    if options.clinical is not None:
        content["clinical_sha256"] = options.clinical.sha256
    if not options.dicom_out:
        content["dicom_out"] = False
    if options.pseudonymise:
        content["pseudonymise"] = True
    if options.cnn:
        content["cnn"] = True
    if options.radiopharmaceutical:
        content["radiopharmaceutical"] = options.radiopharmaceutical
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RunFingerprint:
    """What every study of one run shares: config, options and software version."""

    config_hash: str
    options_hash: str
    octoscan_version: str


def run_fingerprint(config: ScoringConfig, options: StudyOptions) -> RunFingerprint:
    return RunFingerprint(
        config_hash=config_hash(config),
        options_hash=options_hash(options),
        octoscan_version=octoscan_version(),
    )


@dataclass(frozen=True)
class StudyManifest:
    """The commit record of one study folder. ``status`` is "ok" or "failed"."""

    study_key: str
    status: str
    inputs: InputDigest
    run: RunFingerprint
    outputs: Mapping[str, str] = field(default_factory=dict)  # file name -> SHA-256 hex

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest_version": MANIFEST_VERSION,
            "study_key": self.study_key,
            "status": self.status,
            "inputs": self.inputs.to_dict(),
            "config_hash": self.run.config_hash,
            "options_hash": self.run.options_hash,
            "octoscan_version": self.run.octoscan_version,
            "outputs": dict(sorted(self.outputs.items())),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> StudyManifest:
        """Parse a manifest; raises KeyError, TypeError or ValueError when malformed."""
        if raw["manifest_version"] != MANIFEST_VERSION:
            raise ValueError(f"manifest_version {raw['manifest_version']!r}")
        inputs = raw["inputs"]
        outputs = raw["outputs"]
        if not isinstance(outputs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in outputs.items()
        ):
            raise TypeError("outputs must map file names to hashes")
        status = str(raw["status"])
        if status not in ("ok", "failed"):
            raise ValueError(f"status {status!r}")
        return cls(
            study_key=str(raw["study_key"]),
            status=status,
            inputs=InputDigest(
                digest=str(inputs["digest"]),
                n_files=int(inputs["n_files"]),
                n_bytes=int(inputs["n_bytes"]),
            ),
            run=RunFingerprint(
                config_hash=str(raw["config_hash"]),
                options_hash=str(raw["options_hash"]),
                octoscan_version=str(raw["octoscan_version"]),
            ),
            outputs=dict(outputs),
        )


def read_manifest(study_dir: str | Path) -> StudyManifest | None:
    """The manifest of ``study_dir``, or None when absent, unreadable or malformed."""
    path = Path(study_dir) / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return StudyManifest.from_dict(raw)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def complete_manifest(
    study_dir: str | Path, study_key: str, run: RunFingerprint
) -> StudyManifest | None:
    """The manifest of ``study_dir`` when its outputs are complete for this run, else None.

    Complete: the manifest parses, names this study key, has this run's config hash, options
    hash and version, and every output it lists exists with the recorded SHA-256. The input
    digest is not checked here (the caller compares it with the current inputs).
    """
    manifest = read_manifest(study_dir)
    if manifest is None or manifest.study_key != study_key or manifest.run != run:
        return None
    if not manifest.outputs:
        return None
    for name, expected in manifest.outputs.items():
        if Path(name).name != name:  # a manifest never lists anything outside its folder
            return None
        try:
            actual, _ = hash_file(Path(study_dir) / name)
        except OSError:
            return None
        if actual != expected:
            return None
    return manifest


def commit_study_files(
    study_dir: str | Path,
    files: Mapping[str, bytes],
    *,
    known_outputs: Sequence[str],
    study_key: str,
    status: str,
    inputs: InputDigest | None,
    run: RunFingerprint,
) -> StudyManifest | None:
    """Write one study's output ``files`` (name -> bytes) with the commit protocol above.

    ``known_outputs`` are the output names (or glob patterns, e.g. ``overlay_*.png``) a
    study folder may hold; those not in ``files`` are removed (a study that failed after
    succeeding loses its stale result). With ``inputs`` None (the inputs could not be
    hashed) no manifest is written, so the study is redone next time. Returns the manifest
    written (None without one).
    """
    folder = Path(study_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_NAME).unlink(missing_ok=True)
    for name, data in sorted(files.items()):
        if Path(name).name != name or name == MANIFEST_NAME:
            raise ValueError(f"output name {name!r}: expected a plain file name, not the manifest")
        write_bytes_atomic(folder / name, data)
    for pattern in known_outputs:
        for stale in folder.glob(pattern):
            if stale.name not in files and stale.name != MANIFEST_NAME:
                stale.unlink(missing_ok=True)
    manifest = None
    if inputs is not None:
        manifest = StudyManifest(
            study_key=study_key,
            status=status,
            inputs=inputs,
            run=run,
            outputs={name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        )
        write_json_atomic(folder / MANIFEST_NAME, manifest.to_dict())
    _fsync_dir(folder)
    return manifest


def _fsync_dir(folder: Path) -> None:
    """Make the renames in ``folder`` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
