"""Files written for scored studies and batches (atomically, deterministically).

Per study (folder ``DIR/<study key>/``): ``result.json`` for a scored study, ``error.json``
(code and reason) for a failed one; :func:`render_study_files` gives their bytes, so they can
be produced where the study was processed and written by whoever owns the output folder.

Per batch (``DIR/``): ``results.csv`` (one row per study), ``lesions.csv`` (one row per
lesion), ``failed.json`` (failed studies and the files discovery skipped) and ``batch.json``
(counts, config and version). Rows are sorted by study key (then lesion id); floats are the
rounded values of result.json; nothing time- or random-dependent is written, so the same
inputs and config give the same bytes. ``patient_id`` is filled only when the result holds
the raw PatientID (``--show-phi``); otherwise rows carry the keyed ``patient_key`` alone.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from octoscan.imaging.types import SkippedFile
from octoscan.pipelines.atomic import dumps_json, write_json_atomic, write_text_atomic
from octoscan.pipelines.study import StudyOutcome

RESULT_NAME = "result.json"
ERROR_NAME = "error.json"
STUDY_OUTPUT_NAMES: tuple[str, ...] = (RESULT_NAME, ERROR_NAME)
RESULTS_CSV = "results.csv"
LESIONS_CSV = "lesions.csv"
FAILED_JSON = "failed.json"
BATCH_JSON = "batch.json"
WARNING_SEPARATOR = " | "

REFERENCE_ORGANS: tuple[str, ...] = ("liver", "spleen", "kidney")

RESULTS_COLUMNS: tuple[str, ...] = (
    "study_key",
    "status",
    "decision",
    "imaging_decision",
    "rule_set",
    "uptake_rule",
    "config_hash",
    "tracer",
    "hours_post_injection",
    "views_used",
    "n_lesions",
    "highest_grade",
    "lowest_grade",
    "n_borderline",
    *(f"{organ}_{what}" for organ in REFERENCE_ORGANS for what in ("mean", "usable")),
    "patient_key",
    "patient_id",
    "error_code",
    "error_reason",
    "n_warnings",
    "warnings",
)

LESIONS_COLUMNS: tuple[str, ...] = (
    "study_key",
    "lesion_id",
    "grade",
    "graded",
    "grade_min",
    "grade_max",
    "borderline",
    "ratio_liver",
    "ratio_liver_ci_low",
    "ratio_liver_ci_high",
    "ratio_spleen",
    "ratio_spleen_ci_low",
    "ratio_spleen_ci_high",
    "spleen_reference_organ",
    "diameter_mm",
    "region",
    "source",
    "grading_method",
    "n_warnings",
)


# --------------------------------------------------------------------------- one study


def write_study_outputs(outcome: StudyOutcome, study_dir: str | Path) -> list[Path]:
    """Write ``result.json`` of a scored study into ``study_dir``; returns the paths written."""
    if outcome.result is None:
        raise ValueError(f"study {outcome.study_key} has no result to write ({outcome.status})")
    return [write_json_atomic(Path(study_dir) / RESULT_NAME, outcome.result)]


def error_record(study_key: str, error_code: str, error_reason: str) -> dict[str, Any]:
    """The content of a failed study's ``error.json``."""
    return {
        "study_key": study_key,
        "status": "failed",
        "error_code": error_code,
        "error_reason": error_reason,
    }


def render_study_files(outcome: StudyOutcome) -> dict[str, bytes]:
    """The per-study files (name -> bytes) of an outcome: result.json or error.json."""
    if outcome.status == "ok":
        if outcome.result is None:
            raise ValueError(f"study {outcome.study_key} is ok but has no result")
        return {RESULT_NAME: dumps_json(outcome.result).encode("utf-8")}
    record = error_record(
        outcome.study_key, outcome.error_code or "internal", outcome.error_reason or ""
    )
    return {ERROR_NAME: dumps_json(record).encode("utf-8")}


# --------------------------------------------------------------------------- CSV rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _pair(values: Sequence[Any] | None) -> tuple[Any, Any]:
    if not values or len(values) != 2:
        return None, None
    return values[0], values[1]


def results_row(
    *,
    study_key: str,
    status: str,
    result: Mapping[str, Any] | None,
    error_code: str | None = None,
    error_reason: str | None = None,
) -> dict[str, str]:
    """One results.csv row (column -> text) from a result.json dict or a failure."""
    row: dict[str, Any] = dict.fromkeys(RESULTS_COLUMNS)
    row.update(study_key=study_key, status=status, error_code=error_code, error_reason=error_reason)
    if result is not None:
        decision = result.get("decision", {})
        lesions = result.get("lesions", [])
        graded = [les["grade"] for les in lesions if les.get("graded", True)]
        references = result.get("references", {})
        warnings = list(result.get("warnings", []))
        provenance = result.get("provenance", {})
        row.update(
            decision=decision.get("status"),
            imaging_decision=decision.get("imaging_status"),
            rule_set=decision.get("rule_set"),
            uptake_rule=decision.get("uptake_rule"),
            config_hash=provenance.get("config_hash"),
            tracer=result.get("tracer", {}).get("name"),
            hours_post_injection=result.get("hours_post_injection"),
            views_used="+".join(provenance.get("views_used", [])),
            n_lesions=len(lesions),
            highest_grade=max(graded) if graded else None,
            lowest_grade=min(graded) if graded else None,
            n_borderline=sum(1 for les in lesions if les.get("borderline")),
            patient_key=result.get("patient_key"),
            patient_id=result.get("patient_id"),
            n_warnings=len(warnings),
            warnings=WARNING_SEPARATOR.join(warnings),
        )
        for organ in REFERENCE_ORGANS:
            ref = references.get(organ)
            if ref is not None:
                row[f"{organ}_mean"] = ref.get("mean")
                row[f"{organ}_usable"] = ref.get("usable")
    return {k: _cell(v) for k, v in row.items()}


def lesion_rows(study_key: str, result: Mapping[str, Any]) -> list[dict[str, str]]:
    """lesions.csv rows of one result.json dict, in lesion-id order."""
    rows = []
    for les in sorted(result.get("lesions", []), key=lambda item: item["id"]):
        liver_lo, liver_hi = _pair(les.get("ratio_liver_ci"))
        spleen_lo, spleen_hi = _pair(les.get("ratio_spleen_ci"))
        grade_min, grade_max = _pair(les.get("grade_range"))
        row = {
            "study_key": study_key,
            "lesion_id": les["id"],
            "grade": les.get("grade"),
            "graded": les.get("graded"),
            "grade_min": grade_min,
            "grade_max": grade_max,
            "borderline": les.get("borderline"),
            "ratio_liver": les.get("ratio_liver"),
            "ratio_liver_ci_low": liver_lo,
            "ratio_liver_ci_high": liver_hi,
            "ratio_spleen": les.get("ratio_spleen"),
            "ratio_spleen_ci_low": spleen_lo,
            "ratio_spleen_ci_high": spleen_hi,
            "spleen_reference_organ": les.get("spleen_reference_organ"),
            "diameter_mm": les.get("diameter_mm"),
            "region": les.get("region"),
            "source": les.get("source"),
            "grading_method": les.get("grading_method"),
            "n_warnings": len(les.get("warnings", [])),
        }
        rows.append({k: _cell(row[k]) for k in LESIONS_COLUMNS})
    return rows


def format_csv(columns: Sequence[str], rows: Iterable[Mapping[str, str]]) -> str:
    """CSV text with a header row, ``\\n`` line ends, minimal quoting."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="raise"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()


def write_csv_atomic(
    path: str | Path, columns: Sequence[str], rows: Iterable[Mapping[str, str]]
) -> Path:
    return write_text_atomic(path, format_csv(columns, rows))


# --------------------------------------------------------------------------- batch files


def relative_path(path: str, root: str | Path) -> str:
    """``path`` relative to ``root`` (POSIX separators) when under it, else unchanged."""
    try:
        return Path(path).relative_to(Path(root)).as_posix()
    except ValueError:
        return path


def failed_record(
    failed_studies: Sequence[Mapping[str, str]],
    skipped_files: Sequence[SkippedFile],
    *,
    input_root: str | Path,
    n_non_dicom: int,
) -> dict[str, Any]:
    """The content of failed.json.

    ``failed_studies``: dicts with study_key, error_code, error_reason. Skipped files are
    given relative to the batch INPUT folder, sorted by path.
    """
    studies = sorted(
        (
            {
                "study_key": s["study_key"],
                "error_code": s["error_code"],
                "error_reason": s["error_reason"],
            }
            for s in failed_studies
        ),
        key=lambda s: s["study_key"],
    )
    files = sorted(
        (
            {"path": relative_path(f.path, input_root), "code": f.code, "reason": f.reason}
            for f in skipped_files
        ),
        key=lambda f: (f["path"], f["code"]),
    )
    return {
        "failed_studies": studies,
        "skipped_files": files,
        "n_non_dicom_files": n_non_dicom,
    }
