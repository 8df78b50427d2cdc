"""Typed results of the scoring models: organs, references, lesions, decisions.

Conventions (as in ``octoscan.imaging.types``): planar positions are (row, col) pixel indices
on the *anterior view's* pixel grid (0-based, pixel centres at integers); tomographic
positions are DICOM LPS millimetres. Masks are boolean arrays on the grid of the image they
were found on and are left out of equality and repr. A value that does not apply (a volume on
a planar image, a spleen ratio without a spleen) is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LESION_SOURCES: tuple[str, ...] = ("threshold", "cnn", "both")
DECISION_STATUSES: tuple[str, ...] = ("eligible", "not_eligible", "needs_review")
CRITERION_VERDICTS: tuple[str, ...] = ("pass", "fail", "review", "not_assessed")


@dataclass(frozen=True)
class OrganRegion:
    """An organ located on an image.

    ``mean`` is the mean of the scoring image inside ``mask`` (counts per pixel on planar
    images). ``area_cm2`` is the projected area (planar); ``volume_ml`` the volume (tomo).
    """

    organ: str  # liver, spleen, kidney_left, kidney_right, bladder, thyroid, ...
    center_rc: tuple[float, float] | None
    mean: float
    method: str
    area_cm2: float | None = None
    volume_ml: float | None = None
    center_lps_mm: tuple[float, float, float] | None = None
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReferenceRegion:
    """A reference region in normal tissue (liver, spleen or kidney).

    ``mean`` and ``std`` are the mean and pixel standard deviation of the scoring image in the
    region (planar: counts per pixel of the geometric-mean image). ``variance_of_mean`` is
    the variance of ``mean``: from Poisson statistics (``variance_method == "poisson"``) or
    from the region's own pixel noise (``"empirical"``, for images without counting
    statistics). ``plausible`` is False when the region exists but must not be trusted
    (``warnings`` say why); a missing organ has no ReferenceRegion at all.
    """

    organ: str  # "liver", "spleen" or "kidney"
    mean: float
    std: float
    variance_of_mean: float
    variance_method: str
    method: str
    radius_mm: float
    n_pixels: int | None = None
    volume_ml: float | None = None
    center_rc: tuple[float, float] | None = None
    center_lps_mm: tuple[float, float, float] | None = None
    plausible: bool = True
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.variance_method not in ("poisson", "empirical"):
            raise ValueError(
                f"ReferenceRegion.variance_method = {self.variance_method!r}; expected "
                "'poisson' or 'empirical'"
            )


@dataclass(frozen=True)
class Lesion:
    """One graded lesion.

    Planar: ``center_rc`` is the peak location on the anterior grid, ``diameter_mm`` the
    area-equivalent diameter of the segmented region, ``area_cm2`` its area; ``peak`` and
    ``mean`` are in ``units`` (planar: counts per pixel of the geometric-mean image; ``peak``
    is the apparent peak defined in ``octoscan.models.planar_lesions.apparent_peak``).
    Tomographic lesions fill ``center_lps_mm`` and ``volume_ml`` instead.

    ``ratio_liver`` = peak / liver reference mean, ``ratio_spleen`` = peak / mean of the
    reference named by ``spleen_reference_organ`` ("spleen", or "kidney" after splenectomy);
    each with its interval at the configured confidence level (``ci_method`` says how).
    ``grade_range`` holds the grades at the lower and upper interval bounds; ``borderline``
    is True when they differ (the interval straddles a Krenning threshold). ``grade`` is None
    when no liver reference exists (the lesion is not graded against anything else).
    """

    id: int
    diameter_mm: float
    peak: float
    mean: float
    units: str
    ratio_liver: float | None
    ratio_liver_ci: tuple[float, float] | None
    ratio_spleen: float | None
    ratio_spleen_ci: tuple[float, float] | None
    spleen_reference_organ: str | None
    grade: int | None
    grade_range: tuple[int, int]
    borderline: bool
    region: str
    grading_method: str
    ci_method: str
    source: str = "threshold"
    center_rc: tuple[float, float] | None = None
    center_lps_mm: tuple[float, float, float] | None = None
    area_cm2: float | None = None
    volume_ml: float | None = None
    background: float | None = None
    z_score: float | None = None
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.source not in LESION_SOURCES:
            raise ValueError(f"Lesion.source = {self.source!r}; expected one of {LESION_SOURCES}")
        if self.grade is not None and not 0 <= self.grade <= 4:
            raise ValueError(f"Lesion.grade = {self.grade!r}; expected 0-4 or None")
        if self.center_rc is None and self.center_lps_mm is None:
            raise ValueError("Lesion needs center_rc (planar) or center_lps_mm (tomographic)")


@dataclass(frozen=True)
class CriterionResult:
    """One eligibility criterion with its verdict (the decision's audit trail).

    ``verdict``: "pass", "fail", "review" or "not_assessed" (a missing value is never
    assumed fine). ``value``/``limit``/``unit``/``source`` document what was compared.
    """

    name: str
    verdict: str
    reason: str
    value: float | str | None = None
    limit: str | None = None
    unit: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        if self.verdict not in CRITERION_VERDICTS:
            raise ValueError(
                f"CriterionResult.verdict = {self.verdict!r}; expected one of {CRITERION_VERDICTS}"
            )


@dataclass(frozen=True)
class Decision:
    """The three-valued decision with its reasons.

    ``imaging_status`` is the decision from uptake alone; ``status`` combines it with
    ``criteria`` (clinical criteria, empty until they are added). ``rule_set`` names the
    configuration, ``uptake_rule`` the reading of "grade >= 3" that was applied.
    """

    status: str
    imaging_status: str
    rule_set: str
    uptake_rule: str
    reasons: tuple[str, ...]
    criteria: tuple[CriterionResult, ...] = ()

    def __post_init__(self) -> None:
        for name in ("status", "imaging_status"):
            value = getattr(self, name)
            if value not in DECISION_STATUSES:
                raise ValueError(
                    f"Decision.{name} = {value!r}; expected one of {DECISION_STATUSES}"
                )


@dataclass(frozen=True)
class SetAsideSpot:
    """A significant hot spot the planar lesion detector did not report as a lesion, and why
    (physiological uptake such as "thyroid (midline neck)", or a shape test), at its peak
    (row, column) on the scoring grid, with its z-score."""

    center_rc: tuple[float, float]
    reason: str
    z_score: float


@dataclass(frozen=True)
class PlanarScore:
    """Everything planar scoring found for one study (pure data; no files).

    ``scoring_image`` is the image lesions and references were measured on: the
    conjugate-view geometric mean sqrt(A * P') on the anterior grid (P' = posterior mirrored
    and registered), or the single view available (a posterior-only study is scored on the
    mirrored posterior, ``grid`` says so). ``variance_image`` is its per-pixel variance under
    Poisson statistics (None for images without counting statistics). Masks of organs,
    references and lesions live on the same grid.
    """

    tracer: str
    tracer_assumed: bool
    views_used: tuple[str, ...]
    grid: str  # "anterior" or "posterior_mirrored"
    hours_post_injection: float | None
    grading_method: str
    ci_method: str
    pixel_spacing_mm: tuple[float, float]
    posterior_shift_rc: tuple[float, float] | None
    orientation: str
    organs: tuple[OrganRegion, ...]
    references: tuple[ReferenceRegion, ...]
    lesions: tuple[Lesion, ...]
    decision: Decision
    config_name: str
    config_hash: str
    series_instance_uids: tuple[str, ...]
    warnings: tuple[str, ...]
    scoring_image: np.ndarray = field(compare=False, repr=False)
    variance_image: np.ndarray | None = field(default=None, compare=False, repr=False)
    set_aside: tuple[SetAsideSpot, ...] = ()

    def reference(self, organ: str) -> ReferenceRegion | None:
        """The reference region of ``organ`` ("liver", "spleen", "kidney"), if any."""
        for ref in self.references:
            if ref.organ == organ:
                return ref
        return None
