"""Reading primitives: fast rejection, truncation, stable error codes, quiet value parsing."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    MPEG2MPML,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from octoscan.imaging.dicom_io import (
    check_image_header,
    has_pixel_data,
    is_dicomdir,
    is_image_sop_class,
    is_transfer_syntax_supported,
    quiet_pydicom,
    read_dataset,
    read_header,
    transfer_syntax,
)
from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.pixels import decode_frames
from tests.imaging import nm_builders as b


def test_header_has_no_pixels_but_knows_they_exist(tmp_path):
    path = b.write(b.ct_slice(), tmp_path / "ct.dcm")
    ds = read_header(path)
    assert "PixelData" not in ds
    assert has_pixel_data(ds)
    assert ds.Modality == "CT"
    assert transfer_syntax(ds) == ExplicitVRLittleEndian
    check_image_header(ds, path)  # a complete image: no error


def test_headless_file_is_read_and_its_syntax_inferred(tmp_path):
    path = b.write(b.ct_slice(), tmp_path / "bare", preamble=False)
    assert path.read_bytes()[128:132] != b"DICM"
    ds = read_header(path)
    assert ds.Modality == "CT"
    assert transfer_syntax(ds) == ImplicitVRLittleEndian
    full = read_dataset(path)
    assert decode_frames(full, path).shape == (1, 4, 4)


@pytest.mark.parametrize(
    "content",
    [b"", b"tiny", b"hello, this is a text file\n" * 20, bytes(range(256)) * 4],
    ids=["empty", "tiny", "text", "binary"],
)
def test_non_dicom_rejected(tmp_path, content):
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=r"not a DICOM data element|too short") as exc:
        read_header(path)
    assert exc.value.code == "not_dicom"


def test_plausible_start_but_nothing_dicom_inside_is_not_dicom(tmp_path):
    # group 0008 element 0000 (implicit VR, length 4) then garbage: parses to nothing useful
    path = tmp_path / "odd"
    path.write_bytes(b"\x08\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00" + b"\xff" * 4)
    with pytest.raises(InvalidInputError, match="no DICOM identifying attributes") as exc:
        read_header(path)
    assert exc.value.code == "not_dicom"


def test_directory_and_missing_file_are_unreadable(tmp_path):
    with pytest.raises(InvalidInputError, match="is a directory") as exc:
        read_header(tmp_path)
    assert exc.value.code == "unreadable"
    with pytest.raises(InvalidInputError, match="cannot read the file") as exc:
        read_header(tmp_path / "missing.dcm")
    assert exc.value.code == "unreadable"


def test_truncated_in_native_pixel_data(tmp_path):
    path = b.truncate(b.write(b.ct_slice(), tmp_path / "ct.dcm"), drop_bytes=5)
    with pytest.raises(InvalidInputError, match="Pixel Data declares 32 bytes but only 27") as exc:
        read_header(path)
    assert exc.value.code == "truncated"


def test_truncated_in_encapsulated_pixel_data(tmp_path):
    ds = b.nm_planar(shape=(16, 16))
    ds.compress(RLELossless)
    path = b.write(ds, tmp_path / "rle.dcm")
    read_header(path)  # complete file is fine
    b.truncate(path, drop_bytes=30)
    with pytest.raises(InvalidInputError, match="no sequence delimiter") as exc:
        read_header(path)
    assert exc.value.code == "truncated"


def test_truncated_inside_the_header(tmp_path):
    path = b.write(b.rtstruct(), tmp_path / "rt.dcm")
    size = path.stat().st_size
    b.truncate(path, keep_bytes=size - 3)
    with pytest.raises(InvalidInputError, match="ends at byte") as exc:
        read_header(path)
    assert exc.value.code == "truncated"


def test_truncated_and_garbage_deflate_streams(tmp_path):
    ds = b.ct_slice()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = b.write(ds, tmp_path / "dfl.dcm")
    assert read_dataset(path).pixel_array.shape == (4, 4)
    group_length = pydicom.dcmread(path, stop_before_pixels=True).file_meta[0x00020000].value
    meta_end = 128 + 4 + 12 + group_length  # preamble, DICM, group length element, group
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(path.read_bytes()[:meta_end] + b"\x01\x02" * 40)
    with pytest.raises(InvalidInputError, match="cannot be inflated") as exc:
        read_header(garbage)
    assert exc.value.code == "malformed"
    b.truncate(path, drop_bytes=40)
    with pytest.raises(InvalidInputError, match="cannot be inflated") as exc:
        read_header(path)
    assert exc.value.code == "truncated"


def test_missing_uids(tmp_path):
    ds = b.ct_slice()
    del ds.SeriesInstanceUID
    ds.StudyInstanceUID = ""
    path = b.write(ds, tmp_path / "nouid.dcm")
    header = read_header(path)
    with pytest.raises(
        InvalidInputError, match="missing StudyInstanceUID, SeriesInstanceUID"
    ) as exc:
        check_image_header(header, path)
    assert exc.value.code == "missing_uids"


def test_missing_pixel_data(tmp_path):
    ds = b.ct_slice()
    del ds.PixelData
    path = b.write(ds, tmp_path / "nopix.dcm")
    header = read_header(path)
    assert not has_pixel_data(header)
    with pytest.raises(InvalidInputError, match="no Pixel Data") as exc:
        check_image_header(header, path)
    assert exc.value.code == "missing_pixel_data"
    with pytest.raises(InvalidInputError, match="no Pixel Data"):
        read_dataset(path)


def test_non_image_objects_need_no_pixels(tmp_path):
    path = b.write(b.rtstruct(), tmp_path / "rt.dcm")
    header = read_header(path)
    assert not is_image_sop_class(header)
    check_image_header(header, path)


def test_unsupported_transfer_syntax(tmp_path):
    path = b.write_unsupported_syntax(b.ct_slice(), tmp_path / "mpeg.dcm")
    header = read_header(path)
    with pytest.raises(InvalidInputError, match="cannot be decoded here") as exc:
        check_image_header(header, path)
    assert exc.value.code == "unsupported_transfer_syntax"
    assert not is_transfer_syntax_supported(MPEG2MPML)
    assert is_transfer_syntax_supported(JPEG2000Lossless)
    assert is_transfer_syntax_supported(RLELossless)


def test_dicomdir_recognised(tmp_path):
    dicomdir = b.write_dicomdir([b.ct_slice()], tmp_path / "set")
    assert is_dicomdir(read_header(dicomdir))
    image = next(p for p in (tmp_path / "set").rglob("IM*"))
    assert not is_dicomdir(read_header(image))


def test_invalid_values_read_without_warnings(tmp_path, caplog, monkeypatch):
    for mode in ("reading_validation_mode", "writing_validation_mode"):
        monkeypatch.setattr(pydicom.config.settings, mode, pydicom.config.IGNORE)
    ds = b.ct_slice()
    ds.Manufacturer = "X" * 70  # LO holds at most 64 characters
    ds.SliceThickness = "1.00000000000000001"  # DS holds at most 16 characters
    path = b.write(ds, tmp_path / "ct.dcm")
    monkeypatch.undo()
    header = read_header(path)  # filterwarnings=error: a pydicom warning would fail here
    assert header.Manufacturer == "X" * 70
    assert float(header.SliceThickness) == pytest.approx(1.0)
    assert not [r for r in caplog.records if r.name.startswith("pydicom")]


def test_quiet_pydicom_restores_settings():
    before = pydicom.config.settings.reading_validation_mode
    with quiet_pydicom():
        assert pydicom.config.settings.reading_validation_mode == pydicom.config.IGNORE
    assert pydicom.config.settings.reading_validation_mode == before


def test_read_dataset_decodes_with_pixels(tmp_path):
    ds = b.nm_planar()
    path = b.write(ds, tmp_path / "wb.dcm")
    full = read_dataset(path)
    frames = full.pixel_array
    assert frames.shape == (4, 8, 6)
    assert np.array_equal(frames[:, 0, 0], [110, 120, 210, 220])


def test_read_header_keeps_only_specific_tags(tmp_path):
    path = b.write(b.ct_slice(), tmp_path / "ct.dcm")
    ds = read_header(path, specific_tags=["Modality", "SOPInstanceUID"])
    assert ds.Modality == "CT"
    assert "PatientName" not in ds
    assert has_pixel_data(ds)


def test_dataset_without_meta_or_uids_is_reported(tmp_path):
    ds = Dataset()
    ds.Modality = "CT"
    ds.Rows = 2
    ds.Columns = 2
    path = tmp_path / "acrnema"
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    header = read_header(path)
    with pytest.raises(InvalidInputError, match="missing StudyInstanceUID") as exc:
        check_image_header(header, path)
    assert exc.value.code == "missing_uids"
