"""Tomographic scoring of one SPECT (SPECT/CT) or PET (PET/CT) study: organs, lesions,
modified Krenning grades with intervals, and the decision (issue 8). Pure data, no files.

Steps: tracer check (SSTR imaging only; post-therapy 177Lu-DOTATATE SPECT is SSTR imaging
and is scored with the tracer named), pairing with the CT (:mod:`tomo_pairing`), organs
(:mod:`tomo_organs`), lesions (:mod:`tomo_lesions`), reference VOIs placed away from the
lesions, grades and the decision (:mod:`octoscan.models.decision`).

Grading (modified Krenning, DESIGN.md section 2): a lesion's peak uptake (mean of the 1 mL
peak sphere), partial-volume corrected by default (``tomo.pvc.grade_on``), over the mean of
the liver and spleen reference VOIs (the kidney VOI for grade 4 when there is no spleen). The
uncorrected ratios are kept in :class:`TomoLesionMetrics`.

Intervals: log-ratio delta method (:func:`octoscan.models.stats.ratio_ci`) with the variance
of the reference mean estimated from the reference region itself (voxel variance over the
number of resolution elements, :mod:`tomo_organs`) and the variance of the peak from the same
noise model: noise gain g = s^2 / mean of the liver reference (variance per unit of uptake),
var(peak) = g x peak / n_eff(peak sphere); the corrected peak's variance is that divided by
RC^2. The size estimate behind RC is not propagated (a documented limitation).

Plausibility: the liver reference is flagged implausible (``plausible`` False, the study goes
to review through the decision) when its mean reaches ``max_liver_to_spleen_ratio`` x the
spleen (or kidney) reference (SSTR physiology puts both well above liver), or when the robust
coefficient of variation ((P84 - P16) / 2 / median) of the organ-scale liver uptake, one
FWHM away from lesions and half a FWHM inside the outline, exceeds ``max_liver_cv``
(diffuse involvement).

Decision rule: PET uses ``tomo.decision.pet_uptake_rule`` (PET-era "significantly above
liver" by default); SPECT ``tomo.decision.spect_uptake_rule`` (``rule_set``: the rule set's
own ``[decision].uptake_rule``). The decision names the rule applied.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from octoscan.imaging.errors import UnsupportedAcquisitionError
from octoscan.imaging.types import SeriesKind, Volume
from octoscan.models.config import ScoringConfig, config_hash
from octoscan.models.decision import decide_eligibility, decide_imaging
from octoscan.models.grading import grade_lesion
from octoscan.models.stats import RatioInterval
from octoscan.models.tomo_config import TomoConfig, tomo_config_hash
from octoscan.models.tomo_ct_lesions import add_ct_liver_lesions, outline_ct_liver_lesions
from octoscan.models.tomo_lesions import DetectionResult, ExcludedFinding, detect_lesions
from octoscan.models.tomo_organs import (
    METHOD_CT,
    OrganMaps,
    dilate_mm,
    effective_resels,
    erode_mm,
    locate_organs,
    place_reference,
    voxel_volume_ml,
)
from octoscan.models.tomo_pairing import (
    PairingResult,
    WorkingGrid,
    check_pairing,
    resample_ct_to,
    working_grid,
)
from octoscan.models.tomo_resolution import liver_edge_resolution
from octoscan.models.tracer import check_tracer
from octoscan.models.types import Decision, Lesion, OrganRegion, ReferenceRegion

TOMO_CI_METHOD = "correlated_reference_noise_log_delta"
"""Interval method: log-ratio delta method, reference variance = voxel variance / resels."""

_SPECT_UNITS = ("counts", "Bq/mL")
_PET_UNITS = ("SUVbw", "Bq/mL")


@dataclass(frozen=True)
class TomoLesionMetrics:
    """Per-lesion figures that :class:`~octoscan.models.types.Lesion` has no field for.

    ``lesion_id`` matches ``Lesion.id``. Ratios are :class:`RatioInterval` (value and
    interval) or None without that reference. ``recovery`` is the recovery coefficient used
    (for a sphere of the lesion's ``diameter_mm``), ``segmented_volume_ml`` the volume of the
    segmented region (the lesion's ``volume_ml`` is its blur-corrected size), ``corrected_peak`` =
    background + (peak - background) / recovery, in the emission units. SUV figures are set
    when the volume is in SUVbw (``suv_max``: hottest voxel; ``suv_peak``: the 1 mL peak
    sphere; ``suv_mean``: mean of the segmented region).
    """

    lesion_id: int
    peak_lps_mm: tuple[float, float, float]
    ratio_liver_uncorrected: RatioInterval | None
    ratio_spleen_uncorrected: RatioInterval | None
    ratio_liver_corrected: RatioInterval | None
    ratio_spleen_corrected: RatioInterval | None
    grade_uncorrected: int | None
    grade_corrected: int | None
    recovery: float
    segmented_volume_ml: float
    corrected_peak: float
    max_value: float
    contrast: float
    suv_max: float | None = None
    suv_peak: float | None = None
    suv_mean: float | None = None


@dataclass(frozen=True)
class TomoScore:
    """Everything tomographic scoring found for one emission volume (pure data; no files).

    ``modality`` is "spect" or "pet"; ``units`` the emission units (peaks and means are in
    them); ``resolution_fwhm_mm`` the system resolution used for noise and partial-volume
    correction and ``resolution_source`` where it came from. ``pairing`` is None without a
    CT; ``ct_fused`` says whether the CT guided the organs. Masks (organs, references,
    lesions, excluded hot spots) are boolean arrays on the emission grid (``shape``,
    ``affine``). ``lesion_metrics`` holds one entry per lesion, same order.
    """

    tracer: str
    tracer_assumed: bool
    modality: str
    units: str
    hours_post_injection: float | None
    resolution_fwhm_mm: float
    resolution_source: str
    ct_fused: bool
    pairing: PairingResult | None
    organ_method: str
    grading_method: str
    ci_method: str
    recovery_model: str
    organs: tuple[OrganRegion, ...]
    references: tuple[ReferenceRegion, ...]
    lesions: tuple[Lesion, ...]
    lesion_metrics: tuple[TomoLesionMetrics, ...]
    excluded: tuple[ExcludedFinding, ...]
    decision: Decision
    config_name: str
    config_hash: str
    tomo_config_hash: str
    series_instance_uids: tuple[str, ...]
    warnings: tuple[str, ...]
    shape: tuple[int, int, int]
    affine: np.ndarray = field(compare=False, repr=False)

    def reference(self, organ: str) -> ReferenceRegion | None:
        """The reference region of ``organ`` ("liver", "spleen", "kidney"), if any."""
        for ref in self.references:
            if ref.organ == organ:
                return ref
        return None

    def metrics(self, lesion_id: int) -> TomoLesionMetrics | None:
        """The companion metrics of lesion ``lesion_id``."""
        for m in self.lesion_metrics:
            if m.lesion_id == lesion_id:
                return m
        return None


def _modality(emission: Volume) -> str:
    if emission.kind is SeriesKind.SPECT:
        return "spect"
    if emission.kind is SeriesKind.PET:
        return "pet"
    raise UnsupportedAcquisitionError(
        f"volume of kind {emission.kind.value!r} is not an emission volume; expected a "
        "reconstructed SPECT or a PET",
        code="not_emission_volume",
    )


def score_tomographic(
    emission: Volume,
    *,
    ct: Volume | None,
    config: ScoringConfig,
    tomo: TomoConfig,
    assume_sstr: bool = False,
    radiopharmaceutical: str | None = None,
) -> TomoScore:
    """Score one reconstructed SPECT or PET volume (module docstring).

    ``ct``: the CT of the same session, or None (organs then come from the emission volume
    alone, with a warning). ``radiopharmaceutical``: the agent named by the user when the
    headers do not name it (e.g. "DOTATATE" for a post-therapy 177Lu-DOTATATE SPECT); the
    tracer check then uses it and a warning says so. Raises
    :class:`UnsupportedAcquisitionError` for a non-emission volume or a tracer that is not
    somatostatin-receptor imaging (codes of :func:`octoscan.models.tracer.check_tracer`).
    """
    modality = _modality(emission)
    warnings: list[str] = list(emission.warnings)
    acq = emission.acquisition
    if radiopharmaceutical is not None:
        warnings.append(
            f"radiopharmaceutical {radiopharmaceutical!r} named by the user "
            f"(headers: {acq.radiopharmaceutical or 'not given'})"
        )
        acq = dataclasses.replace(acq, radiopharmaceutical=radiopharmaceutical)
    tracer = check_tracer(acq, assume_sstr=assume_sstr)
    warnings.extend(tracer.warnings)
    allowed_units = _PET_UNITS if modality == "pet" else _SPECT_UNITS
    if emission.units not in allowed_units:
        warnings.append(
            f"emission units {emission.units!r} (expected one of {', '.join(allowed_units)}): "
            "ratios are unaffected, absolute values are not comparable"
        )
    if modality == "pet" and emission.units != "SUVbw":
        warnings.append("PET not in SUVbw: SUVmax, SUVpeak and SUVmean are not reported")

    carried = emission.resolution_fwhm_mm
    from_volume = carried is not None and carried > 0
    if carried is not None and from_volume:
        fwhm = float(carried)
        fwhm_source = "volume"
    else:
        fwhm = tomo.resolution.pet_fwhm_mm if modality == "pet" else tomo.resolution.spect_fwhm_mm
        fwhm_source = f"configured default for {modality.upper()}"

    native = np.asarray(emission.array, dtype=np.float32)
    if float(native.min()) < 0.0:
        negative = float(np.mean(native < 0.0))
        warnings.append(f"{100.0 * negative:.1f} % of voxels negative: set to 0 for scoring")
        native = np.maximum(native, 0.0)
    grid = working_grid(emission, working_voxel_mm=tomo.resolution.working_voxel_mm)
    image = grid.reduce(native)

    pairing: PairingResult | None = None
    ct_hu: np.ndarray | None = None
    series = [emission.source.series_instance_uid]
    if ct is not None:
        pairing = check_pairing(
            emission, ct, min_overlap_fraction=tomo.pairing.min_overlap_fraction
        )
        warnings.extend(pairing.warnings)
        if pairing.fused:
            ct_hu = resample_ct_to(ct, grid.shape, grid.affine).array
            series.append(ct.source.series_instance_uid)
        else:
            warnings.append(f"CT {pairing.reason}")

    organs = locate_organs(image, grid, ct_hu=ct_hu, organs=tomo.organs, ct=tomo.ct)
    warnings.extend(organs.warnings)
    if not from_volume:
        fwhm, fwhm_source, notes = _measured_resolution(
            image, grid, organs, fwhm, fwhm_source, tomo
        )
        warnings.extend(notes)
    found = detect_lesions(
        image,
        grid,
        organs,
        native,
        fwhm_mm=fwhm,
        is_pet=modality == "pet",
        detection=tomo.detection,
        organ_cfg=tomo.organs,
        ct_cfg=tomo.ct,
        pvc=tomo.pvc,
    )
    warnings.extend(found.warnings)
    for ex in found.excluded:
        warnings.append(f"not scored: {ex.reason}")
    ct_only: DetectionResult | None = None  # CT liver lesions without uptake, not reported
    if tomo.ct_lesions.enabled and ct_hu is not None:
        ct_cfg = tomo.ct_lesions
        review_only = ct_cfg.review_without_uptake and not ct_cfg.report_without_uptake
        ct_lesions = outline_ct_liver_lesions(organs, grid, cfg=ct_cfg, ct_cfg=tomo.ct)
        found = add_ct_liver_lesions(
            found,
            ct_lesions,
            grid,
            native,
            fwhm_mm=fwhm,
            # the review mode measures them as the report mode does, then takes them out
            cfg=dataclasses.replace(ct_cfg, report_without_uptake=True) if review_only else ct_cfg,
            pvc=tomo.pvc,
            peak_volume_ml=tomo.detection.peak_volume_ml,
        )
        if review_only and any(f.outline == "ct" for f in found.findings):
            ct_only = dataclasses.replace(
                found, findings=tuple(f for f in found.findings if f.outline == "ct")
            )
            found = dataclasses.replace(
                found, findings=tuple(f for f in found.findings if f.outline != "ct")
            )

    references = _references(organs, found, image, grid, native, fwhm, tomo)
    review: list[str] = []
    references = _check_plausibility(references, organs, found, grid, fwhm, tomo, review)
    ref_by = {r.organ: r for r in references}
    for r in references:
        warnings.extend(f"{r.organ} reference: {w}" for w in r.warnings)

    lesions, metrics = _grade(found, ref_by, emission, fwhm, config, tomo, modality)
    rule = _uptake_rule(modality, config, tomo)
    decided = dataclasses.replace(
        config, decision=dataclasses.replace(config.decision, uptake_rule=rule)
    )
    unresolved: list[str] = []
    if ct_only is not None:
        unreported, _ = _grade(ct_only, ref_by, emission, fwhm, config, tomo, modality)
        notes, unresolved = _ct_only_review(lesions, unreported, references, decided)
        warnings.extend(notes)
    decision = decide_eligibility(
        lesions,
        references,
        config=decided,
        review_reasons=review,
        unresolved_findings=unresolved,
    )

    organ_regions = _organ_regions(organs, grid, native)
    pvc_text = (
        "partial-volume-corrected"
        if tomo.pvc.grade_on == "corrected" and tomo.pvc.recovery_model != "none"
        else "uncorrected"
    )
    grading_method = (
        f"tomographic modified Krenning ({modality.upper()}): {pvc_text} peak "
        f"({tomo.detection.peak_volume_ml:g} mL sphere) / reference VOI mean"
    )
    return TomoScore(
        tracer=tracer.tracer,
        tracer_assumed=tracer.assumed,
        modality=modality,
        units=emission.units,
        hours_post_injection=emission.acquisition.hours_post_injection,
        resolution_fwhm_mm=fwhm,
        resolution_source=fwhm_source,
        ct_fused=ct_hu is not None,
        pairing=pairing,
        organ_method=organs.method,
        grading_method=grading_method,
        ci_method=TOMO_CI_METHOD,
        recovery_model=tomo.pvc.recovery_model,
        organs=organ_regions,
        references=references,
        lesions=lesions,
        lesion_metrics=metrics,
        excluded=found.excluded,
        decision=decision,
        config_name=config.name,
        config_hash=config_hash(config),
        tomo_config_hash=tomo_config_hash(tomo),
        series_instance_uids=tuple(series),
        warnings=tuple(dict.fromkeys(warnings)),
        shape=emission.shape,
        affine=emission.affine.copy(),
    )


def _measured_resolution(
    image: np.ndarray,
    grid: WorkingGrid,
    organs: OrganMaps,
    default_fwhm: float,
    default_source: str,
    tomo: TomoConfig,
) -> tuple[float, str, list[str]]:
    """(FWHM mm, its source, warnings) for a volume that does not carry its resolution: the
    one measured at the CT liver outline (:mod:`octoscan.models.tomo_resolution`) when
    ``[tomo.resolution] measure_at_liver_edge`` is on and the measurement lies within
    ``measured_min_factor``-``measured_max_factor`` x the configured default but differs
    from it by more than ``measured_agreement`` (the measurement's own accuracy); else the
    default."""
    res = tomo.resolution
    assumed = (
        f"{default_fwhm:g} mm FWHM assumed (tomo.resolution) for noise and partial-volume "
        "correction"
    )

    def keep(note: str) -> tuple[float, str, list[str]]:
        return default_fwhm, default_source, [note]

    if not res.measure_at_liver_edge:
        return keep(f"system resolution not known: {assumed}")
    if organs.ct_hu is None:
        return keep(f"system resolution not known, no CT fused: {assumed}")
    est = liver_edge_resolution(image, grid, organs, assumed_fwhm_mm=default_fwhm)
    if est is None:
        return keep(
            f"system resolution not known and not measurable at the CT liver outline: {assumed}"
        )
    lo, hi = res.measured_min_factor, res.measured_max_factor
    measured = (
        f"{est.fwhm_mm:.1f} mm FWHM (fit SE {est.fwhm_se_mm:.1f} mm) measured at the CT liver "
        "outline"
    )
    if not lo * default_fwhm <= est.fwhm_mm <= hi * default_fwhm:
        return keep(
            f"{measured}, outside {lo:g}-{hi:g} x the configured {default_fwhm:g} mm: not used; "
            f"{assumed}"
        )
    if abs(est.fwhm_mm / default_fwhm - 1.0) <= res.measured_agreement:
        return (
            default_fwhm,
            f"{default_source}, confirmed at the CT liver outline",
            [
                f"system resolution: {measured}, within {100 * res.measured_agreement:.0f} % of "
                f"the configured {default_fwhm:g} mm, which is used"
            ],
        )
    return (
        round(est.fwhm_mm, 1),
        "measured at the CT liver outline",
        [f"system resolution: {measured} (configured default {default_fwhm:g} mm not used)"],
    )


def _uptake_rule(modality: str, config: ScoringConfig, tomo: TomoConfig) -> str:
    if modality == "pet":
        return tomo.decision.pet_uptake_rule
    if tomo.decision.spect_uptake_rule == "rule_set":
        return config.decision.uptake_rule
    return tomo.decision.spect_uptake_rule


def _references(
    organs: OrganMaps,
    found: DetectionResult,
    image: np.ndarray,
    grid: WorkingGrid,
    native: np.ndarray,
    fwhm: float,
    tomo: TomoConfig,
) -> tuple[ReferenceRegion, ...]:
    avoid = np.zeros(grid.shape, dtype=bool)
    for f in found.findings:
        avoid |= f.working_mask
    for ex in found.excluded:
        avoid |= ex.working_mask
    cfg = tomo.references
    emission_margin = cfg.emission_edge_margin_fwhm * fwhm
    out: list[ReferenceRegion] = []
    liver_margin = cfg.edge_margin_mm + (0.0 if organs.method == METHOD_CT else emission_margin)
    if organs.liver is not None:
        ref = place_reference(
            "liver",
            organs.liver,
            image,
            grid,
            native,
            diameter_mm=cfg.liver_diameter_mm,
            edge_margin_mm=liver_margin,
            lesion_margin_mm=cfg.lesion_margin_mm,
            avoid=avoid,
            fwhm_mm=fwhm,
            method=organs.method,
        )
        if ref is not None:
            out.append(ref)
    spleen_margin = cfg.edge_margin_mm + (
        0.0 if organs.method == METHOD_CT and organs.spleen is not None else emission_margin
    )
    if organs.spleen is not None:
        ref = place_reference(
            "spleen",
            organs.spleen,
            image,
            grid,
            native,
            diameter_mm=cfg.spleen_diameter_mm,
            edge_margin_mm=spleen_margin,
            lesion_margin_mm=cfg.lesion_margin_mm,
            avoid=avoid,
            fwhm_mm=fwhm,
            method=organs.method,
        )
        if ref is not None:
            out.append(ref)
    elif organs.kidneys:
        kidneys = [
            place_reference(
                "kidney",
                k,
                image,
                grid,
                native,
                diameter_mm=cfg.kidney_diameter_mm,
                edge_margin_mm=cfg.edge_margin_mm + emission_margin,
                lesion_margin_mm=cfg.lesion_margin_mm,
                avoid=avoid,
                fwhm_mm=fwhm,
                method="emission",
            )
            for k in organs.kidneys
        ]
        usable = [k for k in kidneys if k is not None and k.mean > 0]
        if usable:
            out.append(_merge_kidneys(usable, fwhm))
    return tuple(out)


def _merge_kidneys(refs: list[ReferenceRegion], fwhm: float) -> ReferenceRegion:
    """One kidney reference from one or two kidney VOIs (mean over both, pooled noise)."""
    if len(refs) == 1:
        only = refs[0]
        return dataclasses.replace(
            only,
            warnings=(
                *only.warnings,
                "no spleen: kidney used as the grade-4 reference (one kidney found)",
            ),
        )
    masks = [r.mask for r in refs if r.mask is not None]
    mask = np.logical_or.reduce(masks) if masks else None
    n = sum(r.n_pixels or 0 for r in refs)
    mean = sum(r.mean * (r.n_pixels or 0) for r in refs) / max(n, 1)
    volume = sum(r.volume_ml or 0.0 for r in refs)
    # voxel variance: the larger of the two (each was already guarded, see tomo_organs)
    var_voxel = max(r.variance_of_mean * effective_resels(r.volume_ml or 0.0, fwhm) for r in refs)
    std = max(r.std for r in refs)
    centre = np.mean([np.asarray(r.center_lps_mm) for r in refs], axis=0)
    return ReferenceRegion(
        organ="kidney",
        mean=float(mean),
        std=float(std),
        variance_of_mean=var_voxel / effective_resels(volume, fwhm),
        variance_method="empirical",
        method=f"two {2.0 * refs[0].radius_mm:g} mm spheres, one per kidney; noise from the "
        "regions, n_eff = V / FWHM^3",
        radius_mm=refs[0].radius_mm,
        n_pixels=n,
        volume_ml=volume,
        center_lps_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
        plausible=True,
        mask=mask,
        warnings=(
            *(w for r in refs for w in r.warnings),
            "no spleen: kidneys used as the grade-4 reference",
        ),
    )


def _check_plausibility(
    references: tuple[ReferenceRegion, ...],
    organs: OrganMaps,
    found: DetectionResult,
    grid: WorkingGrid,
    fwhm: float,
    tomo: TomoConfig,
    review: list[str],
) -> tuple[ReferenceRegion, ...]:
    refs = {r.organ: r for r in references}
    liver = refs.get("liver")
    if liver is None:
        return references
    problems: list[str] = []
    spleen = refs.get("spleen") or refs.get("kidney")
    limit = tomo.plausibility.max_liver_to_spleen_ratio
    if spleen is not None and spleen.mean > 0 and liver.mean >= limit * spleen.mean:
        problems.append(
            f"liver uptake {liver.mean / spleen.mean:.2f} x {spleen.organ} (spleen and kidneys "
            f"are normally well above liver; limit {limit:g}): diffuse liver involvement or a "
            "wrong organ?"
        )
    if organs.liver is not None:
        spacing = grid.spacing_mm
        parenchyma = erode_mm(organs.liver, fwhm / 2.0, spacing)
        lesions = np.zeros(parenchyma.shape, dtype=bool)
        for f in found.findings:
            lesions |= f.working_mask
        if lesions.any():
            parenchyma &= ~dilate_mm(lesions, fwhm, spacing)
        values = organs.organ_image[parenchyma]
        if values.size >= 20:
            p16, p50, p84 = np.percentile(values, [16.0, 50.0, 84.0])
            cv = float((p84 - p16) / 2.0 / p50) if p50 > 0 else math.inf
            if cv > tomo.plausibility.max_liver_cv:
                problems.append(
                    f"liver uptake heterogeneous (robust CV {cv:.2f} > "
                    f"{tomo.plausibility.max_liver_cv:g}): diffuse involvement?"
                )
    if not problems:
        return references
    review.extend(f"liver reference implausible: {p}" for p in problems)
    flagged = dataclasses.replace(liver, plausible=False, warnings=(*liver.warnings, *problems))
    return tuple(flagged if r.organ == "liver" else r for r in references)


def _ct_only_review(
    lesions: tuple[Lesion, ...],
    unreported: tuple[Lesion, ...],
    references: tuple[ReferenceRegion, ...],
    config: ScoringConfig,
) -> tuple[list[str], list[str]]:
    """(warnings, unresolved findings): a warning naming each CT liver lesion without uptake
    (graded, not reported); one unresolved finding when counting them as lesions changes the
    imaging decision (``[tomo.ct_lesions] review_without_uptake``), which sends the study to
    review whatever its imaging status (:func:`~octoscan.models.decision.decide_eligibility`).

    "Counting them" takes each at its measured grade: whether the focus is a lesion at all is
    the open question, and its counting uncertainty on top of that would make nearly every
    faint focus "change" the decision (a grade-1 focus whose interval reaches 0.5 x liver)."""
    described = []
    notes = []
    for les in unreported:
        ratio = f"{les.ratio_liver:.2f} x liver" if les.ratio_liver is not None else "ungraded"
        where = (
            "LPS ({:.0f}, {:.0f}, {:.0f}) mm".format(*les.center_lps_mm)
            if les.center_lps_mm is not None
            else "position unknown"
        )
        text = f"{les.diameter_mm:.0f} mm at {where}, uptake {ratio}, grade {les.grade}"
        described.append(text)
        notes.append(
            f"hypodense liver lesion on CT without a hot spot ({text}); not reported as a lesion"
        )
    without, _ = decide_imaging(lesions, references, config=config)
    at_grade = tuple(
        dataclasses.replace(les, grade_range=(les.grade, les.grade), borderline=False)
        if les.grade is not None
        else les
        for les in unreported
    )
    with_them, _ = decide_imaging((*lesions, *at_grade), references, config=config)
    if without == with_them:
        return notes, []
    return notes, [
        f"CT shows {len(unreported)} hypodense liver lesion(s) without a hot spot "
        f"({'; '.join(described)}): imaging decision {with_them} if they are lesions, "
        f"{without} if not (receptor-negative metastasis, or cyst or haemangioma?)"
    ]


def _grade(
    found: DetectionResult,
    refs: dict[str, ReferenceRegion],
    emission: Volume,
    fwhm: float,
    config: ScoringConfig,
    tomo: TomoConfig,
    modality: str,
) -> tuple[tuple[Lesion, ...], tuple[TomoLesionMetrics, ...]]:
    liver = refs.get("liver")
    grade4 = refs.get("spleen") or refs.get("kidney")
    noise_ref = liver or grade4
    gain = (
        noise_ref.std**2 / noise_ref.mean if noise_ref is not None and noise_ref.mean > 0 else 0.0
    )
    n_eff_peak = effective_resels(tomo.detection.peak_volume_ml, fwhm)
    confidence = config.statistics.confidence_level
    thresholds = config.krenning
    suv = emission.units == "SUVbw"
    lesions: list[Lesion] = []
    metrics: list[TomoLesionMetrics] = []
    for i, f in enumerate(found.findings, start=1):
        var_peak = gain * max(f.peak, 0.0) / n_eff_peak
        var_corr = var_peak / f.recovery**2
        unc = grade_lesion(
            f.peak,
            var_peak,
            liver=liver,
            spleen=grade4,
            thresholds=thresholds,
            confidence=confidence,
            ci_method=TOMO_CI_METHOD,
        )
        cor = grade_lesion(
            f.corrected_peak,
            var_corr,
            liver=liver,
            spleen=grade4,
            thresholds=thresholds,
            confidence=confidence,
            ci_method=TOMO_CI_METHOD,
        )
        graded = cor if tomo.pvc.grade_on == "corrected" else unc
        lesion_warnings = list(f.warnings) + list(graded.warnings)
        lesions.append(
            Lesion(
                id=i,
                diameter_mm=f.diameter_mm,
                peak=f.peak,
                mean=f.mean_value,
                units=emission.units,
                ratio_liver=graded.ratio_liver.ratio if graded.ratio_liver else None,
                ratio_liver_ci=(graded.ratio_liver.low, graded.ratio_liver.high)
                if graded.ratio_liver
                else None,
                ratio_spleen=graded.ratio_spleen.ratio if graded.ratio_spleen else None,
                ratio_spleen_ci=(graded.ratio_spleen.low, graded.ratio_spleen.high)
                if graded.ratio_spleen
                else None,
                spleen_reference_organ=graded.spleen_reference_organ,
                grade=graded.grade,
                grade_range=graded.grade_range,
                borderline=graded.borderline,
                region=f.region,
                grading_method=(
                    f"{modality.upper()} peak ({tomo.detection.peak_volume_ml:g} mL)"
                    + (" at the centre of the CT outline" if f.outline == "ct" else "")
                    + (
                        f", partial-volume corrected (RC {f.recovery:.2f})"
                        if tomo.pvc.grade_on == "corrected"
                        else ", uncorrected"
                    )
                    + " / reference mean"
                ),
                ci_method=TOMO_CI_METHOD,
                source="threshold",
                center_lps_mm=f.center_lps_mm,
                volume_ml=f.volume_ml,
                background=f.background,
                z_score=f.z_score,
                mask=f.mask,
                warnings=tuple(lesion_warnings),
            )
        )
        values = np.asarray(emission.array, dtype=np.float64)[f.mask] if suv else None
        metrics.append(
            TomoLesionMetrics(
                lesion_id=i,
                peak_lps_mm=f.peak_lps_mm,
                ratio_liver_uncorrected=unc.ratio_liver,
                ratio_spleen_uncorrected=unc.ratio_spleen,
                ratio_liver_corrected=cor.ratio_liver,
                ratio_spleen_corrected=cor.ratio_spleen,
                grade_uncorrected=unc.grade,
                grade_corrected=cor.grade,
                recovery=f.recovery,
                segmented_volume_ml=f.segmented_volume_ml,
                corrected_peak=f.corrected_peak,
                max_value=f.max_value,
                contrast=f.contrast,
                suv_max=float(values.max()) if values is not None else None,
                suv_peak=f.peak if suv else None,
                suv_mean=float(values.mean()) if values is not None else None,
            )
        )
    return tuple(lesions), tuple(metrics)


def _organ_regions(
    organs: OrganMaps, grid: WorkingGrid, native: np.ndarray
) -> tuple[OrganRegion, ...]:
    spacing = tuple(float(v) for v in np.linalg.norm(grid.native_affine[:3, :3], axis=0))
    vox = voxel_volume_ml((spacing[0], spacing[1], spacing[2]))
    items: list[tuple[str, np.ndarray, str]] = []
    outline = "CT" if organs.method == METHOD_CT else "emission image"
    if organs.liver is not None:
        items.append(("liver", organs.liver, f"largest liver-like organ on the right ({outline})"))
    if organs.spleen is not None:
        items.append(("spleen", organs.spleen, f"avid organ on the left, posterior ({outline})"))
    sides = []
    for k in organs.kidneys:
        idx = np.argwhere(k).mean(axis=0)
        x = float((idx @ grid.affine[:3, :3].T + grid.affine[:3, 3])[0])
        sides.append("kidney_left" if x > organs.body.midline_x_mm else "kidney_right")
    for name, k in zip(sides, organs.kidneys, strict=True):
        items.append((name, k, "posterior avid organ beside the spine (emission image)"))
    if organs.bladder is not None:
        items.append(("bladder", organs.bladder, "low midline avid organ (emission image)"))
    out: list[OrganRegion] = []
    affine = grid.native_affine
    for name, mask_w, method in items:
        mask = grid.expand(mask_w)
        values = native[mask]
        idx = np.argwhere(mask).mean(axis=0)
        centre = idx @ affine[:3, :3].T + affine[:3, 3]
        out.append(
            OrganRegion(
                organ=name,
                center_rc=None,
                mean=float(values.mean()) if values.size else 0.0,
                method=method,
                volume_ml=float(mask.sum()) * vox,
                center_lps_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
                mask=mask,
            )
        )
    return tuple(out)
