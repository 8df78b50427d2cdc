"""The raw header fast path: same elements and values as pydicom, or None (full reader)."""

from __future__ import annotations

import os
import random
import struct
from collections import Counter
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
from octoscan.imaging.raw_header import HeaderTemplate, read_raw_header
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


# --------------------------------------------------------------------------- templates

SOP_INSTANCE_UID = 0x00080018
INSTANCE_NUMBER = 0x00200013
IMAGE_POSITION = 0x00200032
SUBSET = frozenset({0x00020002, 0x00080016, SOP_INSTANCE_UID, INSTANCE_NUMBER, IMAGE_POSITION})


def _template(path: Path, tags: frozenset[int] | None = None) -> HeaderTemplate:
    raw = read_raw_header(path, tags=tags)
    assert raw is not None, path
    return HeaderTemplate(raw, tags=tags)


def _sop_uid(instance: int) -> str:
    return "1.2.826.0.1.3680043.8.498.1." + "9" * instance  # longer and longer


def _ct_series(folder: Path, n: int) -> list[Path]:
    # instance 1..n: UIDs and positions of growing length shift the later elements
    paths = []
    for i in range(1, n + 1):
        ds = b.ct_slice(instance=i)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _sop_uid(i)
        paths.append(b.write(ds, folder / f"s{i:02d}.dcm"))
    return paths


@pytest.mark.parametrize("tags", [None, SUBSET])
def test_a_template_gives_the_same_header_as_a_plain_walk(tmp_path: Path, tags) -> None:
    paths = _ct_series(tmp_path, 12)
    like = _template(paths[0], tags)
    for i, path in enumerate(paths, start=1):
        raw = read_raw_header(path, tags=tags, like=like)
        assert raw == read_raw_header(path, tags=tags), path
        assert raw is not None
        assert raw.text(SOP_INSTANCE_UID) == _sop_uid(i)
        assert raw.integer(INSTANCE_NUMBER) == i
        assert raw.decimals(IMAGE_POSITION) == (0.0, 0.0, float(i))
        assert raw.us(0x00280010) == (None if tags else 4)
    # what differs from slice to slice is what the walks learned to stop at
    assert set(like.differing_tags()) == {
        0x00020000,  # File Meta group length: the SOP Instance UID grows
        0x00020003,
        SOP_INSTANCE_UID,
        INSTANCE_NUMBER,
        IMAGE_POSITION,
    }


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/real-dicom not present")
def test_templates_of_other_real_files_give_the_same_headers() -> None:
    paths = [p for p in _real_files() if read_raw_header(p) is not None]
    likes = [_template(p) for p in paths]
    # each file against its neighbours (mostly its own series) and a few far-off files
    for i, path in enumerate(paths):
        plain = read_raw_header(path)
        for k in {i - 1, i + 1, i + 2, 0, len(paths) // 2, len(paths) - 1}:
            if 0 <= k < len(paths):
                assert read_raw_header(path, like=likes[k]) == plain, (path, paths[k])
    assert sum(bool(like.differing_tags()) for like in likes) > len(likes) // 2


def test_a_template_never_vouches_for_a_broken_file(tmp_path: Path) -> None:
    good = b.write(b.ct_slice(), tmp_path / "good.dcm")
    like = _template(good)
    same = bytearray(good.read_bytes())
    cut = b.truncate(b.copy(good, tmp_path / "cut.dcm"), drop_bytes=4)
    assert read_raw_header(cut, like=like) is None  # pixel data shorter than declared
    lying = b.copy(good, tmp_path / "meta.dcm")
    _set_meta_group_length(lying, 10)
    assert read_raw_header(lying, like=like) is None
    long_value = bytearray(same)
    at = bytes(long_value).index(b"\x08\x00\x60\x00CS")  # Modality
    long_value[at + 6 : at + 8] = struct.pack("<H", 0xFFF0)
    (tmp_path / "len.dcm").write_bytes(bytes(long_value))
    assert read_raw_header(tmp_path / "len.dcm", like=like) is None
    # Modality renamed (0008,0070): out of order before Manufacturer... and SOP Class
    disorder = bytearray(same)
    at = bytes(disorder).index(b"\x08\x00\x16\x00UI")  # SOP Class UID
    disorder[at : at + 4] = b"\x08\x00\x90\x00"  # (0008,0090): past its successor
    (tmp_path / "order.dcm").write_bytes(bytes(disorder))
    assert read_raw_header(tmp_path / "order.dcm") is None
    assert read_raw_header(tmp_path / "order.dcm", like=like) is None
    assert read_raw_header(good, like=like) == read_raw_header(good)


def test_a_template_follows_values_that_differ_and_walks_what_it_does_not_know(
    tmp_path: Path,
) -> None:
    first = b.pet_slice()  # a sequence of defined length in the template
    first["RadiopharmaceuticalInformationSequence"].is_undefined_length = False
    like = _template(b.write(first, tmp_path / "p1.dcm"))
    later = b.pet_slice()
    later.SOPInstanceUID = later.file_meta.MediaStorageSOPInstanceUID = _sop_uid(2)
    later.ImagePositionPatient = [0.0, 0.0, -1234.5]  # a longer value
    item = later.RadiopharmaceuticalInformationSequence[0]
    item.RadionuclideTotalDose = "370000000"
    later["RadiopharmaceuticalInformationSequence"].is_undefined_length = True
    path = b.write(later, tmp_path / "p2.dcm")
    data = bytearray(path.read_bytes())
    at = bytes(data).index(b"\x20\x00\x13\x00IS")  # InstanceNumber: VR IS -> DS
    data[at + 4 : at + 6] = b"DS"
    path.write_bytes(bytes(data))
    raw = read_raw_header(path, like=like)
    assert raw == read_raw_header(path)
    assert raw is not None and raw.decimals(IMAGE_POSITION) == (0.0, 0.0, -1234.5)
    assert raw.elements[INSTANCE_NUMBER][0] == b"DS"
    assert raw.elements[0x00540016][2] == 0xFFFFFFFF  # walked to its delimiter
    assert raw.span(0x00540016).endswith(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    assert raw.text(SOP_INSTANCE_UID) == _sop_uid(2)
    assert {IMAGE_POSITION, INSTANCE_NUMBER, 0x00540016} <= set(like.differing_tags())
    for head_bytes in (200, 300, 400):  # values running past the first read
        short = read_raw_header(path, like=like, head_bytes=head_bytes)
        assert short == read_raw_header(path, head_bytes=head_bytes)
        assert short is not None and short.text(SOP_INSTANCE_UID) == _sop_uid(2)


def test_a_template_agrees_with_the_plain_walk_on_damaged_headers(tmp_path: Path) -> None:
    paths = _ct_series(tmp_path, 3)
    pet = b.pet_slice()  # nested sequences
    pet["RadiopharmaceuticalInformationSequence"].is_undefined_length = True
    paths.append(b.write(pet, tmp_path / "pet.dcm"))
    rng = random.Random(11)
    mutant = tmp_path / "mutant.dcm"
    outcomes = Counter()
    for path in paths:
        like = _template(path)
        data = path.read_bytes()
        end = read_raw_header(path).pixel_value_offset  # type: ignore[union-attr]
        for _ in range(150):
            damaged = bytearray(data)
            for _ in range(rng.choice((1, 1, 2, 3))):
                damaged[rng.randrange(128, end)] = rng.choice(
                    (0, 1, 0x7F, 0xFF, rng.randrange(256))
                )
            mutant.write_bytes(bytes(damaged))
            plain = read_raw_header(mutant)
            assert read_raw_header(mutant, like=like) == plain, bytes(damaged[:end])
            outcomes[plain is None] += 1
    assert outcomes[True] > 50 and outcomes[False] > 50  # both kinds of outcome were tried


def test_a_template_of_another_syntax_or_tag_set_is_not_used(tmp_path: Path) -> None:
    explicit = b.write(b.ct_slice(instance=2), tmp_path / "explicit.dcm")
    ds = b.ct_slice(instance=3)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    implicit = tmp_path / "implicit.dcm"
    ds.save_as(implicit, implicit_vr=True, little_endian=True, enforce_file_format=True)
    for path, like in ((explicit, _template(implicit)), (implicit, _template(explicit))):
        assert read_raw_header(path, like=like) == read_raw_header(path)
    subset = _template(explicit, SUBSET)
    assert read_raw_header(implicit, like=subset) == read_raw_header(implicit)
    assert read_raw_header(explicit, like=subset) == read_raw_header(explicit)
    # only its File Meta (always recorded whole) was compared, never its data set
    assert {t >> 16 for t in subset.differing_tags()} == {0x0002}


def test_a_template_needs_the_elements_of_its_tags(tmp_path: Path) -> None:
    path = b.write(b.ct_slice(), tmp_path / "ct.dcm")
    raw = read_raw_header(path, tags=SUBSET)
    assert raw is not None
    with pytest.raises(ValueError, match="not recorded in the header"):
        HeaderTemplate(raw)  # read with SUBSET, asked to stand for every tag
    assert HeaderTemplate(raw, tags=SUBSET).data_set.keys[0] == 0x00080016


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


def test_discovery_reads_later_slices_with_their_series_template(tmp_path, monkeypatch) -> None:
    # two series, a slice with an extra element and one missing an element
    for i in range(1, 13):
        b.write(b.ct_slice(instance=i), tmp_path / f"a{i:02d}.dcm")
        pet = b.pet_slice()
        pet.SOPInstanceUID = pet.file_meta.MediaStorageSOPInstanceUID = b.uid("pet", i)
        pet.InstanceNumber = i
        b.write(pet, tmp_path / f"b{i:02d}.dcm")
    extra = b.ct_slice(instance=13)
    extra.ImageComments = "one more element"
    b.write(extra, tmp_path / "a13.dcm")
    fewer = b.ct_slice(instance=14)
    del fewer.RescaleSlope
    b.write(fewer, tmp_path / "a14.dcm")
    likes: dict[str, object] = {}

    def spy(path, **kw):
        likes[os.path.basename(path)] = kw.get("like")
        return read_raw_header(path, **kw)

    monkeypatch.setattr(discovery, "read_raw_header", spy)
    fast = discover(tmp_path)
    assert {s.kind.value: len(s.files) for s in fast.series} == {"ct": 14, "pet": 12}
    assert not fast.skipped
    ct_like, pet_like = likes["a02.dcm"], likes["b02.dcm"]
    assert isinstance(ct_like, HeaderTemplate) and isinstance(pet_like, HeaderTemplate)
    assert ct_like is not pet_like and likes["a01.dcm"] is None
    assert all(likes[f"a{i:02d}.dcm"] is ct_like for i in range(2, 15))
    assert all(likes[f"b{i:02d}.dcm"] is pet_like for i in range(2, 13))
    assert likes["b01.dcm"] is ct_like  # the first PET slice: the last series' template
    assert 0x00200032 in ct_like.differing_tags()  # positions differ from slice to slice
    _full_path_only(monkeypatch)
    assert discover(tmp_path) == fast
