"""The libjpeg-turbo JPEG lossless plugin: the same values as pydicom's own plugin and as the
uncompressed original, for unsigned and signed data, selection values 1, 3 and 6, and the
real JPEG lossless files of ../shared/data; declines what it cannot vouch for."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEGLossless,
    JPEGLosslessSV1,
    generate_uid,
)

from octoscan.imaging import jpeg_lossless as jl

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real-dicom"
DCMCJPEG = shutil.which("dcmcjpeg")


def _ct(path: Path, values: np.ndarray, *, bits_stored: int, signed: bool) -> Path:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Rows, ds.Columns = values.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(signed)
    ds.PixelData = values.astype("<i2" if signed else "<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _compress(src: Path, dst: Path, *options: str) -> Path:
    assert DCMCJPEG is not None
    subprocess.run([DCMCJPEG, *options, str(src), str(dst)], check=True, capture_output=True)
    return dst


@pytest.mark.skipif(DCMCJPEG is None, reason="dcmtk (dcmcjpeg) not installed")
@pytest.mark.parametrize(
    ("bits_stored", "signed", "options", "syntax"),
    [
        (12, False, ("+e1",), JPEGLosslessSV1),
        (16, True, ("+e1",), JPEGLosslessSV1),
        (16, True, ("+el", "+sv", "6"), JPEGLossless),
        (12, False, ("+el", "+sv", "3"), JPEGLossless),
    ],
)
def test_plugin_decodes_what_dcmtk_encoded(
    tmp_path: Path, bits_stored: int, signed: bool, options: tuple[str, ...], syntax: str
) -> None:
    assert jl.register()
    rng = np.random.default_rng(bits_stored + len(options))
    yy, xx = np.mgrid[0:96, 0:80]
    if signed:  # HU-like: air, soft tissue, bone, with noise; negatives included
        values = np.where((yy - 48) ** 2 + (xx - 40) ** 2 < 900, 40, -1000)
        values = values + np.where(np.abs(xx - 40) < 5, 1200, 0) + rng.integers(-20, 21, (96, 80))
    else:
        values = (xx * 40 + yy * 7 + rng.integers(0, 50, (96, 80))) % (1 << bits_stored)
    src = _ct(tmp_path / "plain.dcm", values, bits_stored=bits_stored, signed=signed)
    jpeg = _compress(src, tmp_path / "jpeg.dcm", *options)
    assert pydicom.dcmread(jpeg).file_meta.TransferSyntaxUID == syntax
    ours = pydicom.dcmread(jpeg)
    ours.pixel_array_options(decoding_plugin=jl.PLUGIN)
    theirs = pydicom.dcmread(jpeg)
    theirs.pixel_array_options(decoding_plugin="pylibjpeg")
    np.testing.assert_array_equal(ours.pixel_array, values)
    np.testing.assert_array_equal(ours.pixel_array, theirs.pixel_array)
    assert ours.pixel_array.dtype == (np.int16 if signed else np.uint16)
    if signed:
        assert int(ours.pixel_array.min()) < -1000


@pytest.mark.parametrize("name", ["pydicom-data/JPEG-LL.dcm", "fo-dicom/GH184.dcm"])
def test_plugin_matches_pydicom_on_real_files(name: str) -> None:
    assert jl.register()
    ours = pydicom.dcmread(REAL / name)
    ours.pixel_array_options(decoding_plugin=jl.PLUGIN)
    theirs = pydicom.dcmread(REAL / name)
    theirs.pixel_array_options(decoding_plugin="pylibjpeg")
    expected = theirs.pixel_array
    assert ours.pixel_array.shape == expected.shape
    np.testing.assert_array_equal(ours.pixel_array, expected)


def test_plugin_declines_frames_it_cannot_vouch_for() -> None:
    frame = next(
        pydicom.encaps.generate_frames(
            pydicom.dcmread(REAL / "fo-dicom/GH184.dcm").PixelData, number_of_frames=1
        )
    )
    runner = SimpleNamespace(samples_per_pixel=1, rows=128, columns=128, bits_allocated=16)
    assert len(jl.decode_frame(frame, runner)) == 128 * 128 * 2
    with pytest.raises(ValueError, match=r"header 64 x 128"):
        jl.decode_frame(frame, SimpleNamespace(**{**vars(runner), "rows": 64}))
    with pytest.raises(ValueError, match="single-sample"):
        jl.decode_frame(frame, SimpleNamespace(**{**vars(runner), "samples_per_pixel": 3}))
    with pytest.raises(ValueError, match="BitsAllocated 8"):
        jl.decode_frame(frame, SimpleNamespace(**{**vars(runner), "bits_allocated": 8}))
    assert jl.is_available(JPEGLossless) and not jl.is_available(ExplicitVRLittleEndian)
