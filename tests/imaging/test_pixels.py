"""Pixel decoding: scaling, size guards, truncation, transfer syntaxes, ACR-NEMA files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    MPEG2MPML,
    UID,
    CTImageStorage,
    ImplicitVRLittleEndian,
    JPEGLSLossless,
    NuclearMedicineImageStorage,
    RLELossless,
)

from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.pixels import (
    check_declared_size,
    check_transfer_syntax,
    declared_pixel_bytes,
    decode_frames,
    decode_frames_with_info,
    normalise_units,
    read_dataset,
)
from tests.imaging.volume_builders import image_dataset, rwvm_item, write


def _ct(values: np.ndarray | None = None) -> Dataset:
    pixels = np.arange(12, dtype=np.int16).reshape(3, 4) if values is None else values
    ds = image_dataset(
        sop_class=CTImageStorage,
        modality="CT",
        pixels=pixels,
        series_key="px",
        instance=1,
        ipp=(0, 0, 0),
    )
    ds.RescaleSlope, ds.RescaleIntercept = 2, -5
    return ds


def _nm_frames(n: int = 3) -> Dataset:
    pixels = np.stack([np.full((2, 3), 10 * (f + 1), dtype=np.uint16) for f in range(n)])
    return image_dataset(
        sop_class=NuclearMedicineImageStorage,
        modality="NM",
        pixels=pixels,
        series_key="nm",
        instance=1,
    )


# ---------------------------------------------------------------------------- scaling


def test_rescale_applied_as_float32_frames() -> None:
    out = decode_frames_with_info(_ct(), "ct.dcm")
    assert out.array.dtype == np.float32
    assert out.array.shape == (1, 3, 4)
    assert out.array[0, 2, 3] == 11 * 2 - 5
    assert out.array[0, 0, 0] == -5
    assert out.scaling == "rescale"
    assert out.units is None


def test_no_scaling_keeps_counts() -> None:
    out = decode_frames_with_info(_nm_frames(), "nm.dcm")
    assert out.scaling == "none"
    assert out.array.shape == (3, 2, 3)
    assert [float(out.array[f].sum()) for f in range(3)] == [60.0, 120.0, 180.0]


def test_rwvm_takes_precedence_and_names_units() -> None:
    ds = _ct()
    ds.RealWorldValueMappingSequence = DicomSequence([rwvm_item(0.25, 1.0, "Bq/ml")])
    out = decode_frames_with_info(ds, "ct.dcm")
    assert out.scaling == "rwvm"
    assert out.units == "Bq/mL"
    assert out.array[0, 2, 3] == pytest.approx(11 * 0.25 + 1.0)


def test_rwvm_kbq_converted_to_bq() -> None:
    ds = _nm_frames(1)
    ds.RealWorldValueMappingSequence = DicomSequence([rwvm_item(0.5, 0.0, "kBq/ml")])
    out = decode_frames_with_info(ds, "nm.dcm")
    assert out.units == "Bq/mL"
    assert out.array[0, 0, 0] == pytest.approx(10 * 0.5 * 1000)


def test_rwvm_lut_and_ranges() -> None:
    ds = _nm_frames(1)
    lut = rwvm_item(1.0, 0.0, "{counts}")
    del lut.RealWorldValueSlope, lut.RealWorldValueIntercept
    lut.RealWorldValueFirstValueMapped, lut.RealWorldValueLastValueMapped = 5, 14
    lut.RealWorldValueLUTData = [float(v) * 3 for v in range(10)]
    ds.RealWorldValueMappingSequence = DicomSequence([lut])
    out = decode_frames_with_info(ds, "nm.dcm")
    assert out.units == "counts"
    assert out.array[0, 0, 0] == pytest.approx((10 - 5) * 3)


def test_rwvm_several_units_uses_first_with_warning() -> None:
    ds = _nm_frames(1)
    ds.RealWorldValueMappingSequence = DicomSequence(
        [rwvm_item(2.0, 0.0, "Bq/ml"), rwvm_item(1.0, 0.0, "{counts}")]
    )
    out = decode_frames_with_info(ds, "nm.dcm")
    assert out.units == "Bq/mL" and out.array[0, 0, 0] == 20
    assert any("several units" in w for w in out.warnings)


def test_per_frame_functional_group_rescale() -> None:
    ds = _nm_frames(3)
    groups = []
    for slope in (1.0, 2.0, 4.0):
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept = slope, 1.0
        group = Dataset()
        group.PixelValueTransformationSequence = DicomSequence([transform])
        groups.append(group)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(groups)
    ds.RescaleSlope = 100  # ignored: the per-frame group wins
    array = decode_frames(ds, "nm.dcm")
    assert array[:, 0, 0].tolist() == [10 * 1 + 1, 20 * 2 + 1, 30 * 4 + 1]


def test_shared_functional_group_rwvm() -> None:
    ds = _nm_frames(2)
    shared = Dataset()
    shared.RealWorldValueMappingSequence = DicomSequence([rwvm_item(3.0, 0.0, "Bq/ml")])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    out = decode_frames_with_info(ds, "nm.dcm")
    assert out.units == "Bq/mL"
    assert out.array[:, 0, 0].tolist() == [30.0, 60.0]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("Bq/ml", ("Bq/mL", 1.0)),
        ("MBq/ml", ("Bq/mL", 1e6)),
        ("{SUVbw}g/ml", ("SUVbw", 1.0)),
        ("[hnsf'U]", ("HU", 1.0)),
        ("mg/ml", ("mg/ml", 1.0)),
        (None, (None, 1.0)),
    ],
)
def test_normalise_units(code: str | None, expected: tuple) -> None:
    assert normalise_units(code) == expected


# ---------------------------------------------------------------------------- refusals


def test_missing_pixel_data() -> None:
    ds = _ct()
    del ds.PixelData
    with pytest.raises(InvalidInputError, match="no PixelData") as info:
        decode_frames(ds, "a.dcm")
    assert info.value.code == "missing_pixel_data"
    assert info.value.path == "a.dcm"


def test_missing_rows_is_missing_pixel_data() -> None:
    ds = _ct()
    del ds.Rows
    with pytest.raises(InvalidInputError, match="Rows is None") as info:
        decode_frames(ds, "a.dcm")
    assert info.value.code == "missing_pixel_data"


def test_absurd_declared_size_refused_before_decoding() -> None:
    ds = _ct()
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 1000
    with pytest.raises(InvalidInputError, match="the limit is 2147483648 bytes") as info:
        decode_frames(ds, "big.dcm")
    assert info.value.code == "image_too_large"


def test_size_limit_is_configurable() -> None:
    ds = _ct()
    assert check_declared_size(ds, "a.dcm", max_bytes=48) == 24
    with pytest.raises(InvalidInputError, match="need 48 bytes; the limit is 47") as info:
        decode_frames(ds, "a.dcm", max_bytes=47)
    assert info.value.code == "image_too_large"


def test_declared_pixel_bytes_one_bit() -> None:
    ds = Dataset()
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.NumberOfFrames = 10, 10, 1, 1
    assert declared_pixel_bytes(ds) == 13


def test_truncated_pixel_data() -> None:
    ds = _ct()
    ds.PixelData = ds.PixelData[:-6]
    with pytest.raises(InvalidInputError, match=r"holds 18 bytes but .* declare 24") as info:
        decode_frames(ds, "cut.dcm")
    assert info.value.code == "pixel_data_truncated"


@pytest.mark.parametrize("uid", [MPEG2MPML, UID("1.2.3.4.5.6")])
def test_unsupported_transfer_syntax(uid: UID) -> None:
    ds = _ct()
    ds.file_meta.TransferSyntaxUID = uid
    with pytest.raises(InvalidInputError, match=f"transfer syntax {uid}") as info:
        check_transfer_syntax(ds, "v.dcm")
    assert info.value.code == "unsupported_transfer_syntax"
    with pytest.raises(InvalidInputError, match="cannot be decoded here"):
        decode_frames(ds, "v.dcm")


def test_corrupt_compressed_data_is_a_decode_failure(tmp_path: Path) -> None:
    ds = _ct()
    ds.compress(RLELossless)
    ds.PixelData = ds.PixelData[:40] + b"\x00" * 8 + ds.PixelData[48:]
    ds.PixelData = ds.PixelData[:-20] + b"\xff" * 20
    with pytest.raises(InvalidInputError, match="RLE Lossless") as info:
        decode_frames(ds, "rle.dcm")
    assert info.value.code == "pixel_decode_failed"


def test_colour_images_refused() -> None:
    ds = _ct(np.zeros((3, 4), dtype=np.int16))
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = bytes(3 * 4 * 3)
    with pytest.raises(InvalidInputError, match="'RGB' with SamplesPerPixel 3") as info:
        decode_frames(ds, "rgb.dcm")
    assert info.value.code == "unsupported_photometric_interpretation"


# ---------------------------------------------------------------------------- codecs, files


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless])
def test_lossless_compression_round_trip(tmp_path: Path, syntax: UID) -> None:
    values = (np.arange(64, dtype=np.int16).reshape(8, 8) * 37) - 900
    ds = _ct(values)
    ds.compress(syntax)
    path = write(ds, tmp_path / "c.dcm")
    loaded, notes = read_dataset(path)
    out = decode_frames_with_info(loaded, path)
    assert out.transfer_syntax == syntax
    np.testing.assert_array_equal(out.array[0], values * 2 - 5)
    assert notes == ()


def test_acr_nema_dataset_completed_with_warnings(tmp_path: Path) -> None:
    values = np.arange(12, dtype=np.int16).reshape(3, 4)
    ds = _ct(values)
    del ds.PhotometricInterpretation, ds.SamplesPerPixel
    del ds.file_meta
    path = tmp_path / "headless"
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert path.read_bytes()[128:132] != b"DICM"
    loaded, _ = read_dataset(path)
    out = decode_frames_with_info(loaded, path)
    np.testing.assert_array_equal(out.array[0], values * 2 - 5)
    assert out.transfer_syntax == ImplicitVRLittleEndian
    joined = " | ".join(out.warnings)
    assert "MONOCHROME2 assumed" in joined
    assert "SamplesPerPixel missing" in joined
    assert "Implicit VR Little Endian assumed" in joined
    assert "PhotometricInterpretation" not in loaded  # the caller's dataset is untouched


def test_read_dataset_refuses_non_dicom(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a DICOM file at all\n" * 20)
    with pytest.raises(InvalidInputError, match="not a DICOM image") as info:
        read_dataset(path)
    assert info.value.code == "not_dicom"


def test_read_dataset_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "bad.dcm"
    meta = b"\x02\x00\x00\x00UL\x04\x00\x0a\x00\x00\x00\x02\x00\x10\x00UI\x02\x001\x00"
    broken_sequence = b"\x08\x00\x16\x00SQ\x00\x00\xff\xff\xff\x7f\xfe\xff"
    path.write_bytes(b"\x00" * 128 + b"DICM" + meta + broken_sequence)
    with pytest.raises(InvalidInputError, match="cannot be parsed as DICOM") as info:
        read_dataset(path)
    assert info.value.code == "unreadable"


def test_read_dataset_collects_value_warnings(tmp_path: Path) -> None:
    ds = _ct()
    with pytest.warns(UserWarning, match="maximum length of 16"):
        ds.StudyID = "X" * 20  # SH allows 16 characters
    path = write(ds, tmp_path / "long.dcm")
    loaded, notes = read_dataset(path)
    assert loaded.StudyID == "X" * 20
    assert any("exceeds the maximum length of 16" in n for n in notes)
