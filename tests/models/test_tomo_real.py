"""Tomographic scoring of a real post-therapy 177Lu-DOTATATE SPECT (no CT) against the
experts' RTSTRUCT outlines of two liver lesions (../shared/data/real-dicom, MANIFEST.md).

The RTSTRUCT is read here with pydicom (models never read DICOM); its closed planar contours
are filled on the SPECT grid to give each outlined lesion's mask, volume and centroid in LPS
mm. The criteria are relative and physical (distances against the lesion's size, references
outside the outlines and at uptake levels in the physiological order), not this volume's
numbers, so they must hold for the same patient's other time points as well. Those time
points are not in the repository; two are emulated from this one (``_time_point``): a late
one with four times fewer counts and the higher relative noise that brings, and an early one
with activity still in the blood pool and soft tissue, which lowers every contrast. The same
checks run on both.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from scipy import ndimage
from skimage.draw import polygon

from octoscan.imaging.types import Volume
from octoscan.imaging.volume import load_spect
from octoscan.models.config import load_config
from octoscan.models.tomo_score import TomoScore, score_tomographic
from tests.models.tomo_builders import tomo_config

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-dicom"
if not REAL.is_dir():
    REAL = Path("/work/shared/data/real-dicom")
SCAN = REAL / "mirp-umich-lu177-spect" / "SCAN_001"
pytestmark = pytest.mark.skipif(
    not (SCAN / "image").is_dir() or not (SCAN / "mask").is_dir(),
    reason=f"real Lu-177 SPECT sample absent ({SCAN})",
)


def _outlines(volume: Volume) -> dict[str, np.ndarray]:
    """ROI name -> boolean mask on the SPECT grid, from the RTSTRUCT's closed contours."""
    files = sorted(p for p in (SCAN / "mask").iterdir() if p.is_file())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(files[0])
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    out: dict[str, np.ndarray] = {}
    for roi in ds.ROIContourSequence:
        mask = np.zeros(volume.shape, dtype=bool)
        for contour in roi.ContourSequence:
            points = np.asarray(contour.ContourData, dtype=np.float64).reshape(-1, 3)
            idx = volume.lps_to_index(points)
            plane = round(float(np.median(idx[:, 0])))
            rr, cc = polygon(idx[:, 1], idx[:, 2], shape=volume.shape[1:])
            mask[plane, rr, cc] = True
        out[names[int(roi.ReferencedROINumber)]] = mask
    return out


def _score(volume: Volume) -> TomoScore:
    return score_tomographic(
        volume,
        ct=None,
        config=load_config("default"),
        tomo=tomo_config(),
        radiopharmaceutical="DOTATATE",  # post-therapy 177Lu-DOTATATE, not named in headers
    )


@pytest.fixture(scope="module")
def scored() -> tuple[Volume, TomoScore, dict[str, np.ndarray]]:
    files = sorted(p for p in (SCAN / "image").iterdir() if p.is_file())
    volume = load_spect(files)
    return volume, _score(volume), _outlines(volume)


def _time_point(volume: Volume, liver_level: float, which: str) -> Volume:
    """The volume as another time point of the same therapy might show it (Bq/mL).

    "late": four times fewer counts (decay and washout): values / 4, with Gaussian noise
    added whose variance is proportional to the value (Poisson-like, correlated over about
    one voxel as reconstructed noise is) and 15 % x sqrt(3) of the liver level at the
    liver, so that relative noise doubles if this scan's own noise is about 15 %.
    "early": activity still circulating: the body's median uptake added smoothly everywhere
    in the body (blood pool and soft tissue); where a lesion's surroundings are at that
    level, its contrast halves."""
    a = np.asarray(volume.array, dtype=np.float64)
    rng = np.random.default_rng(177)
    if which == "late":
        noise = ndimage.gaussian_filter(rng.standard_normal(a.shape), 1.0)
        noise /= noise.std()
        sd = 0.15 * np.sqrt(3.0) * np.sqrt(np.maximum(a, 0.0) * liver_level)
        out = np.maximum(a + sd * noise, 0.0) / 4.0
    else:
        body = a > 0.05 * float(np.percentile(a, 99.9))
        level = float(np.median(a[body]))
        out = a + level * ndimage.gaussian_filter(body.astype(np.float64), 3.0)
    return dataclasses.replace(volume, array=out.astype(np.float32))


@pytest.fixture(scope="module", params=["late", "early"])
def other_time_point(request, scored) -> tuple[Volume, TomoScore, dict[str, np.ndarray]]:
    volume, score, outlines = scored
    liver = score.reference("liver")
    assert liver is not None
    emulated = _time_point(volume, liver.mean, request.param)
    return emulated, _score(emulated), outlines


def test_outlines_read_as_expected(scored) -> None:
    volume, _, outlines = scored
    voxel_ml = float(np.prod(volume.spacing_mm)) / 1000.0
    volumes = {name: float(m.sum()) * voxel_ml for name, m in outlines.items()}
    assert set(volumes) == {"lesion1 liver R lobe", "lesion2 liver L lateral"}
    assert volumes["lesion1 liver R lobe"] == pytest.approx(107.0, rel=0.1)
    assert volumes["lesion2 liver L lateral"] == pytest.approx(3.0, rel=0.3)


def test_scored_as_sstr_spect_without_ct(scored) -> None:
    _, score, _ = scored
    assert score.tracer == "177Lu-DOTATATE" and not score.tracer_assumed
    assert score.modality == "spect" and score.units == "Bq/mL"
    assert not score.ct_fused and score.organ_method == "emission"
    assert any("no CT fused" in w for w in score.warnings)


def test_both_outlined_lesions_found(scored) -> None:
    _check_lesions(*scored)


def test_references_in_normal_liver_and_spleen(scored) -> None:
    _check_references(*scored)


def test_other_time_points(other_time_point) -> None:
    _check_lesions(*other_time_point)
    _check_references(*other_time_point)


def _check_lesions(volume: Volume, score: TomoScore, outlines: dict[str, np.ndarray]) -> None:
    for name, mask in outlines.items():
        centroid = volume.index_to_lps(np.argwhere(mask).mean(axis=0))
        voxel_ml = float(np.prod(volume.spacing_mm)) / 1000.0
        diameter = (6.0 * float(mask.sum()) * voxel_ml * 1000.0 / np.pi) ** (1.0 / 3.0)
        tolerance = max(20.0, diameter / 2.0)
        distances = [
            float(np.linalg.norm(np.subtract(les.center_lps_mm, centroid))) for les in score.lesions
        ]
        best = int(np.argmin(distances))
        assert distances[best] <= tolerance, f"{name}: nearest lesion {distances[best]:.0f} mm"
        lesion = score.lesions[best]
        # an outlined liver metastasis: found in the liver, and far hotter than normal liver
        assert lesion.region == "liver"
        assert lesion.grade is not None and lesion.grade >= 3
        assert lesion.mask is not None and (lesion.mask & mask).any()


def _check_references(_: Volume, score: TomoScore, outlines: dict[str, np.ndarray]) -> None:
    liver, spleen = score.reference("liver"), score.reference("spleen")
    assert liver is not None and spleen is not None
    assert liver.plausible and spleen.plausible
    organ = {o.organ: o for o in score.organs}
    midline = float(np.median([o.center_lps_mm[0] for o in score.organs if "kidney" in o.organ]))
    for ref in (liver, spleen):
        assert ref.mask is not None
        for mask in outlines.values():
            assert not (ref.mask & mask).any()
        # inside its organ, on the anatomically right side (LPS x < 0 is patient right)
        assert organ[ref.organ].mask[ref.mask].mean() > 0.95
        for lesion in score.lesions:
            assert not (ref.mask & lesion.mask).any()
    assert liver.center_lps_mm[0] < midline < spleen.center_lps_mm[0]
    # plausible uptake: the liver VOI near the liver's typical level (not a lesion, not an
    # edge), the spleen well above the liver as SSTR physiology has it
    assert 0.7 < liver.mean / organ["liver"].mean < 1.5
    assert spleen.mean > 2.0 * liver.mean
    assert all(les.peak > liver.mean for les in score.lesions if les.region == "liver")


def test_decision_is_reasoned(scored) -> None:
    _, score, _ = scored
    assert score.decision.status in ("eligible", "needs_review")
    assert score.decision.reasons
