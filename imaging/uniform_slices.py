"""Fast reading of a uniform stack of uncompressed single-frame slices (a CT series).

A CT series is hundreds of files that differ only in position, identifiers and pixels. When
every file has an ordinary raw header (:mod:`octoscan.imaging.raw_header`), uncompressed
little endian pixel data of the declared size, and the same bytes as every other file for
each attribute that decoding, geometry or grouping reads (:data:`SHARED_TAGS`), one file
(the reference) is read and decoded in full by pydicom and the others are read straight into
a numpy buffer (one ``readinto`` per file) and scaled with the reference's rescale.

:func:`scan_uniform` says whether a list of files qualifies (None: use the per-file reader,
which reports any problem with its own error codes); :func:`read_stored_plane` reads one
slice's stored values. The volume loader checks the reference decode against this path.
pydicom's notes on non-conformant values (a too-long string, say) are taken from the
reference file only: the other files are not parsed by pydicom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from octoscan.imaging import jpeg_lossless
from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.raw_header import RawHeader, read_raw_header

__all__ = [
    "SHARED_TAGS",
    "UniformSlice",
    "decode_encapsulated_plane",
    "read_stored_plane",
    "scan_uniform",
    "stored_dtype",
]

PIXEL_DATA = 0x7FE00010
IMAGE_POSITION_PATIENT = 0x00200032
SOP_INSTANCE_UID = 0x00080018
_ROWS, _COLUMNS = 0x00280010, 0x00280011
_BITS_ALLOCATED, _PIXEL_REPRESENTATION = 0x00280100, 0x00280103

# Every attribute whose value decoding, geometry, grouping or classification reads, except
# the slice position: identical bytes in every file of a uniform stack (absent in all or
# present in all with the same value).
SHARED_TAGS: tuple[int, ...] = (
    0x00080016,  # SOPClassUID
    0x00080060,  # Modality
    0x0020000D,  # StudyInstanceUID
    0x0020000E,  # SeriesInstanceUID
    0x00200052,  # FrameOfReferenceUID
    0x00200030,  # ImagePosition (retired): present only in ACR-NEMA style files
    0x00200035,  # ImageOrientation (retired)
    0x00200037,  # ImageOrientationPatient
    0x00280002,  # SamplesPerPixel
    0x00280004,  # PhotometricInterpretation
    0x00280008,  # NumberOfFrames
    0x00280010,  # Rows
    0x00280011,  # Columns
    0x00280030,  # PixelSpacing
    0x00280100,  # BitsAllocated
    0x00280101,  # BitsStored
    0x00280102,  # HighBit
    0x00280103,  # PixelRepresentation
    0x00281052,  # RescaleIntercept
    0x00281053,  # RescaleSlope
    0x00281054,  # RescaleType
    0x00283000,  # ModalityLUTSequence
    0x00289145,  # PixelValueTransformationSequence
    0x00409096,  # RealWorldValueMappingSequence
    0x00541001,  # Units
    0x52009229,  # SharedFunctionalGroupsSequence
    0x52009230,  # PerFrameFunctionalGroupsSequence
)


_RECORDED = frozenset(
    {*SHARED_TAGS, IMAGE_POSITION_PATIENT, SOP_INSTANCE_UID, _BITS_ALLOCATED, _PIXEL_REPRESENTATION}
)


@dataclass(frozen=True)
class UniformSlice:
    """One file of a uniform stack: its raw header and position (LPS mm)."""

    path: str
    raw: RawHeader
    ipp: np.ndarray


def stored_dtype(raw: RawHeader) -> np.dtype | None:
    """Little endian dtype of the stored values (8/16/32 bits), None for other layouts."""
    bits = raw.us(_BITS_ALLOCATED)
    representation = raw.us(_PIXEL_REPRESENTATION)
    if bits not in (8, 16, 32) or representation not in (0, 1):
        return None
    return np.dtype(f"<{'i' if representation else 'u'}{bits // 8}")


def scan_uniform(paths: Sequence[str | Path]) -> list[UniformSlice] | None:
    """Raw headers and positions of ``paths`` when they form a uniform stack, else None.

    Uniform: every file has an ordinary raw header, pixel data of one frame (native little
    endian: of the declared size, plus at most one padding byte; encapsulated: complete, with
    its sequence delimiter), a finite
    three-number ImagePositionPatient, a SOPInstanceUID, and the bytes of the first file for
    every tag of :data:`SHARED_TAGS`.
    """
    out: list[UniformSlice] = []
    first: tuple[object, ...] | None = None
    frame_bytes = 0
    for path in paths:
        raw = read_raw_header(path, tags=_RECORDED)
        if raw is None or raw.pixel_tag != PIXEL_DATA:
            return None
        signature = raw.signature(SHARED_TAGS)
        if first is None:
            dtype = stored_dtype(raw)
            rows, columns = raw.us(_ROWS), raw.us(_COLUMNS)
            frames = raw.integer(0x00280008) if 0x00280008 in raw else 1
            samples = raw.us(0x00280002) if 0x00280002 in raw else 1
            if dtype is None or not rows or not columns or frames != 1 or samples != 1:
                return None
            first = signature
            frame_bytes = rows * columns * dtype.itemsize
        elif signature != first:
            return None
        length = raw.pixel_length
        if raw.native:
            if length is None or not frame_bytes <= length <= frame_bytes + 1:
                return None
        elif not raw.encapsulated_complete:
            return None
        ipp = raw.decimals(IMAGE_POSITION_PATIENT)
        if ipp is None or len(ipp) != 3 or not all(math.isfinite(v) for v in ipp):
            return None
        if raw.text(SOP_INSTANCE_UID) is None:
            return None
        out.append(UniformSlice(str(path), raw, np.asarray(ipp, dtype=np.float64)))
    return out or None


def decode_encapsulated_plane(item: UniformSlice, options: dict[str, Any]) -> np.ndarray | None:
    """The decoded stored values of one encapsulated single-frame slice (pydicom's decoder
    for the transfer syntax, with the image attributes in ``options``: rows, columns,
    bits_allocated, ...), or None when the decoder fails (the per-file path then reports it
    with its error code)."""
    from pydicom.pixels import get_decoder

    with open(item.path, "rb") as fp:
        fp.seek(item.raw.pixel_value_offset)
        data = fp.read()
    decoder = get_decoder(item.raw.transfer_syntax)
    attempts: list[dict[str, Any]] = [options]
    plugin = jpeg_lossless.preferred_plugin(item.raw.transfer_syntax)
    if plugin is not None:
        # libjpeg-turbo first (about 6x faster); pydicom's own plugins if it declines
        attempts.insert(0, {**options, "decoding_plugin": plugin})
    for attempt in attempts:
        try:
            array, _meta = decoder.as_array(data, **attempt)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # plugins raise many types; pylibjpeg-rle a Rust panic
            if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                raise
            continue
        return array
    return None


def read_stored_plane(item: UniformSlice, out: np.ndarray) -> None:
    """Read the stored values of ``item`` into ``out`` (rows x columns, the stored dtype).

    Raises InvalidInputError ``truncated`` when the file holds fewer bytes than its header
    said when it was scanned (changed on disk since).
    """
    view = out.data.cast("B")
    with open(item.path, "rb") as fp:
        fp.seek(item.raw.pixel_value_offset)
        n = fp.readinto(view)
    if n != out.nbytes:
        raise InvalidInputError(
            f"Pixel Data ends after {n} of {out.nbytes} bytes (the file changed while read)",
            code="truncated",
            path=item.path,
        )
