"""Small CT, PET and NM RECON TOMO DICOM files built in code for the volume loader tests.

Pixel values encode their own position so tests can check ordering by eye:

* CT: stored value ``1000 + 100 * k + 10 * r + c`` for spatial slice k (0 = lowest along the
  normal), row r, column c; RescaleIntercept -1024, so HU = ``100 k + 10 r + c - 24``.
* PET: stored ``100 * k + 10 * r + c + 1`` with RescaleSlope ``slope`` (per slice).
* NM RECON TOMO: slice number s (1-based, SliceVector) holds ``100 * s + 10 * r + c``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    NuclearMedicineImageStorage,
    PositronEmissionTomographyImageStorage,
    generate_uid,
)

AXIAL_IOP = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SLICE_VECTOR_TAG = 0x00540080


@dataclass(frozen=True)
class BuiltSeries:
    """Files written, in write order (shuffled), and the IPPs in spatial order."""

    paths: tuple[Path, ...]
    ipps: tuple[tuple[float, float, float], ...]


def uid(*parts: object) -> str:
    """A deterministic UID from ``parts``."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def image_dataset(
    *,
    sop_class: str,
    modality: str,
    pixels: np.ndarray,
    series_key: str,
    instance: int,
    ipp: Sequence[float] | None = None,
    iop: Sequence[float] | None = AXIAL_IOP,
    pixel_spacing: Sequence[float] | None = (0.8, 0.7),
) -> Dataset:
    """A minimal single- or multi-frame image dataset with File Meta (Explicit VR LE)."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid(series_key, "instance", instance)
    ds.file_meta = _file_meta(sop_class, ds.SOPInstanceUID)
    ds.Modality = modality
    ds.StudyInstanceUID = uid("study", series_key)
    ds.SeriesInstanceUID = uid("series", series_key)
    ds.FrameOfReferenceUID = uid("for", series_key)
    ds.InstanceNumber = instance
    ds.Manufacturer = "OCTOSCAN TEST"
    if ipp is not None:
        ds.ImagePositionPatient = [float(v) for v in ipp]
    if iop is not None:
        ds.ImageOrientationPatient = [float(v) for v in iop]
    if pixel_spacing is not None:
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
    _set_pixels(ds, pixels)
    return ds


def _set_pixels(ds: Dataset, pixels: np.ndarray) -> None:
    arr = np.asarray(pixels)
    frames = arr.shape[0] if arr.ndim == 3 else 1
    ds.Rows, ds.Columns = int(arr.shape[-2]), int(arr.shape[-1])
    if arr.ndim == 3:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if arr.dtype == np.int16 else 0
    ds.PixelData = arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def write(ds: Dataset, path: Path) -> Path:
    """Save ``ds`` as a DICOM Part 10 file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _slice_positions(
    n: int, *, step_mm: float, z0: float, shift_per_slice_mm: float, skip: Sequence[int]
) -> list[tuple[int, tuple[float, float, float]]]:
    """(spatial index, IPP) for slices 0..n-1 minus ``skip`` (missing slices)."""
    return [
        (k, (-5.0, -4.0 + shift_per_slice_mm * k, z0 + step_mm * k))
        for k in range(n)
        if k not in set(skip)
    ]


def _shuffled(items: list, seed: int) -> list:
    out = list(items)
    random.Random(seed).shuffle(out)
    return out


def ct_series(
    folder: Path,
    *,
    n: int = 5,
    rows: int = 4,
    cols: int = 3,
    step_mm: float = 2.5,
    z0: float = -10.0,
    skip: Sequence[int] = (),
    shift_per_slice_mm: float = 0.0,
    gantry_tilt_deg: float | None = None,
    seed: int = 1,
    series_key: str = "ct",
) -> BuiltSeries:
    """CT slices (one file each) written in shuffled order; InstanceNumber is reversed
    against the spatial order so a loader sorting by it would fail."""
    placed = _slice_positions(
        n, step_mm=step_mm, z0=z0, shift_per_slice_mm=shift_per_slice_mm, skip=skip
    )
    paths = []
    for k, ipp in _shuffled(placed, seed):
        ds = ct_slice(k, ipp, rows=rows, cols=cols, series_key=series_key, n=n)
        if gantry_tilt_deg is not None:
            ds.GantryDetectorTilt = gantry_tilt_deg
        paths.append(write(ds, folder / f"slice_{k:03d}.dcm"))
    return BuiltSeries(tuple(paths), tuple(ipp for _, ipp in placed))


def ct_values(k: int, rows: int, cols: int) -> np.ndarray:
    """Stored CT values of spatial slice ``k`` (see module docstring)."""
    r, c = np.mgrid[0:rows, 0:cols]
    return (1000 + 100 * k + 10 * r + c).astype(np.int16)


def ct_slice(
    k: int,
    ipp: Sequence[float],
    *,
    rows: int = 4,
    cols: int = 3,
    series_key: str = "ct",
    n: int = 5,
    iop: Sequence[float] = AXIAL_IOP,
) -> Dataset:
    """One CT slice for spatial index ``k`` at ``ipp``."""
    ds = image_dataset(
        sop_class=CTImageStorage,
        modality="CT",
        pixels=ct_values(k, rows, cols),
        series_key=series_key,
        instance=n - k,
        ipp=ipp,
        iop=iop,
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.RescaleSlope = 1
    ds.RescaleIntercept = -1024
    ds.SliceThickness = 2.5
    return ds


# ---------------------------------------------------------------------------- PET


@dataclass(frozen=True)
class PetFacts:
    """SUV-relevant header values of a built PET series."""

    units: str = "BQML"
    decay_correction: str = "START"
    weight_kg: float | None = 75.0
    dose_bq: float | None = 370e6
    half_life_s: float | None = 6586.2
    injection_datetime: str | None = "20240102100000.000000"
    injection_time: str | None = "100000"
    series_date: str = "20240102"
    series_time: str = "110000"
    acquisition_times: tuple[str, ...] = ("110000",)
    corrected_image: tuple[str, ...] | None = ("ATTN", "DECY")
    slope: float = 0.5
    philips_suv_factor: str | None = None
    philips_bq_factor: str | None = None
    radionuclide_code: str = "77004003"
    manufacturer: str = "OCTOSCAN TEST"
    model: str = "PET 1"
    sop_class: str = PositronEmissionTomographyImageStorage


def pet_values(k: int, rows: int, cols: int) -> np.ndarray:
    """Stored PET values of spatial slice ``k`` (see module docstring)."""
    r, c = np.mgrid[0:rows, 0:cols]
    return (100 * k + 10 * r + c + 1).astype(np.int16)


def _radiopharmaceutical(facts: PetFacts) -> Dataset:
    item = Dataset()
    code = Dataset()
    code.CodeValue = facts.radionuclide_code
    code.CodingSchemeDesignator = "SCT"
    code.CodeMeaning = "radionuclide"
    item.RadionuclideCodeSequence = DicomSequence([code])
    if facts.injection_datetime is not None:
        item.RadiopharmaceuticalStartDateTime = facts.injection_datetime
    if facts.injection_time is not None:
        item.RadiopharmaceuticalStartTime = facts.injection_time
    if facts.dose_bq is not None:
        item.RadionuclideTotalDose = facts.dose_bq
    if facts.half_life_s is not None:
        item.RadionuclideHalfLife = facts.half_life_s
    return item


def _pet_headers(ds: Dataset, facts: PetFacts, k: int) -> None:
    ds.Units = facts.units
    ds.DecayCorrection = facts.decay_correction
    ds.Manufacturer = facts.manufacturer
    ds.ManufacturerModelName = facts.model
    if facts.weight_kg is not None:
        ds.PatientWeight = facts.weight_kg
    if facts.corrected_image is not None:
        ds.CorrectedImage = list(facts.corrected_image)
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = facts.series_date
    ds.SeriesTime = facts.series_time
    ds.AcquisitionTime = facts.acquisition_times[k % len(facts.acquisition_times)]
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([_radiopharmaceutical(facts)])
    ds.RescaleSlope = facts.slope
    ds.RescaleIntercept = 0
    ds.SliceThickness = 3.0
    if facts.philips_suv_factor is not None or facts.philips_bq_factor is not None:
        block = ds.private_block(0x7053, "Philips PET Private Group", create=True)
        if facts.philips_suv_factor is not None:
            block.add_new(0x00, "DS", facts.philips_suv_factor)
        if facts.philips_bq_factor is not None:
            block.add_new(0x09, "DS", facts.philips_bq_factor)


def pet_series(
    folder: Path,
    facts: PetFacts = PetFacts(),
    *,
    n: int = 3,
    rows: int = 4,
    cols: int = 3,
    step_mm: float = 3.0,
    series_key: str = "pet",
) -> BuiltSeries:
    """PET slices (one file each, shuffled) with the SUV attributes of ``facts``."""
    placed = _slice_positions(n, step_mm=step_mm, z0=-20.0, shift_per_slice_mm=0.0, skip=())
    paths = []
    for k, ipp in _shuffled(placed, 7):
        ds = image_dataset(
            sop_class=facts.sop_class,
            modality="PT",
            pixels=pet_values(k, rows, cols),
            series_key=series_key,
            instance=k + 1,
            ipp=ipp,
            pixel_spacing=(4.0, 4.0),
        )
        _pet_headers(ds, facts, k)
        paths.append(write(ds, folder / f"pet_{k:03d}.dcm"))
    return BuiltSeries(tuple(paths), tuple(ipp for _, ipp in placed))


# ---------------------------------------------------------------------------- NM RECON TOMO


def nm_values(slice_number: int, rows: int, cols: int) -> np.ndarray:
    """Stored NM values of 1-based SliceVector ``slice_number``."""
    r, c = np.mgrid[0:rows, 0:cols]
    return (100 * slice_number + 10 * r + c).astype(np.uint16)


def nm_recon_tomo(
    path: Path,
    *,
    n_slices: int = 4,
    rows: int = 5,
    cols: int = 6,
    spacing_between_slices: float | None = 4.0,
    slice_thickness: float | None = 4.0,
    detector_ipp: Sequence[float] | None = (-10.0, -12.0, 30.0),
    detector_iop: Sequence[float] | None = AXIAL_IOP,
    top_level_geometry: bool = False,
    frame_slice_numbers: Sequence[int] | None = None,
    image_type: str = "RECON TOMO",
    rwvm: tuple[float, float, str] | None = None,
    pixel_spacing: Sequence[float] | None = (4.0, 4.0),
    extra_vector: tuple[str, list[int]] | None = None,
) -> Path:
    """One NM Image Storage RECON TOMO object; frame f holds slice ``frame_slice_numbers[f]``
    (default: reversed order). ``rwvm`` = (slope, intercept, UCUM unit code)."""
    numbers = list(frame_slice_numbers or range(n_slices, 0, -1))
    pixels = np.stack([nm_values(s, rows, cols) for s in numbers])
    ds = image_dataset(
        sop_class=NuclearMedicineImageStorage,
        modality="NM",
        pixels=pixels,
        series_key=f"nm-{path.name}",
        instance=1,
        ipp=detector_ipp if top_level_geometry else None,
        iop=detector_iop if top_level_geometry else None,
        pixel_spacing=pixel_spacing,
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY", image_type, "EMISSION"]
    pointers = [SLICE_VECTOR_TAG]
    ds.SliceVector = numbers
    ds.NumberOfSlices = n_slices
    if extra_vector is not None:
        keyword, values = extra_vector
        setattr(ds, keyword, values)
        pointers.append(_tag_of(keyword))
    ds.FrameIncrementPointer = pointers if len(pointers) > 1 else pointers[0]
    if spacing_between_slices is not None:
        ds.SpacingBetweenSlices = spacing_between_slices
    if slice_thickness is not None:
        ds.SliceThickness = slice_thickness
    detector = Dataset()
    if not top_level_geometry and detector_ipp is not None:
        detector.ImagePositionPatient = [float(v) for v in detector_ipp]
    if not top_level_geometry and detector_iop is not None:
        detector.ImageOrientationPatient = [float(v) for v in detector_iop]
    ds.DetectorInformationSequence = DicomSequence([detector])
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([_nm_radiopharmaceutical()])
    ds.AcquisitionDate = "20240103"
    ds.AcquisitionTime = "120000"
    if rwvm is not None:
        ds.RealWorldValueMappingSequence = DicomSequence([rwvm_item(*rwvm)])
    return write(ds, path)


def _tag_of(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return tag


def _nm_radiopharmaceutical() -> Dataset:
    item = Dataset()
    code = Dataset()
    code.CodeValue = "56609000"
    code.CodingSchemeDesignator = "SCT"
    code.CodeMeaning = "^111^Indium"
    item.RadionuclideCodeSequence = DicomSequence([code])
    item.RadiopharmaceuticalStartDateTime = "20240102120000"
    item.RadionuclideTotalDose = 185.0  # MBq in NM objects
    item.RadionuclideHalfLife = 242326.0
    return item


def rwvm_item(slope: float, intercept: float, unit_code: str) -> Dataset:
    """A RealWorldValueMappingSequence item mapping stored values 0..65535 linearly."""
    item = Dataset()
    item.RealWorldValueFirstValueMapped = 0
    item.RealWorldValueLastValueMapped = 65535
    item.RealWorldValueSlope = slope
    item.RealWorldValueIntercept = intercept
    item.LUTExplanation = "test mapping"
    item.LUTLabel = "TEST"
    units = Dataset()
    units.CodeValue = unit_code
    units.CodingSchemeDesignator = "UCUM"
    units.CodeMeaning = unit_code
    item.MeasurementUnitsCodeSequence = DicomSequence([units])
    return item


def truncate_pixel_data(path: Path, n_bytes: int) -> Path:
    """Cut the last ``n_bytes`` of ``path`` (its pixel data: the last element)."""
    data = path.read_bytes()
    path.write_bytes(data[:-n_bytes])
    return path
