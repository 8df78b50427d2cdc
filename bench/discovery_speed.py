"""Benchmark: header discovery of a folder of DICOM files, octoscan against its peers.

    .venv/bin/python bench/discovery_speed.py [--sizes 1000,5000] [--repeats 3] [--work DIR]
                                              [--sitk]

Data: one phantom CT slice (``octoscan phantom --kind spect-ct``) cropped to 64 x 64 pixels is
written again and again with distinct Study/Series/SOP Instance UIDs (100 files per series,
500 per study) and positions, into ``WORK/discovery/files-N`` for each folder size N (reused
when complete). Peers, run round-robin on each folder after one warm-up pass (warm page cache):

* ``octoscan``: :func:`octoscan.imaging.discovery.discover` (walk, header read, checks,
  classification, grouping into series);
* ``pydicom_header``: ``dcmread(path, stop_before_pixels=True)`` of every file;
* ``pydicom_full``: ``dcmread(path)`` of every file (pixel data read, not decoded);
* ``read_4k``: the first 4 KiB of every file (the I/O floor);
* ``sitk_gdcm`` (``--sitk``): SimpleITK's GDCM series discovery (series IDs, then file names).

Each peer lists the folder itself (``os.walk``) inside its timed call. The per-file cost is the
slope between the two folder sizes (start-up and fixed costs cancel): (t(N2) - t(N1)) / (N2 - N1).
Ratios are given against octoscan; the issue's target is octoscan >= 5x faster per file than
``pydicom_header`` and (goal) within 2x of ``read_4k``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import PYDICOM_ROOT_UID

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    dicom_files,
    emit_json,
    median,
    print_table,
    run_octoscan,
    time_interleaved,
    work_dir,
)

FILES_PER_SERIES = 100
FILES_PER_STUDY = 500
CROP = 64  # pixels kept per side: headers dominate the file, as in small NM/CT objects


def _template(work: Path) -> pydicom.Dataset:
    phantom = work / "phantom"
    if not (phantom / "CT").is_dir():
        run_octoscan(["phantom", str(phantom), "--kind", "spect-ct", "--ct-slices", "4"])
    path = sorted((phantom / "CT").iterdir())[0]
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    r0 = (arr.shape[0] - CROP) // 2
    c0 = (arr.shape[1] - CROP) // 2
    ds.PixelData = np.ascontiguousarray(arr[r0 : r0 + CROP, c0 : c0 + CROP]).tobytes()
    ds.Rows, ds.Columns = CROP, CROP
    return ds


def generate(folder: Path, n: int, template: pydicom.Dataset) -> None:
    """``n`` files in ``folder``, reused when the folder already holds ``n`` files."""
    marker = folder.with_name(folder.name + ".complete")
    if marker.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    root = f"{PYDICOM_ROOT_UID}77.{n}"
    z0 = float(template.ImagePositionPatient[2])
    ds = template
    for i in range(n):
        study, series, k = i // FILES_PER_STUDY, i // FILES_PER_SERIES, i % FILES_PER_SERIES
        ds.StudyInstanceUID = f"{root}.1.{study}"
        ds.SeriesInstanceUID = f"{root}.2.{series}"
        ds.SOPInstanceUID = f"{root}.3.{i}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        z = z0 - 5.0 * k
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], z]
        ds.SliceLocation = z
        sub = folder / f"s{series:03d}"
        sub.mkdir(exist_ok=True)
        ds.save_as(sub / f"IM{k:04d}.dcm", enforce_file_format=True)
    marker.write_text("ok\n")


def _octoscan(folder: Path, expected_series: int) -> None:
    from octoscan.imaging.discovery import discover

    index = discover(folder)
    if len(index.series) != expected_series or index.skipped:
        raise RuntimeError(
            f"discover({folder}) found {len(index.series)} series and "
            f"{len(index.skipped)} skipped files; expected {expected_series} and 0"
        )


def _pydicom(folder: Path, *, header_only: bool) -> None:
    for path in dicom_files(folder):
        pydicom.dcmread(path, stop_before_pixels=header_only)


def _read_4k(folder: Path) -> None:
    for path in dicom_files(folder):
        with open(path, "rb") as fp:
            fp.read(4096)


def _sitk(folder: Path) -> None:
    import SimpleITK as sitk  # noqa: N813

    reader = sitk.ImageSeriesReader
    for dirpath in sorted(p for p in folder.iterdir() if p.is_dir()):
        for uid in reader.GetGDCMSeriesIDs(str(dirpath)):
            reader.GetGDCMSeriesFileNames(str(dirpath), uid)


def measure(sizes: list[int], work: Path, *, repeats: int, sitk: bool) -> dict[str, object]:
    template = _template(work)
    seconds: dict[int, dict[str, float]] = {}
    for n in sizes:
        folder = work / f"files-{n}"
        generate(folder, n, template)
        peers = {
            "octoscan": lambda f=folder, n=n: _octoscan(f, n // FILES_PER_SERIES),
            "pydicom_header": lambda f=folder: _pydicom(f, header_only=True),
            "pydicom_full": lambda f=folder: _pydicom(f, header_only=False),
            "read_4k": lambda f=folder: _read_4k(f),
        }
        if sitk:
            peers["sitk_gdcm"] = lambda f=folder: _sitk(f)
        times = time_interleaved(peers, repeats=repeats)
        seconds[n] = {name: median(t) for name, t in times.items()}
    lo, hi = sizes[0], sizes[-1]
    per_file_us = {
        name: (seconds[hi][name] - seconds[lo][name]) / (hi - lo) * 1e6 for name in seconds[hi]
    }
    octo = per_file_us["octoscan"]
    return {
        "sizes": sizes,
        "median_s": {str(n): {k: round(v, 3) for k, v in s.items()} for n, s in seconds.items()},
        "per_file_us": {k: round(v, 1) for k, v in per_file_us.items()},
        "speedup_vs_pydicom_header": round(per_file_us["pydicom_header"] / octo, 2),
        "ratio_to_floor": round(octo / per_file_us["read_4k"], 2),
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000", help="two folder sizes (files)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="data folder (reused)")
    parser.add_argument("--sitk", action="store_true", help="add SimpleITK/GDCM discovery")
    args = parser.parse_args(argv)
    sizes = sorted(int(v) for v in args.sizes.split(","))
    if len(sizes) != 2 or sizes[0] == sizes[1]:
        parser.error("--sizes needs two different folder sizes, e.g. 1000,5000")
    work = work_dir(args.work, "discovery")
    figures = measure(sizes, work, repeats=args.repeats, sitk=args.sitk)
    per_file = figures["per_file_us"]
    octo = per_file["octoscan"]  # type: ignore[index]
    rows = []
    for name, us in per_file.items():  # type: ignore[union-attr]
        rows.append(
            [
                name,
                *(figures["median_s"][str(n)][name] for n in sizes),  # type: ignore[index]
                us,
                round(us / octo, 2),
            ]
        )
    print_table(["peer", *(f"{n} files s" for n in sizes), "us/file (slope)", "x octoscan"], rows)
    print(
        f"octoscan per file: {figures['speedup_vs_pydicom_header']}x faster than "
        f"pydicom header-only (target >= 5x); {figures['ratio_to_floor']}x the 4 KiB read "
        "floor (goal <= 2x)"
    )
    emit_json("discovery_speed", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
