"""Keys that identify studies and patients in outputs without carrying DICOM values.

* ``study_key``: a short SHA-256 of the StudyInstanceUID, used for output folder names, so no
  DICOM value ever reaches a path.
* ``patient_key``: an HMAC-SHA256 of the PatientID under a secret key, so results of one
  patient can be linked without revealing the ID. The key comes from the environment variable
  ``OCTOSCAN_PSEUDONYM_KEY``, else from a key file kept in the output folder (created once,
  random, mode 0600), so re-runs into the same folder give the same keys.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_ENV = "OCTOSCAN_PSEUDONYM_KEY"
KEY_FILE_NAME = ".octoscan-pseudonym-key"
STUDY_KEY_LENGTH = 12
PATIENT_KEY_LENGTH = 16


def study_key(study_instance_uid: str) -> str:
    """Short hex digest of the StudyInstanceUID (12 hex characters, 48 bits)."""
    return hashlib.sha256(study_instance_uid.encode("ascii", "replace")).hexdigest()[
        :STUDY_KEY_LENGTH
    ]


def load_pseudonym_key(out_dir: str | Path) -> bytes:
    """The secret for ``patient_key``: ``$OCTOSCAN_PSEUDONYM_KEY``, else ``out_dir``'s key file."""
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode("utf-8")
    path = Path(out_dir) / KEY_FILE_NAME
    if path.is_file():
        return path.read_bytes().strip()
    key = secrets.token_hex(32).encode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker created it first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def patient_key(patient_id: str | None, key: bytes) -> str | None:
    """Keyed hash of the PatientID (None when the study has no PatientID)."""
    if not patient_id:
        return None
    digest = hmac.new(key, patient_id.encode("utf-8", "replace"), hashlib.sha256).hexdigest()
    return digest[:PATIENT_KEY_LENGTH]
