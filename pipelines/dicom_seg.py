"""DICOM Segmentation (BINARY) of lesions and reference regions on an emission volume's grid.

The segments live on the grid of the source emission object (reconstructed SPECT or PET),
frame for frame: a SEG frame references the source frame (or single-frame image) it
segments, so any viewer lays it over the source without resampling.

Source kinds:

* one multi-frame NM object (RECON TOMO): highdicom finds no per-frame geometry in an NM
  object, so the header copy handed to it gets per-frame Plane Position and shared Plane
  Orientation / Pixel Measures functional groups computed from the Volume's affine. The
  frame order is the loader's (SliceVector, stable sort); the source pixels are decoded and
  compared with ``Volume.array`` to prove the mapping before anything is written.
* single-frame images, one per plane (PET, quantitative SPECT stored as PET): each file's
  ImagePositionPatient is mapped to a plane of the Volume; planes without a file (slices the
  loader interpolated into a gap) are left out of the SEG, with a log warning when a mask
  reaches into them.

Planar NM has no frame of reference: planar regions go to the SR as SCOORD instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.tag import Tag

from octoscan.imaging.dicom_io import read_dataset, read_header
from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.pixels import decode_frames_with_info
from octoscan.imaging.render import GRADE_COLOURS, REFERENCE_COLOUR, UNGRADED_COLOUR
from octoscan.imaging.types import Volume
from octoscan.models.types import Lesion, ReferenceRegion
from octoscan.pipelines.dicom_sr import (
    algorithm_family,
    lesion_site_code,
    lesion_tracking_id,
    organ_code,
    reference_tracking_id,
)
from octoscan.pipelines.dicom_uids import MANUFACTURER, ObjectIdentity, ds_value

log = logging.getLogger(__name__)

SEG_CONTENT_LABEL = "OCTOSCAN"
POSITION_TOLERANCE = 0.01  # plane/row/col index units: a source file sits on a Volume plane
_SLICE_VECTOR = Tag(0x0054, 0x0080)
_DEVICE_SERIAL = "0"


@dataclass(frozen=True)
class SegmentSpec:
    """One segment: a boolean ``mask`` (plane, row, col) on the Volume's grid and its meaning.

    ``kind`` is "lesion" or "reference"; ``anatomy`` the coded site (None when not coded);
    ``tracking_id``/``tracking_uid`` are shared with the SR's measurement group of the same
    finding, so SR and SEG name one finding alike.
    """

    label: str
    kind: str
    anatomy: Code | None
    tracking_id: str
    tracking_uid: str
    rgb: tuple[int, int, int]
    algorithm_family: Code
    mask: np.ndarray = field(compare=False, repr=False)


def segment_specs(
    lesions: Sequence[Lesion],
    references: Sequence[ReferenceRegion],
    identity: ObjectIdentity,
    *,
    part: str,
    shape: tuple[int, int, int],
) -> list[SegmentSpec]:
    """Segments for the lesions and references that have a non-empty mask of ``shape``.

    ``part`` names the emission series (it goes into the tracking UIDs). Raises ValueError
    for a mask on another grid.
    """
    specs: list[SegmentSpec] = []
    for les in lesions:
        if les.mask is None or not les.mask.any():
            continue
        _check_mask(les.mask, shape, f"lesion {les.id}")
        tid = lesion_tracking_id(les.id)
        colour = GRADE_COLOURS[les.grade] if les.grade is not None else UNGRADED_COLOUR
        specs.append(
            SegmentSpec(
                label=tid,
                kind="lesion",
                anatomy=lesion_site_code(les.region),
                tracking_id=tid,
                tracking_uid=identity.uid("tracking", part, tid),
                rgb=colour,
                algorithm_family=algorithm_family(les.source),
                mask=les.mask,
            )
        )
    for ref in references:
        if ref.mask is None or not ref.mask.any():
            continue
        tid = reference_tracking_id(ref.organ)
        _check_mask(ref.mask, shape, tid)
        specs.append(
            SegmentSpec(
                label=tid,
                kind="reference",
                anatomy=organ_code(ref.organ),
                tracking_id=tid,
                tracking_uid=identity.uid("tracking", part, tid),
                rgb=REFERENCE_COLOUR,
                algorithm_family=algorithm_family("threshold"),
                mask=ref.mask,
            )
        )
    return specs


def _check_mask(mask: np.ndarray, shape: tuple[int, int, int], what: str) -> None:
    if mask.shape != shape:
        raise ValueError(
            f"{what}: mask shape {mask.shape}; expected the emission volume's {shape} "
            "(plane, row, col)"
        )


def _description(spec: SegmentSpec, number: int, version: str) -> hd.seg.SegmentDescription:
    if spec.kind == "lesion":
        category, prop = codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Lesion
    else:
        category, prop = codes.SCT.SpatialAndRelationalConcept, codes.NCIt.ReferenceRegion
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=spec.label,
        segmented_property_category=category,
        segmented_property_type=prop,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=MANUFACTURER, family=spec.algorithm_family, version=version
        ),
        tracking_uid=spec.tracking_uid,
        tracking_id=spec.tracking_id,
        anatomic_regions=[spec.anatomy] if spec.anatomy is not None else None,
        display_color=hd.color.CIELabColor.from_rgb(*spec.rgb),
    )


def _slice_order(ds: Dataset, n_frames: int) -> np.ndarray:
    """Frame index of each plane, as the SPECT loader stacks them (SliceVector order)."""
    pointers = ds.get("FrameIncrementPointer")
    tags = [] if pointers is None else [pointers] if isinstance(pointers, int) else list(pointers)
    if _SLICE_VECTOR not in [Tag(t) for t in tags] or "SliceVector" not in ds:
        return np.arange(n_frames)
    values = np.asarray(ds.SliceVector, dtype=np.int64)
    if values.shape != (n_frames,):
        return np.arange(n_frames)
    return np.argsort(values, kind="stable")


def _iop(volume: Volume) -> list[float]:
    row_dir = volume.affine[:3, 2] / np.linalg.norm(volume.affine[:3, 2])
    col_dir = volume.affine[:3, 1] / np.linalg.norm(volume.affine[:3, 1])
    return [float(ds_value(v, 6)) for v in (*row_dir, *col_dir)]


def _nm_source(volume: Volume, path: str, identity: ObjectIdentity) -> tuple[Dataset, np.ndarray]:
    """(header copy with functional groups, plane index of each source frame)."""
    ds = read_dataset(path)
    n_frames = int(ds.get("NumberOfFrames") or 1)
    if n_frames != volume.shape[0] or (int(ds.Rows), int(ds.Columns)) != volume.shape[1:]:
        raise InvalidInputError(
            f"source holds {n_frames} frames of {ds.Rows} x {ds.Columns}; expected the "
            f"volume's {volume.shape} (plane, row, col): not the object the volume was "
            "loaded from",
            code="dicom_source_mismatch",
            path=path,
        )
    order = _slice_order(ds, n_frames)
    decoded = decode_frames_with_info(ds, path).array
    if not np.array_equal(decoded[order], np.asarray(volume.array)):
        raise InvalidInputError(
            "source pixels differ from the volume's: the frame-to-plane mapping cannot be "
            "proved, no segmentation written",
            code="dicom_source_mismatch",
            path=path,
        )
    plane_of_frame = np.empty(n_frames, dtype=np.int64)
    plane_of_frame[order] = np.arange(n_frames)
    header = identity.with_patient(ds)
    del header["PixelData"]
    spacing = volume.spacing_mm
    measures = Dataset()
    measures.PixelSpacing = [ds_value(spacing[1], 6), ds_value(spacing[2], 6)]
    measures.SliceThickness = ds.get("SliceThickness") or ds_value(spacing[0], 6)
    measures.SpacingBetweenSlices = ds_value(spacing[0], 6)
    orientation = Dataset()
    orientation.ImageOrientationPatient = _iop(volume)
    shared = Dataset()
    shared.PixelMeasuresSequence = DicomSequence([measures])
    shared.PlaneOrientationSequence = DicomSequence([orientation])
    header.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    for plane in plane_of_frame:
        position = Dataset()
        lps = volume.index_to_lps(np.array([plane, 0.0, 0.0]))
        position.ImagePositionPatient = [ds_value(v) for v in lps]
        item = Dataset()
        item.PlanePositionSequence = DicomSequence([position])
        per_frame.append(item)
    header.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    return header, plane_of_frame


def _single_frame_sources(
    volume: Volume, paths: Sequence[str], identity: ObjectIdentity
) -> tuple[list[Dataset], np.ndarray]:
    """(headers in plane order, their plane indices) for one-file-per-plane sources."""
    by_plane: dict[int, Dataset] = {}
    for path in paths:
        ds = read_header(path)
        ipp = ds.get("ImagePositionPatient")
        if ipp is None or len(ipp) != 3:
            raise InvalidInputError(
                "ImagePositionPatient missing; expected one per slice to place the segmentation",
                code="dicom_source_mismatch",
                path=path,
            )
        idx = volume.lps_to_index(np.asarray([float(v) for v in ipp]))
        plane = round(float(idx[0]))
        off = max(abs(float(idx[0]) - plane), abs(float(idx[1])), abs(float(idx[2])))
        if (
            off > POSITION_TOLERANCE
            or not 0 <= plane < volume.shape[0]
            or (int(ds.Rows), int(ds.Columns)) != volume.shape[1:]
        ):
            raise InvalidInputError(
                f"slice at {list(ipp)} mm ({ds.Rows} x {ds.Columns}) lies on no plane of the "
                f"volume (index {np.round(idx, 3).tolist()}, shape {volume.shape})",
                code="dicom_source_mismatch",
                path=path,
            )
        by_plane[plane] = identity.with_patient(ds)
    planes = np.array(sorted(by_plane), dtype=np.int64)
    return [by_plane[int(p)] for p in planes], planes


def build_segmentation(
    volume: Volume,
    segments: Sequence[SegmentSpec],
    identity: ObjectIdentity,
    *,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int,
    instance_number: int,
) -> hd.seg.Segmentation:
    """A BINARY Segmentation of ``segments`` on the source of ``volume`` (module docstring).

    Source headers are re-read from ``volume.source.paths``. Raises ValueError without
    segments and :class:`InvalidInputError` (code ``dicom_source_mismatch``, or the
    readers' codes) when the source files no longer match the volume.
    """
    if not segments:
        raise ValueError("no segments given; expected at least one non-empty mask")
    paths = list(volume.source.paths)
    if not paths:
        raise InvalidInputError(
            "volume has no source paths; expected the files it was loaded from",
            code="dicom_source_missing",
        )
    masks = np.stack([s.mask.astype(bool) for s in segments], axis=-1)  # (P, R, C, S)
    header = read_header(paths[0])
    if len(paths) == 1 and int(header.get("NumberOfFrames") or 1) > 1:
        source, plane_of_frame = _nm_source(volume, paths[0], identity)
        sources = [source]
        frames = masks[plane_of_frame]
    else:
        sources, planes = _single_frame_sources(volume, paths, identity)
        frames = masks[planes]
        left_out = int(masks.sum()) - int(frames.sum())
        if left_out:
            log.warning(
                "%d segmented voxels lie on volume planes without a source image "
                "(interpolated gap): left out of the segmentation",
                left_out,
            )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[
            _description(s, i, identity.software_version) for i, s in enumerate(segments, 1)
        ],
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=sop_instance_uid,
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MANUFACTURER,
        software_versions=identity.software_version,
        device_serial_number=_DEVICE_SERIAL,
        content_label=SEG_CONTENT_LABEL,
        content_description="octoscan lesions and reference regions (decision support)",
    )
    organisation_uid = identity.uid("dimension organisation", sop_instance_uid)
    for item in seg.get("DimensionOrganizationSequence", []):
        item.DimensionOrganizationUID = organisation_uid
    for item in seg.get("DimensionIndexSequence", []):
        item.DimensionOrganizationUID = organisation_uid
    return seg
