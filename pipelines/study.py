"""One study end to end: series entries in, a scored result (or a recorded failure) out.

This module composes ``imaging`` (loading) and ``models`` (scoring). It writes nothing;
:mod:`octoscan.pipelines.outputs` turns a :class:`StudyOutcome` into files.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from octoscan.imaging.errors import InvalidInputError, OctoscanError
from octoscan.imaging.planar import load_planar
from octoscan.imaging.types import PlanarImage, SeriesEntry, SeriesKind, Volume
from octoscan.imaging.volume import load_ct, load_pet, load_spect
from octoscan.models.clinical import ClinicalTable
from octoscan.models.config import ScoringConfig, config_hash
from octoscan.models.criteria import evaluate_criteria
from octoscan.models.decision import REVIEW_PREFIX, UNRESOLVED_PREFIX, decide_eligibility
from octoscan.models.planar_score import score_planar
from octoscan.models.tomo_pairing import bounding_box_lps
from octoscan.models.tomo_score import TomoScore, score_tomographic
from octoscan.models.types import CriterionResult, Decision, Lesion, PlanarScore, ReferenceRegion
from octoscan.pipelines.identity import patient_key, study_key
from octoscan.pipelines.result_json import LesionEntry, planar_result_to_dict, tomo_result_to_dict

log = logging.getLogger(__name__)

PLANAR_KINDS = (SeriesKind.PLANAR_WHOLE_BODY, SeriesKind.PLANAR_STATIC)
TOMO_KINDS = (SeriesKind.SPECT, SeriesKind.PET)

LINK_MIN_DISTANCE_MM = 20.0
"""A planar and a tomographic lesion are one lesion when the tomographic centre, projected
onto the anterior planar grid, lies within max(this, the lesion's radius) of the planar
centre (issue 8, item 5; implementation choice)."""

LANDMARK_TOLERANCE_MM = 30.0
"""The planar-to-tomographic mapping is used only when the liver and spleen centres of both
studies agree to within this after the fitted translation (implementation choice: about
the size of a reference VOI; a partly imaged organ shifts its centre)."""


def octoscan_version() -> str:
    try:
        return version("octoscan")
    except PackageNotFoundError:  # a source tree without an install
        return "0+unknown"


@dataclass(frozen=True)
class StudyOptions:
    """Options of one scoring run.

    ``pseudonym_key`` keys the PatientID hash (see :mod:`octoscan.pipelines.identity`);
    ``show_phi`` puts the raw PatientID into results as well. ``clinical`` holds the
    clinical file's records (``--clinical``): the rule set's clinical criteria then enter the
    decision; without it the decision covers imaging only. ``dicom_out`` writes the DICOM
    results (SR, SEG, Secondary Capture) into the study folder; ``pseudonymise`` replaces
    the source Patient module in them with the keyed pseudonym. ``cnn`` adds the optional
    CNN's lesion proposals to planar scoring (grades still come from measured ratios).
    ``radiopharmaceutical``
    (``--radiopharmaceutical``) names the agent of a SPECT/PET whose headers do not (e.g.
    "DOTATATE" for a post-therapy 177Lu-DOTATATE SPECT, whose headers name only Lu-177,
    which is also used with PSMA ligands): tomographic scoring then checks that name and the
    result says it was given by the user.
    """

    assume_sstr: bool = False
    show_phi: bool = False
    pseudonym_key: bytes = b""
    clinical: ClinicalTable | None = field(default=None, repr=False)
    dicom_out: bool = True
    pseudonymise: bool = False
    cnn: bool = False
    radiopharmaceutical: str | None = None


@dataclass(frozen=True)
class StudyOutcome:
    """What happened to one study: ``status`` "ok" (scored) or "failed" (with a code).

    ``planar`` and ``tomo`` are the scores behind ``result`` (either may be None);
    ``tomo_volume`` and ``ct_volume`` are the emission volume scored and its CT (for
    overlays and DICOM SEG; the tomographic masks live on ``tomo_volume``'s grid);
    ``decision`` the study's one decision (None for a planar-only study: ``planar.decision``).
    """

    study_instance_uid: str
    study_key: str
    status: str
    seconds: float
    input_series_uids: tuple[str, ...]
    result: dict | None = None
    error_code: str | None = None
    error_reason: str | None = None
    planar: PlanarScore | None = field(default=None, compare=False, repr=False)
    planar_images: tuple[PlanarImage, ...] = field(default=(), compare=False, repr=False)
    tomo: TomoScore | None = field(default=None, compare=False, repr=False)
    tomo_volume: Volume | None = field(default=None, compare=False, repr=False)
    ct_volume: Volume | None = field(default=None, compare=False, repr=False)
    decision: Decision | None = field(default=None, compare=False, repr=False)


@functools.lru_cache(maxsize=1)
def _cnn_model() -> Any:
    """The shipped CNN, loaded once per process (torch is imported only here)."""
    from octoscan.models.cnn_infer import load_model

    return load_model()


def _fuse_cnn(score: PlanarScore, config: ScoringConfig) -> PlanarScore:
    """Threshold lesions fused with the CNN's proposals (``--cnn``)."""
    from octoscan.models.cnn_fusion import fuse_lesions
    from octoscan.models.cnn_infer import predict

    model = _cnn_model()
    return fuse_lesions(score, predict(score, model=model), config)


def _planar_series(series: Sequence[SeriesEntry]) -> list[SeriesEntry]:
    """Planar NM series, plus NM whole-body secondary captures when nothing better exists."""
    planar = [s for s in series if s.kind in PLANAR_KINDS]
    if planar:
        return planar
    return [s for s in series if s.kind == SeriesKind.SECONDARY_CAPTURE and s.modality == "NM"]


def _load_planar_images(
    entries: Sequence[SeriesEntry],
) -> tuple[list[PlanarImage], list[str]]:
    images: list[PlanarImage] = []
    warnings: list[str] = []
    errors: list[OctoscanError] = []
    for entry in entries:
        try:
            images.extend(load_planar(entry))
        except OctoscanError as exc:
            errors.append(exc)
            warnings.append(f"planar series not used [{exc.code}]: {exc}")
    if not images and errors:
        raise errors[0]
    return images, warnings


def _criteria(
    config: ScoringConfig,
    table: ClinicalTable,
    *,
    study_instance_uid: str,
    patient_id: str | None,
) -> tuple[tuple[CriterionResult, ...], dict[str, str | None]]:
    """The rule set's clinical criteria judged on the study's row, and their provenance.

    The row is found by StudyInstanceUID, else by PatientID (the ID is never logged or
    written)."""
    found = table.find(study_instance_uid=study_instance_uid, patient_id=patient_id)
    record, matched_by = found if found is not None else (None, None)
    criteria = tuple(evaluate_criteria(record, config.clinical))
    provenance = {
        "file_sha256": table.sha256,
        "matched_by": matched_by,
        "row": record.row if record is not None else None,
    }
    return criteria, provenance


def _redecide(
    lesions: Sequence[Lesion],
    references: Sequence[ReferenceRegion],
    decision: Decision,
    config: ScoringConfig,
    *,
    criteria: Sequence[CriterionResult],
    scorer: str,
) -> Decision:
    """The decision made again with ``criteria``, after checking that the imaging part,
    made again from the same lesions, references and the review inputs ``decision`` lists
    (:func:`_review_inputs`), reproduces ``decision`` (so a review reason the scorer did not
    expose cannot be lost silently)."""
    review, unresolved = _review_inputs(decision)

    def decide(with_criteria: Sequence[CriterionResult]) -> Decision:
        return decide_eligibility(
            lesions,
            references,
            config=config,
            criteria=with_criteria,
            review_reasons=review,
            unresolved_findings=unresolved,
        )

    imaging_only = decide(())
    if imaging_only != decision:
        raise RuntimeError(
            f"re-deciding with clinical criteria does not reproduce the {scorer} scorer's "
            f"decision ({imaging_only.status} vs {decision.status}): the scorer used "
            "review reasons it does not expose"
        )
    return decide(criteria)


def _apply_clinical(
    score: PlanarScore,
    config: ScoringConfig,
    table: ClinicalTable,
    *,
    study_instance_uid: str,
    patient_id: str | None,
) -> tuple[PlanarScore, dict[str, str | None]]:
    """The planar score with its decision re-made with the clinical criteria, and their
    provenance (see :func:`_criteria` and :func:`_redecide`)."""
    criteria, provenance = _criteria(
        config, table, study_instance_uid=study_instance_uid, patient_id=patient_id
    )
    decision = _redecide(
        score.lesions,
        score.references,
        score.decision,
        config,
        criteria=criteria,
        scorer="planar",
    )
    return dataclasses.replace(score, decision=decision), provenance


# --------------------------------------------------------------------------- tomography


def _review_inputs(decision: Decision) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(review reasons, unresolved findings) a scorer's decision was made with
    (``decide_eligibility`` lists them with :data:`REVIEW_PREFIX` and
    :data:`UNRESOLVED_PREFIX`), so that the decision can be made again with them. An
    unresolved finding was checked against the scorer's own lesions; the study's decision
    keeps it (it sends the study to review)."""

    def listed(prefix: str) -> tuple[str, ...]:
        return tuple(r.removeprefix(prefix) for r in decision.reasons if r.startswith(prefix))

    return listed(REVIEW_PREFIX), listed(UNRESOLVED_PREFIX)


def _decision_config(config: ScoringConfig, decision: Decision) -> ScoringConfig:
    """``config`` with the uptake rule the tomographic decision applied (per modality)."""
    return dataclasses.replace(
        config, decision=dataclasses.replace(config.decision, uptake_rule=decision.uptake_rule)
    )


def _emission_entry(series: Sequence[SeriesEntry], config: ScoringConfig) -> SeriesEntry | None:
    """The emission series to score: SPECT before PET, then the time point closest to the
    preferred one (``planar.time_point``), then the most images, then the series UID."""
    candidates = [s for s in series if s.kind in TOMO_KINDS]
    if not candidates:
        return None
    preferred = config.planar.time_point.preferred_hours_post_injection

    def key(s: SeriesEntry) -> tuple[int, float, int, str]:
        hours = s.hours_post_injection
        gap = abs(hours - preferred) if hours is not None else math.inf
        return (0 if s.kind is SeriesKind.SPECT else 1, gap, -s.n_images, s.series_instance_uid)

    return min(candidates, key=key)


def _load_emission(entry: SeriesEntry) -> Volume:
    if entry.kind is SeriesKind.PET:
        return load_pet(entry.files)  # a quantitative SPECT in a PET object comes back as SPECT
    return load_spect(entry.files)


def _load_ct_for(
    series: Sequence[SeriesEntry], emission: Volume
) -> tuple[Volume | None, list[str]]:
    """The study's CT for ``emission``: the one sharing its FrameOfReferenceUID first, then the
    largest. Scoring decides whether it is fused (``check_pairing``). A CT that cannot be
    loaded is left out with a warning."""
    cts = [s for s in series if s.kind is SeriesKind.CT]
    if not cts:
        return None, []
    frame = emission.source.frame_of_reference_uid
    entry = min(
        cts,
        key=lambda s: (
            0 if frame and s.frame_of_reference_uid == frame else 1,
            -s.n_images,
            s.series_instance_uid,
        ),
    )
    try:
        return load_ct(entry.files), []
    except OctoscanError as exc:
        return None, [f"CT series not used [{exc.code}]: {exc}"]


@dataclass(frozen=True)
class _PlanarMapping:
    """LPS (x, z) mm -> anterior planar (row, col): col = col0 + x / dc,
    row = row0 - row_sign * z / dr (row_sign +1: head at row 0)."""

    row0: float
    col0: float
    spacing_rc_mm: tuple[float, float]
    row_sign: float
    residual_mm: float

    def to_rc(self, lps: Sequence[float]) -> tuple[float, float]:
        dr, dc = self.spacing_rc_mm
        return (self.row0 - self.row_sign * lps[2] / dr, self.col0 + lps[0] / dc)

    def to_xz(self, rc: Sequence[float]) -> tuple[float, float]:
        dr, dc = self.spacing_rc_mm
        return ((rc[1] - self.col0) * dc, -(rc[0] - self.row0) * dr * self.row_sign)


def _planar_mapping(planar: PlanarScore, tomo: TomoScore) -> tuple[_PlanarMapping | None, str]:
    """The mapping of the tomographic field onto the anterior planar grid, or None and why.

    Planar images have no frame of reference (DESIGN.md section 3), so the mapping rests on
    anatomy: the scale is the planar pixel spacing, the column axis runs to the patient's
    left on the anterior grid, the row axis follows the planar orientation found from the
    image (never an assumed one), and the translation is fitted to the liver and spleen
    centres of both scores; their residual must stay within ``LANDMARK_TOLERANCE_MM``.
    """
    if not planar.orientation.startswith(("head at row 0 (from", "feet at row 0 (from")):
        return None, f"planar orientation not determined from the image ({planar.orientation})"
    row_sign = 1.0 if planar.orientation.startswith("head at row 0") else -1.0
    p_organs = {o.organ: o for o in planar.organs if o.center_rc is not None}
    t_organs = {o.organ: o for o in tomo.organs if o.center_lps_mm is not None}
    missing = [o for o in ("liver", "spleen") if o not in p_organs or o not in t_organs]
    if missing:
        return (
            None,
            f"{' and '.join(missing)} not located on both the planar and the tomographic study",
        )
    dr, dc = (float(v) for v in planar.pixel_spacing_mm)
    offsets = []
    for organ in ("liver", "spleen"):
        r, c = p_organs[organ].center_rc  # type: ignore[misc]
        x, _, z = t_organs[organ].center_lps_mm  # type: ignore[misc]
        offsets.append((r + row_sign * z / dr, c - x / dc))
    row0 = float(np.mean([o[0] for o in offsets]))
    col0 = float(np.mean([o[1] for o in offsets]))
    residual = max(math.hypot((o[0] - row0) * dr, (o[1] - col0) * dc) for o in offsets)
    if residual > LANDMARK_TOLERANCE_MM:
        return None, (
            f"liver and spleen centres disagree by {residual:.0f} mm between the planar and "
            f"the tomographic study after alignment (at most {LANDMARK_TOLERANCE_MM:g} mm)"
        )
    return _PlanarMapping(row0, col0, (dr, dc), row_sign, residual), ""


def _combine(
    tomo: TomoScore, emission: Volume, planar: PlanarScore | None
) -> tuple[list[LesionEntry], list[str]]:
    """One entry per lesion: tomographic lesions (grading source "tomographic", with the
    linked planar lesion's ``center_rc``), then planar lesions outside the tomographic field
    (grading source "planar"). Planar lesions inside the field that tomography did not
    confirm are listed but not used for the decision. Without a defensible planar mapping
    every planar lesion is kept as a separate planar entry, with a warning."""
    entries = [
        LesionEntry(
            lesion=les,
            grading_source="tomographic",
            tomographic_id=les.id,
            metrics=tomo.metrics(les.id),
        )
        for les in tomo.lesions
    ]
    if planar is None or not planar.lesions:
        return entries, []
    warnings: list[str] = []
    mapping, why = _planar_mapping(planar, tomo)
    next_id = max((les.id for les in tomo.lesions), default=0) + 1
    outside: list[Lesion] = []
    unconfirmed: list[Lesion] = []
    if mapping is None:
        warnings.append(
            "planar and tomographic lesions not linked (no defensible mapping between the "
            f"planar grid and the tomographic field: {why}); every planar lesion is kept as a "
            "separate entry graded on planar images, and enters the decision"
        )
        outside = list(planar.lesions)
    else:
        lo, hi = bounding_box_lps(emission)
        dr, dc = mapping.spacing_rc_mm
        inside: list[Lesion] = []
        for les in planar.lesions:
            x, z = mapping.to_xz(les.center_rc)  # type: ignore[arg-type]
            in_field = lo[0] <= x <= hi[0] and lo[2] <= z <= hi[2]
            (inside if in_field else outside).append(les)
        pairs = []
        for k, entry in enumerate(entries):
            r, c = mapping.to_rc(entry.lesion.center_lps_mm)  # type: ignore[arg-type]
            limit = max(LINK_MIN_DISTANCE_MM, entry.lesion.diameter_mm / 2.0)
            for les in inside:
                pr, pc = les.center_rc  # type: ignore[misc]
                d = math.hypot((pr - r) * dr, (pc - c) * dc)
                if d <= limit:
                    pairs.append((d, k, les))
        linked_entries: set[int] = set()
        linked_planar: set[int] = set()
        for _, k, les in sorted(pairs, key=lambda t: (t[0], t[1], t[2].id)):
            if k in linked_entries or les.id in linked_planar:
                continue
            linked_entries.add(k)
            linked_planar.add(les.id)
            entries[k] = dataclasses.replace(
                entries[k],
                lesion=dataclasses.replace(entries[k].lesion, center_rc=les.center_rc),
                linked_planar_id=les.id,
            )
        unconfirmed = [les for les in inside if les.id not in linked_planar]
        warnings.append(
            f"planar grid mapped onto the tomographic field by the liver and spleen centres "
            f"(residual {mapping.residual_mm:.0f} mm): {len(linked_planar)} planar lesion(s) "
            f"linked, {len(outside)} outside the field graded on planar images"
        )
    for les in outside:
        entries.append(
            LesionEntry(
                lesion=dataclasses.replace(les, id=next_id),
                grading_source="planar",
                linked_planar_id=les.id,
            )
        )
        next_id += 1
    for les in unconfirmed:
        note = (
            "inside the tomographic field but not found there: not used for the decision "
            "(tomography decides inside its field)"
        )
        entries.append(
            LesionEntry(
                lesion=dataclasses.replace(les, id=next_id, warnings=(*les.warnings, note)),
                grading_source="planar",
                linked_planar_id=les.id,
                used_for_decision=False,
            )
        )
        next_id += 1
    return entries, warnings


def _modalities(tomo: TomoScore, planar: PlanarScore | None) -> list[str]:
    used = ["NM planar"] if planar is not None else []
    used.append("PET" if tomo.modality == "pet" else "SPECT")
    if tomo.ct_fused:
        used.append("CT")
    return used


# --------------------------------------------------------------------------- one study


def score_series(
    series: Sequence[SeriesEntry],
    config: ScoringConfig,
    options: StudyOptions = StudyOptions(),
) -> StudyOutcome:
    """Score one study given its discovered series. Raises the OctoscanError family.

    Planar series are scored with :func:`score_planar`; one emission volume (SPECT or PET,
    :func:`_emission_entry`) with :func:`score_tomographic`, fused with the study's CT when
    they share a frame of reference. With both, the lesions are combined
    (:func:`_combine`) and one decision is made for the study: tomography decides inside its
    field, planar images outside it; references come from tomography.
    """
    t0 = time.perf_counter()
    if not series:
        raise InvalidInputError("no series given", code="no_series")
    study_uid = series[0].study_instance_uid
    skipped_warnings = [
        f"series {s.series_instance_uid[-8:]} ({s.kind}) not scored: {s.kind_reason}"
        for s in series
        if s.kind in (SeriesKind.TOMO_PROJECTIONS,)
    ]
    planar_entries = _planar_series(series)
    emission_entry = _emission_entry(series, config)
    if not planar_entries and emission_entry is None:
        kinds = ", ".join(sorted({str(s.kind) for s in series}))
        raise InvalidInputError(
            "no planar nuclear-medicine series, SPECT or PET to score (series kinds found: "
            f"{kinds})",
            code="no_usable_series",
        )
    pid = next((s.patient_id for s in series if s.patient_id), None)
    images: list[PlanarImage] = []
    load_warnings: list[str] = []
    score: PlanarScore | None = None
    if planar_entries:
        images, load_warnings = _load_planar_images(planar_entries)
        score = score_planar(images, config, assume_sstr=options.assume_sstr)
        if options.cnn:
            score = _fuse_cnn(score, config)

    emission: Volume | None = None
    ct: Volume | None = None
    tomo: TomoScore | None = None
    if emission_entry is not None:
        try:
            emission = _load_emission(emission_entry)
            ct, ct_warnings = _load_ct_for(series, emission)
            load_warnings.extend(ct_warnings)
            tomo = score_tomographic(
                emission,
                ct=ct,
                config=config,
                tomo=config.tomo,
                assume_sstr=options.assume_sstr,
                radiopharmaceutical=options.radiopharmaceutical,
            )
        except OctoscanError as exc:
            if score is None:
                raise
            load_warnings.append(
                f"{emission_entry.kind} series {emission_entry.series_instance_uid[-8:]} not "
                f"scored [{exc.code}]: {exc}; the decision rests on planar images only"
            )
            emission = ct = tomo = None

    clinical_provenance = None
    common = {
        "study_instance_uid": study_uid,
        "study_key": study_key(study_uid),
        "patient_key": patient_key(pid, options.pseudonym_key),
        "patient_id": pid if options.show_phi else None,
        "octoscan_version": octoscan_version(),
        "config_hash": config_hash(config),
        "krenning_thresholds": dataclasses.asdict(config.krenning),
    }
    if tomo is None:
        assert score is not None
        if options.clinical is not None:
            score, clinical_provenance = _apply_clinical(
                score, config, options.clinical, study_instance_uid=study_uid, patient_id=pid
            )
        result = planar_result_to_dict(
            score, images=images, extra_warnings=[*skipped_warnings, *load_warnings], **common
        )
        used = tuple(sorted({im.source.series_instance_uid for im in images}))
        decision = score.decision
    else:
        assert emission is not None
        entries, link_warnings = _combine(tomo, emission, score)
        decided = _decision_config(config, tomo.decision)
        review, unresolved = _review_inputs(tomo.decision)
        criteria: tuple[CriterionResult, ...] = ()
        if options.clinical is not None:
            criteria, clinical_provenance = _criteria(
                config, options.clinical, study_instance_uid=study_uid, patient_id=pid
            )
            _redecide(
                tomo.lesions,
                tomo.references,
                tomo.decision,
                decided,
                criteria=criteria,
                scorer="tomographic",
            )
        decision = decide_eligibility(
            [e.lesion for e in entries if e.used_for_decision],
            tomo.references,
            config=decided,
            criteria=criteria,
            review_reasons=review,
            unresolved_findings=unresolved,
        )
        acq = emission.acquisition
        result = tomo_result_to_dict(
            tomo,
            entries,
            decision,
            planar=score,
            images=images,
            modalities_used=_modalities(tomo, score),
            radionuclide=acq.radionuclide,
            radiopharmaceutical=options.radiopharmaceutical or acq.radiopharmaceutical,
            extra_warnings=[*skipped_warnings, *load_warnings, *link_warnings],
            **common,
        )
        used = tuple(
            sorted(
                {im.source.series_instance_uid for im in images} | set(tomo.series_instance_uids)
            )
        )
    if clinical_provenance is not None:
        result["provenance"]["clinical"] = clinical_provenance
    return StudyOutcome(
        study_instance_uid=study_uid,
        study_key=study_key(study_uid),
        status="ok",
        seconds=time.perf_counter() - t0,
        input_series_uids=used,
        result=result,
        planar=score,
        planar_images=tuple(images),
        tomo=tomo,
        tomo_volume=emission,
        ct_volume=ct if tomo is not None and tomo.ct_fused else None,
        decision=decision if tomo is not None else None,
    )


def process_study(
    series: Sequence[SeriesEntry],
    config: ScoringConfig,
    options: StudyOptions = StudyOptions(),
) -> StudyOutcome:
    """Like :func:`score_series`, but never raises: failures become a failed outcome.

    Errors of the OctoscanError family keep their code; anything else is a bug, logged with
    its traceback and recorded with code ``internal``.
    """
    t0 = time.perf_counter()
    study_uid = series[0].study_instance_uid if series else ""
    uids = tuple(sorted(s.series_instance_uid for s in series))
    try:
        return score_series(series, config, options)
    except OctoscanError as exc:
        code, reason = exc.code, str(exc)
    except Exception as exc:  # a bug: keep the batch going, keep the traceback in the log
        log.error("internal error in study %s:\n%s", study_key(study_uid), traceback.format_exc())
        code, reason = "internal", f"{type(exc).__name__}: {exc}"
    return StudyOutcome(
        study_instance_uid=study_uid,
        study_key=study_key(study_uid),
        status="failed",
        seconds=time.perf_counter() - t0,
        input_series_uids=uids,
        error_code=code,
        error_reason=reason,
    )
