"""Tomographic volumes from DICOM: CT, reconstructed SPECT and PET.

* :func:`load_ct`: one file per slice, values in HU (rescale applied).
* :func:`load_spect`: one NM Image Storage RECON TOMO multi-frame object (counts, or Bq/mL
  from a RealWorldValueMapping), or quantitative SPECT stored as single-slice PET Image
  Storage files (Units BQML -> Bq/mL; ``suv_factor`` set when it can be computed).
* :func:`load_pet`: single-slice PET files in SUVbw when the headers allow it (see
  :mod:`octoscan.imaging.suv`), else in the stored unit with a warning saying why. A PET
  object whose content says SPECT (:func:`~octoscan.imaging.acquisition.
  is_quantitative_spect_in_pet_iod`) is loaded by :func:`load_spect`.

Slices are sorted along the slice normal (ImagePositionPatient . normal), never by
InstanceNumber or file name; plane 0 is the lowest position along the normal. Stacks are
checked before they are stacked: one series and frame of reference, one orientation, one
matrix size and pixel spacing, no gantry tilt, duplicate positions only as identical copies
(dropped with a warning), regular spacing (gaps refused unless ``allows_gaps``). The affine
layout is described in :mod:`octoscan.imaging.geometry`.

``max_bytes`` (every loader) limits the pixel data of the stack and of each file, checked
from the headers before decoding; None means :func:`octoscan.imaging.pixels.max_image_bytes`
(``$OCTOSCAN_MAX_IMAGE_BYTES``, else 2 GiB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import NuclearMedicineImageStorage

from octoscan.imaging.acquisition import (
    is_quantitative_spect_in_pet_iod,
    quantitative_spect_evidence,
    read_acquisition_info_with_warnings,
)
from octoscan.imaging.dicom_io import quiet_pydicom
from octoscan.imaging.errors import (
    InconsistentSeriesError,
    InvalidInputError,
    UnsupportedAcquisitionError,
)
from octoscan.imaging.geometry import (
    POSITION_TOLERANCE_MM,
    TILT_TOLERANCE_DEG,
    build_affine,
    check_spacing,
    positions_along_normal,
    same_orientation,
    slice_normal,
    sort_along_normal,
    tilt_angle_deg,
)
from octoscan.imaging.pixels import (
    check_declared_size,
    decode_frames_with_info,
    linear_rescale,
    max_image_bytes,
    read_dataset,
)
from octoscan.imaging.suv import stored_unit_label, suv_bw_factor
from octoscan.imaging.types import AcquisitionInfo, SeriesKind, SourceRef, Volume
from octoscan.imaging.uniform_slices import (
    UniformSlice,
    decode_encapsulated_plane,
    read_stored_plane,
    scan_uniform,
    stored_dtype,
)

__all__ = ["load_ct", "load_pet", "load_spect"]

PIXEL_SPACING_TOLERANCE_MM = 1e-3  # slices of one stack must share PixelSpacing within this
DEFAULT_AXIAL_IOP = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
_SLICE_VECTOR = Tag(0x0054, 0x0080)


@dataclass(frozen=True)
class _Slice:
    """One single-frame image file with its geometry (LPS mm)."""

    path: str
    ds: Dataset
    ipp: np.ndarray
    iop: tuple[float, ...]
    pixel_spacing_mm: tuple[float, float]


@dataclass(frozen=True)
class _Stack:
    """Sorted, checked and decoded slices."""

    array: np.ndarray
    affine: np.ndarray
    slices: tuple[_Slice, ...]
    units: str | None
    warnings: tuple[str, ...]


# ---------------------------------------------------------------------------- reading


def _read_all(paths: Sequence[str | Path]) -> tuple[list[tuple[str, Dataset]], list[str]]:
    if not paths:
        raise InvalidInputError("no files given; expected one or more DICOM files", code="no_files")
    read: list[tuple[str, Dataset]] = []
    seen: dict[str, list[str]] = {}
    for path in paths:
        ds, warnings = read_dataset(path)
        read.append((str(path), ds))
        for message in warnings:
            seen.setdefault(message, []).append(Path(path).name)
    notes = [f"{m} ({len(names)} file(s), e.g. {names[0]})" for m, names in seen.items()]
    return read, notes


def _floats(value: object, count: int) -> tuple[float, ...] | None:
    try:
        numbers = tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count and all(np.isfinite(numbers)) else None


def _slice_geometry(path: str, ds: Dataset, notes: list[str]) -> _Slice:
    """IPP/IOP/PixelSpacing of a single-frame image; retired ACR-NEMA tags as a fallback."""
    ipp = _floats(ds.get("ImagePositionPatient"), 3)
    iop = _floats(ds.get("ImageOrientationPatient"), 6)
    if ipp is None and iop is None:
        ipp = _floats(ds.get((0x0020, 0x0030)).value if (0x0020, 0x0030) in ds else None, 3)
        iop = _floats(ds.get((0x0020, 0x0035)).value if (0x0020, 0x0035) in ds else None, 6)
        if ipp is not None and iop is not None:
            notes.append(
                f"{Path(path).name}: ACR-NEMA retired ImagePosition/ImageOrientation used; "
                "their axes may differ from DICOM LPS"
            )
    spacing = _floats(ds.get("PixelSpacing"), 2)
    found = {"ImagePositionPatient": ipp, "ImageOrientationPatient": iop, "PixelSpacing": spacing}
    missing = [keyword for keyword, value in found.items() if value is None]
    if missing:
        raise InvalidInputError(
            f"{', '.join(missing)} missing or invalid; a volume slice needs patient geometry",
            code="missing_geometry",
            path=path,
        )
    return _Slice(path, ds, np.asarray(ipp), iop, spacing)  # type: ignore[arg-type]


def _frame_count(ds: Dataset) -> int:
    """NumberOfFrames, 1 when absent or not a number (the decoder then refuses the file)."""
    try:
        return int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        return 1


def _refuse_multiframe(path: str, ds: Dataset) -> None:
    frames = _frame_count(ds)
    if frames > 1:
        raise UnsupportedAcquisitionError(
            f"NumberOfFrames is {frames}; this loader expects one file per slice "
            f"(SOP class {ds.get('SOPClassUID')})",
            code="unsupported_multiframe",
            path=path,
        )


# ---------------------------------------------------------------------------- consistency


def _require_same(slices: Sequence[_Slice], keyword: str, code: str) -> None:
    values = [str(s.ds.get(keyword) or "") for s in slices]
    if len(set(values)) > 1:
        odd = next(s for s, v in zip(slices, values, strict=True) if v != values[0])
        raise InconsistentSeriesError(
            f"{keyword} differs within the stack ({len(set(values))} values, e.g. "
            f"{slices[0].ds.get(keyword)!r} in {Path(slices[0].path).name}); "
            "expected one value",
            code=code,
            path=odd.path,
        )


def _check_consistency(slices: Sequence[_Slice]) -> None:
    _require_same(slices, "SeriesInstanceUID", "mixed_series")
    _require_same(slices, "FrameOfReferenceUID", "mixed_frame_of_reference")
    first = slices[0]
    size = (int(first.ds.Rows), int(first.ds.Columns))
    for s in slices[1:]:
        other = (int(s.ds.Rows), int(s.ds.Columns))
        if other != size:
            raise InconsistentSeriesError(
                f"Rows x Columns is {other[0]}x{other[1]}; expected {size[0]}x{size[1]} "
                f"as in {Path(first.path).name}",
                code="mixed_matrix_sizes",
                path=s.path,
            )
        if not same_orientation(s.iop, first.iop):
            raise InconsistentSeriesError(
                f"ImageOrientationPatient is {list(s.iop)}; expected {list(first.iop)} "
                f"as in {Path(first.path).name}",
                code="mixed_orientation",
                path=s.path,
            )
        spacing_diff = np.max(np.abs(np.subtract(s.pixel_spacing_mm, first.pixel_spacing_mm)))
        if spacing_diff > PIXEL_SPACING_TOLERANCE_MM:
            raise InconsistentSeriesError(
                f"PixelSpacing is {list(s.pixel_spacing_mm)}; expected "
                f"{list(first.pixel_spacing_mm)} as in {Path(first.path).name}",
                code="mixed_pixel_spacing",
                path=s.path,
            )


# ---------------------------------------------------------------------------- stacking


def _check_stack_size(n: int, rows: int, cols: int, max_bytes: int, path: str) -> None:
    """Raise ``image_too_large`` when ``n`` float32 planes of rows x cols exceed the limit."""
    total = n * rows * cols * 4
    if total > max_bytes:
        raise InvalidInputError(
            f"{n} slices of {rows}x{cols} need {total} bytes as float32; "
            f"the limit is {max_bytes} bytes",
            code="image_too_large",
            path=path,
        )


def _decode_slices(
    slices: Sequence[_Slice], max_bytes: int, notes: list[str]
) -> tuple[list[np.ndarray], str | None]:
    rows, cols = int(slices[0].ds.Rows), int(slices[0].ds.Columns)
    _check_stack_size(len(slices), rows, cols, max_bytes, slices[0].path)
    planes: list[np.ndarray] = []
    units: set[str | None] = set()
    for s in slices:
        decoded = decode_frames_with_info(s.ds, s.path, max_bytes=max_bytes)
        planes.append(decoded.array[0])
        units.add(decoded.units)
        notes.extend(f"{Path(s.path).name}: {w}" for w in decoded.warnings)
    if len(units) > 1:
        raise InconsistentSeriesError(
            f"slices map to different units {sorted(map(str, units))}; expected one unit",
            code="mixed_units",
            path=slices[0].path,
        )
    return planes, units.pop()


def _drop_duplicates(
    slices: list[_Slice], planes: list[np.ndarray], positions: np.ndarray, notes: list[str]
) -> tuple[list[_Slice], list[np.ndarray], np.ndarray]:
    """Drop later copies of identical slices at one position; refuse differing ones."""
    keep = [0]
    for i in range(1, len(slices)):
        j = keep[-1]
        if abs(positions[i] - positions[j]) > POSITION_TOLERANCE_MM:
            keep.append(i)
            continue
        a, b = Path(slices[j].path).name, Path(slices[i].path).name
        if not np.array_equal(planes[i], planes[j]):
            raise InconsistentSeriesError(
                f"slices {a} and {b} share position {positions[i]:.3f} mm along the normal "
                "but hold different pixel values; expected one slice per position",
                code="duplicate_position",
                path=slices[i].path,
            )
        notes.append(f"duplicate slice {b} (same position and pixels as {a}) dropped")
    return [slices[k] for k in keep], [planes[k] for k in keep], positions[keep]


def _fill_gaps(
    planes: list[np.ndarray],
    positions: np.ndarray,
    slices: Sequence[_Slice],
    *,
    allows_gaps: bool,
    notes: list[str],
) -> tuple[list[np.ndarray], float]:
    """Check spacing; return the planes (gaps filled by linear interpolation) and the step."""
    check = check_spacing(positions)
    if check.irregular:
        i = check.irregular[0]
        raise InconsistentSeriesError(
            f"slice step {check.steps_mm[i]:.3f} mm after {Path(slices[i].path).name} "
            f"(position {positions[i]:.3f} mm) is neither the nominal step "
            f"{check.nominal_step_mm:.3f} mm nor a whole multiple of it",
            code="irregular_spacing",
            path=slices[i + 1].path,
        )
    for gap in check.gaps:
        text = (
            f"slice gap of {gap.gap_mm:.3f} mm ({gap.missing} missing plane(s) of "
            f"{check.nominal_step_mm:.3f} mm) after {Path(slices[gap.after_index].path).name} "
            f"at position {gap.position_mm:.3f} mm along the normal"
        )
        if not allows_gaps:
            raise InconsistentSeriesError(
                f"{text}; pass allows_gaps=True to interpolate",
                code="slice_gap",
                path=slices[gap.after_index + 1].path,
            )
        notes.append(f"{text}: filled by linear interpolation")
    return _interpolate_gaps(planes, check.gaps), check.nominal_step_mm


def _interpolate_gaps(planes: list[np.ndarray], gaps: Sequence) -> list[np.ndarray]:
    missing = {g.after_index: g.missing for g in gaps}
    out: list[np.ndarray] = []
    for i, plane in enumerate(planes):
        out.append(plane)
        m = missing.get(i, 0)
        for k in range(1, m + 1):
            w = k / (m + 1)
            out.append(((1 - w) * plane + w * planes[i + 1]).astype(np.float32))
    return out


def _tilt_step(
    slices: Sequence[_Slice], normal: np.ndarray, n_planes: int, *, allows_tilt: bool
) -> np.ndarray | None:
    """None for an untilted stack; the sheared step vector when tilt is allowed; else raise."""
    ipps = np.stack([s.ipp for s in slices])
    angle = tilt_angle_deg(ipps, normal)
    stated = (_floats([slices[0].ds.get("GantryDetectorTilt") or 0.0], 1) or (0.0,))[0]
    if angle <= TILT_TOLERANCE_DEG and abs(stated) <= TILT_TOLERANCE_DEG:
        return None
    if not allows_tilt:
        raise InconsistentSeriesError(
            f"gantry tilt: GantryDetectorTilt {stated:g} deg, slice positions drift "
            f"{angle:.2f} deg off the slice normal (tolerance {TILT_TOLERANCE_DEG} deg); "
            "pass allows_tilt=True for a sheared affine",
            code="gantry_tilt",
            path=slices[0].path,
        )
    if n_planes < 2:
        return None
    return (ipps[-1] - ipps[0]) / (n_planes - 1)


def _single_slice_step(ds: Dataset, path: str, notes: list[str]) -> float:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = ds.get(keyword)
        number = _floats([value], 1) if value not in (None, "") else None  # None: not a number
        if number is not None and abs(number[0]) > 0:
            return abs(number[0])
    notes.append(f"{Path(path).name}: single slice without a usable SliceThickness: 1 mm assumed")
    return 1.0


def _uniform_stack(
    items: list[UniformSlice], limit: int
) -> tuple[list[_Slice], np.ndarray, str | None, list[str]] | None:
    """Sorted slices, their (plane, row, col) float32 values, units and notes of a uniform
    stack (:mod:`octoscan.imaging.uniform_slices`), the same as the per-file path gives;
    None when the per-file path must read it (any read or decode warning on the reference,
    a value mapping other than a plain rescale, stored values beyond BitsStored)."""
    notes: list[str] = []
    iop = items[0].raw.decimals(0x00200037)
    if iop is None or len(iop) != 6:
        return None
    normal = slice_normal(iop, path=items[0].path)
    order = sort_along_normal(np.stack([s.ipp for s in items]), normal)
    items = [items[i] for i in order]
    ref_ds, read_notes = read_dataset(items[0].path)
    if read_notes:
        return None
    _refuse_multiframe(items[0].path, ref_ds)
    check_declared_size(ref_ds, items[0].path, max_bytes=limit)
    ref = _slice_geometry(items[0].path, ref_ds, notes)
    rows, cols = int(ref_ds.Rows), int(ref_ds.Columns)
    _check_stack_size(len(items), rows, cols, limit, items[0].path)
    decoded = decode_frames_with_info(ref_ds, items[0].path, max_bytes=limit)
    dtype = stored_dtype(items[0].raw)
    if notes or decoded.warnings or decoded.scaling not in ("rescale", "none") or dtype is None:
        return None
    linear = linear_rescale(ref_ds)
    bits_stored = int(ref_ds.get("BitsStored") or 0)
    if bits_stored <= 0 or bits_stored > dtype.itemsize * 8:
        return None
    low, high = (
        (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1)
        if dtype.kind == "i"
        else (0, (1 << bits_stored) - 1)
    )
    slope, intercept = linear if linear is not None else (1.0, 0.0)
    # stored + an integral intercept, for 8/16-bit values, is exact in float32: one pass
    # gives the bits of the float64 computation; other mappings go through float64
    exact32 = slope == 1.0 and float(intercept).is_integer() and abs(intercept) < 2**23
    native = items[0].raw.native
    exact32 = exact32 and dtype.itemsize <= 2 and native
    options: dict[str, Any] = {
        "rows": rows,
        "columns": cols,
        "samples_per_pixel": 1,
        "bits_allocated": dtype.itemsize * 8,
        "bits_stored": bits_stored,
        "pixel_representation": 1 if dtype.kind == "i" else 0,
        "photometric_interpretation": str(ref_ds.get("PhotometricInterpretation") or ""),
        "number_of_frames": 1,
    }
    array = np.empty((len(items), rows, cols), dtype=np.float32)
    stored = np.empty((rows, cols), dtype=dtype)
    for i, item in enumerate(items):
        if native:
            read_stored_plane(item, stored)
            if bits_stored < dtype.itemsize * 8 and (stored.min() < low or stored.max() > high):
                return None  # beyond BitsStored: pydicom's decoder decides what they mean
        else:
            decoded_plane = decode_encapsulated_plane(item, options)
            if decoded_plane is None or decoded_plane.shape != (rows, cols):
                return None
            stored = decoded_plane
        if exact32:
            np.add(stored, np.float32(intercept), out=array[i], dtype=np.float32)
        elif linear is None:
            array[i] = stored.astype(np.float64)
        else:
            array[i] = stored * slope + intercept
            if not np.isfinite(array[i]).all():
                return None  # the per-file path refuses such scaling with its error
    if not np.array_equal(array[0], decoded.array[0]):
        return None  # the fast decode must equal pydicom's on the reference slice
    slices = [ref]
    with quiet_pydicom():
        for item in items[1:]:
            ds = Dataset()
            for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
                if keyword in ref_ds:
                    setattr(ds, keyword, ref_ds.get(keyword))
            ds.SOPInstanceUID = item.raw.text(0x00080018)
            ds.Rows, ds.Columns = ref_ds.Rows, ref_ds.Columns
            slices.append(_Slice(item.path, ds, item.ipp, ref.iop, ref.pixel_spacing_mm))
    return slices, array, decoded.units, notes


def _stack(
    paths: Sequence[str | Path],
    *,
    allows_gaps: bool,
    allows_tilt: bool,
    max_bytes: int | None,
    uniform: bool = False,
) -> _Stack:
    """Read, check, sort, decode and stack single-frame slices; ``uniform`` tries the fast
    path of :mod:`octoscan.imaging.uniform_slices` first (same result when it applies)."""
    if not paths:
        raise InvalidInputError("no files given; expected one or more DICOM files", code="no_files")
    limit = max_image_bytes() if max_bytes is None else max_bytes
    items = scan_uniform(paths) if uniform and len(paths) > 1 else None
    fast = _uniform_stack(items, limit) if items is not None else None
    whole: np.ndarray | None = None
    if fast is not None:
        slices, whole, units, notes = fast
        planes = list(whole)
        normal = slice_normal(slices[0].iop, path=slices[0].path)
    else:
        read, notes = _read_all(paths)
        for path, ds in read:
            _refuse_multiframe(path, ds)
            check_declared_size(ds, path, max_bytes=limit)  # Rows, Columns are numbers; size
        slices = [_slice_geometry(path, ds, notes) for path, ds in read]
        _check_consistency(slices)
        normal = slice_normal(slices[0].iop, path=slices[0].path)
        order = sort_along_normal(np.stack([s.ipp for s in slices]), normal)
        slices = [slices[i] for i in order]
        planes, units = _decode_slices(slices, limit, notes)
    decoded_planes = list(planes)
    positions = positions_along_normal(np.stack([s.ipp for s in slices]), normal)
    slices, planes, positions = _drop_duplicates(slices, planes, positions, notes)
    planes, step_mm = _fill_gaps(planes, positions, slices, allows_gaps=allows_gaps, notes=notes)
    if len(slices) == 1:
        step_mm = _single_slice_step(slices[0].ds, slices[0].path, notes)
    sheared = _tilt_step(slices, normal, len(planes), allows_tilt=allows_tilt)
    if sheared is not None:
        notes.append("gantry tilt kept as a sheared affine (planes are not orthogonal to it)")
    step = sheared if sheared is not None else normal * step_mm
    affine = build_affine(
        origin_lps_mm=slices[0].ipp,
        iop=slices[0].iop,
        pixel_spacing_mm=slices[0].pixel_spacing_mm,
        slice_step_lps_mm=step,
    )
    if whole is not None and len(planes) == len(decoded_planes):
        # no duplicate dropped, no gap filled: the planes are ``whole`` itself, in order
        same = all(a is b for a, b in zip(planes, decoded_planes, strict=True))
        array = whole if same else np.stack(planes).astype(np.float32, copy=False)
    else:
        array = np.stack(planes).astype(np.float32, copy=False)
    return _Stack(array, affine, tuple(slices), units, tuple(notes))


def _source(slices: Sequence[_Slice] | Sequence[tuple[str, Dataset]]) -> SourceRef:
    pairs = [(s.path, s.ds) if isinstance(s, _Slice) else s for s in slices]
    first = pairs[0][1]
    return SourceRef(
        study_instance_uid=str(first.get("StudyInstanceUID") or ""),
        series_instance_uid=str(first.get("SeriesInstanceUID") or ""),
        sop_instance_uids=tuple(str(ds.get("SOPInstanceUID") or "") for _, ds in pairs),
        paths=tuple(path for path, _ in pairs),
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID") or "") or None,
    )


def _acquisition(ds: Dataset, notes: list[str], *, keep_warnings: bool) -> AcquisitionInfo:
    info, warnings = read_acquisition_info_with_warnings(ds)
    if keep_warnings:
        notes.extend(warnings)
    return info


# ---------------------------------------------------------------------------- CT


def load_ct(
    paths: Sequence[str | Path],
    *,
    allows_gaps: bool = False,
    allows_tilt: bool = False,
    max_bytes: int | None = None,
) -> Volume:
    """CT series (one file per slice) -> Volume in HU, (plane, row, col) with LPS affine.

    Raises InconsistentSeriesError with codes mixed_series, mixed_frame_of_reference,
    mixed_matrix_sizes, mixed_orientation, mixed_pixel_spacing, duplicate_position,
    irregular_spacing, slice_gap (unless ``allows_gaps``: missing planes are interpolated
    with a warning) and gantry_tilt (unless ``allows_tilt``: the affine is sheared along the
    real slice positions, with a warning); InvalidInputError for unreadable files, missing
    geometry or pixel data.
    """
    stack = _stack(
        paths,
        allows_gaps=allows_gaps,
        allows_tilt=allows_tilt,
        max_bytes=max_bytes,
        uniform=True,
    )
    notes = list(stack.warnings)
    first = stack.slices[0].ds
    modality = str(first.get("Modality") or "")
    if modality != "CT":
        notes.append(f"Modality is {modality or 'missing'}, not CT: values kept as rescaled")
    units = "HU" if modality == "CT" and stack.units in (None, "HU") else stack.units or "unknown"
    return Volume(
        array=stack.array,
        affine=stack.affine,
        units=units,
        kind=SeriesKind.CT,
        acquisition=_acquisition(first, notes, keep_warnings=False),
        source=_source(stack.slices),
        warnings=tuple(notes),
    )


# ---------------------------------------------------------------------------- PET


def load_pet(
    paths: Sequence[str | Path],
    *,
    allows_gaps: bool = False,
    allows_tilt: bool = False,
    max_bytes: int | None = None,
) -> Volume:
    """PET series (one file per slice) -> Volume in SUVbw when possible.

    Units GML are taken as SUVbw unchanged (``suv_factor`` 1.0); BQML and Philips CNTS are
    converted with :func:`~octoscan.imaging.suv.suv_bw_factor`; otherwise the stored unit
    is kept ("Bq/mL", "counts" ...) with the reasons as warnings. A PET object holding a
    SPECT (by content) is returned by :func:`load_spect` instead, with a warning.
    Consistency errors as for :func:`load_ct`.
    """
    first, _ = read_dataset(paths[0], stop_before_pixels=True) if paths else (None, ())
    if first is not None and is_quantitative_spect_in_pet_iod(first):
        volume = load_spect(paths, allows_gaps=allows_gaps, max_bytes=max_bytes)
        note = f"PET object loaded as SPECT: {quantitative_spect_evidence(first)}"
        return _with_warning(volume, note)
    stack = _stack(paths, allows_gaps=allows_gaps, allows_tilt=allows_tilt, max_bytes=max_bytes)
    notes = list(stack.warnings)
    datasets = [s.ds for s in stack.slices]
    suv = suv_bw_factor(datasets)
    notes.extend(suv.reasons)
    array, units = stack.array, stored_unit_label(suv.stored_units)
    if suv.factor is not None:
        array, units = (stack.array * np.float32(suv.factor)).astype(np.float32), "SUVbw"
    return Volume(
        array=array,
        affine=stack.affine,
        units=units,
        kind=SeriesKind.PET,
        acquisition=_acquisition(datasets[0], notes, keep_warnings=False),
        source=_source(stack.slices),
        suv_factor=suv.factor,
        warnings=tuple(dict.fromkeys(notes)),
    )


def _with_warning(volume: Volume, note: str) -> Volume:
    return replace(volume, warnings=(note, *volume.warnings))


# ---------------------------------------------------------------------------- SPECT


def load_spect(
    paths: Sequence[str | Path],
    *,
    allows_gaps: bool = False,
    max_bytes: int | None = None,
) -> Volume:
    """Reconstructed SPECT -> Volume (kind SPECT) in counts or Bq/mL.

    One NM Image Storage object (ImageType RECON TOMO): frames ordered by SliceVector,
    geometry from DetectorInformationSequence[0] ImagePositionPatient/
    ImageOrientationPatient (else top level; else axial at the origin, with a warning),
    plane step = slice normal x SpacingBetweenSlices (signed: a negative value, as GE
    writes, stacks against the normal) else SliceThickness. Otherwise single-slice files
    (quantitative SPECT stored as PET Image Storage) stacked as for PET, kept in Bq/mL with
    ``suv_factor`` set when the headers allow. Raw projections (TOMO) raise
    UnsupportedAcquisitionError ``tomo_projections``.
    """
    read, notes = _read_all(paths[:1])
    path, ds = read[0]
    if _is_nm_object(ds):
        if len(paths) > 1:
            raise InvalidInputError(
                f"{len(paths)} files given; a RECON TOMO SPECT is one NM object",
                code="multiple_objects",
                path=paths[1],
            )
        return _load_nm_recon(path, ds, notes, max_bytes=max_bytes)
    return _load_spect_slices(paths, allows_gaps=allows_gaps, max_bytes=max_bytes)


def _is_nm_object(ds: Dataset) -> bool:
    sop = str(ds.get("SOPClassUID") or "")
    return sop == NuclearMedicineImageStorage or (
        str(ds.get("Modality") or "") == "NM" and _frame_count(ds) > 1
    )


def _load_spect_slices(
    paths: Sequence[str | Path], *, allows_gaps: bool, max_bytes: int | None
) -> Volume:
    stack = _stack(paths, allows_gaps=allows_gaps, allows_tilt=False, max_bytes=max_bytes)
    notes = list(stack.warnings)
    datasets = [s.ds for s in stack.slices]
    units = stack.units or stored_unit_label(str(datasets[0].get("Units") or "") or None)
    if units == "unknown":
        units = "counts"
        notes.append("no Units or value mapping: values taken as counts")
    factor = None
    if units == "Bq/mL":
        suv = suv_bw_factor(datasets)
        factor = suv.factor
        notes.extend(r for r in suv.reasons if suv.factor is None)
    return Volume(
        array=stack.array,
        affine=stack.affine,
        units=units,
        kind=SeriesKind.SPECT,
        acquisition=_acquisition(datasets[0], notes, keep_warnings=True),
        source=_source(stack.slices),
        suv_factor=factor,
        warnings=tuple(dict.fromkeys(notes)),
    )


def _image_type_value3(ds: Dataset) -> str:
    image_type = ds.get("ImageType") or []
    values = [image_type] if isinstance(image_type, str) else list(image_type)
    return str(values[2]).strip().upper() if len(values) > 2 else ""


def _check_recon_tomo(path: str, ds: Dataset, notes: list[str]) -> None:
    kind = _image_type_value3(ds)
    if kind in ("RECON TOMO", "GATED RECON TOMO", "RECON GATED TOMO"):
        return
    if kind in ("TOMO", "GATED TOMO"):
        raise UnsupportedAcquisitionError(
            f"ImageType value 3 is {kind}: raw SPECT projections, not a reconstructed volume",
            code="tomo_projections",
            path=path,
        )
    if kind:
        raise InvalidInputError(
            f"ImageType value 3 is {kind}; expected RECON TOMO for a SPECT volume",
            code="not_a_volume",
            path=path,
        )
    notes.append("ImageType value 3 missing: NM object taken as RECON TOMO")


def _frame_vectors(path: str, ds: Dataset, n_frames: int) -> dict[int, np.ndarray]:
    """FrameIncrementPointer tag -> its per-frame values (checked to hold n_frames values)."""
    pointers = ds.get("FrameIncrementPointer")
    tags = [] if pointers is None else [pointers] if isinstance(pointers, int) else list(pointers)
    vectors: dict[int, np.ndarray] = {}
    for tag in map(Tag, tags):
        element = ds.get(tag)
        values = np.asarray(element.value if element is not None else [], dtype=np.int64)
        if values.shape != (n_frames,):
            raise InvalidInputError(
                f"{tag} holds {values.size} values; expected {n_frames} (NumberOfFrames)",
                code="frame_vector_invalid",
                path=path,
            )
        vectors[int(tag)] = values
    return vectors


def _frame_order(path: str, ds: Dataset, n_frames: int, notes: list[str]) -> np.ndarray:
    """Frame indices in slice order (SliceVector); other vectors must be constant."""
    vectors = _frame_vectors(path, ds, n_frames)
    if not vectors:
        notes.append("FrameIncrementPointer missing: frames taken in slice order")
    for tag, values in vectors.items():
        if tag != _SLICE_VECTOR and len(set(values.tolist())) > 1:
            raise UnsupportedAcquisitionError(
                f"{Tag(tag)} ({ds[tag].keyword}) varies across frames: a multi-dimensional "
                "reconstruction (gates, windows or detectors) is not one volume",
                code="multi_dimensional_recon",
                path=path,
            )
    slices = vectors.get(_SLICE_VECTOR)
    if slices is None:
        return np.arange(n_frames)
    if len(set(slices.tolist())) != n_frames:
        raise InvalidInputError(
            "SliceVector repeats slice numbers; expected one frame per slice",
            code="frame_vector_invalid",
            path=path,
        )
    return np.argsort(slices, kind="stable")


def _nm_geometry(
    path: str, ds: Dataset, notes: list[str]
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...], float]:
    """(IPP, IOP, PixelSpacing, signed slice step mm) of an NM RECON TOMO object."""
    detector = (ds.get("DetectorInformationSequence") or [Dataset()])[0]
    ipp = _floats(detector.get("ImagePositionPatient"), 3)
    ipp = ipp or _floats(ds.get("ImagePositionPatient"), 3)
    iop = _floats(detector.get("ImageOrientationPatient"), 6)
    iop = iop or _floats(ds.get("ImageOrientationPatient"), 6)
    if ipp is None or iop is None:
        notes.append(
            "no ImagePositionPatient/ImageOrientationPatient: axial slices at the origin "
            "assumed; no pairing with CT possible"
        )
        ipp, iop = (0.0, 0.0, 0.0), DEFAULT_AXIAL_IOP
    step = _floats([ds.get("SpacingBetweenSlices")], 1) if ds.get("SpacingBetweenSlices") else None
    thickness = _floats([ds.get("SliceThickness")], 1) if ds.get("SliceThickness") else None
    spacing = _floats(ds.get("PixelSpacing"), 2)
    if step is None and thickness is None:
        raise InvalidInputError(
            "SpacingBetweenSlices and SliceThickness missing; expected the slice spacing",
            code="missing_geometry",
            path=path,
        )
    step_mm = step[0] if step is not None else thickness[0]  # type: ignore[index]
    if spacing is None:
        spacing = (abs(step_mm), abs(step_mm))
        notes.append(f"PixelSpacing missing: isotropic {abs(step_mm):g} mm voxels assumed")
    return ipp, iop, spacing, step_mm


def _load_nm_recon(path: str, ds: Dataset, notes: list[str], *, max_bytes: int | None) -> Volume:
    _check_recon_tomo(path, ds, notes)
    decoded = decode_frames_with_info(ds, path, max_bytes=max_bytes)
    notes.extend(decoded.warnings)
    order = _frame_order(path, ds, decoded.array.shape[0], notes)
    ipp, iop, spacing, step_mm = _nm_geometry(path, ds, notes)
    normal = slice_normal(iop, path=path)
    affine = build_affine(
        origin_lps_mm=ipp, iop=iop, pixel_spacing_mm=spacing, slice_step_lps_mm=normal * step_mm
    )
    units = decoded.units or stored_unit_label(str(ds.get("Units") or "") or None)
    units = "counts" if units == "unknown" else units
    return Volume(
        array=np.ascontiguousarray(decoded.array[order]),
        affine=affine,
        units=units,
        kind=SeriesKind.SPECT,
        acquisition=_acquisition(ds, notes, keep_warnings=True),
        source=_source([(path, ds)]),
        warnings=tuple(dict.fromkeys(notes)),
    )
