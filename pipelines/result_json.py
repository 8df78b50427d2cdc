"""result.json: the documented, deterministic JSON form of a scored study.

The schema is ``pipelines/schemas/result.schema.json`` (validated in tests). Floats are
rounded to fixed precision so that re-runs are byte-identical; nothing time- or
random-dependent goes in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from octoscan.imaging.types import PlanarImage
from octoscan.models.stats import RatioInterval
from octoscan.models.tomo_score import TomoLesionMetrics, TomoScore
from octoscan.models.types import Decision, Lesion, PlanarScore, ReferenceRegion

SCHEMA_VERSION = "1.0"
_DIGITS = 4


def _num(x: float | None, digits: int = _DIGITS) -> float | None:
    if x is None:
        return None
    v = float(x)
    if not math.isfinite(v):
        return None
    return round(v, digits)


def _pair(p: Sequence[float] | None, digits: int = _DIGITS) -> list[float | None] | None:
    return None if p is None else [_num(v, digits) for v in p]


def reference_to_dict(ref: ReferenceRegion) -> dict[str, Any]:
    region: dict[str, Any] = {"shape": "circle" if ref.center_rc is not None else "sphere"}
    region["radius_mm"] = _num(ref.radius_mm, 2)
    if ref.center_rc is not None:
        region["center_rc"] = _pair(ref.center_rc, 2)
    if ref.center_lps_mm is not None:
        region["center_lps_mm"] = _pair(ref.center_lps_mm, 2)
    if ref.volume_ml is not None:
        region["volume_ml"] = _num(ref.volume_ml, 3)
    return {
        "mean": _num(ref.mean),
        "std": _num(ref.std),
        "n_pixels": ref.n_pixels,
        "region": region,
        "method": ref.method,
        "variance_method": ref.variance_method,
        "usable": bool(ref.plausible),
        "warnings": list(ref.warnings),
    }


def lesion_to_dict(lesion: Lesion) -> dict[str, Any]:
    return {
        "id": lesion.id,
        "grade": lesion.grade if lesion.grade is not None else 0,
        "graded": lesion.grade is not None,
        "grade_range": list(lesion.grade_range),
        "borderline": bool(lesion.borderline),
        "ratio_liver": _num(lesion.ratio_liver),
        "ratio_liver_ci": _pair(lesion.ratio_liver_ci),
        "ratio_spleen": _num(lesion.ratio_spleen),
        "ratio_spleen_ci": _pair(lesion.ratio_spleen_ci),
        "spleen_reference_organ": lesion.spleen_reference_organ,
        "center_rc": _pair(lesion.center_rc, 2),
        "center_lps_mm": _pair(lesion.center_lps_mm, 2),
        "diameter_mm": _num(lesion.diameter_mm, 2),
        "area_cm2": _num(lesion.area_cm2, 3),
        "volume_ml": _num(lesion.volume_ml, 3),
        "peak_counts": _num(lesion.peak),
        "mean_counts": _num(lesion.mean),
        "units": lesion.units,
        "region": lesion.region,
        "grading_method": lesion.grading_method,
        "ci_method": lesion.ci_method,
        "source": lesion.source,
        "warnings": list(lesion.warnings),
    }


def decision_to_dict(decision: Decision) -> dict[str, Any]:
    return {
        "status": decision.status,
        "imaging_status": decision.imaging_status,
        "rule_set": decision.rule_set,
        "uptake_rule": decision.uptake_rule,
        "reasons": list(decision.reasons),
        "criteria": [
            {
                "name": c.name,
                "verdict": c.verdict,
                "reason": c.reason,
                "value": c.value,
                "limit": c.limit,
                "unit": c.unit,
                "source": c.source,
            }
            for c in decision.criteria
        ],
    }


def _dedupe(items: Sequence[str]) -> list[str]:
    seen: dict[str, None] = {}
    for w in items:
        seen.setdefault(w, None)
    return list(seen)


def planar_result_to_dict(
    score: PlanarScore,
    *,
    study_instance_uid: str,
    study_key: str,
    patient_key: str | None,
    patient_id: str | None,
    octoscan_version: str,
    config_hash: str,
    krenning_thresholds: Mapping[str, float],
    images: Sequence[PlanarImage],
    extra_warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The result.json content of a planar-scored study."""
    tracer_radionuclide = next(
        (im.acquisition.radionuclide for im in images if im.acquisition.radionuclide), None
    )
    tracer_pharm = next(
        (im.acquisition.radiopharmaceutical for im in images if im.acquisition.radiopharmaceutical),
        None,
    )
    views = {im.view.value: im.view_rule for im in images}
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "study_key": study_key,
        "study_instance_uid": study_instance_uid,
        "patient_key": patient_key,
        "modalities_used": ["NM planar"],
        "tracer": {
            "name": score.tracer,
            "radionuclide": tracer_radionuclide,
            "radiopharmaceutical": tracer_pharm,
            "sstr": True,
            "assumed": bool(score.tracer_assumed),
        },
        "hours_post_injection": _num(score.hours_post_injection, 2),
        "references": {ref.organ: reference_to_dict(ref) for ref in score.references},
        "lesions": [lesion_to_dict(les) for les in score.lesions],
        "decision": decision_to_dict(score.decision),
        "warnings": _dedupe([*score.warnings, *extra_warnings]),
        "provenance": {
            "octoscan_version": octoscan_version,
            "config_name": score.config_name,
            "config_hash": config_hash,
            "krenning_thresholds": dict(sorted(krenning_thresholds.items())),
            "input_series_uids": list(score.series_instance_uids),
            "views_used": list(score.views_used),
            "view_rules": dict(sorted(views.items())),
            "grid": score.grid,
            "grading_method": score.grading_method,
            "ci_method": score.ci_method,
            "posterior_shift_rc": _pair(score.posterior_shift_rc, 2),
            "pixel_spacing_mm": _pair(score.pixel_spacing_mm, 4),
            "orientation": score.orientation,
        },
    }
    if patient_id is not None:
        out["patient_id"] = patient_id
    return out


GRADING_SOURCES: tuple[str, ...] = ("tomographic", "planar")


@dataclass(frozen=True)
class LesionEntry:
    """One lesion of a study scored on tomography (and possibly planar images as well).

    ``lesion`` is the entry as graded (its ``id`` is the entry's id in the result; a linked
    entry is the tomographic lesion with the planar lesion's ``center_rc`` added).
    ``grading_source`` says whose grade decides ("tomographic" inside the SPECT/PET field,
    "planar" outside it); ``linked_planar_id`` and ``tomographic_id`` are the lesion's ids in
    the planar and tomographic scores (None when it was not seen there); ``metrics`` the
    tomographic companion figures; ``used_for_decision`` is False for a planar finding inside
    the tomographic field that tomography did not confirm.
    """

    lesion: Lesion
    grading_source: str
    linked_planar_id: int | None = None
    tomographic_id: int | None = None
    metrics: TomoLesionMetrics | None = None
    used_for_decision: bool = True

    def __post_init__(self) -> None:
        if self.grading_source not in GRADING_SOURCES:
            raise ValueError(
                f"LesionEntry.grading_source = {self.grading_source!r}; expected one of "
                f"{GRADING_SOURCES}"
            )


def _ratio(ri: RatioInterval | None) -> tuple[float | None, list[float | None] | None]:
    if ri is None:
        return None, None
    return _num(ri.ratio), _pair((ri.low, ri.high))


def lesion_entry_to_dict(entry: LesionEntry) -> dict[str, Any]:
    """:func:`lesion_to_dict` plus the tomographic figures and the grading source."""
    out = lesion_to_dict(entry.lesion)
    m = entry.metrics
    liver_u, liver_u_ci = _ratio(m.ratio_liver_uncorrected if m is not None else None)
    spleen_u, spleen_u_ci = _ratio(m.ratio_spleen_uncorrected if m is not None else None)
    out.update(
        {
            "grading_source": entry.grading_source,
            "linked_planar_id": entry.linked_planar_id,
            "tomographic_id": entry.tomographic_id,
            "used_for_decision": bool(entry.used_for_decision),
            "ratio_liver_uncorrected": liver_u,
            "ratio_liver_uncorrected_ci": liver_u_ci,
            "ratio_spleen_uncorrected": spleen_u,
            "ratio_spleen_uncorrected_ci": spleen_u_ci,
            "grade_uncorrected": m.grade_uncorrected if m is not None else None,
            "recovery_coefficient": _num(m.recovery) if m is not None else None,
            "suv_max": _num(m.suv_max) if m is not None else None,
            "suv_peak": _num(m.suv_peak) if m is not None else None,
            "suv_mean": _num(m.suv_mean) if m is not None else None,
        }
    )
    return out


def _tomo_provenance(score: TomoScore) -> dict[str, Any]:
    pairing = score.pairing
    return {
        "modality": score.modality,
        "units": score.units,
        "resolution_fwhm_mm": _num(score.resolution_fwhm_mm, 2),
        "resolution_source": score.resolution_source,
        "ct_fused": bool(score.ct_fused),
        "pairing": None
        if pairing is None
        else {
            "fused": bool(pairing.fused),
            "same_frame_of_reference": bool(pairing.same_frame_of_reference),
            "overlap_fraction": _num(pairing.overlap_fraction),
            "reason": pairing.reason,
        },
        "organ_method": score.organ_method,
        "grading_method": score.grading_method,
        "ci_method": score.ci_method,
        "recovery_model": score.recovery_model,
        "tomo_config_hash": score.tomo_config_hash,
        "input_series_uids": list(score.series_instance_uids),
        "hours_post_injection": _num(score.hours_post_injection, 2),
        "organs": {
            o.organ: {
                "center_lps_mm": _pair(o.center_lps_mm, 2),
                "volume_ml": _num(o.volume_ml, 3),
                "mean": _num(o.mean),
                "method": o.method,
            }
            for o in score.organs
        },
        "decision": decision_to_dict(score.decision),
    }


def tomo_result_to_dict(
    tomo: TomoScore,
    entries: Sequence[LesionEntry],
    decision: Decision,
    *,
    planar: PlanarScore | None,
    images: Sequence[PlanarImage],
    modalities_used: Sequence[str],
    study_instance_uid: str,
    study_key: str,
    patient_key: str | None,
    patient_id: str | None,
    octoscan_version: str,
    config_hash: str,
    krenning_thresholds: Mapping[str, float],
    radionuclide: str | None = None,
    radiopharmaceutical: str | None = None,
    extra_warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The result.json content of a study scored on SPECT or PET, with its planar images
    when it has any (one decision for the study; ``entries`` as combined by the study
    pipeline). References are the tomographic ones; the planar references, when planar
    images were scored, are under ``provenance.planar_references``. ``radionuclide`` and
    ``radiopharmaceutical`` are the emission volume's (header or user-named) tracer."""
    if planar is not None:
        out = planar_result_to_dict(
            planar,
            study_instance_uid=study_instance_uid,
            study_key=study_key,
            patient_key=patient_key,
            patient_id=patient_id,
            octoscan_version=octoscan_version,
            config_hash=config_hash,
            krenning_thresholds=krenning_thresholds,
            images=images,
        )
        out["provenance"]["planar_references"] = out["references"]
        out["provenance"]["planar_grading_method"] = planar.grading_method
        out["provenance"]["planar_decision"] = decision_to_dict(planar.decision)
        warnings = [*tomo.warnings, *planar.warnings, *extra_warnings]
        series = [*planar.series_instance_uids, *tomo.series_instance_uids]
    else:
        out = {
            "schema_version": SCHEMA_VERSION,
            "study_key": study_key,
            "study_instance_uid": study_instance_uid,
            "patient_key": patient_key,
            "provenance": {
                "octoscan_version": octoscan_version,
                "config_name": tomo.config_name,
                "config_hash": config_hash,
                "krenning_thresholds": dict(sorted(krenning_thresholds.items())),
            },
        }
        if patient_id is not None:
            out["patient_id"] = patient_id
        warnings = [*tomo.warnings, *extra_warnings]
        series = list(tomo.series_instance_uids)
    out["modalities_used"] = list(modalities_used)
    out["tracer"] = {
        "name": tomo.tracer,
        "radionuclide": radionuclide or out.get("tracer", {}).get("radionuclide"),
        "radiopharmaceutical": radiopharmaceutical
        or out.get("tracer", {}).get("radiopharmaceutical"),
        "sstr": True,
        "assumed": bool(tomo.tracer_assumed),
    }
    out["hours_post_injection"] = _num(tomo.hours_post_injection, 2)
    out["references"] = {ref.organ: reference_to_dict(ref) for ref in tomo.references}
    out["lesions"] = [lesion_entry_to_dict(e) for e in entries]
    out["decision"] = decision_to_dict(decision)
    out["warnings"] = _dedupe(warnings)
    out["provenance"]["input_series_uids"] = list(dict.fromkeys(series))
    out["provenance"]["grading_method"] = tomo.grading_method
    out["provenance"]["ci_method"] = tomo.ci_method
    out["provenance"]["tomographic"] = _tomo_provenance(tomo)
    return out


def load_result_schema() -> dict[str, Any]:
    text = (
        resources.files("octoscan.pipelines")
        .joinpath("schemas/result.schema.json")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)


def validate_result(result: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` when ``result`` does not follow the schema."""
    import jsonschema

    jsonschema.Draft202012Validator(load_result_schema()).validate(result)
