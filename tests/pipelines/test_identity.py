import hashlib
import hmac
import stat

from octoscan.pipelines.identity import (
    KEY_ENV,
    KEY_FILE_NAME,
    load_pseudonym_key,
    patient_key,
    study_key,
)


def test_study_key_is_short_sha256():
    uid = "1.2.826.0.1.3680043.8.498.1"
    assert study_key(uid) == hashlib.sha256(uid.encode()).hexdigest()[:12]
    assert study_key(uid) != study_key(uid + "0")


def test_patient_key_is_keyed_hmac_and_hides_id():
    key = b"secret"
    expected = hmac.new(key, b"PAT-123", hashlib.sha256).hexdigest()[:16]
    assert patient_key("PAT-123", key) == expected
    assert "PAT-123" not in expected
    assert patient_key("PAT-123", b"other") != expected
    assert patient_key(None, key) is None
    assert patient_key("", key) is None


def test_key_file_is_created_once_private_and_stable(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    k1 = load_pseudonym_key(tmp_path)
    k2 = load_pseudonym_key(tmp_path)
    assert k1 == k2 and len(k1) == 64
    mode = stat.S_IMODE((tmp_path / KEY_FILE_NAME).stat().st_mode)
    assert mode == 0o600


def test_key_from_environment_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "from-env")
    assert load_pseudonym_key(tmp_path) == b"from-env"
    assert not (tmp_path / KEY_FILE_NAME).exists()
