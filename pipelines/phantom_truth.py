"""truth.json of a phantom study: the imaging truth plus grades and the expected decision.

The physical truth comes from :mod:`octoscan.imaging.phantom` (concentrations, geometry, the
apparent planar ratios measured on the noise-free geometric mean). This module adds what the
rules say, using the very definitions the scorer uses:

* ``true_grade``: :func:`octoscan.models.krenning.grade_from_ratios` on the true
  concentration ratios (lesion / normal liver, lesion / spleen, or lesion / kidney after a
  splenectomy), with the thresholds of the configuration;
* ``apparent_grade`` (per planar time point, and for the scored one at the lesion's top
  level): the same function on the apparent ratios, grade 0 when the lesion is not visible
  (contrast < 0.10 or CNR < 5);
* ``borderline``: a true or apparent ratio within +-10 % of a grade threshold
  (``borderline_reasons`` say which);
* ``expected_decision``: :func:`octoscan.models.decision.decide_eligibility` under the
  configuration, fed with noise-free values (intervals of zero width): ``planar`` from the
  visible lesions' apparent ratios and projected diameters on the scored time point,
  ``true`` from every lesion's true ratios and longest diameter. ``review_justified`` is True
  when the decision is ``needs_review`` or when moving the borderline lesions' ratios by
  +-10 % changes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from octoscan.imaging.phantom.truth import LesionTruth, StudyTruth
from octoscan.models.config import ScoringConfig, config_hash
from octoscan.models.decision import decide_eligibility
from octoscan.models.krenning import KrenningThresholds, grade_from_ratios
from octoscan.models.types import Lesion, ReferenceRegion
from octoscan.pipelines.atomic import write_json_atomic

BORDERLINE_MARGIN = 0.10
GRADING_METHOD_PLANAR = "phantom truth: noise-free conjugate-view geometric mean, peak/reference"
GRADING_METHOD_TRUE = "phantom truth: true concentration ratios"


def _near(value: float | None, threshold: float) -> bool:
    return value is not None and threshold > 0 and abs(value / threshold - 1.0) <= BORDERLINE_MARGIN


def borderline_reasons(
    ratio_liver: float | None, ratio_spleen: float | None, thr: KrenningThresholds, *, what: str
) -> list[str]:
    """Reasons (empty when none) why ratios sit within +-10 % of a grade threshold."""
    out = []
    for t in (thr.grade2_min_ratio_liver, thr.grade3_min_ratio_liver):
        if _near(ratio_liver, t):
            out.append(f"{what} ratio to liver {ratio_liver:.3g} within 10 % of {t:g}")
    if _near(ratio_spleen, thr.grade4_min_ratio_spleen):
        out.append(
            f"{what} ratio to spleen/kidney {ratio_spleen:.3g} within 10 % of "
            f"{thr.grade4_min_ratio_spleen:g}"
        )
    return out


@dataclass(frozen=True)
class _Row:
    """What the decision needs of one lesion (noise-free values)."""

    id: str
    ratio_liver: float
    ratio_ref: float | None
    diameter_mm: float
    center_rc: tuple[float, float] | None
    center_lps_mm: tuple[float, float, float] | None
    borderline: bool


def _model_lesion(
    k: int,
    row: _Row,
    thr: KrenningThresholds,
    ref_organ: str | None,
    method: str,
    scale: float = 1.0,
) -> Lesion:
    rl = row.ratio_liver * scale
    rs = row.ratio_ref * scale if row.ratio_ref is not None else None
    grade = grade_from_ratios(rl, rs, thr)
    return Lesion(
        id=k + 1,
        diameter_mm=row.diameter_mm,
        peak=rl,
        mean=rl,
        units="ratio",
        ratio_liver=rl,
        ratio_liver_ci=(rl, rl),
        ratio_spleen=rs,
        ratio_spleen_ci=(rs, rs) if rs is not None else None,
        spleen_reference_organ=ref_organ,
        grade=grade,
        grade_range=(grade, grade),
        borderline=False,
        region=row.id,
        grading_method=method,
        ci_method="none (noise-free truth)",
        center_rc=row.center_rc,
        center_lps_mm=row.center_lps_mm,
    )


def _references(truth: StudyTruth, *, planar: bool) -> list[ReferenceRegion]:
    refs = []
    liver_plausible = not truth.diffuse_liver_involvement
    organs = ["liver", "kidney" if truth.splenectomy else "spleen"]
    planar_refs = truth.primary_planar.references if (planar and truth.primary_planar) else {}
    for organ in organs:
        if planar:
            ref = planar_refs.get(organ)
            if ref is None:
                continue
            mean, radius, center = ref.mean_gm, ref.radius_mm, ref.center_rc
        else:
            mean, radius, center = 1.0, 0.0, None
        plausible = liver_plausible if organ == "liver" else True
        refs.append(
            ReferenceRegion(
                organ=organ,
                mean=mean,
                std=0.0,
                variance_of_mean=0.0,
                variance_method="poisson",
                method="phantom truth",
                radius_mm=radius,
                center_rc=center,
                plausible=plausible,
                warnings=() if plausible else ("diffuse liver involvement (phantom truth)",),
            )
        )
    return refs


def _decide(
    rows: Sequence[_Row],
    refs: Sequence[ReferenceRegion],
    config: ScoringConfig,
    *,
    ref_organ: str | None,
    method: str,
) -> dict[str, Any]:
    """Decision on noise-free values; an implausible liver reference means review when the
    configuration says so (issue 4), even when no discrete lesion is seen."""
    thr = config.krenning

    def run(scale_borderline: float) -> tuple[str, tuple[str, ...]]:
        lesions = [
            _model_lesion(k, r, thr, ref_organ, method, scale_borderline if r.borderline else 1.0)
            for k, r in enumerate(rows)
        ]
        d = decide_eligibility(lesions, refs, config=config)
        return d.status, d.reasons

    status, reasons = run(1.0)
    low, _ = run(1.0 - BORDERLINE_MARGIN)
    high, _ = run(1.0 + BORDERLINE_MARGIN)
    implausible = [r for r in refs if not r.plausible]
    if implausible and config.decision.review_on_implausible_reference:
        status = low = high = "needs_review"
        reasons = (
            *(f"{r.organ} reference implausible: {'; '.join(r.warnings)}" for r in implausible),
            *reasons,
        )
    return {
        "status": status,
        "reasons": list(reasons),
        "review_justified": status == "needs_review" or len({status, low, high}) > 1,
        "status_borderline_low": low,
        "status_borderline_high": high,
        "n_lesions_considered": len(rows),
    }


def _true_row(truth: StudyTruth, lesion: LesionTruth, thr: KrenningThresholds) -> _Row:
    """A lesion by its true concentration ratios and longest diameter."""
    true_ref = lesion.true_ratio_kidney if truth.splenectomy else lesion.true_ratio_spleen
    return _Row(
        id=lesion.id,
        ratio_liver=lesion.true_ratio_liver,
        ratio_ref=true_ref,
        diameter_mm=lesion.diameter_mm,
        center_rc=None,
        center_lps_mm=lesion.center_lps_mm,
        borderline=bool(borderline_reasons(lesion.true_ratio_liver, true_ref, thr, what="")),
    )


def _planar_row(truth: StudyTruth, lesion: LesionTruth, thr: KrenningThresholds) -> _Row | None:
    """A lesion by its apparent ratios on the scored planar view (None when not visible there
    or when the study has no planar view)."""
    primary = truth.primary_planar_index
    if primary is None:
        return None
    p = lesion.planar[primary]
    if not p.visible or p.apparent_ratio_liver is None:
        return None
    app_ref = p.apparent_ratio_kidney if truth.splenectomy else p.apparent_ratio_spleen
    return _Row(
        id=lesion.id,
        ratio_liver=p.apparent_ratio_liver,
        ratio_ref=app_ref,
        diameter_mm=p.projected_diameter_mm,
        center_rc=p.center_rc,
        center_lps_mm=None,
        borderline=bool(borderline_reasons(p.apparent_ratio_liver, app_ref, thr, what="")),
    )


def expected_field_decision(
    truth: StudyTruth,
    config: ScoringConfig,
    in_field: Sequence[bool],
    *,
    seen: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """Expected decision of a study read tomographically (issue 8, item 5): lesions inside the
    SPECT/PET field by their true ratios (the tomographic reading measures concentration),
    lesions outside it by their apparent ratios on the scored planar view, and only when
    visible there. ``in_field`` (and ``seen``: False leaves an in-field lesion out, e.g. one
    that neither the emission image nor the CT shows) run parallel to ``truth.lesions``."""
    thr = config.krenning
    rows: list[_Row] = []
    shown = seen if seen is not None else [True] * len(truth.lesions)
    for lesion, inside, visible in zip(truth.lesions, in_field, shown, strict=True):
        if inside and not visible:
            continue
        row = _true_row(truth, lesion, thr) if inside else _planar_row(truth, lesion, thr)
        if row is not None:
            rows.append(row)
    return _decide(
        rows,
        _references(truth, planar=False),
        config,
        ref_organ="kidney" if truth.splenectomy else "spleen",
        method=f"{GRADING_METHOD_TRUE} in the field; {GRADING_METHOD_PLANAR} outside",
    )


def compose_truth(truth: StudyTruth, config: ScoringConfig) -> dict[str, Any]:
    """truth.json content: :meth:`StudyTruth.to_json` plus grades and the expected decision."""
    thr = config.krenning
    data = truth.to_json()
    ref_organ = "kidney" if truth.splenectomy else "spleen"
    primary = truth.primary_planar_index
    planar_rows: list[_Row] = []
    true_rows: list[_Row] = []
    for lesion, out in zip(truth.lesions, data["lesions"], strict=True):
        true_ref = lesion.true_ratio_kidney if truth.splenectomy else lesion.true_ratio_spleen
        out["true_grade"] = grade_from_ratios(lesion.true_ratio_liver, true_ref, thr)
        reasons = borderline_reasons(lesion.true_ratio_liver, true_ref, thr, what="true")
        for p_truth, p_out in zip(lesion.planar, out["planar"], strict=True):
            app_ref = (
                p_truth.apparent_ratio_kidney
                if truth.splenectomy
                else p_truth.apparent_ratio_spleen
            )
            p_out["apparent_grade"] = grade_from_ratios(
                p_truth.apparent_ratio_liver, app_ref, thr, visible=p_truth.visible
            )
        if primary is not None:
            p = lesion.planar[primary]
            app_ref = p.apparent_ratio_kidney if truth.splenectomy else p.apparent_ratio_spleen
            out["apparent_grade"] = out["planar"][primary]["apparent_grade"]
            out["visible"] = p.visible
            out["apparent_ratio_liver"] = out["planar"][primary]["apparent_ratio_liver"]
            out["apparent_ratio_spleen"] = out["planar"][primary]["apparent_ratio_spleen"]
            out["center_rc"] = out["planar"][primary]["center_rc"]
            if p.visible:
                reasons += borderline_reasons(p.apparent_ratio_liver, app_ref, thr, what="apparent")
            row = _planar_row(truth, lesion, thr)
            if row is not None:
                planar_rows.append(row)
        out["borderline"] = bool(reasons)
        out["borderline_reasons"] = reasons
        true_rows.append(_true_row(truth, lesion, thr))
    decisions: dict[str, Any] = {
        "rule_set": config.name,
        "uptake_rule": config.decision.uptake_rule,
        "true": _decide(
            true_rows,
            _references(truth, planar=False),
            config,
            ref_organ=ref_organ,
            method=GRADING_METHOD_TRUE,
        ),
    }
    if primary is not None:
        decisions["planar"] = _decide(
            planar_rows,
            _references(truth, planar=True),
            config,
            ref_organ=ref_organ,
            method=GRADING_METHOD_PLANAR,
        )
        decisions["planar"]["hours_post_injection"] = truth.planar[primary].hours_post_injection
    data["expected_decision"] = decisions
    data["grading"] = {
        "config": config.name,
        "config_hash": config_hash(config),
        "thresholds": {
            "grade2_min_ratio_liver": thr.grade2_min_ratio_liver,
            "grade3_min_ratio_liver": thr.grade3_min_ratio_liver,
            "grade4_min_ratio_spleen": thr.grade4_min_ratio_spleen,
        },
        "grade4_reference": ref_organ,
        "borderline_margin": BORDERLINE_MARGIN,
        "planar_method": GRADING_METHOD_PLANAR,
    }
    return data


def write_truth(path: str | Path, truth: StudyTruth, config: ScoringConfig) -> Path:
    """Write truth.json atomically; returns its path."""
    return write_json_atomic(path, compose_truth(truth, config))
