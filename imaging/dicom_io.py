"""Reading primitives: one header read per file, every failure mapped to a stable code.

:func:`read_header` is the only place where octoscan opens a file for its DICOM header. It
rejects non-DICOM files fast (``DICM`` at byte 128, or a plausible first data element for
files without the 128-byte preamble and File Meta group, e.g. ACR-NEMA style files), reads the
header with ``stop_before_pixels`` and checks that the file is complete. Every pydicom or OS
failure becomes an :class:`~octoscan.imaging.errors.InvalidInputError` whose ``code`` is one of
:data:`ERROR_CODES`.

Values are converted eagerly (with pydicom's value-validation warnings silenced, since real
files often break VR length rules), so later attribute access never warns.
"""

from __future__ import annotations

import logging
import os
import struct
import warnings
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
import pydicom.config
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
)

from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.raw_header import SEQUENCE_DELIMITER

# Stable codes raised by this module (also used by discovery's SkippedFile records).
NOT_DICOM = "not_dicom"
UNREADABLE = "unreadable"
TRUNCATED = "truncated"
MALFORMED = "malformed"
MISSING_UIDS = "missing_uids"
UNSUPPORTED_TRANSFER_SYNTAX = "unsupported_transfer_syntax"
MISSING_PIXEL_DATA = "missing_pixel_data"
DICOMDIR = "dicomdir"
ERROR_CODES: tuple[str, ...] = (
    NOT_DICOM,
    UNREADABLE,
    TRUNCATED,
    MALFORMED,
    MISSING_UIDS,
    UNSUPPORTED_TRANSFER_SYNTAX,
    MISSING_PIXEL_DATA,
    DICOMDIR,
)

_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float, Double Float
_NATIVE_SYNTAXES = frozenset(
    {
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
    }
)
# Groups a DICOM data set without preamble can start with: File Meta (0002), Identifying (0008).
_FIRST_GROUPS = (0x0002, 0x0008)
_VALID_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN "
    b"UR US UT UV".split()
)
_EXPLICIT_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ UC UN UR UT SV UV".split())
_SEQ_DELIMITER_LE = SEQUENCE_DELIMITER
_ITEM_HEADER_BYTES = 8  # an encapsulated fragment: item tag and 32-bit length
_META_START = 132  # 128-byte preamble and 'DICM'
_META_GROUP_LENGTH_BYTES = 12  # the (0002,0000) UL element itself
_SEQ_DELIMITER_BE = b"\xff\xfe\xe0\xdd\x00\x00\x00\x00"
_UNDEFINED_LENGTH = 0xFFFFFFFF
REQUIRED_UIDS: tuple[str, ...] = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


class _CappedReader:
    """A binary file whose ``read(n)`` never asks for more than the bytes left in it.

    pydicom reads a value with ``fp.read(length)`` and Python allocates ``length`` bytes
    before reading, so a hostile 4 GiB length field would cost a 4 GiB allocation. Capped,
    the short value simply ends the file, which the truncation checks then report.
    """

    def __init__(self, fp: BinaryIO, size: int):
        self._fp = fp
        self._size = size

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            return self._fp.read()
        return self._fp.read(min(n, max(self._size - self._fp.tell(), 0)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


@contextmanager
def open_capped(path: str | Path) -> Iterator[BinaryIO]:
    """Open ``path`` for pydicom with every read capped at the bytes left in the file, so a
    hostile length field cannot make the reader allocate more memory than the file's size."""
    with open(path, "rb") as fp:
        capped: Any = _CappedReader(fp, os.fstat(fp.fileno()).st_size)
        yield capped


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Read values without pydicom's validation warnings and log lines (restored after).

    Real files often break VR length or character rules (e.g. a 14-character IS); such values
    are read as they are. Not thread-safe: pydicom's validation mode is process-global.
    """
    settings = pydicom.config.settings
    logger = logging.getLogger("pydicom")
    mode, level = settings.reading_validation_mode, logger.level
    settings.reading_validation_mode = pydicom.config.IGNORE
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        settings.reading_validation_mode = mode
        logger.setLevel(level)


def describe_exception(exc: BaseException, *, with_type: bool = True) -> str:
    """An exception as one line of text ("Type: message", whitespace runs collapsed), for a
    reason that goes into one CSV cell or log line; decoder plugins write several lines."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if with_type else text


def as_uid(value: object) -> UID:
    """A UID from a file's value without pydicom's validation warning (a mutated or vendor
    UID such as ';.2.840...' is kept as it is and simply matches no known UID)."""
    return UID(str(value), validation_mode=pydicom.config.IGNORE)


def read_header(path: str | Path, *, specific_tags: Iterable[int | str] | None = None) -> Dataset:
    """Read the header (everything before Pixel Data) of one DICOM file.

    ``specific_tags`` restricts what is kept (pydicom still parses the whole header; the
    truncation check is then limited to the pixel data element).

    Raises :class:`InvalidInputError` with code ``not_dicom`` (no DICOM signature and no
    plausible first element), ``unreadable`` (permission, I/O, a directory), ``truncated``
    (the file ends inside an element) or ``malformed`` (pydicom cannot parse it).
    UIDs, pixel data presence and transfer syntax are checked by :func:`check_image_header`.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fp:
            head = fp.read(132)
            has_preamble = len(head) == 132 and head[128:132] == b"DICM"
            if not has_preamble:
                _check_headless_plausible(head, size, path)
            fp.seek(0)
            capped: Any = _CappedReader(fp, size)
            ds = _parse(capped, path, size, force=not has_preamble, specific_tags=specific_tags)
    except InvalidInputError:
        raise
    except IsADirectoryError as exc:
        raise InvalidInputError("is a directory, not a file", code=UNREADABLE, path=path) from exc
    except PermissionError as exc:
        raise InvalidInputError(
            "permission denied when opening the file", code=UNREADABLE, path=path
        ) from exc
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read the file: {exc.strerror or exc}", code=UNREADABLE, path=path
        ) from exc
    return ds


def read_dataset(path: str | Path) -> Dataset:
    """Read a whole DICOM file, pixel data included, for a loader.

    The header is checked first exactly as :func:`read_header` and
    :func:`check_image_header` do (same codes), then the file is read in full with values
    converted eagerly. Pixel decoding is left to :mod:`octoscan.imaging.pixels`.
    """
    path = Path(path)
    header = read_header(path)
    check_image_header(header, path)
    try:
        with quiet_pydicom(), open_capped(path) as fp:
            # force only matters without 'DICM'; read_header has already vetted the file
            ds = pydicom.dcmread(fp, force=True)
            _convert_all(ds)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read the file: {exc.strerror or exc}", code=UNREADABLE, path=path
        ) from exc
    except Exception as exc:  # pydicom raises many types
        raise InvalidInputError(
            f"DICOM data set cannot be parsed ({describe_exception(exc)})",
            code=MALFORMED,
            path=path,
        ) from exc
    ds._octoscan_pixel_tag = header._octoscan_pixel_tag
    return ds


def is_dicomdir(ds: Dataset) -> bool:
    """True for a DICOMDIR (Media Storage Directory) object: an index, not an image."""
    sop = _meta_or_ds(ds, "MediaStorageSOPClassUID") or ds.get("SOPClassUID")
    return sop == MediaStorageDirectoryStorage or "DirectoryRecordSequence" in ds


def is_image_sop_class(ds: Dataset) -> bool:
    """True when the object is meant to hold pixel data (an '... Image Storage' SOP class).

    Objects without SOPClassUID (ACR-NEMA) count as images when they carry Rows and Columns.
    """
    sop = ds.get("SOPClassUID")
    if sop:
        return "Image Storage" in as_uid(sop).name
    return "Rows" in ds and "Columns" in ds


def has_pixel_data(ds: Dataset) -> bool:
    """True when the header read stopped at a pixel data element (see :func:`read_header`)."""
    return bool(getattr(ds, "_octoscan_pixel_tag", None))


def transfer_syntax(ds: Dataset) -> UID | None:
    """The transfer syntax the data set was read with (None when unknown)."""
    ts = _meta_or_ds(ds, "TransferSyntaxUID")
    if ts:
        return as_uid(ts)
    if getattr(ds, "is_little_endian", None) is None:
        return None
    if not ds.is_little_endian:
        return ExplicitVRBigEndian
    return ImplicitVRLittleEndian if ds.is_implicit_VR else ExplicitVRLittleEndian


def is_transfer_syntax_supported(uid: str) -> bool:
    """True when octoscan can decode pixel data in this transfer syntax (installed plugins)."""
    uid = as_uid(uid)
    if uid in _NATIVE_SYNTAXES:
        return True
    if not uid.is_valid:  # a damaged UID names no decoder (and pydicom would warn on it)
        return False
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(uid).is_available)
    except (NotImplementedError, ValueError):
        return False


def check_image_header(ds: Dataset, path: str | Path) -> None:
    """Checks on a header needed before the object can be grouped and used as an image.

    Raises :class:`InvalidInputError` with code ``missing_uids`` (Study, Series or SOP
    Instance UID absent or empty), ``missing_pixel_data`` (an image SOP class with no Pixel
    Data element, or no Rows/Columns/BitsAllocated), ``unsupported_transfer_syntax`` (no
    decoder installed for it), and the pixel extent codes of :func:`_check_pixel_extent`
    (``image_too_large``, ``malformed``, ``pixel_data_truncated``, ``frame_count_mismatch``).
    """
    missing = [name for name in REQUIRED_UIDS if not str(ds.get(name, "") or "").strip()]
    if missing:
        modality = ds.get("Modality") or "unknown"
        raise InvalidInputError(
            f"missing {', '.join(missing)} (modality {modality}); a file without UIDs cannot "
            "be grouped into a study and series",
            code=MISSING_UIDS,
            path=path,
        )
    if not is_image_sop_class(ds):
        return
    if not has_pixel_data(ds):
        raise InvalidInputError(
            f"SOP class {_sop_name(ds)} holds an image but the file has no Pixel Data "
            "(7FE0,0010) element",
            code=MISSING_PIXEL_DATA,
            path=path,
        )
    ts = transfer_syntax(ds)
    if ts is not None and not is_transfer_syntax_supported(ts):
        raise InvalidInputError(
            f"transfer syntax {ts} ({ts.name}) cannot be decoded here; supported: native "
            "little/big endian, deflate, JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, "
            "HTJ2K, RLE",
            code=UNSUPPORTED_TRANSFER_SYNTAX,
            path=path,
        )
    _check_pixel_extent(ds, path, ts)


def _check_pixel_extent(ds: Dataset, path: str | Path, ts: UID | None) -> None:
    """What Rows, Columns and NumberOfFrames declare must be plausible and fit the file.

    Refuses, from the header alone and before any pixel buffer or per-frame table exists:
    a declared size over the limit (``image_too_large``), image attributes that are absent
    or not numbers (``missing_pixel_data``, ``malformed``), native pixel data shorter than
    declared or holding extra whole frames (``pixel_data_truncated``,
    ``frame_count_mismatch``), and more frames than an encapsulated value can hold (each
    frame needs at least one 8-byte item: ``pixel_data_truncated``).
    """
    from octoscan.imaging.pixels import check_declared_size, check_stored_length

    check_declared_size(ds, path)
    extent = getattr(ds, "_octoscan_pixel_extent", None)
    if extent is None or ts is None:
        return
    length, available = extent
    if length is not None and ts in _NATIVE_SYNTAXES:
        check_stored_length(ds, path, length=length, syntax=ts)
        return
    frames = max(int(ds.get("NumberOfFrames") or 1), 1)
    room = available // _ITEM_HEADER_BYTES
    if length is None and frames > room:
        raise InvalidInputError(
            f"NumberOfFrames is {frames} but the encapsulated Pixel Data ({available} bytes "
            f"to the end of the file) has room for at most {room} fragments, one per frame "
            "at least",
            code="pixel_data_truncated",
            path=path,
        )


# --------------------------------------------------------------------------- internals


def _sop_name(ds: Dataset) -> str:
    sop = ds.get("SOPClassUID")
    return as_uid(sop).name if sop else "(none)"


def _meta_or_ds(ds: Dataset, keyword: str) -> object:
    meta = getattr(ds, "file_meta", None)
    if meta is not None and keyword in meta:
        return meta.get(keyword)
    return None


def _check_headless_plausible(head: bytes, size: int, path: Path) -> None:
    """Accept a file without 'DICM' only if it starts like a DICOM data set (group 0002/0008)."""
    if len(head) < 8:
        raise InvalidInputError(
            f"{size} bytes: too short for DICOM (no 'DICM' at byte 128, no data element)",
            code=NOT_DICOM,
            path=path,
        )
    for order in ("<", ">"):
        group, element = struct.unpack(f"{order}HH", head[:4])
        if group not in _FIRST_GROUPS or element > 0x0100:
            continue
        vr = head[4:6]
        if vr in _VALID_VRS:  # explicit VR (little or big endian)
            return
        (length,) = struct.unpack(f"{order}I", head[4:8])
        if order == "<" and length <= size:  # implicit VR little endian
            return
    raise InvalidInputError(
        f"no 'DICM' prefix at byte 128 and the first bytes {head[:8].hex()} are not a DICOM "
        "data element of group 0002 or 0008",
        code=NOT_DICOM,
        path=path,
    )


def _parse(fp: BinaryIO, path: Path, size: int, *, force: bool, specific_tags) -> Dataset:
    """pydicom parse of the header, completeness check, values converted eagerly."""
    tags = list(specific_tags) if specific_tags is not None else None
    try:
        with quiet_pydicom():
            ds = _read_stopping_at_pixels(fp, path, size, force=force, specific_tags=tags)
            if force and not _looks_like_dataset(ds):
                raise InvalidInputError(
                    "no 'DICM' prefix at byte 128 and the forced parse found no DICOM "
                    "identifying attributes (SOPClassUID, Modality, StudyInstanceUID or Rows)",
                    code=NOT_DICOM,
                    path=path,
                )
            if not force:
                _check_file_meta_end(ds, size, path)
            if tags is None and not ds._dict:
                raise InvalidInputError(
                    f"no data element after the File Meta header: the file ends at byte {size}",
                    code=TRUNCATED,
                    path=path,
                )
            extent: tuple[int | None, int] | None = None
            if transfer_syntax(ds) == DeflatedExplicitVRLittleEndian:
                # pydicom inflated the data set into memory: fp positions mean nothing here.
                # Deflated files are rare, so read them whole to learn about pixel data.
                full = pydicom.dcmread(path, force=force)
                pixel_tag = next((t for t in _PIXEL_TAGS if t in full), None)
            else:
                end_of_header = fp.tell()
                pixel_tag = _peek_pixel_tag(fp, ds, end_of_header)
                if pixel_tag is not None:
                    extent = _check_pixel_element(fp, ds, end_of_header, size, path)
                elif tags is None:
                    _check_header_end(fp, ds, end_of_header, size, path)
            _convert_all(ds)
    except InvalidInputError:
        raise
    except InvalidDicomError as exc:
        raise InvalidInputError(
            f"not a DICOM file: {describe_exception(exc, with_type=False)}",
            code=NOT_DICOM,
            path=path,
        ) from exc
    except EOFError as exc:
        raise InvalidInputError(
            f"file ends inside the data set: {describe_exception(exc, with_type=False)}",
            code=TRUNCATED,
            path=path,
        ) from exc
    except zlib.error as exc:
        code = TRUNCATED if "incomplete or truncated" in str(exc) else MALFORMED
        raise InvalidInputError(
            f"deflated data set cannot be inflated: {describe_exception(exc, with_type=False)}",
            code=code,
            path=path,
        ) from exc
    except OSError:
        raise
    except Exception as exc:  # pydicom raises many types (ValueError, KeyError, struct.error)
        raise InvalidInputError(
            f"DICOM header cannot be parsed ({describe_exception(exc)})",
            code=MALFORMED,
            path=path,
        ) from exc
    ds._octoscan_pixel_tag = pixel_tag  # read by has_pixel_data()
    ds._octoscan_pixel_extent = extent  # read by check_image_header()
    return ds


def _read_stopping_at_pixels(
    fp: BinaryIO, path: Path, size: int, *, force: bool, specific_tags
) -> Dataset:
    """pydicom's header read; a parse error with the whole file consumed is a cut file."""
    try:
        return pydicom.dcmread(
            fp, stop_before_pixels=True, force=force, specific_tags=specific_tags
        )
    except (InvalidDicomError, EOFError, zlib.error, OSError):
        raise
    except Exception as exc:  # struct.error, BytesLengthException ... from a short read
        if fp.tell() < size:
            raise
        raise InvalidInputError(
            f"file ends at byte {size} inside a data element ({describe_exception(exc)})",
            code=TRUNCATED,
            path=path,
        ) from exc


def _check_file_meta_end(ds: Dataset, size: int, path: Path) -> None:
    """Raise ``truncated`` when the file ends before the end its File Meta group declares."""
    meta = getattr(ds, "file_meta", None)
    group_length = meta.get("FileMetaInformationGroupLength") if meta is not None else None
    if not isinstance(group_length, int):
        return
    meta_end = _META_START + _META_GROUP_LENGTH_BYTES + group_length
    if size < meta_end:
        raise InvalidInputError(
            f"file ends at byte {size} inside the File Meta header, which ends at byte "
            f"{meta_end} (FileMetaInformationGroupLength {group_length})",
            code=TRUNCATED,
            path=path,
        )


def _peek_pixel_tag(fp: BinaryIO, ds: Dataset, pos: int) -> int | None:
    """Tag of the pixel data element the header read stopped at (pydicom rewinds to it)."""
    fp.seek(pos)
    raw = fp.read(4)
    if len(raw) < 4:
        return None
    order = ">" if ds.is_little_endian is False else "<"
    group, element = struct.unpack(f"{order}HH", raw)
    tag = (group << 16) | element
    return tag if tag in _PIXEL_TAGS else None


def _convert_all(ds: Dataset) -> None:
    """Convert every raw element (recursively, File Meta included) so later access neither
    warns nor fails."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        for _ in meta:  # iterating converts raw elements
            pass
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value or ():
                _convert_all(item)


def _check_pixel_element(
    fp: BinaryIO, ds: Dataset, start: int, size: int, path: Path
) -> tuple[int | None, int]:
    """Raise ``truncated`` when the file ends before the end of the pixel data value.

    Returns (value length, None when undefined: encapsulated; bytes from the value's start to
    the end of the file).
    """
    order = ">" if ds.is_little_endian is False else "<"
    fp.seek(start)
    header = fp.read(12)
    # The encoding is read from the element itself: files declaring explicit VR in their
    # meta header but written in implicit VR exist (pydicom adapts silently).
    if header[4:6] not in _VALID_VRS:
        need, fmt, at = 8, "I", 4
    elif header[4:6] in _EXPLICIT_LONG_VRS:
        need, fmt, at = 12, "I", 8
    else:
        need, fmt, at = 8, "H", 6
    if len(header) < need:
        raise InvalidInputError(
            "file ends inside the Pixel Data element header", code=TRUNCATED, path=path
        )
    (length,) = struct.unpack(f"{order}{fmt}", header[at : at + struct.calcsize(fmt)])
    value_start = start + need
    if length == _UNDEFINED_LENGTH:
        fp.seek(max(value_start, size - 4096))
        if _SEQ_DELIMITER_LE not in fp.read():
            raise InvalidInputError(
                "encapsulated Pixel Data has no sequence delimiter at its end: the file is cut "
                "short",
                code=TRUNCATED,
                path=path,
            )
    elif value_start + length > size:
        raise InvalidInputError(
            f"Pixel Data declares {length} bytes but only {max(size - value_start, 0)} remain "
            "in the file",
            code=TRUNCATED,
            path=path,
        )
    return (None if length == _UNDEFINED_LENGTH else length), size - value_start


def _check_header_end(fp: BinaryIO, ds: Dataset, end: int, size: int, path: Path) -> None:
    """No pixel data reached: the header's last element must end exactly at end of file."""
    if not ds._dict:
        return
    last = ds._dict[max(ds._dict)]
    value_tell = getattr(last, "value_tell", None)
    length = getattr(last, "length", None)
    if value_tell is None or length is None:
        return
    if length == _UNDEFINED_LENGTH:
        fp.seek(max(0, size - 8))
        delimiter = _SEQ_DELIMITER_BE if ds.is_little_endian is False else _SEQ_DELIMITER_LE
        if fp.read(8) != delimiter:
            raise InvalidInputError(
                f"file ends inside sequence {last.tag} (no sequence delimiter)",
                code=TRUNCATED,
                path=path,
            )
        return
    if value_tell + length != size:
        raise InvalidInputError(
            f"file ends at byte {size} but its last element {last.tag} ends at byte "
            f"{value_tell + length}",
            code=TRUNCATED,
            path=path,
        )


def _looks_like_dataset(ds: Dataset) -> bool:
    return any(k in ds for k in ("SOPClassUID", "Modality", "StudyInstanceUID", "Rows"))
