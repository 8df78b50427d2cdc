"""The raw header fast path: same elements and values as pydicom, or None (full reader)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ImplicitVRLittleEndian, RLELossless

from octoscan.imaging import discovery
from octoscan.imaging.discovery import discover
from octoscan.imaging.raw_header import read_raw_header
from tests.imaging import nm_builders as b

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real-dicom"
PIXEL_DATA = 0x7FE00010


def _real_files() -> list[Path]:
    return sorted(p for p in REAL.rglob("*") if p.is_file() and p.suffix != ".md")


def _same_as_pydicom(path: Path) -> None:
    raw = read_raw_header(path)
    assert raw is not None, path
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    top = {t for t in raw.elements if t >> 16 != 0x0002}
    assert top == {int(t) for t in ds._dict}, path
    for tag in ds._dict:
        elem = ds.get_item(tag)
        if isinstance(elem, RawDataElement) and elem.length != 0xFFFFFFFF:
            assert raw.raw(int(tag)) == elem.value, (path, tag)
        else:  # sequences pydicom has parsed: the raw span holds at least their items
            assert raw.span(int(tag)) is not None
    assert raw.text(0x00080018) == str(ds.SOPInstanceUID)


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real-dicom not present")
def test_every_real_file_reads_as_pydicom_reads_it_or_goes_to_the_full_reader() -> None:
    declined = []
    for path in _real_files():
        if read_raw_header(path) is None:
            declined.append(path.name)
        else:
            _same_as_pydicom(path)
    # big endian and files without preamble are the full reader's; every other file is fast
    assert sorted(declined) == [
        "CT1_UNC.explicit_big_endian.dcm",
        "CT_Implicit_Little_Headless_Retired.dcm",
    ]


def test_values_and_pixel_data_position(tmp_path: Path) -> None:
    ds = b.ct_slice(instance=7, shape=(5, 6))
    path = b.write(ds, tmp_path / "ct.dcm")
    raw = read_raw_header(path)
    assert raw is not None and not raw.implicit_vr
    assert raw.us(0x00280010) == 5 and raw.us(0x00280011) == 6
    assert raw.decimals(0x00200032) == (0.0, 0.0, 7.0)
    assert raw.strings(0x00080008) == ("ORIGINAL", "PRIMARY", "AXIAL")
    assert raw.decimals(0x00281052) == (-1024.0,) and raw.integer(0x00200013) == 7
    assert raw.pixel_tag == PIXEL_DATA and raw.pixel_length == 5 * 6 * 2
    data = path.read_bytes()
    stored = np.frombuffer(data, "<u2", count=30, offset=raw.pixel_value_offset)
    assert np.array_equal(stored, np.full(30, 1024))
    assert raw.text(0x00099999) is None and raw.us(0x00280100) == 16


def test_implicit_vr_and_nested_undefined_length_sequences(tmp_path: Path) -> None:
    ds = b.pet_slice()
    inner = Dataset()
    inner.CodeValue = "X"
    inner.CodeMeaning = "nested"
    outer = Dataset()
    outer.ConceptNameCodeSequence = DicomSequence([inner])
    ds.ReferencedImageSequence = DicomSequence([outer, Dataset()])
    # undefined lengths everywhere: sequences, items, the nested sequence
    ds["ReferencedImageSequence"].is_undefined_length = True
    outer["ConceptNameCodeSequence"].is_undefined_length = True
    outer.is_undefined_length_sequence_item = True
    inner.is_undefined_length_sequence_item = True
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    path = tmp_path / "pet.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=True)
    raw = read_raw_header(path)
    assert raw is not None and raw.implicit_vr
    _same_as_pydicom(path)
    # pydicom writes sequences with undefined length: the walk went past their delimiters
    assert raw.elements[0x00081140][2] == 0xFFFFFFFF
    assert raw.span(0x00081140).endswith(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    assert raw.text(0x00080060) == "PT"


def test_header_longer_than_the_first_read(tmp_path: Path) -> None:
    ds = b.ct_slice()
    ds.ImageComments = "x" * 3000
    path = b.write(ds, tmp_path / "long.dcm")
    raw = read_raw_header(path, head_bytes=256)
    assert raw is not None and raw.pixel_tag == PIXEL_DATA
    assert raw.text(0x00204000) == "x" * 3000


def test_encapsulated_pixel_data_keeps_the_file_tail(tmp_path: Path) -> None:
    ds = b.ct_slice()
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = encapsulate([b"\x00" * 64])
    path = b.write(ds, tmp_path / "rle.dcm")
    raw = read_raw_header(path)
    assert raw is not None and raw.pixel_length is None
    assert raw.tail == b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _set_meta_group_length(path: Path, value: int) -> None:
    data = bytearray(path.read_bytes())
    assert data[132:136] == b"\x02\x00\x00\x00"
    data[140:144] = struct.pack("<I", value)
    path.write_bytes(bytes(data))


def test_unusual_files_go_to_the_full_reader(tmp_path: Path) -> None:
    cut = b.write(b.ct_slice(), tmp_path / "cut.dcm")
    b.truncate(cut, drop_bytes=4)
    assert read_raw_header(cut) is None  # pixel data shorter than declared
    lying = b.write(b.ct_slice(), tmp_path / "meta.dcm")
    _set_meta_group_length(lying, 10)
    assert read_raw_header(lying) is None
    headless = b.write(b.ct_slice(), tmp_path / "bare", preamble=False)
    assert read_raw_header(headless) is None
    text = tmp_path / "notes.txt"
    text.write_text("not dicom")
    assert read_raw_header(text) is None
    assert read_raw_header(tmp_path / "missing.dcm") is None
    assert read_raw_header(tmp_path) is None  # a folder
    # an element whose length runs past the end of the file
    broken = bytearray(b.write(b.ct_slice(), tmp_path / "len.dcm").read_bytes())
    at = bytes(broken).index(b"\x08\x00\x60\x00CS")  # Modality
    broken[at + 6 : at + 8] = struct.pack("<H", 0xFFF0)
    (tmp_path / "len.dcm").write_bytes(bytes(broken))
    assert read_raw_header(tmp_path / "len.dcm") is None


def test_object_without_pixel_data_ends_the_file(tmp_path: Path) -> None:
    path = b.write(b.rtstruct(), tmp_path / "rt.dcm")
    raw = read_raw_header(path)
    assert raw is not None and raw.pixel_tag is None and raw.pixel_value_offset == raw.size
    _same_as_pydicom(path)


# --------------------------------------------------------------------------- discovery


def _full_path_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discovery, "read_raw_header", lambda path, **kw: None)


def _series_folder(root: Path) -> None:
    for i in range(1, 7):
        b.write(b.ct_slice(instance=i), root / "ct" / f"s{i:02d}.dcm")
    b.write(b.pet_slice(), root / "pet" / "p1.dcm")
    second = b.pet_slice()
    second.SOPInstanceUID = second.file_meta.MediaStorageSOPInstanceUID = b.uid("pet-2")
    b.write(second, root / "pet" / "p2.dcm")
    # later slices the fast path must hand over: cut short, a duplicate, another size,
    # another description (classification input), a frame count that lies
    b.truncate(b.write(b.ct_slice(instance=7), root / "ct" / "s07.dcm"), drop_bytes=2)
    b.copy(root / "ct" / "s02.dcm", root / "ct" / "s08_copy.dcm")
    b.write(b.ct_slice(instance=9, shape=(6, 6)), root / "ct" / "s09.dcm")
    other = b.ct_slice(instance=10)
    other.SeriesDescription = "octoscan overlay"
    b.write(other, root / "ct" / "s10.dcm")
    frames = b.ct_slice(instance=11)
    frames.NumberOfFrames = 3
    b.write(frames, root / "ct" / "s11.dcm")


def test_fast_and_full_discovery_give_the_same_index(tmp_path, monkeypatch) -> None:
    _series_folder(tmp_path)
    fast = discover(tmp_path)
    _full_path_only(monkeypatch)
    full = discover(tmp_path)
    assert fast == full
    codes = {os.path.basename(s.path): s.code for s in fast.skipped}
    assert codes == {
        "s07.dcm": "truncated",
        "s08_copy.dcm": "duplicate_instance",
        "s10.dcm": "octoscan_output",
        "s11.dcm": "pixel_data_truncated",
    }
    (ct,) = [s for s in fast.series if s.kind.value == "ct"]
    assert len(ct.files) == 7 and ct.n_images == 7
    assert any("4x4 (6 file(s)), 6x6 (1 file(s))" in w for w in ct.warnings)


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real-dicom not present")
def test_fast_and_full_discovery_agree_on_the_real_files(monkeypatch) -> None:
    fast = discover(REAL)
    _full_path_only(monkeypatch)
    assert discover(REAL) == fast
