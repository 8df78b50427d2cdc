"""Volume loaders on the real DICOM samples in ../shared/data/real-dicom (see its MANIFEST.md).

Expected values (IPPs, rescale, spacing) are read here with pydicom, independently of the
loaders. Skipped cleanly when the folder is absent.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from octoscan.imaging.types import SeriesKind, Volume
from octoscan.imaging.volume import load_ct, load_pet, load_spect

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-dicom"
if not REAL.is_dir():
    REAL = Path("/work/shared/data/real-dicom")
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"real DICOM samples absent ({REAL})")


def _files(relative: str) -> list[Path]:
    folder = REAL / relative
    if not folder.exists():
        pytest.skip(f"{folder} absent")
    return sorted(p for p in folder.iterdir() if p.is_file())


def _header(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-conformant values in some real files
        return dcmread(path, force=True)


def _ipps_sorted_by_z(paths: list[Path]) -> np.ndarray:
    ipps = np.array([[float(v) for v in _header(p).ImagePositionPatient] for p in paths])
    return ipps[np.argsort(ipps[:, 2])]


def _assert_planes_at(volume: Volume, ipps: np.ndarray) -> None:
    for k, ipp in enumerate(ipps):
        np.testing.assert_allclose(volume.index_to_lps(np.array([k, 0, 0])), ipp, atol=1e-3)


# ---------------------------------------------------------------------------- Lu-177 SPECT


@pytest.fixture(scope="module")
def lu177() -> tuple[Volume, list[Path]]:
    paths = _files("mirp-umich-lu177-spect/SCAN_001/image")
    return load_spect(paths), paths


def test_lu177_spect_in_pet_iod(lu177: tuple[Volume, list[Path]]) -> None:
    volume, paths = lu177
    assert len(paths) == 199
    assert volume.kind is SeriesKind.SPECT
    assert volume.units == "Bq/mL"
    assert volume.shape == (199, 256, 256)
    assert volume.acquisition.radionuclide == "Lu-177"
    assert volume.acquisition.manufacturer == "SIEMENS NM"
    assert volume.acquisition.injected_activity_mbq == pytest.approx(7210.4256, rel=1e-6)
    assert volume.acquisition.hours_post_injection == pytest.approx(3.7412, abs=1e-3)
    # DecayCorrection ADMIN: SUV factor = 92987 g / 7210425599.64 Bq, no decay
    assert volume.suv_factor == pytest.approx(92987 / 7210425599.6395, rel=1e-9)


def test_lu177_geometry_against_ipps(lu177: tuple[Volume, list[Path]]) -> None:
    volume, paths = lu177
    ipps = _ipps_sorted_by_z(paths)
    _assert_planes_at(volume, ipps)
    step = float(np.median(np.diff(ipps[:, 2])))
    assert volume.spacing_mm == pytest.approx((step, 1.95313, 1.95313), abs=1e-3)
    np.testing.assert_allclose(volume.affine[:3, 3], ipps[0], atol=1e-6)


def test_lu177_values_are_rescaled_bq_per_ml(lu177: tuple[Volume, list[Path]]) -> None:
    volume, paths = lu177
    ipps = _ipps_sorted_by_z(paths)
    top = next(p for p in paths if float(_header(p).ImagePositionPatient[2]) == ipps[-1, 2])
    ds = _header(top)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(volume.array[-1], expected, rtol=1e-6)


# ---------------------------------------------------------------------------- PET/CT pair


def test_ibsi_pet_ct_pair_shares_frame_of_reference() -> None:
    ct = load_ct(_files("mirp-ibsi-sts/STS_001-CT"))
    pet = load_pet(_files("mirp-ibsi-sts/STS_001-PET"))
    assert ct.kind is SeriesKind.CT and ct.units == "HU"
    assert pet.kind is SeriesKind.PET
    assert ct.source.frame_of_reference_uid == pet.source.frame_of_reference_uid
    assert ct.shape == (10, 202, 198) and pet.shape == (10, 43, 41)
    np.testing.assert_allclose(ct.affine[2, 3], pet.affine[2, 3], atol=0.05)  # matching z
    _assert_planes_at(ct, _ipps_sorted_by_z(_files("mirp-ibsi-sts/STS_001-CT")))


def test_ibsi_gml_pet_is_suv_without_rescaling() -> None:
    paths = _files("mirp-ibsi-sts/STS_001-PET")
    pet = load_pet(paths)
    assert pet.units == "SUVbw" and pet.suv_factor == 1.0
    ipps = _ipps_sorted_by_z(paths)
    _assert_planes_at(pet, ipps)
    for path in paths:
        ds = _header(path)
        k = int(np.argmin(np.abs(ipps[:, 2] - float(ds.ImagePositionPatient[2]))))
        expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_allclose(pet.array[k], expected, rtol=1e-6)


def test_tcia_sts_pet_in_suv() -> None:
    paths = _files("mirp-tcia-sts/STS_001-FDG_PET")
    pet = load_pet(paths)
    assert pet.units == "SUVbw" and pet.shape == (12, 128, 128)
    assert pet.suv_factor is not None and 1e-4 < pet.suv_factor < 1e-3
    _assert_planes_at(pet, _ipps_sorted_by_z(paths))
    assert float(pet.array.min()) >= 0.0 and float(pet.array.max()) < 50.0  # plausible SUVs


def test_crlm_ct_five_mm_spacing() -> None:
    paths = _files("mirp-tcia-crlm/CRLM-CT-1004")
    ct = load_ct(paths)
    assert ct.shape == (6, 512, 512)
    assert ct.spacing_mm[0] == pytest.approx(5.0, abs=1e-3)
    _assert_planes_at(ct, _ipps_sorted_by_z(paths))
    assert float(ct.array.min()) == -3024.0  # padding outside the field of view, in HU


def test_pydicom_ct5n() -> None:
    paths = _files("pydicom/dicomdirtests-CT5N")
    ct = load_ct(paths)
    assert ct.shape == (5, 16, 16)
    _assert_planes_at(ct, _ipps_sorted_by_z(paths))


# ---------------------------------------------------------------------------- single slices


@pytest.mark.parametrize(
    ("name", "units", "size"),
    [
        ("orthanc-tests/Issue94.dcm", "Bq/mL", 169),  # Philips, implicit VR, no weight
        ("orthanc-tests/2020-11-16-SalimKanounAnonymization.dcm", "SUVbw", 200),  # Siemens
        ("fo-dicom/GH184.dcm", "SUVbw", 128),  # GE, JPEG lossless
    ],
)
def test_single_pet_slices(name: str, units: str, size: int) -> None:
    path = REAL / name
    if not path.exists():
        pytest.skip(f"{path} absent")
    pet = load_pet([path])
    assert pet.kind is SeriesKind.PET
    assert pet.shape == (1, size, size)
    assert pet.units == units
    ds = _header(path)
    np.testing.assert_allclose(pet.affine[:3, 3], [float(v) for v in ds.ImagePositionPatient])
    if units == "Bq/mL":
        assert any("PatientWeight missing" in w for w in pet.warnings)


@pytest.mark.parametrize(
    "name",
    [
        "dicomParser/CT1_UNC.explicit_big_endian.dcm",
        "pydicom-data/693_J2KR.dcm",
        "pydicom/CT_small.dcm",
    ],
)
def test_single_ct_slices(name: str) -> None:
    path = REAL / name
    if not path.exists():
        pytest.skip(f"{path} absent")
    ct = load_ct([path])
    assert ct.kind is SeriesKind.CT and ct.units == "HU"
    assert ct.shape == (1, 512, 512) or ct.shape == (1, 128, 128)
    ds = _header(path)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(ct.array[0], expected)


def test_headless_acr_nema_ct_loaded_with_reasons() -> None:
    path = REAL / "notZaki-DICOMSamples/CT_Implicit_Little_Headless_Retired.dcm"
    if not path.exists():
        pytest.skip(f"{path} absent")
    ct = load_ct([path])
    text = " | ".join(ct.warnings)
    assert "MONOCHROME2 assumed" in text
    assert "ACR-NEMA retired ImagePosition/ImageOrientation used" in text
    np.testing.assert_allclose(ct.affine[:3, 3], [-80.30762, -111.3076, 52.0], atol=1e-4)
    assert ct.spacing_mm == pytest.approx((2.0, 0.384766, 0.384766))
    ds = _header(path)  # implicit VR little endian, unsigned 16-bit, intercept -1024
    stored = np.frombuffer(ds.PixelData, dtype="<u2").reshape(512, 512)
    np.testing.assert_allclose(ct.array[0], stored.astype(np.float64) - 1024.0)
