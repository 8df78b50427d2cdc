"""Find every DICOM object under a folder and group it into studies and series.

:func:`discover` walks a folder recursively (DICOMDIR or not, files with or without a
``.dcm`` suffix or a preamble), reads each file's header once (no pixel data), groups
objects by StudyInstanceUID / SeriesInstanceUID (never by file or folder name) and classifies
each series with a :class:`~octoscan.imaging.types.SeriesKind` and a ``kind_reason``.

Nothing raises for a bad file: every file that cannot be used is recorded as a
:class:`~octoscan.imaging.types.SkippedFile` with a stable code (those of
:mod:`octoscan.imaging.dicom_io` plus ``duplicate_instance``, ``duplicate_instance_conflict``,
``octoscan_output``, ``inconsistent_series``, and ``internal`` for a bug, logged with its
traceback); a folder that cannot be listed is recorded the same way (``unreadable``), so no
file goes unaccounted for. Files that are not DICOM at all are only
counted (``n_non_dicom``), except those named ``*.dcm``, which are recorded as ``not_dicom``.

Classification (ImageType value 3 for NM Image Storage, PS3.3 C.8.4.7):

* STATIC -> planar_static; WHOLE BODY -> planar_whole_body;
* DYNAMIC and GATED planar -> planar_static: their time frames / gates are summed per view
  into one static image by the planar loader (``kind_reason`` says so);
* TOMO, GATED TOMO -> tomo_projections (raw projections, never scored);
* RECON TOMO, GATED RECON TOMO -> spect;
* PET objects -> pet, or spect when their content says SPECT
  (:func:`octoscan.imaging.acquisition.quantitative_spect_evidence`);
* CT -> ct; Secondary Capture SOP classes -> secondary_capture (``kind_reason`` notes NM
  whole-body images stored that way); anything else (RTSTRUCT, SR, SEG, MR ...) -> other.
"""

from __future__ import annotations

import filecmp
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedPETImageStorage,
    LegacyConvertedEnhancedCTImageStorage,
    LegacyConvertedEnhancedPETImageStorage,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    MultiFrameSingleBitSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
    NuclearMedicineImageStorage,
    PositronEmissionTomographyImageStorage,
    SecondaryCaptureImageStorage,
)

from octoscan.imaging.acquisition import (
    acquisition_datetime,
    quantitative_spect_evidence,
    read_acquisition_info_with_warnings,
)
from octoscan.imaging.dicom_io import (
    DICOMDIR,
    NOT_DICOM,
    UNREADABLE,
    as_uid,
    check_image_header,
    is_dicomdir,
    is_transfer_syntax_supported,
    read_header,
)
from octoscan.imaging.errors import InvalidInputError, OctoscanError
from octoscan.imaging.pixels import max_image_bytes, stored_pixel_bytes
from octoscan.imaging.raw_header import HeaderTemplate, RawHeader, read_raw_header
from octoscan.imaging.types import SeriesEntry, SeriesKind, SkippedFile, StudyIndex
from octoscan.imaging.views import (
    SingleViewFile,
    ViewDecision,
    complement_views,
    resolve_planar_layout,
)

__all__ = [
    "DUPLICATE_INSTANCE",
    "DUPLICATE_INSTANCE_CONFLICT",
    "INCONSISTENT_SERIES",
    "OCTOSCAN_OUTPUT",
    "OCTOSCAN_SERIES_PREFIX",
    "TOMO_NOT_SCORED",
    "classify_kind",
    "discover",
    "is_octoscan_output",
]

_LOG = logging.getLogger(__name__)

# Series written by octoscan itself (overlays, reports, SEG) carry this SeriesDescription
# prefix; discovery skips them so a second run never scores its own output.
OCTOSCAN_SERIES_PREFIX = "octoscan"

DUPLICATE_INSTANCE = "duplicate_instance"
DUPLICATE_INSTANCE_CONFLICT = "duplicate_instance_conflict"
OCTOSCAN_OUTPUT = "octoscan_output"
INCONSISTENT_SERIES = "inconsistent_series"
TOMO_NOT_SCORED = "raw SPECT projections are not scored"

_NM_RETIRED = UID("1.2.840.10008.5.1.4.1.1.5")  # Nuclear Medicine Image Storage (Retired)
_NM_CLASSES = frozenset({NuclearMedicineImageStorage, _NM_RETIRED})
_PET_CLASSES = frozenset(
    {
        PositronEmissionTomographyImageStorage,
        EnhancedPETImageStorage,
        LegacyConvertedEnhancedPETImageStorage,
    }
)
_CT_CLASSES = frozenset(
    {CTImageStorage, EnhancedCTImageStorage, LegacyConvertedEnhancedCTImageStorage}
)
_SC_CLASSES = frozenset(
    {
        SecondaryCaptureImageStorage,
        MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
        MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
        MultiFrameSingleBitSecondaryCaptureImageStorage,
        MultiFrameTrueColorSecondaryCaptureImageStorage,
    }
)
_NM_TYPES = {
    "STATIC": (SeriesKind.PLANAR_STATIC, "NM STATIC planar acquisition"),
    "WHOLE BODY": (SeriesKind.PLANAR_WHOLE_BODY, "NM WHOLE BODY planar acquisition"),
    "DYNAMIC": (
        SeriesKind.PLANAR_STATIC,
        "NM DYNAMIC planar acquisition: its time frames are summed per view into one static image",
    ),
    "GATED": (
        SeriesKind.PLANAR_STATIC,
        "NM GATED planar acquisition: its gates are summed per view into one static image",
    ),
    "TOMO": (SeriesKind.TOMO_PROJECTIONS, f"NM TOMO projections: {TOMO_NOT_SCORED}"),
    "GATED TOMO": (SeriesKind.TOMO_PROJECTIONS, f"NM GATED TOMO projections: {TOMO_NOT_SCORED}"),
    "RECON TOMO": (SeriesKind.SPECT, "NM RECON TOMO: reconstructed SPECT"),
    "GATED RECON TOMO": (SeriesKind.SPECT, "NM GATED RECON TOMO: reconstructed gated SPECT"),
}
_PLANAR_KINDS = (SeriesKind.PLANAR_STATIC, SeriesKind.PLANAR_WHOLE_BODY)


# --------------------------------------------------------------------------- classification


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    text = str(value).strip() if value is not None else ""
    return text or None


def _image_type(ds: Dataset) -> tuple[str, ...]:
    value = ds.get("ImageType")
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip().upper() for v in value.split("\\"))
    return tuple(str(v).strip().upper() for v in value)


def is_octoscan_output(ds: Dataset) -> bool:
    """True for objects octoscan wrote (SeriesDescription starts with OCTOSCAN_SERIES_PREFIX)."""
    description = (_text(ds, "SeriesDescription") or "").lower()
    return description.startswith(OCTOSCAN_SERIES_PREFIX.lower())


def _classify_nm(ds: Dataset) -> tuple[SeriesKind, str]:
    image_type = _image_type(ds)
    value3 = image_type[2] if len(image_type) > 2 else ""
    if value3 in _NM_TYPES:
        return _NM_TYPES[value3]
    if "RotationVector" in ds or "AngularViewVector" in ds:
        return SeriesKind.TOMO_PROJECTIONS, (
            f"NM with ImageType value 3 {value3!r} and a RotationVector: tomographic "
            f"projections; {TOMO_NOT_SCORED}"
        )
    if "SliceVector" in ds:
        return SeriesKind.SPECT, (
            f"NM with ImageType value 3 {value3!r} and a SliceVector: reconstructed slices"
        )
    return SeriesKind.PLANAR_STATIC, (
        f"NM with ImageType value 3 {value3!r} (expected STATIC, WHOLE BODY, DYNAMIC, GATED, "
        "TOMO ...): no rotation or slice vector, treated as static planar"
    )


def classify_kind(ds: Dataset) -> tuple[SeriesKind, str]:
    """(kind, reason) of one object from its header: SOP class first, then Modality."""
    sop = as_uid(ds.get("SOPClassUID") or "")
    modality = (_text(ds, "Modality") or "").upper()
    if sop in _NM_CLASSES:
        return _classify_nm(ds)
    if sop in _PET_CLASSES or (not sop and modality == "PT"):
        evidence = quantitative_spect_evidence(ds)
        if evidence:
            return SeriesKind.SPECT, (
                f"{sop.name if sop else 'Modality PT'} object holding a quantitative SPECT: "
                f"{evidence}"
            )
        return SeriesKind.PET, f"{sop.name if sop else 'Modality PT'}"
    if sop in _CT_CLASSES or (not sop and modality == "CT"):
        return SeriesKind.CT, sop.name if sop else "Modality CT (no SOP class: ACR-NEMA)"
    if sop in _SC_CLASSES:
        image_type = _image_type(ds)
        reason = f"{sop.name}, Modality {modality or 'absent'}"
        if modality == "NM":
            what = "whole-body" if "WHOLE BODY" in image_type else "planar"
            reason += (
                f": an NM {what} image stored as Secondary Capture (derived, not count data; "
                "views and geometry only as far as its header says)"
            )
        return SeriesKind.SECONDARY_CAPTURE, reason
    if not sop and modality == "NM":
        return _classify_nm(ds)
    name = sop.name if sop else "no SOP class"
    return (
        SeriesKind.OTHER,
        f"{name}, Modality {modality or 'absent'}: not scored by octoscan",
    )


# --------------------------------------------------------------------------- walk


def _walk(root: Path, follow_symlinks: bool) -> tuple[list[str], list[SkippedFile]]:
    """Files under ``root`` in sorted order, and the folders that could not be listed.

    File symlinks are always read (a looping one fails to open and is skipped with a
    reason). Directory symlinks are entered only when ``follow_symlinks`` is true, and a
    directory already visited (same device and inode) is never entered twice.
    """
    out: list[str] = []
    unlisted: list[SkippedFile] = []
    seen: set[tuple[int, int]] = set()

    def unreadable(exc: OSError) -> None:
        reason = f"cannot list the folder: {exc.strerror or exc}; its files were not read"
        unlisted.append(SkippedFile(str(exc.filename), UNREADABLE, reason))

    for dirpath, dirnames, filenames in os.walk(
        root, onerror=unreadable, followlinks=follow_symlinks
    ):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames.sort()
        for name in sorted(filenames):
            out.append(os.path.join(dirpath, name))
    return out, unlisted


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class _File:
    path: str
    sop_instance_uid: str
    kind: SeriesKind
    kind_reason: str
    n_frames: int
    rows: int | None
    columns: int | None
    modality: str | None
    sop_class_uid: str | None
    image_type: tuple[str, ...]
    acquired: datetime | None
    # planar views: (detector, decision, frame indices) per detector of this object
    groups: list[tuple[int | None, ViewDecision, tuple[int, ...]]] = field(default_factory=list)
    layout_warnings: tuple[str, ...] = ()


@dataclass
class _Series:
    study_instance_uid: str
    series_instance_uid: str
    first: Dataset
    files: list[_File] = field(default_factory=list)
    # what classification reads, as raw bytes of the first file (None: no fast path)
    signature: tuple[object, ...] | None = None
    # the first file's raw header, the template of its later files' walks
    template: HeaderTemplate | None = None
    # image attributes decoded by the fast path, by their raw bytes
    images: dict[tuple[object, ...], tuple[int, int, int, int, int, int] | None] = field(
        default_factory=dict
    )


def _int_or_none(value: object) -> int | None:
    try:
        return int(value) if value not in (None, "") else None  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _n_frames(ds: Dataset) -> int:
    return max(_int_or_none(ds.get("NumberOfFrames")) or 1, 1)


def _file_record(path: str, ds: Dataset, radionuclide: str | None) -> _File:
    kind, reason = classify_kind(ds)
    record = _File(
        path=path,
        sop_instance_uid=str(ds.SOPInstanceUID),
        kind=kind,
        kind_reason=reason,
        n_frames=_n_frames(ds),
        rows=_int_or_none(ds.get("Rows")),
        columns=_int_or_none(ds.get("Columns")),
        modality=_text(ds, "Modality"),
        sop_class_uid=_text(ds, "SOPClassUID"),
        image_type=_image_type(ds),
        acquired=None,
    )
    nm_sc = kind is SeriesKind.SECONDARY_CAPTURE and (record.modality or "").upper() == "NM"
    if kind in _PLANAR_KINDS or nm_sc:
        record.acquired = acquisition_datetime(ds)  # pairs single-view files into views
        layout = resolve_planar_layout(ds, radionuclide=radionuclide)
        record.groups = [(g.detector, g.decision, g.frames) for g in layout.groups]
        record.layout_warnings = layout.warnings
    return record


# --------------------------------------------------------------------------- discover


def discover(root: str | Path, *, follow_symlinks: bool = False) -> StudyIndex:
    """Walk ``root`` and index every DICOM object found (headers only, one read per file).

    Returns a :class:`StudyIndex` whose series are in discovery order; file paths are given
    as found under ``root`` (``root`` joined with the relative path, not resolved).
    Raises :class:`InvalidInputError` (code ``not_found``) only when ``root`` is not a folder,
    and :class:`~octoscan.imaging.errors.ConfigError` for an invalid
    ``$OCTOSCAN_MAX_IMAGE_BYTES`` (the size limit every image header is checked against).
    """
    limit = max_image_bytes()  # a bad limit is a config error for the whole walk, not per file
    root_path = Path(root)
    if not root_path.is_dir():
        raise InvalidInputError(
            "folder not found (or not a directory); expected a folder of DICOM files",
            code="not_found",
            path=root_path,
        )
    state = _WalkState(max_image_bytes=limit)
    files, unlisted = _walk(root_path, follow_symlinks)
    state.skipped.extend(unlisted)
    for path in files:
        try:
            _index_file(path, state)
        except OctoscanError as exc:
            state.skipped.append(SkippedFile(str(path), exc.code, exc.reason))
        except Exception as exc:  # a bug: keep going, say so with a traceback in the log
            _LOG.exception("discovery failed on %s", path)
            state.skipped.append(SkippedFile(str(path), "internal", f"{type(exc).__name__}: {exc}"))
    entries: list[SeriesEntry] = []
    for s in state.series.values():
        entry, rejected = _build_entry(s)
        state.skipped.extend(rejected)
        if entry is not None:
            entries.append(entry)
    return StudyIndex(
        root=str(root_path),
        series=tuple(entries),
        skipped=tuple(state.skipped),
        n_files_seen=len(files),
        n_non_dicom=state.n_non_dicom,
    )


@dataclass
class _WalkState:
    skipped: list[SkippedFile] = field(default_factory=list)
    series: dict[tuple[str, str], _Series] = field(default_factory=dict)
    by_sop: dict[str, str] = field(default_factory=dict)
    radionuclides: dict[tuple[str, str], str | None] = field(default_factory=dict)
    n_non_dicom: int = 0
    max_image_bytes: int = 0  # the size limit of the walk (read once)
    like: HeaderTemplate | None = None  # template of the series of the file filed last


def _index_file(text_path: str, state: _WalkState) -> None:
    """Read one file's header and file it under its series, or record why it is skipped."""
    raw = read_raw_header(text_path, tags=_FAST_TAGS, like=state.like)
    if raw is not None and _index_fast(text_path, raw, state):
        return
    path = Path(text_path)
    try:
        ds = read_header(path)
    except InvalidInputError as exc:
        if exc.code == NOT_DICOM and path.suffix.lower() != ".dcm":
            state.n_non_dicom += 1
        else:
            state.skipped.append(SkippedFile(text_path, exc.code, exc.reason))
        return
    if is_dicomdir(ds):
        reason = "DICOMDIR index, not an image; the files it lists are found by the walk"
        state.skipped.append(SkippedFile(text_path, DICOMDIR, reason))
        return
    if is_octoscan_output(ds):
        reason = (
            f"written by octoscan (SeriesDescription {_text(ds, 'SeriesDescription')!r} "
            f"starts with {OCTOSCAN_SERIES_PREFIX!r}): not an input"
        )
        state.skipped.append(SkippedFile(text_path, OCTOSCAN_OUTPUT, reason))
        return
    check_image_header(ds, path)
    sop_uid = str(ds.SOPInstanceUID)
    if sop_uid in state.by_sop:
        state.skipped.append(_duplicate(text_path, state.by_sop[sop_uid]))
        return
    key = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
    if key not in state.radionuclides:
        info, _ = read_acquisition_info_with_warnings(ds)
        state.radionuclides[key] = info.radionuclide
    record = _file_record(text_path, ds, state.radionuclides[key])
    state.by_sop[sop_uid] = text_path
    if key not in state.series:
        fast = record.kind in _FAST_KINDS and as_uid(record.sop_class_uid or "") in _FAST_CLASSES
        signature = template = None
        if raw is not None and fast:
            signature = raw.signature(_SIGNATURE_TAGS)
            template = HeaderTemplate(raw, tags=_FAST_TAGS)
        state.series[key] = _Series(key[0], key[1], ds, signature=signature, template=template)
    series = state.series[key]
    series.files.append(record)
    if series.template is not None:
        state.like = series.template


# --------------------------------------------------------------------------- fast path
#
# A folder of CT or PET slices holds hundreds of files per series that differ only in their
# UIDs, positions and pixels. Once a series' first file has been read and classified in
# full, a later file of that series is filed from its raw header (imaging.raw_header) when
# every value classification reads is byte for byte the first file's and every check of
# check_image_header passes on its raw values; anything else (a check that fails, a
# duplicate, an unusual header) takes the full path above, which gives the reason.
# Each file's raw header is walked with the HeaderTemplate of the series filed last (that
# series' first file): runs of elements byte-identical to it are not walked one by one.

_FAST_KINDS = frozenset({SeriesKind.CT, SeriesKind.PET, SeriesKind.SPECT})
_FAST_CLASSES = _CT_CLASSES | _PET_CLASSES  # NM classification reads more of the header
_SOP_CLASS_UID = 0x00080016
_SOP_INSTANCE_UID = 0x00080018
_STUDY_INSTANCE_UID = 0x0020000D
_SERIES_INSTANCE_UID = 0x0020000E
_MODALITY = 0x00080060
_IMAGE_TYPE = 0x00080008
_NUMBER_OF_FRAMES = 0x00280008
_SAMPLES_PER_PIXEL = 0x00280002
_ROWS = 0x00280010
_COLUMNS = 0x00280011
_BITS_ALLOCATED = 0x00280100
_PIXEL_DATA = 0x7FE00010
# classify_kind and quantitative_spect_evidence read these (SOP class, Modality, ImageType,
# Manufacturer, model, SeriesDescription, Radionuclide, RadiopharmaceuticalInformationSequence)
_SIGNATURE_TAGS = (
    0x00020002,
    _SOP_CLASS_UID,
    _MODALITY,
    _IMAGE_TYPE,
    0x00080070,
    0x00081090,
    0x0008103E,
    0x00180030,
    0x00540016,
    0x00041220,
)
# everything the fast path reads (the rest of a header is walked, not recorded)
_FAST_TAGS = frozenset(
    {
        *_SIGNATURE_TAGS,
        _SOP_INSTANCE_UID,
        _STUDY_INSTANCE_UID,
        _SERIES_INSTANCE_UID,
        _NUMBER_OF_FRAMES,
        _SAMPLES_PER_PIXEL,
        _ROWS,
        _COLUMNS,
        _BITS_ALLOCATED,
    }
)
_SUPPORTED_SYNTAX: dict[str, bool] = {}


def _syntax_supported(uid: str) -> bool:
    if uid not in _SUPPORTED_SYNTAX:
        _SUPPORTED_SYNTAX[uid] = is_transfer_syntax_supported(uid)
    return _SUPPORTED_SYNTAX[uid]


_IMAGE_TAGS = (_ROWS, _COLUMNS, _NUMBER_OF_FRAMES, _SAMPLES_PER_PIXEL, _BITS_ALLOCATED)
_Image = tuple[int, int, int, int, int, int]  # rows, columns, frames, samples, bits, stored
_CHECKED_TAGS = _SIGNATURE_TAGS + _IMAGE_TAGS
_N_SIGNATURE = 1 + len(_SIGNATURE_TAGS)  # the transfer syntax, then the signature tags


def _image_attributes(raw: RawHeader, limit: int) -> _Image | None:
    """(rows, columns, frames, samples, bits allocated, stored bytes) when the image
    attributes are plausible numbers within the size limit, else None."""
    rows, columns, bits = raw.us(_ROWS), raw.us(_COLUMNS), raw.us(_BITS_ALLOCATED)
    if not rows or not columns or not bits:
        return None
    frames = 1
    if _NUMBER_OF_FRAMES in raw:
        number = raw.integer(_NUMBER_OF_FRAMES)
        if number is None:
            return None
        frames = max(number, 1)
    samples = 1
    if _SAMPLES_PER_PIXEL in raw:
        spp = raw.us(_SAMPLES_PER_PIXEL)
        if spp is None:
            return None
        samples = spp or 1
    stored = stored_pixel_bytes(rows, columns, frames, samples, bits)
    if max(stored, rows * columns * frames * 4) > limit:
        return None
    return rows, columns, frames, samples, bits, stored


def _pixels_fit(raw: RawHeader, image: _Image) -> bool:
    """The pixel data holds what the image attributes declare (as check_image_header)."""
    frames, stored = image[2], image[5]
    if raw.native:
        length = raw.pixel_length
        if length is None or length < stored:
            return False
        return not (stored // frames > 0 and length - stored >= stored // frames)
    room = (raw.size - raw.pixel_value_offset) // 8
    return raw.encapsulated_complete and frames <= room


def _index_fast(path: str, raw: RawHeader, state: _WalkState) -> bool:
    """File a later slice of a known CT/PET/SPECT series from its raw header; False when
    the full path must read it."""
    sop_uid = raw.text(_SOP_INSTANCE_UID)
    study = raw.text(_STUDY_INSTANCE_UID)
    series_uid = raw.text(_SERIES_INSTANCE_UID)
    if not sop_uid or not study or not series_uid or sop_uid in state.by_sop:
        return False
    series = state.series.get((study, series_uid))
    if series is None or series.signature is None:
        return False
    # classification values, then image attributes (which repeat from file to file:
    # decoded once per value), as raw bytes
    signature = raw.signature(_CHECKED_TAGS)
    if signature[:_N_SIGNATURE] != series.signature:
        return False
    if raw.pixel_tag != _PIXEL_DATA or not _syntax_supported(raw.transfer_syntax):
        return False
    key = signature[_N_SIGNATURE:]
    if key not in series.images:
        series.images[key] = _image_attributes(raw, state.max_image_bytes)
    image = series.images[key]
    if image is None or not _pixels_fit(raw, image):
        return False
    first = series.files[0]  # same classification bytes (signature): same values
    series.files.append(
        _File(
            path=path,
            sop_instance_uid=sop_uid,
            kind=first.kind,
            kind_reason=first.kind_reason,
            n_frames=image[2],
            rows=image[0],
            columns=image[1],
            modality=first.modality,
            sop_class_uid=first.sop_class_uid,
            image_type=first.image_type,
            acquired=None,
        )
    )
    state.by_sop[sop_uid] = path
    state.like = series.template
    return True


def _duplicate(path: str, first: str) -> SkippedFile:
    try:
        same = filecmp.cmp(first, path, shallow=False)
    except OSError:
        same = False
    if same:
        return SkippedFile(
            path, DUPLICATE_INSTANCE, f"same SOPInstanceUID and identical bytes as {first}"
        )
    return SkippedFile(
        path,
        DUPLICATE_INSTANCE_CONFLICT,
        f"same SOPInstanceUID as {first} but different content: the first file is kept",
    )


# --------------------------------------------------------------------------- series entries


def _majority_kind(files: list[_File]) -> tuple[SeriesKind, str]:
    counts = Counter(f.kind for f in files)
    kind = max(counts, key=lambda k: (counts[k], -[f.kind for f in files].index(k)))
    reason = next(f.kind_reason for f in files if f.kind is kind)
    return kind, reason


def _consistency_warnings(files: list[_File]) -> list[str]:
    notes = []
    sizes = Counter((f.rows, f.columns) for f in files)
    if len(sizes) > 1:
        listed = ", ".join(f"{r}x{c} ({n} file(s))" for (r, c), n in sizes.items())
        notes.append(f"files of this series have different Rows x Columns: {listed}")
    modalities = {f.modality for f in files}
    if len(modalities) > 1:
        notes.append(
            f"files of this series have different Modality values: {sorted(map(str, modalities))}"
        )
    types = {f.image_type for f in files}
    if len(types) > 1:
        notes.append(
            "files of this series have different ImageType values: "
            + "; ".join("\\".join(t) for t in sorted(types))
        )
    return notes


def _planar_views(
    files: list[_File],
) -> tuple[dict[str, list[tuple[int, int]]], str | None, list[str]]:
    """views map (view -> (file index, frame index)), view_rule and warnings of a series."""
    decisions = {i: [g[1] for g in f.groups] for i, f in enumerate(files)}
    if len(files) == 2 and all(len(f.groups) == 1 for f in files):
        candidates = [
            SingleViewFile(str(i), f.groups[0][1], f.groups[0][0], f.acquired)
            for i, f in enumerate(files)
        ]
        for key, decision in complement_views(candidates).items():
            decisions[int(key)] = [decision]
    views: dict[str, list[tuple[int, int]]] = {}
    rules: list[str] = []
    for i, f in enumerate(files):
        for (_detector, _old, frames), decision in zip(f.groups, decisions[i], strict=True):
            views.setdefault(decision.view.value, []).extend((i, fr) for fr in frames)
            rules.append(decision.rule)
    unique = list(dict.fromkeys(rules))
    notes = [w for i in decisions for d in decisions[i] for w in d.warnings]
    return views, ("; ".join(unique) if unique else None), notes


def _build_entry(s: _Series) -> tuple[SeriesEntry | None, list[SkippedFile]]:
    kind, reason = _majority_kind(s.files)
    rejected = [
        SkippedFile(
            f.path,
            INCONSISTENT_SERIES,
            f"classified {f.kind.value} ({f.kind_reason}) while the rest of series "
            f"{s.series_instance_uid} is {kind.value}",
        )
        for f in s.files
        if f.kind is not kind
    ]
    kept = [f for f in s.files if f.kind is kind]
    ds = s.first
    info, acq_notes = read_acquisition_info_with_warnings(ds)
    if kind not in (SeriesKind.PET, SeriesKind.SPECT):
        acq_notes = [n for n in acq_notes if "PatientWeight" not in n]
    if kind in (SeriesKind.CT, SeriesKind.OTHER):
        acq_notes = []
    notes = _consistency_warnings(kept)
    views: dict[str, list[tuple[int, int]]] = {}
    view_rule = None
    if any(f.groups for f in kept):
        views, view_rule, view_notes = _planar_views(kept)
        notes.extend(view_notes)
        for f in kept:
            notes.extend(f.layout_warnings)
    notes.extend(acq_notes)
    rows = Counter(f.rows for f in kept).most_common(1)[0][0]
    columns = Counter(f.columns for f in kept).most_common(1)[0][0]
    entry = SeriesEntry(
        study_instance_uid=s.study_instance_uid,
        series_instance_uid=s.series_instance_uid,
        kind=kind,
        modality=_text(ds, "Modality"),
        sop_class_uid=_text(ds, "SOPClassUID"),
        files=tuple(f.path for f in kept),
        n_images=sum(f.n_frames for f in kept),
        kind_reason=reason,
        manufacturer=_text(ds, "Manufacturer"),
        model=_text(ds, "ManufacturerModelName"),
        series_description=_text(ds, "SeriesDescription"),
        image_type=_image_type(ds),
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
        radionuclide=info.radionuclide,
        radiopharmaceutical=info.radiopharmaceutical,
        hours_post_injection=info.hours_post_injection,
        views=views,
        view_rule=view_rule,
        rows=rows,
        columns=columns,
        patient_id=_text(ds, "PatientID"),
        warnings=tuple(dict.fromkeys(notes)),
    )
    return entry, rejected
