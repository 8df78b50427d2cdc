"""Tracer check: SSTR tracers scored, others refused, unnamed ones only with assume_sstr."""

from __future__ import annotations

import pytest

from octoscan.imaging.errors import UnsupportedAcquisitionError
from octoscan.imaging.types import AcquisitionInfo
from octoscan.models.tracer import check_tracer, normalise_radionuclide


@pytest.mark.parametrize(
    ("nuclide", "pharm", "expected"),
    [
        ("In-111", "pentetreotide", "111In-pentetreotide"),
        ("^111^Indium", "Indium (111-In) pentetreotide", "111In-pentetreotide"),
        ("In-111", "OctreoScan", "111In-pentetreotide"),
        ("In-111", "111In-DTPA-octreotide", "111In-pentetreotide"),
        ("Tc-99m", "99mTc-EDDA/HYNIC-TOC", "99mTc-EDDA/HYNIC-TOC"),
        ("Tc-99m", "Tektrotyd", "99mTc-EDDA/HYNIC-TOC"),
        ("Ga-68", "DOTATATE", "68Ga-DOTATATE"),
        ("Ga-68", "Ga-68 DOTA-TATE (NETSPOT)", "68Ga-DOTATATE"),
        ("Ga-68", "edotreotide", "68Ga-DOTATOC"),
        ("Ga-68", "DOTA-NOC", "68Ga-DOTANOC"),
        ("Cu-64", "Detectnet", "64Cu-DOTATATE"),
        ("Lu-177", "Lutathera", "177Lu-DOTATATE"),
        ("Lu-177", "177Lu-DOTATOC", "177Lu-DOTATOC"),
    ],
)
def test_sstr_tracers_are_scored(nuclide: str, pharm: str, expected: str) -> None:
    check = check_tracer(
        AcquisitionInfo(radionuclide=nuclide, radiopharmaceutical=pharm), assume_sstr=False
    )
    assert check.tracer == expected
    assert not check.assumed
    assert check.evidence == "radiopharmaceutical"
    assert check.warnings == ()


@pytest.mark.parametrize(
    ("nuclide", "pharm", "what"),
    [
        ("Tc-99m", "Tc99m-MDP", "bone scan"),
        ("Tc-99m", "medronate", "bone scan"),
        ("Tc-99m", "Tc-99m MAA", "lung perfusion"),
        ("Tc-99m", "DMSA", "renal cortical"),
        ("Tc-99m", "mertiatide", "MAG3"),
        ("F-18", "Fludeoxyglucose", "FDG"),
        ("Ga-68", "PSMA-11", "PSMA"),
        ("I-123", "iobenguane", "MIBG"),
        ("In-111", "In-111 oxine leukocytes", "leukocytes"),
        ("F-18", "F-DOPA", "F-DOPA"),
    ],
)
def test_named_other_tracers_are_refused(nuclide: str, pharm: str, what: str) -> None:
    acq = AcquisitionInfo(radionuclide=nuclide, radiopharmaceutical=pharm)
    with pytest.raises(UnsupportedAcquisitionError, match=what) as info:
        check_tracer(acq, assume_sstr=True)  # assume_sstr never overrides a named agent
    assert info.value.code == "not_sstr_tracer"
    assert "not a somatostatin-receptor tracer" in str(info.value)


def test_radionuclide_without_sstr_agent_is_refused_even_when_assumed() -> None:
    acq = AcquisitionInfo(radionuclide="I-131", radiopharmaceutical=None)
    with pytest.raises(UnsupportedAcquisitionError, match=r"I-131 .* has no somatostatin") as info:
        check_tracer(acq, assume_sstr=True)
    assert info.value.code == "not_sstr_tracer"


def test_unnamed_indium_needs_assume_sstr() -> None:
    acq = AcquisitionInfo(radionuclide="In-111", radiopharmaceutical=None)
    with pytest.raises(UnsupportedAcquisitionError, match=r"most often pentetreotide") as info:
        check_tracer(acq, assume_sstr=False)
    assert info.value.code == "unknown_tracer"
    assert "--assume-sstr" in str(info.value)
    check = check_tracer(acq, assume_sstr=True)
    assert check.assumed
    assert check.tracer == "unknown (In-111)"
    assert check.evidence == "assume_sstr"
    assert any("--assume-sstr" in w for w in check.warnings)


def test_unrecognised_name_is_unknown() -> None:
    acq = AcquisitionInfo(radionuclide="Ga-68", radiopharmaceutical="compound X-17")
    with pytest.raises(UnsupportedAcquisitionError, match=r"tracer not identified") as info:
        check_tracer(acq, assume_sstr=False)
    assert info.value.code == "unknown_tracer"
    assert check_tracer(acq, assume_sstr=True).tracer == "unknown (Ga-68)"


def test_nothing_known_is_unknown() -> None:
    with pytest.raises(UnsupportedAcquisitionError, match=r"unknown radionuclide"):
        check_tracer(AcquisitionInfo(), assume_sstr=False)
    assert check_tracer(AcquisitionInfo(), assume_sstr=True).tracer == "unknown"


def test_series_description_identifies_with_a_warning() -> None:
    acq = AcquisitionInfo(radionuclide="In-111", series_description="OCTREO WB 24H")
    check = check_tracer(acq, assume_sstr=False)
    assert check.tracer == "111In-octreotide"
    assert check.evidence == "series description"
    assert check.warnings and "series description" in check.warnings[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("In-111", "In-111"),
        ("^111^Indium", "In-111"),
        ("Indium-111", "In-111"),
        ("111In", "In-111"),
        ("99mTc", "Tc-99m"),
        ("Tc-99m", "Tc-99m"),
        ("Tc99m", "Tc-99m"),
        ("Technetium Tc-99m", "Tc-99m"),
        ("Lu177", "Lu-177"),
        ("18F", "F-18"),
        ("^68^Gallium", "Ga-68"),
        ("Indium", None),
        ("", None),
        (None, None),
        ("banana", None),
    ],
)
def test_normalise_radionuclide(text: str | None, expected: str | None) -> None:
    assert normalise_radionuclide(text) == expected
