"""Planar NM views from headers: which frames form which view, and on what evidence.

A planar NM object (NM Image Storage, STATIC / WHOLE BODY / DYNAMIC / GATED) is multi-frame;
the vectors named by FrameIncrementPointer (0028,0009) give each frame its detector, energy
window, phase, time slot ... (PS3.3 C.8.4.8). A view is one detector's photopeak frames,
summed. Whether a detector looked at the patient's front or back is decided by the first of
these rules that gives an answer (the detector number alone never decides):

1. ``ViewCodeSequence`` in DetectorInformationSequence[detector] (CID 26: SCT 399321004 /
   SRT G-5215 anterior projection, SCT 399001007 / SRT G-5216 posterior projection);
2. ``ImageOrientationPatient`` in DetectorInformationSequence[detector]: the image normal
   (row x column) points from the viewer into the patient, +y (towards posterior) for an
   anterior view, -y for a posterior view. Not used when two detectors carry the same
   orientation (opposed heads cannot: such values are placeholders);
3. ``PatientOrientation`` (0020,0020) row/column letters, same normal test (single-view
   objects only, since it is one value for the whole object);
4. anterior/posterior words in ``ImageID``, ``SeriesDescription`` or ``ImageComments``
   (single-view objects only; words such as "post-injection" are not views);
5. across files (:func:`complement_views`): two single-view files of one series acquired
   together by different detectors, one decided by the rules above: the other is opposite.

Rules 1 and 4 are labels of the detector's position relative to the gantry, written for a
supine patient: when PatientPosition (0018,5100) or PatientOrientationCodeSequence says
prone, anterior and posterior are swapped (``"+prone swap"`` in the rule); decubitus makes
them meaningless (unknown). Rules 2 and 3 are in patient coordinates and are never swapped.

StartAngle (0054,0200) is deliberately not a rule. The one real two-head planar file we have
(Siemens Symbia, shared set ``salimkanoun-Scintigraphy/poumonsReins.dcm``) shows why: its
standard StartAngle says 180/360 degrees for detectors 1/2 while its GEMS private start angle
(0035,1001) says 0/180 for the same detectors, and both heads carry the same per-detector
ImageOrientationPatient [-1,0,0, 0,0,-1] although the two frames are left-right mirror images
(opposite views). Nothing in that header says which head faced the patient's front, so both
views of that file are reported unknown rather than guessed. StartAngle only serves to check
that two heads were opposed (180 degrees apart) when one head's view is known.

Energy windows: photopeak windows are summed, scatter windows never. A window is scatter
when its name says so (SC, SCAT, scatter, LSC/USC, TEW) or when its limits contain none of
the radionuclide's photopeaks (:data:`PHOTOPEAKS_KEV`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from octoscan.imaging.types import View

__all__ = [
    "ANTERIOR_CODES",
    "FRAME_VECTORS",
    "PHOTOPEAKS_KEV",
    "POSTERIOR_CODES",
    "EnergyWindow",
    "PlanarLayout",
    "SingleViewFile",
    "ViewDecision",
    "ViewGroup",
    "classify_energy_windows",
    "complement_views",
    "frame_vectors",
    "patient_posture",
    "resolve_planar_layout",
    "view_from_orientation",
    "view_from_text",
]

# CID 26 Nuclear Medicine Projection; the SRT values are the pre-2017 SNOMED-RT codes.
ANTERIOR_CODES = frozenset({codes.SCT.AnteriorProjection.value, "G-5215"})
POSTERIOR_CODES = frozenset({codes.SCT.PosteriorProjection.value, "G-5216"})
_PRONE_CODES = frozenset({codes.SCT.Prone.value, "F-10310"})
_SUPINE_CODES = frozenset({codes.SCT.Supine.value, "F-10340"})
_DECUBITUS_CODES = frozenset(
    {
        codes.SCT.LeftLateralDecubitus.value,
        codes.SCT.RightLateralDecubitus.value,
        "F-10317",
        "F-10319",
    }
)

FRAME_VECTORS: tuple[str, ...] = (
    "DetectorVector",
    "EnergyWindowVector",
    "PhaseVector",
    "RotationVector",
    "RRIntervalVector",
    "TimeSlotVector",
    "SliceVector",
    "AngularViewVector",
    "TimeSliceVector",
)
# Vectors along which frames of one view are summed (time, phase, cardiac gate).
_SUMMED_VECTORS = ("PhaseVector", "TimeSlotVector", "RRIntervalVector", "TimeSliceVector")

# Principal gamma emissions used for imaging, keV (NNDC rounded).
PHOTOPEAKS_KEV: dict[str, tuple[float, ...]] = {
    "In-111": (171.3, 245.4),
    "Tc-99m": (140.5,),
    "Lu-177": (112.9, 208.4),
    "I-123": (159.0,),
    "I-131": (364.5,),
    "Ga-67": (93.3, 184.6, 300.2),
    "Tl-201": (70.8, 167.4),
}
# A coronal image: the normal's y component must dominate to call it anterior/posterior.
MIN_CORONAL_COSINE = 0.7

_SCATTER_NAME = re.compile(r"\b(sc\d*|scat\w*|lsc|usc|tew|compton|lower\s*sc|upper\s*sc)\b")
_ANTERIOR_WORDS = re.compile(r"\b(ant|anter|anterior|anterieur|ventral)\b")
_POSTERIOR_WORDS = re.compile(r"\b(post|poster|posterior|posterieur|dorsal)\b")
# "post" followed by one of these means "after", not "posterior".
_POST_AFTER = re.compile(
    r"^\s*(inj\w*|therap\w*|tx|op\w*|void\w*|mict\w*|contrast|treat\w*|prrt|admin\w*|dose|"
    r"surg\w*|ttt)\b"
)
_LETTER_AXES = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0)}
_LETTER_AXES |= {"H": (0, 0, 1), "F": (0, 0, -1)}


@dataclass(frozen=True)
class EnergyWindow:
    """One energy window of an NM object (1-based ``index`` as in EnergyWindowVector)."""

    index: int
    name: str | None
    ranges_kev: tuple[tuple[float, float], ...]
    is_photopeak: bool
    reason: str

    @property
    def label(self) -> str:
        limits = ", ".join(f"{lo:g}-{hi:g} keV" for lo, hi in self.ranges_kev)
        name = self.name or f"window {self.index}"
        return f"{name} ({limits})" if limits else name


@dataclass(frozen=True)
class ViewDecision:
    """A view and the rule that decided it (``"none: ..."`` when undecided)."""

    view: View
    rule: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ViewGroup:
    """The frames of one object that make one view: one detector, photopeak windows only.

    ``frames`` are 0-based frame indices to sum; ``detector`` is 1-based (None when the
    object has no DetectorVector and one detector).
    """

    detector: int | None
    decision: ViewDecision
    frames: tuple[int, ...]
    energy_windows_used: tuple[str, ...]
    summed_over: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlanarLayout:
    """How the frames of one planar object map to views (headers only)."""

    n_frames: int
    vectors: dict[str, tuple[int, ...]]
    energy_windows: tuple[EnergyWindow, ...]
    groups: tuple[ViewGroup, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def views(self) -> dict[str, list[int]]:
        """View name -> frame indices holding it."""
        out: dict[str, list[int]] = {}
        for g in self.groups:
            out.setdefault(g.decision.view.value, []).extend(g.frames)
        return out


# --------------------------------------------------------------------------- frame vectors


def _n_frames(ds: Dataset) -> int:
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        return 1


def _as_int_tuple(value: object) -> tuple[int, ...]:
    """A US / AT value of VM 1 (a plain int) or VM > 1 (a MultiValue) as a tuple of ints."""
    if value is None:
        return ()
    if isinstance(value, int):
        return (int(value),)
    return tuple(int(v) for v in value)  # type: ignore[attr-defined]


def frame_vectors(ds: Dataset) -> tuple[dict[str, tuple[int, ...]], list[str]]:
    """Vectors named by FrameIncrementPointer, each with one 1-based value per frame.

    Returns (vectors, warnings). A vector whose length differs from NumberOfFrames is dropped
    (with a warning when FrameIncrementPointer names it). Frame vectors present but not
    pointed to are used when their length fits.
    """
    n = _n_frames(ds)
    notes: list[str] = []
    pointed = [keyword_for_tag(t) for t in _as_int_tuple(ds.get("FrameIncrementPointer"))]
    out: dict[str, tuple[int, ...]] = {}
    for keyword in FRAME_VECTORS:
        is_pointed = keyword in pointed
        if keyword not in ds:
            if is_pointed:
                notes.append(f"FrameIncrementPointer names {keyword} but it is absent")
            continue
        try:
            values = _as_int_tuple(ds.get(keyword))
        except (TypeError, ValueError):
            notes.append(f"{keyword} is not a list of integers: ignored")
            continue
        if len(values) != n:
            if is_pointed:
                notes.append(f"{keyword} has {len(values)} values for {n} frames: ignored")
            continue
        out[keyword] = values
    return out, notes


# --------------------------------------------------------------------------- energy windows


def _window_ranges(item: Dataset) -> tuple[tuple[float, float], ...]:
    ranges = []
    for r in item.get("EnergyWindowRangeSequence") or ():
        try:
            lo, hi = float(r.get("EnergyWindowLowerLimit")), float(r.get("EnergyWindowUpperLimit"))
        except (TypeError, ValueError):
            continue
        if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
            ranges.append((lo, hi))
    return tuple(ranges)


def _classify_window(
    index: int, name: str | None, ranges: tuple[tuple[float, float], ...], nuclide: str | None
) -> EnergyWindow:
    low_name = re.sub(r"[^a-z0-9]+", " ", (name or "").lower())
    peaks = PHOTOPEAKS_KEV.get(nuclide or "")
    contains = [p for p in (peaks or ()) if any(lo <= p <= hi for lo, hi in ranges)]
    if _SCATTER_NAME.search(low_name):
        return EnergyWindow(index, name, ranges, False, f"name {name!r} marks a scatter window")
    if ranges and peaks:
        if contains:
            listed = ", ".join(f"{p:g}" for p in contains)
            why = f"limits contain the {nuclide} photopeak(s) {listed} keV"
            return EnergyWindow(index, name, ranges, True, why)
        listed = ", ".join(f"{p:g}" for p in peaks)
        why = f"limits contain no {nuclide} photopeak ({listed} keV)"
        return EnergyWindow(index, name, ranges, False, why)
    if not ranges:
        return EnergyWindow(
            index, name, ranges, True, "no limits and no scatter name: assumed photopeak"
        )
    return EnergyWindow(
        index, name, ranges, True, "radionuclide photopeaks unknown: limits not checked"
    )


def classify_energy_windows(ds: Dataset, radionuclide: str | None) -> tuple[EnergyWindow, ...]:
    """Energy windows of ``ds`` (EnergyWindowInformationSequence) marked photopeak or scatter.

    ``radionuclide`` is a normalised name (``"In-111"``); see :data:`PHOTOPEAKS_KEV`.
    """
    out = []
    for i, item in enumerate(ds.get("EnergyWindowInformationSequence") or (), start=1):
        name = str(item.get("EnergyWindowName") or "").strip() or None
        out.append(_classify_window(i, name, _window_ranges(item), radionuclide))
    return tuple(out)


# --------------------------------------------------------------------------- posture


def patient_posture(ds: Dataset) -> tuple[str | None, str]:
    """("supine" | "prone" | "decubitus" | "conflict" | None, evidence).

    From PatientPosition (0018,5100: HFS/FFS supine, HFP/FFP prone, ..D[LR] decubitus, or
    ACR-NEMA free text) and PatientOrientationCodeSequence / its modifier (codes for prone,
    supine, lateral decubitus).
    """
    found: dict[str, str] = {}
    position = str(ds.get("PatientPosition") or "").strip().upper()
    if position:
        if position in {"HFP", "FFP"} or position == "PRONE":
            found["PatientPosition"] = "prone"
        elif position in {"HFS", "FFS"} or position == "SUPINE":
            found["PatientPosition"] = "supine"
        elif re.fullmatch(r"(HF|FF|AF|PF|LF|RF)D[LR]|.*DECUBITUS.*", position):
            found["PatientPosition"] = "decubitus"
    for item in ds.get("PatientOrientationCodeSequence") or ():
        for code in [item, *(item.get("PatientOrientationModifierCodeSequence") or ())]:
            value = str(code.get("CodeValue") or "")
            meaning = str(code.get("CodeMeaning") or "").lower()
            if value in _PRONE_CODES or "prone" in meaning:
                found["PatientOrientationCodeSequence"] = "prone"
            elif value in _SUPINE_CODES or "supine" in meaning:
                found["PatientOrientationCodeSequence"] = "supine"
            elif value in _DECUBITUS_CODES or "decubitus" in meaning:
                found["PatientOrientationCodeSequence"] = "decubitus"
    if not found:
        return None, "no PatientPosition or PatientOrientationCodeSequence"
    postures = set(found.values())
    evidence = ", ".join(
        f"{k} {'=' + position if k == 'PatientPosition' else v}" for k, v in found.items()
    )
    if len(postures) > 1:
        return "conflict", f"posture evidence disagrees ({evidence})"
    return postures.pop(), evidence


# --------------------------------------------------------------------------- view rules


def view_from_orientation(
    row: Sequence[float] | np.ndarray, col: Sequence[float] | np.ndarray
) -> View | None:
    """Anterior/posterior from row and column direction cosines (LPS), None if not coronal.

    The normal row x column points away from the viewer; +y (posterior direction) means the
    viewer stands in front of the patient: an anterior view.
    """
    r, c = np.asarray(row, dtype=float), np.asarray(col, dtype=float)
    if (
        r.shape != (3,)
        or c.shape != (3,)
        or not (np.all(np.isfinite(r)) and np.all(np.isfinite(c)))
    ):
        return None
    normal = np.cross(r, c)
    norm = float(np.linalg.norm(normal))
    if norm < 1e-6:
        return None
    ny = normal[1] / norm
    if ny >= MIN_CORONAL_COSINE:
        return View.ANTERIOR
    if ny <= -MIN_CORONAL_COSINE:
        return View.POSTERIOR
    return None


def _letters_vector(text: str) -> np.ndarray | None:
    vec = np.zeros(3)
    for ch in text.strip().upper():
        if ch not in _LETTER_AXES:
            return None
        vec += np.asarray(_LETTER_AXES[ch], dtype=float)
    norm = np.linalg.norm(vec)
    return vec / norm if norm > 0 else None


def _view_from_patient_orientation(ds: Dataset) -> View | None:
    value = ds.get("PatientOrientation")
    if value is None or isinstance(value, str) or len(value) != 2:
        return None
    row, col = _letters_vector(str(value[0])), _letters_vector(str(value[1]))
    if row is None or col is None:
        return None
    return view_from_orientation(row, col)


def view_from_text(text: str | None) -> View | None:
    """ANTERIOR / POSTERIOR when ``text`` names exactly one of them, else None.

    Words: ANT, ANTERIOR, VENTRAL / POST, POSTERIOR, DORSAL (any case, separated by
    non-letters). "post" followed by injection, therapy, op ... ("24h post injection",
    "post-therapy") means "after" and is ignored; "WB 24H POST" is a posterior view.
    """
    if not text:
        return None
    low = re.sub(r"[^a-z0-9]+", " ", text.lower().replace("é", "e"))
    anterior = bool(_ANTERIOR_WORDS.search(low))
    posterior = False
    for m in _POSTERIOR_WORDS.finditer(low):
        if m.group(1) == "post" and _POST_AFTER.match(low[m.end() :]):
            continue
        posterior = True
    if anterior == posterior:
        return None
    return View.ANTERIOR if anterior else View.POSTERIOR


def _swap(view: View) -> View:
    return {View.ANTERIOR: View.POSTERIOR, View.POSTERIOR: View.ANTERIOR}.get(view, view)


def _code_view(seq: Sequence[Dataset] | None) -> tuple[View | None, str | None]:
    """(view, description) from a ViewCodeSequence; (None, None) when empty."""
    for item in seq or ():
        value = str(item.get("CodeValue") or "").strip()
        meaning = str(item.get("CodeMeaning") or "").strip()
        if not value and not meaning:
            continue  # an empty item says nothing
        if value in ANTERIOR_CODES:
            return View.ANTERIOR, f"{value} {meaning}".strip()
        if value in POSTERIOR_CODES:
            return View.POSTERIOR, f"{value} {meaning}".strip()
        by_meaning = view_from_text(meaning)
        if by_meaning is not None:
            return by_meaning, f"meaning {meaning!r}"
        return View.UNKNOWN, f"{value} {meaning!r} is neither anterior nor posterior"
    return None, None


def _gantry_relative(view: View, rule: str, posture: tuple[str | None, str]) -> ViewDecision:
    """Apply the prone swap to a gantry-relative label."""
    state, evidence = posture
    if view is View.UNKNOWN:
        return ViewDecision(view, rule)
    if state == "prone":
        return ViewDecision(
            _swap(view),
            f"{rule} +prone swap",
            (f"prone patient ({evidence}): {view.value} label swapped to {_swap(view).value}",),
        )
    if state in {"decubitus", "conflict"}:
        why = "patient decubitus" if state == "decubitus" else evidence
        return ViewDecision(
            View.UNKNOWN,
            f"none: {rule} says {view.value} but {why}",
            (f"{rule} label {view.value} not used: {why} ({evidence})",),
        )
    if state is None:
        return ViewDecision(
            view, rule, (f"{rule}: no PatientPosition, supine assumed for the {view.value} label",)
        )
    return ViewDecision(view, rule)


def _detector_items(ds: Dataset) -> list[Dataset]:
    return list(ds.get("DetectorInformationSequence") or ())


def _iop_views(ds: Dataset, detectors: list[int]) -> tuple[dict[int, View], list[str]]:
    """Per-detector views from DetectorInformationSequence ImageOrientationPatient."""
    items = _detector_items(ds)
    iops: dict[int, tuple[float, ...]] = {}
    for d in detectors:
        if 1 <= d <= len(items) and items[d - 1].get("ImageOrientationPatient") is not None:
            try:
                iops[d] = tuple(round(float(v), 4) for v in items[d - 1].ImageOrientationPatient)
            except (TypeError, ValueError):
                continue
    notes: list[str] = []
    if len(iops) >= 2 and len(set(iops.values())) < len(iops):
        notes.append(
            "per-detector ImageOrientationPatient identical for detectors "
            f"{sorted(iops)} ({list(next(iter(iops.values())))}): placeholder values, not evidence"
        )
        return {}, notes
    out = {}
    for d, iop in iops.items():
        if len(iop) == 6:
            view = view_from_orientation(iop[:3], iop[3:])
            if view is not None:
                out[d] = view
    if len(out) >= 2 and len(set(out.values())) < len(out):
        notes.append(
            "per-detector ImageOrientationPatient gives the same view to detectors "
            f"{sorted(out)}: not used"
        )
        return {}, notes
    return out, notes


def _decide_detector(
    ds: Dataset,
    detector: int | None,
    detectors: list[int],
    iop_views: dict[int, View],
    posture: tuple[str | None, str],
) -> ViewDecision:
    items = _detector_items(ds)
    seq = None
    if detector is not None and 1 <= detector <= len(items):
        seq = items[detector - 1].get("ViewCodeSequence")
    if not seq and len(detectors) <= 1:
        seq = ds.get("ViewCodeSequence")
    view, described = _code_view(seq)
    if view is View.UNKNOWN:
        return _unknown(f"none: ViewCodeSequence {described}")
    if view is not None:
        return _gantry_relative(view, "ViewCodeSequence", posture)
    if detector in iop_views:
        return ViewDecision(
            iop_views[detector], "ImageOrientationPatient (DetectorInformationSequence)"
        )
    single = len(detectors) <= 1
    if single:
        po = _view_from_patient_orientation(ds)
        if po is not None:
            return ViewDecision(po, "PatientOrientation")
        for keyword in ("ImageID", "SeriesDescription", "ImageComments"):
            text_view = view_from_text(str(ds.get(keyword) or ""))
            if text_view is not None:
                return _gantry_relative(text_view, keyword, posture)
    return _unknown("none: " + _why_none(ds, single))


def _unknown(rule: str) -> ViewDecision:
    return ViewDecision(View.UNKNOWN, rule, (f"view unknown ({rule})",))


def _why_none(ds: Dataset, single: bool) -> str:
    parts = ["no anterior/posterior ViewCodeSequence"]
    parts.append("no usable per-detector ImageOrientationPatient")
    if single:
        parts.append("no PatientOrientation")
        parts.append("no view word in ImageID/SeriesDescription/ImageComments")
    else:
        parts.append("object-level PatientOrientation and text cannot tell several detectors apart")
    return "; ".join(parts)


def _complement_within(groups: list[ViewGroup], ds: Dataset) -> list[ViewGroup]:
    """Two detectors, one decided, the other not, StartAngles 180 degrees apart: opposite."""
    if len(groups) != 2:
        return groups
    known = [g for g in groups if g.decision.view in (View.ANTERIOR, View.POSTERIOR)]
    unknown = [g for g in groups if g.decision.view is View.UNKNOWN]
    if len(known) != 1 or len(unknown) != 1:
        return groups
    items = _detector_items(ds)
    angles: list[float] = []
    for g in groups:
        if g.detector is None or not 1 <= g.detector <= len(items):
            return groups
        try:
            angles.append(float(items[g.detector - 1].StartAngle))
        except (AttributeError, TypeError, ValueError):
            return groups
    if abs(((angles[0] - angles[1]) % 360.0) - 180.0) > 10.0:
        return groups
    k, u = known[0], unknown[0]
    decision = ViewDecision(
        _swap(k.decision.view),
        f"opposite of detector {k.detector} ({k.decision.rule}), StartAngle 180 degrees apart",
    )
    return [
        g
        if g is not u
        else ViewGroup(u.detector, decision, u.frames, u.energy_windows_used, u.summed_over)
        for g in groups
    ]


# --------------------------------------------------------------------------- public


def resolve_planar_layout(ds: Dataset, *, radionuclide: str | None = None) -> PlanarLayout:
    """Group the frames of one planar NM object into views (headers only).

    One :class:`ViewGroup` per detector, holding its photopeak frames (summed later over
    energy windows, phases, time slots and RR intervals). ``radionuclide`` (normalised,
    e.g. ``"In-111"``) decides which windows hold a photopeak.
    """
    n = _n_frames(ds)
    vectors, notes = frame_vectors(ds)
    windows = classify_energy_windows(ds, radionuclide)
    detector_vec = vectors.get("DetectorVector")
    n_detectors = len(_detector_items(ds)) or int(ds.get("NumberOfDetectors") or 0)
    unassigned = detector_vec is None and n_detectors > 1 and n > 1
    if unassigned:
        notes.append(
            f"NumberOfDetectors {n_detectors} but no usable DetectorVector: frames cannot be "
            "assigned to detectors, so each frame is kept apart with an unknown view"
        )
    if detector_vec is None:
        detector_vec = tuple([None] * n)  # type: ignore[list-item]
    window_vec = vectors.get("EnergyWindowVector")
    if window_vec is None and len(windows) > 1:
        notes.append(f"{len(windows)} energy windows but no EnergyWindowVector: all frames used")
    by_index = {w.index: w for w in windows}
    summed = tuple(k for k in _SUMMED_VECTORS if k in vectors and len(set(vectors[k])) > 1)
    detectors = sorted({d for d in detector_vec if d is not None})
    posture = patient_posture(ds)
    iop_views, iop_notes = _iop_views(ds, detectors)
    notes.extend(iop_notes)
    groups: list[ViewGroup] = []
    keys: list[int | None] = list(detectors) if detectors else [None]
    for detector in keys:
        frames, used = [], []
        for f in range(n):
            if detector_vec[f] != detector:
                continue
            window = by_index.get(window_vec[f]) if window_vec is not None else None
            if window is not None and not window.is_photopeak:
                continue
            frames.append(f)
            if window is not None and window.label not in used:
                used.append(window.label)
        if window_vec is None and windows:
            used = [w.label for w in windows if w.is_photopeak]
        decision = _decide_detector(ds, detector, detectors, iop_views, posture)
        groups.append(ViewGroup(detector, decision, tuple(frames), tuple(used), summed))
    if unassigned:
        # never sum frames that may come from opposite heads
        rule = "none: several detectors but no DetectorVector to assign frames to them"
        groups = [
            ViewGroup(None, _unknown(rule), (f,), g.energy_windows_used, ())
            for g in groups
            for f in g.frames
        ]
    groups = _complement_within(groups, ds)
    for w in windows:
        if not w.is_photopeak:
            notes.append(f"energy window {w.label} not summed: {w.reason}")
    return PlanarLayout(n, vectors, windows, tuple(groups), tuple(notes))


@dataclass(frozen=True)
class SingleViewFile:
    """What :func:`complement_views` needs about one single-view file of a series."""

    key: str
    decision: ViewDecision
    detector: int | None
    acquisition_datetime: datetime | None


def complement_views(
    files: Sequence[SingleViewFile], *, max_seconds_apart: float = 5.0
) -> dict[str, ViewDecision]:
    """Decisions for two single-view files acquired together by two different detectors.

    When exactly two files, exactly one decided (anterior/posterior), different detector
    numbers and acquisition start times within ``max_seconds_apart``: the undecided file
    gets the opposite view. Returns {key: new decision} (empty when the rule does not apply).
    """
    if len(files) != 2:
        return {}
    known = [f for f in files if f.decision.view in (View.ANTERIOR, View.POSTERIOR)]
    unknown = [f for f in files if f.decision.view is View.UNKNOWN]
    if len(known) != 1 or len(unknown) != 1:
        return {}
    k, u = known[0], unknown[0]
    if k.detector is None or u.detector is None or k.detector == u.detector:
        return {}
    if k.acquisition_datetime is None or u.acquisition_datetime is None:
        return {}
    if abs((k.acquisition_datetime - u.acquisition_datetime).total_seconds()) > max_seconds_apart:
        return {}
    rule = (
        f"opposite of the other single-view file ({k.decision.rule}; "
        f"detector {k.detector} vs {u.detector})"
    )
    return {u.key: ViewDecision(_swap(k.decision.view), rule)}
