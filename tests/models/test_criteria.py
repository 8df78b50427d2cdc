"""Clinical criteria of the shipped rule sets: every limit at, just below and just above it;
unit conversions; missing values; the decision they lead to; rule-set validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from octoscan.imaging.errors import ConfigError
from octoscan.models.clinical import ClinicalRecord, parse_clinical
from octoscan.models.config import CLINICAL_LIMIT_RANGES, ClinicalConfig, load_config
from octoscan.models.criteria import (
    CRITERIA,
    NO_RECORD_REASON,
    describe_limit,
    evaluate_criteria,
    judge_value,
    summarize_criteria,
)
from octoscan.models.decision import decide_eligibility
from octoscan.models.types import CriterionResult, Lesion, ReferenceRegion

CONFIGS = {name: load_config(name) for name in ("default", "netter1", "erasmus")}
UID = "1.2.826.0.1.3680043.8.498.7"


def _record(**values: float | int | str) -> ClinicalRecord:
    return ClinicalRecord(row="line 2", study_instance_uid=UID, **values)


def _result(rule_set: str, name: str, **values: float | int | str) -> CriterionResult:
    results = evaluate_criteria(_record(**values), CONFIGS[rule_set].clinical)
    (found,) = [r for r in results if r.name == name]
    return found


# (rule sets, criterion, column, [(value, verdict), ...]): each limit at, just below and
# just above it, with the verdict the rule set's source demands.
LIMIT_CASES = [
    # Oslo University Hospital: Ki-67 below 40 passes, 40-50 review, above 50 fails
    (
        ("default",),
        "ki67",
        "ki67_percent",
        [
            (39.9, "pass"),
            (40.0, "review"),
            (40.1, "review"),
            (49.9, "review"),
            (50.0, "review"),
            (50.1, "fail"),
        ],
    ),
    # NETTER-1 exclusion and Erasmus MC G1-G2: Ki-67 > 20 % fails
    (
        ("netter1", "erasmus"),
        "ki67",
        "ki67_percent",
        [(19.9, "pass"), (20.0, "pass"), (20.1, "fail")],
    ),
    # NETTER-1 (and default): creatinine > 150 umol/L fails
    (
        ("default", "netter1"),
        "creatinine",
        "creatinine_umol_l",
        [(149.9, "pass"), (150.0, "pass"), (150.1, "fail")],
    ),
    # Erasmus MC: creatinine < 150 umol/L passes (150 fails)
    (
        ("erasmus",),
        "creatinine",
        "creatinine_umol_l",
        [(149.9, "pass"), (150.0, "fail"), (150.1, "fail")],
    ),
    # NETTER-1: CrCl < 50 mL/min fails
    (
        ("default", "netter1"),
        "creatinine_clearance",
        "creatinine_clearance_ml_min",
        [(49.9, "fail"), (50.0, "pass"), (50.1, "pass")],
    ),
    # Erasmus MC: CrCl > 50 mL/min passes (50 fails)
    (
        ("erasmus",),
        "creatinine_clearance",
        "creatinine_clearance_ml_min",
        [(49.9, "fail"), (50.0, "fail"), (50.1, "pass")],
    ),
    # NETTER-1: Hb < 8.0 g/dL fails
    (
        ("default", "netter1"),
        "hemoglobin",
        "hemoglobin_g_dl",
        [(7.9, "fail"), (8.0, "pass"), (8.1, "pass")],
    ),
    # Erasmus MC: Hb >= 5.5 mmol/L passes
    (
        ("erasmus",),
        "hemoglobin",
        "hemoglobin_mmol_l",
        [(5.4, "fail"), (5.5, "pass"), (5.6, "pass")],
    ),
    # WBC < 2 x 10^9/L fails (NETTER-1), >= 2 passes (Erasmus MC)
    (
        ("default", "netter1", "erasmus"),
        "wbc",
        "wbc_10e9_l",
        [(1.9, "fail"), (2.0, "pass"), (2.1, "pass")],
    ),
    # NETTER-1: platelets < 75 fail
    (
        ("default", "netter1"),
        "platelets",
        "platelets_10e9_l",
        [(74.0, "fail"), (75.0, "pass"), (76.0, "pass")],
    ),
    # Erasmus MC: platelets >= 100 pass
    (
        ("erasmus",),
        "platelets",
        "platelets_10e9_l",
        [(99.0, "fail"), (100.0, "pass"), (101.0, "pass")],
    ),
    # bilirubin > 3 x ULN fails (both)
    (
        ("default", "netter1", "erasmus"),
        "bilirubin",
        "bilirubin_x_uln",
        [(2.9, "pass"), (3.0, "pass"), (3.1, "fail")],
    ),
    # NETTER-1: albumin < 3.0 g/dL excluded unless prothrombin time normal -> review
    (
        ("default", "netter1"),
        "albumin",
        "albumin_g_dl",
        [(2.9, "review"), (3.0, "pass"), (3.1, "pass")],
    ),
    # Erasmus MC: albumin >= 30 g/L
    (("erasmus",), "albumin", "albumin_g_l", [(29.9, "fail"), (30.0, "pass"), (30.1, "pass")]),
    # Karnofsky < 60 fails (steps of 10: 50 is just below)
    (
        ("default", "netter1", "erasmus"),
        "performance",
        "karnofsky",
        [(50, "fail"), (60, "pass"), (70, "pass")],
    ),
    # Oslo: other treatments tried first; none -> review (never fails)
    (
        ("default",),
        "prior_treatment",
        "prior_treatment_lines",
        [(0, "review"), (1, "pass"), (2, "pass")],
    ),
]


def _limit_params():
    for rule_sets, name, column, cases in LIMIT_CASES:
        for rule_set in rule_sets:
            for value, verdict in cases:
                yield pytest.param(
                    rule_set, name, column, value, verdict, id=f"{rule_set}-{column}-{value}"
                )


@pytest.mark.parametrize(("rule_set", "name", "column", "value", "verdict"), list(_limit_params()))
def test_every_criterion_at_and_around_its_limit(rule_set, name, column, value, verdict):
    result = _result(rule_set, name, **{column: value})
    assert result.verdict == verdict, result.reason
    assert result.value == pytest.approx(value)
    assert result.unit == getattr(CONFIGS[rule_set].clinical, name).unit
    assert result.limit == describe_limit(getattr(CONFIGS[rule_set].clinical, name))
    expected_source = {
        "default": "Oslo University Hospital",
        "netter1": "NETTER-1",
        "erasmus": "Erasmus MC",
    }
    assert expected_source[rule_set] in (result.source or "")


def test_limit_cases_cover_every_enabled_criterion_of_every_rule_set():
    covered = {(rs, name) for rule_sets, name, _, _ in LIMIT_CASES for rs in rule_sets}
    for rule_set, cfg in CONFIGS.items():
        for name, criterion in cfg.clinical.items():
            if criterion.enabled and name != "life_expectancy":
                assert (rule_set, name) in covered, (rule_set, name)


def test_rule_sets_enable_the_criteria_their_sources_name():
    enabled = {rs: [n for n, c in cfg.clinical.items() if c.enabled] for rs, cfg in CONFIGS.items()}
    organ = [
        "creatinine",
        "creatinine_clearance",
        "hemoglobin",
        "wbc",
        "platelets",
        "bilirubin",
        "albumin",
    ]
    assert enabled["default"] == ["ki67", *organ, "performance", "prior_treatment"]
    assert enabled["netter1"] == ["ki67", *organ, "performance"]
    assert enabled["erasmus"] == ["ki67", *organ, "performance", "life_expectancy"]
    assert set(ClinicalConfig.__dataclass_fields__) == set(CRITERIA) == set(CLINICAL_LIMIT_RANGES)


def test_limit_descriptions():
    d, n, e = (CONFIGS[k].clinical for k in ("default", "netter1", "erasmus"))
    assert describe_limit(d.ki67) == "pass < 40; review 40-50; fail > 50"
    assert describe_limit(n.ki67) == "pass <= 20; fail > 20"
    assert describe_limit(e.creatinine) == "pass < 150; fail >= 150"
    assert describe_limit(d.prior_treatment) == "pass >= 1; otherwise review"
    assert describe_limit(n.albumin) == (
        "pass >= 3; fail < 3 unless the prothrombin time is normal "
        "(not in the clinical file: review)"
    )
    assert judge_value(45.0, d.ki67) == "band" and judge_value(55.0, d.ki67) == "fail"
    with pytest.raises(ValueError, match="NaN"):
        judge_value(float("nan"), d.ki67)


# --------------------------------------------------------------------------- reasons, units


def test_reasons_state_value_limit_and_unit():
    assert _result("default", "ki67", ki67_percent=45).reason == (
        "Ki-67 45 % is in the review band (pass < 40; review 40-50; fail > 50)"
    )
    assert _result("netter1", "ki67", ki67_percent=25).reason == "Ki-67 25 % fails (> 20 %)"
    assert _result("netter1", "performance", karnofsky=70).reason == (
        "performance status Karnofsky 70 passes (>= Karnofsky 60)"
    )
    assert _result("netter1", "albumin", albumin_g_dl=2.8).reason == (
        "albumin 2.8 g/dL fails (< 3 g/dL) unless the prothrombin time is normal, which the "
        "clinical file does not show: a reader checks"
    )
    assert _result("default", "prior_treatment", prior_treatment_lines=0).reason == (
        "prior treatment 0 lines does not meet >= 1 lines; the rule set sends it to review "
        "rather than failing it"
    )


def test_hemoglobin_is_converted_to_the_criterion_unit():
    # NETTER-1 limit in g/dL, value in mmol/L: 5.0 mmol/L = 8.057 g/dL passes, 4.96 = 7.992 fails
    ok = _result("netter1", "hemoglobin", hemoglobin_mmol_l=5.0)
    assert ok.verdict == "pass" and ok.value == pytest.approx(8.0567, abs=1e-4)
    assert ok.unit == "g/dL" and "from 5 mmol/L; 1 g/dL = 0.6206 mmol/L" in ok.reason
    assert _result("netter1", "hemoglobin", hemoglobin_mmol_l=4.96).verdict == "fail"
    # Erasmus MC limit in mmol/L, value in g/dL: 8.8 g/dL = 5.461 mmol/L fails, 8.9 = 5.523 passes
    low = _result("erasmus", "hemoglobin", hemoglobin_g_dl=8.8)
    assert low.verdict == "fail" and low.value == pytest.approx(5.4613, abs=1e-4)
    assert low.unit == "mmol/L" and "from 8.8 g/dL" in low.reason
    assert _result("erasmus", "hemoglobin", hemoglobin_g_dl=8.9).verdict == "pass"


def test_albumin_is_converted_to_the_criterion_unit():
    erasmus = _result("erasmus", "albumin", albumin_g_dl=2.95)
    assert (erasmus.verdict, erasmus.value, erasmus.unit) == ("fail", pytest.approx(29.5), "g/L")
    netter = _result("netter1", "albumin", albumin_g_l=31.0)
    assert (netter.verdict, netter.value, netter.unit) == ("pass", pytest.approx(3.1), "g/dL")
    assert _result("netter1", "albumin", albumin_g_l=29.0).verdict == "review"


def test_creatinine_limit_in_mg_dl(tmp_path: Path):
    path = tmp_path / "mgdl.toml"
    path.write_text(
        'extends = "netter1"\n[clinical.creatinine]\nunit = "mg/dL"\n'
        "pass_limit = 1.7\nfail_limit = 1.7\n"
    )
    cfg = load_config(path)
    (res,) = [
        r
        for r in evaluate_criteria(_record(creatinine_umol_l=150.0), cfg.clinical)
        if r.name == "creatinine"
    ]
    assert (res.verdict, res.value, res.unit) == ("pass", pytest.approx(1.6968, abs=1e-4), "mg/dL")
    (res,) = [
        r
        for r in evaluate_criteria(_record(creatinine_umol_l=151.0), cfg.clinical)
        if r.name == "creatinine"
    ]
    assert res.verdict == "fail"  # 1.708 mg/dL > 1.7


@pytest.mark.parametrize(
    ("ecog", "verdict", "value"),
    [(1, "pass", "70-80"), (2, "review", "50-60"), (3, "fail", "30-40")],
)
def test_ecog_is_read_as_a_karnofsky_range(ecog, verdict, value):
    result = _result("netter1", "performance", ecog=ecog)
    assert (result.verdict, result.value) == (verdict, value)
    assert f"(ECOG {ecog})" in result.reason
    if verdict == "review":
        assert "spans the verdicts fail and pass" in result.reason


def test_cockcroft_gault_clearance_enters_the_renal_criterion():
    text = f"study_instance_uid,age_years,sex,weight_kg,creatinine_umol_l\n{UID},75,F,55,150\n"
    (record,) = parse_clinical(text, fmt="csv").records
    results = {r.name: r for r in evaluate_criteria(record, CONFIGS["netter1"].clinical)}
    crcl = results["creatinine_clearance"]
    assert crcl.verdict == "fail" and crcl.value == pytest.approx(24.8727, abs=1e-4)
    assert (
        "Cockcroft-Gault from age 75 y, sex F, weight 55 kg, creatinine 150 umol/L" in crcl.reason
    )
    assert results["creatinine"].verdict == "pass"  # 150 is not above 150 (NETTER-1)


def test_clearance_not_assessed_names_what_is_missing():
    result = _result(
        "netter1",
        "creatinine_clearance",
        age_years=60,
        sex="M",
        creatinine_umol_l=90,
        egfr_ml_min_1_73m2=62,
    )
    assert result.verdict == "not_assessed" and result.value is None
    assert result.reason == (
        "no creatinine_clearance_ml_min in the clinical record, and Cockcroft-Gault lacks "
        "weight_kg; an eGFR of 62 mL/min/1.73 m^2 is given, but the limit is on creatinine "
        "clearance: a reader compares"
    )


# --------------------------------------------------------------------------- missing values


def test_missing_values_are_not_assessed():
    results = evaluate_criteria(_record(ki67_percent=10), CONFIGS["erasmus"].clinical)
    verdicts = {r.name: r.verdict for r in results}
    assert verdicts["ki67"] == "pass"
    assert {n for n, v in verdicts.items() if v == "not_assessed"} == set(verdicts) - {"ki67"}
    life = next(r for r in results if r.name == "life_expectancy")
    assert (
        life.reason == "life expectancy is not a column of the clinical file: the reader judges it"
    )
    assert life.limit == "pass > 3; fail <= 3" and life.unit == "months"
    hb = next(r for r in results if r.name == "hemoglobin")
    assert hb.reason == "no hemoglobin_g_dl or hemoglobin_mmol_l in the clinical record"


def test_no_record_leaves_every_criterion_not_assessed():
    results = evaluate_criteria(None, CONFIGS["default"].clinical)
    assert len(results) == 10
    assert {r.verdict for r in results} == {"not_assessed"}
    assert {r.reason for r in results} == {NO_RECORD_REASON}
    assert all(r.source and r.limit and r.unit for r in results)


def test_summary_of_verdicts():
    def crit(verdict: str) -> CriterionResult:
        return CriterionResult(name="x", verdict=verdict, reason="r")

    assert summarize_criteria([crit("pass"), crit("not_assessed")]) == "pass"
    assert summarize_criteria([crit("pass"), crit("review")]) == "review"
    assert summarize_criteria([crit("review"), crit("fail")]) == "fail"


# --------------------------------------------------------------------------- decisions


def _eligible_imaging() -> tuple[tuple[Lesion, ...], tuple[ReferenceRegion, ...]]:
    liver = ReferenceRegion(
        organ="liver",
        mean=100.0,
        std=5.0,
        variance_of_mean=0.25,
        variance_method="poisson",
        method="test",
        radius_mm=15.0,
    )
    spleen = ReferenceRegion(
        organ="spleen",
        mean=400.0,
        std=10.0,
        variance_of_mean=1.0,
        variance_method="poisson",
        method="test",
        radius_mm=10.0,
    )
    avid = Lesion(
        id=1,
        diameter_mm=25.0,
        peak=300.0,
        mean=250.0,
        units="counts/pixel",
        ratio_liver=3.0,
        ratio_liver_ci=(2.8, 3.2),
        ratio_spleen=0.75,
        ratio_spleen_ci=(0.7, 0.8),
        spleen_reference_organ="spleen",
        grade=3,
        grade_range=(3, 3),
        borderline=False,
        region="liver",
        grading_method="test",
        ci_method="test",
        center_rc=(50.0, 60.0),
    )
    return (avid,), (liver, spleen)


ALL_PASS = dict(
    ki67_percent=10,
    creatinine_umol_l=80,
    creatinine_clearance_ml_min=90,
    hemoglobin_g_dl=13,
    wbc_10e9_l=6,
    platelets_10e9_l=250,
    bilirubin_x_uln=0.5,
    albumin_g_dl=4.0,
    karnofsky=90,
    prior_treatment_lines=1,
)


def _decide(rule_set: str, **values: float | int | str):
    cfg = CONFIGS[rule_set]
    lesions, refs = _eligible_imaging()
    criteria = evaluate_criteria(_record(**values), cfg.clinical)
    return decide_eligibility(lesions, refs, config=cfg, criteria=criteria)


def test_all_criteria_passing_keeps_the_imaging_decision():
    decision = _decide("default", **ALL_PASS)
    assert decision.imaging_status == "eligible" and decision.status == "eligible"
    assert len(decision.criteria) == 10 and {c.verdict for c in decision.criteria} == {"pass"}
    assert not any("not assessed" in r for r in decision.reasons)


def test_a_failed_criterion_makes_the_study_not_eligible_with_that_reason():
    decision = _decide("default", **{**ALL_PASS, "platelets_10e9_l": 60})
    assert (decision.imaging_status, decision.status) == ("eligible", "not_eligible")
    assert "platelets: platelets 60 10^9/L fails (< 75 10^9/L)" in decision.reasons


def test_a_review_band_value_sends_the_study_to_review():
    decision = _decide("default", **{**ALL_PASS, "ki67_percent": 45})
    assert decision.status == "needs_review"
    assert (
        "ki67: Ki-67 45 % is in the review band (pass < 40; review 40-50; fail > 50)"
        in decision.reasons
    )


def test_missing_values_do_not_force_review_and_the_decision_says_what_it_covers():
    values = {k: v for k, v in ALL_PASS.items() if k not in ("ki67_percent", "karnofsky")}
    decision = _decide("netter1", **values)
    assert decision.status == "eligible"
    assert decision.reasons[-1] == (
        "not assessed: ki67, performance; the decision covers imaging and the assessed "
        "criteria only"
    )
    by_name = {c.name: c for c in decision.criteria}
    assert by_name["ki67"].verdict == "not_assessed" and by_name["ki67"].value is None
    assert by_name["ki67"].limit == "pass <= 20; fail > 20"
    assert "NETTER-1" in (by_name["ki67"].source or "")


def test_erasmus_life_expectancy_is_always_not_assessed():
    values = {**ALL_PASS, "hemoglobin_g_dl": 13}
    decision = _decide("erasmus", **values)
    assert decision.status == "eligible"
    assert decision.reasons[-1] == (
        "not assessed: life_expectancy; the decision covers imaging and the assessed criteria only"
    )


# --------------------------------------------------------------------------- rule-set validation


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (
            '[clinical.ki67]\nunit = "fraction"\n',
            r"clinical.ki67.unit = 'fraction'; expected one of %",
        ),
        (
            '[clinical.hemoglobin]\nunit = "g/L"\n',
            r"clinical.hemoglobin.unit = 'g/L'; expected one of g/dL, mmol/L",
        ),
        (
            "[clinical.ki67]\nfail_limit = 120.0\n",
            r"clinical.ki67.fail_limit = 120.0 is outside the allowed range \[0.0, 100.0\] %",
        ),
        (
            '[clinical.ki67]\nfail_if = "<"\n',
            r"clinical.ki67: pass_if = '<' and fail_if = '<' point the same way",
        ),
        (
            "[clinical.ki67]\npass_limit = 60.0\n",
            r"clinical.ki67: 'value < 60' passes and 'value > 50' fails: the conditions overlap",
        ),
        (
            '[clinical.wbc]\nfail_if = "<="\n',
            r"clinical.wbc: 'value >= 2' passes and 'value <= 2' fails",
        ),
        ('[clinical.wbc]\npass_if = ">"\n', r"clinical.wbc: .*leave a single value between them"),
        (
            '[clinical.prior_treatment]\nfail_unless = "x"\n',
            r"clinical.prior_treatment.fail_unless = 'x' but fail_if = 'never'",
        ),
        (
            '[clinical.ki67]\nfail_if = "sometimes"\n',
            r"clinical.ki67.fail_if = 'sometimes'; expected one of <, <=, >, >=, never",
        ),
        ('[clinical.ki67]\nsource = ""\n', r"clinical.ki67.source must not be empty"),
        ("[clinical.ki67]\nbogus = 1\n", r"unknown key\(s\) bogus in \[clinical.ki67\]"),
        ("[clinical.ki67]\nenabled = 1\n", r"clinical.ki67.enabled = 1; expected true or false"),
    ],
)
def test_bad_clinical_tables_are_rejected(tmp_path: Path, body: str, match: str):
    path = tmp_path / "site.toml"
    path.write_text('extends = "default"\n' + body)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_a_site_rule_set_can_tighten_one_criterion(tmp_path: Path):
    path = tmp_path / "site.toml"
    path.write_text(
        'extends = "netter1"\n[clinical.platelets]\npass_limit = 100.0\nfail_limit = 100.0\n'
        'source = "site: platelets >= 100"\n'
    )
    cfg = load_config(path)
    assert cfg.clinical.platelets.pass_limit == 100.0
    assert cfg.clinical.ki67 == CONFIGS["netter1"].clinical.ki67
