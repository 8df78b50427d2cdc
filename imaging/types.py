"""Typed images passed between stages.

Conventions used everywhere in octoscan:

* Arrays are numpy ``float32`` in (plane, row, col) order for volumes and (row, col) for
  planar images; never x/y/z.
* Patient coordinates are DICOM LPS in millimetres. A volume's ``affine`` maps the index
  vector ``(plane, row, col, 1)`` to ``(x, y, z, 1)`` in LPS mm.
* Planar images have no patient frame of reference: positions on them are (row, col) pixel
  indices, 0-based, pixel centres at integers.
* A value that does not apply or is unknown is ``None``, never a sentinel.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np


class SeriesKind(enum.StrEnum):
    """What a series is, as far as scoring is concerned."""

    PLANAR_STATIC = "planar_static"
    PLANAR_WHOLE_BODY = "planar_whole_body"
    TOMO_PROJECTIONS = "tomo_projections"  # raw SPECT projections: never scored
    SPECT = "spect"  # reconstructed SPECT, incl. quantitative SPECT stored as a PET object
    CT = "ct"
    PET = "pet"
    SECONDARY_CAPTURE = "secondary_capture"  # incl. NM whole-body images stored as SC
    OTHER = "other"


class View(enum.StrEnum):
    """Planar projection view, as seen from the detector."""

    ANTERIOR = "anterior"
    POSTERIOR = "posterior"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class SkippedFile:
    """A file (or series) that cannot be used, with a stable ``code`` and a readable reason."""

    path: str
    code: str
    reason: str


@dataclass(frozen=True)
class AcquisitionInfo:
    """Acquisition facts shared by planar and tomographic images.

    ``injected_activity_mbq`` is always MBq, whatever the storage class used (NM objects store
    MBq, PET objects Bq). ``hours_post_injection`` is from the radiopharmaceutical start to
    the acquisition start.
    """

    modality: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    radionuclide: str | None = None  # e.g. "In-111", "Ga-68", "Lu-177", "Tc-99m"
    radionuclide_code: str | None = None  # e.g. SCT 56609000
    radiopharmaceutical: str | None = None  # free text / code meaning, e.g. "pentetreotide"
    half_life_s: float | None = None
    injected_activity_mbq: float | None = None
    injection_datetime: datetime | None = None
    acquisition_datetime: datetime | None = None
    hours_post_injection: float | None = None
    frame_duration_s: float | None = None
    energy_windows_used: tuple[str, ...] = ()
    series_description: str | None = None
    patient_weight_kg: float | None = None


@dataclass(frozen=True)
class SourceRef:
    """Where an image came from (never a patient identifier)."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uids: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    frame_of_reference_uid: str | None = None


@dataclass(frozen=True)
class PlanarImage:
    """One planar view.

    ``counts`` is (row, col) float32, exactly as stored (rescale applied); the posterior view
    is *not* mirrored here (scoring mirrors it). ``is_count_data`` is False for derived images
    (secondary captures, resampled data) that have no Poisson statistics.
    ``pixel_spacing_mm`` is (row spacing, column spacing).
    """

    counts: np.ndarray
    view: View
    view_rule: str
    pixel_spacing_mm: tuple[float, float] | None
    acquisition: AcquisitionInfo
    source: SourceRef
    kind: SeriesKind
    is_count_data: bool = True
    frame_index: int | None = None  # 0-based frame in a multi-frame object
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.counts.ndim != 2:
            raise ValueError(f"PlanarImage.counts must be 2-D (row, col), got {self.counts.shape}")

    @property
    def total_counts(self) -> float:
        return float(np.sum(self.counts, dtype=np.float64))


@dataclass(frozen=True)
class Volume:
    """A 3-D image with its geometry.

    ``array`` is (plane, row, col) float32; ``affine`` (4x4 float64) maps
    ``(plane, row, col, 1)`` to LPS mm. ``units`` is one of "counts", "Bq/mL", "SUVbw", "HU",
    or the stored DICOM unit when it could not be converted (with a warning saying why).
    ``suv_factor`` converts the stored Bq/mL to SUVbw when known (already applied when
    ``units == "SUVbw"``).
    """

    array: np.ndarray
    affine: np.ndarray
    units: str
    kind: SeriesKind
    acquisition: AcquisitionInfo
    source: SourceRef
    suv_factor: float | None = None
    resolution_fwhm_mm: float | None = None
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume.array must be 3-D (plane, row, col), got {self.array.shape}")
        if self.affine.shape != (4, 4):
            raise ValueError(f"Volume.affine must be 4x4, got {self.affine.shape}")

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel spacing (plane, row, col) in mm: the column norms of the affine."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(norms[0]), float(norms[1]), float(norms[2]))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    def index_to_lps(self, index: np.ndarray) -> np.ndarray:
        """Map (..., 3) (plane, row, col) indices to (..., 3) LPS mm."""
        idx = np.asarray(index, dtype=np.float64)
        return idx @ self.affine[:3, :3].T + self.affine[:3, 3]

    def lps_to_index(self, lps_mm: np.ndarray) -> np.ndarray:
        """Map (..., 3) LPS mm to fractional (plane, row, col) indices."""
        inv = np.linalg.inv(self.affine)
        pts = np.asarray(lps_mm, dtype=np.float64)
        return pts @ inv[:3, :3].T + inv[:3, 3]


@dataclass(frozen=True)
class SeriesEntry:
    """One series found by discovery (headers only).

    ``files`` are paths as found on disk. ``n_images`` counts frames (multi-frame) or slices.
    ``views`` maps a view name to the (file index, frame index) pairs holding it, for planar
    series whose views could be determined from headers; ``view_rule`` says which evidence
    decided. ``patient_id`` is kept for keyed hashing only and must never be logged or printed.
    """

    study_instance_uid: str
    series_instance_uid: str
    kind: SeriesKind
    modality: str | None
    sop_class_uid: str | None
    files: tuple[str, ...]
    n_images: int
    kind_reason: str = ""
    manufacturer: str | None = None
    model: str | None = None
    series_description: str | None = None
    image_type: tuple[str, ...] = ()
    frame_of_reference_uid: str | None = None
    radionuclide: str | None = None
    radiopharmaceutical: str | None = None
    hours_post_injection: float | None = None
    views: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    view_rule: str | None = None
    rows: int | None = None
    columns: int | None = None
    patient_id: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class StudyIndex:
    """Everything discovery found under one folder."""

    root: str
    series: tuple[SeriesEntry, ...]
    skipped: tuple[SkippedFile, ...]
    n_files_seen: int
    n_non_dicom: int

    def studies(self) -> dict[str, list[SeriesEntry]]:
        """Series grouped by StudyInstanceUID, in discovery order."""
        out: dict[str, list[SeriesEntry]] = {}
        for s in self.series:
            out.setdefault(s.study_instance_uid, []).append(s)
        return out
