"""Scoring configuration: TOML rule sets read into frozen dataclasses.

A configuration is a TOML file: one of the named rule sets shipped in ``octoscan.configs``
(``default``, ``netter1``) or a file path. A file may start with ``extends = "NAME"`` (a
shipped rule set) or ``extends = "other.toml"`` (a path relative to the file): the base is
loaded first and the file's tables override it key by key. The ``name`` is never inherited:
a file without one is named after itself (its file name without ``.toml``). The resolved
configuration must hold every key (defaults live in ``configs/``, never in code); unknown
keys, wrong types and
values outside the ranges declared in the field metadata raise :class:`ConfigError` naming
the key, the value and what is allowed. Nothing in a config is executed.

Extension point: a later section (for example ``[clinical]``) is one more frozen dataclass
field of :class:`ScoringConfig`; the loader walks the dataclasses, so validation, hashing
and ``config_to_dict`` cover it without further code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from octoscan.imaging.errors import ConfigError
from octoscan.models.krenning import KrenningThresholds

UPTAKE_RULES: tuple[str, ...] = ("significantly_above_liver", "not_significantly_below_liver")
"""Readings of "grade >= 3" for the decision (issue 4): interval lower bound above the
grade-3 threshold, or interval upper bound at or above it (NETTER-1)."""

_MAX_EXTENDS_DEPTH = 8


def _r(lo: float, hi: float, unit: str = "") -> dict[str, Any]:
    return {"range": (lo, hi), "unit": unit}


@dataclass(frozen=True)
class StatisticsConfig:
    """Confidence level (two-sided) of every ratio interval."""

    confidence_level: float = field(metadata=_r(0.5, 0.999))


@dataclass(frozen=True)
class DecisionConfig:
    """Imaging decision rules (issue 4, item 5)."""

    uptake_rule: str = field(metadata={"choices": UPTAKE_RULES})
    large_lesion_min_diameter_mm: float = field(metadata=_r(0.0, 200.0, "mm"))
    min_grade_for_disease: int = field(metadata=_r(1, 3))
    review_on_borderline: bool = field(metadata={})
    review_on_implausible_reference: bool = field(metadata={})


@dataclass(frozen=True)
class TimePointConfig:
    """Which planar time point is scored, and which count as early."""

    preferred_hours_post_injection: float = field(metadata=_r(0.0, 400.0, "h"))
    early_before_hours: float = field(metadata=_r(0.0, 400.0, "h"))


@dataclass(frozen=True)
class AlignmentConfig:
    """Posterior-to-anterior registration by translation."""

    max_shift_mm: float = field(metadata=_r(0.0, 500.0, "mm"))
    smoothing_fwhm_mm: float = field(metadata=_r(0.0, 100.0, "mm"))
    min_correlation: float = field(metadata=_r(-1.0, 1.0))


@dataclass(frozen=True)
class OrganConfig:
    """Organ localisation on planar images (all sizes in mm / cm^2)."""

    smoothing_fwhm_mm: float = field(metadata=_r(0.0, 100.0, "mm"))
    opening_radius_mm: float = field(metadata=_r(0.0, 150.0, "mm"))
    body_threshold_fraction: float = field(metadata=_r(0.01, 0.99))
    organ_threshold_factor: float = field(metadata=_r(1.0, 50.0))
    liver_min_area_cm2: float = field(metadata=_r(1.0, 2000.0, "cm2"))
    spleen_min_area_cm2: float = field(metadata=_r(1.0, 2000.0, "cm2"))
    spleen_max_area_cm2: float = field(metadata=_r(1.0, 5000.0, "cm2"))
    kidney_min_posterior_anterior_ratio: float = field(metadata=_r(0.5, 10.0))
    whole_body_min_length_mm: float = field(metadata=_r(100.0, 5000.0, "mm"))


@dataclass(frozen=True)
class ReferenceConfig:
    """Reference regions (circles on the planar image)."""

    liver_diameter_mm: float = field(metadata=_r(5.0, 150.0, "mm"))
    spleen_diameter_mm: float = field(metadata=_r(5.0, 150.0, "mm"))
    kidney_diameter_mm: float = field(metadata=_r(5.0, 150.0, "mm"))
    edge_margin_mm: float = field(metadata=_r(0.0, 100.0, "mm"))
    organ_margin_mm: float = field(metadata=_r(0.0, 100.0, "mm"))
    lesion_margin_mm: float = field(metadata=_r(0.0, 100.0, "mm"))
    min_pixels: int = field(metadata=_r(1, 100000))
    liver_prefer_cranial_half: bool = field(metadata={})
    liver_min_midline_offset_mm: float = field(metadata=_r(0.0, 200.0, "mm"))


@dataclass(frozen=True)
class PlausibilityConfig:
    """Limits beyond which a reference is reported implausible (study goes to review)."""

    max_liver_to_spleen_ratio: float = field(metadata=_r(0.1, 10.0))
    max_liver_excess_cv: float = field(metadata=_r(0.0, 5.0))
    single_view_reference_comparable: bool = field(metadata={})


@dataclass(frozen=True)
class DetectionConfig:
    """Planar hot-spot detection and segmentation."""

    smoothing_fwhm_mm: float = field(metadata=_r(0.0, 100.0, "mm"))
    peak_fwhm_mm: float = field(metadata=_r(0.0, 100.0, "mm"))
    peak_search_radius_mm: float = field(metadata=_r(0.0, 100.0, "mm"))
    background_radius_mm: float = field(metadata=_r(2.0, 500.0, "mm"))
    min_z_score: float = field(metadata=_r(1.0, 100.0))
    min_contrast: float = field(metadata=_r(0.0, 100.0))
    min_contrast_in_implausible_liver: float = field(metadata=_r(0.0, 100.0))
    segmentation_fraction: float = field(metadata=_r(0.05, 0.95))
    segmentation_fwhm_mm: float = field(metadata=_r(0.0, 100.0, "mm"))
    min_diameter_mm: float = field(metadata=_r(0.0, 200.0, "mm"))
    min_peak_distance_mm: float = field(metadata=_r(0.0, 200.0, "mm"))
    min_width_mm: float = field(metadata=_r(0.0, 200.0, "mm"))
    max_elongation: float = field(metadata=_r(1.0, 100.0))
    shape_max_contrast: float = field(metadata=_r(0.0, 1000.0))
    symmetric_max_contrast: float = field(metadata=_r(0.0, 100.0))
    symmetry_tolerance_mm: float = field(metadata=_r(0.0, 200.0, "mm"))
    symmetry_organ_margin_mm: float = field(metadata=_r(0.0, 500.0, "mm"))
    liver_opening_radius_mm: float = field(metadata=_r(0.0, 200.0, "mm"))
    liver_depth_window_mm: float = field(metadata=_r(5.0, 500.0, "mm"))
    liver_depth_exclusion_mm: float = field(metadata=_r(0.0, 200.0, "mm"))
    liver_depth_tolerance_mm: float = field(metadata=_r(0.5, 100.0, "mm"))
    organ_influence_mm: float = field(metadata=_r(0.0, 500.0, "mm"))


@dataclass(frozen=True)
class PlanarConfig:
    """Everything specific to planar (conjugate-view) scoring."""

    time_point: TimePointConfig
    alignment: AlignmentConfig
    organs: OrganConfig
    references: ReferenceConfig
    plausibility: PlausibilityConfig
    detection: DetectionConfig


CRITERION_COMPARISONS: tuple[str, ...] = ("<", "<=", ">", ">=")
"""Comparisons a clinical criterion may use (``value OP limit``)."""

CLINICAL_LIMIT_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "ki67": {"%": (0.0, 100.0)},
    "creatinine": {"umol/L": (0.0, 3000.0), "mg/dL": (0.0, 35.0)},
    "creatinine_clearance": {"mL/min": (0.0, 400.0)},
    "hemoglobin": {"g/dL": (0.0, 25.0), "mmol/L": (0.0, 15.5)},
    "wbc": {"10^9/L": (0.0, 500.0)},
    "platelets": {"10^9/L": (0.0, 3000.0)},
    "bilirubin": {"x ULN": (0.0, 60.0)},
    "albumin": {"g/dL": (0.0, 7.0), "g/L": (0.0, 70.0)},
    "performance": {"Karnofsky": (0.0, 100.0)},
    "prior_treatment": {"lines": (0.0, 30.0)},
    "life_expectancy": {"months": (0.0, 600.0)},
}
"""Clinical criterion -> units its limits may be given in -> allowed range of the limits."""


@dataclass(frozen=True)
class CriterionConfig:
    """One clinical criterion (issue 7): how one value of the clinical file is judged.

    The value passes when ``value <pass_if> pass_limit`` holds, fails when ``value <fail_if>
    fail_limit`` holds (``fail_if = "never"``: it never fails; ``fail_limit`` is then not
    used) and goes to review in between (the review band). ``fail_unless`` (may be empty)
    names a condition the clinical file cannot show under which a failing value is acceptable
    (NETTER-1: albumin < 3.0 g/dL unless the prothrombin time is normal): such a value goes
    to review, with the condition as its reason. Limits are in ``unit``; ``source`` cites
    them. A criterion with ``enabled = false`` is not evaluated.
    """

    enabled: bool = field(metadata={})
    unit: str = field(metadata={"min_length": 1})
    pass_if: str = field(metadata={"choices": CRITERION_COMPARISONS})
    pass_limit: float = field(metadata=_r(0.0, 3000.0))
    fail_if: str = field(metadata={"choices": (*CRITERION_COMPARISONS, "never")})
    fail_limit: float = field(metadata=_r(0.0, 3000.0))
    fail_unless: str = field(metadata={})
    source: str = field(metadata={"min_length": 1})


@dataclass(frozen=True)
class ClinicalConfig:
    """Clinical criteria of a rule set (issue 7), judged on the clinical file's values."""

    ki67: CriterionConfig
    creatinine: CriterionConfig
    creatinine_clearance: CriterionConfig
    hemoglobin: CriterionConfig
    wbc: CriterionConfig
    platelets: CriterionConfig
    bilirubin: CriterionConfig
    albumin: CriterionConfig
    performance: CriterionConfig
    prior_treatment: CriterionConfig
    life_expectancy: CriterionConfig

    def items(self) -> tuple[tuple[str, CriterionConfig], ...]:
        """(name, criterion) of every criterion, enabled or not, in declaration order."""
        return tuple((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))


def _check_clinical(clinical: ClinicalConfig, *, source: str) -> None:
    """Units, limit ranges and the consistency of the pass and fail conditions."""
    for name, c in clinical.items():
        key = f"clinical.{name}"
        units = CLINICAL_LIMIT_RANGES[name]
        if c.unit not in units:
            raise ConfigError(
                f"{key}.unit = {c.unit!r}; expected one of {', '.join(units)}", path=source
            )
        lo, hi = units[c.unit]
        for attr in ("pass_limit", "fail_limit"):
            value = getattr(c, attr)
            if not lo <= value <= hi:
                raise ConfigError(
                    f"{key}.{attr} = {value!r} is outside the allowed range [{lo}, {hi}] {c.unit}",
                    path=source,
                )
        if c.fail_if == "never":
            if c.fail_unless:
                raise ConfigError(
                    f"{key}.fail_unless = {c.fail_unless!r} but fail_if = 'never'; leave it "
                    'empty ("")',
                    path=source,
                )
            continue
        keep_low = c.pass_if in ("<", "<=")
        if keep_low == (c.fail_if in ("<", "<=")):
            raise ConfigError(
                f"{key}: pass_if = {c.pass_if!r} and fail_if = {c.fail_if!r} point the same "
                "way; a value that passes below a limit fails above one, and the reverse",
                path=source,
            )
        gap = c.fail_limit - c.pass_limit if keep_low else c.pass_limit - c.fail_limit
        if gap < 0 or (gap == 0 and c.pass_if.endswith("=") == c.fail_if.endswith("=")):
            raise ConfigError(
                f"{key}: 'value {c.pass_if} {c.pass_limit:g}' passes and 'value {c.fail_if} "
                f"{c.fail_limit:g}' fails: the conditions overlap or leave a single value "
                "between them; equal limits need exactly one inclusive comparison "
                "(e.g. '<=' and '>')",
                path=source,
            )


@dataclass(frozen=True)
class ScoringConfig:
    """A resolved, validated rule set.

    ``name`` is the rule set's name (results cite it); ``source`` says where it was read
    from (``package:default`` or a file path) and is the one field left out of
    :func:`config_hash`.
    """

    name: str = field(metadata={"min_length": 1})
    description: str = field(metadata={})
    krenning: KrenningThresholds
    statistics: StatisticsConfig
    decision: DecisionConfig
    planar: PlanarConfig
    clinical: ClinicalConfig
    tomo: _tomo_config.TomoConfig
    source: str = field(default="", metadata={"internal": True})


# --------------------------------------------------------------------------------------------
# loading


def load_config(name_or_path: str | Path = "default") -> ScoringConfig:
    """Load, resolve (``extends``) and validate a rule set.

    ``name_or_path``: a shipped rule-set name (``"default"``, ``"netter1"``) or a path to a
    TOML file. Raises :class:`ConfigError` (code ``config_error``) for a missing file, bad
    TOML, an unknown or missing key, a wrong type or a value out of range.
    """
    raw, source = _load_resolved(name_or_path, chain=())
    if "name" not in raw:
        raw["name"] = (
            source.removeprefix("package:") if source.startswith("package:") else Path(source).stem
        )
    cfg = _build(ScoringConfig, raw, section="", source=source)
    cfg = dataclasses.replace(cfg, source=source)
    _check_cross_fields(cfg)
    _check_clinical(cfg.clinical, source=source)
    _tomo_config.check_tomo_config(cfg.tomo, source=source)
    return cfg


def available_configs() -> tuple[str, ...]:
    """Names of the rule sets shipped in ``octoscan.configs``."""
    root = resources.files("octoscan.configs")
    return tuple(
        sorted(p.name[: -len(".toml")] for p in root.iterdir() if p.name.endswith(".toml"))
    )


def config_to_dict(cfg: ScoringConfig) -> dict[str, Any]:
    """The resolved configuration as plain nested dicts (TOML/JSON-ready, ``source`` kept)."""
    return dataclasses.asdict(cfg)


def config_hash(cfg: ScoringConfig) -> str:
    """sha256 (hex) of the canonical resolved content.

    Canonical: :func:`config_to_dict` without ``source``, serialised as JSON with sorted keys
    and no whitespace, floats written by Python's shortest repr. Two files that resolve to the
    same values hash the same, wherever they live.
    """
    content = config_to_dict(cfg)
    content.pop("source", None)
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_toml(name_or_path: str | Path) -> tuple[dict[str, Any], str, Path | None]:
    """Raw table, source label and (for files) the path."""
    text_name = str(name_or_path)
    is_name = (
        isinstance(name_or_path, str)
        and not text_name.endswith(".toml")
        and ("/" not in text_name and "\\" not in text_name)
    )
    if is_name:
        resource = resources.files("octoscan.configs").joinpath(f"{text_name}.toml")
        if not resource.is_file():
            raise ConfigError(
                f"no shipped rule set named {text_name!r}; available: "
                f"{', '.join(available_configs())} (or give a path to a .toml file)",
                code="config_not_found",
            )
        data = resource.read_bytes()
        source = f"package:{text_name}"
        path = None
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(
                "configuration file not found; expected an existing .toml file",
                code="config_not_found",
                path=path,
            )
        data = path.read_bytes()
        source = str(path)
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=source) from exc
    return table, source, path


def _load_resolved(
    name_or_path: str | Path, *, chain: tuple[str, ...]
) -> tuple[dict[str, Any], str]:
    table, source, path = _read_toml(name_or_path)
    if source in chain:
        raise ConfigError(f"'extends' forms a cycle: {' -> '.join((*chain, source))}", path=source)
    if len(chain) >= _MAX_EXTENDS_DEPTH:
        raise ConfigError(f"'extends' nested deeper than {_MAX_EXTENDS_DEPTH} files", path=source)
    base_ref = table.pop("extends", None)
    if base_ref is None:
        return table, source
    if not isinstance(base_ref, str) or not base_ref:
        raise ConfigError(
            f"'extends' = {base_ref!r}; expected a rule-set name or a .toml path",
            path=source,
        )
    if base_ref.endswith(".toml") and path is not None:
        base_target: str | Path = (path.parent / base_ref).resolve()
    else:
        base_target = base_ref
    base, _ = _load_resolved(base_target, chain=(*chain, source))
    base.pop("name", None)  # a rule set's name is its own, never inherited
    return _merge(base, table), source


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _build(cls: type, raw: Any, *, section: str, source: str) -> Any:
    label = f"[{section}]" if section else "top level"
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{label} must be a table, found {type(raw).__name__} {raw!r}", path=source
        )
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]
    allowed = {f.name for f in fields}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in {label}; allowed: "
            f"{', '.join(sorted(allowed))}",
            path=source,
        )
    values: dict[str, Any] = {}
    for f in fields:
        key = f"{section}.{f.name}" if section else f.name
        if f.name not in raw:
            raise ConfigError(
                f"missing key {key} (every key must be set; start the file with "
                f'extends = "default" to inherit the defaults)',
                path=source,
            )
        hint = hints[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            values[f.name] = _build(hint, raw[f.name], section=key, source=source)
        else:
            values[f.name] = _check_value(key, raw[f.name], hint, f.metadata, source)
    return cls(**values)


def _check_value(key: str, value: Any, hint: Any, meta: Any, source: str) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {value!r}; expected true or false", path=source)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {value!r}; expected an integer", path=source)
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} = {value!r}; expected a number", path=source)
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key} = {value!r}; expected a finite number", path=source)
    elif hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} = {value!r}; expected a string", path=source)
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(
                f"{key} = {value!r}; expected one of {', '.join(choices)}", path=source
            )
        if len(value) < meta.get("min_length", 0):
            raise ConfigError(f"{key} must not be empty", path=source)
        return value
    else:  # pragma: no cover - a field type the loader does not know is a programming error
        raise TypeError(f"config field {key} has unsupported type {hint!r}")
    lo, hi = meta["range"]
    if not lo <= value <= hi:
        unit = f" {meta['unit']}" if meta.get("unit") else ""
        raise ConfigError(
            f"{key} = {value!r} is outside the allowed range [{lo}, {hi}]{unit}", path=source
        )
    return value


def _check_cross_fields(cfg: ScoringConfig) -> None:
    k = cfg.krenning
    if not k.grade2_min_ratio_liver < k.grade3_min_ratio_liver:
        raise ConfigError(
            f"krenning.grade2_min_ratio_liver = {k.grade2_min_ratio_liver!r} must be below "
            f"krenning.grade3_min_ratio_liver = {k.grade3_min_ratio_liver!r}",
            path=cfg.source,
        )
    o = cfg.planar.organs
    if not o.spleen_min_area_cm2 < o.spleen_max_area_cm2:
        raise ConfigError(
            f"planar.organs.spleen_min_area_cm2 = {o.spleen_min_area_cm2!r} must be below "
            f"planar.organs.spleen_max_area_cm2 = {o.spleen_max_area_cm2!r}",
            path=cfg.source,
        )


# The [tomo] table's dataclasses live in their own module, which reuses this module's loader
# (``_build``, ``UPTAKE_RULES``); imported last, as a module, so either module may be imported
# first. ``ScoringConfig.tomo``'s annotation is resolved through it when a config is built.
import octoscan.models.tomo_config as _tomo_config  # noqa: E402
