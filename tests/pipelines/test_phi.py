"""Patient data: a batch over phantom studies leaks no patient name, ID or birth date into
any non-DICOM output (JSON, CSV, PNG, HTML, the key file) nor into the log of
``octoscan -v -v run``, unless ``--show-phi``; no output path carries a DICOM value; DICOM
results carry the source Patient module by design and the keyed pseudonym under
``--pseudonymise``.

Every byte of every file is searched (case-insensitively) for each identifier in the forms
it could take: the DICOM value (``PHANTOM^51``), a display form (``PHANTOM 51``) and the
birth date as stored (``19410101``) and as ISO text (``1941-01-01``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from octoscan.imaging.phantom.study import StudySpec, generate_study
from octoscan.pipelines.cli import main
from octoscan.pipelines.identity import KEY_ENV, patient_key, study_key

SEEDS = (51, 52)
KEY = "octoscan-phi-tests"
_TEXT_VRS = frozenset({"UI", "PN", "DA", "DT", "LO", "SH"})


@dataclass(frozen=True)
class Patient:
    """What a phantom study must not leak: its identifiers, as the DICOM holds them."""

    study_instance_uid: str
    name: str
    patient_id: str
    birth_date: str
    values: frozenset[str]  # identifying DICOM values of its files (for the path check)

    def needles(self) -> dict[str, bytes]:
        """Each form an identifier could take in an output -> its bytes (lower case)."""
        iso = f"{self.birth_date[:4]}-{self.birth_date[4:6]}-{self.birth_date[6:]}"
        forms = {
            "name": self.name,
            "name (display)": self.name.replace("^", " ").strip(),
            "patient ID": self.patient_id,
            "birth date": self.birth_date,
            "birth date (ISO)": iso,
        }
        return {what: text.lower().encode("utf-8") for what, text in forms.items()}


def _patient(folder: Path, truth) -> Patient:
    values: set[str] = set()
    first = None
    for path in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        first = first or ds
        for elem in ds:
            text = str(elem.value).strip() if elem.VR in _TEXT_VRS else ""
            if (len(text) >= 6 and any(c.isdigit() for c in text)) or elem.VR in ("PN", "UI"):
                values.add(text)
    assert first is not None
    assert str(first.PatientName) == truth.patient_name
    assert first.PatientID == truth.patient_id
    return Patient(
        study_instance_uid=truth.study_instance_uid,
        name=truth.patient_name,
        patient_id=truth.patient_id,
        birth_date=str(first.PatientBirthDate),
        values=frozenset(v for v in values if v),
    )


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> tuple[Path, tuple[Patient, ...]]:
    """Two planar phantom studies ("PHANTOM^<seed>") in neutral folder names."""
    root = tmp_path_factory.mktemp("phi") / "in"
    patients = []
    for i, seed in enumerate(SEEDS):
        folder = root / f"study_{'ab'[i]}"
        truth = generate_study(StudySpec(seed=seed, kind="planar"), folder)
        patients.append(_patient(folder, truth))
    assert patients[0].name == "PHANTOM^51" and patients[0].patient_id == "PHANTOM-51"
    return root, tuple(patients)


def _files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
    }


def _is_dicom_output(name: str) -> bool:
    return "/dicom/" in f"/{name}" and name.endswith(".dcm")


def _leaks(blobs: dict[str, bytes], patients) -> list[str]:
    """'<where>: <what> of <patient>' for every identifier found in a blob."""
    found = []
    for where, data in blobs.items():
        lowered = data.lower()
        for patient in patients:
            for what, needle in patient.needles().items():
                if needle in lowered:
                    found.append(f"{where}: {what} of {patient.name}")
    return found


def _check_paths(out: Path, patients) -> None:
    names = list(_files(out))
    assert names
    for patient in patients:
        for value in patient.values:
            assert not [n for n in names if value in n], f"DICOM value {value!r} in a path"
    folders = {n.split("/")[0] for n in names if "/" in n}
    assert folders == {study_key(p.study_instance_uid) for p in patients}
    assert all(re.fullmatch(r"[0-9a-f]{12}", f) for f in folders)


@pytest.fixture(scope="module")
def default_run(phantoms, tmp_path_factory):
    """``octoscan -v -v run`` in a subprocess (two worker processes): outputs and log."""
    root, _ = phantoms
    out = tmp_path_factory.mktemp("phi-default") / "out"
    env = {**os.environ, KEY_ENV: KEY}
    argv = [sys.executable, "-m", "octoscan.pipelines.cli", "-v", "-v", "run", str(root)]
    argv += ["--out", str(out), "--workers", "2", "--no-progress"]
    done = subprocess.run(argv, env=env, capture_output=True, timeout=300, cwd=out.parent)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return out, done.stdout, done.stderr


def test_default_run_leaks_nothing_outside_dicom(phantoms, default_run):
    _, patients = phantoms
    out, stdout, stderr = default_run
    files = _files(out)
    plain = {name: data for name, data in files.items() if not _is_dicom_output(name)}
    assert {"results.csv", "lesions.csv", "failed.json", "batch.json", "index.html"} <= set(plain)
    assert sum(name.endswith(".png") for name in plain) >= 2 * len(patients)
    assert sum(name.endswith("result.json") for name in plain) == len(patients)
    assert b"DEBUG " in stderr and b"[worker]" in stderr  # the log is the verbose one
    log = {"stderr": stderr, "stdout": stdout}
    assert _leaks(plain, patients) == []
    assert _leaks(log, patients) == []


def test_default_run_results_carry_only_the_keyed_pseudonym(phantoms, default_run):
    _, patients = phantoms
    out, _, _ = default_run
    for patient in patients:
        result = json.loads(
            (out / study_key(patient.study_instance_uid) / "result.json").read_text()
        )
        assert "patient_id" not in result or result["patient_id"] is None
        assert result["patient_key"] == patient_key(patient.patient_id, KEY.encode())
        assert len(result["patient_key"]) == 16


def test_dicom_results_carry_the_patient_module_by_design(phantoms, default_run):
    """Without --pseudonymise the DICOM results belong to the source patient: the search
    above is meaningful because it does find the identifiers where they are meant to be."""
    _, patients = phantoms
    out, _, _ = default_run
    dicom = {n: d for n, d in _files(out).items() if _is_dicom_output(n)}
    assert len(dicom) >= len(patients)
    for name, data in dicom.items():
        key = name.split("/")[0]
        (patient,) = [p for p in patients if study_key(p.study_instance_uid) == key]
        found = {leak.split(": ")[1] for leak in _leaks({name: data}, [patient])}
        assert {f"patient ID of {patient.name}", f"name of {patient.name}"} <= found


def test_output_paths_carry_no_dicom_value(phantoms, default_run):
    _, patients = phantoms
    _check_paths(default_run[0], patients)


def test_show_phi_and_pseudonymise(phantoms, tmp_path, monkeypatch, capsys):
    """--show-phi puts the raw PatientID into result.json and results.csv; --pseudonymise
    replaces the Patient module of every DICOM result by the keyed pseudonym, the same one
    result.json gives, with no raw name, ID or birth date left in any byte."""
    root, patients = phantoms
    out = tmp_path / "out"
    monkeypatch.setenv(KEY_ENV, KEY)
    argv = ["run", str(root), "--out", str(out), "--workers", "1", "--no-progress"]
    assert main([*argv, "--show-phi", "--pseudonymise"]) == 0
    printed = capsys.readouterr()
    files = _files(out)
    for patient in patients:
        key = study_key(patient.study_instance_uid)
        result = json.loads(files[f"{key}/result.json"])
        assert result["patient_id"] == patient.patient_id
        pseudonym = patient_key(patient.patient_id, KEY.encode())
        assert result["patient_key"] == pseudonym
        dicom = {n: d for n, d in files.items() if n.startswith(f"{key}/") and _is_dicom_output(n)}
        assert dicom
        assert _leaks(dicom, patients) == []
        for name in dicom:
            ds = pydicom.dcmread(out / name)
            assert (ds.PatientID, str(ds.PatientName)) == (pseudonym, f"{pseudonym}^"), name
            assert ds.get("PatientBirthDate", "") == ""
            assert ds.StudyInstanceUID == patient.study_instance_uid
    table = (out / "results.csv").read_text()
    assert all(f",{p.patient_id}," in table for p in patients)  # shown, as asked
    assert _leaks({"stdout": printed.out.encode(), "stderr": printed.err.encode()}, patients) == []
    _check_paths(out, patients)
