"""Acquisition facts read from DICOM headers: radionuclide, activity, times.

Everything here works on headers only (a dataset read with ``stop_before_pixels=True`` is
enough). Public entry points:

* :func:`read_acquisition_info` -> :class:`~octoscan.imaging.types.AcquisitionInfo`;
* :func:`read_acquisition_info_with_warnings` -> ``(AcquisitionInfo, list[str])``, the same
  plus one readable warning per missing or implausible optional attribute;
* :func:`parse_dicom_date`, :func:`parse_dicom_time`, :func:`parse_dicom_datetime` for DA, TM
  and DT values (PS3.5 section 6.2), including fractional seconds, UTC offsets and the
  ``YYYY.MM.DD`` / ``HH:MM:SS`` forms of ACR-NEMA files;
* :func:`normalise_radionuclide` to names such as ``"In-111"``, ``"Tc-99m"``, ``"Lu-177"``;
* :func:`injected_dose_unit` (``"MBq"`` for NM objects, ``"Bq"`` for PET objects, PS3.3
  C.8.4.10 and C.8.9.1 (RadionuclideTotalDose));
* :func:`is_quantitative_spect_in_pet_iod` / :func:`quantitative_spect_evidence`: a PET
  object (SOP class or Modality PT) that really holds a SPECT, decided by content.

All datetimes returned are naive, in the local time of the acquisition site: a value that
carries a UTC offset is converted to the dataset's TimezoneOffsetFromUTC (0008,0201) when
present, else to the offset of the acquisition datetime, then the offset is dropped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import (
    EnhancedPETImageStorage,
    LegacyConvertedEnhancedPETImageStorage,
    NuclearMedicineImageStorage,
    PositronEmissionTomographyImageStorage,
)

from octoscan.imaging.types import AcquisitionInfo

__all__ = [
    "NUCLIDES",
    "Nuclide",
    "acquisition_datetime",
    "combine_date_time",
    "injected_dose_unit",
    "is_quantitative_spect_in_pet_iod",
    "normalise_radionuclide",
    "nuclide_from_half_life",
    "parse_dicom_date",
    "parse_dicom_datetime",
    "parse_dicom_time",
    "parse_timezone_offset",
    "quantitative_spect_evidence",
    "read_acquisition_info",
    "read_acquisition_info_with_warnings",
]


@dataclass(frozen=True)
class Nuclide:
    """A radionuclide: canonical name, SNOMED CT and SNOMED-RT (SRT/99SDM) codes, half-life."""

    name: str
    sct: str
    srt: str
    half_life_s: float
    positron_emitter: bool


# Half-lives from NNDC/DDEP tables (rounded); codes from DICOM CID 18 and CID 4020.
NUCLIDES: tuple[Nuclide, ...] = (
    Nuclide("F-18", "77004003", "C-111A1", 6586.2, True),
    Nuclide("Ga-68", "35337001", "C-131A3", 4062.6, True),
    Nuclide("Cu-64", "3932008", "C-127A2", 45723.6, True),
    Nuclide("C-11", "40565003", "C-105A1", 1221.8, True),
    Nuclide("N-13", "21576001", "C-107A1", 597.9, True),
    Nuclide("O-15", "129504001", "C-B1038", 122.2, True),
    Nuclide("Rb-82", "79197006", "C-159A2", 75.5, True),
    Nuclide("Zr-89", "63360001", "C-168A4", 282276.0, True),
    Nuclide("I-124", "40937006", "C-114A5", 360806.0, True),
    Nuclide("Y-86", "10738001", "C-162A3", 53064.0, True),
    Nuclide("Sc-44", "126600", "126600", 14551.0, True),
    Nuclide("In-111", "56609000", "C-145A4", 242326.0, False),
    Nuclide("Tc-99m", "72454006", "C-163A8", 21624.1, False),
    Nuclide("Lu-177", "447553000", "C-101ED", 574300.0, False),
    Nuclide("I-123", "21572004", "C-114A4", 47604.6, False),
    Nuclide("I-131", "1368003", "C-114B1", 693377.0, False),
    Nuclide("Tl-201", "60057003", "C-138A9", 262837.0, False),
    Nuclide("Ga-67", "2008008", "C-131A2", 281811.0, False),
    Nuclide("Y-90", "14691008", "C-162A7", 230580.0, False),
    Nuclide("Sm-153", "419804008", "C-B1134", 166622.0, False),
    Nuclide("Xe-133", "80751004", "C-172A8", 452995.0, False),
)

_BY_NAME = {n.name: n for n in NUCLIDES}
_BY_CODE = {c: n for n in NUCLIDES for c in (n.sct, n.srt)}

# Y-90 is imaged both by PET (tiny positron branch) and bremsstrahlung SPECT: no evidence.
_SINGLE_PHOTON = frozenset(n.name for n in NUCLIDES if not n.positron_emitter) - {"Y-90"}

_ELEMENTS = {
    "fluorine": "F", "gallium": "Ga", "copper": "Cu", "carbon": "C", "nitrogen": "N",
    "oxygen": "O", "rubidium": "Rb", "zirconium": "Zr", "iodine": "I", "yttrium": "Y",
    "scandium": "Sc", "indium": "In", "technetium": "Tc", "lutetium": "Lu",
    "thallium": "Tl", "samarium": "Sm", "xenon": "Xe", "rhenium": "Re", "holmium": "Ho",
    "strontium": "Sr", "radium": "Ra", "actinium": "Ac", "lead": "Pb", "bismuth": "Bi",
    "terbium": "Tb", "cobalt": "Co", "chromium": "Cr", "erbium": "Er",
}  # fmt: skip
_SYMBOLS = {s.lower(): s for s in _ELEMENTS.values()}

HALF_LIFE_MATCH_TOLERANCE = 0.02  # relative: a stated half-life names a nuclide within 2 %
PLAUSIBLE_ACTIVITY_MBQ = (0.1, 60_000.0)  # diagnostic to therapeutic administrations
PLAUSIBLE_WEIGHT_KG = (0.5, 400.0)
_PET_SOP_CLASSES = frozenset(
    {
        PositronEmissionTomographyImageStorage,
        EnhancedPETImageStorage,
        LegacyConvertedEnhancedPETImageStorage,
    }
)

# ---------------------------------------------------------------------------- date/time


def parse_timezone_offset(text: str) -> timezone | None:
    """``"+0100"`` / ``"-0500"`` (TimezoneOffsetFromUTC or a DT suffix) -> timezone or None."""
    m = re.fullmatch(r"([+-])(\d{2})(\d{2})", text.strip())
    if m is None:
        return None
    sign = 1 if m.group(1) == "+" else -1
    return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))


def parse_dicom_date(value: Any) -> date | None:
    """DA ``YYYYMMDD`` (or ACR-NEMA ``YYYY.MM.DD``) -> date; None when empty or invalid."""
    text = str(value or "").strip().replace(".", "").replace("-", "")
    if not re.fullmatch(r"\d{8}", text):
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def _fraction_to_us(fraction: str) -> int:
    return round(float("0." + fraction) * 1_000_000) if fraction else 0


def parse_dicom_time(value: Any) -> time | None:
    """TM ``HH[MM[SS[.FFFFFF]]]`` (or ACR-NEMA ``HH:MM:SS.FFF``) -> time; None if invalid."""
    text = str(value or "").strip().replace(":", "")
    m = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?", text)
    if m is None:
        return None
    hh, mm, ss = (int(g) if g else 0 for g in m.group(1, 2, 3))
    us = min(_fraction_to_us(m.group(4) or ""), 999_999)
    if ss == 60:  # leap second: clamp
        ss, us = 59, 999_999
    try:
        return time(hh, mm, ss, us)
    except ValueError:
        return None


def parse_dicom_datetime(value: Any) -> datetime | None:
    """DT ``YYYYMMDD[HHMMSS[.FFFFFF]][&ZZXX]`` -> datetime (aware when an offset is given)."""
    text = str(value or "").strip()
    m = re.fullmatch(r"(\d{8})([\d.:]*)([+-]\d{4})?", text)
    if m is None:
        return None
    day = parse_dicom_date(m.group(1))
    clock = parse_dicom_time(m.group(2)) if m.group(2) else time(0, 0)
    if day is None or clock is None:
        return None
    tz = parse_timezone_offset(m.group(3)) if m.group(3) else None
    return datetime.combine(day, clock, tzinfo=tz)


def combine_date_time(day: Any, clock: Any) -> datetime | None:
    """A DA and a TM value -> naive datetime, or None when either is missing or invalid."""
    d, t = parse_dicom_date(day), parse_dicom_time(clock)
    return datetime.combine(d, t) if d is not None and t is not None else None


def _to_local_naive(value: datetime | None, reference: timezone | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    if reference is not None:
        value = value.astimezone(reference)
    return value.replace(tzinfo=None)


# ---------------------------------------------------------------------------- helpers


def _get(ds: Dataset, keyword: str) -> Any:
    """Value of ``keyword`` or None when absent or empty."""
    value = ds.get(keyword)
    if value is None or value == "" or (hasattr(value, "__len__") and len(value) == 0):
        return None
    return value


def _text(ds: Dataset, keyword: str) -> str | None:
    value = _get(ds, keyword)
    if value is None:
        return None
    return str(value).strip() or None


def _float(ds: Dataset, keyword: str) -> float | None:
    value = _get(ds, keyword)
    try:
        number = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and math.isfinite(number) else None


def _first_item(ds: Dataset, keyword: str) -> Dataset | None:
    seq = _get(ds, keyword)
    return seq[0] if seq else None


def _radiopharmaceutical_item(ds: Dataset) -> Dataset | None:
    return _first_item(ds, "RadiopharmaceuticalInformationSequence")


# ---------------------------------------------------------------------------- radionuclide


def normalise_radionuclide(text: str | None) -> str | None:
    """Free text such as ``"^111^Indium"``, ``"177 Lutetium"``, ``"TC99M"``, ``"F-18"`` ->
    ``"In-111"``, ``"Lu-177"``, ``"Tc-99m"``, ``"F-18"``; None when not recognisable."""
    if not text:
        return None
    low = text.lower()
    mass = re.search(r"(\d{1,3})\s*(m(?![a-z]))?", low)
    symbol = next((s for name, s in _ELEMENTS.items() if name in low), None)
    if symbol is None:
        letters = re.findall(r"(?<![a-z])([a-z]{1,2})(?![a-z])", re.sub(r"\d+m?", " ", low))
        symbol = next((_SYMBOLS[x] for x in letters if x in _SYMBOLS), None)
    if symbol is None or mass is None:
        return None
    return f"{symbol}-{mass.group(1)}{'m' if mass.group(2) else ''}"


def nuclide_from_half_life(half_life_s: float | None) -> Nuclide | None:
    """The only known nuclide within HALF_LIFE_MATCH_TOLERANCE of ``half_life_s``, else None."""
    if half_life_s is None or half_life_s <= 0:
        return None
    hits = [
        n
        for n in NUCLIDES
        if abs(n.half_life_s - half_life_s) <= HALF_LIFE_MATCH_TOLERANCE * n.half_life_s
    ]
    return hits[0] if len(hits) == 1 else None


def _radionuclide_from_code(item: Dataset) -> tuple[str | None, str | None]:
    code = _first_item(item, "RadionuclideCodeSequence")
    if code is None:
        return None, None
    value, scheme = _text(code, "CodeValue"), _text(code, "CodingSchemeDesignator")
    label = f"{scheme} {value}" if value and scheme else value
    known = _BY_CODE.get(value or "")
    name = known.name if known else normalise_radionuclide(_text(code, "CodeMeaning"))
    return name, label


def _read_radionuclide(
    ds: Dataset, item: Dataset | None, warnings: list[str]
) -> tuple[str | None, str | None]:
    """(name, code label) from the code sequence, the free text, or the half-life."""
    if item is None:
        return None, None
    name, label = _radionuclide_from_code(item)
    if name is None:
        name = normalise_radionuclide(_text(item, "Radionuclide") or _text(ds, "Radionuclide"))
    if name is None:
        guess = nuclide_from_half_life(_float(item, "RadionuclideHalfLife"))
        if guess is not None:
            warnings.append(
                f"radionuclide not coded; {guess.name} inferred from RadionuclideHalfLife"
            )
            name = guess.name
    if name is None:
        warnings.append("radionuclide unknown: RadionuclideCodeSequence and text missing")
    return name, label


def _read_radiopharmaceutical(item: Dataset | None) -> str | None:
    if item is None:
        return None
    code = _first_item(item, "RadiopharmaceuticalCodeSequence")
    meaning = _text(code, "CodeMeaning") if code is not None else None
    return meaning or _text(item, "Radiopharmaceutical")


def _read_half_life(item: Dataset | None, nuclide: str | None, warnings: list[str]) -> float | None:
    stated = _float(item, "RadionuclideHalfLife") if item is not None else None
    if stated is not None and stated > 0:
        return stated
    known = _BY_NAME.get(nuclide or "")
    if known is not None:
        warnings.append(f"RadionuclideHalfLife missing: tabulated {known.half_life_s} s used")
        return known.half_life_s
    return None


# ---------------------------------------------------------------------------- activity


def injected_dose_unit(ds: Dataset) -> str | None:
    """Unit of RadionuclideTotalDose for this object: "Bq" (PET IODs), "MBq" (NM), or None.

    Decided by SOP Class UID (a PET object holding a SPECT still stores Bq), else by Modality.
    """
    sop = str(_get(ds, "SOPClassUID") or "")
    if sop in _PET_SOP_CLASSES:
        return "Bq"
    if sop == NuclearMedicineImageStorage:
        return "MBq"
    modality = _text(ds, "Modality")
    return {"PT": "Bq", "NM": "MBq"}.get(modality or "")


def _read_activity_mbq(ds: Dataset, item: Dataset | None, warnings: list[str]) -> float | None:
    raw = _float(item, "RadionuclideTotalDose") if item is not None else None
    if raw is None or raw <= 0:
        warnings.append("RadionuclideTotalDose missing or not positive: activity unknown")
        return None
    unit = injected_dose_unit(ds)
    if unit is None:
        warnings.append(
            f"RadionuclideTotalDose {raw}: unit unknown for SOP class {_get(ds, 'SOPClassUID')}"
        )
        return None
    mbq = raw / 1e6 if unit == "Bq" else raw
    low, high = PLAUSIBLE_ACTIVITY_MBQ
    if not low <= mbq <= high:
        warnings.append(
            f"RadionuclideTotalDose {raw} read as {unit} gives {mbq:g} MBq, outside the "
            f"plausible {low:g}-{high:g} MBq: check the unit used by the sender"
        )
    return mbq


# ---------------------------------------------------------------------------- times


def _dataset_timezone(ds: Dataset) -> timezone | None:
    text = _text(ds, "TimezoneOffsetFromUTC")
    return parse_timezone_offset(text) if text else None


def _acquisition_datetime_raw(ds: Dataset) -> tuple[datetime | None, str | None]:
    """(datetime, attributes used) following the order documented on the module."""
    dt = parse_dicom_datetime(_get(ds, "AcquisitionDateTime"))
    if dt is not None:
        return dt, "AcquisitionDateTime"
    day = _get(ds, "AcquisitionDate") or _get(ds, "SeriesDate") or _get(ds, "StudyDate")
    for date_kw, time_kw, fallback_day in (
        ("AcquisitionDate", "AcquisitionTime", day),
        ("SeriesDate", "SeriesTime", None),
        ("ContentDate", "ContentTime", None),
    ):
        value = combine_date_time(fallback_day or _get(ds, date_kw), _get(ds, time_kw))
        if value is not None:
            return value, f"{date_kw}/{time_kw}"
    return None, None


def _injection_from_time_only(
    ds: Dataset, item: Dataset, acquired: datetime | None, warnings: list[str]
) -> datetime | None:
    clock = parse_dicom_time(_get(item, "RadiopharmaceuticalStartTime"))
    day_kw = next((k for k in ("StudyDate", "SeriesDate", "AcquisitionDate") if _get(ds, k)), None)
    day = parse_dicom_date(_get(ds, day_kw)) if day_kw else None
    if clock is None or day is None:
        return None
    injected = datetime.combine(day, clock)
    shift = 0
    while acquired is not None and injected > acquired and shift < 7:
        injected -= timedelta(days=1)
        shift += 1
    note = f" moved back {shift} day(s) to precede the acquisition" if shift else ""
    warnings.append(
        f"RadiopharmaceuticalStartDateTime missing: injection date taken from {day_kw}{note}; "
        "if injection and scan fell on different days, hours post-injection is off by days"
    )
    return injected


def _read_injection(
    ds: Dataset, item: Dataset | None, acquired: datetime | None, warnings: list[str]
) -> datetime | None:
    if item is None:
        warnings.append("RadiopharmaceuticalInformationSequence missing: injection time unknown")
        return None
    injected = parse_dicom_datetime(_get(item, "RadiopharmaceuticalStartDateTime"))
    if injected is not None:
        return injected
    injected = _injection_from_time_only(ds, item, acquired, warnings)
    if injected is None:
        warnings.append("radiopharmaceutical start date/time missing: injection time unknown")
    return injected


def _hours_between(
    injected: datetime | None, acquired: datetime | None, warnings: list[str]
) -> float | None:
    if injected is None or acquired is None:
        return None
    hours = (acquired - injected).total_seconds() / 3600.0
    if hours < 0:
        warnings.append(
            f"acquisition {acquired.isoformat()} precedes injection {injected.isoformat()}: "
            "hours post-injection left unknown"
        )
        return None
    return hours


# ---------------------------------------------------------------------------- other facts


def _read_frame_duration_s(ds: Dataset) -> float | None:
    ms = _float(ds, "ActualFrameDuration")
    return ms / 1000.0 if ms is not None and ms > 0 else None


def _read_weight_kg(ds: Dataset, warnings: list[str]) -> float | None:
    kg = _float(ds, "PatientWeight")
    if kg is None or kg <= 0:
        warnings.append("PatientWeight missing or zero: SUV normalisation impossible")
        return None
    low, high = PLAUSIBLE_WEIGHT_KG
    if not low <= kg <= high:
        warnings.append(f"PatientWeight {kg} kg outside plausible {low}-{high} kg")
    return kg


# ---------------------------------------------------------------------------- public API


def read_acquisition_info_with_warnings(ds: Dataset) -> tuple[AcquisitionInfo, list[str]]:
    """Acquisition facts of ``ds`` plus one warning per missing or implausible attribute.

    ``injected_activity_mbq`` is MBq whatever the storage class; ``hours_post_injection`` is
    from injection to acquisition start; ``frame_duration_s`` from ActualFrameDuration (ms);
    datetimes are naive local time (see module docstring). Never raises for missing data.
    """
    warnings: list[str] = []
    item = _radiopharmaceutical_item(ds)
    nuclide, code = _read_radionuclide(ds, item, warnings)
    acquired_raw, _ = _acquisition_datetime_raw(ds)
    if acquired_raw is None:
        warnings.append("no acquisition, series or content date/time: acquisition time unknown")
    injected_raw = _read_injection(ds, item, acquired_raw, warnings)
    ref = _dataset_timezone(ds) or (acquired_raw.tzinfo if acquired_raw else None)
    ref = ref or (injected_raw.tzinfo if injected_raw else None)
    acquired = _to_local_naive(acquired_raw, ref)  # type: ignore[arg-type]
    injected = _to_local_naive(injected_raw, ref)  # type: ignore[arg-type]
    info = AcquisitionInfo(
        modality=_text(ds, "Modality"),
        manufacturer=_text(ds, "Manufacturer"),
        model=_text(ds, "ManufacturerModelName"),
        radionuclide=nuclide,
        radionuclide_code=code,
        radiopharmaceutical=_read_radiopharmaceutical(item),
        half_life_s=_read_half_life(item, nuclide, warnings) if item is not None else None,
        injected_activity_mbq=(
            _read_activity_mbq(ds, item, warnings) if item is not None else None
        ),
        injection_datetime=injected,
        acquisition_datetime=acquired,
        hours_post_injection=_hours_between(injected, acquired, warnings),
        frame_duration_s=_read_frame_duration_s(ds),
        series_description=_text(ds, "SeriesDescription"),
        patient_weight_kg=_read_weight_kg(ds, warnings),
    )
    return info, warnings


def read_acquisition_info(ds: Dataset) -> AcquisitionInfo:
    """Acquisition facts of ``ds`` (see :func:`read_acquisition_info_with_warnings`)."""
    return read_acquisition_info_with_warnings(ds)[0]


def acquisition_datetime(ds: Dataset) -> datetime | None:
    """Acquisition start as naive local time: AcquisitionDateTime, else AcquisitionDate+Time,
    else SeriesDate+Time, else ContentDate+Time."""
    value, _ = _acquisition_datetime_raw(ds)
    ref = _dataset_timezone(ds) or (value.tzinfo if value else None)
    return _to_local_naive(value, ref)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- SPECT in PET IOD

_CAMERA_MODELS = (
    "symbia", "intevo", "e.cam", "ecam", "encore", "discovery nm", "nm/ct", "infinia",
    "anyscan", "optima nm", "xeleris", "brightview", "precedence", "skylight", "forte",
    "veriton", "starguide", "d-spect", "ergo", "millennium", "hawkeye", "hermes",
)  # fmt: skip
_SPECT_WORDS = re.compile(r"\b(x?spect|tomo|spect/ct|q\.?metrix)\b", re.IGNORECASE)


def _is_pet_object(ds: Dataset) -> bool:
    return str(_get(ds, "SOPClassUID") or "") in _PET_SOP_CLASSES or _text(ds, "Modality") == "PT"


def _camera_evidence(ds: Dataset) -> str | None:
    maker = (_text(ds, "Manufacturer") or "").lower()
    model = (_text(ds, "ManufacturerModelName") or "").lower()
    if re.search(r"\bnm\b", maker):
        return f"manufacturer {maker!r} names an NM camera"
    hit = next((m for m in _CAMERA_MODELS if m in model or m in maker), None)
    return f"model {model!r} is a gamma camera ({hit})" if hit else None


def quantitative_spect_evidence(ds: Dataset) -> str | None:
    """Why a PET object (PET SOP class or Modality PT) is really a SPECT, or None.

    Rules, in order: a positron emitter says PET; a single-photon radionuclide (Lu-177,
    In-111, Tc-99m, I-131 ...) says SPECT; then gamma-camera manufacturer or model names;
    then a series description mentioning SPECT, xSPECT or TOMO.
    """
    if not _is_pet_object(ds):
        return None
    nuclide, _ = _read_radionuclide(ds, _radiopharmaceutical_item(ds), [])
    known = _BY_NAME.get(nuclide or "")
    if known is not None and known.positron_emitter:
        return None
    if nuclide in _SINGLE_PHOTON:
        return f"radionuclide {nuclide} is a single-photon emitter"
    camera = _camera_evidence(ds)
    if camera:
        return camera
    description = _text(ds, "SeriesDescription") or ""
    if _SPECT_WORDS.search(description):
        return f"series description {description!r} names a SPECT"
    return None


def is_quantitative_spect_in_pet_iod(ds: Dataset) -> bool:
    """True when a PET object holds a (quantitative) SPECT; see quantitative_spect_evidence."""
    return quantitative_spect_evidence(ds) is not None
