"""The emission resolution measured at the CT liver outline, and how the scorer uses it."""

from __future__ import annotations

import dataclasses

import pytest

from octoscan.models.config import load_config
from octoscan.models.tomo_resolution import liver_edge_resolution
from octoscan.models.tomo_score import score_tomographic
from tests.models import tomo_builders as tb


def _measure(fwhm_mm: float, *, with_ct: bool = True):
    emission = tb.emission_volume(fwhm_mm=fwhm_mm, resolution_fwhm_mm=None)
    found = tb.detect(emission, ct=tb.ct_volume() if with_ct else None)
    image = found.grid.reduce(emission.array)
    return liver_edge_resolution(image, found.grid, found.organs, assumed_fwhm_mm=13.0)


@pytest.mark.parametrize("fwhm_mm", [6.0, 10.0, 16.0])
def test_measured_fwhm_follows_the_blur(fwhm_mm: float) -> None:
    est = _measure(fwhm_mm)
    assert est is not None
    # within 12 % whatever the assumed 13 mm: the fit does not lean on its starting point
    assert est.fwhm_mm == pytest.approx(fwhm_mm, rel=0.12)
    assert 0.0 < est.fwhm_se_mm < 0.1 * est.fwhm_mm
    assert abs(est.offset_mm) < 4.0


def test_no_measurement_without_a_ct_liver() -> None:
    assert _measure(10.0, with_ct=False) is None


def test_no_measurement_on_anisotropic_voxels() -> None:
    # 6 x 3 x 3 mm voxels: the outline's quantisation depends on the surface's direction
    emission = tb.emission_volume(
        fwhm_mm=10.0, resolution_fwhm_mm=None, shape=(42, 118, 138), spacing_mm=(6.0, 3.0, 3.0)
    )
    found = tb.detect(emission, ct=tb.ct_volume())
    assert max(found.grid.spacing_mm) > 1.25 * min(found.grid.spacing_mm)
    image = found.grid.reduce(emission.array)
    assert liver_edge_resolution(image, found.grid, found.organs, assumed_fwhm_mm=13.0) is None


def _score(fwhm_mm: float, *, ct: bool = True, carried: float | None = None, **resolution):
    config = load_config("default")
    if resolution:
        tomo = dataclasses.replace(
            config.tomo, resolution=dataclasses.replace(config.tomo.resolution, **resolution)
        )
        config = dataclasses.replace(config, tomo=tomo)
    emission = tb.emission_volume(fwhm_mm=fwhm_mm, resolution_fwhm_mm=carried)
    return score_tomographic(
        emission, ct=tb.ct_volume() if ct else None, config=config, tomo=config.tomo
    )


def test_scorer_uses_the_measured_resolution() -> None:
    score = _score(8.0)
    assert score.resolution_source == "measured at the CT liver outline"
    assert score.resolution_fwhm_mm == pytest.approx(8.0, rel=0.12)
    assert any("measured at the CT liver outline" in w for w in score.warnings)


def test_a_measurement_close_to_the_default_keeps_the_default() -> None:
    # 12.5 mm measures within 15 % of the configured 13 mm: the default stands, confirmed
    score = _score(12.5)
    assert score.resolution_fwhm_mm == 13.0
    assert (
        score.resolution_source == "configured default for SPECT, confirmed at the CT liver outline"
    )
    strict = _score(12.5, measured_agreement=0.0)
    assert strict.resolution_source == "measured at the CT liver outline"
    assert strict.resolution_fwhm_mm == pytest.approx(12.5, rel=0.12)


def test_a_resolution_carried_by_the_volume_wins() -> None:
    score = _score(8.0, carried=11.0)
    assert (score.resolution_source, score.resolution_fwhm_mm) == ("volume", 11.0)


def test_default_without_ct_when_switched_off_or_implausible() -> None:
    no_ct = _score(8.0, ct=False)
    assert no_ct.resolution_source == "configured default for SPECT"
    assert no_ct.resolution_fwhm_mm == 13.0
    assert any("no CT fused" in w for w in no_ct.warnings)
    off = _score(8.0, measure_at_liver_edge=False)
    assert (off.resolution_source, off.resolution_fwhm_mm) == (
        "configured default for SPECT",
        13.0,
    )
    # 8 mm measured is below 0.7 x 13 mm: taken as a failed measurement, the default stays
    narrow = _score(8.0, measured_min_factor=0.7)
    assert (narrow.resolution_source, narrow.resolution_fwhm_mm) == (
        "configured default for SPECT",
        13.0,
    )
    assert any("outside 0.7-2 x the configured 13 mm" in w for w in narrow.warnings)
