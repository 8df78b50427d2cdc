"""Identity of the DICOM objects octoscan writes: UIDs, patient and study attributes, dates.

A re-run over the same inputs must give byte-identical objects, so nothing here reads the
clock or draws random numbers:

* UIDs are ``2.25.`` followed by the decimal value of a name-based UUID (RFC 4122 version 5,
  SHA-1; DICOM PS3.5 B.2) of the parts that identify an object: the source StudyInstanceUID,
  the config hash, the octoscan version, the patient-identity mode, the role of the object and
  the source series it was derived from.
* Dates and times that highdicom would set to "now" (InstanceCreation, Content, Series, and
  a secondary capture's DateOfSecondaryCapture/TimeOfSecondaryCapture) are the source
  study's: StudyDate/StudyTime, else the first of SeriesDate, AcquisitionDate, ContentDate
  that is set, else 1970-01-01 00:00 (logged). The ContributionDateTime highdicom stamps on
  its own Contributing Equipment item (Type 3) is removed.
* Patient module (groups 0010 and 0012, the latter holding clinical-trial subject and
  de-identification attributes): copied from the source (a source marked
  PatientIdentityRemoved without a method gets DeidentificationMethod "not stated by the
  source", which the module requires). Pseudonymised, every attribute of both groups is
  dropped except PatientSex; PatientID and PatientName become the keyed hash of
  :func:`octoscan.pipelines.identity.patient_key` (the ``patient_key`` of result.json) and
  PatientBirthDate is left empty (Type 2: present, no value). Study attributes (UIDs, date,
  StudyID, AccessionNumber, ReferringPhysicianName) stay those of the source study.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import pydicom
from pydicom.dataset import Dataset
from pydicom.valuerep import DSfloat

from octoscan.pipelines.identity import patient_key

log = logging.getLogger(__name__)

UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://octoscan.invalid/dicom-uids")
"""Namespace of octoscan's name-based UIDs (fixed forever: changing it changes every UID)."""

MANUFACTURER = "octoscan"
FALLBACK_DATE = "19700101"
FALLBACK_TIME = "000000"
PATIENT_GROUP = 0x0010
TRIAL_GROUP = 0x0012  # Clinical Trial Subject/Study and de-identification attributes
_PATIENT_GROUPS = (PATIENT_GROUP, TRIAL_GROUP)
NO_METHOD_STATED = "not stated by the source"
_PART_SEPARATOR = "\x1f"  # ASCII unit separator: cannot occur inside a UID or a hash
_DATE_PAIRS = (
    ("StudyDate", "StudyTime"),
    ("SeriesDate", "SeriesTime"),
    ("AcquisitionDate", "AcquisitionTime"),
    ("ContentDate", "ContentTime"),
)
_NOW_ATTRIBUTES = (
    ("InstanceCreationDate", "InstanceCreationTime"),
    ("ContentDate", "ContentTime"),
    ("SeriesDate", "SeriesTime"),
)
_SC_NOW_ATTRIBUTES = ("DateOfSecondaryCapture", "TimeOfSecondaryCapture")
_PROCESSING_EQUIPMENT = "109102"  # DCM "Processing Equipment": highdicom's own entry
STUDY_KEYWORDS = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
)
"""General Study attributes every octoscan object repeats from the source study."""
_TYPE2_STUDY_KEYWORDS = (
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def derived_uid(*parts: str) -> str:
    """``2.25.<decimal UUIDv5>`` of ``parts`` (at most 44 characters, always the same)."""
    if not parts:
        raise ValueError("derived_uid needs at least one part")
    name = _PART_SEPARATOR.join(parts)
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, name).int}"


def ds_value(x: float, digits: int = 4) -> DSfloat:
    """A DS value of ``x`` rounded to ``digits`` decimals (16 characters at most)."""
    return DSfloat(round(float(x), digits), auto_format=True)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def source_date_time(ds: Dataset) -> tuple[str, str]:
    """(DA, TM) of the source study, by the rule of the module docstring."""
    for date_kw, time_kw in _DATE_PAIRS:
        date = _text(ds, date_kw)
        if date:
            time = _text(ds, time_kw) or FALLBACK_TIME
            return date, time
    log.warning(
        "source object has no StudyDate, SeriesDate, AcquisitionDate or ContentDate: "
        "octoscan's DICOM objects are dated %s",
        FALLBACK_DATE,
    )
    return FALLBACK_DATE, FALLBACK_TIME


@dataclass(frozen=True)
class ObjectIdentity:
    """What the objects written for one study share.

    ``patient`` holds the Patient-module attributes to write (already pseudonymised when
    asked), ``study`` the source's General Study attributes (:data:`STUDY_KEYWORDS`);
    ``uid_seed`` the parts every UID of the study is derived from; ``date``/``time``
    (DA/TM) replace every "now" highdicom would write.
    """

    study_instance_uid: str
    uid_seed: tuple[str, ...]
    date: str
    time: str
    software_version: str
    pseudonymised: bool
    patient: Dataset = field(compare=False, repr=False)
    study: Dataset = field(compare=False, repr=False)

    def uid(self, *parts: str) -> str:
        """The UID of the object (or item) named by ``parts`` within this study."""
        return derived_uid(*self.uid_seed, *parts)

    def with_patient(self, ds: Dataset) -> Dataset:
        """A shallow copy of ``ds`` whose Patient module (group 0010) is ``self.patient``.

        Pass the copy to highdicom as source or evidence: highdicom copies the Patient and
        Study modules from it, the SOP and series UIDs stay those of the source object.
        Type 2 General Study attributes the source lacks are added empty.
        """
        out = Dataset()
        out.update(ds)
        if hasattr(ds, "file_meta"):
            out.file_meta = ds.file_meta
        for tag in [e.tag for e in out if e.tag.group in _PATIENT_GROUPS]:
            del out[tag]
        out.update(self.patient)
        for keyword in _TYPE2_STUDY_KEYWORDS:  # highdicom reads them; sources may lack them
            if keyword not in out:
                setattr(out, keyword, "")
        return out


def _patient_module(source: Dataset, *, pseudonymise: bool, pseudonym_key: bytes) -> Dataset:
    patient = Dataset()
    if not pseudonymise:
        for elem in source:
            if elem.tag.group in _PATIENT_GROUPS:
                patient.add(elem)
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
            if keyword not in patient:
                setattr(patient, keyword, "")
        removed = _text(patient, "PatientIdentityRemoved").upper() == "YES"
        if removed and not (
            "DeidentificationMethod" in patient or "DeidentificationMethodCodeSequence" in patient
        ):  # Type 1C once identity is removed; some de-identifiers leave it out
            patient.DeidentificationMethod = NO_METHOD_STATED
        return patient
    pseudonym = patient_key(_text(source, "PatientID") or None, pseudonym_key) or ""
    patient.PatientName = f"{pseudonym}^" if pseudonym else ""
    patient.PatientID = pseudonym
    patient.PatientBirthDate = ""
    patient.PatientSex = _text(source, "PatientSex")
    return patient


def object_identity(
    source: Dataset,
    *,
    config_hash: str,
    software_version: str,
    pseudonymise: bool = False,
    pseudonym_key: bytes = b"",
) -> ObjectIdentity:
    """The identity of the objects written for the study of ``source`` (a source header).

    Raises ValueError when ``pseudonymise`` is asked without a ``pseudonym_key`` (a hash
    without a secret key is reversible by trying candidate IDs) or when ``source`` has no
    StudyInstanceUID.
    """
    study_uid = _text(source, "StudyInstanceUID")
    if not study_uid:
        raise ValueError("source object has no StudyInstanceUID; expected the source study's")
    if not config_hash:
        raise ValueError("config_hash is empty; expected the hash of the scoring config")
    if pseudonymise and not pseudonym_key:
        raise ValueError(
            "pseudonymise=True needs a pseudonym_key (see "
            "octoscan.pipelines.identity.load_pseudonym_key); got an empty key"
        )
    patient = _patient_module(source, pseudonymise=pseudonymise, pseudonym_key=pseudonym_key)
    mode = f"pseudonym {patient.PatientID}" if pseudonymise else "identified"
    date, time = source_date_time(source)
    study = Dataset()
    for keyword in STUDY_KEYWORDS:
        if keyword in source:
            setattr(study, keyword, source[keyword].value)
    return ObjectIdentity(
        study_instance_uid=study_uid,
        uid_seed=(study_uid, config_hash, software_version, mode),
        date=date,
        time=time,
        software_version=software_version,
        pseudonymised=pseudonymise,
        patient=patient,
        study=study,
    )


def finish_object(
    ds: Dataset,
    identity: ObjectIdentity,
    *,
    series_description: str,
    body_part_examined: str | None = None,
) -> Dataset:
    """Stamp what every octoscan object carries, in place: the Patient module and General
    Study attributes of ``identity`` (so that every object of the study agrees with the
    source, whatever highdicom copied), the fixed dates, Manufacturer, SoftwareVersions,
    SeriesDescription (must start with "octoscan") and BodyPartExamined. Returns ``ds``."""
    if not series_description.lower().startswith(MANUFACTURER):
        raise ValueError(
            f"series_description {series_description!r} must start with {MANUFACTURER!r} so "
            "that discovery never takes octoscan's objects as inputs"
        )
    for tag in [e.tag for e in ds if e.tag.group in _PATIENT_GROUPS]:
        del ds[tag]
    ds.update(identity.patient)
    ds.update(identity.study)
    for date_kw, time_kw in _NOW_ATTRIBUTES:
        setattr(ds, date_kw, identity.date)
        setattr(ds, time_kw, identity.time)
    for item in ds.get("ContributingEquipmentSequence", []):
        purposes = [c.CodeValue for c in item.get("PurposeOfReferenceCodeSequence", [])]
        if _PROCESSING_EQUIPMENT in purposes and "ContributionDateTime" in item:
            del item.ContributionDateTime  # Type 3; highdicom's "now"
    if _SC_NOW_ATTRIBUTES[0] in ds:
        setattr(ds, _SC_NOW_ATTRIBUTES[0], identity.date)
        setattr(ds, _SC_NOW_ATTRIBUTES[1], identity.time)
    ds.Manufacturer = MANUFACTURER
    ds.SoftwareVersions = identity.software_version
    ds.SeriesDescription = series_description
    if body_part_examined:
        ds.BodyPartExamined = body_part_examined
    return ds


def encode(ds: Dataset) -> bytes:
    """The Part 10 file bytes of ``ds`` (written to memory)."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


UNPAIRED_BODY_PARTS = (
    "WHOLEBODY",
    "ABDOMEN",
    "CHEST",
    "PELVIS",
    "ABDOMENPELVIS",
    "CHESTABDOMEN",
    "HEAD",
    "NECK",
    "HEADNECK",
    "LIVER",
)
"""BodyPartExamined defined terms of unpaired regions (PS3.16 Annex L). Any other value (a
paired organ, or a vendor's free text such as "WHOLE BODY" or "TORSO") makes Laterality
required, which a derived object cannot state, so it is replaced by the default."""


def body_part(sources: Iterable[Dataset], default: str) -> str:
    """BodyPartExamined of the first source that has one, spaces and underscores removed,
    when it is one of :data:`UNPAIRED_BODY_PARTS`; else ``default``."""
    for ds in sources:
        value = _text(ds, "BodyPartExamined").upper().replace(" ", "").replace("_", "")
        if value:
            return value if value in UNPAIRED_BODY_PARTS else default
    return default
