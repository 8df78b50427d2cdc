"""One study end to end: series entries in, a scored result (or a recorded failure) out.

This module composes ``imaging`` (loading) and ``models`` (scoring). It writes nothing;
:mod:`octoscan.pipelines.outputs` turns a :class:`StudyOutcome` into files.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from octoscan.imaging.errors import InvalidInputError, OctoscanError
from octoscan.imaging.planar import load_planar
from octoscan.imaging.types import PlanarImage, SeriesEntry, SeriesKind
from octoscan.models.clinical import ClinicalTable
from octoscan.models.config import ScoringConfig, config_hash
from octoscan.models.criteria import evaluate_criteria
from octoscan.models.decision import decide_eligibility
from octoscan.models.planar_score import score_planar
from octoscan.models.types import PlanarScore
from octoscan.pipelines.identity import patient_key, study_key
from octoscan.pipelines.result_json import planar_result_to_dict

log = logging.getLogger(__name__)

PLANAR_KINDS = (SeriesKind.PLANAR_WHOLE_BODY, SeriesKind.PLANAR_STATIC)


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
    the source Patient module in them with the keyed pseudonym.
    """

    assume_sstr: bool = False
    show_phi: bool = False
    pseudonym_key: bytes = b""
    clinical: ClinicalTable | None = field(default=None, repr=False)
    dicom_out: bool = True
    pseudonymise: bool = False


@dataclass(frozen=True)
class StudyOutcome:
    """What happened to one study: ``status`` "ok" (scored) or "failed" (with a code)."""

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


def _apply_clinical(
    score: PlanarScore,
    config: ScoringConfig,
    table: ClinicalTable,
    *,
    study_instance_uid: str,
    patient_id: str | None,
) -> tuple[PlanarScore, dict[str, str | None]]:
    """The score with its decision re-made with the clinical criteria, and their provenance.

    The study's row is found by StudyInstanceUID, else by PatientID (the ID is never logged
    or written). The imaging part of the decision is made again from the same lesions,
    references and review reasons; it must reproduce the scorer's own decision, so a review
    reason the scorer did not expose cannot be lost silently.
    """
    found = table.find(study_instance_uid=study_instance_uid, patient_id=patient_id)
    record, matched_by = found if found is not None else (None, None)
    criteria = evaluate_criteria(record, config.clinical)
    review_reasons: Sequence[str] = getattr(score, "review_reasons", ())
    imaging_only = decide_eligibility(
        score.lesions, score.references, config=config, review_reasons=review_reasons
    )
    if imaging_only != score.decision:
        raise RuntimeError(
            "re-deciding with clinical criteria does not reproduce the planar scorer's "
            f"decision ({imaging_only.status} vs {score.decision.status}): the scorer used "
            "review reasons it does not expose"
        )
    decision = decide_eligibility(
        score.lesions,
        score.references,
        config=config,
        criteria=criteria,
        review_reasons=review_reasons,
    )
    provenance = {
        "file_sha256": table.sha256,
        "matched_by": matched_by,
        "row": record.row if record is not None else None,
    }
    return dataclasses.replace(score, decision=decision), provenance


def score_series(
    series: Sequence[SeriesEntry],
    config: ScoringConfig,
    options: StudyOptions = StudyOptions(),
) -> StudyOutcome:
    """Score one study given its discovered series. Raises the OctoscanError family."""
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
    if not planar_entries:
        kinds = ", ".join(sorted({str(s.kind) for s in series}))
        raise InvalidInputError(
            f"no planar nuclear-medicine series to score (series kinds found: {kinds})",
            code="no_usable_series",
        )
    images, load_warnings = _load_planar_images(planar_entries)
    score = score_planar(images, config, assume_sstr=options.assume_sstr)
    pid = next((s.patient_id for s in series if s.patient_id), None)
    clinical_provenance = None
    if options.clinical is not None:
        score, clinical_provenance = _apply_clinical(
            score, config, options.clinical, study_instance_uid=study_uid, patient_id=pid
        )
    result = planar_result_to_dict(
        score,
        study_instance_uid=study_uid,
        study_key=study_key(study_uid),
        patient_key=patient_key(pid, options.pseudonym_key),
        patient_id=pid if options.show_phi else None,
        octoscan_version=octoscan_version(),
        config_hash=config_hash(config),
        krenning_thresholds=dataclasses.asdict(config.krenning),
        images=images,
        extra_warnings=[*skipped_warnings, *load_warnings],
    )
    if clinical_provenance is not None:
        result["provenance"]["clinical"] = clinical_provenance
    used = tuple(sorted({im.source.series_instance_uid for im in images}))
    return StudyOutcome(
        study_instance_uid=study_uid,
        study_key=study_key(study_uid),
        status="ok",
        seconds=time.perf_counter() - t0,
        input_series_uids=used,
        result=result,
        planar=score,
        planar_images=tuple(images),
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
