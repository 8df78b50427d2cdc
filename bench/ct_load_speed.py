"""Benchmark: loading a CT series into a volume, octoscan against its peers.

    .venv/bin/python bench/ct_load_speed.py [--slices 100,300] [--repeats 3] [--work DIR]

Data: ``octoscan phantom --kind spect-ct --ct-slices N`` writes a 256 x 256 CT; each slice is
written again at 512 x 512 (every pixel repeated 2 x 2, PixelSpacing halved, the origin moved
to the new first pixel centre: same field of view, same UIDs) with pydicom, uncompressed
(explicit VR little endian) into ``WORK/ct/ctN-512/plain``, and JPEG-lossless copies (process
14 SV1, dcmtk ``dcmcjpeg +e1`` on each file) into ``.../jpegll`` (skipped with a message when
dcmcjpeg is missing). Peers, run round-robin after one warm-up pass (warm page cache):

* ``octoscan``: :func:`octoscan.imaging.volume.load_ct` (checks, sort along the normal, HU);
* ``sitk``: SimpleITK ``ImageSeriesReader`` (GDCM series file names for the series UID,
  Execute, GetArrayFromImage);
* ``dcm2niix``: ``dcm2niix -z n`` into a fresh temporary folder (a process per run; skipped
  with a message when missing);
* ``naive_pydicom``: ``dcmread`` + ``pixel_array`` of each file, rescale to HU, sort by IPP,
  ``np.stack``.

Printed: milliseconds per slice for each peer and variant, and the ratio to octoscan. Targets
of the issue: octoscan no slower than sitk, within 1.5x of dcm2niix.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    emit_json,
    median,
    print_table,
    run_octoscan,
    time_interleaved,
    tool,
    work_dir,
)


def _upscale_slice(src: Path, dst: Path) -> None:
    ds = pydicom.dcmread(src)
    arr = ds.pixel_array
    big = np.repeat(np.repeat(arr, 2, axis=0), 2, axis=1)
    dy, dx = (float(v) for v in ds.PixelSpacing)
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    ds.ImagePositionPatient = [f"{x - dx / 4:.6f}", f"{y - dy / 4:.6f}", f"{z:.6f}"]
    ds.PixelSpacing = [f"{dy / 2:.8f}", f"{dx / 2:.8f}"]
    ds.Rows, ds.Columns = big.shape
    ds.PixelData = np.ascontiguousarray(big, dtype=arr.dtype).tobytes()
    ds.save_as(dst, enforce_file_format=True)


def generate(work: Path, n_slices: int, *, jpeg: bool) -> dict[str, Path]:
    """{variant: folder} of a 512 x 512 CT series of ``n_slices``; reused when complete."""
    base = work / f"ct{n_slices}-512"
    plain, jpegll = base / "plain", base / "jpegll"
    if not (base / "plain.complete").exists():
        phantom = base / "phantom"
        if phantom.exists():
            shutil.rmtree(phantom)
        run_octoscan(["phantom", str(phantom), "--kind", "spect-ct", "--ct-slices", str(n_slices)])
        plain.mkdir(parents=True, exist_ok=True)
        for src in sorted((phantom / "CT").iterdir()):
            _upscale_slice(src, plain / src.name)
        shutil.rmtree(phantom)
        (base / "plain.complete").write_text("ok\n")
    out = {"plain": plain}
    if jpeg:
        if not (base / "jpegll.complete").exists():
            jpegll.mkdir(parents=True, exist_ok=True)
            for src in sorted(plain.iterdir()):
                subprocess.run(["dcmcjpeg", "+e1", str(src), str(jpegll / src.name)], check=True)
            (base / "jpegll.complete").write_text("ok\n")
        out["jpegll"] = jpegll
    return out


def _files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir())


def _octoscan(folder: Path, n: int) -> None:
    from octoscan.imaging.volume import load_ct

    volume = load_ct(_files(folder))
    if volume.array.shape != (n, 512, 512):
        raise RuntimeError(f"load_ct gave {volume.array.shape}; expected ({n}, 512, 512)")


def _sitk(folder: Path, n: int) -> None:
    import SimpleITK as sitk  # noqa: N813

    reader = sitk.ImageSeriesReader()
    (uid,) = reader.GetGDCMSeriesIDs(str(folder))
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), uid))
    array = sitk.GetArrayFromImage(reader.Execute())
    if array.shape != (n, 512, 512):
        raise RuntimeError(f"SimpleITK gave {array.shape}; expected ({n}, 512, 512)")


def _dcm2niix(folder: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-dcm2niix-") as out:
        subprocess.run(
            ["dcm2niix", "-z", "n", "-b", "n", "-o", out, "-f", "ct", str(folder)],
            check=True,
            capture_output=True,
        )
        if not list(Path(out).glob("*.nii")):
            raise RuntimeError(f"dcm2niix wrote no NIfTI for {folder}")


def _naive(folder: Path, n: int) -> None:
    planes = []
    for path in _files(folder):
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        planes.append((float(ds.ImagePositionPatient[2]), hu.astype(np.float32)))
    planes.sort(key=lambda p: p[0])
    array = np.stack([p[1] for p in planes])
    if array.shape != (n, 512, 512):
        raise RuntimeError(f"naive loop gave {array.shape}; expected ({n}, 512, 512)")


def measure(slices: list[int], work: Path, *, repeats: int) -> dict[str, object]:
    have_jpeg = tool("dcmcjpeg") is not None
    have_niix = tool("dcm2niix") is not None
    notes = []
    if not have_jpeg:
        notes.append("dcmcjpeg not found (dcmtk): JPEG-lossless variant skipped")
    if not have_niix:
        notes.append("dcm2niix not found (apt-get install dcm2niix): that peer skipped")
    results = []
    for n in slices:
        for variant, folder in generate(work, n, jpeg=have_jpeg).items():
            peers = {
                "octoscan": lambda f=folder, n=n: _octoscan(f, n),
                "sitk": lambda f=folder, n=n: _sitk(f, n),
                "naive_pydicom": lambda f=folder, n=n: _naive(f, n),
            }
            if have_niix:
                peers["dcm2niix"] = lambda f=folder: _dcm2niix(f)
            times = time_interleaved(peers, repeats=repeats)
            ms = {name: median(t) * 1000.0 / n for name, t in times.items()}
            results.append(
                {
                    "slices": n,
                    "variant": variant,
                    "ms_per_slice": {k: round(v, 3) for k, v in ms.items()},
                    "ratio_to_octoscan": {k: round(v / ms["octoscan"], 2) for k, v in ms.items()},
                }
            )
    return {"runs": results, "repeats": repeats, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", default="100,300", help="series lengths")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="data folder (reused)")
    args = parser.parse_args(argv)
    slices = [int(v) for v in args.slices.split(",")]
    figures = measure(slices, work_dir(args.work, "ct"), repeats=args.repeats)
    for note in figures["notes"]:  # type: ignore[union-attr]
        print(note)
    rows = []
    for run in figures["runs"]:  # type: ignore[union-attr]
        for peer, ms in run["ms_per_slice"].items():
            rows.append([run["slices"], run["variant"], peer, ms, run["ratio_to_octoscan"][peer]])
    print_table(["slices", "variant", "peer", "ms/slice", "x octoscan"], rows)
    print("targets: octoscan no slower than sitk (sitk ratio >= 1); within 1.5x of dcm2niix")
    emit_json("ct_load_speed", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
