"""Planar NM (and neighbour) DICOM objects built in code for discovery, view and planar tests.

Frame values encode what they are so sums can be checked by hand: a planar frame of
detector ``d`` in energy window ``w`` (1-based) is filled with ``100 * d + 10 * w`` counts
per pixel (plus ``frame_bias`` when given). Files carry a fake patient ("Doe^Jane",
"SECRET-ID") so tests can check that identifiers never reach an output.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    MPEG2MPML,
    CTImageStorage,
    ExplicitVRLittleEndian,
    NuclearMedicineImageStorage,
    PositronEmissionTomographyImageStorage,
    RTStructureSetStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)

PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "SECRET-ID"
ANTERIOR = ("399321004", "SCT", "Anterior projection")
POSTERIOR = ("399001007", "SCT", "Posterior projection")
ANTERIOR_SRT = ("G-5215", "SRT", "Anterior projection")
POSTERIOR_SRT = ("G-5216", "SRT", "Posterior projection")
LEFT_LATERAL = ("399118008", "SCT", "Left lateral projection")
# Anterior view: row towards patient left, column towards feet (normal +y).
IOP_ANTERIOR = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
IOP_POSTERIOR = (-1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
IN111_WINDOWS = (("In111_171", 154.0, 188.0), ("In111_245", 221.0, 270.0))
SCATTER_BY_NAME = ("SC1", 120.0, 140.0)
SCATTER_BY_LIMITS = ("EM3", 195.0, 215.0)  # between In-111 peaks: contains no photopeak


def uid(*parts: object) -> str:
    """A deterministic UID from ``parts``."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


@dataclass(frozen=True)
class Window:
    """An energy window: name and limits in keV (None for no EnergyWindowRangeSequence)."""

    name: str | None
    lower_kev: float | None = None
    upper_kev: float | None = None


def code_item(code: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


def _meta(
    sop_class: str, sop_instance: str, syntax: str = ExplicitVRLittleEndian
) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = syntax
    return meta


def base_dataset(
    *, sop_class: str, modality: str, series_key: str, instance: int = 1, study_key: str = "study"
) -> Dataset:
    """Identifiers and patient module common to every built object."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid(series_key, "instance", instance)
    ds.file_meta = _meta(sop_class, ds.SOPInstanceUID)
    ds.StudyInstanceUID = uid(study_key)
    ds.SeriesInstanceUID = uid("series", series_key)
    ds.Modality = modality
    ds.InstanceNumber = instance
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.Manufacturer = "OCTOSCAN TEST"
    ds.StudyDate = "20240301"
    ds.StudyTime = "090000"
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.SeriesDate = "20240302"
    ds.AcquisitionDate = "20240302"
    ds.AcquisitionTime = "100000"
    ds.SeriesTime = "100000"
    return ds


def set_pixels(ds: Dataset, frames: np.ndarray) -> None:
    """uint16 pixel data; ``frames`` is (frame, row, col) or (row, col)."""
    arr = np.asarray(frames, dtype=np.uint16)
    ds.Rows, ds.Columns = int(arr.shape[-2]), int(arr.shape[-1])
    if arr.ndim == 3:
        ds.NumberOfFrames = int(arr.shape[0])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = arr.astype("<u2").tobytes()


def radiopharmaceutical(
    nuclide: str = "In-111", *, dose_mbq: float = 200.0, injected: str = "20240301100000"
) -> Dataset:
    """RadiopharmaceuticalInformationSequence item (NM: dose in MBq)."""
    codes = {
        "In-111": ("56609000", "SCT", "^111^Indium"),
        "Tc-99m": ("72454006", "SCT", "^99m^Technetium"),
        "Lu-177": ("447553000", "SCT", "^177^Lutetium"),
    }
    item = Dataset()
    item.RadionuclideCodeSequence = DicomSequence([code_item(codes[nuclide])])
    item.RadionuclideTotalDose = f"{dose_mbq:g}"
    item.RadiopharmaceuticalStartDateTime = injected
    item.Radiopharmaceutical = "pentetreotide"
    return item


def detector_item(
    *,
    view: tuple[str, str, str] | None = None,
    iop: Sequence[float] | None = None,
    start_angle: float | None = None,
) -> Dataset:
    item = Dataset()
    item.CollimatorType = "PARA"
    item.FocalDistance = 0
    if view is not None:
        item.ViewCodeSequence = DicomSequence([code_item(view)])
    else:
        item.ViewCodeSequence = DicomSequence([])
    if iop is not None:
        item.ImageOrientationPatient = [float(v) for v in iop]
    if start_angle is not None:
        item.StartAngle = f"{start_angle:g}"
    return item


def window_item(window: Window) -> Dataset:
    item = Dataset()
    if window.name is not None:
        item.EnergyWindowName = window.name
    if window.lower_kev is not None and window.upper_kev is not None:
        r = Dataset()
        r.EnergyWindowLowerLimit = f"{window.lower_kev:g}"
        r.EnergyWindowUpperLimit = f"{window.upper_kev:g}"
        item.EnergyWindowRangeSequence = DicomSequence([r])
    return item


def planar_value(detector: int, window: int) -> int:
    """Counts per pixel of the frame of ``detector`` and ``window`` (both 1-based)."""
    return 100 * detector + 10 * window


def nm_planar(
    *,
    series_key: str = "wb",
    instance: int = 1,
    image_type: str = "WHOLE BODY",
    detectors: Sequence[Dataset] | None = None,
    windows: Sequence[Window] = (Window(*IN111_WINDOWS[0]), Window(*IN111_WINDOWS[1])),
    nuclide: str = "In-111",
    shape: tuple[int, int] = (8, 6),
    pixel_spacing: Sequence[float] | None = (4.0, 4.0),
    detector_numbers: Sequence[int] | None = None,
    patient_position: str | None = "HFS",
    patient_orientation: Sequence[str] | None = None,
    series_description: str | None = None,
    image_id: str | None = None,
    study_key: str = "study",
    frame_values: Callable[[int, int], np.ndarray] | None = None,
    acquisition_time: str = "100000",
) -> Dataset:
    """A planar NM Image Storage object, frames ordered detector-major then window.

    ``detectors`` defaults to two heads with SCT anterior/posterior ViewCodeSequence;
    ``detector_numbers`` (1-based) overrides the detectors named by the DetectorVector (e.g.
    ``[2]`` for a single-view file of head 2).
    """
    if detectors is None:
        detectors = [detector_item(view=ANTERIOR), detector_item(view=POSTERIOR)]
    numbers = list(detector_numbers or range(1, len(detectors) + 1))
    ds = base_dataset(
        sop_class=NuclearMedicineImageStorage,
        modality="NM",
        series_key=series_key,
        instance=instance,
        study_key=study_key,
    )
    ds.AcquisitionTime = acquisition_time
    ds.ImageType = ["ORIGINAL", "PRIMARY", image_type, "EMISSION"]
    det_vec, win_vec, frames = [], [], []
    for d in numbers:
        for w in range(1, len(windows) + 1):
            det_vec.append(d)
            win_vec.append(w)
            if frame_values is not None:
                frames.append(frame_values(d, w))
            else:
                frames.append(np.full(shape, planar_value(d, w)))
    set_pixels(ds, np.stack(frames))
    ds.FrameIncrementPointer = [0x00540010, 0x00540020]
    ds.EnergyWindowVector = win_vec
    ds.DetectorVector = det_vec
    ds.NumberOfEnergyWindows = len(windows)
    ds.NumberOfDetectors = len(detectors) if detector_numbers is None else max(numbers)
    if detector_numbers is not None and len(detectors) < max(numbers):
        # single-view file of head N: the detector sequence still lists every head
        detectors = [*detectors, *[detector_item() for _ in range(max(numbers) - len(detectors))]]
        ds.NumberOfDetectors = len(detectors)
    ds.DetectorInformationSequence = DicomSequence(list(detectors))
    ds.EnergyWindowInformationSequence = DicomSequence([window_item(w) for w in windows])
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([radiopharmaceutical(nuclide)])
    ds.ActualFrameDuration = 600000
    if pixel_spacing is not None:
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
    if patient_position is not None:
        ds.PatientPosition = patient_position
    if patient_orientation is not None:
        ds.PatientOrientation = list(patient_orientation)
    if series_description is not None:
        ds.SeriesDescription = series_description
    if image_id is not None:
        ds.ImageID = image_id
    return ds


def nm_dynamic(
    *, series_key: str = "dyn", phases: Sequence[tuple[int, int]] = ((2, 30000), (1, 60000))
) -> Dataset:
    """NM DYNAMIC, one detector (anterior code), one Tc-99m window; ``phases`` are
    (frames in phase, ActualFrameDuration ms). Frame k (0-based, in time order) holds k + 1."""
    ds = base_dataset(sop_class=NuclearMedicineImageStorage, modality="NM", series_key=series_key)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "DYNAMIC", "EMISSION"]
    n = sum(p[0] for p in phases)
    set_pixels(ds, np.stack([np.full((4, 4), k + 1) for k in range(n)]))
    ds.FrameIncrementPointer = [0x00540010, 0x00540020, 0x00540030, 0x00540100]
    ds.EnergyWindowVector = [1] * n
    ds.DetectorVector = [1] * n
    ds.PhaseVector = [i + 1 for i, (count, _) in enumerate(phases) for _ in range(count)]
    ds.TimeSliceVector = [j + 1 for count, _ in phases for j in range(count)]
    items = []
    for count, ms in phases:
        item = Dataset()
        item.ActualFrameDuration = ms
        item.NumberOfFramesInPhase = count
        items.append(item)
    ds.PhaseInformationSequence = DicomSequence(items)
    ds.DetectorInformationSequence = DicomSequence([detector_item(view=ANTERIOR)])
    ds.EnergyWindowInformationSequence = DicomSequence([window_item(Window("Tc", 126.0, 154.0))])
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([radiopharmaceutical("Tc-99m")])
    ds.ActualFrameDuration = 30000
    ds.PixelSpacing = [2.0, 2.0]
    return ds


def nm_tomo(*, series_key: str = "tomo", image_type: str = "TOMO") -> Dataset:
    """Raw SPECT projections (4 angles, 2 heads)."""
    ds = base_dataset(sop_class=NuclearMedicineImageStorage, modality="NM", series_key=series_key)
    ds.ImageType = ["ORIGINAL", "PRIMARY", image_type, "EMISSION"]
    set_pixels(ds, np.ones((4, 4, 4)))
    ds.FrameIncrementPointer = [0x00540010, 0x00540020, 0x00540050, 0x00540090]
    ds.EnergyWindowVector = [1, 1, 1, 1]
    ds.DetectorVector = [1, 1, 2, 2]
    ds.RotationVector = [1, 1, 1, 1]
    ds.AngularViewVector = [1, 2, 1, 2]
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([radiopharmaceutical()])
    return ds


def nm_recon_tomo_header(*, series_key: str = "recon") -> Dataset:
    """A small NM RECON TOMO object (3 slices)."""
    ds = base_dataset(sop_class=NuclearMedicineImageStorage, modality="NM", series_key=series_key)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    set_pixels(ds, np.ones((3, 4, 4)))
    ds.FrameIncrementPointer = 0x00540080
    ds.SliceVector = [1, 2, 3]
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([radiopharmaceutical()])
    return ds


def sc_whole_body(
    *,
    series_key: str = "sc",
    side_by_side: bool = True,
    pixel_spacing: Sequence[float] | None = (30.0, 30.0),
    image_comments: str | None = None,
) -> Dataset:
    """NM whole-body image stored as Secondary Capture (DERIVED).

    Side by side: 40 rows x 30 columns, a 10-column body of 5 counts/pixel on the left
    (columns 2-11) and one of 7 counts/pixel on the right (columns 18-27); otherwise a single
    40 x 12 body of 5 counts/pixel in a 40 x 14 image.
    """
    ds = base_dataset(sop_class=SecondaryCaptureImageStorage, modality="NM", series_key=series_key)
    ds.ImageType = ["DERIVED", "PRIMARY", "WHOLE BODY", "EMISSION"]
    ds.ConversionType = "WSD"
    if side_by_side:
        img = np.zeros((40, 30))
        img[2:38, 2:12] = 5
        img[2:38, 18:28] = 7
    else:
        img = np.zeros((40, 14))
        img[2:38, 1:13] = 5
    set_pixels(ds, img)
    if pixel_spacing is not None:
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
    if image_comments is not None:
        ds.ImageComments = image_comments
    return ds


def ct_slice(
    *, series_key: str = "ct", instance: int = 1, shape: tuple[int, int] = (4, 4)
) -> Dataset:
    ds = base_dataset(
        sop_class=CTImageStorage, modality="CT", series_key=series_key, instance=instance
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [0.0, 0.0, float(instance)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [1.0, 1.0]
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    set_pixels(ds, np.full(shape, 1024))
    return ds


def pet_slice(
    *,
    series_key: str = "pet",
    manufacturer: str = "GE MEDICAL SYSTEMS",
    nuclide_code=("77004003", "SCT", "^18^Fluorine"),
) -> Dataset:
    ds = base_dataset(
        sop_class=PositronEmissionTomographyImageStorage, modality="PT", series_key=series_key
    )
    ds.Manufacturer = manufacturer
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Units = "BQML"
    item = Dataset()
    item.RadionuclideCodeSequence = DicomSequence([code_item(nuclide_code)])
    item.RadionuclideTotalDose = "200000000"
    item.RadiopharmaceuticalStartDateTime = "20240302090000"
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([item])
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [2.0, 2.0]
    set_pixels(ds, np.ones((4, 4)))
    return ds


def rtstruct(*, series_key: str = "rt") -> Dataset:
    ds = base_dataset(sop_class=RTStructureSetStorage, modality="RTSTRUCT", series_key=series_key)
    ds.StructureSetLabel = "lesions"
    return ds


def write(ds: Dataset, path: Path, *, preamble: bool = True) -> Path:
    """Save ``ds`` at ``path``: DICOM Part 10, or (``preamble=False``) a bare implicit VR
    little endian data set with no preamble and no File Meta (ACR-NEMA style)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:
        bare = Dataset(ds)  # elements only: no preamble, no File Meta
        bare.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    return path


def write_unsupported_syntax(ds: Dataset, path: Path) -> Path:
    """Save ``ds`` with encapsulated pixel data under MPEG2 (no decoder available)."""
    ds = Dataset(ds)
    ds.file_meta = _meta(ds.SOPClassUID, ds.SOPInstanceUID, MPEG2MPML)
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 12])
    ds["PixelData"].VR = "OB"
    return write(ds, path)


def truncate(path: Path, *, keep_bytes: int | None = None, drop_bytes: int | None = None) -> Path:
    """Cut a file to ``keep_bytes`` or remove its last ``drop_bytes``."""
    data = path.read_bytes()
    size = keep_bytes if keep_bytes is not None else len(data) - int(drop_bytes or 0)
    path.write_bytes(data[:size])
    return path


def write_dicomdir(instances: Sequence[Dataset], folder: Path) -> Path:
    """A DICOMDIR file set (pydicom FileSet) holding ``instances``; returns the DICOMDIR."""
    from pydicom.fileset import FileSet

    fs = FileSet()
    for ds in instances:
        fs.add(ds)
    folder.mkdir(parents=True, exist_ok=True)
    fs.write(folder)
    fs._stage["t"].cleanup()  # pydicom keeps a staging TemporaryDirectory until exit
    return folder / "DICOMDIR"


def write_text(path: Path, text: str = "not a DICOM file\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def copy(path: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    return dest
