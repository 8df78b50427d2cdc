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

Slices of one series repeat most of their header bytes: a :class:`HeaderTemplate` of the
first slice lets the walk of a later one (``read_raw_header(..., like=template)``) compare
runs of whole elements with the template's bytes (one ``startswith`` per run) and walk one
by one only the elements that differ (UIDs, positions); the result is the same either way.

Offsets are byte offsets from the start of the file; tags are 32-bit ints (group << 16 |
element).
"""

from __future__ import annotations

import os
import struct
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HEAD_BYTES",
    "NATIVE_SYNTAXES",
    "PIXEL_TAGS",
    "SEQUENCE_DELIMITER",
    "HeaderTemplate",
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
    path: str | Path,
    *,
    head_bytes: int = HEAD_BYTES,
    tags: frozenset[int] | None = None,
    like: HeaderTemplate | None = None,
) -> RawHeader | None:
    """The raw header of ``path``, or None when the fast path does not vouch for the file.

    Reads at most the header (the first ``head_bytes``, and the rest of the header when it
    is longer), never the pixel data. OS errors also give None: the full reader reports them.
    ``tags``: record only these top-level elements (all are walked and checked the same way;
    fewer records cost less in a loop over thousands of files); None records every one.
    ``like``: a header of a similar file (a slice of the same series); runs of whole
    elements whose bytes equal that header's are taken from it instead of walked one by
    one. The result is the same with or without it.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except (OSError, ValueError):
        return None
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, min(head_bytes, size))
        return _parse(str(path), size, data, fd, tags, like)
    except (OSError, _NeedsFullReaderError):
        return None
    finally:
        os.close(fd)


class _Layout:
    """Top-level elements of one part of a template header (File Meta or data set): tag and
    offset of each, the offset past the last, and the records a walk adds for them."""

    __slots__ = (
        "heads",
        "index",
        "key_at",
        "keys",
        "len_at",
        "next_stop",
        "offsets",
        "records",
        "tags",
        "view",
        "vrs",
        "want",
    )

    def __init__(
        self,
        view: memoryview,
        tags: list[int],
        offsets: list[int],
        records: dict[int, tuple[bytes | None, int, int, int]],
        recorded: frozenset[int] | None,
    ) -> None:
        self.view = view
        self.tags = tuple(tags)
        self.offsets = tuple(offsets)
        self.index = {tag: i for i, tag in enumerate(tags)}
        self.keys = tuple(t for t in tags if recorded is None or t in recorded)
        self.records = tuple(records[t] for t in self.keys)
        self.key_at = tuple(bisect_left(self.keys, t) for t in (*tags, 0xFFFFFFFF))
        # next_stop[i]: the first element at or after i seen to differ (len(tags): none)
        self.next_stop = [len(tags)] * (len(tags) + 1)
        # for follow(): each element's tag and VR bytes, where its length field starts
        # (0: never followed) and its VR
        self.heads: tuple[bytes, ...] = ()
        self.len_at: tuple[int, ...] = ()
        self.vrs: tuple[bytes | None, ...] = ()
        self.want = tuple(recorded is None or t in recorded for t in tags)

    def prepare_follow(self, data: bytes, implicit: bool) -> None:
        """Fill what :meth:`follow` reads (data set layouts only)."""
        heads, len_at, vrs = [], [], []
        for pos in self.offsets[:-1]:
            vr = None if implicit else data[pos + 4 : pos + 6]
            at = 4 if implicit else (8 if vr in _LONG_VRS else 6)
            heads.append(data[pos : pos + (4 if implicit else 6)])
            undefined = at != 6 and _LONG.unpack_from(data, pos + at)[0] == _UNDEFINED
            len_at.append(0 if undefined else at)  # sequences of undefined length: walked
            vrs.append(vr)
        self.heads, self.len_at, self.vrs = tuple(heads), tuple(len_at), tuple(vrs)

    def run(
        self,
        data: bytes,
        pos: int,
        i: int,
        elements: dict[int, tuple[bytes | None, int, int, int]],
    ) -> int:
        """Index j >= i such that the bytes of elements i..j-1 repeat at ``pos``: records
        of those elements (shifted to ``pos``) go into ``elements``. Learns element j
        differs when it was not known to."""
        offsets, view = self.offsets, self.view
        start = offsets[i]
        j = self.next_stop[i]
        if not data.startswith(view[start : offsets[j]], pos):
            j, bad = i, j  # the longest run before a new difference (binary search)
            while bad - j > 1:
                mid = (j + bad) >> 1
                if data.startswith(view[start : offsets[mid]], pos):
                    j = mid
                else:
                    bad = mid
            stops, k = self.next_stop, j
            while k >= 0 and stops[k] > j:
                stops[k] = j
                k -= 1
        if j > i:
            a, b = self.key_at[i], self.key_at[j]
            if a != b:
                delta = pos - start
                if delta:
                    for tag, (vr, s, length, e) in zip(
                        self.keys[a:b], self.records[a:b], strict=True
                    ):
                        elements[tag] = (vr, s + delta, length, e + delta)
                else:
                    elements.update(zip(self.keys[a:b], self.records[a:b], strict=True))
        return j

    def follow(
        self,
        data: bytes,
        pos: int,
        i: int,
        elements: dict[int, tuple[bytes | None, int, int, int]],
    ) -> tuple[int, int]:
        """Walk from element i (at ``pos``) while the file follows the template: runs of
        identical elements (:meth:`run`), and elements that differ in value only (same tag
        and VR, a defined length, within ``data``) read from their own header. Returns the
        index and offset where it stopped; the caller's walk goes on from there."""
        tags, offsets, stops, len_at = self.tags, self.offsets, self.next_stop, self.len_at
        count, n = len(tags), len(data)
        while i < count:
            if stops[i] != i:
                j = self.run(data, pos, i, elements)
                pos += offsets[j] - offsets[i]
                i = j
                if i == count:
                    break
            at = len_at[i]
            if not at or not data.startswith(self.heads[i], pos):
                break
            if at == 6:
                if pos + 8 > n:
                    break
                length = data[pos + 6] | (data[pos + 7] << 8)
                start = pos + 8
            else:
                start = pos + at + 4
                if start > n:
                    break
                (length,) = _LONG.unpack_from(data, pos + at)
                if length == _UNDEFINED:
                    break
            end = start + length
            if end > n:
                break
            if self.want[i]:
                elements[tags[i]] = (self.vrs[i], start, length, end)
            pos = end
            i += 1
        return i, pos


_NO_LAYOUT = _Layout(memoryview(b""), [], [0], {}, None)


class HeaderTemplate:
    """The element layout of one header, for :func:`read_raw_header` ``like=``.

    Built once (per series) from a :class:`RawHeader` read with the same ``tags``: the
    offset and tag of each top-level element before the pixel data (walked again over
    ``raw.data``) and the records a walk makes of them. It also learns which elements
    differ from file to file (UIDs, positions), so that a later file's walk compares the runs
    between them in one step; what it learns changes the cost of a walk, never its result.
    """

    __slots__ = ("data_set", "implicit_vr", "meta", "meta_length", "meta_length_at", "wanted")

    def __init__(self, raw: RawHeader, *, tags: frozenset[int] | None = None) -> None:
        data = raw.data
        buf = _Bytes(data, -1, len(data))
        pos = 132
        meta_tags: list[int] = []
        meta_offsets: list[int] = []
        while data[pos : pos + 2] == b"\x02\x00":  # File Meta: explicit VR
            tag, _vr, start, length = _element(buf, pos, False)
            meta_tags.append(tag)
            meta_offsets.append(pos)
            pos = start + length
        meta_offsets.append(pos)
        offsets: list[int] = []
        walked: list[int] = []
        while pos < len(data):
            tag, _vr, start, length = _element(buf, pos, raw.implicit_vr)
            if tag in PIXEL_TAGS:
                break
            walked.append(tag)
            offsets.append(pos)
            end = start + length
            if length == _UNDEFINED:
                end = _skip_sequence(buf, start, raw.implicit_vr, 0)
            pos = end
        offsets.append(pos)
        view = memoryview(data[:pos])  # the header only: a copy not holding pixel bytes
        missing = [t for t in walked if (tags is None or t in tags) and t not in raw.elements]
        if missing:
            raise ValueError(
                f"{raw.path}: {len(missing)} element(s) of tags not recorded in the header "
                f"(first {missing[0]:08X}); read it with the same tags"
            )
        self.implicit_vr = raw.implicit_vr
        self.wanted = tags
        self.meta_length = raw.meta_group_length
        self.data_set = _Layout(view, walked, offsets, raw.elements, tags)
        self.data_set.prepare_follow(data, raw.implicit_vr)
        if meta_tags != sorted(set(meta_tags)):
            meta_tags, meta_offsets = [], [meta_offsets[0]]  # repeated tags: walk them
        self.meta = _Layout(view, meta_tags, meta_offsets, raw.elements, None)
        # index of the group length element the walk took meta_length from (-1: none)
        found = raw.elements.get(_META_GROUP_LENGTH)
        length_at = self.meta.index.get(_META_GROUP_LENGTH, -1)
        self.meta_length_at = length_at if found is not None and found[2] == 4 else -1

    def differing_tags(self) -> tuple[int, ...]:
        """Tags of the template's elements (File Meta, then data set) seen to differ in a
        file read with it so far."""
        return tuple(
            layout.tags[i]
            for layout in (self.meta, self.data_set)
            for i in range(len(layout.tags))
            if layout.next_stop[i] == i
        )


class _Bytes:
    """The bytes read so far; :meth:`need` reads more of the file when short."""

    def __init__(self, data: bytes, fd: int, size: int) -> None:
        self.data = data
        self._fd = fd
        self._size = size

    def need(self, end: int) -> bytes:
        if end > len(self.data):
            if end > self._size or len(self.data) >= self._size:
                raise _NeedsFullReaderError
            # grow by doubling: a long header costs a few reads, never the pixel data
            want = min(max(end, 2 * len(self.data)), self._size)
            have = len(self.data)
            self.data += os.pread(self._fd, want - have, have)
            if end > len(self.data):
                raise _NeedsFullReaderError
        return self.data


def _parse(
    path: str,
    size: int,
    head: bytes,
    fd: int,
    wanted: frozenset[int] | None,
    like: HeaderTemplate | None,
) -> RawHeader:
    if len(head) < 144 or head[128:132] != b"DICM":
        raise _NeedsFullReaderError
    buf = _Bytes(head, fd, size)
    elements: dict[int, tuple[bytes | None, int, int, int]] = {}
    # File Meta: explicit VR little endian, group 0002 only
    pos = 132
    meta_length: int | None = None
    data = head
    # template: mi is the index of its meta element expected at pos (-1: none)
    t_meta = _NO_LAYOUT if like is None else like.meta
    gl_at, gl_value = (-1, None) if like is None else (like.meta_length_at, like.meta_length)
    m_n, m_index, m_stops = len(t_meta.tags), t_meta.index, t_meta.next_stop
    mi = 0
    while True:
        if 0 <= mi < m_n and m_stops[mi] != mi:
            j = t_meta.run(data, pos, mi, elements)
            if j > mi:
                if mi <= gl_at < j:
                    meta_length = gl_value
                pos += t_meta.offsets[j] - t_meta.offsets[mi]
                mi = j
        if pos + 12 > len(data):
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
        if start + length > len(data):
            data = buf.need(start + length)
        tag = (group << 16) | element
        elements[tag] = (vr, start, length, start + length)
        if tag == _META_GROUP_LENGTH and length == 4:
            (meta_length,) = _LONG.unpack_from(data, start)
        mi = m_index.get(tag, -2) + 1
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
    n = len(data)
    short, long_, implicit_s = _SHORT.unpack_from, _LONG.unpack_from, _IMPLICIT.unpack_from
    header_bytes = _HEADER_BYTES
    undefined = _UNDEFINED
    # template: ti is the index of its element expected at pos (-1: none)
    t_set = _NO_LAYOUT
    if (
        like is not None
        and like.implicit_vr == implicit
        and (like.wanted is wanted or like.wanted == wanted)
    ):
        t_set = like.data_set
    t_tags, t_index = t_set.tags, t_set.index
    t_n = len(t_tags)
    ti = 0
    # The element walk is the hot loop of discovery: element headers are unpacked inline
    # (tag and VR checks as in _element) and the buffer is only grown when a header or value
    # runs past the bytes read so far.
    while pos != size:  # pos == size: no pixel data, the last element ended the file
        if 0 <= ti < t_n and t_tags[ti] > last_tag:
            # as far as the file follows the template: the walk over those elements would
            # find what follow() finds (tags in order, known VRs, lengths within data)
            i, pos = t_set.follow(data, pos, ti, elements)
            if i > ti:
                last_tag = t_tags[i - 1]
                ti = i
                if pos == size:
                    break
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
        ti = t_index.get(tag, -2) + 1
        pos = end
    tail = b""
    if pixel_tag is not None and pixel_length is None:
        tail = os.pread(fd, 8, size - 8)
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
