"""Write phantom images as standards-conforming DICOM (PS3.3 2022 IODs, checked with dciodvfy).

Objects:

* **NM Image Storage, WHOLE BODY**: one multi-frame object holding both views; frames are
  indexed by FrameIncrementPointer = (EnergyWindowVector, DetectorVector). By default each
  111In photopeak (171 and 245 keV, +-10 %) is its own energy window, so the object holds
  4 frames (window 1: detectors 1, 2; window 2: detectors 1, 2) and a reader must *sum* the
  two photopeak windows. DetectorInformationSequence items carry a ViewCodeSequence (SCT
  399321004 anterior / 399001007 posterior) and the detector's ImageOrientationPatient.
  RadiopharmaceuticalInformationSequence: radionuclide SCT 56609000 (111In), pentetreotide
  SCT 446800006, RadiopharmaceuticalStartDateTime, RadionuclideTotalDose in **MBq**, half-life.
* **NM Image Storage, RECON TOMO**: reconstructed SPECT, one multi-frame object, frames on
  SliceVector; geometry in DetectorInformationSequence (ImagePositionPatient of frame 1,
  ImageOrientationPatient), SpacingBetweenSlices; FrameOfReferenceUID shared with the CT.
* **CT Image Storage**: one file per slice, HU through RescaleIntercept -1024.
* **PET Image Storage**: one file per slice, Units BQML, DecayCorrection START, per-slice
  RescaleSlope, PatientWeight, RadionuclideTotalDose in **Bq**.

Variants of the whole-body object (names accepted by :data:`PLANAR_VARIANTS`):

* ``separate-views``: anterior and posterior as two single-frame objects in two series
  (SeriesDescription "... ANT" / "... POST", ImageID "ANTERIOR" / "POSTERIOR", PatientOrientation
  L\\F / R\\F);
* ``no-view-code``: empty ViewCodeSequence; the view is told by per-detector
  ImageOrientationPatient (multi-frame) or by ImageID, SeriesDescription and
  PatientOrientation (with ``separate-views``);
* ``no-orientation``: no per-detector ImageOrientationPatient;
* ``summed-windows``: one energy window with two ranges (171 and 245 keV), 1 frame per view;
* ``scatter-window``: a third window (135-155 keV, scatter) as extra frames: not to be summed;
* ``detector-swap``: detector 1 is the posterior head;
* ``anterior-only``: only the anterior head's view (a single-view study).

UIDs are derived from the seed as name-based UUIDs written under the UUID arc "2.25."
(:func:`phantom_uid`; note that pydicom's ``generate_uid(prefix=None, ...)`` ignores its
entropy sources and returns a random UUID), dates are fixed per seed, so the same seed writes
the same bytes.
"""

from __future__ import annotations

import io
import os
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_encoder
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    NuclearMedicineImageStorage,
    PositronEmissionTomographyImageStorage,
    RLELossless,
)

from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.phantom.activity import CodedConcept, TracerInfo
from octoscan.imaging.phantom.anatomy import Grid
from octoscan.imaging.phantom.planar import PlanarSimulation
from octoscan.imaging.phantom.tomo import TomoImage

PLANAR_VARIANTS: tuple[str, ...] = (
    "separate-views",
    "no-view-code",
    "no-orientation",
    "summed-windows",
    "scatter-window",
    "detector-swap",
    "anterior-only",
)
COMPRESSIONS: dict[str, UID] = {
    "rle": RLELossless,
    "jpeg-ls": JPEGLSLossless,
    "j2k": JPEG2000Lossless,
}
MANUFACTURER = "octoscan phantom"
MODEL_NAME = "SSTR digital phantom"
VIEW_CODES = {
    "anterior": CodedConcept("399321004", "SCT", "anterior"),
    "posterior": CodedConcept("399001007", "SCT", "posterior"),
}
RECUMBENT = CodedConcept("102538003", "SCT", "recumbent")
SUPINE = CodedConcept("40199007", "SCT", "supine")
HEADFIRST = CodedConcept("102540008", "SCT", "headfirst")
INTRAVENOUS = CodedConcept("47625008", "SCT", "Intravenous route")
IN111_WINDOWS_KEV: tuple[tuple[float, float], ...] = ((154.0, 188.0), (221.0, 270.0))
SCATTER_WINDOW_KEV = (135.0, 155.0)
SPECT_COUNTS_MAX = 65535


@dataclass(frozen=True)
class StudyIdentity:
    """Fixed, fake identity of a phantom study (same seed, same identity).

    The patient name and ID are obviously synthetic ("PHANTOM^<seed>") so tests of PHI
    leakage can search for them.
    """

    seed: int
    patient_name: str
    patient_id: str
    patient_sex: str
    patient_birth_date: str
    patient_weight_kg: float
    patient_size_m: float
    study_instance_uid: str
    study_id: str
    accession_number: str
    study_description: str
    injection_datetime: datetime

    def uid(self, *parts: object) -> str:
        """A UID derived from the seed, the study and ``parts``."""
        return phantom_uid(str(self.seed), self.study_instance_uid, *(str(p) for p in parts))


PHANTOM_UUID_NAMESPACE = uuid.UUID("6f63746f-7363-616e-2d70-68616e746f6d")


def phantom_uid(*sources: str) -> str:
    """Deterministic UID "2.25.<int>" from a name-based (SHA-1, version 5) UUID of ``sources``.

    PS3.5 B.2: a UUID may be written as a UID under the root 2.25 as its decimal integer.
    """
    name = "\x1f".join(("octoscan-phantom", *sources))
    return f"2.25.{uuid.uuid5(PHANTOM_UUID_NAMESPACE, name).int}"


def make_identity(
    seed: int,
    *,
    weight_kg: float,
    height_m: float,
    sex: str,
    study: str = "octreoscan",
    study_description: str = "OCTREOSCAN WB SPECT/CT",
    injection_hour: int = 10,
) -> StudyIdentity:
    """The identity of the phantom study ``study`` (e.g. "octreoscan", "dotatate") of ``seed``."""
    base = datetime(2024, 1, 8, injection_hour, 0, 0) + timedelta(days=seed % 350)
    base += timedelta(minutes=(seed * 7) % 50)
    study_uid = phantom_uid(str(seed), study)
    return StudyIdentity(
        seed=seed,
        patient_name=f"PHANTOM^{seed}",
        patient_id=f"PHANTOM-{seed}",
        patient_sex=sex,
        patient_birth_date=f"{1940 + seed % 50:04d}0101",
        patient_weight_kg=weight_kg,
        patient_size_m=height_m,
        study_instance_uid=study_uid,
        study_id=f"{seed % 100000}",
        accession_number=f"PH{seed:08d}"[-16:],
        study_description=study_description,
        injection_datetime=base,
    )


def check_compression(name: str | None) -> UID:
    """Transfer syntax for ``name`` (None: explicit VR little endian), or refuse clearly."""
    if name is None:
        return ExplicitVRLittleEndian
    if name not in COMPRESSIONS:
        raise InvalidInputError(
            f"compression {name!r} unknown; expected one of {', '.join(COMPRESSIONS)}",
            code="invalid_option",
        )
    uid = COMPRESSIONS[name]
    encoder = get_encoder(uid)
    if not encoder.is_available:
        missing = "; ".join(encoder.missing_dependencies) or "no encoding plugin"
        raise InvalidInputError(
            f"compression {name!r} ({uid.name}) needs an encoder that is not installed "
            f"({missing}); install pylibjpeg-openjpeg for j2k, pyjpegls for jpeg-ls, or "
            "choose another --compress",
            code="encoder_unavailable",
        )
    return uid


def check_variants(variants: Sequence[str]) -> tuple[str, ...]:
    """Validate variant names; returns them sorted and de-duplicated."""
    unknown = sorted(set(variants) - set(PLANAR_VARIANTS))
    if unknown:
        raise InvalidInputError(
            f"unknown variant(s) {', '.join(unknown)}; expected some of "
            f"{', '.join(PLANAR_VARIANTS)}",
            code="invalid_option",
        )
    out = tuple(sorted(set(variants)))
    if "anterior-only" in out and "separate-views" in out:
        raise InvalidInputError(
            "variants 'anterior-only' and 'separate-views' exclude each other (one view only)",
            code="invalid_option",
        )
    return out


# ---- helpers ---------------------------------------------------------------------------


def _code(c: CodedConcept) -> Dataset:
    ds = Dataset()
    ds.CodeValue = c.value
    ds.CodingSchemeDesignator = c.scheme
    ds.CodeMeaning = c.meaning
    return ds


def _da(dt: datetime) -> str:
    return dt.strftime("%Y%m%d")


def _tm(dt: datetime) -> str:
    return dt.strftime("%H%M%S")


def _ds(value: float, digits: int = 6) -> str:
    """A DS string of at most 16 characters."""
    text = f"{value:.{digits}g}"
    if len(text) > 16:
        text = f"{value:.8e}"[:16]
    return text


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".octoscan-tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; DICOM files are for other readers too
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save(ds: Dataset, path: Path, transfer_syntax: UID) -> None:
    """Encode (compressing if asked) and write ``ds`` atomically as a DICOM file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    if transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(transfer_syntax, generate_instance_uid=False)
    buffer = io.BytesIO()
    with pydicom_config.disable_value_validation():
        ds.save_as(buffer, enforce_file_format=True)
    _write_atomic(path, buffer.getvalue())


def _base(
    ident: StudyIdentity,
    *,
    sop_class: UID,
    sop_instance_uid: str,
    series_uid: str,
    modality: str,
    series_number: int,
    series_description: str,
    series_datetime: datetime,
    instance_number: int,
) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate = _da(series_datetime)
    ds.InstanceCreationTime = _tm(series_datetime)
    ds.StudyDate = _da(ident.injection_datetime)
    ds.StudyTime = _tm(ident.injection_datetime)
    ds.SeriesDate = _da(series_datetime)
    ds.SeriesTime = _tm(series_datetime)
    ds.AcquisitionDate = _da(series_datetime)
    ds.AcquisitionTime = _tm(series_datetime)
    ds.ContentDate = _da(series_datetime)
    ds.ContentTime = _tm(series_datetime)
    ds.AccessionNumber = ident.accession_number
    ds.Modality = modality
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = "octoscan-phantom-1"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = ident.study_description
    ds.SeriesDescription = series_description
    ds.PatientName = ident.patient_name
    ds.PatientID = ident.patient_id
    ds.PatientBirthDate = ident.patient_birth_date
    ds.PatientSex = ident.patient_sex
    ds.PatientSize = _ds(ident.patient_size_m, 3)
    ds.PatientWeight = _ds(ident.patient_weight_kg, 4)
    ds.BodyPartExamined = "WHOLEBODY"
    ds.StudyInstanceUID = ident.study_instance_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = ident.study_id
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    return ds


def _patient_orientation_codes(ds: Dataset) -> None:
    orient = _code(RECUMBENT)
    orient.PatientOrientationModifierCodeSequence = DicomSequence([_code(SUPINE)])
    ds.PatientOrientationCodeSequence = DicomSequence([orient])
    ds.PatientGantryRelationshipCodeSequence = DicomSequence([_code(HEADFIRST)])


def _radiopharmaceutical(
    tracer: TracerInfo, ident: StudyIdentity, *, dose: float, dose_unit_bq: bool
) -> Dataset:
    item = Dataset()
    item.RadionuclideCodeSequence = DicomSequence([_code(tracer.radionuclide_code)])
    item.RadiopharmaceuticalRoute = "Intravenous"
    item.AdministrationRouteCodeSequence = DicomSequence([_code(INTRAVENOUS)])
    item.Radiopharmaceutical = f"{tracer.radionuclide} {tracer.radiopharmaceutical}"
    if tracer.radiopharmaceutical_code is not None:
        item.RadiopharmaceuticalCodeSequence = DicomSequence(
            [_code(tracer.radiopharmaceutical_code)]
        )
    item.RadiopharmaceuticalStartTime = _tm(ident.injection_datetime)
    item.RadiopharmaceuticalStartDateTime = ident.injection_datetime.strftime("%Y%m%d%H%M%S")
    item.RadionuclideTotalDose = _ds(dose * 1e6 if dose_unit_bq else dose, 8)
    item.RadionuclideHalfLife = _ds(tracer.half_life_s, 8)
    if tracer.radionuclide == "Ga-68":
        item.RadionuclidePositronFraction = "0.889"
    return item


def _energy_window(name: str, ranges: Sequence[tuple[float, float]]) -> Dataset:
    item = Dataset()
    seq = []
    for lo, hi in ranges:
        r = Dataset()
        r.EnergyWindowLowerLimit = _ds(lo)
        r.EnergyWindowUpperLimit = _ds(hi)
        seq.append(r)
    item.EnergyWindowRangeSequence = DicomSequence(seq)
    item.EnergyWindowName = name
    return item


def _detector_item(view: str | None, *, with_view_code: bool, with_orientation: bool) -> Dataset:
    det = Dataset()
    det.CollimatorGridName = "MEGP"
    det.CollimatorType = "PARA"
    det.FieldOfViewShape = "RECTANGLE"
    det.FieldOfViewDimensions = [540, 400]
    det.FocalDistance = None
    det.XFocusCenter = None
    det.YFocusCenter = None
    det.ZoomFactor = ["1", "1"]
    if with_orientation and view is not None:
        # rows: column index grows towards patient left (anterior) or right (posterior);
        # row index grows towards the feet.
        sx = 1 if view == "anterior" else -1
        det.ImageOrientationPatient = [str(sx), "0", "0", "0", "0", "-1"]
        det.ImagePositionPatient = None  # Type 2 with IOP; a planar view has no position
    else:
        det.ImageOrientationPatient = None  # Type 2: present, empty (orientation unknown)
        det.ImagePositionPatient = None
    if with_view_code and view is not None:
        code = _code(VIEW_CODES[view])
        code.ViewModifierCodeSequence = DicomSequence([])
        det.ViewCodeSequence = DicomSequence([code])
    return det


# ---- whole-body planar ------------------------------------------------------------------


@dataclass(frozen=True)
class WrittenSeries:
    """A series written to disk (paths relative to the study folder)."""

    role: str
    modality: str
    series_instance_uid: str
    series_description: str
    files: tuple[str, ...]
    sop_class_uid: str
    transfer_syntax_uid: str
    hours_post_injection: float | None = None
    frame_of_reference_uid: str | None = None


def write_planar_whole_body(
    study_dir: Path,
    sim: PlanarSimulation,
    ident: StudyIdentity,
    tracer: TracerInfo,
    *,
    injected_activity_mbq: float,
    hours_post_injection: float,
    series_number: int,
    variants: Sequence[str] = (),
    transfer_syntax: UID = ExplicitVRLittleEndian,
) -> list[WrittenSeries]:
    """Write the whole-body views (see the module docstring for the variants)."""
    variants = check_variants(variants)
    v = set(variants)
    acq_dt = ident.injection_datetime + timedelta(hours=hours_post_injection)
    hours_tag = f"{hours_post_injection:g}H"
    with_code = "no-view-code" not in v
    with_orient = "no-orientation" not in v

    windows: list[tuple[str, list[tuple[float, float]], list[np.ndarray], list[np.ndarray]]] = []
    a_w, p_w = sim.anterior_windows, sim.posterior_windows
    if "summed-windows" in v:
        windows.append(("In111 171+245", list(IN111_WINDOWS_KEV), [a_w.sum(0)], [p_w.sum(0)]))
    else:
        for i, rng_kev in enumerate(IN111_WINDOWS_KEV):
            name = f"In111 {'171' if i == 0 else '245'} keV"
            windows.append((name, [rng_kev], [a_w[i]], [p_w[i]]))
    if "scatter-window" in v:
        windows.append(
            (
                "Scatter 145 keV",
                [SCATTER_WINDOW_KEV],
                [sim.anterior_scatter],
                [sim.posterior_scatter],
            )
        )

    views = ["anterior"] if "anterior-only" in v else ["anterior", "posterior"]
    if "detector-swap" in v and len(views) == 2:
        views = ["posterior", "anterior"]
    images = {"anterior": 0, "posterior": 1}

    def frames_for(view_list: list[str]) -> tuple[list[np.ndarray], list[int], list[int]]:
        frames, ew, dv = [], [], []
        for wi, (_, _, ant, post) in enumerate(windows):
            for di, view in enumerate(view_list):
                frames.append((ant, post)[images[view]][0])
                ew.append(wi + 1)
                dv.append(di + 1)
        return frames, ew, dv

    def build(
        view_list: list[str],
        *,
        series_uid: str,
        description: str,
        number: int,
        sop_uid: str,
        image_id: str | None,
    ) -> Dataset:
        frames, ew, dv = frames_for(view_list)
        stack = np.stack(frames)
        if int(stack.max(initial=0)) > 65535:
            raise InvalidInputError(
                f"planar counts {int(stack.max())} exceed 16 bits; lower --counts",
                code="invalid_option",
            )
        ds = _base(
            ident,
            sop_class=NuclearMedicineImageStorage,
            sop_instance_uid=sop_uid,
            series_uid=series_uid,
            modality="NM",
            series_number=number,
            series_description=description,
            series_datetime=acq_dt,
            instance_number=1,
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY", "WHOLE BODY", "EMISSION"]
        if image_id is not None:
            ds.ImageID = image_id
        if len(view_list) == 1:
            ds.PatientOrientation = ["L", "F"] if view_list[0] == "anterior" else ["R", "F"]
        else:
            ds.PatientOrientation = None
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = sim.geometry.rows, sim.geometry.cols
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelSpacing = [_ds(sim.geometry.pixel_mm), _ds(sim.geometry.pixel_mm)]
        ds.NumberOfFrames = len(frames)
        ds.FrameIncrementPointer = [Tag("EnergyWindowVector"), Tag("DetectorVector")]
        ds.EnergyWindowVector = ew
        ds.NumberOfEnergyWindows = len(windows)
        ds.DetectorVector = dv
        ds.NumberOfDetectors = len(view_list)
        ds.EnergyWindowInformationSequence = DicomSequence(
            [_energy_window(name, rngs) for name, rngs, _, _ in windows]
        )
        ds.RadiopharmaceuticalInformationSequence = DicomSequence(
            [_radiopharmaceutical(tracer, ident, dose=injected_activity_mbq, dose_unit_bq=False)]
        )
        ds.DetectorInformationSequence = DicomSequence(
            [
                _detector_item(view, with_view_code=with_code, with_orientation=with_orient)
                for view in view_list
            ]
        )
        ds.CountsAccumulated = int(stack.astype(np.int64).sum())
        ds.AcquisitionTerminationCondition = "MANU"
        ds.ActualFrameDuration = round(sim.frame_duration_s * 1000.0)
        ds.ScanVelocity = _ds(sim.scan_velocity_mm_s)
        ds.WholeBodyTechnique = ["1PS"]
        ds.ScanLength = round(sim.geometry.rows * sim.geometry.pixel_mm)
        ds.TableHeight = "120"
        _patient_orientation_codes(ds)
        ds.AcquisitionContextSequence = DicomSequence([])
        ds.LossyImageCompression = "00"
        ds.PixelData = stack.astype(np.uint16).tobytes()
        return ds

    out: list[WrittenSeries] = []
    if "separate-views" in v:
        for k, view in enumerate(["anterior", "posterior"]):
            short = "ANT" if view == "anterior" else "POST"
            series_uid = ident.uid("planar", hours_post_injection, view)
            desc = f"WB {hours_tag} {short}"
            sop = ident.uid("planar", hours_post_injection, view, "sop")
            ds = build(
                [view],
                series_uid=series_uid,
                description=desc,
                number=series_number + k,
                sop_uid=sop,
                image_id=view.upper(),
            )
            rel = f"NM_WB_{hours_tag}_{short}/NM0001.dcm"
            _save(ds, study_dir / rel, transfer_syntax)
            out.append(
                WrittenSeries(
                    role="planar_whole_body",
                    modality="NM",
                    series_instance_uid=series_uid,
                    series_description=desc,
                    files=(rel,),
                    sop_class_uid=str(ds.SOPClassUID),
                    transfer_syntax_uid=str(transfer_syntax),
                    hours_post_injection=hours_post_injection,
                )
            )
        return out
    series_uid = ident.uid("planar", hours_post_injection)
    desc = f"WB {hours_tag} ANT" if views == ["anterior"] else f"WB {hours_tag} ANT/POST"
    ds = build(
        views,
        series_uid=series_uid,
        description=desc,
        number=series_number,
        sop_uid=ident.uid("planar", hours_post_injection, "sop"),
        image_id=("ANTERIOR" if views == ["anterior"] else None),
    )
    rel = f"NM_WB_{hours_tag}/NM0001.dcm"
    _save(ds, study_dir / rel, transfer_syntax)
    out.append(
        WrittenSeries(
            role="planar_whole_body",
            modality="NM",
            series_instance_uid=series_uid,
            series_description=desc,
            files=(rel,),
            sop_class_uid=str(ds.SOPClassUID),
            transfer_syntax_uid=str(transfer_syntax),
            hours_post_injection=hours_post_injection,
        )
    )
    return out


# ---- tomography --------------------------------------------------------------------------


def _plane_geometry(ds: Dataset, grid: Grid, plane: int) -> None:
    dz, dy, dx = grid.spacing_mm
    ox, oy, oz = grid.origin_mm
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.ImagePositionPatient = [_ds(ox, 8), _ds(oy, 8), _ds(oz + plane * dz, 8)]
    ds.PixelSpacing = [_ds(dy, 8), _ds(dx, 8)]
    ds.SliceThickness = _ds(dz, 8)
    ds.SliceLocation = _ds(oz + plane * dz, 8)


def write_spect(
    study_dir: Path,
    image: TomoImage,
    ident: StudyIdentity,
    tracer: TracerInfo,
    *,
    injected_activity_mbq: float,
    hours_post_injection: float,
    frame_of_reference_uid: str,
    series_number: int,
    transfer_syntax: UID = ExplicitVRLittleEndian,
) -> WrittenSeries:
    """Reconstructed SPECT as one NM RECON TOMO multi-frame object (counts, uint16)."""
    grid = image.grid
    acq_dt = ident.injection_datetime + timedelta(hours=hours_post_injection, minutes=45)
    series_uid = ident.uid("spect")
    desc = f"SPECT ABDOMEN {hours_post_injection:g}H RECON"
    ds = _base(
        ident,
        sop_class=NuclearMedicineImageStorage,
        sop_instance_uid=ident.uid("spect", "sop"),
        series_uid=series_uid,
        modality="NM",
        series_number=series_number,
        series_description=desc,
        series_datetime=acq_dt,
        instance_number=1,
    )
    counts = np.clip(np.rint(image.array), 0, SPECT_COUNTS_MAX).astype(np.uint16)
    n = grid.shape[0]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = grid.shape[1], grid.shape[2]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    dz, dy, dx = grid.spacing_mm
    ds.PixelSpacing = [_ds(dy, 8), _ds(dx, 8)]
    ds.SliceThickness = _ds(dz, 8)
    ds.SpacingBetweenSlices = _ds(dz, 8)
    ds.NumberOfFrames = n
    ds.FrameIncrementPointer = [Tag("SliceVector")]
    ds.SliceVector = list(range(1, n + 1))
    ds.NumberOfSlices = n
    ds.NumberOfEnergyWindows = 1
    ds.NumberOfDetectors = 1
    ds.NumberOfRotations = 1
    ds.CountsAccumulated = int(counts.astype(np.int64).sum())
    ds.EnergyWindowInformationSequence = DicomSequence(
        [_energy_window("In111 171+245", list(IN111_WINDOWS_KEV))]
    )
    ds.RadiopharmaceuticalInformationSequence = DicomSequence(
        [_radiopharmaceutical(tracer, ident, dose=injected_activity_mbq, dose_unit_bq=False)]
    )
    det = _detector_item(None, with_view_code=False, with_orientation=False)
    ox, oy, oz = grid.origin_mm
    det.ImagePositionPatient = [_ds(ox, 8), _ds(oy, 8), _ds(oz, 8)]
    det.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.DetectorInformationSequence = DicomSequence([det])
    rot = Dataset()
    rot.StartAngle = "0"
    rot.AngularStep = "3"
    rot.RotationDirection = "CW"
    rot.ScanArc = "360"
    rot.ActualFrameDuration = 25000
    rot.NumberOfFramesInRotation = 60
    rot.RadialPosition = None
    rot.TableTraverse = "0"
    rot.TableHeight = "120"
    ds.RotationInformationSequence = DicomSequence([rot])
    ds.TypeOfDetectorMotion = "STEP AND SHOOT"
    ds.ReconstructionDiameter = _ds(grid.shape[2] * dx, 8)
    ds.ConvolutionKernel = "OSEM4i8s G8mm"
    _patient_orientation_codes(ds)
    ds.AcquisitionContextSequence = DicomSequence([])
    ds.CorrectedImage = ["UNIF", "COR", "ATTN", "SCAT"]
    ds.LossyImageCompression = "00"
    ds.PixelData = counts.tobytes()
    rel = "NM_SPECT/NM0001.dcm"
    _save(ds, study_dir / rel, transfer_syntax)
    return WrittenSeries(
        role="spect",
        modality="NM",
        series_instance_uid=series_uid,
        series_description=desc,
        files=(rel,),
        sop_class_uid=str(NuclearMedicineImageStorage),
        transfer_syntax_uid=str(transfer_syntax),
        hours_post_injection=hours_post_injection,
        frame_of_reference_uid=frame_of_reference_uid,
    )


def write_ct(
    study_dir: Path,
    image: TomoImage,
    ident: StudyIdentity,
    *,
    acquisition_datetime: datetime,
    frame_of_reference_uid: str,
    series_number: int,
    folder: str = "CT",
    transfer_syntax: UID = ExplicitVRLittleEndian,
) -> WrittenSeries:
    """CT in HU, one file per slice (InstanceNumber 1 = most superior slice)."""
    grid = image.grid
    series_uid = ident.uid("ct", folder)
    desc = "CT LOW DOSE AC"
    stored = np.clip(np.rint(image.array + 1024.0), 0, 4095).astype(np.uint16)
    files = []
    n = grid.shape[0]
    for k in range(n):
        plane = n - 1 - k  # superior first
        ds = _base(
            ident,
            sop_class=CTImageStorage,
            sop_instance_uid=ident.uid("ct", folder, plane),
            series_uid=series_uid,
            modality="CT",
            series_number=series_number,
            series_description=desc,
            series_datetime=acquisition_datetime,
            instance_number=k + 1,
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientPosition = "HFS"
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        _plane_geometry(ds, grid, plane)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = grid.shape[1], grid.shape[2]
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.KVP = "120"
        ds.AcquisitionNumber = 1
        ds.ConvolutionKernel = "B30f"
        ds.LossyImageCompression = "00"
        ds.PixelData = stored[plane].tobytes()
        rel = f"{folder}/CT{k + 1:04d}.dcm"
        _save(ds, study_dir / rel, transfer_syntax)
        files.append(rel)
    return WrittenSeries(
        role="ct",
        modality="CT",
        series_instance_uid=series_uid,
        series_description=desc,
        files=tuple(files),
        sop_class_uid=str(CTImageStorage),
        transfer_syntax_uid=str(transfer_syntax),
        frame_of_reference_uid=frame_of_reference_uid,
    )


def write_pet(
    study_dir: Path,
    image: TomoImage,
    ident: StudyIdentity,
    tracer: TracerInfo,
    *,
    injected_activity_mbq: float,
    hours_post_injection: float,
    frame_of_reference_uid: str,
    series_number: int,
    transfer_syntax: UID = ExplicitVRLittleEndian,
) -> WrittenSeries:
    """PET in Bq/mL (decay-corrected to the series start), one file per slice, SUV-ready."""
    grid = image.grid
    acq_dt = ident.injection_datetime + timedelta(hours=hours_post_injection)
    series_uid = ident.uid("pet")
    desc = "PET WB 68Ga-DOTATATE AC"
    n = grid.shape[0]
    files = []
    for k in range(n):
        plane = n - 1 - k
        values = image.array[plane]
        vmax = float(values.max())
        slope = vmax / 32767.0 if vmax > 0 else 1.0
        stored = np.clip(np.rint(values / slope), 0, 32767).astype(np.int16)
        ds = _base(
            ident,
            sop_class=PositronEmissionTomographyImageStorage,
            sop_instance_uid=ident.uid("pet", plane),
            series_uid=series_uid,
            modality="PT",
            series_number=series_number,
            series_description=desc,
            series_datetime=acq_dt,
            instance_number=k + 1,
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        _plane_geometry(ds, grid, plane)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = grid.shape[1], grid.shape[2]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = _ds(slope, 10)
        ds.Units = "BQML"
        ds.CountsSource = "EMISSION"
        ds.SeriesType = ["WHOLE BODY", "IMAGE"]
        ds.NumberOfSlices = n
        ds.CorrectedImage = ["DECY", "ATTN", "SCAT", "DTIM", "RAN", "NORM"]
        ds.DecayCorrection = "START"
        ds.DecayFactor = "1"
        ds.RandomsCorrectionMethod = "DLYD"
        ds.ReconstructionMethod = "OSEM 3i21s"
        ds.CollimatorType = "NONE"
        ds.ImageIndex = k + 1
        ds.FrameReferenceTime = "0"
        ds.ActualFrameDuration = 120000
        ds.RadiopharmaceuticalInformationSequence = DicomSequence(
            [_radiopharmaceutical(tracer, ident, dose=injected_activity_mbq, dose_unit_bq=True)]
        )
        _patient_orientation_codes(ds)
        ds.AcquisitionContextSequence = DicomSequence([])
        ds.LossyImageCompression = "00"
        ds.PixelData = stored.tobytes()
        rel = f"PET/PT{k + 1:04d}.dcm"
        _save(ds, study_dir / rel, transfer_syntax)
        files.append(rel)
    return WrittenSeries(
        role="pet",
        modality="PT",
        series_instance_uid=series_uid,
        series_description=desc,
        files=tuple(files),
        sop_class_uid=str(PositronEmissionTomographyImageStorage),
        transfer_syntax_uid=str(transfer_syntax),
        hours_post_injection=hours_post_injection,
        frame_of_reference_uid=frame_of_reference_uid,
    )
