"""Rule sets: loading, inheritance, validation errors, hashing."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from octoscan.imaging.errors import ConfigError
from octoscan.models.config import (
    UPTAKE_RULES,
    ScoringConfig,
    available_configs,
    config_hash,
    config_to_dict,
    load_config,
)
from octoscan.models.krenning import KrenningThresholds


def _default_text() -> str:
    return resources.files("octoscan.configs").joinpath("default.toml").read_text("utf-8")


def _write(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_default_holds_the_issue_defaults() -> None:
    cfg = load_config()
    assert isinstance(cfg, ScoringConfig)
    assert cfg.name == "default"
    assert cfg.source == "package:default"
    assert cfg.krenning == KrenningThresholds(0.5, 1.0, 1.0)
    assert cfg.statistics.confidence_level == 0.95
    assert cfg.decision.uptake_rule == "significantly_above_liver"
    assert cfg.decision.large_lesion_min_diameter_mm == 15.0
    assert cfg.decision.min_grade_for_disease == 2
    assert cfg.planar.time_point.preferred_hours_post_injection == 24.0
    assert cfg.planar.references.liver_diameter_mm == 30.0
    assert cfg.planar.references.spleen_diameter_mm == 20.0
    assert cfg.planar.plausibility.max_liver_to_spleen_ratio == 1.0


def test_netter1_imaging_differs_from_default_only_in_name_and_rule() -> None:
    """Imaging settings: only the uptake rule differs (clinical criteria are tested apart)."""
    default = config_to_dict(load_config("default"))
    netter = config_to_dict(load_config("netter1"))
    assert netter["decision"]["uptake_rule"] == "not_significantly_below_liver"
    assert netter["name"] == "netter1"
    for d in (default, netter):
        for key in ("name", "description", "source", "clinical"):
            d.pop(key)
        d["decision"].pop("uptake_rule")
    assert netter == default


def test_available_configs_lists_the_shipped_rule_sets() -> None:
    names = available_configs()
    assert "default" in names and "netter1" in names
    assert set(UPTAKE_RULES) == {"significantly_above_liver", "not_significantly_below_liver"}


def test_hash_is_stable_and_ignores_where_the_file_lives(tmp_path: Path) -> None:
    a = load_config("default")
    b = load_config("default")
    copy = load_config(_write(tmp_path, _default_text(), "copy.toml"))
    assert config_hash(a) == config_hash(b) == config_hash(copy)
    assert len(config_hash(a)) == 64
    assert copy.source == str(tmp_path / "copy.toml")
    assert config_hash(load_config("netter1")) != config_hash(a)


def test_hash_changes_with_any_value(tmp_path: Path) -> None:
    path = _write(tmp_path, 'extends = "default"\n[planar.detection]\nmin_z_score = 6.5\n')
    cfg = load_config(path)
    assert cfg.planar.detection.min_z_score == 6.5
    assert cfg.name == "site"  # from the file name when the file names none
    assert config_hash(cfg) != config_hash(load_config())


def test_extends_a_relative_file(tmp_path: Path) -> None:
    _write(tmp_path, 'extends = "netter1"\nname = "base"\n', "base.toml")
    child = _write(tmp_path, 'extends = "base.toml"\n[statistics]\nconfidence_level = 0.9\n')
    cfg = load_config(child)
    assert cfg.name == "site"  # names are not inherited
    assert cfg.decision.uptake_rule == "not_significantly_below_liver"
    assert cfg.statistics.confidence_level == 0.9


def test_config_to_dict_round_trips_through_the_dataclasses() -> None:
    cfg = load_config()
    d = config_to_dict(cfg)
    assert d["krenning"] == {
        "grade2_min_ratio_liver": 0.5,
        "grade3_min_ratio_liver": 1.0,
        "grade4_min_ratio_spleen": 1.0,
    }
    assert set(d["planar"]) == {
        "time_point",
        "alignment",
        "organs",
        "references",
        "plausibility",
        "detection",
    }
    assert dataclasses.is_dataclass(cfg.planar.detection)


def test_every_shipped_number_is_commented() -> None:
    """Each numeric value in the shipped files has a comment on or just above its line."""
    for name in available_configs():
        text = resources.files("octoscan.configs").joinpath(f"{name}.toml").read_text("utf-8")
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if not re.match(r"^\s*[a-z0-9_]+\s*=\s*[-0-9]", line):
                continue
            above = [ln.strip() for ln in lines[max(0, i - 6) : i]]
            assert "#" in line or any(a.startswith("#") for a in above), f"{name}: {line}"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('extends = "default"\n[krenning]\nbogus = 1\n', r"unknown key\(s\) bogus in \[krenning\]"),
        ('extends = "default"\nbogus = 1\n', r"unknown key\(s\) bogus in top level"),
        (
            'extends = "default"\n[krenning]\ngrade3_min_ratio_liver = 9.0\n',
            r"krenning.grade3_min_ratio_liver = 9.0 is outside the allowed range \[0.1, 5.0\]",
        ),
        (
            'extends = "default"\n[planar.references]\nliver_diameter_mm = 1.0\n',
            r"liver_diameter_mm = 1.0 is outside the allowed range \[5.0, 150.0\] mm",
        ),
        (
            'extends = "default"\n[statistics]\nconfidence_level = "high"\n',
            r"statistics.confidence_level = 'high'; expected a number",
        ),
        (
            'extends = "default"\n[statistics]\nconfidence_level = true\n',
            r"expected a number",
        ),
        (
            'extends = "default"\n[decision]\nmin_grade_for_disease = 2.5\n',
            r"min_grade_for_disease = 2.5; expected an integer",
        ),
        (
            'extends = "default"\n[decision]\nmin_grade_for_disease = 4\n',
            r"min_grade_for_disease = 4 is outside the allowed range \[1, 3\]",
        ),
        (
            'extends = "default"\n[decision]\nreview_on_borderline = 1\n',
            r"review_on_borderline = 1; expected true or false",
        ),
        (
            'extends = "default"\n[decision]\nuptake_rule = "above_liver"\n',
            r"uptake_rule = 'above_liver'; expected one of significantly_above_liver",
        ),
        ('extends = "default"\nkrenning = 3\n', r"\[krenning\] must be a table"),
        ('name = "bare"\n[krenning]\ngrade2_min_ratio_liver = 0.5\n', r"missing key description"),
        (
            'extends = "default"\n[krenning]\ngrade2_min_ratio_liver = 1.0\n',
            r"grade2_min_ratio_liver = 1.0 must be below krenning.grade3_min_ratio_liver = 1.0",
        ),
        (
            'extends = "default"\n[planar.organs]\nspleen_min_area_cm2 = 500.0\n',
            r"spleen_min_area_cm2 = 500.0 must be below",
        ),
        ('extends = "nonexistent"\n', r"no shipped rule set named 'nonexistent'"),
        ("extends = 3\n", r"'extends' = 3; expected a rule-set name"),
        ("[krenning\n", r"not valid TOML"),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as info:
        load_config(path)
    assert info.value.code in ("config_error", "config_not_found")


def test_missing_key_suggests_extends(tmp_path: Path) -> None:
    data = tomllib.loads(_default_text())
    del data["krenning"]["grade4_min_ratio_spleen"]
    text = _default_text().replace("grade4_min_ratio_spleen = 1.0\n", "")
    with pytest.raises(
        ConfigError, match=r'missing key krenning.grade4_min_ratio_spleen .*extends = "default"'
    ):
        load_config(_write(tmp_path, text))


def test_extends_cycle_is_reported(tmp_path: Path) -> None:
    _write(tmp_path, 'extends = "b.toml"\n', "a.toml")
    _write(tmp_path, 'extends = "a.toml"\n', "b.toml")
    with pytest.raises(ConfigError, match=r"'extends' forms a cycle"):
        load_config(tmp_path / "a.toml")


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"configuration file not found") as info:
        load_config(tmp_path / "absent.toml")
    assert info.value.code == "config_not_found"
    with pytest.raises(ConfigError, match=r"no shipped rule set named 'strict'; available: "):
        load_config("strict")
