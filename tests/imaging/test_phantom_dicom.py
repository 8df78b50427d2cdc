"""Phantom DICOM: dciodvfy on every object type and variant, compression, and every variant
read back through the loaders with the right views and counts."""

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from octoscan.imaging.discovery import discover
from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.phantom import dicom_write
from octoscan.imaging.phantom.dicom_write import PLANAR_VARIANTS, check_compression
from octoscan.imaging.phantom.study import StudySpec, simulate_study, write_study
from octoscan.imaging.planar import load_planar
from octoscan.imaging.types import SeriesKind, View
from octoscan.imaging.volume import load_ct, load_spect

DCIODVFY = shutil.which("dciodvfy")
needs_dciodvfy = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (dicom3tools) not installed")

VARIANT_SETS = [
    (),
    *((v,) for v in PLANAR_VARIANTS),
    ("separate-views", "no-view-code", "no-orientation"),
    ("no-view-code", "no-orientation"),
    ("summed-windows", "scatter-window", "detector-swap"),
]


def dciodvfy_errors(path: Path) -> list[str]:
    proc = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in proc.stderr.splitlines() if line.startswith("Error")]


@pytest.fixture(scope="module")
def planar_sim():
    return simulate_study(StudySpec(seed=12, kind="planar", lesions=2, counts=4e5))


@pytest.fixture(scope="module")
def variant_dirs(planar_sim, tmp_path_factory):
    out = {}
    for variants in VARIANT_SETS:
        d = tmp_path_factory.mktemp("variant")
        write_study(replace(planar_sim, spec=replace(planar_sim.spec, variants=variants)), d)
        out[variants] = d
    return out


@pytest.fixture(scope="module")
def tomo_dirs(tmp_path_factory):
    dirs = {}
    for kind in ("all", "pet-ct"):
        d = tmp_path_factory.mktemp(kind)
        write_study(simulate_study(StudySpec(seed=13, kind=kind, lesions=1, ct_slices=2)), d)
        dirs[kind] = d
    return dirs


@pytest.fixture(scope="module")
def small_all():
    return simulate_study(StudySpec(seed=14, kind="all", lesions=1, ct_slices=2, counts=3e5))


@needs_dciodvfy
@pytest.mark.parametrize("variants", VARIANT_SETS, ids=lambda v: "+".join(v) or "default")
def test_whole_body_objects_pass_dciodvfy(variant_dirs, variants):
    files = sorted(variant_dirs[variants].rglob("*.dcm"))
    assert files
    for f in files:
        assert dciodvfy_errors(f) == [], f


@needs_dciodvfy
@pytest.mark.parametrize("folder", ["NM_SPECT", "CT", "PET"])
def test_tomographic_objects_pass_dciodvfy(tomo_dirs, folder):
    root = tomo_dirs["pet-ct" if folder == "PET" else "all"]
    for f in sorted((root / folder).glob("*.dcm")):
        assert dciodvfy_errors(f) == [], f
    if folder == "CT":
        assert dciodvfy_errors(next((tomo_dirs["pet-ct"] / "CT").glob("*.dcm"))) == []


def _planar_images(root):
    index = discover(root)
    assert index.skipped == ()
    entries = [s for s in index.series if s.kind is SeriesKind.PLANAR_WHOLE_BODY]
    return [im for e in entries for im in load_planar(e)]


@pytest.mark.parametrize("variants", VARIANT_SETS, ids=lambda v: "+".join(v) or "default")
def test_variants_read_back_with_views_and_counts(planar_sim, variant_dirs, variants):
    sim = planar_sim.planar[0].simulation
    images = _planar_images(variant_dirs[variants])
    expected = {View.ANTERIOR: sim.anterior_counts, View.POSTERIOR: sim.posterior_counts}
    n_views = 1 if "anterior-only" in variants else 2
    assert len(images) == n_views
    if variants == ("no-view-code", "no-orientation"):
        # no evidence of the view in the object: a reader may say unknown, never the wrong one
        for im in images:
            if im.view is not View.UNKNOWN:
                assert np.array_equal(im.counts, expected[im.view])
        return
    assert {im.view for im in images} == set(list(expected)[:n_views])
    for im in images:
        assert np.array_equal(im.counts, expected[im.view]), (im.view, im.view_rule)
        assert im.pixel_spacing_mm == (2.4, 2.4)
        assert im.acquisition.radionuclide_code == "SCT 56609000"
        assert im.acquisition.injected_activity_mbq == pytest.approx(
            planar_sim.activity.injected_activity_mbq
        )
    if "no-view-code" not in variants:
        assert {im.view_rule for im in images} == {"ViewCodeSequence"}


def test_frames_hold_windows_and_detectors(variant_dirs, planar_sim):
    sim = planar_sim.planar[0].simulation
    ds = pydicom.dcmread(next(variant_dirs[()].rglob("*.dcm")))
    assert list(ds.EnergyWindowVector) == [1, 1, 2, 2]
    assert list(ds.DetectorVector) == [1, 2, 1, 2]
    assert [d.ViewCodeSequence[0].CodeValue for d in ds.DetectorInformationSequence] == [
        "399321004",
        "399001007",
    ]
    frames = ds.pixel_array
    assert np.array_equal(frames[0], sim.anterior_windows[0])
    assert np.array_equal(frames[3], sim.posterior_windows[1])
    rph = ds.RadiopharmaceuticalInformationSequence[0]
    assert rph.RadiopharmaceuticalCodeSequence[0].CodeValue == "446800006"
    assert float(rph.RadionuclideTotalDose) == pytest.approx(
        planar_sim.activity.injected_activity_mbq
    )
    assert ds.PatientName == "PHANTOM^12"
    swap = pydicom.dcmread(next(variant_dirs[("detector-swap",)].rglob("*.dcm")))
    assert swap.DetectorInformationSequence[0].ViewCodeSequence[0].CodeMeaning == "posterior"
    scatter = pydicom.dcmread(next(variant_dirs[("scatter-window",)].rglob("*.dcm")))
    assert scatter.NumberOfFrames == 6 and scatter.NumberOfEnergyWindows == 3


@pytest.mark.parametrize(
    ("name", "uid"), [("rle", RLELossless), ("jpeg-ls", JPEGLSLossless), ("j2k", JPEG2000Lossless)]
)
def test_compressed_studies_are_lossless_and_valid(tmp_path, small_all, name, uid):
    sim = small_all
    write_study(replace(sim, spec=replace(sim.spec, compress=name)), tmp_path)
    index = discover(tmp_path)
    for entry in index.series:
        for f in entry.files:
            assert pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID == uid
            if DCIODVFY:
                assert dciodvfy_errors(Path(f)) == [], f
    planar = {im.view: im for im in _planar_images(tmp_path)}
    assert np.array_equal(planar[View.ANTERIOR].counts, sim.planar[0].simulation.anterior_counts)
    spect = load_spect(next(e for e in index.series if e.kind is SeriesKind.SPECT).files)
    assert np.array_equal(spect.array, np.clip(np.rint(sim.spect.array), 0, 65535))
    ct = load_ct(next(e for e in index.series if e.kind is SeriesKind.CT).files)
    assert np.array_equal(ct.array, np.clip(np.rint(sim.ct.array + 1024), 0, 4095) - 1024)


def test_compression_choices_and_refusal(monkeypatch):
    assert check_compression(None) == pydicom.uid.ExplicitVRLittleEndian
    with pytest.raises(InvalidInputError, match="compression 'lzw' unknown; expected one of"):
        check_compression("lzw")

    class _NoEncoder:
        is_available = False
        missing_dependencies = ("pylibjpeg - requires openjpeg",)

    monkeypatch.setattr(dicom_write, "get_encoder", lambda uid: _NoEncoder())
    with pytest.raises(InvalidInputError, match=r"'j2k' .* needs an encoder that is not installed"):
        check_compression("j2k")


def test_variant_conflicts_are_refused():
    with pytest.raises(InvalidInputError, match="'anterior-only' and 'separate-views' exclude"):
        dicom_write.check_variants(["anterior-only", "separate-views"])
    assert dicom_write.check_variants(["no-view-code", "no-view-code"]) == ("no-view-code",)


def test_uids_are_deterministic_and_valid():
    a = dicom_write.phantom_uid("1", "study")
    assert a == dicom_write.phantom_uid("1", "study") != dicom_write.phantom_uid("2", "study")
    assert a.startswith("2.25.") and len(a) <= 64 and pydicom.uid.UID(a).is_valid


def test_third_party_reader_simpleitk_reads_the_ct(tomo_dirs):
    sitk = pytest.importorskip("SimpleITK")
    folder = str(tomo_dirs["all"] / "CT")
    reader = sitk.ImageSeriesReader()
    uid = reader.GetGDCMSeriesIDs(folder)
    assert len(uid) == 1
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder, uid[0]))
    image = reader.Execute()
    assert image.GetSize() == (256, 256, 2)
    assert image.GetSpacing() == pytest.approx((600 / 256, 600 / 256, 5.0))
    hu = sitk.GetArrayFromImage(image)
    assert hu.min() == pytest.approx(-1000, abs=60) and hu.max() > 300
