"""Discovery and planar loading on the shared real DICOM samples (see their MANIFEST.md).

Skipped cleanly when the shared folder is absent (e.g. a fresh clone elsewhere).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRBigEndian

from octoscan.imaging.dicom_io import read_header, transfer_syntax
from octoscan.imaging.discovery import discover
from octoscan.imaging.planar import load_planar
from octoscan.imaging.types import SeriesKind, View

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real-dicom"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} not present")

SIEMENS = "salimkanoun-Scintigraphy/poumonsReins.dcm"
NM1 = (
    "pydicom-data/JPEG2000_UNC.dcm",
    "pydicom-data/JPEG-LL.dcm",
    "pydicom/JPEG2000.dcm",
    "orthanc-tests/1.2.840.10008.1.2.4.80.dcm",
    "orthanc-tests/1.2.840.10008.1.2.5.dcm",
)
HEADLESS = "notZaki-DICOMSamples/CT_Implicit_Little_Headless_Retired.dcm"
BIG_ENDIAN = "dicomParser/CT1_UNC.explicit_big_endian.dcm"
PET_SINGLES = ("orthanc-tests/Issue94.dcm", "orthanc-tests/2020-11-16-SalimKanounAnonymization.dcm",
               "fo-dicom/GH184.dcm")  # fmt: skip


@pytest.fixture(scope="module")
def index():
    return discover(REAL)


@pytest.fixture(scope="module")
def kind_of(index):
    """Relative path -> kind of the series holding it, or 'skipped:<code>'."""
    out = {}
    for s in index.series:
        for f in s.files:
            out[str(Path(f).relative_to(REAL))] = s.kind.value
    for k in index.skipped:
        out[str(Path(k.path).relative_to(REAL))] = f"skipped:{k.code}"
    return out


def _series_of(index, rel):
    path = str(REAL / rel)
    return next(s for s in index.series if path in s.files)


def test_every_file_is_classified_or_skipped_with_a_reason(index, kind_of):
    on_disk = {str(p.relative_to(REAL)) for p in REAL.rglob("*") if p.is_file()}
    assert set(kind_of) == on_disk - {"MANIFEST.md"}
    assert index.n_non_dicom == 1  # MANIFEST.md
    assert index.n_files_seen == len(on_disk)
    for k in index.skipped:
        assert k.code and len(k.reason) > 20


def test_lu177_quantitative_spect_in_pet_object(index):
    spect = [s for s in index.series if s.kind is SeriesKind.SPECT]
    assert len(spect) == 1
    (s,) = spect
    assert s.n_images == 199 and len(s.files) == 199
    assert s.modality == "PT"
    assert s.radionuclide == "Lu-177"
    assert "single-photon emitter" in s.kind_reason
    (rt,) = [x for x in index.series if x.kind is SeriesKind.OTHER]
    assert rt.modality == "RTSTRUCT"
    assert rt.study_instance_uid == s.study_instance_uid


def test_nm1_whole_body_secondary_captures(kind_of, index):
    for rel in NM1:
        assert kind_of[rel] in ("secondary_capture", "skipped:duplicate_instance_conflict"), rel
    # JPEG2000_UNC.dcm is the decompressed lossy JPEG2000.dcm: same SOPInstanceUID
    assert kind_of["pydicom-data/JPEG2000_UNC.dcm"] == "skipped:duplicate_instance_conflict"


def test_siemens_planar_static_views_unknown(index, kind_of):
    assert kind_of[SIEMENS] == "planar_static"
    s = _series_of(index, SIEMENS)
    assert s.n_images == 2
    assert s.radionuclide == "Tc-99m"
    assert s.views == {"unknown": [(0, 0), (0, 1)]}
    assert s.view_rule.startswith("none: ")
    assert any("placeholder values, not evidence" in w for w in s.warnings)


def test_pet_and_ct_kinds(index, kind_of):
    for rel in PET_SINGLES:
        assert kind_of[rel] == "pet", rel
    for rel, kind in kind_of.items():
        if rel.startswith(("mirp-tcia-sts/", "mirp-ibsi-sts/STS_001-PET/")):
            assert kind == "pet", rel
        if rel.startswith(
            ("mirp-tcia-crlm/", "mirp-ibsi-sts/STS_001-CT/", "pydicom/dicomdirtests")
        ):
            assert kind == "ct", rel
    for rel in ("pydicom/CT_small.dcm", "pydicom-data/693_J2KR.dcm", BIG_ENDIAN):
        assert kind_of[rel] == "ct", rel
    ct = _series_of(index, "mirp-ibsi-sts/STS_001-CT/000025.dcm")
    pet = _series_of(index, "mirp-ibsi-sts/STS_001-PET/000025.dcm")
    assert len(ct.files) == len(pet.files) == 10
    assert ct.frame_of_reference_uid == pet.frame_of_reference_uid
    assert ct.study_instance_uid == pet.study_instance_uid


def test_headless_and_big_endian_ct_are_read(kind_of):
    header = read_header(REAL / HEADLESS)
    assert header.Modality == "CT" and int(header.Rows) == 512
    assert kind_of[HEADLESS] == "skipped:missing_uids"  # parsed, but it carries no UIDs
    header = read_header(REAL / BIG_ENDIAN)
    assert transfer_syntax(header) == ExplicitVRBigEndian
    assert int(header.Rows) == 512


def test_siemens_planar_loaded(index):
    images = load_planar(_series_of(index, SIEMENS))
    assert len(images) == 2
    assert [im.view for im in images] == [View.UNKNOWN, View.UNKNOWN]
    assert [im.total_counts for im in images] == [877521.0, 718967.0]
    assert sum(im.total_counts for im in images) == 1596488.0  # CountsAccumulated
    for im in images:
        assert im.counts.shape == (256, 256)
        assert im.pixel_spacing_mm == pytest.approx((2.3976, 2.3976))
        assert im.is_count_data
        assert im.acquisition.energy_windows_used == ("window 1 (128.575-149.425 keV)",)
        assert im.acquisition.frame_duration_s == pytest.approx(120.001)
    assert [im.frame_index for im in images] == [0, 1]


def test_nm1_loaded_as_one_unknown_view(index):
    captures = [s for s in index.series if s.kind is SeriesKind.SECONDARY_CAPTURE]
    assert sorted(len(s.files) for s in captures) == [1, 3]
    for s in captures:
        for im in load_planar(s):
            # 256 columns x 2.26 mm = 579 mm: one whole-body view, not two side by side
            assert im.counts.shape == (1024, 256)
            assert im.view is View.UNKNOWN
            assert not im.is_count_data
            assert im.pixel_spacing_mm == pytest.approx((2.26, 2.26))
            if "JPEG2000" not in im.source.paths[0]:  # lossless encodings
                assert im.total_counts == 3596452.0  # CountsAccumulated
