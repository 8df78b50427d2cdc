"""A corpus of broken and hostile DICOM files, built here: one stable code and one line of
reason per file, from discovery (its skipped list) and from the loaders, and a batch over the
corpus plus one good phantom study that still scores the good study.

Each :class:`Case` says what is wrong with its file, the code discovery records for it (None:
discovery indexes it, the damage only shows when pixels are read), the code the loader raises
(None: it loads, degraded, with a warning matching ``warning``), and a pattern for the reason.
Every file has its own StudyInstanceUID, so each broken file makes (at most) its own failed
study in the batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from octoscan.imaging.dicom_io import check_image_header, read_header
from octoscan.imaging.discovery import discover
from octoscan.imaging.errors import InvalidInputError, OctoscanError
from octoscan.imaging.phantom.study import StudySpec, generate_study
from octoscan.imaging.planar import load_planar
from octoscan.imaging.volume import load_ct, load_spect
from octoscan.models.config import load_config
from octoscan.pipelines.batch import run_batch
from octoscan.pipelines.identity import study_key
from octoscan.pipelines.study import StudyOptions
from tests.imaging import nm_builders as b
from tests.imaging import volume_builders as vb

# --------------------------------------------------------------------------- byte surgery

_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"})


def _header(tag: int, vr: str, length: int) -> bytes:
    """Explicit VR little endian element header of ``tag``."""
    group, element = tag >> 16, tag & 0xFFFF
    if vr in _LONG_VRS:
        return struct.pack("<HH2sHI", group, element, vr.encode(), 0, length)
    return struct.pack("<HH2sH", group, element, vr.encode(), length)


def _patch(path: Path, old: bytes, new: bytes) -> Path:
    """Replace the one occurrence of ``old`` in the file by ``new``."""
    data = path.read_bytes()
    assert data.count(old) == 1, f"{old!r} occurs {data.count(old)} times in {path.name}"
    path.write_bytes(data.replace(old, new))
    return path


def _element_offset(path: Path, keyword: str) -> tuple[int, int]:
    """(offset of the element's tag, offset of its value) in the file (top level)."""
    ds = pydicom.dcmread(path)
    raw = ds.get_item(keyword)  # still raw: it knows where its value starts
    header = 12 if raw.VR in _LONG_VRS else 8
    return raw.value_tell - header, raw.value_tell


def _cut(path: Path, keep: int) -> Path:
    path.write_bytes(path.read_bytes()[:keep])
    return path


# --------------------------------------------------------------------------- file builders


# Files that load (degraded) are scored by the batch test, and overlay rendering of an
# 8-row image is slow (pipelines.report tries every scale up to the panel height): they get
# a larger matrix.
LOADABLE_SHAPE = (64, 32)


def _planar(name: str, **kwargs) -> Dataset:
    """A valid two-head, two-window In-111 whole-body NM object (4 frames of 8 x 6 unless
    ``shape`` says otherwise)."""
    return b.nm_planar(series_key=name, study_key=name, **kwargs)


def _write_planar(
    root: Path,
    name: str,
    edit: Callable[[Dataset], None] | None = None,
    *,
    shape: tuple[int, int] = (8, 6),
) -> Path:
    ds = _planar(name, shape=shape)
    if edit is not None:
        edit(ds)
    return b.write(ds, root / name)


def _empty(root: Path, name: str) -> Path:
    (root / name).write_bytes(b"")
    return root / name


def _text(root: Path, name: str) -> Path:
    return b.write_text(root / name, "patient list, not an image\n" * 10)


def _random_bytes(root: Path, name: str) -> Path:
    (root / name).write_bytes(np.random.default_rng(12).bytes(2048))
    return root / name


def _cut_in_preamble(root: Path, name: str) -> Path:
    return _cut(_write_planar(root, name), 64)


def _cut_in_file_meta(root: Path, name: str) -> Path:
    return _cut(_write_planar(root, name), 200)


def _cut_in_group_length(root: Path, name: str) -> Path:
    return _cut(_write_planar(root, name), 141)  # inside the value of (0002,0000)


def _cut_in_first_element(root: Path, name: str) -> Path:
    path = _write_planar(root, name)
    meta_end = 144 + int(pydicom.dcmread(path).file_meta.FileMetaInformationGroupLength)
    return _cut(path, meta_end + 5)


def _cut_in_value(root: Path, name: str) -> Path:
    path = _write_planar(root, name)
    _, value = _element_offset(path, "PatientName")
    return _cut(path, value + 3)


def _cut_in_element_header(root: Path, name: str) -> Path:
    path = _write_planar(root, name)
    start, _ = _element_offset(path, "DetectorInformationSequence")
    return _cut(path, start + 9)  # tag, VR, reserved and one byte of the 4-byte length


def _cut_in_sequence(root: Path, name: str) -> Path:
    path = _write_planar(root, name)
    _, value = _element_offset(path, "EnergyWindowInformationSequence")
    return _cut(path, value + 30)


def _cut_in_pixel_data(root: Path, name: str) -> Path:
    return b.truncate(_write_planar(root, name), drop_bytes=100)


def _cut_before_pixel_data(root: Path, name: str) -> Path:
    path = _write_planar(root, name)
    start, _ = _element_offset(path, "PixelData")
    return _cut(path, start)


def _huge_private_length(root: Path, name: str) -> Path:
    def edit(ds: Dataset) -> None:
        ds.add_new(0x00090010, "LO", "OCTOSCAN TEST")
        ds.add_new(0x00091010, "OB", b"\x01\x02\x03\x04")

    path = _write_planar(root, name, edit)
    return _patch(path, _header(0x00091010, "OB", 4), _header(0x00091010, "OB", 0xFFFFFFF0))


def _huge_pixel_length(root: Path, name: str) -> Path:
    path = _write_planar(root, name)
    return _patch(path, _header(0x7FE00010, "OW", 384), _header(0x7FE00010, "OW", 0x7FFFFFF0))


def _huge_short_length(root: Path, name: str) -> Path:
    path = _write_planar(root, name)
    n = len(str(b.PATIENT_NAME)) + len(b.PATIENT_NAME) % 2
    return _patch(path, _header(0x00100010, "PN", n), _header(0x00100010, "PN", 0xFFFF))


def _rows_as_text(root: Path, name: str) -> Path:
    path = _write_planar(root, name)
    return _patch(path, _header(0x00280010, "US", 2), _header(0x00280010, "LO", 2))


def _rows_as_sequence(root: Path, name: str) -> Path:
    path = _write_planar(root, name)
    return _patch(path, _header(0x00280010, "US", 2), b"\x28\x00\x10\x00SQ\x02\x00")


def _invalid_vr(root: Path, name: str) -> Path:
    path = _write_planar(root, name)
    return _patch(path, _header(0x00280010, "US", 2), b"\x28\x00\x10\x00Z?\x02\x00")


def _frames_not_a_number(root: Path, name: str) -> Path:
    path = _write_planar(root, name)
    return _patch(path, _header(0x00280008, "IS", 2) + b"4 ", _header(0x00280008, "IS", 2) + b"x4")


def _no_pixel_data(root: Path, name: str) -> Path:
    return _write_planar(root, name, lambda ds: delattr(ds, "PixelData"))


def _no_rows(root: Path, name: str) -> Path:
    return _write_planar(root, name, lambda ds: delattr(ds, "Rows"))


def _no_sop_instance_uid(root: Path, name: str) -> Path:
    return _write_planar(root, name, lambda ds: delattr(ds, "SOPInstanceUID"))


def _short_pixel_data(root: Path, name: str) -> Path:
    def edit(ds: Dataset) -> None:
        ds.PixelData = ds.PixelData[:200]

    return _write_planar(root, name, edit)


def _more_frames_than_data(root: Path, name: str) -> Path:
    return _write_planar(root, name, lambda ds: setattr(ds, "NumberOfFrames", 8))


def _fewer_frames_than_data(root: Path, name: str) -> Path:
    return _write_planar(root, name, lambda ds: setattr(ds, "NumberOfFrames", 2))


def _detector_vector_short(root: Path, name: str) -> Path:
    def edit(ds: Dataset) -> None:
        ds.DetectorVector = [1, 2]

    return _write_planar(root, name, edit, shape=LOADABLE_SHAPE)


def _detector_vector_out_of_range(root: Path, name: str) -> Path:
    def edit(ds: Dataset) -> None:
        ds.DetectorVector = [1, 1, 7, 7]

    return _write_planar(root, name, edit, shape=LOADABLE_SHAPE)


def _encapsulated(root: Path, name: str, syntax, fragments: list[bytes]) -> Path:
    def edit(ds: Dataset) -> None:
        ds.file_meta.TransferSyntaxUID = syntax
        ds.PixelData = encapsulate(fragments)
        ds["PixelData"].VR = "OB"

    return _write_planar(root, name, edit)


def _rle_garbage(root: Path, name: str) -> Path:
    # an RLE header naming one segment at offset 64, then bytes that are no PackBits run
    header = struct.pack("<16I", 1, 64, *[0] * 14)
    return _encapsulated(root, name, RLELossless, [header + b"\x80\x7f\x81" * 5] * 4)


def _rle_missing_fragments(root: Path, name: str) -> Path:
    ds = _planar(name)
    ds.compress(RLELossless)
    fragments = list(generate_frames(ds.PixelData, number_of_frames=4))
    return _encapsulated(root, name, RLELossless, fragments[:2])


def _jpegls_garbage(root: Path, name: str) -> Path:
    # a JPEG-LS start of image and start of frame marker, then noise
    noise = np.random.default_rng(7).bytes(60)
    return _encapsulated(root, name, JPEGLSLossless, [b"\xff\xd8\xff\xf7" + noise] * 4)


def _j2k_garbage(root: Path, name: str) -> Path:
    noise = np.random.default_rng(8).bytes(60)
    return _encapsulated(root, name, JPEG2000Lossless, [b"\xff\x4f\xff\x51" + noise] * 4)


def _unsupported_syntax(root: Path, name: str) -> Path:
    return b.write_unsupported_syntax(_planar(name), root / name)


def _encapsulated_cut(root: Path, name: str) -> Path:
    def edit(ds: Dataset) -> None:
        ds.compress(RLELossless)

    return b.truncate(_write_planar(root, name, edit), drop_bytes=20)


def _symlink_to_self(root: Path, name: str) -> Path:
    os.symlink(name, root / name)
    return root / name


def _symlink_cycle(root: Path, name: str) -> Path:
    os.symlink(f"{name}.other", root / name)
    os.symlink(name, root / f"{name}.other")
    return root / name


def _dangling_symlink(root: Path, name: str) -> Path:
    os.symlink("no-such-file.dcm", root / name)
    return root / name


def _duplicate_uid_conflict(root: Path, name: str) -> Path:
    """Two files share a SOPInstanceUID with different pixels: the later one (in walk order)
    is refused, the first kept."""

    def edit(ds: Dataset) -> None:
        ds.SOPInstanceUID = b.uid("duplicate-corpus")
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID

    first = _write_planar(root, "dup_a_first.dcm", edit, shape=LOADABLE_SHAPE)
    ds = _planar("dup_a_first.dcm", shape=LOADABLE_SHAPE)
    edit(ds)
    ds.PixelData = bytes(len(ds.PixelData))
    b.write(ds, root / name)
    assert first.name < name
    return root / name


def _ct_cut_in_pixel_data(root: Path, name: str) -> Path:
    ds = vb.ct_slice(0, (0.0, 0.0, 0.0), series_key=name)
    return vb.truncate_pixel_data(vb.write(ds, root / name), 7)


def _ct_cut_in_header(root: Path, name: str) -> Path:
    ds = vb.ct_slice(0, (0.0, 0.0, 0.0), series_key=name)
    path = vb.write(ds, root / name)
    _, value = _element_offset(path, "ImageOrientationPatient")
    return _cut(path, value + 5)


def _ct_short_pixel_data(root: Path, name: str) -> Path:
    ds = vb.ct_slice(0, (0.0, 0.0, 0.0), series_key=name)
    ds.PixelData = ds.PixelData[:10]
    return vb.write(ds, root / name)


def _spect_slice_vector_short(root: Path, name: str) -> Path:
    path = vb.nm_recon_tomo(root / name)
    ds = pydicom.dcmread(path)
    ds.SliceVector = [1, 2]
    ds.save_as(path)
    return path


def _spect_more_frames(root: Path, name: str) -> Path:
    path = vb.nm_recon_tomo(root / name)
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 9
    ds.save_as(path)
    return path


@dataclass(frozen=True)
class Case:
    """One broken file: how it is built, what is wrong, what octoscan must say."""

    name: str
    build: Callable[[Path, str], Path]
    cause: str
    discovery: str | None  # code in discovery's skipped list; None: indexed
    load: str | None  # code the loader raises; None: loads with a warning
    reason: str  # regex the reason (discovery's, else the loader's) must match
    loader: str = "planar"
    warning: str | None = None  # regex a warning must match when the file loads
    load_reason: str | None = None  # regex of the loader's reason when not ``reason``


def _duplicate_identical(root: Path, name: str) -> Path:
    """A byte-identical copy of the kept duplicate: refused as a plain duplicate."""
    return b.copy(root / "dup_a_first.dcm", root / name)


def _encapsulated_too_many_frames(root: Path, name: str) -> Path:
    def edit(ds: Dataset) -> None:
        ds.compress(RLELossless)
        ds.NumberOfFrames = 100_000

    return _write_planar(root, name, edit)


_NOT_DICOM = r"no 'DICM' prefix at byte 128 and the first bytes [0-9a-f]{16} are not a DICOM"
C = Case
# fmt: off
CASES: tuple[Case, ...] = (
    C("empty.dcm", _empty, "zero-length file", "not_dicom", "not_dicom",
      r"\b0 bytes: too short for DICOM"),
    C("text.dcm", _text, "a text file named .dcm", "not_dicom", "not_dicom", _NOT_DICOM),
    C("random_bytes.dcm", _random_bytes, "random bytes", "not_dicom", "not_dicom", _NOT_DICOM),
    C("cut_in_preamble.dcm", _cut_in_preamble, "cut at byte 64", "not_dicom", "not_dicom",
      _NOT_DICOM),
    C("cut_in_file_meta.dcm", _cut_in_file_meta, "cut inside the File Meta group",
      "truncated", "truncated", r"ends at byte 200 inside the File Meta header, which ends at"),
    C("cut_in_group_length.dcm", _cut_in_group_length, "cut inside the (0002,0000) value",
      "truncated", "truncated", r"ends at byte 141 inside a data element"),
    C("cut_in_first_element.dcm", _cut_in_first_element, "cut inside the first element",
      "truncated", "truncated", r"no data element after the File Meta header"),
    C("cut_in_value.dcm", _cut_in_value, "cut inside the PatientName value", "truncated",
      "truncated", r"last element \(0010,0010\) ends at byte"),
    C("cut_in_element_header.dcm", _cut_in_element_header, "cut inside an element header",
      "truncated", "truncated", r"inside a data element \(error: unpack requires"),
    C("cut_in_sequence.dcm", _cut_in_sequence, "cut inside a sequence item", "truncated",
      "truncated", r"last element \(0054,0012\) ends at byte"),
    C("cut_in_pixel_data.dcm", _cut_in_pixel_data, "last 100 bytes of pixel data missing",
      "truncated", "truncated", r"Pixel Data declares 384 bytes but only 284 remain"),
    # a cut exactly between two elements leaves a well-formed header: it reads as a file
    # that has no Pixel Data element, which is what it has become
    C("cut_before_pixel_data.dcm", _cut_before_pixel_data, "cut just before Pixel Data",
      "missing_pixel_data", "missing_pixel_data", r"has no Pixel Data \(7FE0,0010\) element"),
    C("huge_private_length.dcm", _huge_private_length, "private OB length 0xFFFFFFF0",
      "truncated", "truncated", r"\(0009,1010\) ends at byte 4294967936"),
    C("huge_pixel_length.dcm", _huge_pixel_length, "Pixel Data length 0x7FFFFFF0",
      "truncated", "truncated", r"Pixel Data declares 2147483632 bytes but only 384 remain"),
    C("huge_short_length.dcm", _huge_short_length, "PatientName length 0xFFFF", "truncated",
      "truncated", r"last element \(0010,0010\) ends at byte 66165"),
    C("rows_as_text.dcm", _rows_as_text, "Rows written with VR LO", "malformed", "malformed",
      r"Rows is '\\x08' \(VR LO\), not an integer"),
    C("rows_as_sequence.dcm", _rows_as_sequence, "Rows written with VR SQ", "truncated",
      "truncated", r"last element \(0028,0010\) ends at byte"),
    C("invalid_vr.dcm", _invalid_vr, "Rows written with VR 'Z?'", "malformed", "malformed",
      r"Unknown Value Representation '0x5a 0x3f' in tag \(0028,0010\)"),
    C("frames_not_a_number.dcm", _frames_not_a_number, "NumberOfFrames 'x4'", "malformed",
      "malformed", r"NumberOfFrames is 'x4' \(VR IS\), not an integer"),
    C("no_pixel_data.dcm", _no_pixel_data, "no Pixel Data element", "missing_pixel_data",
      "missing_pixel_data", r"Nuclear Medicine Image Storage holds an image but the file has "
      r"no Pixel Data"),
    C("no_rows.dcm", _no_rows, "no Rows", "missing_pixel_data", "missing_pixel_data",
      r"Rows is None; expected a positive integer"),
    C("no_sop_instance_uid.dcm", _no_sop_instance_uid, "no SOPInstanceUID", "missing_uids",
      "missing_uids", r"missing SOPInstanceUID \(modality NM\)"),
    C("short_pixel_data.dcm", _short_pixel_data, "200 of 384 pixel bytes",
      "pixel_data_truncated", "pixel_data_truncated",
      r"PixelData holds 200 bytes but Rows 8 x Columns 6 x 4 frame\(s\) .* declare 384"),
    C("more_frames_than_data.dcm", _more_frames_than_data, "NumberOfFrames 8, data for 4",
      "pixel_data_truncated", "pixel_data_truncated", r"x 8 frame\(s\) .* declare 768 bytes"),
    C("fewer_frames_than_data.dcm", _fewer_frames_than_data, "NumberOfFrames 2, data for 4",
      "frame_count_mismatch", "frame_count_mismatch",
      r"holds 384 bytes, room for 4 frames, but NumberOfFrames is 2"),
    C("encapsulated_too_many_frames.dcm", _encapsulated_too_many_frames,
      "RLE data with NumberOfFrames 100000", "pixel_data_truncated", "pixel_data_truncated",
      r"NumberOfFrames is 100000 but the encapsulated Pixel Data \(\d+ bytes to the end of the "
      r"file\) has room for at most \d+ fragments"),
    C("detector_vector_short.dcm", _detector_vector_short, "DetectorVector of 2 for 4 frames",
      None, None, r"DetectorVector has 2 values for 4 frames: ignored",
      warning=r"no usable DetectorVector: frames cannot be assigned to detectors"),
    C("detector_vector_out_of_range.dcm", _detector_vector_out_of_range,
      "DetectorVector names detector 7 of 2", None, None, r"",
      warning=r"view unknown \(none: no anterior/posterior ViewCodeSequence"),
    C("rle_garbage.dcm", _rle_garbage, "RLE fragments that are not PackBits", None,
      "pixel_decode_failed", r"could not be decoded with transfer syntax 1\.2\.840\.10008\.1"
      r"\.2\.5 \(RLE Lossless\)"),
    C("rle_missing_fragments.dcm", _rle_missing_fragments, "2 RLE fragments for 4 frames",
      None, "pixel_decode_failed", r"\(RLE Lossless\)"),
    C("jpegls_garbage.dcm", _jpegls_garbage, "JPEG-LS markers then noise", None,
      "pixel_decode_failed", r"\(JPEG-LS Lossless Image Compression\)"),
    C("j2k_garbage.dcm", _j2k_garbage, "JPEG 2000 markers then noise", None,
      "pixel_decode_failed", r"\(JPEG 2000 Image Compression \(Lossless Only\)\)"),
    C("unsupported_syntax.dcm", _unsupported_syntax, "MPEG2 video", "unsupported_transfer_syntax",
      "unsupported_transfer_syntax", r"MPEG2 Main Profile / Main Level\) cannot be decoded"),
    C("encapsulated_cut.dcm", _encapsulated_cut, "RLE file cut by 20 bytes", "truncated",
      "truncated", r"encapsulated Pixel Data has no sequence delimiter"),
    C("symlink_to_self.dcm", _symlink_to_self, "a symlink to itself", "unreadable",
      "unreadable", r"Too many levels of symbolic links"),
    C("symlink_cycle.dcm", _symlink_cycle, "two symlinks to each other", "unreadable",
      "unreadable", r"Too many levels of symbolic links"),
    C("dangling_symlink.dcm", _dangling_symlink, "a symlink to nothing", "unreadable",
      "unreadable", r"cannot read the file: No such file or directory"),
    C("duplicate_uid_conflict.dcm", _duplicate_uid_conflict,
      "SOPInstanceUID of dup_a_first.dcm, other pixels", "duplicate_instance_conflict", None,
      r"same SOPInstanceUID as \S+dup_a_first\.dcm but different content: the first file is "
      r"kept", warning=r"RadionuclideHalfLife missing"),
    C("dup_b_identical.dcm", _duplicate_identical, "byte copy of dup_a_first.dcm",
      "duplicate_instance", None, r"same SOPInstanceUID and identical bytes as \S+dup_a_first",
      warning=r"RadionuclideHalfLife missing"),
    C("ct_cut_in_pixel_data.dcm", _ct_cut_in_pixel_data, "CT slice, 7 pixel bytes missing",
      "truncated", "pixel_data_truncated", r"Pixel Data declares 24 bytes but only 17 remain",
      loader="ct", load_reason=r"PixelData holds 17 bytes but Rows 4 .* declare 24 bytes"),
    # the volume loaders read what is there: a header without its later elements
    C("ct_cut_in_header.dcm", _ct_cut_in_header, "CT slice cut inside its IOP value",
      "truncated", "missing_pixel_data", r"last element \(0020,0037\) ends at byte",
      loader="ct", load_reason=r"Rows is None; expected a positive integer"),
    C("ct_short_pixel_data.dcm", _ct_short_pixel_data, "CT slice with 10 of 24 pixel bytes",
      "pixel_data_truncated", "pixel_data_truncated", r"PixelData holds 10 bytes but Rows 4",
      loader="ct"),
    C("spect_slice_vector_short.dcm", _spect_slice_vector_short,
      "RECON TOMO SliceVector of 2 for 4 frames", None, "frame_vector_invalid",
      r"\(0054,0080\) holds 2 values; expected 4 \(NumberOfFrames\)", loader="spect"),
    C("spect_more_frames.dcm", _spect_more_frames, "RECON TOMO NumberOfFrames 9, data for 4",
      "pixel_data_truncated", "pixel_data_truncated", r"x 9 frame\(s\) .* declare 540 bytes",
      loader="spect"),
)
# fmt: on
# files the builders write besides each case's own
EXTRA_FILES: dict[str, str | None] = {
    "dup_a_first.dcm": None,  # the kept duplicate: indexed
    "symlink_cycle.dcm.other": "unreadable",
}
LOADERS = {"planar": load_planar, "ct": load_ct, "spect": load_spect}


# --------------------------------------------------------------------------- the corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "in"
    root.mkdir()
    for case in CASES:
        assert case.build(root, case.name) == root / case.name
    os.symlink(root, root / "dir_loop")  # a folder symlink back to the top of the tree
    return root


@pytest.fixture(scope="module")
def index(corpus):
    return discover(corpus)


def _skipped(index, path: Path) -> list:
    return [s for s in index.skipped if s.path == str(path)]


def _series_of(index, path: Path):
    return [s for s in index.series if str(path) in s.files]


def test_no_file_is_silently_lost(corpus, index):
    expected = sorted([c.name for c in CASES] + list(EXTRA_FILES))
    assert sorted(p.name for p in corpus.iterdir() if p.name != "dir_loop") == expected
    skipped = {Path(s.path).name for s in index.skipped}
    indexed = {Path(f).name for s in index.series for f in s.files}
    assert skipped.isdisjoint(indexed)
    assert skipped | indexed == set(expected)
    assert index.n_files_seen == len(expected)  # the folder symlink is not entered
    assert index.n_non_dicom == 0  # .dcm files that are not DICOM are reported, not counted
    assert {s.code for s in index.skipped if Path(s.path).name in EXTRA_FILES} == {"unreadable"}


def test_following_folder_symlinks_still_ends_and_sees_each_file_once(corpus, index):
    followed = discover(corpus, follow_symlinks=True)
    assert followed.n_files_seen == index.n_files_seen
    assert [s.code for s in followed.skipped] == [s.code for s in index.skipped]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_discovery_gives_code_and_one_line_reason(case, corpus, index):
    path = corpus / case.name
    skipped = _skipped(index, path)
    if case.discovery is None:
        assert skipped == []
        (entry,) = _series_of(index, path)
        assert entry.files == (str(path),)  # its own study and series: nothing else touched
        if case.load is None and case.reason:
            assert any(re.search(case.reason, w) for w in entry.warnings), entry.warnings
        return
    assert [s.code for s in skipped] == [case.discovery]
    reason = skipped[0].reason
    assert "\n" not in reason and reason.strip() == reason
    assert re.search(case.reason, reason), reason
    assert _series_of(index, path) == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_loader_gives_code_and_one_line_reason(case, corpus):
    path = corpus / case.name
    loader = LOADERS[case.loader]
    if case.load is None:
        images = loader([path])
        assert len(images) >= 2  # the two heads (or, unassigned, each frame), views or not
        assert all(im.counts.shape == LOADABLE_SHAPE for im in images)
        notes = [w for im in images for w in im.warnings]
        assert any(re.search(case.warning or "", w) for w in notes), notes
        return
    pattern = case.load_reason or case.reason
    with pytest.raises(OctoscanError, match=pattern) as info:
        loader([path])
    error = info.value
    assert error.code == case.load
    assert error.path == str(path)
    assert str(error) == f"{path}: {error.reason}" and "\n" not in str(error)


def _top_level_starts(path: Path) -> dict[int, int]:
    """Offset of each top-level data element (after the File Meta group) -> its tag."""
    ds = pydicom.dcmread(path)
    starts = {}
    for tag in ds.keys():  # noqa: SIM118 (iterating a Dataset converts its raw elements)
        raw = ds.get_item(tag)
        starts[raw.value_tell - (12 if raw.VR in _LONG_VRS else 8)] = int(tag)
    return starts


def test_a_cut_at_any_offset_gets_a_code(tmp_path):
    """Cut a valid NM file after n bytes: not_dicom inside the preamble, truncated everywhere
    else, except cuts that fall exactly between two top-level elements, which leave a
    well-formed shorter header (missing UIDs or missing pixel data). Every n up to the end of
    the File Meta group and the first data element, every n within 3 bytes of an element
    start, and every 5th n elsewhere."""
    source = b.write(_planar("sweep"), tmp_path / "whole.dcm")
    data = source.read_bytes()
    starts = _top_level_starts(source)
    last_uid = max(
        offset for offset, tag in starts.items() if tag in (0x00080018, 0x0020000D, 0x0020000E)
    )
    first_element = min(starts)
    sizes = set(range(0, first_element + 16)) | set(range(0, len(data), 5))
    sizes |= {s + d for s in starts for d in range(-3, 4) if 0 <= s + d < len(data)}
    cut = tmp_path / "cut.dcm"
    found: dict[int, str] = {}
    for size in sorted(sizes):
        cut.write_bytes(data[:size])
        with pytest.raises(InvalidInputError) as info:
            check_image_header(read_header(cut), cut)
        found[size] = info.value.code
    expected = {}
    for size in sorted(sizes):
        if size < 132:
            expected[size] = "not_dicom"
        elif size in starts and size > first_element:
            expected[size] = "missing_uids" if size <= last_uid else "missing_pixel_data"
        else:
            expected[size] = "truncated"
    assert found == expected
    assert len(found) > 600
    check_image_header(read_header(source), source)  # the whole file is fine


# --------------------------------------------------------------------------- the batch


@pytest.fixture(scope="module")
def good_study(tmp_path_factory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("good") / "phantom"
    truth = generate_study(StudySpec(seed=41, kind="planar"), folder)
    return folder, truth.study_instance_uid


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_batch_over_the_corpus_still_scores_the_good_study(corpus, index, good_study, tmp_path):
    root = tmp_path / "in"
    shutil.copytree(corpus, root, symlinks=True)
    shutil.copytree(good_study[0], root / "phantom")
    before = _hashes(root)
    out = tmp_path / "out"
    summary = run_batch(root, out, config=load_config("default"), options=StudyOptions(), workers=1)
    by_key = {r.study_key: r for r in summary.records}
    good = by_key[study_key(good_study[1])]
    assert (good.status, good.error_code) == ("ok", None)
    assert good.decision is not None
    assert "internal" not in {r.error_code for r in summary.records}
    failed = json.loads((out / "failed.json").read_text())
    skipped = {f["path"]: f for f in failed["skipped_files"]}
    for case in CASES:
        if case.discovery is not None:
            entry = skipped[case.name]
            assert entry["code"] == case.discovery
            assert re.search(case.reason, entry["reason"])
            continue
        (series,) = _series_of(index, corpus / case.name)
        record = by_key[study_key(series.study_instance_uid)]
        if case.loader == "ct":
            assert record.error_code == "no_usable_series"  # a CT alone is nothing to score
        elif case.load is not None:
            assert (record.status, record.error_code) == ("failed", case.load)
            assert re.search(case.load_reason or case.reason, record.error_reason or "")
        else:
            assert record.error_code != "internal"
    n_studies = 1 + sum(1 for s in index.studies())
    assert summary.n_studies == n_studies
    assert _hashes(root) == before  # inputs are never modified


# --------------------------------------------------------------------------- unreadable files

_UNPRIVILEGED_RUN = """
import json, sys
from pathlib import Path
from octoscan.imaging.discovery import discover
from octoscan.imaging.errors import OctoscanError
from octoscan.imaging.planar import load_planar
from octoscan.models.config import load_config
from octoscan.pipelines.batch import run_batch
from octoscan.pipelines.study import StudyOptions

root, out = Path(sys.argv[1]), Path(sys.argv[2])
index = discover(root)
report = {
    "skipped": [[s.path, s.code, s.reason] for s in index.skipped],
    "indexed": [f for s in index.series for f in s.files],
}
try:
    load_planar([root / "locked.dcm"])
    report["load"] = None
except OctoscanError as exc:
    report["load"] = [exc.code, str(exc)]
summary = run_batch(root, out, config=load_config("default"), options=StudyOptions(), workers=1)
report["records"] = [[r.study_key, r.status, r.error_code] for r in summary.records]
print(json.dumps(report))
"""


def _unprivileged_prefix() -> list[str] | None:
    """argv prefix that runs a command as an unprivileged user ([] when not root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv"):
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"]
    return None


def test_unreadable_file_and_folder_as_an_unprivileged_user(good_study):
    """chmod 000 means nothing to root, so discovery, the loader and a batch run as user
    nobody (setpriv or runuser) on a world-readable copy: a locked file and a locked folder
    are reported (code unreadable, one line), the good study is scored."""
    prefix = _unprivileged_prefix()
    if prefix is None:
        pytest.skip("running as root without setpriv or runuser: cannot drop privileges")
    work = Path(tempfile.mkdtemp(prefix="octoscan-unreadable-"))
    try:
        work.chmod(0o755)
        root = work / "in"
        shutil.copytree(good_study[0], root / "phantom")
        locked = _write_planar(root, "locked.dcm")
        inner = _write_planar(root / "locked_dir", "inner.dcm")
        locked.chmod(0)
        inner.parent.chmod(0)
        out = work / "out"
        out.mkdir(mode=0o777)
        out.chmod(0o777)
        command = [*prefix, sys.executable, "-c", _UNPRIVILEGED_RUN, str(root), str(out)]
        env = {**os.environ, "HOME": str(work), "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run(
            command, cwd=work, env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        for folder in (work / "in" / "locked_dir",):
            if folder.exists():
                folder.chmod(0o755)
        shutil.rmtree(work)
    skipped = {Path(path).name: (code, reason) for path, code, reason in report["skipped"]}
    assert skipped == {
        "locked.dcm": ("unreadable", "permission denied when opening the file"),
        "locked_dir": (
            "unreadable",
            "cannot list the folder: Permission denied; its files were not read",
        ),
    }
    code, text = report["load"]
    assert code == "unreadable"
    assert text == f"{locked}: permission denied when opening the file"
    assert [status for _, status, _ in report["records"]] == ["ok"]
    assert report["records"][0][0] == study_key(good_study[1])
