"""Planar NM loader: one :class:`~octoscan.imaging.types.PlanarImage` per view.

For each file of a planar series (NM Image Storage STATIC / WHOLE BODY / DYNAMIC / GATED, or
an NM image stored as Secondary Capture) the frames named by
:func:`~octoscan.imaging.views.resolve_planar_layout` are decoded
(:func:`~octoscan.imaging.pixels.decode_frames_with_info`, rescale applied) and summed per
detector over photopeak energy windows and time frames, giving counts as float32 (row, col).
Posterior views are returned as stored (not mirrored).

Secondary captures and DERIVED or lossy-compressed images are returned with
``is_count_data=False``: their values have no Poisson statistics.

Whole-body secondary captures can hold anterior and posterior side by side in one image.
Such an image is split only when its header says it is a whole-body image, its physical
width (Columns x column spacing) is at least :data:`SIDE_BY_SIDE_MIN_WIDTH_MM` (a single
whole-body view is about 500-600 mm wide) and the column profile has an empty gap near the
middle; both halves are returned with ``View.UNKNOWN``: no header attribute says which half
is the anterior view, and octoscan does not guess it. The real NEMA NM1 sample (GE
Millennium MG, 1024 x 256 at 2.26 mm) is 578 mm wide and holds a single whole-body view
(Detector 1, ImageID "WHOLE BODY_E"), not two: it is returned as one image of unknown view.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from octoscan.imaging.acquisition import (
    acquisition_datetime,
    read_acquisition_info_with_warnings,
)
from octoscan.imaging.dicom_io import check_image_header, read_dataset, read_header
from octoscan.imaging.discovery import TOMO_NOT_SCORED, classify_kind
from octoscan.imaging.errors import InvalidInputError, UnsupportedAcquisitionError
from octoscan.imaging.pixels import decode_frames_with_info
from octoscan.imaging.types import (
    AcquisitionInfo,
    PlanarImage,
    SeriesEntry,
    SeriesKind,
    SourceRef,
    View,
)
from octoscan.imaging.views import (
    PlanarLayout,
    SingleViewFile,
    ViewDecision,
    ViewGroup,
    complement_views,
    resolve_planar_layout,
)

__all__ = ["SIDE_BY_SIDE_MIN_WIDTH_MM", "load_planar", "split_side_by_side"]

SIDE_BY_SIDE_MIN_WIDTH_MM = 850.0
# The gap between two side-by-side bodies: column sums below this fraction of the maximum.
SIDE_BY_SIDE_GAP_FRACTION = 0.05
_PLANAR_KINDS = (SeriesKind.PLANAR_STATIC, SeriesKind.PLANAR_WHOLE_BODY)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return str(value).strip() if value is not None else ""


def _spacing(ds: Dataset, detector: int | None) -> tuple[float, float] | None:
    """(row, column) spacing in mm: PixelSpacing, else the detector item's PixelSpacing."""
    sources = [ds]
    items = list(ds.get("DetectorInformationSequence") or ())
    if detector is not None and 1 <= detector <= len(items):
        sources.append(items[detector - 1])
    for source in sources:
        value = source.get("PixelSpacing")
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if row > 0 and col > 0 and np.isfinite(row) and np.isfinite(col):
            return (row, col)
    return None


def _is_count_data(ds: Dataset, kind: SeriesKind) -> tuple[bool, str | None]:
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if kind is SeriesKind.SECONDARY_CAPTURE:
        return False, "secondary capture: pixel values are not raw counts"
    if image_type[:1] == ["DERIVED"]:
        return False, "ImageType DERIVED: pixel values are not raw counts"
    if _text(ds, "LossyImageCompression") == "01":
        return False, "lossy compressed: pixel values are not exact counts"
    return True, None


def _phase_duration_s(ds: Dataset, frames: Sequence[int], vectors: dict) -> float | None:
    """Total duration of summed dynamic frames from PhaseInformationSequence, if present."""
    phases = list(ds.get("PhaseInformationSequence") or ())
    phase_vec = vectors.get("PhaseVector")
    if not phases or phase_vec is None:
        return None
    seen: set[tuple[int, ...]] = set()
    total_ms = 0.0
    for f in frames:
        # frames of one time point in several energy windows were acquired together
        key = tuple(v[f] for k, v in vectors.items() if k != "EnergyWindowVector")
        if key in seen:
            continue
        seen.add(key)
        p = phase_vec[f]
        if not 1 <= p <= len(phases) or phases[p - 1].get("ActualFrameDuration") is None:
            return None
        total_ms += float(phases[p - 1].ActualFrameDuration)
    return total_ms / 1000.0


def split_side_by_side(
    counts: np.ndarray, spacing_mm: tuple[float, float] | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Left and right halves of a whole-body image holding two views side by side, or None.

    Needs a physical width of at least SIDE_BY_SIDE_MIN_WIDTH_MM (or, without spacing, a
    height/width ratio of at most 2.5) and a column gap (sum below SIDE_BY_SIDE_GAP_FRACTION
    of the largest column sum) in the middle third; the split is at the emptiest column.
    """
    rows, cols = counts.shape
    if spacing_mm is not None:
        if cols * spacing_mm[1] < SIDE_BY_SIDE_MIN_WIDTH_MM:
            return None
    elif rows / cols > 2.5:
        return None
    profile = np.clip(counts, 0, None).sum(axis=0, dtype=np.float64)
    peak = float(profile.max())
    if peak <= 0:
        return None
    lo, hi = cols // 3, (2 * cols) // 3
    middle = profile[lo:hi]
    if middle.size == 0 or float(middle.min()) > SIDE_BY_SIDE_GAP_FRACTION * peak:
        return None
    # cut at the centre of the empty run of columns around the emptiest one
    empty = profile <= SIDE_BY_SIDE_GAP_FRACTION * peak
    start = stop = lo + int(np.argmin(middle))
    while start > 0 and empty[start - 1]:
        start -= 1
    while stop < cols - 1 and empty[stop + 1]:
        stop += 1
    cut = (start + stop + 1) // 2
    left, right = counts[:, :cut], counts[:, cut:]
    if profile[:cut].max() <= SIDE_BY_SIDE_GAP_FRACTION * peak:
        return None
    if profile[cut:].max() <= SIDE_BY_SIDE_GAP_FRACTION * peak:
        return None
    return left, right


def _group_counts(
    frames: np.ndarray, group: ViewGroup, path: str, layout: PlanarLayout
) -> np.ndarray:
    if not group.frames:
        windows = "; ".join(f"{w.label}: {w.reason}" for w in layout.energy_windows)
        raise InvalidInputError(
            f"detector {group.detector}: no photopeak frame to sum (energy windows: "
            f"{windows or 'none'}); expected at least one photopeak window",
            code="no_photopeak_window",
            path=path,
        )
    total = np.asarray(frames[list(group.frames)], dtype=np.float64).sum(axis=0)
    return np.asarray(total, dtype=np.float32)


def _load_file(
    path: str,
    kind: SeriesKind | None,
    decisions: dict[tuple[str, int | None], ViewDecision],
) -> list[PlanarImage]:
    ds = read_dataset(path)
    file_kind, reason = classify_kind(ds)
    kind = kind or file_kind
    if file_kind is SeriesKind.TOMO_PROJECTIONS:
        raise UnsupportedAcquisitionError(
            f"{reason}; expected a planar STATIC or WHOLE BODY acquisition",
            code="tomo_projections",
            path=path,
        )
    nm_sc = file_kind is SeriesKind.SECONDARY_CAPTURE and _text(ds, "Modality").upper() == "NM"
    if file_kind not in _PLANAR_KINDS and not nm_sc:
        raise InvalidInputError(
            f"{reason} (kind {file_kind.value}); expected a planar NM image (NM Image Storage "
            "STATIC / WHOLE BODY or an NM secondary capture)",
            code="not_planar",
            path=path,
        )
    info, acq_notes = read_acquisition_info_with_warnings(ds)
    acq_notes = [n for n in acq_notes if "PatientWeight" not in n]
    layout = resolve_planar_layout(ds, radionuclide=info.radionuclide)
    decoded = decode_frames_with_info(ds, path)
    count_data, count_note = _is_count_data(ds, kind)
    source = SourceRef(
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        sop_instance_uids=(_text(ds, "SOPInstanceUID"),),
        paths=(path,),
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID") or None,
    )
    whole_body = "WHOLE BODY" in [str(v).upper() for v in (ds.get("ImageType") or [])]
    images: list[PlanarImage] = []
    for group in layout.groups:
        counts = _group_counts(decoded.array, group, path, layout)
        decision = decisions.get((path, group.detector), group.decision)
        spacing = _spacing(ds, group.detector)
        notes = [*layout.warnings, *decision.warnings, *decoded.warnings, *acq_notes]
        if spacing is None:
            notes.append("PixelSpacing missing: sizes in mm unknown, pixel units only")
        if count_note:
            notes.append(count_note)
        acq = _acquisition_for_group(ds, info, group, layout, notes)
        frame_index = group.frames[0] if len(group.frames) == 1 else None
        halves = None
        if whole_body and not count_data and len(layout.groups) == 1:
            halves = split_side_by_side(counts, spacing)
        if halves is None:
            images.append(
                PlanarImage(
                    counts=counts,
                    view=decision.view,
                    view_rule=decision.rule,
                    pixel_spacing_mm=spacing,
                    acquisition=acq,
                    source=source,
                    kind=kind,
                    is_count_data=count_data,
                    frame_index=frame_index,
                    warnings=tuple(dict.fromkeys(notes)),
                )
            )
            continue
        split_notes = [n for n in notes if n not in decision.warnings]
        for side, half in zip(("left", "right"), halves, strict=True):
            rule = (
                f"none: {side} half of a side-by-side whole-body secondary capture; no header "
                "attribute says which half is anterior"
            )
            images.append(
                PlanarImage(
                    counts=np.ascontiguousarray(half),
                    view=View.UNKNOWN,
                    view_rule=rule,
                    pixel_spacing_mm=spacing,
                    acquisition=acq,
                    source=source,
                    kind=kind,
                    is_count_data=count_data,
                    frame_index=frame_index,
                    warnings=tuple(dict.fromkeys([*split_notes, f"view unknown ({rule})"])),
                )
            )
    return images


def _acquisition_for_group(
    ds: Dataset,
    info: AcquisitionInfo,
    group: ViewGroup,
    layout: PlanarLayout,
    notes: list[str],
) -> AcquisitionInfo:
    duration = info.frame_duration_s
    if group.summed_over:
        total = _phase_duration_s(ds, group.frames, layout.vectors)
        if total is not None:
            duration = total
        else:
            notes.append(
                f"frames summed over {', '.join(group.summed_over)}: frame_duration_s is that "
                "of one frame, not of the sum"
            )
    return dataclasses.replace(
        info, energy_windows_used=group.energy_windows_used, frame_duration_s=duration
    )


def _series_decisions(
    paths: Sequence[str], layouts: dict[str, tuple[ViewGroup, ...]], acquired: dict
) -> dict[tuple[str, int | None], ViewDecision]:
    """Views decided across files (two single-view files acquired together)."""
    if len(paths) != 2 or any(len(layouts[p]) != 1 for p in paths):
        return {}
    candidates = [
        SingleViewFile(p, layouts[p][0].decision, layouts[p][0].detector, acquired[p])
        for p in paths
    ]
    return {
        (key, layouts[key][0].detector): decision
        for key, decision in complement_views(candidates).items()
    }


def load_planar(entry: SeriesEntry | Sequence[str | Path]) -> list[PlanarImage]:
    """Planar images of a series (a discovery entry, or a list of file paths of one series).

    One image per view: per detector of each file, photopeak windows and time frames summed,
    counts float32 (row, col); ``pixel_spacing_mm`` (row, col) or None with a warning.
    Raises :class:`UnsupportedAcquisitionError` for raw TOMO projections and
    :class:`InvalidInputError` for files that are not planar NM images or cannot be decoded.
    """
    if isinstance(entry, SeriesEntry):
        if entry.kind is SeriesKind.TOMO_PROJECTIONS:
            raise UnsupportedAcquisitionError(
                f"series {entry.series_instance_uid}: {TOMO_NOT_SCORED}",
                code="tomo_projections",
            )
        paths = [str(p) for p in entry.files]
        kind: SeriesKind | None = entry.kind
    else:
        paths = [str(p) for p in entry]
        kind = None
    if not paths:
        raise InvalidInputError("no file given; expected the files of one planar series")
    decisions: dict[tuple[str, int | None], ViewDecision] = {}
    if len(paths) == 2:
        decisions = _cross_file_decisions(paths)
    images: list[PlanarImage] = []
    for path in paths:
        images.extend(_load_file(path, kind, decisions))
    return images


def _cross_file_decisions(paths: list[str]) -> dict[tuple[str, int | None], ViewDecision]:
    layouts: dict[str, tuple[ViewGroup, ...]] = {}
    acquired = {}
    for path in paths:
        ds = read_header(path)
        check_image_header(ds, path)  # frame counts that fit the file, before per-frame tables
        info, _ = read_acquisition_info_with_warnings(ds)
        layouts[path] = resolve_planar_layout(ds, radionuclide=info.radionuclide).groups
        acquired[path] = acquisition_datetime(ds)
    return _series_decisions(paths, layouts, acquired)
