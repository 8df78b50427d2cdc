"""Size limits: absurd declared matrices and lengths are refused from the header, before any
pixel buffer or per-frame table is allocated; the limit is configurable.

The limit (``octoscan.imaging.pixels.max_image_bytes``) is 2 GiB of pixels (stored, or as
float32 frames), or ``$OCTOSCAN_MAX_IMAGE_BYTES``; a ``max_bytes`` keyword overrides both.
Memory is measured with tracemalloc (every numpy and bytes allocation is traced), and each
refusal must come fast (a deadline turns a hang into a failure).
"""

from __future__ import annotations

import signal
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

from octoscan.imaging import dicom_io, pixels
from octoscan.imaging.discovery import discover
from octoscan.imaging.errors import ConfigError, InvalidInputError
from octoscan.imaging.pixels import (
    DEFAULT_MAX_IMAGE_BYTES,
    MAX_IMAGE_BYTES_ENV,
    decode_frames,
    max_image_bytes,
)
from octoscan.imaging.planar import load_planar
from octoscan.imaging.volume import load_ct
from tests.imaging import nm_builders as b
from tests.imaging import volume_builders as vb

MIB = 1024**2
PEAK_LIMIT_BYTES = 16 * MIB  # far below any absurd declaration, far above a small header read


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Fail with TimeoutError when the block runs longer than ``seconds`` (SIGALRM)."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _peak_bytes(action: Callable[[], object]) -> tuple[int, BaseException | None]:
    """(tracemalloc peak while ``action`` runs, the exception it raised or None)."""
    tracemalloc.start()
    error: BaseException | None = None
    try:
        with _deadline(10.0):
            action()
    except (InvalidInputError, ConfigError) as exc:
        error = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, error


def _absurd_planar(path: Path, *, rows: int, columns: int, frames: int, bits: int = 16) -> Path:
    """A planar NM file whose header declares rows x columns x frames but whose Pixel Data
    holds one 8 x 6 frame (a header that lies, as a hostile or corrupt file would)."""
    ds = b.nm_planar(series_key=path.stem, study_key=path.stem)
    ds.PixelData = ds.PixelData[: 8 * 6 * 2]
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, frames
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    del ds.DetectorVector, ds.EnergyWindowVector  # no 1-value-per-frame tables to parse
    return b.write(ds, path)


# --------------------------------------------------------------------------- absurd matrices


def test_absurd_matrix_refused_by_discovery_and_loader_before_allocation(tmp_path):
    path = _absurd_planar(tmp_path / "in" / "absurd.dcm", rows=65535, columns=65535, frames=10000)
    declared = 65535 * 65535 * 10000 * 4  # as float32 frames: about 160 TiB
    peak, _ = _peak_bytes(lambda: discover(tmp_path / "in"))
    assert peak < PEAK_LIMIT_BYTES
    (skipped,) = discover(tmp_path / "in").skipped
    assert skipped.code == "image_too_large"
    assert skipped.reason == (
        f"Rows 65535 x Columns 65535 x 10000 frame(s) x 16 bits need {declared} bytes; the "
        f"limit is {DEFAULT_MAX_IMAGE_BYTES} bytes"
    )
    peak, error = _peak_bytes(lambda: load_planar([path]))
    assert peak < PEAK_LIMIT_BYTES
    assert isinstance(error, InvalidInputError) and error.code == "image_too_large"
    with pytest.raises(InvalidInputError, match=f"need {declared} bytes; the limit is"):
        load_planar([path])


def test_decoder_refuses_absurd_header_without_touching_pixels():
    ds = b.nm_planar()
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 10000
    del ds.PixelData  # nothing to decode: the refusal must come from the header alone
    peak, error = _peak_bytes(lambda: decode_frames(ds, "absurd.dcm"))
    assert peak < PEAK_LIMIT_BYTES
    assert isinstance(error, InvalidInputError) and error.code == "image_too_large"
    assert str(error).startswith("absurd.dcm: Rows 65535 x Columns 65535 x 10000 frame(s)")


@pytest.mark.parametrize(
    ("rows", "columns", "frames", "bits", "code", "reason"),
    [
        # 2**31 - 1 frames of one pixel: 8 GiB as float32
        (1, 1, 2**31 - 1, 16, "image_too_large", r"need 8589934588 bytes; the limit is"),
        # 500 million one-byte frames fit under the limit but not in the file: a per-frame
        # view table of that length would take minutes and gigabytes
        (1, 1, 500_000_000, 8, "pixel_data_truncated",
         r"PixelData holds 96 bytes but Rows 1 x Columns 1 x 500000000 frame\(s\)"),
    ],
)  # fmt: skip
def test_frame_count_bombs_refused_fast(tmp_path, rows, columns, frames, bits, code, reason):
    path = _absurd_planar(
        tmp_path / "in" / "bomb.dcm", rows=rows, columns=columns, frames=frames, bits=bits
    )
    peak, _ = _peak_bytes(lambda: discover(tmp_path / "in"))
    assert peak < PEAK_LIMIT_BYTES
    (skipped,) = discover(tmp_path / "in").skipped
    assert skipped.code == code
    with _deadline(10.0), pytest.raises(InvalidInputError, match=reason) as info:
        load_planar([path])
    assert info.value.code == code


def test_encapsulated_frame_count_bomb_refused_fast(tmp_path):
    ds = b.nm_planar(series_key="rle-bomb", study_key="rle-bomb")
    ds.compress(RLELossless)
    ds.NumberOfFrames = 10**7  # 8 x 6 x 10**7 float32: 1.9 GB, under the limit
    del ds.DetectorVector, ds.EnergyWindowVector
    path = b.write(ds, tmp_path / "in" / "rle_bomb.dcm")
    peak, _ = _peak_bytes(lambda: discover(tmp_path / "in"))
    assert peak < PEAK_LIMIT_BYTES
    (skipped,) = discover(tmp_path / "in").skipped
    assert skipped.code == "pixel_data_truncated"
    with _deadline(10.0), pytest.raises(InvalidInputError, match=r"room for at most \d+ fragments"):
        load_planar([path])


# --------------------------------------------------------------------------- hostile lengths


def _huge_private_length(path: Path) -> Path:
    ds = b.ct_slice(series_key=path.stem)
    ds.add_new(0x00090010, "LO", "OCTOSCAN TEST")
    ds.add_new(0x00091010, "OB", b"\x01\x02\x03\x04")
    b.write(ds, path)
    data = path.read_bytes()
    header = struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, 4)
    assert data.count(header) == 1
    path.write_bytes(
        data.replace(header, struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, 2**32 - 16))
    )
    return path


@pytest.mark.parametrize(
    "read",
    [dicom_io.read_header, dicom_io.read_dataset, pixels.read_dataset],
    ids=["dicom_io.read_header", "dicom_io.read_dataset", "pixels.read_dataset"],
)
def test_a_4_gib_length_field_allocates_nothing(tmp_path, read):
    """pydicom reads a value with fp.read(length), which allocates ``length`` bytes first;
    octoscan caps every read at the bytes left in the file."""
    path = _huge_private_length(tmp_path / "huge.dcm")
    peak, error = _peak_bytes(lambda: read(path))
    assert peak < PEAK_LIMIT_BYTES
    if read is pixels.read_dataset:  # reads what is there, the short value included
        assert error is None
    else:
        assert isinstance(error, InvalidInputError) and error.code == "truncated"
        assert f"{path}: file ends at byte" in str(error)
        assert "(0009,1010) ends at byte 4294967" in str(error)


# --------------------------------------------------------------------------- the limit


def test_limit_from_the_environment(monkeypatch):
    monkeypatch.delenv(MAX_IMAGE_BYTES_ENV, raising=False)
    assert max_image_bytes() == DEFAULT_MAX_IMAGE_BYTES == 2 * 1024**3
    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, " 65536 ")
    assert max_image_bytes() == 65536


@pytest.mark.parametrize("text", ["0", "-5", "2GB", "1.5e9"])
def test_invalid_limit_is_a_config_error_before_the_walk(monkeypatch, tmp_path, text):
    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, text)
    expected = rf"OCTOSCAN_MAX_IMAGE_BYTES is '{text}'; expected a positive whole number"
    with pytest.raises(ConfigError, match=expected) as info:
        max_image_bytes()
    assert info.value.code == "config_error"
    with pytest.raises(ConfigError, match=expected):
        discover(tmp_path)


def test_environment_limit_reaches_discovery_and_every_loader(monkeypatch, tmp_path):
    planar = b.write(b.nm_planar(series_key="p", study_key="p"), tmp_path / "in" / "p.dcm")
    ct = vb.ct_series(tmp_path / "in" / "ct", n=3)  # 3 slices of 4 x 3 int16
    # 4 frames of 8 x 6 as float32: 768 bytes; the CT stack as float32: 144 bytes
    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, "767")
    index = discover(tmp_path / "in")
    assert [(Path(s.path).name, s.code) for s in index.skipped] == [("p.dcm", "image_too_large")]
    assert "the limit is 767 bytes" in index.skipped[0].reason
    with pytest.raises(InvalidInputError, match="need 768 bytes; the limit is 767 bytes"):
        load_planar([planar])
    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, "143")
    with pytest.raises(InvalidInputError, match="need 144 bytes as float32; the limit is 143"):
        load_ct(ct.paths)
    # a keyword given by the caller wins over the environment
    volume = load_ct(ct.paths, max_bytes=144)
    assert volume.array.shape == (3, 4, 3) and volume.array.dtype == np.float32
    monkeypatch.setenv(MAX_IMAGE_BYTES_ENV, "768")
    (image_a, image_b) = load_planar([planar])
    assert image_a.counts.shape == image_b.counts.shape == (8, 6)
    assert discover(tmp_path / "in").skipped == ()


def test_limit_counts_stored_bytes_too():
    """64-bit float pixels need more bytes stored than as float32 frames: the larger counts."""
    ds = b.nm_planar()
    ds.BitsAllocated = 64
    assert pixels.check_declared_size(ds, "f.dcm", max_bytes=1536) == 1536
    with pytest.raises(InvalidInputError, match="need 1536 bytes; the limit is 1535") as info:
        pixels.check_declared_size(ds, "f.dcm", max_bytes=1535)
    assert info.value.code == "image_too_large"


def test_encapsulated_limit_is_checked_on_the_declared_matrix(tmp_path):
    """Compressed pixel data is small on disk; the limit applies to what it decodes to."""
    ds = b.nm_planar(series_key="rle", study_key="rle")
    ds.PixelData = encapsulate([b"\x00" * 64] * 4)
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds["PixelData"].VR = "OB"
    path = b.write(ds, tmp_path / "in" / "rle.dcm")
    with pytest.raises(InvalidInputError, match="need 768 bytes; the limit is 700") as info:
        decode_frames(dicom_io.read_dataset(path), path, max_bytes=700)
    assert info.value.code == "image_too_large"


def test_frame_count_bomb_beside_a_good_file_refused_fast(tmp_path):
    """Two files of one series: the planar loader reads both headers to match views across
    files, before any pixels; the bomb must be refused there too."""
    good = b.write(b.nm_planar(series_key="pair", study_key="pair"), tmp_path / "good.dcm")
    bomb = _absurd_planar(tmp_path / "bomb.dcm", rows=1, columns=1, frames=500_000_000, bits=8)
    peak, error = _peak_bytes(lambda: load_planar([good, bomb]))
    assert peak < PEAK_LIMIT_BYTES
    assert isinstance(error, InvalidInputError) and error.code == "pixel_data_truncated"
    assert error.path == str(bomb)
