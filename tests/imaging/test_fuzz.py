"""Property-based fuzzing of header parsing, discovery and the loaders with mutated files.

Four valid seeds (a planar NM multi-frame object, the same RLE-compressed, an NM RECON TOMO
volume, a CT slice) are
mutated by hypothesis: byte flips, 32-bit overwrites with length-like values, insertions,
deletions and truncations, mostly inside the header where the parser works. For every mutant
the only allowed outcomes are an image (or volume) or an
:class:`~octoscan.imaging.errors.OctoscanError` naming the file in one line; never another
exception, never a hang (a per-example deadline), and discovery never raises at all.

CI runs a bounded, derandomised budget (``MAX_EXAMPLES`` per seed, same examples every run).
``bench/fuzz_long.py`` runs the same properties with a large random budget; any crash it
finds becomes a regression example below (``@example``) or in the broken-file corpus.
"""

from __future__ import annotations

import os
import signal
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydicom.uid import RLELossless

from octoscan.imaging.dicom_io import check_image_header, read_header
from octoscan.imaging.discovery import discover
from octoscan.imaging.errors import OctoscanError
from octoscan.imaging.pixels import MAX_IMAGE_BYTES_ENV
from octoscan.imaging.planar import load_planar
from octoscan.imaging.volume import load_ct, load_spect
from tests.imaging import nm_builders as b
from tests.imaging import volume_builders as vb

MAX_EXAMPLES = 150
EXAMPLE_DEADLINE_S = 5.0
# Mutants may declare large matrices; the decoders may allocate up to the limit, so keep it
# small while fuzzing (every seed decodes to under 2 KiB).
FUZZ_MAX_IMAGE_BYTES = 16 * 1024**2
# 32-bit values that make length fields interesting: undefined, huge, odd, zero
LENGTH_VALUES = (0xFFFFFFFF, 0xFFFFFFF0, 0x7FFFFFFF, 0x10000, 0xFFFF, 0x0101, 1, 0)
_PREFIX_BYTES = 132  # preamble and 'DICM'


# --------------------------------------------------------------------------- seeds


@dataclass(frozen=True)
class Seed:
    """A valid file's bytes and where its header ends (the Pixel Data element's tag)."""

    name: str
    data: bytes
    header_end: int
    load: Callable[[list[Path]], object]


def _pixel_data_offset(data: bytes) -> int:
    offset = data.rfind(b"\xe0\x7f\x10\x00")
    assert offset > 0
    return offset


@cache
def seeds() -> dict[str, Seed]:
    """The seed files, built once per process (deterministic bytes)."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="octoscan-fuzz-seed-") as tmp:
        folder = Path(tmp)
        planar = b.write(b.nm_planar(series_key="fuzz"), folder / "nm.dcm")
        compressed = b.nm_planar(series_key="fuzz-rle", shape=(16, 16))
        compressed.compress(RLELossless)
        rle = b.write(compressed, folder / "rle.dcm")
        recon = vb.nm_recon_tomo(folder / "recon.dcm")
        ct = vb.write(vb.ct_slice(0, (0.0, 0.0, 0.0), series_key="fuzz"), folder / "ct.dcm")
        for name, path, load in (
            ("nm_planar", planar, load_planar),
            ("nm_planar_rle", rle, load_planar),
            ("nm_recon_tomo", recon, load_spect),
            ("ct_slice", ct, load_ct),
        ):
            data = path.read_bytes()
            load([path])  # the seed itself is valid
            out[name] = Seed(name, data, _pixel_data_offset(data), load)
    return out


# --------------------------------------------------------------------------- mutations


@st.composite
def mutations(draw: st.DrawFn, seed_name: str) -> bytes:
    """A seed's bytes after 1-4 random edits, offsets mostly inside its header."""
    seed = seeds()[seed_name]
    data = bytearray(seed.data)
    for _ in range(draw(st.integers(1, 4))):
        size = len(data)
        if size == 0:
            break
        in_header = draw(st.booleans()) or draw(st.booleans())  # 3 of 4 edits
        limit = min(seed.header_end + 16, size) if in_header else size
        # 1 edit in 10 may hit the preamble and 'DICM' (anything there ends the parse early)
        low = 0 if draw(st.integers(0, 9)) == 0 else min(_PREFIX_BYTES, limit - 1)
        at = draw(st.integers(max(low, 0), max(limit - 1, 0)))
        kind = draw(st.sampled_from(("flip", "length", "insert", "delete", "truncate")))
        if kind == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "length":
            value = draw(st.sampled_from(LENGTH_VALUES) | st.integers(0, 2**32 - 1))
            data[at : at + 4] = struct.pack("<I", value)
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            del data[at:]
    return bytes(data)


# --------------------------------------------------------------------------- properties


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the block after ``seconds`` (SIGALRM: main thread, POSIX)."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still running after {seconds} s: a hang on hostile input")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def fuzz_limits() -> Iterator[None]:
    """The fuzzing size limit in the environment (restored after)."""
    before = os.environ.get(MAX_IMAGE_BYTES_ENV)
    os.environ[MAX_IMAGE_BYTES_ENV] = str(FUZZ_MAX_IMAGE_BYTES)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(MAX_IMAGE_BYTES_ENV, None)
        else:
            os.environ[MAX_IMAGE_BYTES_ENV] = before


def _check_error(error: OctoscanError, path: Path) -> None:
    assert error.path == str(path), f"{error.code}: the error does not name the file: {error}"
    assert error.code and error.code.islower(), error.code
    assert "\n" not in str(error), f"reason is not one line: {error!r}"


def _check_result(result: object) -> None:
    images = result if isinstance(result, list) else [result]
    assert images, "a loader returned nothing without an error"
    for image in images:
        array = image.counts if hasattr(image, "counts") else image.array
        assert array.dtype == np.float32 and array.ndim in (2, 3) and array.size > 0
        assert np.isfinite(array).all(), "non-finite values from integer pixel data"


def check_mutant(seed_name: str, data: bytes) -> str:
    """Write ``data`` as the only file of a fresh folder, then read it the three ways octoscan
    does: header (``read_header`` + ``check_image_header``), ``discover`` and the seed's
    loader. Returns a short outcome label; raises AssertionError on a broken promise.

    Exceptions outside ``Exception`` (pyo3's PanicException from a Rust decoder plugin is a
    BaseException) would escape a batch's error handling: they fail the property too.
    """
    try:
        return _check_mutant(seed_name, data)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:
        raise
    except BaseException as exc:
        raise AssertionError(f"{type(exc).__name__} escaped: {exc}") from exc


def _check_mutant(seed_name: str, data: bytes) -> str:
    seed = seeds()[seed_name]
    with (
        tempfile.TemporaryDirectory(prefix="octoscan-fuzz-") as tmp,
        fuzz_limits(),
        deadline(EXAMPLE_DEADLINE_S),
    ):
        path = Path(tmp) / f"{seed_name}.dcm"
        path.write_bytes(data)
        header_error = None
        try:
            check_image_header(read_header(path), path)
        except OctoscanError as exc:
            _check_error(exc, path)
            header_error = exc.code
        index = discover(tmp)  # must never raise for a bad file
        assert index.n_files_seen == 1
        skipped = [s for s in index.skipped if s.path == str(path)]
        indexed = [s for s in index.series if str(path) in s.files]
        assert len(skipped) + len(indexed) == 1, (index.skipped, index.series)
        for s in index.skipped:
            assert "\n" not in s.reason and s.code != "internal", s
        if skipped and header_error is not None:
            assert skipped[0].code == header_error  # one file, one code, however it is read
        try:
            result = seed.load([path])
        except OctoscanError as exc:
            _check_error(exc, path)
            return f"error:{exc.code}"
        _check_result(result)
        return "loaded"


# --------------------------------------------------------------------------- CI budget

CI_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_seeds_are_valid():
    found = seeds()
    assert sorted(found) == ["ct_slice", "nm_planar", "nm_planar_rle", "nm_recon_tomo"]
    for seed in found.values():
        assert check_mutant(seed.name, seed.data) == "loaded"
        assert seed.data[seed.header_end : seed.header_end + 4] == b"\xe0\x7f\x10\x00"


@CI_SETTINGS
@given(data=mutations("nm_planar"))
@example(data=b"")
def test_mutated_planar_nm(data):
    check_mutant("nm_planar", data)


@CI_SETTINGS
@given(data=mutations("nm_planar_rle"))
def test_mutated_compressed_planar_nm(data):
    check_mutant("nm_planar_rle", data)


@CI_SETTINGS
@given(data=mutations("nm_recon_tomo"))
def test_mutated_nm_recon_tomo(data):
    check_mutant("nm_recon_tomo", data)


@CI_SETTINGS
@given(data=mutations("ct_slice"))
def test_mutated_ct_slice(data):
    check_mutant("ct_slice", data)


# --------------------------------------------------------------------------- regressions
# Mutants found by bench/fuzz_long.py, rebuilt here by the one edit that mattered.


def test_regression_rle_decoder_panic_is_a_decode_failure(tmp_path):
    """One byte of an RLE segment (a PackBits run header, 0xF1 -> 0xF0) made the Rust RLE
    decoder overrun its buffer and raise pyo3's PanicException, a BaseException that
    escaped every ``except Exception``: a batch worker would have died."""
    ds = b.nm_planar(series_key="fuzz-rle", shape=(16, 16))
    ds.compress(RLELossless)
    data = bytearray(ds.PixelData)
    assert data[504] == 0xF1
    data[504] = 0xF0
    ds.PixelData = bytes(data)
    path = b.write(ds, tmp_path / "panic.dcm")
    with pytest.raises(
        OctoscanError, match=r"RLE Lossless\): PanicException: index out of"
    ) as info:
        load_planar([path])
    assert info.value.code == "pixel_decode_failed"
    assert check_mutant("nm_planar_rle", path.read_bytes()) == "error:pixel_decode_failed"


@pytest.mark.parametrize(
    ("keyword", "text", "reason"),
    [
        ("RescaleIntercept", "-10:4.0", r"RescaleIntercept is '-10:4.0'; expected a finite number"),
        ("RescaleSlope", "nan", r"RescaleSlope is 'nan'; expected a finite number"),
        ("RescaleSlope", "1e300", r"beyond the float32 range"),
    ],
)
def test_regression_rescale_values_that_are_not_numbers(tmp_path, keyword, text, reason):
    """A damaged DS value (found: RescaleIntercept '-10:4.0') raised a bare ValueError from
    float(); non-finite or overflowing factors gave inf/NaN counts."""
    ds = vb.ct_slice(0, (0.0, 0.0, 0.0), series_key="rescale")
    path = vb.write(ds, tmp_path / "ct.dcm")
    old = b"-1024.0 " if keyword == "RescaleIntercept" else b"1.0 "
    tag = b"\x28\x00\x52\x10" if keyword == "RescaleIntercept" else b"\x28\x00\x53\x10"
    value = text.encode() + (b" " if len(text) % 2 else b"")
    element = tag + b"DS" + len(old).to_bytes(2, "little") + old
    data = path.read_bytes()
    assert data.count(element) == 1
    path.write_bytes(data.replace(element, tag + b"DS" + len(value).to_bytes(2, "little") + value))
    with pytest.raises(OctoscanError, match=reason) as info:
        load_ct([path])
    assert info.value.code == "malformed"
    assert str(info.value).startswith(f"{path}: ")


def test_regression_single_slice_thickness_not_a_number(tmp_path):
    """A damaged SliceThickness (found: '2/5') of a one-slice CT raised a bare ValueError;
    it is now ignored like a missing one, with a warning."""
    ds = vb.ct_slice(0, (0.0, 0.0, 0.0), series_key="thickness")
    path = vb.write(ds, tmp_path / "ct.dcm")
    element = b"\x18\x00\x50\x00DS\x04\x002.5 "
    data = path.read_bytes()
    assert data.count(element) == 1
    path.write_bytes(data.replace(element, b"\x18\x00\x50\x00DS\x04\x002/5 "))
    volume = load_ct([path])
    assert volume.array.shape == (1, 4, 3)
    assert np.allclose(np.linalg.norm(volume.affine[:3, 0]), 1.0)  # 1 mm plane step
    assert "ct.dcm: single slice without a usable SliceThickness: 1 mm assumed" in volume.warnings


def _replace_once(path: Path, old: bytes, new: bytes) -> Path:
    data = path.read_bytes()
    assert data.count(old) == 1, old
    path.write_bytes(data.replace(old, new))
    return path


def test_regression_damaged_file_meta_vr_is_malformed(tmp_path):
    """A VR in the File Meta group damaged ('UI' -> 'TI'): the meta elements were never
    converted while the header was read, so the first access raised NotImplementedError
    inside discovery (recorded as an internal bug)."""
    path = b.write(b.nm_planar(), tmp_path / "in" / "meta.dcm")
    _replace_once(path, b"\x02\x00\x02\x00UI", b"\x02\x00\x02\x00TI")
    (skipped,) = discover(tmp_path / "in").skipped
    assert skipped.code == "malformed"
    assert skipped.reason.endswith("Unknown Value Representation 'TI' in tag (0002,0002))")
    with pytest.raises(OctoscanError, match=r"cannot be parsed \(NotImplementedError") as info:
        load_planar([path])
    assert info.value.code == "malformed"


def test_regression_damaged_transfer_syntax_uid_warns_nothing(tmp_path):
    """A transfer syntax UID with a bad character made pydicom warn (an error under this test
    suite's filterwarnings) on every UID() built from it; it is now just unsupported."""
    path = b.write(b.nm_planar(), tmp_path / "in" / "ts.dcm")
    _replace_once(path, b"1.2.840.10008.1.2.1\x00", b";.2.840.10008.1.2.1\x00")
    (skipped,) = discover(tmp_path / "in").skipped
    assert skipped.code == "unsupported_transfer_syntax"
    with pytest.raises(OctoscanError, match=r"transfer syntax ;\.2\.840\.10008\.1\.2\.1 "):
        load_planar([path])


def test_regression_frame_count_not_a_number_in_a_ct_slice(tmp_path):
    """NumberOfFrames 'x4' in a CT slice raised ValueError from int() in the volume loader."""
    ds = vb.ct_slice(0, (0.0, 0.0, 0.0), series_key="frames")
    ds.NumberOfFrames = "1"
    path = _replace_once(vb.write(ds, tmp_path / "ct.dcm"), b"IS\x02\x001 ", b"IS\x02\x00x4")
    with pytest.raises(OctoscanError, match=r"NumberOfFrames is 'x4' \(VR IS\), not an integer"):
        load_ct([path])
