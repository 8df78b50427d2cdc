"""Body-weight SUV (SUVbw) factor for PET-style images, following the QIBA vendor-neutral
pseudo-code (QIBA FDG-PET/CT Profile, "SUV calculation" wiki page).

``SUVbw = C(t) [Bq/mL] * weight [g] / injected activity [Bq]``, with the activity decayed to
the scan reference time when the image is decay corrected to the scan start
(DecayCorrection START) and not decayed when it is corrected to the administration time
(ADMIN). Units:

* BQML: the factor above;
* GML: values are already SUVbw: factor 1.0, never scaled again;
* CNTS (Philips): private (7053,1000) "SUV scale factor" gives SUVbw directly; else
  (7053,1009) converts counts to Bq/mL, then as BQML;
* anything else: no factor; the caller keeps the stored unit and reports ``reasons``.

Scan reference time: SeriesDate/SeriesTime unless that is after the earliest
AcquisitionDate/AcquisitionTime of the series (as when a series is re-saved), then that
earliest acquisition time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pydicom.dataset import Dataset

from octoscan.imaging.acquisition import (
    acquisition_datetime,
    combine_date_time,
    injected_dose_unit,
    read_acquisition_info_with_warnings,
)

__all__ = [
    "PHILIPS_PET_PRIVATE_CREATOR",
    "SuvResult",
    "decay_factor",
    "philips_scale_factors",
    "scan_reference_datetime",
    "stored_unit_label",
    "suv_bw_factor",
]

PHILIPS_PET_PRIVATE_CREATOR = "Philips PET Private Group"
_UNIT_LABELS = {"BQML": "Bq/mL", "GML": "SUVbw", "CNTS": "counts"}


@dataclass(frozen=True)
class SuvResult:
    """How to reach SUVbw from the decoded (rescaled) values of a series.

    ``factor`` multiplies the decoded values to give SUVbw (1.0 for GML), None when the
    headers do not allow it; ``reasons`` say how it was computed or why not.
    ``stored_units`` is the DICOM Units value; ``decay_factor`` the activity decay from
    injection to scan reference time applied (1.0 for ADMIN).
    """

    factor: float | None
    stored_units: str | None
    reasons: tuple[str, ...]
    decay_factor: float | None = None
    scan_datetime: datetime | None = None
    injection_datetime: datetime | None = None
    injected_activity_bq: float | None = None
    weight_g: float | None = None
    half_life_s: float | None = None
    to_bq_per_ml: float = 1.0  # Philips CNTS: (7053,1009) applied before the BQML factor


def stored_unit_label(units: str | None) -> str:
    """octoscan unit label for a DICOM Units value ("BQML" -> "Bq/mL", "GML" -> "SUVbw")."""
    if not units:
        return "unknown"
    return _UNIT_LABELS.get(units.strip().upper(), units.strip())


def decay_factor(elapsed_s: float, half_life_s: float) -> float:
    """Fraction of activity left after ``elapsed_s`` seconds: 2 ** (-elapsed / half-life)."""
    return math.exp(-math.log(2.0) * elapsed_s / half_life_s)


def scan_reference_datetime(datasets: Sequence[Dataset]) -> tuple[datetime | None, str]:
    """(scan reference time, rule used) per the QIBA rule in the module docstring."""
    series = combine_date_time(datasets[0].get("SeriesDate"), datasets[0].get("SeriesTime"))
    acquired = [t for t in (acquisition_datetime(ds) for ds in datasets) if t is not None]
    earliest = min(acquired) if acquired else None
    if series is None and earliest is None:
        return None, "no series or acquisition date/time"
    if series is None:
        return earliest, "earliest acquisition time (no series time)"
    if earliest is not None and series > earliest:
        return earliest, "earliest acquisition time (series time is after it)"
    return series, "series date/time"


def _private_float(ds: Dataset, offset: int) -> float | None:
    try:
        block = ds.private_block(0x7053, PHILIPS_PET_PRIVATE_CREATOR)
        value = block[offset].value
    except (KeyError, ValueError):
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="ignore").strip("\x00 ")
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def philips_scale_factors(ds: Dataset) -> tuple[float | None, float | None]:
    """(SUV scale factor (7053,1000), activity concentration scale factor (7053,1009))."""
    return _private_float(ds, 0x00), _private_float(ds, 0x09)


def _corrections_problem(ds: Dataset) -> str | None:
    corrected = ds.get("CorrectedImage")
    if corrected is None:
        return None
    values = {str(v).upper() for v in ([corrected] if isinstance(corrected, str) else corrected)}
    missing = {"ATTN", "DECY"} - values
    if missing:
        return f"CorrectedImage {sorted(values)} lacks {sorted(missing)}: not quantitative"
    return None


def _dose_bq(ds: Dataset, activity_mbq: float | None) -> float | None:
    return activity_mbq * 1e6 if activity_mbq is not None and injected_dose_unit(ds) else None


def _bqml_factor(datasets: Sequence[Dataset], notes: list[str]) -> SuvResult:
    """SUVbw factor for Bq/mL values (QIBA), or a result with factor None and the reason."""
    ds = datasets[0]
    info, warnings = read_acquisition_info_with_warnings(ds)
    notes.extend(warnings)
    scan_time, rule = scan_reference_datetime(datasets)
    dose_bq = _dose_bq(ds, info.injected_activity_mbq)
    weight_g = info.patient_weight_kg * 1000.0 if info.patient_weight_kg else None
    base = SuvResult(
        factor=None,
        stored_units=str(ds.get("Units") or "") or None,
        reasons=(),
        scan_datetime=scan_time,
        injection_datetime=info.injection_datetime,
        injected_activity_bq=dose_bq,
        weight_g=weight_g,
        half_life_s=info.half_life_s,
    )
    missing = [
        name
        for name, value in (
            ("PatientWeight", weight_g),
            ("RadionuclideTotalDose", dose_bq),
        )
        if value is None
    ]
    if missing:
        return _fail(base, notes, f"no SUV: {', '.join(missing)} missing")
    decay = _decay_for(ds, base, rule, notes)
    if decay is None:
        return _fail(base, notes, "")
    factor = weight_g / (dose_bq * decay)  # type: ignore[operator]
    notes.append(f"SUVbw = Bq/mL x {weight_g:g} g / ({dose_bq:g} Bq x decay {decay:.6f})")
    return replace(base, factor=factor, reasons=tuple(notes), decay_factor=decay)


def _decay_for(ds: Dataset, base: SuvResult, rule: str, notes: list[str]) -> float | None:
    """Decay factor from injection to the scan reference time, by DecayCorrection."""
    correction = str(ds.get("DecayCorrection") or "").strip().upper()
    if correction == "ADMIN":
        notes.append("DecayCorrection ADMIN: image already decay corrected to injection")
        return 1.0
    if correction != "START":
        notes.append(f"no SUV: DecayCorrection {correction or 'missing'} (need START or ADMIN)")
        return None
    if base.scan_datetime is None or base.injection_datetime is None or not base.half_life_s:
        notes.append("no SUV: injection time, scan time or half-life missing for decay")
        return None
    elapsed = (base.scan_datetime - base.injection_datetime).total_seconds()
    if elapsed < 0:
        notes.append(f"no SUV: scan time ({rule}) precedes injection by {-elapsed:g} s")
        return None
    notes.append(
        f"DecayCorrection START: {elapsed:g} s from injection to {rule}, "
        f"half-life {base.half_life_s:g} s"
    )
    return decay_factor(elapsed, base.half_life_s)


def _fail(base: SuvResult, notes: list[str], reason: str) -> SuvResult:
    reasons = (*notes, reason) if reason else tuple(notes)
    return replace(base, factor=None, reasons=reasons)


def _cnts_factor(datasets: Sequence[Dataset], notes: list[str]) -> SuvResult:
    suv_scale, bq_scale = philips_scale_factors(datasets[0])
    if suv_scale is not None:
        notes.append(f"Units CNTS: Philips SUV scale factor (7053,1000) {suv_scale:g} used")
        return SuvResult(suv_scale, "CNTS", tuple(notes))
    if bq_scale is None:
        notes.append("no SUV: Units CNTS without Philips scale factors (7053,1000)/(7053,1009)")
        return SuvResult(None, "CNTS", tuple(notes))
    notes.append(f"Units CNTS: Philips Bq/mL scale factor (7053,1009) {bq_scale:g} used")
    result = _bqml_factor(datasets, notes)
    factor = result.factor * bq_scale if result.factor is not None else None
    return replace(result, factor=factor, stored_units="CNTS", to_bq_per_ml=bq_scale)


def suv_bw_factor(datasets: Sequence[Dataset]) -> SuvResult:
    """SUVbw factor for the decoded values of one series (headers of its files suffice).

    ``datasets`` are the series' headers (all of them: the scan reference time takes the
    earliest AcquisitionTime). Never raises for missing data: ``factor`` is then None and
    ``reasons`` says why.
    """
    if not datasets:
        raise ValueError("suv_bw_factor needs at least one dataset")
    ds = datasets[0]
    units = str(ds.get("Units") or "").strip().upper()
    if units == "GML":
        return SuvResult(1.0, "GML", ("Units GML: values already SUVbw, not scaled again",))
    notes: list[str] = []
    problem = _corrections_problem(ds)
    if problem is not None:
        return SuvResult(None, units, (problem,))
    if ds.get("CorrectedImage") is None:
        notes.append("CorrectedImage missing: attenuation and decay correction assumed")
    if units == "BQML":
        return _bqml_factor(datasets, notes)
    if units == "CNTS":
        return _cnts_factor(datasets, notes)
    return SuvResult(None, units or None, (f"no SUV: Units {units or 'missing'} not supported",))
