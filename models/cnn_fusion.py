"""Fusion of the planar CNN's lesion map with the threshold scorer's lesions.

Rules (issue 10):

* A threshold lesion the network places in physiological uptake is set aside: at least
  ``physiological_min_share`` of its mask is labelled spleen, kidney, bladder or bowel by the
  CNN (per-pixel most probable class) and the lesion probability stays below
  ``physiological_max_probability`` everywhere in it. The threshold detector's organ
  outlines miss kidney poles and bowel loops that the network labels well (liver/spleen
  Dice 0.96/0.95 against 0.72/0.83); the spot joins ``set_aside`` with the reason, the
  result's warnings name it, and when leaving it out changes the imaging decision the
  study goes to ``needs_review`` (the two methods disagree on something that matters).
* CNN lesion components: connected regions where the lesion probability is at least
  ``min_probability``, of at least ``min_area_mm2``, outside the spleen, kidney and bladder
  masks the threshold scorer found (physiological uptake is never a lesion).
* A component that overlaps a threshold lesion's mask, or whose peak lies within
  ``match_distance_mm`` of its centre, confirms it: that lesion becomes ``source="both"``.
* A component matching none is *proposed* only when the network is confident (its maximum
  lesion probability at least ``propose_min_probability``), the image shows an excess there
  (z of the detection-smoothed image over the threshold detector's line-opening background,
  with the Poisson noise of the scoring image, at least ``propose_min_z_score``: lower than
  the threshold detector's own criterion, which is where the network adds), and no spot the
  threshold detector set aside as physiological (thyroid, pituitary, symmetric uptake, a hot
  organ's flank ...) lies within ``set_aside_distance_mm`` of its peak: the network is
  trained on lesions and organs, not on every physiological structure. Its peak is the
  maximum of the scoring image smoothed with ``config.planar.detection.peak_fwhm_mm``
  inside the component, its apparent
  peak and variance come from :func:`octoscan.models.planar_lesions.apparent_peak` and its
  grade from :func:`octoscan.models.grading.grade_lesion` against the same references:
  grades always come from measured ratios with their intervals, never from the network.
* A lesion found by one source only *matters for the decision* when the imaging decision
  without it differs from the decision with it; each such lesion is an unresolved finding
  and the study goes to ``needs_review`` whatever the imaging status
  (:func:`octoscan.models.decision.decide_eligibility`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from octoscan.models.cnn_model import CLASSES, LESION_CLASS
from octoscan.models.config import ScoringConfig
from octoscan.models.decision import decide_eligibility, decide_imaging
from octoscan.models.grading import grade_lesion
from octoscan.models.planar_lesions import apparent_peak, background
from octoscan.models.stats import fwhm_to_sigma_px, smooth, smooth_variance
from octoscan.models.types import Lesion, PlanarScore, SetAsideSpot

_PHYSIOLOGICAL = ("spleen", "kidney_left", "kidney_right", "bladder")
_CNN_PHYSIOLOGICAL = ("spleen", "kidney", "bladder", "bowel")


@dataclass(frozen=True)
class FusionConfig:
    """Thresholds of the fusion (probability 0-1, mm, mm^2)."""

    min_probability: float = 0.5
    min_area_mm2: float = 40.0
    match_distance_mm: float = 15.0
    propose_min_probability: float = 0.9
    propose_min_z_score: float = 1.0
    set_aside_distance_mm: float = 20.0
    physiological_min_share: float = 0.5
    physiological_max_probability: float = 0.1

    def __post_init__(self) -> None:
        for name in (
            "min_probability",
            "propose_min_probability",
            "physiological_min_share",
            "physiological_max_probability",
        ):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"FusionConfig.{name} = {value}; expected 0-1 exclusive")
        sizes = (self.min_area_mm2, self.match_distance_mm, self.set_aside_distance_mm)
        if min(sizes) < 0.0:
            raise ValueError("FusionConfig sizes must be >= 0 mm / mm^2")


def cnn_components(
    lesion_probability: np.ndarray,
    *,
    spacing_mm: tuple[float, float],
    exclude: np.ndarray | None,
    fusion: FusionConfig,
) -> list[np.ndarray]:
    """Boolean masks of the CNN's lesion components (see module docstring)."""
    mask = lesion_probability >= fusion.min_probability
    if exclude is not None:
        mask &= ~exclude
    lab, n = ndimage.label(mask)
    pixel_mm2 = spacing_mm[0] * spacing_mm[1]
    out = []
    for k in range(1, n + 1):
        comp = lab == k
        if comp.sum() * pixel_mm2 >= fusion.min_area_mm2:
            out.append(comp)
    return out


def _region(score: PlanarScore, r: int, c: int) -> str:
    for organ in score.organs:
        mask = organ.mask
        if mask is not None and mask.shape == score.scoring_image.shape and mask[r, c]:
            return organ.organ
    return "cnn_extra_organ"


def fuse_lesions(
    score: PlanarScore,
    prediction: object,
    config: ScoringConfig,
    *,
    fusion: FusionConfig | None = None,
) -> PlanarScore:
    """A new PlanarScore with the CNN's lesions fused in (see module docstring).

    ``prediction``: a :class:`octoscan.models.cnn_infer.CnnPrediction` on the score's grid
    (its ``probabilities`` (7, rows, cols) with class order ``CLASSES``).
    """
    fusion = fusion or FusionConfig()
    probs = np.asarray(prediction.probabilities)  # type: ignore[attr-defined]
    image = np.asarray(score.scoring_image, dtype=np.float64)
    if probs.shape != (len(CLASSES), *image.shape):
        raise ValueError(
            f"CNN probabilities of shape {probs.shape}; expected {(len(CLASSES), *image.shape)} "
            "(the scoring image's grid)"
        )
    spacing = score.pixel_spacing_mm
    px_mm = math.sqrt(spacing[0] * spacing[1])
    exclude = np.zeros(image.shape, dtype=bool)
    for organ in score.organs:
        if (
            organ.organ in _PHYSIOLOGICAL
            and organ.mask is not None
            and organ.mask.shape == image.shape
        ):
            exclude |= organ.mask
    classes = probs.argmax(axis=0)
    physiological: list[tuple[Lesion, str]] = []
    candidates: list[Lesion] = []
    for les in score.lesions:
        organ = physiological_by_cnn(les.mask, probs, classes, fusion)
        if organ is None or les.center_rc is None:
            candidates.append(les)
        else:
            physiological.append((les, organ))
    cnn_aside = tuple(
        SetAsideSpot(
            center_rc=les.center_rc,
            reason=f"{organ} on the CNN organ map (threshold grade {les.grade})",
            z_score=les.z_score if les.z_score is not None else math.nan,
        )
        for les, organ in physiological  # each has a centre (the loop above)
    )
    set_aside = (*score.set_aside, *cnn_aside)
    comps = cnn_components(probs[LESION_CLASS], spacing_mm=spacing, exclude=exclude, fusion=fusion)
    det = config.planar.detection
    smoothed = smooth(image, fwhm_to_sigma_px(det.smoothing_fwhm_mm, spacing))
    liver = score.reference("liver")
    grade4 = score.reference("spleen") or score.reference("kidney")
    confirmed: set[int] = set()
    proposed: list[Lesion] = []
    z_map: np.ndarray | None = None  # computed on the first candidate proposal
    # the peak: where the image smoothed to the apparent-peak resolution is highest in the
    # component (the detection smoothing would pull it towards a hotter neighbour)
    peak_image = smooth(image, fwhm_to_sigma_px(det.peak_fwhm_mm, spacing))
    for comp in comps:
        flat = int(np.argmax(np.where(comp, peak_image, -np.inf)))
        peak_rc = (flat // image.shape[1], flat % image.shape[1])
        hit = [
            i
            for i, les in enumerate(candidates)
            if (les.mask is not None and les.mask.shape == comp.shape and (les.mask & comp).any())
            or (
                les.center_rc is not None
                and math.hypot(les.center_rc[0] - peak_rc[0], les.center_rc[1] - peak_rc[1]) * px_mm
                <= fusion.match_distance_mm
            )
        ]
        if hit:
            confirmed.update(hit)
            continue
        variance = score.variance_image
        if variance is None:
            variance = _empirical_variance(score)
        if float(probs[LESION_CLASS][comp].max()) < fusion.propose_min_probability:
            continue
        if _near_set_aside(set_aside, peak_rc, spacing, fusion.set_aside_distance_mm):
            continue
        if z_map is None:
            z_map = _excess_z(smoothed, variance, spacing, config)
        if z_map[peak_rc] < fusion.propose_min_z_score:
            continue
        peak, peak_var = apparent_peak(
            image, variance, peak_rc, spacing_mm=spacing, fwhm_mm=det.peak_fwhm_mm
        )
        g = grade_lesion(
            peak,
            peak_var,
            liver=liver,
            spleen=grade4,
            thresholds=config.krenning,
            confidence=config.statistics.confidence_level,
            ci_method=score.ci_method,
        )
        area_mm2 = float(comp.sum()) * spacing[0] * spacing[1]
        units = score.lesions[0].units if score.lesions else _units(score)
        proposed.append(
            Lesion(
                id=0,
                diameter_mm=round(2.0 * math.sqrt(area_mm2 / math.pi), 1),
                peak=peak,
                mean=float(image[comp].mean()),
                units=units,
                ratio_liver=g.ratio_liver.ratio if g.ratio_liver else None,
                ratio_liver_ci=(g.ratio_liver.low, g.ratio_liver.high) if g.ratio_liver else None,
                ratio_spleen=g.ratio_spleen.ratio if g.ratio_spleen else None,
                ratio_spleen_ci=(
                    (g.ratio_spleen.low, g.ratio_spleen.high) if g.ratio_spleen else None
                ),
                spleen_reference_organ=g.spleen_reference_organ,
                grade=g.grade,
                grade_range=g.grade_range,
                borderline=g.borderline,
                region=_region(score, *peak_rc),
                grading_method=score.grading_method,
                ci_method=score.ci_method,
                source="cnn",
                center_rc=(float(peak_rc[0]), float(peak_rc[1])),
                area_cm2=round(area_mm2 / 100.0, 2),
                mask=comp,
                warnings=(*g.warnings, "proposed by the CNN only; graded on measured ratios"),
            )
        )
    kept = [
        replace(les, source="both") if i in confirmed else les for i, les in enumerate(candidates)
    ]
    merged = kept + proposed
    merged.sort(key=lambda les: les.center_rc or (0.0, 0.0))
    merged = [replace(les, id=k) for k, les in enumerate(merged, start=1)]
    status, _ = decide_imaging(merged, score.references, config=config)
    reasons = _review_reasons(merged, status, score, config) + _physiological_reasons(
        merged, status, physiological, score, config
    )
    notes = tuple(
        f"CNN fusion: threshold spot at row {spot.center_rc[0]:.0f}, column "
        f"{spot.center_rc[1]:.0f} ({les.region}, grade {les.grade}, {les.diameter_mm:.0f} mm) "
        f"set aside as {organ} uptake on the CNN organ map"
        for spot, (les, organ) in zip(cnn_aside, physiological, strict=True)
    )
    decision = decide_eligibility(
        merged, score.references, config=config, unresolved_findings=reasons
    )
    return replace(
        score,
        lesions=tuple(merged),
        set_aside=set_aside,
        decision=decision,
        warnings=(*score.warnings, *notes, *(f"CNN fusion: {r}" for r in reasons)),
    )


def physiological_by_cnn(
    mask: np.ndarray | None, probs: np.ndarray, classes: np.ndarray, fusion: FusionConfig
) -> str | None:
    """The physiological organ (spleen, kidney, bladder, bowel) the CNN labels a spot as, or
    None: the organ holding the largest share of the spot's mask when physiological classes
    hold at least ``fusion.physiological_min_share`` of it and the lesion probability stays
    below ``fusion.physiological_max_probability`` everywhere in it (module docstring)."""
    if mask is None or mask.shape != classes.shape or not mask.any():
        return None
    if float(probs[LESION_CLASS][mask].max()) >= fusion.physiological_max_probability:
        return None
    labels = classes[mask]
    shares = {name: float((labels == CLASSES.index(name)).mean()) for name in _CNN_PHYSIOLOGICAL}
    if sum(shares.values()) < fusion.physiological_min_share:
        return None
    return max(shares, key=lambda name: shares[name])


def _near_set_aside(
    spots: tuple[SetAsideSpot, ...],
    rc: tuple[int, int],
    spacing_mm: tuple[float, float],
    distance_mm: float,
) -> bool:
    """True when a set-aside spot (physiological uptake) lies within ``distance_mm``."""
    sp = spacing_mm
    return any(
        math.hypot((s.center_rc[0] - rc[0]) * sp[0], (s.center_rc[1] - rc[1]) * sp[1])
        <= distance_mm
        for s in spots
    )


def _excess_z(
    smoothed: np.ndarray, variance: np.ndarray, spacing: tuple[float, float], config: ScoringConfig
) -> np.ndarray:
    """z of the detection-smoothed image over the threshold detector's local background
    (line openings, :func:`octoscan.models.planar_lesions.background`), with the noise of the
    smoothed image from the per-pixel variance (no bias correction: a lower bar than the
    detector's own)."""
    det = config.planar.detection
    sigma = fwhm_to_sigma_px(det.smoothing_fwhm_mm, spacing)
    bg = np.minimum(
        background(smoothed, radius_mm=det.background_radius_mm, spacing_mm=spacing), smoothed
    )
    noise = np.sqrt(
        np.maximum(smooth_variance(np.asarray(variance, dtype=np.float64), sigma), 1e-12)
    )
    return (smoothed - bg) / noise


def _units(score: PlanarScore) -> str:
    if len(score.views_used) == 2:
        return "counts/pixel (conjugate-view geometric mean)"
    return f"counts/pixel ({score.views_used[0]} view)"


def _empirical_variance(score: PlanarScore) -> np.ndarray:
    """Per-pixel variance for an image without counting statistics: the liver reference's
    pixel variance scaled with the image value (zero when no reference exists)."""
    image = np.clip(np.asarray(score.scoring_image, dtype=np.float64), 0.0, None)
    ref = score.reference("liver") or score.reference("spleen") or score.reference("kidney")
    if ref is None or ref.mean <= 0.0:
        return np.zeros_like(image)
    return (ref.std**2 / ref.mean) * image


def _review_reasons(
    lesions: list[Lesion], with_all: str, score: PlanarScore, config: ScoringConfig
) -> tuple[str, ...]:
    """One reason per single-source lesion whose presence changes the imaging decision
    (``with_all``: the imaging status with every lesion of ``lesions``)."""
    reasons = []
    for les in lesions:
        if les.source == "both":
            continue
        others = [x for x in lesions if x is not les]
        without, _ = decide_imaging(others, score.references, config=config)
        if without != with_all:
            reasons.append(
                f"lesion {les.id} ({les.region}, grade {les.grade}) found by the "
                f"{les.source} detector only: imaging decision {with_all} with it, "
                f"{without} without it"
            )
    return tuple(reasons)


def _physiological_reasons(
    lesions: list[Lesion],
    without: str,
    physiological: list[tuple[Lesion, str]],
    score: PlanarScore,
    config: ScoringConfig,
) -> tuple[str, ...]:
    """One reason when setting aside the spots the CNN calls physiological changes the
    imaging decision (``without``: the status of ``lesions``, the spots left out)."""
    if not physiological:
        return ()
    spots = [les for les, _ in physiological]
    with_them, _ = decide_imaging([*lesions, *spots], score.references, config=config)
    if without == with_them:
        return ()
    named = ", ".join(f"{organ} (threshold grade {les.grade})" for les, organ in physiological)
    return (
        f"spots the threshold detector reported were set aside as physiological uptake on the "
        f"CNN organ map ({named}): imaging decision {without} without them, {with_them} with "
        "them",
    )
