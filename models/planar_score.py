"""Planar scoring end to end: images in, references, graded lesions and a decision out.

:func:`score_planar` is pure (no files, no logging configuration): it picks the time point
and the anterior/posterior pair, checks the tracer, forms the conjugate-view geometric mean,
locates the organs, detects lesions, places the reference regions, grades every lesion with
its interval and decides. Positions and masks in the result are on the anterior view's grid
(or the mirrored posterior's, for a posterior-only study: ``PlanarScore.grid``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from octoscan.imaging.errors import InvalidInputError
from octoscan.imaging.types import PlanarImage, SeriesKind, View
from octoscan.models.config import ScoringConfig, config_hash
from octoscan.models.decision import decide_eligibility
from octoscan.models.grading import grade_lesion, grading_method
from octoscan.models.planar_align import ConjugateImage, conjugate_view
from octoscan.models.planar_lesions import Detection, apparent_peak, find_lesions
from octoscan.models.planar_organs import (
    OrganMap,
    ReferencePlacement,
    circle_mask,
    find_organs,
    place_reference,
)
from octoscan.models.stats import (
    EMPIRICAL_CI_METHOD,
    POISSON_CI_METHOD,
    empirical_noise_gain,
    fwhm_to_sigma_px,
    region_mean_variance,
    smooth,
    smooth_variance,
)
from octoscan.models.tracer import check_tracer
from octoscan.models.types import Lesion, PlanarScore, ReferenceRegion, SetAsideSpot

_TIME_POINT_ROUND_H = 1.0  # images within this many hours belong to one time point
_HETEROGENEITY_FWHM_MM = 30.0  # high-pass scale of the liver heterogeneity measure
_UNITS = "counts/pixel (conjugate-view geometric mean)"
_UNITS_SINGLE = "counts/pixel ({view} view)"


def select_planar_views(
    images: Sequence[PlanarImage], *, preferred_hours: float
) -> tuple[PlanarImage | None, PlanarImage | None, tuple[str, ...]]:
    """Pick the anterior and posterior views of the time point closest to ``preferred_hours``.

    Returns (anterior, posterior, warnings); either view may be None (a single-view study).
    Within a time point whole-body images beat static ones, count data beats derived images,
    and a posterior from the anterior's own series beats one from another series. Images of
    unknown view are used, as a single view, only when no anterior or posterior exists.
    Raises :class:`InvalidInputError` when no image is usable.
    """
    usable = [im for im in images if im.pixel_spacing_mm is not None]
    if not usable:
        raise InvalidInputError(
            "no planar image with a known pixel spacing: sizes in mm cannot be measured",
            code="no_pixel_spacing",
        )
    warnings: list[str] = []
    dropped = len(images) - len(usable)
    if dropped:
        warnings.append(f"{dropped} planar image(s) without pixel spacing ignored")

    def key(im: PlanarImage) -> float | None:
        h = im.acquisition.hours_post_injection
        return None if h is None else round(h / _TIME_POINT_ROUND_H) * _TIME_POINT_ROUND_H

    timed = sorted({k for k in (key(im) for im in usable) if k is not None})
    if timed:
        chosen = min(timed, key=lambda h: (abs(h - preferred_hours), -h))
        group = [im for im in usable if key(im) == chosen]
        others = [h for h in timed if h != chosen]
        if others:
            warnings.append(
                f"images at {chosen:g} h p.i. scored (closest to {preferred_hours:g} h); "
                f"other time points present: {', '.join(f'{h:g} h' for h in others)}"
            )
        untimed = [im for im in usable if key(im) is None]
        if untimed:
            warnings.append(f"{len(untimed)} image(s) of unknown time point not used")
    else:
        group = usable
        warnings.append("time after injection unknown for every planar image")

    def rank(im: PlanarImage) -> tuple[int, int, float]:
        return (
            int(im.kind == SeriesKind.PLANAR_WHOLE_BODY),
            int(im.is_count_data),
            im.total_counts,
        )

    ants = sorted((im for im in group if im.view == View.ANTERIOR), key=rank, reverse=True)
    posts = sorted((im for im in group if im.view == View.POSTERIOR), key=rank, reverse=True)
    ant = ants[0] if ants else None
    post = None
    if posts:
        if ant is not None:
            same = [
                p
                for p in posts
                if p.source.series_instance_uid == ant.source.series_instance_uid
                and p.counts.shape == ant.counts.shape
            ]
            post = same[0] if same else posts[0]
        else:
            post = posts[0]
    if ant is None and post is None:
        unknown = sorted(group, key=rank, reverse=True)
        return unknown[0], None, tuple(warnings)
    return ant, post, tuple(warnings)


def _to_stored_rc(organs: OrganMap, rc: tuple[float, float]) -> tuple[float, float]:
    r, c = organs.frame.point_to_stored(rc)
    return (round(r, 2), round(c, 2))


def _reference_region(
    placement: ReferencePlacement,
    organ_mask: np.ndarray,
    img: np.ndarray,
    var: np.ndarray | None,
    organs: OrganMap,
    *,
    spacing_mm: tuple[float, float],
    name: str,
    extra_method: str = "",
) -> ReferenceRegion:
    shape = (int(img.shape[0]), int(img.shape[1]))
    circle = circle_mask(shape, placement.center_rc, placement.radius_mm, spacing_mm)
    inside = circle & organ_mask
    mask = inside if int(inside.sum()) >= max(4, int(0.5 * circle.sum())) else circle
    mean, std, var_mean, n = region_mean_variance(img, var, mask)
    return ReferenceRegion(
        organ=name,
        mean=mean,
        std=std,
        variance_of_mean=var_mean,
        variance_method="poisson" if var is not None else "empirical",
        method=placement.method + extra_method,
        radius_mm=placement.radius_mm,
        n_pixels=n,
        center_rc=_to_stored_rc(
            organs, (float(placement.center_rc[0]), float(placement.center_rc[1]))
        ),
        mask=organs.frame.to_stored(mask),
        warnings=placement.warnings,
    )


def _near(mask: np.ndarray, margin_mm: float, spacing_mm: tuple[float, float]) -> np.ndarray:
    if not mask.any():
        return mask
    dist = ndimage.distance_transform_edt(~mask, sampling=spacing_mm)
    return dist <= margin_mm


def _liver_excess_cv(
    img: np.ndarray,
    var: np.ndarray | None,
    liver: np.ndarray,
    exclusion: np.ndarray,
    spacing_mm: tuple[float, float],
) -> float | None:
    """Coefficient of variation of the liver's fine structure beyond counting noise."""
    inner = ndimage.binary_erosion(liver, iterations=max(1, round(10.0 / min(spacing_mm))))
    inner &= ~exclusion
    if int(inner.sum()) < 20:
        return None
    s1 = smooth(img, fwhm_to_sigma_px(10.0, spacing_mm))
    s2 = smooth(img, fwhm_to_sigma_px(_HETEROGENEITY_FWHM_MM, spacing_mm))
    hp = (s1 - s2)[inner]
    noise = (
        float(smooth_variance(var, fwhm_to_sigma_px(10.0, spacing_mm))[inner].mean())
        if var is not None
        else 0.0
    )
    level = float(s2[inner].mean())
    if level <= 0:
        return None
    return math.sqrt(max(float(hp.var()) - noise, 0.0)) / level


def _references(
    conj: ConjugateImage,
    organs: OrganMap,
    detection: Detection,
    config: ScoringConfig,
) -> tuple[tuple[ReferenceRegion, ...], tuple[str, ...]]:
    frame = organs.frame
    spacing = conj.pixel_spacing_mm
    rcfg = config.planar.references
    pcfg = config.planar.plausibility
    img = frame.to_canonical(conj.image)
    var = frame.to_canonical(conj.variance) if conj.variance is not None else None
    warnings: list[str] = []
    lesions = np.zeros(img.shape, dtype=bool)
    for spot in detection.spots:
        lesions |= frame.to_canonical(spot.mask)
    lesion_zone = _near(lesions, rcfg.lesion_margin_mm, spacing)
    hot_organs = np.zeros(img.shape, dtype=bool)
    for name in ("spleen", "kidney_left", "kidney_right", "bladder"):
        m = organs.canonical_mask(name)
        if m is not None:
            hot_organs |= m
    hot_zone = _near(hot_organs, rcfg.organ_margin_mm, spacing)
    refs: list[ReferenceRegion] = []

    liver_ref: ReferenceRegion | None = None
    liver_mask = organs.canonical_mask("liver")
    if liver_mask is None:
        warnings.append("no liver reference: the liver was not located")
    else:
        cols = np.flatnonzero(liver_mask.any(axis=0))
        liver_rr, liver_cc = np.nonzero(liver_mask)
        # lateral to the outline's centre and off the spine (canonical frame: the liver side
        # is the lower columns)
        centre_col = (
            min(
                float(liver_cc.mean()),
                organs.midline_col - rcfg.liver_min_midline_offset_mm / spacing[1],
            )
            if cols.size
            else None
        )
        # the cranial half of the right lobe: the right kidney and the hepatic flexure of the
        # colon lie against the inferior surface and overlap it on planar views
        centre_row = (
            float(liver_rr.mean()) if cols.size and rcfg.liver_prefer_cranial_half else None
        )
        placement = place_reference(
            liver_mask,
            lesion_zone | hot_zone,
            img,
            var,
            organ="liver",
            diameter_mm=rcfg.liver_diameter_mm,
            edge_margin_mm=rcfg.edge_margin_mm,
            spacing_mm=spacing,
            prefer_lateral_of_col=centre_col,
            prefer_lower_col=True,
            prefer_above_row=centre_row,
        )
        if placement is None:
            warnings.append(
                "no liver reference: no normal liver left outside lesions and hot organs"
            )
        else:
            liver_ref = _reference_region(
                placement, liver_mask, img, var, organs, spacing_mm=spacing, name="liver"
            )
            if liver_ref.n_pixels is not None and liver_ref.n_pixels < rcfg.min_pixels:
                warnings.append(
                    f"no liver reference: only {liver_ref.n_pixels} pixels of normal liver "
                    f"(need {rcfg.min_pixels})"
                )
                liver_ref = None

    spleen_ref: ReferenceRegion | None = None
    spleen_mask = organs.canonical_mask("spleen")
    if spleen_mask is not None:
        placement = place_reference(
            spleen_mask,
            lesion_zone,
            img,
            var,
            organ="spleen",
            diameter_mm=rcfg.spleen_diameter_mm,
            edge_margin_mm=rcfg.edge_margin_mm,
            spacing_mm=spacing,
        )
        if placement is not None:
            spleen_ref = _reference_region(
                placement, spleen_mask, img, var, organs, spacing_mm=spacing, name="spleen"
            )
    kidney_ref: ReferenceRegion | None = None
    if spleen_ref is None:
        for name in ("kidney_left", "kidney_right"):
            km = organs.canonical_mask(name)
            if km is None:
                continue
            placement = place_reference(
                km,
                lesion_zone,
                img,
                var,
                organ=f"{'left' if name == 'kidney_left' else 'right'} kidney",
                diameter_mm=rcfg.kidney_diameter_mm,
                edge_margin_mm=rcfg.edge_margin_mm,
                spacing_mm=spacing,
            )
            if placement is not None:
                kidney_ref = _reference_region(
                    placement,
                    km,
                    img,
                    var,
                    organs,
                    spacing_mm=spacing,
                    name="kidney",
                    extra_method=" (spleen not found: kidney used as the grade-4 reference)",
                )
                side = "left" if name == "kidney_left" else "right"
                warnings.append(f"spleen not found: the {side} kidney is the grade-4 reference")
                break
        if kidney_ref is None:
            warnings.append("neither spleen nor kidney reference: grade 4 cannot be assigned")

    if liver_ref is not None:
        problems: list[str] = []
        if frame.flip_cols:
            # the scorer's own organ naming contradicts the usual anatomy: a mislabelled or
            # mirrored view, situs inversus, or (more often) a hot organ taken for the liver
            problems.append(
                "the liver was located on the image right of the anterior view: laterality "
                "and which organ is the liver need a reader's check"
            )
        upper = spleen_ref
        if upper is not None and liver_ref.mean >= pcfg.max_liver_to_spleen_ratio * upper.mean:
            problems.append(
                f"liver reference ({liver_ref.mean:.1f}) at or above "
                f"{pcfg.max_liver_to_spleen_ratio:g} x spleen ({upper.mean:.1f}): diffuse liver "
                "involvement or an atrophic spleen?"
            )
        assert liver_mask is not None
        cv = _liver_excess_cv(img, var, liver_mask, lesion_zone | hot_zone, spacing)
        if cv is not None and cv > pcfg.max_liver_excess_cv:
            problems.append(
                f"liver heterogeneous beyond counting noise (excess CV {cv:.2f} > "
                f"{pcfg.max_liver_excess_cv:g}): diffuse involvement?"
            )
        if problems:
            liver_ref = ReferenceRegion(
                **{
                    **liver_ref.__dict__,
                    "plausible": False,
                    "warnings": (*liver_ref.warnings, *problems),
                }
            )
            warnings.extend(f"implausible liver reference: {p}" for p in problems)
        refs.append(liver_ref)
    if spleen_ref is not None:
        refs.append(spleen_ref)
    if kidney_ref is not None:
        refs.append(kidney_ref)
    return tuple(refs), tuple(warnings)


def _single_view_references(
    references: tuple[ReferenceRegion, ...], view: str
) -> tuple[tuple[ReferenceRegion, ...], str]:
    """References of a single-view study, the liver marked as not comparable (not plausible).

    Without the conjugate view a lesion's ratio to liver also reflects the two depths (the
    geometric mean cancels attenuation, one view does not), so the decision cannot rest on
    it: the study goes to review (``[planar.plausibility] single_view_reference_comparable``).
    """
    problem = (
        f"only the {view} view: uptake ratios are not corrected for depth (no conjugate view), "
        "so lesions cannot be compared reliably with the liver"
    )
    out = tuple(
        ReferenceRegion(**{**r.__dict__, "plausible": False, "warnings": (*r.warnings, problem)})
        if r.organ == "liver"
        else r
        for r in references
    )
    return out, f"single view: {problem}; the study needs a reader"


def score_planar(
    images: Sequence[PlanarImage],
    config: ScoringConfig,
    *,
    assume_sstr: bool = False,
) -> PlanarScore:
    """Score the planar images of one study.

    ``images``: every planar image of the study (any time points, views as loaded; the
    posterior is not mirrored). Raises :class:`UnsupportedAcquisitionError` for a non-SSTR
    or (without ``assume_sstr``) unidentified tracer, :class:`InvalidInputError` when no
    image is usable.
    """
    ant, post, sel_warnings = select_planar_views(
        images, preferred_hours=config.planar.time_point.preferred_hours_post_injection
    )
    main = ant if ant is not None else post
    assert main is not None
    tracer = check_tracer(main.acquisition, assume_sstr=assume_sstr)
    warnings: list[str] = [*sel_warnings, *tracer.warnings]
    for im in (ant, post):
        if im is not None:
            warnings.extend(im.warnings)
    hours = main.acquisition.hours_post_injection
    if hours is not None and hours < config.planar.time_point.early_before_hours:
        warnings.append(
            f"early time point ({hours:.1f} h p.i.): the Krenning scale was defined on 24 h "
            "images; grades are reported for this time point"
        )

    conj = conjugate_view(ant, post, config=config.planar.alignment)
    warnings.extend(conj.warnings)
    spacing = conj.pixel_spacing_mm
    both = conj.anterior is not None and conj.posterior is not None
    organs = find_organs(
        conj.image,
        spacing_mm=spacing,
        config=config.planar.organs,
        anterior=conj.anterior if both else None,
        posterior=conj.posterior if both else None,
    )
    warnings.extend(organs.warnings)
    detection = find_lesions(
        conj.image,
        conj.variance,
        organs,
        spacing_mm=spacing,
        config=config.planar.detection,
        anterior=conj.anterior if both else None,
        posterior=conj.posterior if both else None,
    )
    warnings.extend(detection.warnings)
    references, ref_warnings = _references(conj, organs, detection, config)
    warnings.extend(ref_warnings)
    liver = next((r for r in references if r.organ == "liver"), None)
    grade4 = next((r for r in references if r.organ in ("spleen", "kidney")), None)
    spots = list(detection.spots)
    if liver is not None and not liver.plausible:
        limit = config.planar.detection.min_contrast_in_implausible_liver
        faint = [s for s in spots if s.region == "liver" and s.contrast < limit]
        if faint:
            spots = [s for s in spots if s not in faint]
            warnings.append(
                f"{len(faint)} faint focal spot(s) inside the implausible liver not reported "
                f"as separate lesions (contrast below {limit:g}); the liver needs a reader"
            )

    if (
        len(conj.views_used) == 1
        and not config.planar.plausibility.single_view_reference_comparable
    ):
        references, single_warning = _single_view_references(references, conj.views_used[0])
        warnings.append(single_warning)
        liver = next((r for r in references if r.organ == "liver"), None)

    ci_method = POISSON_CI_METHOD
    gain = None
    if conj.variance is None:
        ci_method = EMPIRICAL_CI_METHOD
        base = liver if liver is not None else grade4
        if base is not None and base.mask is not None and base.mean > 0:
            gain = empirical_noise_gain(conj.image, base.mask)
        warnings.append(
            "no counting statistics (derived image): ratio intervals from the reference "
            "region's own pixel noise, approximate"
        )
    method = grading_method(conj.views_used, hours)
    lesions: list[Lesion] = []
    ordered = sorted(spots, key=lambda s: organs.frame.point_to_canonical(s.center_rc))
    for k, spot in enumerate(ordered, start=1):
        peak_var = spot.peak_variance
        if conj.variance is None:
            peak_rc = (round(spot.center_rc[0]), round(spot.center_rc[1]))
            _, peak_var = apparent_peak(
                conj.image,
                (gain or 0.0) * np.clip(conj.image, 0.0, None),
                peak_rc,
                spacing_mm=spacing,
                fwhm_mm=config.planar.detection.peak_fwhm_mm,
            )
        g = grade_lesion(
            spot.peak,
            peak_var,
            liver=liver,
            spleen=grade4,
            thresholds=config.krenning,
            confidence=config.statistics.confidence_level,
            ci_method=ci_method,
        )
        lesions.append(
            Lesion(
                id=k,
                diameter_mm=spot.diameter_mm,
                peak=spot.peak,
                mean=spot.mean,
                units=_UNITS if both else _UNITS_SINGLE.format(view=conj.views_used[0]),
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
                region=spot.region,
                grading_method=method,
                ci_method=ci_method,
                source="threshold",
                center_rc=(round(spot.center_rc[0], 2), round(spot.center_rc[1], 2)),
                area_cm2=spot.area_cm2,
                background=spot.background,
                z_score=round(spot.z_score, 2),
                mask=spot.mask,
                warnings=g.warnings,
            )
        )
    decision = decide_eligibility(lesions, references, config=config)
    return PlanarScore(
        tracer=tracer.tracer,
        tracer_assumed=tracer.assumed,
        views_used=conj.views_used,
        grid=conj.grid,
        hours_post_injection=hours,
        grading_method=method,
        ci_method=ci_method,
        pixel_spacing_mm=spacing,
        posterior_shift_rc=conj.shift_rc,
        orientation=organs.orientation,
        organs=organs.organs,
        references=references,
        lesions=tuple(lesions),
        decision=decision,
        config_name=config.name,
        config_hash=config_hash(config),
        series_instance_uids=tuple(
            dict.fromkeys(im.source.series_instance_uid for im in (ant, post) if im is not None)
        ),
        warnings=tuple(dict.fromkeys(warnings)),
        scoring_image=conj.image.astype(np.float32),
        variance_image=conj.variance.astype(np.float32) if conj.variance is not None else None,
        set_aside=tuple(
            SetAsideSpot(spot.center_rc, spot.organ, round(spot.z_score, 2))
            for spot in detection.set_aside
        ),
    )
