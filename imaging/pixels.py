"""Pixel data to float32 frames, with size guards and value scaling.

:func:`decode_frames` turns a dataset's pixel data into a ``float32`` array of shape
(frame, row, col) in the stored real-world unit:

* RealWorldValueMappingSequence (PS3.3 C.7.6.16.2.11; per-frame, shared or top level) when
  present: Hermes stores SPECT counts that way and quantitative SPECT stores Bq/mL;
* otherwise RescaleSlope/RescaleIntercept (the Modality LUT, PS3.3 C.11.1; per-frame
  PixelValueTransformationSequence in enhanced objects), e.g. CT HU or PET Bq/mL;
* otherwise the stored values unchanged (NM counts).

Before decoding it refuses, with :class:`~octoscan.imaging.errors.InvalidInputError` and a
stable code, objects without pixel data (``missing_pixel_data``), objects whose declared size
exceeds a limit (``image_too_large``), image attributes that are not integers (``malformed``),
transfer syntaxes no installed plugin decodes (``unsupported_transfer_syntax``), uncompressed
pixel data shorter than Rows, Columns, NumberOfFrames, SamplesPerPixel and BitsAllocated
declare (``pixel_data_truncated``) or holding whole frames more than NumberOfFrames says
(``frame_count_mismatch``), colour images (``unsupported_photometric_interpretation``); a
decoder failure becomes ``pixel_decode_failed``.

The size limit is :data:`DEFAULT_MAX_IMAGE_BYTES` (2 GiB), or the environment variable
``OCTOSCAN_MAX_IMAGE_BYTES`` (a whole number of bytes) when set; a ``max_bytes`` keyword
given to a function overrides both. It is checked from the header alone, before any pixel
buffer is allocated. ACR-NEMA style objects without PhotometricInterpretation,
SamplesPerPixel or a File Meta transfer syntax are completed on a copy, with a warning.
"""

from __future__ import annotations

import os
import warnings as _warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_decoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from octoscan.imaging import jpeg_lossless
from octoscan.imaging.dicom_io import as_uid, describe_exception, open_capped
from octoscan.imaging.errors import ConfigError, InvalidInputError

__all__ = [
    "DEFAULT_MAX_IMAGE_BYTES",
    "MAX_IMAGE_BYTES_ENV",
    "DecodedFrames",
    "check_declared_size",
    "check_stored_length",
    "check_transfer_syntax",
    "declared_pixel_bytes",
    "decode_frames",
    "decode_frames_with_info",
    "max_image_bytes",
    "normalise_units",
    "read_dataset",
    "transfer_syntax_of",
]

DEFAULT_MAX_IMAGE_BYTES = 2 * 1024**3  # refuse objects whose pixels would need more than 2 GiB
MAX_IMAGE_BYTES_ENV = "OCTOSCAN_MAX_IMAGE_BYTES"
UNCOMPRESSED_SYNTAXES = frozenset(
    {
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
    }
)
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")

# UCUM code values of MeasurementUnitsCodeSequence -> (octoscan unit, factor to that unit)
_UNITS: dict[str, tuple[str, float]] = {
    "bq/ml": ("Bq/mL", 1.0),
    "kbq/ml": ("Bq/mL", 1e3),
    "mbq/ml": ("Bq/mL", 1e6),
    "{counts}": ("counts", 1.0),
    "{cnts}": ("counts", 1.0),
    "counts": ("counts", 1.0),
    "cnts": ("counts", 1.0),
    "{suvbw}g/ml": ("SUVbw", 1.0),
    "g/ml": ("SUVbw", 1.0),
    "[hnsf'u]": ("HU", 1.0),
    "hu": ("HU", 1.0),
}


@dataclass(frozen=True)
class DecodedFrames:
    """Decoded pixels: ``array`` (frame, row, col) float32 in ``units``.

    ``units`` is the octoscan unit named by a RealWorldValueMapping ("Bq/mL", "counts",
    "SUVbw", "HU") or its raw UCUM code when unknown, and None when no mapping names one.
    ``scaling`` says which transform was applied: "rwvm", "rescale" or "none".
    """

    array: np.ndarray
    units: str | None
    scaling: str
    transfer_syntax: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Linear:
    slope: float
    intercept: float


@dataclass(frozen=True)
class _RwvmPiece:
    first: float
    last: float
    slope: float
    intercept: float
    lut: np.ndarray | None
    units: str | None
    unit_factor: float


# ---------------------------------------------------------------------------- reading


def read_dataset(
    path: str | Path, *, stop_before_pixels: bool = False
) -> tuple[Dataset, tuple[str, ...]]:
    """Read one DICOM file (with or without preamble/File Meta) and every value in it.

    pydicom's warnings about non-conformant values are returned as strings instead of being
    raised. Reads are capped at the file's size, so a hostile length field allocates nothing
    (the short value read instead then fails the pixel length checks of the decoder).
    Raises InvalidInputError ``unreadable`` when the file cannot be opened or parsed and
    ``not_dicom`` when it parses to nothing that looks like a DICOM image header.
    """
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        try:
            with open_capped(path) as fp:
                ds = dcmread(fp, force=True, stop_before_pixels=stop_before_pixels)
                ds.walk(lambda _ds, _elem: None)  # convert raw values now, warnings included
        except Exception as exc:  # pydicom raises many types on corrupt input
            raise InvalidInputError(
                f"cannot be parsed as DICOM: {describe_exception(exc)}",
                code="unreadable",
                path=path,
            ) from exc
    if not any(k in ds for k in ("SOPClassUID", "Modality", "Rows")):
        raise InvalidInputError(
            "no SOPClassUID, Modality or Rows: not a DICOM image", code="not_dicom", path=path
        )
    notes = tuple(dict.fromkeys(str(w.message) for w in caught))
    return ds, notes


# ---------------------------------------------------------------------------- header checks


def max_image_bytes() -> int:
    """The pixel size limit in bytes: ``$OCTOSCAN_MAX_IMAGE_BYTES`` when set, else
    :data:`DEFAULT_MAX_IMAGE_BYTES`. Raises ConfigError for a value that is not a positive
    whole number."""
    text = os.environ.get(MAX_IMAGE_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_BYTES
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(
            f"{MAX_IMAGE_BYTES_ENV} is {text!r}; expected a positive whole number of bytes "
            f"(default {DEFAULT_MAX_IMAGE_BYTES})"
        )
    return value


def normalise_units(code_value: str | None) -> tuple[str | None, float]:
    """UCUM code value -> (octoscan unit, multiplier to reach it); unknown codes kept as is."""
    if not code_value:
        return None, 1.0
    return _UNITS.get(code_value.strip().lower(), (code_value.strip(), 1.0))


def transfer_syntax_of(ds: Dataset) -> UID | None:
    """The File Meta transfer syntax, or the encoding the file was parsed with, or None."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return as_uid(uid)
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None or little is None:
        return None
    if little:
        return ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    return None if implicit else ExplicitVRBigEndian


def _number_of_frames(ds: Dataset) -> int:
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def stored_pixel_bytes(rows: int, columns: int, frames: int, samples: int, bits: int) -> int:
    """Bytes of uncompressed pixel data of that size (1-bit pixels packed 8 to a byte)."""
    values = rows * columns * frames * samples
    return (values + 7) // 8 if bits == 1 else values * (bits // 8)


def declared_pixel_bytes(ds: Dataset) -> int:
    """Bytes of uncompressed pixel data that Rows, Columns, frames, samples and bits declare."""
    return stored_pixel_bytes(
        int(ds.Rows),
        int(ds.Columns),
        _number_of_frames(ds),
        int(ds.get("SamplesPerPixel") or 1),
        int(ds.BitsAllocated),
    )


def _as_int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return None


def _require_image_attributes(ds: Dataset, path: str | Path) -> None:
    """Rows, Columns and BitsAllocated positive integers; NumberOfFrames and SamplesPerPixel
    integers when present (``malformed`` when a value is not a number, e.g. a wrong VR)."""
    for keyword in ("Rows", "Columns", "BitsAllocated", "NumberOfFrames", "SamplesPerPixel"):
        value = ds.get(keyword)
        optional = keyword in ("NumberOfFrames", "SamplesPerPixel")
        if value is None or value == "":
            if optional:
                continue
            raise InvalidInputError(
                f"{keyword} is {value!r}; expected a positive integer for an image",
                code="missing_pixel_data",
                path=path,
            )
        number = _as_int(value)
        if number is None:
            raise InvalidInputError(
                f"{keyword} is {value!r} (VR {ds[keyword].VR}), not an integer; expected a "
                "positive integer for an image",
                code="malformed",
                path=path,
            )
        if number <= 0 and not optional:
            raise InvalidInputError(
                f"{keyword} is {value!r}; expected a positive integer for an image",
                code="missing_pixel_data",
                path=path,
            )


def check_declared_size(ds: Dataset, path: str | Path, *, max_bytes: int | None = None) -> int:
    """Raise ``image_too_large`` when the decoded float32 frames or the stored pixels would
    exceed ``max_bytes`` (None: :func:`max_image_bytes`); return the declared stored size in
    bytes. Headers only: nothing is allocated."""
    _require_image_attributes(ds, path)
    if max_bytes is None:
        max_bytes = max_image_bytes()
    stored = declared_pixel_bytes(ds)
    as_float = int(ds.Rows) * int(ds.Columns) * _number_of_frames(ds) * 4
    needed = max(stored, as_float)
    if needed > max_bytes:
        raise InvalidInputError(
            f"Rows {ds.Rows} x Columns {ds.Columns} x {_number_of_frames(ds)} frame(s) x "
            f"{ds.BitsAllocated} bits need {needed} bytes; the limit is {max_bytes} bytes",
            code="image_too_large",
            path=path,
        )
    return stored


def check_transfer_syntax(ds: Dataset, path: str | Path) -> UID:
    """Return the transfer syntax if its pixel data can be decoded here, else raise
    ``unsupported_transfer_syntax`` naming it and the missing plugin. Headers only."""
    uid = transfer_syntax_of(ds)
    if uid is None:
        raise InvalidInputError(
            "no transfer syntax (no File Meta and unknown encoding); expected a DICOM Part 10 "
            "file or an ACR-NEMA little endian dataset",
            code="unsupported_transfer_syntax",
            path=path,
        )
    if uid in UNCOMPRESSED_SYNTAXES:
        return uid
    try:
        decoder = get_decoder(uid) if uid.is_valid else None  # a damaged UID: no decoder
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) if decoder is not None else "none"
        raise InvalidInputError(
            f"transfer syntax {uid} ({uid.name}) cannot be decoded here "
            f"(missing decoder plugins: {missing}); expected an uncompressed, JPEG, "
            "JPEG-LS, JPEG 2000 or RLE syntax",
            code="unsupported_transfer_syntax",
            path=path,
        )
    return uid


def _pixel_element_length(ds: Dataset) -> tuple[str | None, int]:
    keyword = next((k for k in _PIXEL_KEYWORDS if k in ds), None)
    if keyword is None:
        return None, 0
    value = ds[keyword].value
    return keyword, len(value) if value is not None else 0


def check_stored_length(
    ds: Dataset, path: str | Path, *, length: int, syntax: UID, keyword: str = "PixelData"
) -> None:
    """Compare ``length``, the byte length of uncompressed pixel data, with what the header
    declares (Rows, Columns, NumberOfFrames, SamplesPerPixel, BitsAllocated).

    Raises ``pixel_data_truncated`` when it is shorter and ``frame_count_mismatch`` when it
    holds one whole frame or more beyond NumberOfFrames (a header that lies about its frame
    count; frame vectors cannot be trusted then). Headers only: ``length`` may come from the
    element's header.
    """
    expected = declared_pixel_bytes(ds)
    frames = _number_of_frames(ds)
    what = (
        f"Rows {ds.Rows} x Columns {ds.Columns} x {frames} frame(s) x SamplesPerPixel "
        f"{ds.get('SamplesPerPixel') or 1} x BitsAllocated {ds.BitsAllocated} declare "
        f"{expected} bytes (transfer syntax {syntax.name})"
    )
    if length < expected:
        raise InvalidInputError(
            f"{keyword} holds {length} bytes but {what}",
            code="pixel_data_truncated",
            path=path,
        )
    frame_bytes = expected // frames
    if frame_bytes > 0 and length - expected >= frame_bytes:
        raise InvalidInputError(
            f"{keyword} holds {length} bytes, room for {length // frame_bytes} frames, but "
            f"NumberOfFrames is {frames} ({what}); expected NumberOfFrames to match the data",
            code="frame_count_mismatch",
            path=path,
        )


def _check_pixel_length(ds: Dataset, path: str | Path, uid: UID) -> None:
    keyword, length = _pixel_element_length(ds)
    if keyword is None or length == 0:
        raise InvalidInputError(
            "no PixelData, FloatPixelData or DoubleFloatPixelData value; expected pixel data",
            code="missing_pixel_data",
            path=path,
        )
    if uid not in UNCOMPRESSED_SYNTAXES or ds[keyword].is_undefined_length:
        return
    check_stored_length(ds, path, length=length, syntax=uid, keyword=keyword)


# ---------------------------------------------------------------------------- completion


def _completed_copy(ds: Dataset, uid: UID, notes: list[str]) -> Dataset:
    """A shallow copy with the attributes pydicom needs to decode, supplied where missing."""
    fixed = Dataset()
    fixed.update(ds)  # new element mapping: additions below do not reach ``ds``
    fixed.file_meta = FileMetaDataset()
    fixed.file_meta.update(getattr(ds, "file_meta", FileMetaDataset()))
    if not fixed.file_meta.get("TransferSyntaxUID"):
        fixed.file_meta.TransferSyntaxUID = uid
        notes.append(f"no File Meta transfer syntax: {uid.name} assumed from the file's encoding")
    if not ds.get("SamplesPerPixel"):
        fixed.SamplesPerPixel = 1
        notes.append("SamplesPerPixel missing (ACR-NEMA style): 1 assumed")
    if not ds.get("PhotometricInterpretation"):
        fixed.PhotometricInterpretation = "MONOCHROME2"
        notes.append("PhotometricInterpretation missing (ACR-NEMA style): MONOCHROME2 assumed")
    if ds.get("BitsStored") is None:
        fixed.BitsStored = int(ds.BitsAllocated)
        notes.append(f"BitsStored missing: {ds.BitsAllocated} assumed")
    if ds.get("PixelRepresentation") is None:
        fixed.PixelRepresentation = 0
        notes.append("PixelRepresentation missing: unsigned assumed")
    return fixed


def _check_photometric(ds: Dataset, path: str | Path) -> None:
    samples = int(ds.get("SamplesPerPixel") or 1)
    photometric = str(ds.get("PhotometricInterpretation") or "MONOCHROME2").strip()
    if samples != 1 or photometric not in _MONOCHROME:
        raise InvalidInputError(
            f"PhotometricInterpretation {photometric!r} with SamplesPerPixel {samples}; "
            "expected MONOCHROME1/MONOCHROME2 with 1 sample (colour images hold no "
            "measurable values)",
            code="unsupported_photometric_interpretation",
            path=path,
        )


# ---------------------------------------------------------------------------- decoding


def _pixel_array(ds: Dataset, uid: UID) -> np.ndarray:
    """``ds.pixel_array``; JPEG lossless through libjpeg-turbo first when available
    (:mod:`octoscan.imaging.jpeg_lossless`), pydicom's own plugins if it declines."""
    plugin = jpeg_lossless.preferred_plugin(uid)
    if plugin is not None:
        ds.pixel_array_options(decoding_plugin=plugin)
        try:
            return ds.pixel_array
        except Exception:  # declined or failed: the default plugins decide
            ds.pixel_array_options(decoding_plugin="")
    return ds.pixel_array


def _decode_stored(ds: Dataset, path: str | Path, uid: UID, notes: list[str]) -> np.ndarray:
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        try:
            arr = _pixel_array(ds, uid)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # decoder plugins raise many exception types
            # pylibjpeg-rle (Rust) panics on some corrupt streams with pyo3's
            # PanicException, a BaseException that would escape `except Exception`
            if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                raise
            raise InvalidInputError(
                f"pixel data could not be decoded with transfer syntax {uid} ({uid.name}): "
                f"{describe_exception(exc)}",
                code="pixel_decode_failed",
                path=path,
            ) from exc
    notes.extend(f"pixel decoding: {w.message}" for w in caught)
    frames, rows, columns = _number_of_frames(ds), int(ds.Rows), int(ds.Columns)
    arr = np.asarray(arr)
    if arr.size != frames * rows * columns:
        raise InvalidInputError(
            f"the decoder returned {arr.size} pixels where NumberOfFrames {frames} x Rows "
            f"{rows} x Columns {columns} declare {frames * rows * columns} (transfer syntax "
            f"{uid.name}); expected NumberOfFrames to match the data",
            code="frame_count_mismatch",
            path=path,
        )
    return arr.reshape(frames, rows, columns)


def _functional_item(ds: Dataset, index: int, sequence: str) -> Dataset | None:
    """The first item of ``sequence`` in frame ``index``'s per-frame group, else shared."""
    places = (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0))
    for groups, i in places:
        seq = ds.get(groups)
        if seq and len(seq) > i and seq[i].get(sequence):
            return seq[i]
    return None


def _rwvm_items(ds: Dataset, index: int) -> list[Dataset]:
    group = _functional_item(ds, index, "RealWorldValueMappingSequence")
    source = group if group is not None else ds
    return list(source.get("RealWorldValueMappingSequence") or [])


class _BadMappingValueError(ValueError):
    """A value-mapping attribute that is not a finite number (``malformed`` for the file)."""


def _number(source: Dataset, keyword: str, default: float) -> float:
    """A finite float from ``source[keyword]``, ``default`` when absent or empty."""
    value = source.get(keyword)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = float("nan")
    if not np.isfinite(number):
        raise _BadMappingValueError(f"{keyword} is {value!r}; expected a finite number")
    return number


def _lut(item: Dataset) -> np.ndarray | None:
    lut = item.get("RealWorldValueLUTData")
    if lut is None:
        return None
    try:
        values = np.asarray(lut, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise _BadMappingValueError("RealWorldValueLUTData is not a list of numbers") from exc
    if values.size == 0 or not np.isfinite(values).all():
        raise _BadMappingValueError("RealWorldValueLUTData is empty or not finite")
    return values


def _rwvm_piece(item: Dataset) -> _RwvmPiece:
    units_item = (item.get("MeasurementUnitsCodeSequence") or [None])[0]
    code = str(units_item.get("CodeValue", "")) if units_item is not None else ""
    units, factor = normalise_units(code)
    return _RwvmPiece(
        first=_number(item, "RealWorldValueFirstValueMapped", -np.inf),
        last=_number(item, "RealWorldValueLastValueMapped", np.inf),
        slope=_number(item, "RealWorldValueSlope", 1.0),
        intercept=_number(item, "RealWorldValueIntercept", 0.0),
        lut=_lut(item),
        units=units,
        unit_factor=factor,
    )


def _apply_rwvm(stored: np.ndarray, pieces: list[_RwvmPiece]) -> np.ndarray:
    out = stored.astype(np.float64)
    for piece in pieces:
        mask = (stored >= piece.first) & (stored <= piece.last)
        if piece.lut is not None:
            idx = np.clip(stored[mask] - piece.first, 0, len(piece.lut) - 1).astype(np.intp)
            values = piece.lut[idx]
        else:
            values = stored[mask] * piece.slope + piece.intercept
        out[mask] = values * piece.unit_factor
    return out


def _rescale(ds: Dataset, index: int) -> _Linear | None:
    group = _functional_item(ds, index, "PixelValueTransformationSequence")
    source = group.PixelValueTransformationSequence[0] if group is not None else ds
    if source.get("RescaleSlope") is None and source.get("RescaleIntercept") is None:
        return None
    return _Linear(_number(source, "RescaleSlope", 1.0), _number(source, "RescaleIntercept", 0.0))


def linear_rescale(ds: Dataset) -> tuple[float, float] | None:
    """(RescaleSlope, RescaleIntercept) of a single-frame image without a real-world value
    mapping, as :func:`decode_frames_with_info` applies them (stored * slope + intercept in
    float64, then float32); None when it has neither attribute. Raises InvalidInputError
    ``malformed`` for a value that is not a finite number."""
    try:
        linear = _rescale(ds, 0)
    except _BadMappingValueError as exc:
        raise InvalidInputError(
            f"{exc} (value mapping of the pixel data)", code="malformed"
        ) from exc
    return None if linear is None else (linear.slope, linear.intercept)


def _scale_frame(
    ds: Dataset, stored: np.ndarray, index: int
) -> tuple[np.ndarray, str, str | None, bool]:
    """(values, scaling, units, mixed_units) for one frame."""
    items = _rwvm_items(ds, index)
    if items:
        pieces = [_rwvm_piece(item) for item in items]
        first_unit = pieces[0].units
        chosen = [p for p in pieces if p.units == first_unit]
        return _apply_rwvm(stored, chosen), "rwvm", first_unit, len(chosen) < len(pieces)
    linear = _rescale(ds, index)
    if linear is None:
        return stored.astype(np.float64), "none", None, False
    return stored * linear.slope + linear.intercept, "rescale", None, False


def _scale_frames(
    ds: Dataset, stored: np.ndarray, notes: list[str]
) -> tuple[np.ndarray, str, str | None]:
    out = np.empty(stored.shape, dtype=np.float32)
    scalings: set[str] = set()
    units: set[str | None] = set()
    for i in range(stored.shape[0]):
        values, scaling, unit, mixed = _scale_frame(ds, stored[i], i)
        out[i] = values
        scalings.add(scaling)
        units.add(unit)
        if mixed and i == 0:
            notes.append(f"RealWorldValueMappingSequence has several units: {unit} used")
    if len(units) > 1 or len(scalings) > 1:
        notes.append(f"frames use different value mappings ({sorted(map(str, units))})")
    return out, "+".join(sorted(scalings)), next(iter(units)) if len(units) == 1 else None


def decode_frames_with_info(
    ds: Dataset, path: str | Path, *, max_bytes: int | None = None
) -> DecodedFrames:
    """Decode and scale every frame of ``ds`` (read with pixels from ``path``).

    Returns (frame, row, col) float32 values in the unit of the mapping applied (see module
    docstring), the mapping used and warnings. ``max_bytes`` None: :func:`max_image_bytes`.
    Raises InvalidInputError with codes missing_pixel_data, malformed, image_too_large,
    unsupported_transfer_syntax, pixel_data_truncated, frame_count_mismatch,
    unsupported_photometric_interpretation or pixel_decode_failed, naming the file.
    """
    notes: list[str] = []
    check_declared_size(ds, path, max_bytes=max_bytes)
    uid = check_transfer_syntax(ds, path)
    _check_pixel_length(ds, path, uid)
    fixed = _completed_copy(ds, uid, notes)
    _check_photometric(fixed, path)
    stored = _decode_stored(fixed, path, uid, notes)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused just below
            array, scaling, units = _scale_frames(fixed, stored, notes)
    except _BadMappingValueError as exc:
        raise InvalidInputError(
            f"{exc} (value mapping of the pixel data)", code="malformed", path=path
        ) from exc
    if np.issubdtype(stored.dtype, np.integer) and not np.isfinite(array).all():
        raise InvalidInputError(
            "the value mapping (RescaleSlope/Intercept or RealWorldValueMapping) takes "
            "integer pixels beyond the float32 range; expected realistic scaling factors",
            code="malformed",
            path=path,
        )
    return DecodedFrames(array, units, scaling, str(uid), tuple(notes))


def decode_frames(ds: Dataset, path: str | Path, *, max_bytes: int | None = None) -> np.ndarray:
    """(frame, row, col) float32 scaled values of ``ds``; see :func:`decode_frames_with_info`
    for the same with units, mapping used and warnings (dropped here)."""
    return decode_frames_with_info(ds, path, max_bytes=max_bytes).array
