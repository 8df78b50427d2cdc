"""Discovery: walk, grouping by UID, classification, skipped files with stable codes."""

from __future__ import annotations

import os

import pytest

from octoscan.imaging import dicom_io
from octoscan.imaging.discovery import (
    OCTOSCAN_SERIES_PREFIX,
    TOMO_NOT_SCORED,
    classify_kind,
    discover,
)
from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.types import SeriesKind
from tests.imaging import nm_builders as b


def _by_kind(index):
    out = {}
    for s in index.series:
        out.setdefault(s.kind, []).append(s)
    return out


def _skipped(index):
    return {os.path.basename(k.path): k.code for k in index.skipped}


@pytest.fixture
def mixed_folder(tmp_path):
    """One folder with every kind, broken files and duplicates."""
    root = tmp_path / "in"
    windows = [
        b.Window(*b.IN111_WINDOWS[0]),
        b.Window(*b.SCATTER_BY_NAME),
        b.Window(*b.IN111_WINDOWS[1]),
    ]
    wb = b.nm_planar(windows=windows)
    b.write(wb, root / "nm" / "wb.dcm")
    b.write(b.nm_tomo(), root / "nm" / "tomo_proj")
    b.write(b.nm_recon_tomo_header(), root / "nm" / "recon")
    b.write(b.sc_whole_body(), root / "sc" / "capture.dcm")
    for i in (1, 2, 3):
        b.write(b.ct_slice(instance=i), root / "ct" / f"slice{i}")
    b.write(b.pet_slice(), root / "pet" / "pet1.dcm")
    b.write(
        b.pet_slice(
            series_key="spect-in-pet",
            manufacturer="SIEMENS NM",
            nuclide_code=("447553000", "SCT", "^177^Lutetium"),
        ),
        root / "pet" / "q",
    )
    b.write(b.rtstruct(), root / "rt.dcm")
    b.write(b.ct_slice(series_key="bare"), root / "headless", preamble=False)
    b.write_dicomdir([b.ct_slice(series_key="dir", instance=9)], root / "set")
    b.truncate(b.write(b.ct_slice(series_key="cut"), root / "cut.dcm"), drop_bytes=4)
    b.write_text(root / "notes.txt")
    b.write_text(root / "fake.dcm")
    b.copy(root / "nm" / "wb.dcm", root / "zz_copies" / "same.dcm")
    changed = b.nm_planar(windows=windows)
    changed.SeriesDescription = "edited copy"
    b.write(changed, root / "zz_copies" / "changed.dcm")
    own = b.ct_slice(series_key="own")
    own.SeriesDescription = f"{OCTOSCAN_SERIES_PREFIX} overlay"
    b.write(own, root / "out" / "overlay.dcm")
    nouid = b.ct_slice(series_key="nouid")
    del nouid.SeriesInstanceUID
    b.write(nouid, root / "nouid.dcm")
    return root


def test_every_kind_classified(mixed_folder):
    index = discover(mixed_folder)
    kinds = _by_kind(index)
    assert set(kinds) == {
        SeriesKind.PLANAR_WHOLE_BODY,
        SeriesKind.TOMO_PROJECTIONS,
        SeriesKind.SPECT,
        SeriesKind.SECONDARY_CAPTURE,
        SeriesKind.CT,
        SeriesKind.PET,
        SeriesKind.OTHER,
    }
    (wb,) = kinds[SeriesKind.PLANAR_WHOLE_BODY]
    assert wb.files == (str(mixed_folder / "nm" / "wb.dcm"),)
    assert wb.n_images == 6  # 2 detectors x 3 windows
    assert wb.views == {"anterior": [(0, 0), (0, 2)], "posterior": [(0, 3), (0, 5)]}
    assert wb.view_rule == "ViewCodeSequence"
    assert wb.radionuclide == "In-111"
    assert wb.hours_post_injection == pytest.approx(24.0)
    assert wb.patient_id == b.PATIENT_ID
    assert any("SC1 (120-140 keV) not summed" in w for w in wb.warnings)
    (tomo,) = kinds[SeriesKind.TOMO_PROJECTIONS]
    assert TOMO_NOT_SCORED in tomo.kind_reason
    spect = {s.modality: s for s in kinds[SeriesKind.SPECT]}
    assert "RECON TOMO" in spect["NM"].kind_reason
    assert "Lu-177 is a single-photon emitter" in spect["PT"].kind_reason
    (pet,) = kinds[SeriesKind.PET]
    assert pet.radionuclide == "F-18"
    (sc,) = kinds[SeriesKind.SECONDARY_CAPTURE]
    assert "NM whole-body image stored as Secondary Capture" in sc.kind_reason
    assert sc.views == {"unknown": [(0, 0)]}
    cts = {len(s.files): s for s in kinds[SeriesKind.CT]}
    assert sorted(cts) == [1, 3]  # the 3-slice series and the headless file
    assert cts[3].n_images == 3
    (other,) = kinds[SeriesKind.OTHER]
    assert other.modality == "RTSTRUCT"


def test_skipped_files_have_codes_and_non_dicom_is_counted(mixed_folder):
    index = discover(mixed_folder)
    assert _skipped(index) == {
        "DICOMDIR": "dicomdir",
        "cut.dcm": "truncated",
        "fake.dcm": "not_dicom",
        "same.dcm": "duplicate_instance",
        "changed.dcm": "duplicate_instance_conflict",
        "overlay.dcm": "octoscan_output",
        "nouid.dcm": "missing_uids",
    }
    assert index.n_non_dicom == 1  # notes.txt
    # every file is accounted for exactly once
    in_series = sum(len(s.files) for s in index.series)
    assert in_series + len(index.skipped) + index.n_non_dicom == index.n_files_seen
    reasons = {os.path.basename(k.path): k.reason for k in index.skipped}
    assert "identical bytes as" in reasons["same.dcm"]
    assert "different content: the first file is kept" in reasons["changed.dcm"]


def test_dicomdir_referenced_file_found_by_walk(mixed_folder):
    index = discover(mixed_folder)
    found = [s for s in index.series if s.series_instance_uid == b.uid("series", "dir")]
    assert len(found) == 1
    assert "IM" in os.path.basename(found[0].files[0])


def test_grouping_uses_uids_not_folders(tmp_path):
    b.write(b.ct_slice(instance=1), tmp_path / "a" / "x.dcm")
    b.write(b.ct_slice(instance=2), tmp_path / "b" / "x.dcm")  # same series, other folder
    b.write(b.ct_slice(series_key="other", instance=1), tmp_path / "a" / "y.dcm")
    index = discover(tmp_path)
    sizes = sorted(len(s.files) for s in index.series)
    assert sizes == [1, 2]
    assert len(index.studies()) == 1


def test_symlink_loops_are_safe(tmp_path):
    b.write(b.ct_slice(), tmp_path / "d" / "ct.dcm")
    os.symlink(tmp_path, tmp_path / "d" / "loop")
    index = discover(tmp_path, follow_symlinks=True)
    assert [len(s.files) for s in index.series] == [1]
    assert index.skipped == ()
    index = discover(tmp_path)
    assert index.n_files_seen == 1


def test_inconsistent_file_in_series_is_skipped_and_sizes_warned(tmp_path):
    for i in (1, 2):
        b.write(b.ct_slice(instance=i), tmp_path / f"ct{i}")
    b.write(b.ct_slice(instance=3, shape=(6, 6)), tmp_path / "ct3")
    # same SeriesInstanceUID as the CT, but an RTSTRUCT
    odd = b.rtstruct(series_key="ct")
    odd.SOPInstanceUID = odd.file_meta.MediaStorageSOPInstanceUID = b.uid("rt-instance")
    b.write(odd, tmp_path / "rt")
    index = discover(tmp_path)
    (series,) = index.series
    assert series.kind is SeriesKind.CT
    assert len(series.files) == 3
    assert any(
        "different Rows x Columns: 4x4 (2 file(s)), 6x6 (1 file(s))" in w for w in series.warnings
    )
    (skipped,) = index.skipped
    assert skipped.code == "inconsistent_series"
    assert "classified other" in skipped.reason


def test_two_single_view_files_complete_each_other(tmp_path):
    ant = b.nm_planar(
        series_key="pair",
        instance=1,
        detectors=[b.detector_item()],
        detector_numbers=[1],
        image_id="ANT",
        image_type="STATIC",
    )
    unknown = b.nm_planar(
        series_key="pair",
        instance=2,
        detectors=[b.detector_item()],
        detector_numbers=[2],
        image_type="STATIC",
    )
    b.write(ant, tmp_path / "1.dcm")
    b.write(unknown, tmp_path / "2.dcm")
    (series,) = discover(tmp_path).series
    assert series.kind is SeriesKind.PLANAR_STATIC
    assert series.views == {"anterior": [(0, 0), (0, 1)], "posterior": [(1, 0), (1, 1)]}
    assert "ImageID" in series.view_rule
    assert "opposite of the other single-view file" in series.view_rule


def test_discovery_reads_headers_once_and_never_pixels(mixed_folder, monkeypatch):
    calls = []
    real = dicom_io.pydicom.dcmread

    def spy(fp, *args, **kwargs):
        calls.append(kwargs.get("stop_before_pixels"))
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(dicom_io.pydicom, "dcmread", spy)
    index = discover(mixed_folder)
    assert calls and all(calls)
    # one pydicom parse per file that passed the fast signature check, except the later
    # slices of a CT/PET series, filed from their raw header (ct/slice2, ct/slice3)
    dicom_like = index.n_files_seen - index.n_non_dicom - 1  # fake.dcm rejected before parsing
    assert len(calls) == dicom_like - 2
    (ct,) = [s for s in index.series if s.kind is SeriesKind.CT and len(s.files) == 3]
    assert [os.path.basename(f) for f in ct.files] == ["slice1", "slice2", "slice3"]


def test_missing_folder_is_an_input_error(tmp_path):
    with pytest.raises(InvalidInputError, match="folder not found") as exc:
        discover(tmp_path / "nope")
    assert exc.value.code == "not_found"


@pytest.mark.parametrize(
    ("image_type", "kind"),
    [
        ("STATIC", SeriesKind.PLANAR_STATIC),
        ("WHOLE BODY", SeriesKind.PLANAR_WHOLE_BODY),
        ("DYNAMIC", SeriesKind.PLANAR_STATIC),
        ("GATED", SeriesKind.PLANAR_STATIC),
        ("TOMO", SeriesKind.TOMO_PROJECTIONS),
        ("GATED TOMO", SeriesKind.TOMO_PROJECTIONS),
        ("RECON TOMO", SeriesKind.SPECT),
        ("GATED RECON TOMO", SeriesKind.SPECT),
    ],
)
def test_nm_image_type_value3(image_type, kind):
    ds = b.nm_planar(image_type=image_type)
    assert classify_kind(ds)[0] is kind


def test_nm_without_image_type_uses_vectors():
    ds = b.nm_tomo()
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    kind, reason = classify_kind(ds)
    assert kind is SeriesKind.TOMO_PROJECTIONS
    assert "RotationVector" in reason
    ds = b.nm_planar()
    del ds.ImageType
    kind, reason = classify_kind(ds)
    assert kind is SeriesKind.PLANAR_STATIC
    assert "treated as static planar" in reason


def test_a_bug_on_one_file_is_recorded_and_the_walk_goes_on(tmp_path, monkeypatch, caplog):
    from octoscan.imaging import discovery

    b.write(b.nm_planar(), tmp_path / "wb.dcm")
    b.write(b.ct_slice(), tmp_path / "ct.dcm")

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(discovery, "resolve_planar_layout", broken)
    index = discover(tmp_path)
    assert [s.kind for s in index.series] == [SeriesKind.CT]
    (skipped,) = index.skipped
    assert (skipped.code, skipped.reason) == ("internal", "RuntimeError: simulated bug")
    assert "discovery failed on" in caplog.text
