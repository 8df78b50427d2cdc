"""Configuration of tomographic (SPECT, SPECT/CT, PET, PET/CT) scoring.

One frozen dataclass per TOML table, following :mod:`octoscan.models.config`: every field
carries its allowed ``range`` (numbers) or ``choices`` (strings) in its metadata, so the same
loader validates it whether it is read as the ``[tomo]`` table of a rule set or on its own
with :func:`tomo_config_from_dict`. Defaults live in ``configs/`` (the ``[tomo]`` table),
never in code.

Sizes are in mm, volumes in mL, CT values in HU; factors and fractions are dimensionless
(relative to the level named in the field's comment).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from octoscan.imaging.errors import ConfigError
from octoscan.models.config import UPTAKE_RULES, _build

RECOVERY_MODELS: tuple[str, ...] = ("sphere_peak_average", "sphere_centre", "none")
"""Partial-volume models: the recovery coefficient of a uniform sphere blurred by a 3-D
Gaussian, averaged over the peak region (default) or taken at the sphere's centre; or none."""

GRADE_ON: tuple[str, ...] = ("corrected", "uncorrected")
"""Which ratio the grade is read from: partial-volume corrected (modified Krenning) or not."""

SPECT_UPTAKE_RULES: tuple[str, ...] = ("rule_set", *UPTAKE_RULES)
"""``rule_set`` keeps the rule set's ``[decision].uptake_rule`` for SPECT."""


def _r(lo: float, hi: float, unit: str = "") -> dict[str, Any]:
    return {"range": (lo, hi), "unit": unit}


@dataclass(frozen=True)
class TomoResolutionConfig:
    """System resolution (FWHM, mm) used when the volume does not carry one (measured at
    the CT liver outline when ``measure_at_liver_edge`` and the measurement lies within
    ``measured_min_factor``-``measured_max_factor`` x the default and differs from it by
    more than the fraction ``measured_agreement``; else the default), and
    the grid on which organs and lesions are searched (voxels are block-averaged up to about
    ``working_voxel_mm``; measurements are made on the original grid)."""

    spect_fwhm_mm: float = field(metadata=_r(2.0, 40.0, "mm"))
    pet_fwhm_mm: float = field(metadata=_r(1.0, 20.0, "mm"))
    working_voxel_mm: float = field(metadata=_r(1.0, 10.0, "mm"))
    measure_at_liver_edge: bool
    measured_min_factor: float = field(metadata=_r(0.1, 1.0))
    measured_max_factor: float = field(metadata=_r(1.0, 10.0))
    measured_agreement: float = field(metadata=_r(0.0, 1.0))


@dataclass(frozen=True)
class TomoPairingConfig:
    """Emission-CT pairing: the share of the emission field the CT must cover to be fused."""

    min_overlap_fraction: float = field(metadata=_r(0.05, 1.0))


@dataclass(frozen=True)
class TomoOrganConfig:
    """Organ localisation on the emission volume (levels relative to the body's median
    uptake T or to the liver level L, volumes in mL, distances in mm from the body midline)."""

    smoothing_fwhm_mm: float = field(metadata=_r(0.0, 50.0, "mm"))
    body_threshold_fraction: float = field(metadata=_r(0.01, 0.99))
    organ_threshold_factor: float = field(metadata=_r(1.0, 50.0))
    liver_band_low: float = field(metadata=_r(0.05, 1.0))
    liver_band_high: float = field(metadata=_r(1.0, 5.0))
    hot_organ_factor: float = field(metadata=_r(1.0, 10.0))
    kidney_retry_factor: float = field(metadata=_r(0.3, 10.0))
    opening_radius_mm: float = field(metadata=_r(0.0, 50.0, "mm"))
    liver_min_volume_ml: float = field(metadata=_r(10.0, 5000.0, "mL"))
    liver_max_volume_ml: float = field(metadata=_r(100.0, 20000.0, "mL"))
    spleen_min_volume_ml: float = field(metadata=_r(1.0, 2000.0, "mL"))
    spleen_max_volume_ml: float = field(metadata=_r(10.0, 5000.0, "mL"))
    spleen_min_lateral_mm: float = field(metadata=_r(0.0, 200.0, "mm"))
    kidney_min_volume_ml: float = field(metadata=_r(1.0, 1000.0, "mL"))
    kidney_max_volume_ml: float = field(metadata=_r(10.0, 3000.0, "mL"))
    kidney_min_lateral_mm: float = field(metadata=_r(0.0, 200.0, "mm"))
    kidney_max_lateral_mm: float = field(metadata=_r(10.0, 300.0, "mm"))
    bladder_min_volume_ml: float = field(metadata=_r(1.0, 2000.0, "mL"))
    bladder_max_lateral_mm: float = field(metadata=_r(0.0, 200.0, "mm"))
    accessory_spleen_max_volume_ml: float = field(metadata=_r(0.0, 100.0, "mL"))
    accessory_spleen_max_distance_mm: float = field(metadata=_r(0.0, 200.0, "mm"))
    accessory_spleen_min_ratio_spleen: float = field(metadata=_r(0.0, 5.0))


@dataclass(frozen=True)
class TomoCTConfig:
    """CT windows (HU) for organ localisation and lesion checks on a fused CT."""

    body_hu_min: float = field(metadata=_r(-1000.0, 0.0, "HU"))
    liver_hu_min: float = field(metadata=_r(-100.0, 300.0, "HU"))
    liver_hu_max: float = field(metadata=_r(-100.0, 400.0, "HU"))
    spleen_hu_min: float = field(metadata=_r(-100.0, 300.0, "HU"))
    spleen_hu_max: float = field(metadata=_r(-100.0, 400.0, "HU"))
    fluid_hu_min: float = field(metadata=_r(-200.0, 100.0, "HU"))
    fluid_hu_max: float = field(metadata=_r(-100.0, 100.0, "HU"))
    bone_hu_min: float = field(metadata=_r(50.0, 2000.0, "HU"))
    lung_hu_max: float = field(metadata=_r(-1000.0, 0.0, "HU"))
    smoothing_fwhm_mm: float = field(metadata=_r(0.0, 30.0, "mm"))
    opening_radius_mm: float = field(metadata=_r(0.0, 50.0, "mm"))


@dataclass(frozen=True)
class TomoReferenceConfig:
    """Reference VOIs: spheres of these diameters in normal parenchyma (mm)."""

    liver_diameter_mm: float = field(metadata=_r(5.0, 150.0, "mm"))
    spleen_diameter_mm: float = field(metadata=_r(5.0, 150.0, "mm"))
    kidney_diameter_mm: float = field(metadata=_r(5.0, 150.0, "mm"))
    edge_margin_mm: float = field(metadata=_r(0.0, 100.0, "mm"))
    emission_edge_margin_fwhm: float = field(metadata=_r(0.0, 3.0))
    lesion_margin_mm: float = field(metadata=_r(0.0, 100.0, "mm"))


@dataclass(frozen=True)
class TomoPlausibilityConfig:
    """Limits beyond which the liver reference is implausible (the study goes to review)."""

    max_liver_to_spleen_ratio: float = field(metadata=_r(0.1, 10.0))
    max_liver_cv: float = field(metadata=_r(0.0, 5.0))


@dataclass(frozen=True)
class TomoDetectionConfig:
    """3-D hot-spot detection, segmentation and the exclusion of physiological shapes."""

    smoothing_fwhm_fraction: float = field(metadata=_r(0.0, 3.0))
    background_size_mm: float = field(metadata=_r(10.0, 400.0, "mm"))
    min_z_score: float = field(metadata=_r(1.0, 100.0))
    min_contrast: float = field(metadata=_r(0.0, 100.0))
    level_noise_exponent: float = field(metadata=_r(0.0, 1.0))
    min_liver_lesion_ratio: float = field(metadata=_r(1.0, 10.0))
    segmentation_fraction: float = field(metadata=_r(0.05, 0.95))
    min_volume_ml: float = field(metadata=_r(0.0, 100.0, "mL"))
    min_peak_distance_mm: float = field(metadata=_r(0.0, 200.0, "mm"))
    peak_volume_ml: float = field(metadata=_r(0.1, 20.0, "mL"))
    elongated_min_length_mm: float = field(metadata=_r(10.0, 500.0, "mm"))
    elongated_min_ratio: float = field(metadata=_r(1.0, 20.0))
    large_faint_min_volume_ml: float = field(metadata=_r(1.0, 5000.0, "mL"))
    adrenal_max_ratio_spleen: float = field(metadata=_r(0.0, 10.0))
    uncinate_max_ratio_liver: float = field(metadata=_r(0.0, 10.0))
    thyroid_max_ratio_liver: float = field(metadata=_r(0.0, 10.0))


@dataclass(frozen=True)
class TomoCTLesionConfig:
    """Hypodense liver lesions outlined on the fused CT (models/tomo_ct_lesions.py)."""

    enabled: bool
    report_without_uptake: bool
    review_without_uptake: bool
    smoothing_fwhm_mm: float = field(metadata=_r(0.0, 30.0, "mm"))
    min_contrast_hu: float = field(metadata=_r(1.0, 500.0, "HU"))
    min_contrast_sd: float = field(metadata=_r(0.0, 50.0))
    min_diameter_mm: float = field(metadata=_r(1.0, 200.0, "mm"))
    min_sizing_diameter_mm: float = field(metadata=_r(1.0, 200.0, "mm"))
    max_elongation: float = field(metadata=_r(1.0, 20.0))
    envelope_closing_mm: float = field(metadata=_r(0.0, 100.0, "mm"))
    fluid_margin_mm: float = field(metadata=_r(0.0, 50.0, "mm"))
    shell_mm: float = field(metadata=_r(1.0, 50.0, "mm"))
    min_liver_shell_fraction: float = field(metadata=_r(0.0, 1.0))
    size_hot_lesions: bool


@dataclass(frozen=True)
class TomoPVCConfig:
    """Partial-volume correction and which ratio is graded."""

    recovery_model: str = field(metadata={"choices": RECOVERY_MODELS})
    max_correction_factor: float = field(metadata=_r(1.0, 100.0))
    grade_on: str = field(metadata={"choices": GRADE_ON})


@dataclass(frozen=True)
class TomoDecisionConfig:
    """Uptake rule per modality (PET-era "> liver" for PET by default; issue 8)."""

    pet_uptake_rule: str = field(metadata={"choices": UPTAKE_RULES})
    spect_uptake_rule: str = field(metadata={"choices": SPECT_UPTAKE_RULES})


@dataclass(frozen=True)
class TomoConfig:
    """Everything specific to tomographic scoring (the ``[tomo]`` table)."""

    resolution: TomoResolutionConfig
    pairing: TomoPairingConfig
    organs: TomoOrganConfig
    ct: TomoCTConfig
    references: TomoReferenceConfig
    plausibility: TomoPlausibilityConfig
    detection: TomoDetectionConfig
    ct_lesions: TomoCTLesionConfig
    pvc: TomoPVCConfig
    decision: TomoDecisionConfig


def tomo_config_from_dict(raw: Any, *, source: str = "[tomo]") -> TomoConfig:
    """Validate a ``[tomo]`` table (nested dicts as read by ``tomllib``) into a TomoConfig.

    Raises :class:`ConfigError` for a missing or unknown key, a wrong type, a value outside
    its range or choices, and for the cross-field rules of :func:`check_tomo_config`.
    ``source`` names where the table came from in error messages.
    """
    cfg = _build(TomoConfig, raw, section="tomo", source=source)
    assert isinstance(cfg, TomoConfig)
    check_tomo_config(cfg, source=source)
    return cfg


def _order(lo_key: str, lo: float, hi_key: str, hi: float, source: str) -> None:
    if not lo < hi:
        raise ConfigError(f"{lo_key} = {lo!r} must be below {hi_key} = {hi!r}", path=source)


def check_tomo_config(cfg: TomoConfig, *, source: str = "[tomo]") -> None:
    """Cross-field rules (minimum below maximum) that ranges alone cannot express."""
    o, c = cfg.organs, cfg.ct
    pairs = (
        (
            "tomo.organs.liver_min_volume_ml",
            o.liver_min_volume_ml,
            "tomo.organs.liver_max_volume_ml",
            o.liver_max_volume_ml,
        ),
        (
            "tomo.organs.spleen_min_volume_ml",
            o.spleen_min_volume_ml,
            "tomo.organs.spleen_max_volume_ml",
            o.spleen_max_volume_ml,
        ),
        (
            "tomo.organs.kidney_min_volume_ml",
            o.kidney_min_volume_ml,
            "tomo.organs.kidney_max_volume_ml",
            o.kidney_max_volume_ml,
        ),
        (
            "tomo.organs.kidney_min_lateral_mm",
            o.kidney_min_lateral_mm,
            "tomo.organs.kidney_max_lateral_mm",
            o.kidney_max_lateral_mm,
        ),
        (
            "tomo.organs.liver_band_low",
            o.liver_band_low,
            "tomo.organs.liver_band_high",
            o.liver_band_high,
        ),
        ("tomo.ct.liver_hu_min", c.liver_hu_min, "tomo.ct.liver_hu_max", c.liver_hu_max),
        ("tomo.ct.spleen_hu_min", c.spleen_hu_min, "tomo.ct.spleen_hu_max", c.spleen_hu_max),
        ("tomo.ct.fluid_hu_min", c.fluid_hu_min, "tomo.ct.fluid_hu_max", c.fluid_hu_max),
    )
    for lo_key, lo, hi_key, hi in pairs:
        _order(lo_key, lo, hi_key, hi, source)


def tomo_config_hash(cfg: TomoConfig) -> str:
    """sha256 (hex) of the canonical content (sorted-key JSON, as ``config_hash`` does)."""
    text = json.dumps(dataclasses.asdict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
