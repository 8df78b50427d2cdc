"""``octoscan score`` on tomographic studies: the real 177Lu-DOTATATE SPECT (issue 8, item 7),
a planar + SPECT/CT phantom scored into one decision, and a PET/CT phantom with SUV."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from octoscan.imaging.volume import load_spect
from octoscan.pipelines.cli import main
from octoscan.pipelines.result_json import validate_result
from tests.models.test_tomo_real import SCAN, _outlines


def _score(folder: Path, out: Path, *extra: str) -> dict:
    assert main(["score", str(folder), "--out", str(out), *extra]) == 0
    result = json.loads((out / "result.json").read_text())
    validate_result(result)
    return result


def _phantom(tmp_path: Path, name: str, *args: str) -> Path:
    folder = tmp_path / name
    assert main(["phantom", str(folder), *args]) == 0
    return folder


@pytest.mark.skipif(not (SCAN / "image").is_dir(), reason=f"real Lu-177 SPECT absent ({SCAN})")
def test_real_lu177_spect_is_scored_and_finds_the_outlined_lesions(tmp_path, capsys) -> None:
    # Lu-177 alone is refused (it is also used with PSMA ligands): the user names the agent
    assert main(["score", str(SCAN), "--out", str(tmp_path / "refused")]) == 1
    assert "rerun with --assume-sstr" in capsys.readouterr().err
    result = _score(SCAN, tmp_path / "out", "--radiopharmaceutical", "DOTATATE")
    assert result["tracer"]["name"] == "177Lu-DOTATATE"
    assert result["tracer"]["radionuclide"] == "Lu-177"
    assert result["tracer"]["radiopharmaceutical"] == "DOTATATE"
    assert result["modalities_used"] == ["SPECT"]
    assert any("named by the user" in w for w in result["warnings"])
    assert {"liver", "spleen"} <= set(result["references"])
    assert result["references"]["liver"]["mean"] < result["references"]["spleen"]["mean"]
    assert result["provenance"]["tomographic"]["ct_fused"] is False
    volume = load_spect(sorted(p for p in (SCAN / "image").iterdir() if p.is_file()))
    voxel_ml = float(np.prod(volume.spacing_mm)) / 1000.0
    centres = np.array([les["center_lps_mm"] for les in result["lesions"]])
    assert all(les["grading_source"] == "tomographic" for les in result["lesions"])
    for name, mask in _outlines(volume).items():
        centroid = volume.index_to_lps(np.argwhere(mask).mean(axis=0)[None, :])[0]
        diameter = (6.0 * float(mask.sum()) * voxel_ml * 1000.0 / math.pi) ** (1.0 / 3.0)
        nearest = float(np.min(np.linalg.norm(centres - centroid, axis=1)))
        assert nearest <= max(20.0, diameter / 2.0), (name, nearest)
    assert result["decision"]["status"] in ("eligible", "needs_review", "not_eligible")
    assert result["decision"]["reasons"]


def test_planar_and_spect_ct_phantom_give_one_decision(tmp_path) -> None:
    folder = _phantom(tmp_path, "all", "--seed", "3", "--kind", "all", "--ct-slices", "80")
    result = _score(folder, tmp_path / "out")
    assert result["modalities_used"] == ["NM planar", "SPECT", "CT"]
    tomo = result["provenance"]["tomographic"]
    assert tomo["modality"] == "spect" and tomo["ct_fused"] is True
    lesions = result["lesions"]
    linked = [les for les in lesions if les["center_rc"] and les["center_lps_mm"]]
    if not linked:
        assert any("not linked" in w for w in result["warnings"])
    else:
        assert all(les["grading_source"] == "tomographic" for les in linked)
        assert all(isinstance(les["linked_planar_id"], int) for les in linked)
    # tomography decides inside its field: every tomographic lesion carries its own figures
    tomographic = [les for les in lesions if les["grading_source"] == "tomographic"]
    assert tomographic
    for les in tomographic:
        assert les["volume_ml"] > 0 and les["recovery_coefficient"] > 0
        assert les["ratio_liver_uncorrected"] is not None
        assert les["tomographic_id"] == les["id"]
    # a planar-only entry never enters the decision when it lies inside the field
    for les in lesions:
        if les["grading_source"] == "planar" and not les["used_for_decision"]:
            assert any("not found there" in w for w in les["warnings"])
    # one decision, with the references of the SPECT
    assert result["decision"]["status"] in ("eligible", "needs_review", "not_eligible")
    assert result["references"]["liver"]["region"]["shape"] == "sphere"
    assert result["provenance"]["planar_references"]["liver"]["region"]["shape"] == "circle"
    assert len({les["id"] for les in lesions}) == len(lesions)


def test_pet_ct_phantom_reports_suv(tmp_path) -> None:
    folder = _phantom(tmp_path, "pet", "--seed", "4", "--kind", "pet-ct", "--ct-slices", "40")
    result = _score(folder, tmp_path / "out")
    assert result["modalities_used"][0] == "PET"
    assert result["tracer"]["name"].startswith("68Ga-")
    assert result["decision"]["uptake_rule"] == "significantly_above_liver"
    assert result["lesions"]
    for les in result["lesions"]:
        # SUVpeak (1 mL sphere) may fall below SUVmean of a lesion smaller than the sphere
        assert les["suv_max"] >= les["suv_peak"] > 0
        assert les["suv_max"] >= les["suv_mean"] > 0
        assert les["ratio_liver"] > 0
