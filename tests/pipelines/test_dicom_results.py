"""DICOM SR / SEG / SC results: validity (dciodvfy, dcentvfy), round trips, determinism,
pseudonymisation and discovery, on phantom studies written as real DICOM."""

import dataclasses
import io
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from skimage import measure

hd = pytest.importorskip("highdicom")

from octoscan.imaging.discovery import OCTOSCAN_OUTPUT, discover  # noqa: E402
from octoscan.imaging.errors import InvalidInputError, OctoscanError  # noqa: E402
from octoscan.imaging.types import SeriesKind  # noqa: E402
from octoscan.imaging.views import resolve_planar_layout  # noqa: E402
from octoscan.imaging.volume import load_ct, load_pet, load_spect  # noqa: E402
from octoscan.models.config import config_hash, load_config  # noqa: E402
from octoscan.models.types import Decision, Lesion, ReferenceRegion  # noqa: E402
from octoscan.pipelines.cli import main  # noqa: E402
from octoscan.pipelines.dicom_results import (  # noqa: E402
    DICOM_DIR_NAME,
    VolumeFindings,
    render_dicom_results,
    write_dicom_results,
)
from octoscan.pipelines.dicom_sc import fit_panel  # noqa: E402
from octoscan.pipelines.dicom_seg import segment_specs  # noqa: E402
from octoscan.pipelines.dicom_sr import (  # noqa: E402
    SourceFrames,
    locate_planar_source,
    mask_outline,
    planar_region,
    scored_view,
    simplify_polyline,
)
from octoscan.pipelines.dicom_uids import (  # noqa: E402
    body_part,
    derived_uid,
    finish_object,
    object_identity,
)
from octoscan.pipelines.result_json import lesion_to_dict  # noqa: E402
from octoscan.pipelines.study import (  # noqa: E402
    StudyOptions,
    StudyOutcome,
    octoscan_version,
    process_study,
)

KEY = b"test-pseudonym-key"
DCIODVFY = shutil.which("dciodvfy")
DCENTVFY = shutil.which("dcentvfy")
PRIVATE = "99OCTOSCAN"


# --------------------------------------------------------------------------- fixtures


def _phantom(root: Path, *args: str) -> Path:
    assert main(["phantom", str(root), *args]) == 0
    return root


def _score(root: Path) -> StudyOutcome:
    index = discover(root)
    (series,) = index.studies().values()
    outcome = process_study(series, load_config(), StudyOptions(pseudonym_key=KEY))
    assert outcome.status == "ok", outcome.error_reason
    return outcome


def _objects(paths):
    return {p.name: pydicom.dcmread(p) for p in paths}


@pytest.fixture(scope="module")
def planar(tmp_path_factory):
    root = _phantom(tmp_path_factory.mktemp("planar") / "study", "--seed", "3", "--kind", "planar")
    outcome = _score(root)
    chash = config_hash(load_config())
    out = tmp_path_factory.mktemp("planar_out")
    paths = write_dicom_results(outcome, out, config_hash=chash)
    return SimpleNamespace(
        root=root, outcome=outcome, chash=chash, out=out, paths=paths, ds=_objects(paths)
    )


@pytest.fixture(scope="module")
def posterior_only(tmp_path_factory):
    root = _phantom(
        tmp_path_factory.mktemp("post") / "study",
        "--seed",
        "5",
        "--kind",
        "planar",
        "--variant",
        "separate-views",
    )
    shutil.rmtree(root / "NM_WB_24H_ANT")
    outcome = _score(root)
    assert outcome.planar.grid == "posterior_mirrored"
    paths = write_dicom_results(outcome, tmp_path_factory.mktemp("post_out"), config_hash="c0ffee")
    return SimpleNamespace(root=root, outcome=outcome, paths=paths, ds=_objects(paths))


def _sphere(volume, centre_lps, radius_mm):
    idx = np.indices(volume.shape).reshape(3, -1).T
    lps = volume.index_to_lps(idx).reshape((*volume.shape, 3))
    return np.linalg.norm(lps - np.asarray(centre_lps), axis=-1) <= radius_mm


def _tomo_lesion(id_, volume, mask, *, grade, ratio, ci, region):
    values = volume.array[mask]
    centre = volume.index_to_lps(np.argwhere(mask).mean(axis=0))
    return Lesion(
        id=id_,
        diameter_mm=float(
            2.0 * (mask.sum() * np.prod(volume.spacing_mm) * 3 / (4 * np.pi)) ** (1 / 3)
        ),
        peak=float(values.max()),
        mean=float(values.mean()),
        units=volume.units,
        ratio_liver=ratio,
        ratio_liver_ci=ci,
        ratio_spleen=ratio / 4.0,
        ratio_spleen_ci=(ci[0] / 4.0, ci[1] / 4.0),
        spleen_reference_organ="spleen",
        grade=grade,
        grade_range=(grade, grade + 1),
        borderline=True,
        region=region,
        grading_method="SPECT peak (1 mL) / reference mean",
        ci_method="correlated_reference_noise_log_delta",
        center_lps_mm=tuple(float(v) for v in centre),
        volume_ml=float(mask.sum() * np.prod(volume.spacing_mm) / 1000.0),
        mask=mask,
    )


def _reference(organ, volume, mask):
    values = volume.array[mask]
    centre = volume.index_to_lps(np.argwhere(mask).mean(axis=0))
    return ReferenceRegion(
        organ=organ,
        mean=float(values.mean()),
        std=float(values.std()),
        variance_of_mean=1.0,
        variance_method="empirical",
        method="15 mm sphere",
        radius_mm=15.0,
        n_pixels=int(mask.sum()),
        volume_ml=float(mask.sum() * np.prod(volume.spacing_mm) / 1000.0),
        center_lps_mm=tuple(float(v) for v in centre),
        mask=mask,
    )


DECISION = Decision(
    status="needs_review",
    imaging_status="needs_review",
    rule_set="default",
    uptake_rule="significantly_above_liver",
    reasons=("lesion 2 borderline against the spleen", "liver reference small"),
)


def _tomo_outcome(volume):
    return StudyOutcome(
        study_instance_uid=volume.source.study_instance_uid,
        study_key="tomo",
        status="ok",
        seconds=0.0,
        input_series_uids=(volume.source.series_instance_uid,),
        result={"provenance": {"octoscan_version": octoscan_version(), "config_name": "default"}},
    )


@pytest.fixture(scope="module")
def spect(tmp_path_factory):
    root = _phantom(
        tmp_path_factory.mktemp("spect") / "study",
        "--seed",
        "3",
        "--kind",
        "spect-ct",
        "--ct-slices",
        "8",
    )
    truth = json.loads((root / "truth.json").read_text())
    index = discover(root)
    nm = next(s for s in index.series if s.kind is SeriesKind.SPECT)
    ct = next(s for s in index.series if s.kind is SeriesKind.CT)
    volume = load_spect(nm.files)
    lesions = []
    for i, t in enumerate(truth["lesions"][:3], start=1):
        mask = _sphere(volume, t["center_lps_mm"], t["equivalent_diameter_mm"] / 2.0)
        assert mask.any()
        lesions.append(
            _tomo_lesion(i, volume, mask, grade=3, ratio=2.0 + i / 3, ci=(1.5, 3.0), region="liver")
        )
    refs = [
        _reference("liver", volume, _sphere(volume, (-100.0, -20.0, 1000.0), 15.0)),
        _reference("spleen", volume, _sphere(volume, (90.0, 30.0, 1000.0), 15.0)),
    ]
    findings = VolumeFindings(
        volume=volume,
        lesions=tuple(lesions),
        references=tuple(refs),
        decision=DECISION,
        config_name="default",
        warnings=("CT paired by FrameOfReferenceUID",),
        ct=load_ct(ct.files),
    )
    outcome = _tomo_outcome(volume)
    out = tmp_path_factory.mktemp("spect_out")
    paths = write_dicom_results(outcome, out, config_hash="abc123", volumes=[findings])
    return SimpleNamespace(
        root=root,
        volume=volume,
        findings=findings,
        outcome=outcome,
        sources=[*nm.files, *ct.files],
        paths=paths,
        ds=_objects(paths),
    )


@pytest.fixture(scope="module")
def pet(tmp_path_factory):
    root = _phantom(
        tmp_path_factory.mktemp("pet") / "study",
        "--seed",
        "4",
        "--kind",
        "pet-ct",
        "--ct-slices",
        "8",
    )
    index = discover(root)
    series = next(s for s in index.series if s.kind is SeriesKind.PET)
    volume = load_pet(series.files)
    centre = volume.index_to_lps(np.array([volume.shape[0] / 2, 60.0, 70.0]))
    mask = _sphere(volume, centre, 12.0)
    lesion = _tomo_lesion(1, volume, mask, grade=4, ratio=5.5, ci=(4.0, 7.0), region="bone")
    findings = VolumeFindings(
        volume=volume, lesions=(lesion,), references=(), decision=DECISION, config_name="default"
    )
    paths = write_dicom_results(
        _tomo_outcome(volume),
        tmp_path_factory.mktemp("pet_out"),
        config_hash="abc123",
        volumes=[findings],
    )
    return SimpleNamespace(
        root=root, volume=volume, files=series.files, paths=paths, ds=_objects(paths)
    )


# --------------------------------------------------------------------------- SR helpers


def _groups(sr_path):
    report = hd.sr.srread(sr_path).content
    groups = [
        *report.get_planar_roi_measurement_groups(),
        *report.get_volumetric_roi_measurement_groups(),
        *report.get_image_measurement_groups(),
    ]
    return {g.tracking_identifier: g for g in groups}


def _measurements(group):
    """Concept code value -> (value, {property meaning: value})."""
    out = {}
    for m in group.get_measurements():
        item = m[0]
        props = {
            p.ConceptNameCodeSequence[0].CodeMeaning: float(p.MeasuredValueSequence[0].NumericValue)
            for p in item.get("ContentSequence", [])
            if p.ValueType == "NUM"
        }
        out[m.name.value] = (float(m.value), props)
    return out


def _texts(group, code_value):
    return [
        item.TextValue
        for item in group[0].ContentSequence
        if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == code_value
    ]


def _codes(group):
    return {
        e.name.value: (e.value.value, e.value.scheme_designator)
        for e in group.get_qualitative_evaluations()
    }


def _inside(polygon_xy, point_xy):
    return bool(measure.points_in_poly(np.array([point_xy]), polygon_xy)[0])


def _dciodvfy_errors(path):
    proc = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, check=False)
    return [line for line in proc.stderr.splitlines() if line.startswith("Error")]


def _dcentvfy_errors(paths):
    proc = subprocess.run([DCENTVFY, *map(str, paths)], capture_output=True, text=True, check=False)
    return [line for line in proc.stderr.splitlines() if line.startswith("Error")], proc


# --------------------------------------------------------------------------- planar


def test_planar_objects_belong_to_the_source_study(planar):
    assert sorted(planar.ds) == ["octoscan-sc-planar.dcm", "octoscan-sr-planar.dcm"]
    assert all(p.parent == planar.out / DICOM_DIR_NAME for p in planar.paths)
    source = pydicom.dcmread(next(planar.root.rglob("NM*.dcm")), stop_before_pixels=True)
    sr, sc = planar.ds["octoscan-sr-planar.dcm"], planar.ds["octoscan-sc-planar.dcm"]
    assert sr.SOPClassUID == pydicom.uid.ComprehensiveSRStorage
    assert sc.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    for ds in (sr, sc):
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate"):
            assert ds.get(kw) == source.get(kw), kw
        assert ds.SeriesDescription.startswith("octoscan")
        assert ds.Manufacturer == "octoscan"
        assert ds.SoftwareVersions == octoscan_version()
        assert (ds.ContentDate, ds.ContentTime) == (source.StudyDate, source.StudyTime)
        assert (ds.InstanceCreationDate, ds.SeriesDate) == (source.StudyDate, source.StudyDate)
        assert ds.SOPInstanceUID.startswith("2.25.")
    assert sr.SeriesInstanceUID != sc.SeriesInstanceUID
    assert (sr.CompletionFlag, sr.VerificationFlag) == ("COMPLETE", "UNVERIFIED")
    assert sc.BodyPartExamined == source.BodyPartExamined == "WHOLEBODY"
    assert sc.PhotometricInterpretation == "RGB" and sc.SamplesPerPixel == 3
    assert sc.PatientOrientation == ["L", "F"] and sc.BurnedInAnnotation == "NO"
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert sc.pixel_array.shape == (sc.Rows, sc.Columns, 3) and sc.pixel_array.std() > 10


def test_planar_sr_values_equal_result_json(planar):
    result = planar.outcome.result
    groups = _groups(planar.paths[1])
    assert planar.paths[1].name == "octoscan-sr-planar.dcm"
    assert sorted(groups) == sorted(
        [f"lesion {d['id']}" for d in result["lesions"]]
        + [f"{organ} reference" for organ in result["references"]]
        + ["PRRT eligibility"]
    )
    assert len(result["lesions"]) == 3
    for d in result["lesions"]:
        group = groups[f"lesion {d['id']}"]
        values = _measurements(group)
        ratio, props = values["RATIO-LIVER"]
        assert ratio == d["ratio_liver"]
        assert (
            round(ratio + props["+, range of upper measurement uncertainty"], 4)
            == d["ratio_liver_ci"][1]
        )
        assert (
            round(ratio - props["-, range of lower measurement uncertainty"], 4)
            == d["ratio_liver_ci"][0]
        )
        ratio4, props4 = values["RATIO-SPLEEN"]
        assert d["spleen_reference_organ"] == "spleen"
        assert ratio4 == d["ratio_spleen"]
        assert (
            round(ratio4 + props4["+, range of upper measurement uncertainty"], 4)
            == d["ratio_spleen_ci"][1]
        )
        grade, gprops = values["KRENNING"]
        assert grade == d["grade"]
        assert grade + gprops["+, range of upper measurement uncertainty"] == d["grade_range"][1]
        assert grade - gprops["-, range of lower measurement uncertainty"] == d["grade_range"][0]
        assert values["81827009"][0] == d["diameter_mm"]  # SCT Diameter, mm
        assert values["42798000"][0] == d["area_cm2"]  # SCT Area, cm2
        assert values["126031"][0] == d["peak_counts"]  # DCM Peak Value Within ROI
        assert "118565006" not in values  # no volume on planar images
        borderline = _codes(group)["BORDERLINE"]
        assert borderline == (("373066001" if d["borderline"] else "373067005"), "SCT")
        assert _texts(group, "GRADING-METHOD") == [d["grading_method"]]
        assert _texts(group, "BODY-REGION") == [d["region"]]
        assert group.finding_type.value == "52988006"  # SCT Lesion
    liver = _measurements(groups["liver reference"])
    assert liver["373098007"][0] == result["references"]["liver"]["mean"]  # SCT Mean
    assert liver["N-PIXELS"][0] == result["references"]["liver"]["n_pixels"]
    decision = groups["PRRT eligibility"]
    status = result["decision"]["status"]
    assert _codes(decision)["DECISION"] == (status.upper().replace("_", "-"), PRIVATE)
    assert _texts(decision, "REASON") == result["decision"]["reasons"]
    assert _texts(decision, "RULE-SET") == [result["decision"]["rule_set"]]
    assert _texts(decision, "WARNING") == result["warnings"]
    assert "geometric mean" in _texts(decision, "SCORING-IMAGE")[0]


def test_planar_scoord_outlines_the_lesions_on_the_anterior_frames(planar):
    score = planar.outcome.planar
    source_path = next(planar.root.rglob("NM*.dcm"))
    source = pydicom.dcmread(source_path)
    layout = resolve_planar_layout(source, radionuclide="In-111")
    anterior_frames = {f + 1 for f in layout.views["anterior"]}
    assert len(anterior_frames) == 2  # two photopeak windows summed into the view
    groups = _groups(planar.paths[1])
    for les in score.lesions:
        region = groups[f"lesion {les.id}"].roi
        assert region.GraphicType == "POLYLINE"
        data = np.asarray(region.value, dtype=np.float64)
        assert np.array_equal(data[0], data[-1])  # closed
        assert data[:, 0].min() >= 0 and data[:, 0].max() <= source.Columns
        assert data[:, 1].min() >= 0 and data[:, 1].max() <= source.Rows
        ref = region.ContentSequence[0].ReferencedSOPSequence[0]
        assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert set(map(int, ref.ReferencedFrameNumber)) == anterior_frames
        r, c = les.center_rc
        assert _inside(data, (c + 0.5, r + 0.5))
        y, x = data[:, 1], data[:, 0]
        area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        pixels = int(les.mask.sum())
        assert pixels * 0.7 <= area <= pixels  # corners cut, never larger than the mask
    liver = groups["liver reference"].roi
    assert liver.GraphicType == "POLYLINE"


def test_posterior_only_regions_are_mirrored_back_onto_the_posterior(posterior_only):
    score = posterior_only.outcome.planar
    source = pydicom.dcmread(next(posterior_only.root.rglob("NM*.dcm")), stop_before_pixels=True)
    width = int(source.Columns)
    groups = _groups(next(p for p in posterior_only.paths if "-sr-" in p.name))
    assert score.lesions
    for les in score.lesions:
        region = groups[f"lesion {les.id}"].roi
        ref = region.ContentSequence[0].ReferencedSOPSequence[0]
        assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
        r, c = les.center_rc
        data = np.asarray(region.value, dtype=np.float64)
        assert _inside(data, (width - (c + 0.5), r + 0.5))
        if abs(c + 0.5 - width / 2) > 10:  # off the midline, the unmirrored spot is elsewhere
            assert not _inside(data, (c + 0.5, r + 0.5))
    note = _texts(groups["PRRT eligibility"], "SCORING-IMAGE")[0]
    assert note.startswith("posterior view only") and "mirrored back onto the posterior" in note


@pytest.mark.skipif(DCIODVFY is None, reason="dicom3tools (dciodvfy) not installed")
def test_every_object_passes_dciodvfy(planar, posterior_only, spect, pet):
    paths = [*planar.paths, *posterior_only.paths, *spect.paths, *pet.paths]
    assert len(paths) == 2 + 2 + 3 + 3
    for path in paths:
        assert _dciodvfy_errors(path) == [], path.name


@pytest.mark.skipif(DCENTVFY is None, reason="dicom3tools (dcentvfy) not installed")
def test_dcentvfy_finds_the_new_series_consistent_with_the_source(planar, spect):
    sources = sorted(planar.root.rglob("*.dcm"))
    errors, proc = _dcentvfy_errors([*sources, *planar.paths])
    assert errors == [] and proc.returncode == 0, proc.stderr[-2000:]
    errors, proc = _dcentvfy_errors([*spect.sources, *spect.paths])
    assert errors == [] and proc.returncode == 0, proc.stderr[-2000:]
    for ds in spect.ds.values():
        assert ds.StudyInstanceUID == spect.volume.source.study_instance_uid


def test_writes_are_byte_identical_and_uids_follow_inputs(planar, tmp_path):
    again = write_dicom_results(planar.outcome, tmp_path, config_hash=planar.chash)
    assert [p.name for p in again] == [p.name for p in planar.paths]
    for first, second in zip(planar.paths, again, strict=True):
        assert first.read_bytes() == second.read_bytes()
    other = render_dicom_results(planar.outcome, config_hash="another-config")
    for name, data in other.items():
        ds = pydicom.dcmread(io.BytesIO(data))
        assert ds.SOPInstanceUID != planar.ds[name].SOPInstanceUID
        assert ds.SeriesInstanceUID != planar.ds[name].SeriesInstanceUID
        assert ds.StudyInstanceUID == planar.ds[name].StudyInstanceUID


@pytest.mark.slow
def test_a_separate_process_writes_the_same_bytes(planar, tmp_path):
    """Nothing per-process (a UID drawn at import, the clock) reaches the objects."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from octoscan.imaging.discovery import discover\n"
        "from octoscan.models.config import config_hash, load_config\n"
        "from octoscan.pipelines.dicom_results import write_dicom_results\n"
        "from octoscan.pipelines.study import StudyOptions, process_study\n"
        "(series,) = discover(sys.argv[1]).studies().values()\n"
        "cfg = load_config()\n"
        "out = process_study(series, cfg, StudyOptions(pseudonym_key=b'x'))\n"
        "write_dicom_results(out, sys.argv[2], config_hash=config_hash(cfg))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(planar.root), str(tmp_path)], check=True, timeout=300
    )
    for path in planar.paths:
        assert (tmp_path / DICOM_DIR_NAME / path.name).read_bytes() == path.read_bytes()


def test_pseudonymised_objects_carry_no_patient_identifier(planar, spect):
    source = pydicom.dcmread(next(planar.root.rglob("NM*.dcm")), stop_before_pixels=True)
    files = render_dicom_results(
        planar.outcome, config_hash=planar.chash, pseudonymise=True, pseudonym_key=KEY
    )
    files.update(
        render_dicom_results(
            spect.outcome,
            config_hash="abc123",
            pseudonymise=True,
            pseudonym_key=KEY,
            volumes=[spect.findings],
        )
    )
    assert len(files) == 5
    pid, name = str(source.PatientID), str(source.PatientName)
    assert pid and name
    for file_name, data in files.items():
        assert pid.encode() not in data and name.encode() not in data, file_name
        assert str(source.PatientBirthDate).encode() not in data, file_name
        ds = pydicom.dcmread(io.BytesIO(data))
        assert ds.PatientID == planar.outcome.result["patient_key"]
        assert str(ds.PatientName) == f"{planar.outcome.result['patient_key']}^"
        assert ds.PatientBirthDate == "" and ds.PatientSex == source.PatientSex
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        identified = {**planar.ds, **spect.ds}[file_name]
        assert ds.SOPInstanceUID != identified.SOPInstanceUID


def test_pseudonymise_without_a_key_is_refused(planar):
    with pytest.raises(ValueError, match="needs a pseudonym_key"):
        render_dicom_results(planar.outcome, config_hash="x", pseudonymise=True)


def test_discovery_skips_the_objects_as_octoscan_output(planar, tmp_path):
    study = tmp_path / "study"
    shutil.copytree(planar.root, study)
    written = write_dicom_results(planar.outcome, study, config_hash=planar.chash)
    assert all(p.parent == study / DICOM_DIR_NAME for p in written)
    index = discover(study)
    skipped = {Path(s.path).name: s.code for s in index.skipped}
    assert skipped == {p.name: OCTOSCAN_OUTPUT for p in written}
    original = discover(planar.root)
    assert [s.series_instance_uid for s in index.series] == [
        s.series_instance_uid for s in original.series
    ]


def test_stale_octoscan_files_are_removed_others_kept(planar, tmp_path):
    folder = tmp_path / DICOM_DIR_NAME
    folder.mkdir()
    (folder / "octoscan-seg-0123456789ab.dcm").write_bytes(b"old")
    (folder / "notes.txt").write_text("keep")
    paths = write_dicom_results(planar.outcome, tmp_path, config_hash=planar.chash)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*(p.name for p in paths), "notes.txt"]
    )


def test_failed_outcome_writes_nothing(tmp_path):
    failed = StudyOutcome(
        study_instance_uid="1.2.3",
        study_key="abc",
        status="failed",
        seconds=0.1,
        input_series_uids=(),
        error_code="no_usable_series",
        error_reason="none",
    )
    assert write_dicom_results(failed, tmp_path, config_hash="x") == []
    assert not (tmp_path / DICOM_DIR_NAME).exists()


def test_single_component_patient_name_is_copied_without_warnings(planar, tmp_path):
    study = tmp_path / "study"
    shutil.copytree(planar.root, study)
    path = next(study.rglob("NM*.dcm"))
    ds = pydicom.dcmread(path)
    ds.PatientName = "ANONYMOUS"
    ds.save_as(path)
    outcome = _score(study)
    files = render_dicom_results(outcome, config_hash="x")  # warnings are errors here
    for data in files.values():
        assert str(pydicom.dcmread(io.BytesIO(data)).PatientName) == "ANONYMOUS"


def test_unlocatable_source_frames_give_groups_without_regions(planar):
    outcome = planar.outcome
    changed = tuple(dataclasses.replace(im, counts=im.counts + 1.0) for im in outcome.planar_images)
    files = render_dicom_results(
        dataclasses.replace(outcome, planar_images=changed), config_hash=planar.chash
    )
    report = hd.sr.srread(io.BytesIO(files["octoscan-sr-planar.dcm"])).content
    assert report.get_planar_roi_measurement_groups() == []
    groups = {g.tracking_identifier: g for g in report.get_image_measurement_groups()}
    assert sorted(groups) == sorted(_groups(planar.paths[1]))
    note = _texts(groups["PRRT eligibility"], "SCORING-IMAGE")[0]
    assert "could not be located again" in note
    values = _measurements(groups["lesion 1"])
    assert values["RATIO-LIVER"][0] == outcome.result["lesions"][0]["ratio_liver"]


def test_locate_finds_a_half_of_a_side_by_side_image(planar):
    score = planar.outcome.planar
    anterior = scored_view(score, planar.outcome.planar_images)
    whole = locate_planar_source(anterior, mirrored=False)
    assert whole.column_offset == 0 and whole.width == 256 and len(whole.frame_numbers) == 2
    right = dataclasses.replace(anterior, counts=anterior.counts[:, 100:].copy())
    half = locate_planar_source(right, mirrored=False)
    assert (half.column_offset, half.width) == (100, 156)
    assert half.frame_numbers == whole.frame_numbers
    assert (
        locate_planar_source(
            dataclasses.replace(anterior, counts=anterior.counts[:, 50:150].copy()), mirrored=False
        )
        is None
    )  # a middle strip is no half


def test_planar_region_without_mask_is_a_circle_or_an_ellipse():
    frames = SourceFrames(
        str(pydicom.uid.NuclearMedicineImageStorage),
        "1.2.3",
        (1, 3),
        column_offset=0,
        width=64,
        mirrored=False,
        view="anterior",
    )
    circle, note = planar_region(
        frames, mask=None, center_rc=(10.0, 20.0), radius_mm=6.0, spacing_mm=(2.0, 2.0)
    )
    assert note is None and circle.GraphicType == "CIRCLE"
    assert np.allclose(circle.value, [[20.5, 10.5], [23.5, 10.5]])
    ellipse, _ = planar_region(
        frames, mask=None, center_rc=(10.0, 20.0), radius_mm=6.0, spacing_mm=(3.0, 1.5)
    )
    assert ellipse.GraphicType == "ELLIPSE"  # major axis (along columns: 4 px) first
    assert np.allclose(ellipse.value, [[16.5, 10.5], [24.5, 10.5], [20.5, 8.5], [20.5, 12.5]])
    ref = ellipse.ContentSequence[0].ReferencedSOPSequence[0]
    assert list(map(int, ref.ReferencedFrameNumber)) == [1, 3]
    none, note = planar_region(
        frames, mask=None, center_rc=None, radius_mm=6.0, spacing_mm=(2.0, 2.0)
    )
    assert none is None and "region not drawn" in note


def test_changed_source_file_is_refused(planar, tmp_path):
    study = tmp_path / "study"
    shutil.copytree(planar.root, study)
    outcome = _score(study)
    path = next(study.rglob("NM*.dcm"))
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = "1.2.3.4"
    ds.save_as(path)
    with pytest.raises(InvalidInputError, match="the file changed since scoring") as err:
        render_dicom_results(outcome, config_hash="x")
    assert err.value.code == "dicom_source_mismatch"


def test_missing_highdicom_is_a_clear_error(planar, monkeypatch):
    monkeypatch.setitem(sys.modules, "highdicom", None)
    with pytest.raises(OctoscanError, match=r"pip install 'octoscan\[dicom\]'") as err:
        render_dicom_results(planar.outcome, config_hash="x")
    assert err.value.code == "highdicom_missing"


# --------------------------------------------------------------------------- tomographic


def test_spect_seg_round_trips_segments_and_masks(spect):
    names = sorted(spect.ds)
    key = names[0].split("-")[-1]
    assert names == [f"octoscan-sc-{key}", f"octoscan-seg-{key}", f"octoscan-sr-{key}"]
    seg_path = next(p for p in spect.paths if "-seg-" in p.name)
    seg = hd.seg.segread(seg_path)
    assert seg.SegmentationType == "BINARY"
    assert seg.SeriesDescription == "octoscan SEG" and seg.BodyPartExamined == "WHOLEBODY"
    labels = [seg.get_segment_description(n).SegmentLabel for n in seg.segment_numbers]
    assert labels == ["lesion 1", "lesion 2", "lesion 3", "liver reference", "spleen reference"]
    assert seg.get_segment_description(1).SegmentedPropertyTypeCodeSequence[0].CodeValue == (
        "52988006"
    )
    assert seg.get_segment_description(4).SegmentedPropertyTypeCodeSequence[0].CodeValue == (
        "C94970"
    )
    assert seg.FrameOfReferenceUID == spect.volume.source.frame_of_reference_uid
    volume = spect.volume
    pixels = seg.get_pixels_by_source_frame(
        source_sop_instance_uid=volume.source.sop_instance_uids[0],
        source_frame_numbers=list(range(1, volume.shape[0] + 1)),
        assert_missing_frames_are_empty=True,
    )
    expected = np.stack(
        [les.mask for les in spect.findings.lesions]
        + [ref.mask for ref in spect.findings.references],
        axis=-1,
    )
    assert np.array_equal(pixels.astype(bool), expected)
    assert seg.NumberOfFrames == int(expected.any(axis=(1, 2)).sum())  # empty frames omitted


def test_spect_sr_references_the_segments_and_states_the_values(spect):
    seg = spect.ds[next(n for n in spect.ds if "-seg-" in n)]
    sr_path = next(p for p in spect.paths if "-sr-" in p.name)
    groups = _groups(sr_path)
    tracking = {d.TrackingID: d.TrackingUID for d in seg.SegmentSequence}
    for number, les in enumerate(spect.findings.lesions, start=1):
        group = groups[f"lesion {les.id}"]
        assert group.reference_type.value == "121191"  # Referenced Segment
        ref_item = next(
            i for i in group[0].ContentSequence if i.ValueType == "IMAGE"
        ).ReferencedSOPSequence[0]
        assert ref_item.ReferencedSOPInstanceUID == seg.SOPInstanceUID
        assert int(ref_item.ReferencedSegmentNumber) == number
        assert group.tracking_uid == tracking[f"lesion {les.id}"]
        d = lesion_to_dict(les)
        values = _measurements(group)
        assert values["RATIO-LIVER"][0] == d["ratio_liver"]
        assert values["118565006"][0] == d["volume_ml"]  # SCT Volume, mL
        assert values["81827009"][0] == d["diameter_mm"]
        lo, hi = d["grade_range"]
        assert values["KRENNING"][1] == {
            "+, range of upper measurement uncertainty": hi - d["grade"],
            "-, range of lower measurement uncertainty": d["grade"] - lo,
        }
        assert _codes(group)["BORDERLINE"] == ("373066001", "SCT")
    decision = groups["PRRT eligibility"]
    assert _codes(decision)["DECISION"] == ("NEEDS-REVIEW", PRIVATE)
    assert _texts(decision, "REASON") == list(DECISION.reasons)
    assert _texts(decision, "WARNING") == ["CT paired by FrameOfReferenceUID"]
    sr = spect.ds[sr_path.name]
    evidence = {
        i.ReferencedSOPInstanceUID
        for s in sr.CurrentRequestedProcedureEvidenceSequence
        for r in s.ReferencedSeriesSequence
        for i in r.ReferencedSOPSequence
    }
    assert evidence == {seg.SOPInstanceUID, spect.volume.source.sop_instance_uids[0]}


def test_seg_frames_follow_the_slice_vector_order(spect, tmp_path):
    """Frames stored in reverse slice order: each SEG frame still lands on its own plane."""
    src = Path(spect.volume.source.paths[0])
    ds = pydicom.dcmread(src)
    frames = ds.pixel_array[::-1].copy()
    ds.PixelData = frames.tobytes()
    ds.SliceVector = list(range(ds.NumberOfFrames, 0, -1))
    target = tmp_path / "NM_REV.dcm"
    ds.save_as(target)
    volume = load_spect([target])
    assert np.array_equal(volume.array, spect.volume.array)  # the loader sorts by SliceVector
    findings = dataclasses.replace(spect.findings, volume=volume, ct=None)
    files = render_dicom_results(_tomo_outcome(volume), config_hash="abc123", volumes=[findings])
    seg_bytes = next(v for k, v in files.items() if "-seg-" in k)
    seg = hd.seg.segread(io.BytesIO(seg_bytes))
    n = volume.shape[0]
    by_frame = seg.get_pixels_by_source_frame(
        source_sop_instance_uid=str(ds.SOPInstanceUID),
        source_frame_numbers=list(range(1, n + 1)),
        segment_numbers=[1],
        assert_missing_frames_are_empty=True,
    )[..., 0]
    mask = spect.findings.lesions[0].mask
    assert mask.any()
    # stored frame f (0-based) holds plane n - 1 - f
    assert np.array_equal(by_frame.astype(bool), mask[::-1])


def test_seg_refuses_a_source_whose_pixels_changed(spect, tmp_path):
    src = Path(spect.volume.source.paths[0])
    ds = pydicom.dcmread(src)
    frames = ds.pixel_array.copy()
    frames[10, 5, 5] += 1
    ds.PixelData = frames.tobytes()
    target = tmp_path / "NM.dcm"
    ds.save_as(target)
    volume = dataclasses.replace(
        spect.volume, source=dataclasses.replace(spect.volume.source, paths=(str(target),))
    )
    findings = dataclasses.replace(spect.findings, volume=volume, ct=None)
    with pytest.raises(InvalidInputError, match="source pixels differ") as err:
        render_dicom_results(_tomo_outcome(volume), config_hash="x", volumes=[findings])
    assert err.value.code == "dicom_source_mismatch"


def test_pet_seg_references_each_slice_file(pet):
    seg = hd.seg.segread(next(p for p in pet.paths if "-seg-" in p.name))
    volume = pet.volume
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in pet.files]
    plane_of = {
        h.SOPInstanceUID: round(float(volume.lps_to_index(np.array(h.ImagePositionPatient))[0]))
        for h in headers
    }
    uids = sorted(plane_of, key=plane_of.get)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, assert_missing_frames_are_empty=True
    )[..., 0]
    centre = volume.index_to_lps(np.array([volume.shape[0] / 2, 60.0, 70.0]))
    mask = _sphere(volume, centre, 12.0)
    expected = np.stack([mask[plane_of[u]] for u in uids])
    assert np.array_equal(pixels.astype(bool), expected)
    assert seg.BodyPartExamined == headers[0].get("BodyPartExamined", "WHOLEBODY")
    assert max(pet.ds[next(n for n in pet.ds if "-sc-" in n)].pixel_array.shape) <= 2048
    sr = next(p for p in pet.paths if "-sr-" in p.name)
    assert _groups(sr)["lesion 1"].reference_type.value == "121191"


def test_volume_of_another_kind_is_refused(spect):
    ct_volume = dataclasses.replace(spect.volume, kind=SeriesKind.CT)
    findings = dataclasses.replace(spect.findings, volume=ct_volume, ct=None)
    with pytest.raises(ValueError, match="expected an emission volume"):
        render_dicom_results(_tomo_outcome(ct_volume), config_hash="x", volumes=[findings])


def test_volume_of_another_study_is_refused(spect):
    other = dataclasses.replace(spect.outcome, study_instance_uid="1.2.3")
    with pytest.raises(ValueError, match=r"expected the outcome's '1\.2\.3'"):
        render_dicom_results(other, config_hash="x", volumes=[spect.findings])


def test_mask_on_another_grid_is_refused(spect):
    identity = object_identity(
        pydicom.dcmread(spect.volume.source.paths[0], stop_before_pixels=True),
        config_hash="x",
        software_version="1",
    )
    small = dataclasses.replace(spect.findings.lesions[0], mask=np.ones((2, 2, 2), bool))
    with pytest.raises(ValueError, match=r"mask shape \(2, 2, 2\); expected"):
        segment_specs([small], [], identity, part="p", shape=spect.volume.shape)


# --------------------------------------------------------------------------- small units


def test_derived_uid_is_stable_short_and_distinct():
    a = derived_uid("1.2.3", "config", "SR")
    assert a == derived_uid("1.2.3", "config", "SR")
    assert a != derived_uid("1.2.3", "config", "SEG")
    assert a != derived_uid("1.2.3config", "SR")  # parts are separated, not concatenated
    assert a.startswith("2.25.") and len(a) <= 64
    assert int(a[5:]) < 2**128
    with pytest.raises(ValueError, match="at least one part"):
        derived_uid()


def test_finish_object_refuses_a_description_discovery_would_ingest():
    source = pydicom.Dataset()
    source.StudyInstanceUID = "1.2.3"
    source.PatientID = "P1"
    identity = object_identity(source, config_hash="x", software_version="1")
    assert (identity.date, identity.time) == ("19700101", "000000")  # no date in the source
    with pytest.raises(ValueError, match="must start with 'octoscan'"):
        finish_object(pydicom.Dataset(), identity, series_description="Results SR")
    with pytest.raises(ValueError, match="no StudyInstanceUID"):
        object_identity(pydicom.Dataset(), config_hash="x", software_version="1")
    with pytest.raises(ValueError, match="config_hash is empty"):
        object_identity(source, config_hash="", software_version="1")


def test_patient_module_copied_or_pseudonymised_and_trial_ids_dropped():
    source = pydicom.Dataset()
    source.StudyInstanceUID = "1.2.3"
    source.StudyDate, source.StudyTime = "20240102", "0930"
    source.PatientName, source.PatientID = "DOE^JANE", "ID-42"
    source.PatientBirthDate, source.PatientSex = "19500101", "F"
    source.OtherPatientIDs = "ALT-7"
    source.PatientIdentityRemoved = "YES"  # but no DeidentificationMethod
    source.ClinicalTrialSubjectID = "SUBJ-9"
    ident = object_identity(source, config_hash="x", software_version="1")
    assert (ident.date, ident.time) == ("20240102", "0930")
    assert ident.patient.OtherPatientIDs == "ALT-7" and ident.patient.PatientID == "ID-42"
    assert ident.patient.ClinicalTrialSubjectID == "SUBJ-9"
    assert ident.patient.DeidentificationMethod == "not stated by the source"
    pseudo = object_identity(
        source, config_hash="x", software_version="1", pseudonymise=True, pseudonym_key=KEY
    )
    copy = pseudo.with_patient(source)
    assert copy.PatientID == str(copy.PatientName)[:-1] == pseudo.patient.PatientID != "ID-42"
    assert (copy.PatientBirthDate, copy.PatientSex) == ("", "F")
    for keyword in ("OtherPatientIDs", "ClinicalTrialSubjectID", "PatientIdentityRemoved"):
        assert keyword not in copy
    assert copy.StudyID == "" and copy.AccessionNumber == ""  # Type 2, added empty
    assert ident.uid("SR") != pseudo.uid("SR")


def test_body_part_keeps_unpaired_defined_terms_only():
    def ds(value):
        d = pydicom.Dataset()
        d.BodyPartExamined = value
        return d

    assert body_part([ds("WHOLE BODY")], "ABDOMEN") == "WHOLEBODY"
    assert body_part([ds("ABDOMEN")], "WHOLEBODY") == "ABDOMEN"
    assert body_part([ds("WHOLE_BODY")], "ABDOMEN") == "WHOLEBODY"
    assert body_part([ds("TORSO")], "ABDOMEN") == "ABDOMEN"  # would need Laterality
    assert body_part([ds(""), ds("CHEST")], "ABDOMEN") == "CHEST"
    assert body_part([], "WHOLEBODY") == "WHOLEBODY"


def test_mask_outline_and_mirroring_on_a_tiny_grid():
    mask = np.zeros((6, 8), bool)
    mask[1:4, 2:6] = True  # 3 x 4 pixels
    mask[5, 7] = True  # a second part
    outline, parts = mask_outline(mask)
    assert parts == 2
    assert outline[:, 0].min() == 0.5 and outline[:, 0].max() == 3.5  # rows, on pixel edges
    assert outline[:, 1].min() == 1.5 and outline[:, 1].max() == 5.5
    frames = SourceFrames("1.2", "1.2.3", (1,), column_offset=0, width=8, mirrored=True, view="x")
    xy = frames.to_source_xy(np.array([[2.0, 2.0]]))  # pixel centre (row 2, col 2)
    assert xy.tolist() == [[8 - 2.5, 2.5]]
    shifted = dataclasses.replace(frames, mirrored=False, column_offset=100)
    assert shifted.to_source_xy(np.array([[2.0, 2.0]])).tolist() == [[102.5, 2.5]]
    assert mask_outline(np.zeros((3, 3), bool)) is None


def test_simplify_polyline_keeps_every_point_within_tolerance():
    """Douglas-Peucker on a noisy closed outline: the kept vertices are points of the input,
    the outline stays closed, every dropped point lies within the tolerance of the kept
    chain, and about as many vertices remain as scikit-image's approximate_polygon keeps
    (the same algorithm; ties between equally distant points may be broken differently)."""
    from skimage.measure import approximate_polygon

    rng = np.random.default_rng(5)
    angle = np.linspace(0.0, 2.0 * np.pi, 200)
    radius = 20.0 + rng.normal(0.0, 0.4, angle.size)
    ring = np.c_[30.0 + radius * np.sin(angle), 30.0 + radius * np.cos(angle)]
    ring[-1] = ring[0]
    kept = simplify_polyline(ring, 0.5)
    assert np.array_equal(kept[0], kept[-1])
    assert all(any(np.array_equal(k, p) for p in ring) for k in kept)
    assert 10 < len(kept) < 100
    segments = list(itertools.pairwise(kept))

    def distance(p, a, b):
        ab = b - a
        t = np.clip((p - a) @ ab / (ab @ ab), 0.0, 1.0)
        return float(np.hypot(*(p - (a + t * ab))))

    assert max(min(distance(p, a, b) for a, b in segments) for p in ring) <= 0.5 + 1e-9
    assert abs(len(kept) - len(approximate_polygon(ring, tolerance=0.5))) <= 2
    square = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 2.0], [2.0, 2.0], [2.0, 0.0], [0.0, 0.0]])
    assert simplify_polyline(square, 0.1).tolist() == [
        [0.0, 0.0],
        [0.0, 2.0],
        [2.0, 2.0],
        [2.0, 0.0],
        [0.0, 0.0],
    ]


def test_fit_panel_shrinks_by_an_integer_factor():
    panel = np.zeros((10, 4001, 3), np.uint8)
    panel[:, ::2] = 200
    small = fit_panel(panel, max_side_px=2048)  # factor 2: 2 x 2 blocks, last column dropped
    assert small.shape == (5, 2000, 3) and small.dtype == np.uint8
    assert np.all(small == 100)
    assert fit_panel(panel, max_side_px=1000).shape == (2, 800, 3)  # factor 5
    assert fit_panel(panel[:, :2000]).shape == (10, 2000, 3)
    with pytest.raises(ValueError, match="max_side_px=0"):
        fit_panel(panel, max_side_px=0)
