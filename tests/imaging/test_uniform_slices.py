"""The uniform-stack fast path of the CT loader: same volume as the per-file path."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import JPEGLosslessSV1, JPEGLSLossless, RLELossless

from octoscan.imaging import pixels, volume
from octoscan.imaging.uniform_slices import scan_uniform
from octoscan.imaging.volume import load_ct
from tests.imaging.volume_builders import ct_series, ct_values


def _both(paths, monkeypatch: pytest.MonkeyPatch, **kwargs):
    """(fast path volume, per-file path volume, pydicom full reads on the fast path)."""
    reads = []
    real = volume.read_dataset

    def counting(path, **kw):
        reads.append(Path(path).name)
        return real(path, **kw)

    monkeypatch.setattr(volume, "read_dataset", counting)
    fast = load_ct(paths, **kwargs)
    n_reads = len(reads)
    monkeypatch.setattr(volume, "scan_uniform", lambda paths: None)
    slow = load_ct(paths, **kwargs)
    return fast, slow, n_reads


def _assert_same(a, b) -> None:
    assert a.array.dtype == b.array.dtype == np.float32
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_array_equal(a.affine, b.affine)
    assert (a.units, a.source, a.acquisition, a.warnings) == (
        b.units,
        b.source,
        b.acquisition,
        b.warnings,
    )


def test_uniform_ct_series_read_once_by_pydicom_and_identical(tmp_path, monkeypatch) -> None:
    built = ct_series(tmp_path, n=6, rows=5, cols=4)
    assert scan_uniform(built.paths) is not None
    fast, slow, n_reads = _both(built.paths, monkeypatch)
    assert n_reads == 1  # the reference slice only; the others are read as raw pixels
    _assert_same(fast, slow)
    for k in range(6):
        np.testing.assert_array_equal(fast.array[k], ct_values(k, 5, 4) - 1024.0)
    # the source lists every slice in spatial order with its own SOPInstanceUID
    assert len(set(fast.source.sop_instance_uids)) == 6


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless])
def test_encapsulated_uniform_series(tmp_path, monkeypatch, syntax: str) -> None:
    built = ct_series(tmp_path, n=4, rows=16, cols=16)
    for path in built.paths:
        ds = dcmread(path)
        ds.compress(syntax)
        ds.save_as(path, enforce_file_format=True)
    fast, slow, n_reads = _both(built.paths, monkeypatch)
    assert n_reads == 1
    _assert_same(fast, slow)
    np.testing.assert_array_equal(fast.array[3], ct_values(3, 16, 16) - 1024.0)


def test_fractional_rescale_goes_through_float64(tmp_path, monkeypatch) -> None:
    built = ct_series(tmp_path, n=3)
    for path in built.paths:
        ds = dcmread(path)
        ds.RescaleSlope = "0.37"
        ds.RescaleIntercept = "-1000.3"
        ds.save_as(path, enforce_file_format=True)
    fast, slow, n_reads = _both(built.paths, monkeypatch)
    assert n_reads == 1
    _assert_same(fast, slow)
    expected = (ct_values(1, 4, 3).astype(np.float64) * 0.37 - 1000.3).astype(np.float32)
    np.testing.assert_array_equal(fast.array[1], expected)


def test_gap_and_duplicate_handled_as_by_the_per_file_path(tmp_path, monkeypatch) -> None:
    built = ct_series(tmp_path, n=5, skip=(2,))
    fast, slow, _ = _both(built.paths, monkeypatch, allows_gaps=True)
    _assert_same(fast, slow)
    assert fast.shape[0] == 5 and any("slice gap" in w for w in fast.warnings)


def test_values_beyond_bits_stored_leave_it_to_the_per_file_path(tmp_path, monkeypatch) -> None:
    built = ct_series(tmp_path, n=3)
    for path in built.paths:
        ds = dcmread(path)
        ds.BitsStored, ds.HighBit = 10, 9  # stored values reach 1000 + 200 + 23 > 511
        ds.save_as(path, enforce_file_format=True)
    reads = []
    real = pixels.read_dataset
    monkeypatch.setattr(volume, "read_dataset", lambda p, **kw: reads.append(p) or real(p, **kw))
    load_ct(built.paths)
    assert len(reads) == 1 + 3  # the reference, then every file on the per-file path


def test_a_differing_slice_is_not_uniform(tmp_path) -> None:
    built = ct_series(tmp_path, n=3)
    ds = dcmread(built.paths[1])
    ds.RescaleIntercept = -1000
    ds.save_as(built.paths[1], enforce_file_format=True)
    assert scan_uniform(built.paths) is None
    # and the loader still reads the series (slice by slice, each with its own rescale)
    vol = load_ct(built.paths)
    k = int(Path(built.paths[1]).stem.split("_")[1])  # slice_{k}.dcm: spatial index k
    np.testing.assert_array_equal(vol.array[k], ct_values(k, 4, 3) - 1000.0)
    other = (k + 1) % 3
    np.testing.assert_array_equal(vol.array[other], ct_values(other, 4, 3) - 1024.0)


@pytest.mark.skipif(shutil.which("dcmcjpeg") is None, reason="dcmtk (dcmcjpeg) not installed")
def test_jpeg_lossless_uniform_series_through_libjpeg_turbo(tmp_path, monkeypatch) -> None:
    """JPEG lossless (compressed by dcmtk): the fast path decodes with the libjpeg-turbo
    plugin, and the volume equals the per-file path's and the written values."""
    from pydicom.pixels import get_decoder

    from octoscan.imaging import jpeg_lossless

    built = ct_series(tmp_path / "plain", n=4, rows=16, cols=16)
    (tmp_path / "jpeg").mkdir()
    paths = []
    for path in built.paths:
        out = tmp_path / "jpeg" / path.name
        subprocess.run(["dcmcjpeg", "+e1", str(path), str(out)], check=True)
        paths.append(out)
    fast, slow, n_reads = _both(paths, monkeypatch)
    assert n_reads == 1
    assert jpeg_lossless.PLUGIN in get_decoder(JPEGLosslessSV1).available_plugins
    _assert_same(fast, slow)
    np.testing.assert_array_equal(fast.array[2], ct_values(2, 16, 16) - 1024.0)
