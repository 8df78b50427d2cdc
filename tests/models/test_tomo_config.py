"""The [tomo] table: validation of ranges, choices, keys and cross-field rules."""

from __future__ import annotations

import pytest

from octoscan.imaging.errors import ConfigError
from octoscan.models.tomo_config import (
    TomoConfig,
    check_tomo_config,
    tomo_config_from_dict,
    tomo_config_hash,
)
from tests.models.tomo_builders import tomo_raw


def test_proposed_table_loads_with_its_values() -> None:
    cfg = tomo_config_from_dict(tomo_raw())
    assert isinstance(cfg, TomoConfig)
    assert cfg.references.liver_diameter_mm == 30.0  # PERCIST 3 cm sphere (DESIGN.md)
    assert cfg.references.spleen_diameter_mm == 20.0
    assert cfg.resolution.spect_fwhm_mm == 13.0
    assert cfg.pvc.recovery_model == "sphere_peak_average"
    assert cfg.decision.pet_uptake_rule == "significantly_above_liver"
    assert cfg.detection.peak_volume_ml == 1.0


def test_hash_is_stable_and_follows_content() -> None:
    a = tomo_config_from_dict(tomo_raw())
    b = tomo_config_from_dict(tomo_raw())
    raw = tomo_raw()
    raw["pvc"]["grade_on"] = "uncorrected"
    c = tomo_config_from_dict(raw)
    assert tomo_config_hash(a) == tomo_config_hash(b)
    assert tomo_config_hash(a) != tomo_config_hash(c)
    assert len(tomo_config_hash(a)) == 64


def test_missing_key_is_named() -> None:
    raw = tomo_raw()
    del raw["detection"]["min_z_score"]
    with pytest.raises(ConfigError, match=r"missing key tomo\.detection\.min_z_score"):
        tomo_config_from_dict(raw)


def test_unknown_key_is_named() -> None:
    raw = tomo_raw()
    raw["organs"]["liver_colour"] = "brown"
    with pytest.raises(ConfigError, match=r"unknown key\(s\) liver_colour in \[tomo\.organs\]"):
        tomo_config_from_dict(raw)


def test_value_out_of_range_names_key_value_and_range() -> None:
    raw = tomo_raw()
    raw["references"]["liver_diameter_mm"] = 400.0
    with pytest.raises(
        ConfigError, match=r"tomo\.references\.liver_diameter_mm = 400\.0 is outside .*5\.0, 150"
    ):
        tomo_config_from_dict(raw)


def test_wrong_type_and_choice() -> None:
    raw = tomo_raw()
    raw["pvc"]["max_correction_factor"] = "four"
    with pytest.raises(ConfigError, match=r"max_correction_factor = 'four'; expected a number"):
        tomo_config_from_dict(raw)
    raw = tomo_raw()
    raw["pvc"]["recovery_model"] = "magic"
    with pytest.raises(ConfigError, match=r"recovery_model = 'magic'; expected one of"):
        tomo_config_from_dict(raw)
    raw = tomo_raw()
    raw["decision"]["spect_uptake_rule"] = "above_spleen"
    with pytest.raises(ConfigError, match=r"spect_uptake_rule = 'above_spleen'"):
        tomo_config_from_dict(raw)


def test_table_must_be_a_table() -> None:
    raw = tomo_raw()
    raw["pvc"] = 3
    with pytest.raises(ConfigError, match=r"\[tomo\.pvc\] must be a table"):
        tomo_config_from_dict(raw)


@pytest.mark.parametrize(
    ("section", "low", "high"),
    [
        ("organs", "spleen_min_volume_ml", "spleen_max_volume_ml"),
        ("organs", "kidney_min_lateral_mm", "kidney_max_lateral_mm"),
        ("ct", "liver_hu_min", "liver_hu_max"),
        ("ct", "fluid_hu_min", "fluid_hu_max"),
    ],
)
def test_minimum_must_stay_below_maximum(section: str, low: str, high: str) -> None:
    raw = tomo_raw()
    raw[section][low] = raw[section][high]
    with pytest.raises(ConfigError, match=rf"tomo\.{section}\.{low} = .* must be below"):
        tomo_config_from_dict(raw, source="site.toml")


def test_check_tomo_config_accepts_the_defaults() -> None:
    check_tomo_config(tomo_config_from_dict(tomo_raw()))


def test_rule_sets_carry_the_tomo_table_and_its_hash(tmp_path) -> None:
    from octoscan.models.config import config_hash, load_config

    default = load_config("default")
    assert default.tomo == tomo_config_from_dict(tomo_raw())
    assert load_config("netter1").tomo == default.tomo  # inherited through extends
    path = tmp_path / "site.toml"
    path.write_text('extends = "default"\n[tomo.pvc]\ngrade_on = "uncorrected"\n')
    site = load_config(path)
    assert site.tomo.pvc.grade_on == "uncorrected"
    assert config_hash(site) != config_hash(default)


def test_load_config_applies_the_tomo_cross_field_rules(tmp_path) -> None:
    from octoscan.models.config import load_config

    path = tmp_path / "site.toml"
    path.write_text('extends = "default"\n[tomo.ct]\nliver_hu_min = 100.0\n')
    with pytest.raises(ConfigError, match=r"tomo\.ct\.liver_hu_min = 100\.0 must be below"):
        load_config(path)
