"""A fast, strict reader of the top-level elements of an ordinary DICOM header.

pydicom builds a data element object per attribute and converts values through its hooks;
for a folder of thousands of CT or PET slices that costs far more than the I/O. This module
walks the raw bytes of a Part 10 file once (one read of the first :data:`HEAD_BYTES`, more
only when the header is longer), records where each top-level element's value lies, and
decodes only the values asked for (text, integers, decimal strings). Nested sequences are
skipped, not parsed.

It is a fast path, never the only path: :func:`read_raw_header` returns ``None`` for
anything it does not fully vouch for (no ``DICM`` preamble, big endian or deflated syntax,
an element running past the end of the file, a broken sequence, a File Meta group that does
not end where it says, no Pixel Data and no exact end of file), and callers then use the
pydicom reader of :mod:`octoscan.imaging.dicom_io`, which gives the precise error code. A
header it accepts is one pydicom reads the same way.

Offsets are byte offsets from the start of the file; tags are 32-bit ints (group << 16 |
element).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "HEAD_BYTES",
    "NATIVE_SYNTAXES",
    "PIXEL_TAGS",
    "SEQUENCE_DELIMITER",
    "RawHeader",
    "read_raw_header",
]

HEAD_BYTES = 16384  # first read; most headers (CT, PET, NM slices) end well inside it
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})  # Pixel Data, Float, Double
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_IMPLICIT_LE = "1.2.840.10008.1.2"
NATIVE_SYNTAXES = frozenset({_IMPLICIT_LE, _EXPLICIT_LE})  # uncompressed little endian
SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # (FFFE,E0DD), length 0
_ENCAPSULATED_PREFIX = "1.2.840.10008.1.2.4."  # JPEG family, JPEG-LS, JPEG 2000, HTJ2K
_RLE = "1.2.840.10008.1.2.5"
_TRANSFER_SYNTAX = 0x00020010
_META_GROUP_LENGTH = 0x00020000
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ UC UN UR UT SV UV".split())
_VRS = _LONG_VRS | frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split()
)
# element header size by explicit VR: 8 (16-bit length) or 12 (reserved + 32-bit length)
_HEADER_BYTES = {vr: (12 if vr in _LONG_VRS else 8) for vr in _VRS}
_SHORT = struct.Struct("<HH2sH")  # explicit VR, 16-bit length: group, element, VR, length
_LONG = struct.Struct("<I")
_IMPLICIT = struct.Struct("<HHI")  # group, element, 32-bit length
_TAG = struct.Struct("<HH")
_MAX_DEPTH = 16  # nested sequences deeper than this are not "ordinary"


class _NeedsFullReaderError(Exception):
    """Internal: the header needs the full reader."""


@dataclass(frozen=True)
class RawHeader:
    """Where the top-level values of one file lie, and the bytes that hold them.

    ``elements`` maps tag -> (VR or None for implicit VR, value offset, value length, offset
    just past the element; length ``0xFFFFFFFF`` for an undefined-length sequence, whose end
    is past its delimiter). ``pixel_tag`` is the pixel data element the walk stopped at
    (None: the object has none and its last element ends the file); ``pixel_value_offset``
    and ``pixel_length`` (None: undefined, encapsulated) describe its value, and ``tail``
    holds the file's last 8 bytes when the pixel data is encapsulated (its sequence
    delimiter in a complete file).
    """

    path: str
    size: int
    transfer_syntax: str
    implicit_vr: bool
    elements: dict[int, tuple[bytes | None, int, int, int]]
    data: bytes  # the file's first bytes, through the end of the last element recorded
    pixel_tag: int | None
    pixel_value_offset: int
    pixel_length: int | None
    meta_group_length: int | None
    tail: bytes = b""

    def __contains__(self, tag: int) -> bool:
        return tag in self.elements

    def raw(self, tag: int) -> bytes | None:
        """The value bytes of a top-level element, or None when absent."""
        found = self.elements.get(tag)
        if found is None or found[2] == _UNDEFINED:
            return None
        _vr, start, length, _end = found
        return self.data[start : start + length]

    def span(self, tag: int) -> bytes | None:
        """The bytes from a top-level element's value to its end (a sequence's items and
        delimiter included), or None when absent: for comparing values between files."""
        found = self.elements.get(tag)
        if found is None:
            return None
        return self.data[found[1] : found[3]]

    def signature(self, tags: tuple[int, ...]) -> tuple[object, ...]:
        """The transfer syntax and the :meth:`span` of each of ``tags``: equal signatures mean
        byte-identical values (or the same absences) in two files."""
        data, elements = self.data, self.elements
        spans = [
            None if (found := elements.get(tag)) is None else data[found[1] : found[3]]
            for tag in tags
        ]
        return (self.transfer_syntax, *spans)

    @property
    def native(self) -> bool:
        """True for uncompressed little endian pixel data (read straight into an array)."""
        return self.transfer_syntax in NATIVE_SYNTAXES

    @property
    def encapsulated_complete(self) -> bool:
        """Encapsulated pixel data of undefined length whose file ends with its sequence
        delimiter (a file cut short does not)."""
        return (
            self.pixel_tag is not None
            and self.pixel_length is None
            and (self.tail == SEQUENCE_DELIMITER)
        )

    def text(self, tag: int) -> str | None:
        """A string value with padding (spaces, NULs) stripped; None when absent or empty.

        Bytes are decoded as Latin-1 (a superset of the default repertoire for the UIDs,
        code strings and numbers read through this path)."""
        value = self.raw(tag)
        if not value:
            return None
        text = value.decode("latin-1").strip(" \x00")
        return text or None

    def strings(self, tag: int) -> tuple[str, ...]:
        """A multi-valued string (backslash-separated), each value stripped."""
        text = self.text(tag)
        return tuple(v.strip(" \x00") for v in text.split("\\")) if text else ()

    def us(self, tag: int) -> int | None:
        """An unsigned short (US) value, or None when absent or not 2 bytes long."""
        value = self.raw(tag)
        if value is None or len(value) != 2:
            return None
        return value[0] | (value[1] << 8)

    def integer(self, tag: int) -> int | None:
        """An integer string (IS) value, or None when absent, empty or not a whole number."""
        text = self.text(tag)
        if text is None:
            return None
        try:
            return int(text)
        except ValueError:
            return None

    def decimals(self, tag: int) -> tuple[float, ...] | None:
        """A decimal string (DS) value as floats, or None when absent or not numbers."""
        text = self.text(tag)
        if text is None:
            return None
        try:
            return tuple(float(v) for v in text.split("\\"))
        except ValueError:
            return None


def read_raw_header(
    path: str | Path, *, head_bytes: int = HEAD_BYTES, tags: frozenset[int] | None = None
) -> RawHeader | None:
    """The raw header of ``path``, or None when the fast path does not vouch for the file.

    Reads at most the header (the first ``head_bytes``, and the rest of the header when it
    is longer), never the pixel data. OS errors also give None: the full reader reports them.
    ``tags``: record only these top-level elements (all are walked and checked the same way;
    fewer records cost less in a loop over thousands of files); None records every one.
    """
    try:
        with open(path, "rb") as fp:
            size = os.fstat(fp.fileno()).st_size
            data = fp.read(min(head_bytes, size))
            try:
                return _parse(str(path), size, data, fp, tags)
            except _NeedsFullReaderError:
                return None
    except OSError:
        return None


class _Bytes:
    """The bytes read so far; :meth:`need` reads the rest of the file once when short."""

    def __init__(self, data: bytes, fp: BinaryIO, size: int) -> None:
        self.data = data
        self._fp = fp
        self._size = size

    def need(self, end: int) -> bytes:
        if end > len(self.data):
            if end > self._size or len(self.data) >= self._size:
                raise _NeedsFullReaderError
            # grow by doubling: a long header costs a few reads, never the pixel data
            want = min(max(end, 2 * len(self.data)), self._size)
            self.data += self._fp.read(want - len(self.data))
            if end > len(self.data):
                raise _NeedsFullReaderError
        return self.data


def _parse(
    path: str, size: int, head: bytes, fp: BinaryIO, wanted: frozenset[int] | None
) -> RawHeader:
    if len(head) < 144 or head[128:132] != b"DICM":
        raise _NeedsFullReaderError
    buf = _Bytes(head, fp, size)
    elements: dict[int, tuple[bytes | None, int, int, int]] = {}
    # File Meta: explicit VR little endian, group 0002 only
    pos = 132
    meta_length: int | None = None
    while True:
        data = buf.need(pos + 8)
        group, element, vr, length = _SHORT.unpack_from(data, pos)
        if group != 0x0002:
            break
        if vr in _LONG_VRS:
            data = buf.need(pos + 12)
            (length,) = _LONG.unpack_from(data, pos + 8)
            start = pos + 12
        elif vr in _VRS:
            start = pos + 8
        else:
            raise _NeedsFullReaderError
        if length == _UNDEFINED:
            raise _NeedsFullReaderError
        data = buf.need(start + length)
        tag = (group << 16) | element
        elements[tag] = (vr, start, length, start + length)
        if tag == _META_GROUP_LENGTH and length == 4:
            (meta_length,) = _LONG.unpack_from(data, start)
        pos = start + length
    if meta_length is not None and pos != 132 + 12 + meta_length:
        raise _NeedsFullReaderError  # the group length lies: let the full reader judge
    ts_found = elements.get(_TRANSFER_SYNTAX)
    if ts_found is None:
        raise _NeedsFullReaderError
    data = buf.data
    ts = data[ts_found[1] : ts_found[1] + ts_found[2]].decode("latin-1").strip(" \x00")
    if ts == _IMPLICIT_LE:
        if data[pos + 4 : pos + 6] in _VRS:
            raise _NeedsFullReaderError  # declared implicit, written explicit: full reader
        implicit = True
    elif ts in (_EXPLICIT_LE, _RLE) or ts.startswith(_ENCAPSULATED_PREFIX):
        implicit = False  # encapsulated syntaxes: explicit VR little endian data set
    else:
        raise _NeedsFullReaderError  # big endian, deflate, private syntaxes
    pixel_tag: int | None = None
    pixel_offset = size
    pixel_length: int | None = None
    last_tag = 0x0002FFFF
    data = buf.data
    n = len(data)
    short, long_, implicit_s = _SHORT.unpack_from, _LONG.unpack_from, _IMPLICIT.unpack_from
    header_bytes = _HEADER_BYTES
    undefined = _UNDEFINED
    # The element walk is the hot loop of discovery: element headers are unpacked inline
    # (tag and VR checks as in _element) and the buffer is only grown when a header or value
    # runs past the bytes read so far.
    while pos != size:  # pos == size: no pixel data, the last element ended the file
        if pos + 12 > n:
            data = buf.need(min(pos + 12, size))
            n = len(data)
            if pos + 8 > n:
                raise _NeedsFullReaderError
        if implicit:
            group, element, length = implicit_s(data, pos)
            vr = None
            start = pos + 8
        else:
            group, element, vr, length = short(data, pos)
            hb = header_bytes.get(vr)
            if hb == 8:
                start = pos + 8
            elif hb == 12:
                if pos + 12 > n:
                    raise _NeedsFullReaderError
                (length,) = long_(data, pos + 8)
                start = pos + 12
            else:
                raise _NeedsFullReaderError
        tag = (group << 16) | element
        if tag <= last_tag or tag >= 0xFFFE0000:
            raise _NeedsFullReaderError  # out of order, or a delimiter at top level
        last_tag = tag
        if tag >= 0x7FE00008 and tag in PIXEL_TAGS:
            pixel_tag = tag
            pixel_offset = start
            if length != undefined:
                if start + length > size:
                    raise _NeedsFullReaderError  # cut short: the full reader says "truncated"
                pixel_length = length
            break
        if length == undefined:
            if vr is not None and vr not in (b"SQ", b"UN"):
                raise _NeedsFullReaderError
            end = _skip_sequence(buf, start, implicit, 0)
            data = buf.data
            n = len(data)
        else:
            end = start + length
            if end > n:
                data = buf.need(end)
                n = len(data)
        if wanted is None or tag in wanted:
            elements[tag] = (vr, start, length, end)
        pos = end
    tail = b""
    if pixel_tag is not None and pixel_length is None:
        fp.seek(size - 8)
        tail = fp.read(8)
    return RawHeader(
        path=path,
        size=size,
        transfer_syntax=ts,
        implicit_vr=implicit,
        elements=elements,
        data=data,
        pixel_tag=pixel_tag,
        pixel_value_offset=pixel_offset,
        pixel_length=pixel_length,
        meta_group_length=meta_length,
        tail=tail,
    )


def _element(buf: _Bytes, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
    """(tag, VR (None in implicit VR), value offset, value length) of the element at ``pos``."""
    data = buf.need(pos + 8)
    if implicit:
        group, element, length = _IMPLICIT.unpack_from(data, pos)
        return (group << 16) | element, None, pos + 8, length
    group, element, vr, length = _SHORT.unpack_from(data, pos)
    if vr in _LONG_VRS:
        data = buf.need(pos + 12)
        (length,) = _LONG.unpack_from(data, pos + 8)
        return (group << 16) | element, vr, pos + 12, length
    if vr not in _VRS:
        raise _NeedsFullReaderError
    return (group << 16) | element, vr, pos + 8, length


def _skip_sequence(buf: _Bytes, pos: int, implicit: bool, depth: int) -> int:
    """Offset just past the delimiter of an undefined-length sequence whose items start at
    ``pos`` (items of defined length are jumped over, others walked element by element)."""
    if depth > _MAX_DEPTH:
        raise _NeedsFullReaderError
    while True:
        data = buf.need(pos + 8)
        group, element, length = _IMPLICIT.unpack_from(data, pos)
        tag = (group << 16) | element
        pos += 8
        if tag == _SEQUENCE_END:
            return pos
        if tag != _ITEM:
            raise _NeedsFullReaderError
        if length != _UNDEFINED:
            pos += length
            buf.need(pos)
            continue
        while True:  # an undefined-length item: its elements, then the item delimiter
            data = buf.need(pos + 8)
            group, element = _TAG.unpack_from(data, pos)
            if ((group << 16) | element) == _ITEM_END:
                pos += 8
                break
            _tag, vr, start, length = _element(buf, pos, implicit)
            if length == _UNDEFINED:
                if vr is not None and vr not in (b"SQ", b"UN"):
                    raise _NeedsFullReaderError
                pos = _skip_sequence(buf, start, implicit, depth + 1)
            else:
                pos = start + length
                buf.need(pos)
