"""Synthetic planar whole-body studies for the models tests.

A deliberately simple 2-D conjugate-view model, independent of the phantom generator in
``octoscan.imaging.phantom``: analytic ellipsoids (organs, lesions) inside an elliptic body,
each projected as chord length x concentration, attenuated to the anterior and posterior body
surface from the object's centre depth, blurred with a Gaussian of the planar resolution and
drawn with Poisson noise. Anterior view: patient right on the image left, head at row 0;
the posterior view is stored as its camera sees it (mirrored left-right) and offset by a
known shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pytest
from scipy import ndimage

from octoscan.imaging.types import AcquisitionInfo, PlanarImage, SeriesKind, SourceRef, View

MU_PER_MM = 0.012
SOFT_TISSUE = 0.05


@dataclass(frozen=True)
class Blob:
    """An ellipsoid: centre (x lateral mm, + = patient left; z mm below the vertex; y depth mm,
    + = posterior), semi-axes (x, y, z) mm and concentration (relative to normal liver)."""

    name: str
    x: float
    z: float
    y: float
    a: float
    b: float
    c: float
    conc: float


@dataclass(frozen=True)
class BodySpec:
    """A synthetic whole-body study."""

    spacing_mm: float = 4.8
    height_mm: float = 1700.0
    torso_width_mm: float = 340.0
    torso_depth_mm: float = 220.0
    counts: float = 2.0e6
    fwhm_mm: float = 12.0
    posterior_shift_rc: tuple[int, int] = (2, -1)  # rows, cols (pixels) of the posterior head
    spleen: bool = True
    liver_conc: float = 1.0
    lesions: tuple[Blob, ...] = ()
    seed: int = 1
    extra: tuple[Blob, ...] = field(default_factory=tuple)


LIVER_LESION = Blob("liver_lesion", -85.0, 470.0, -20.0, 16.0, 16.0, 16.0, 4.0)
ABDOMEN_LESION = Blob("abdomen_lesion", 15.0, 700.0, -10.0, 13.0, 13.0, 13.0, 10.0)
SPLEEN_LESION = Blob("spleen_lesion", 128.0, 585.0, 20.0, 14.0, 14.0, 14.0, 18.0)
THREE_LESIONS = (LIVER_LESION, ABDOMEN_LESION, SPLEEN_LESION)


def organ_blobs(spec: BodySpec) -> list[Blob]:
    organs = [
        Blob("liver", -65.0, 520.0, -10.0, 95.0, 80.0, 85.0, spec.liver_conc),
        Blob("kidney_right", -65.0, 630.0, 55.0, 28.0, 25.0, 55.0, 3.5),
        Blob("kidney_left", 65.0, 615.0, 55.0, 28.0, 25.0, 55.0, 3.5),
        Blob("bladder", 0.0, 880.0, -30.0, 45.0, 35.0, 35.0, 2.0),
    ]
    if spec.spleen:
        organs.append(Blob("spleen", 112.0, 500.0, 40.0, 33.0, 45.0, 55.0, 5.0))
    return organs


def _chord(x: np.ndarray, z: np.ndarray, blob: Blob) -> np.ndarray:
    u2 = ((x - blob.x) / blob.a) ** 2 + ((z - blob.z) / blob.c) ** 2
    return 2.0 * blob.b * np.sqrt(np.clip(1.0 - u2, 0.0, None))


def body_half_depth(x: np.ndarray, z: np.ndarray, spec: BodySpec) -> np.ndarray:
    """Half of the body's thickness (mm) along the projection at (x, z)."""
    w, d = spec.torso_width_mm / 2.0, spec.torso_depth_mm / 2.0
    head = 95.0 * np.sqrt(np.clip(1 - (x / 75.0) ** 2 - ((z - 110.0) / 110.0) ** 2, 0, None))
    neck = np.where(
        (z >= 215) & (z < 290), 55.0 * np.sqrt(np.clip(1 - (x / 55.0) ** 2, 0, None)), 0
    )
    torso = np.where((z >= 280) & (z < 930), d * np.sqrt(np.clip(1 - (x / w) ** 2, 0, None)), 0.0)
    legs = np.zeros_like(x)
    for lx in (-w / 2.0, w / 2.0):
        legs = np.maximum(
            legs,
            np.where(
                (z >= 900) & (z < spec.height_mm - 20),
                70.0 * np.sqrt(np.clip(1 - ((x - lx) / 70.0) ** 2, 0, None)),
                0.0,
            ),
        )
    return np.maximum.reduce([head, neck, torso, legs])


def expected_views(spec: BodySpec) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free anterior and posterior views on the anterior grid (posterior unmirrored)."""
    s = spec.spacing_mm
    rows = round(spec.height_mm / s) + 20
    cols = round((spec.torso_width_mm + 160.0) / s)
    z = (np.arange(rows)[:, None] - 10) * s + np.zeros((1, cols))
    x = (np.arange(cols)[None, :] - (cols - 1) / 2.0) * s + np.zeros((rows, 1))
    half = body_half_depth(x, z, spec)
    # soft tissue: uniform, attenuated to the body centre on both sides
    att_mid = np.exp(-MU_PER_MM * half)
    a = SOFT_TISSUE * 2.0 * half * att_mid
    p = a.copy()
    for blob in (*organ_blobs(spec), *spec.lesions, *spec.extra):
        chord = _chord(x, z, blob)
        front = np.clip(half + blob.y, 0.0, None)
        back = np.clip(half - blob.y, 0.0, None)
        net = blob.conc - SOFT_TISSUE
        if blob.name.startswith("liver_lesion"):
            net = blob.conc - spec.liver_conc
        a = a + net * chord * np.exp(-MU_PER_MM * front)
        p = p + net * chord * np.exp(-MU_PER_MM * back)
    sigma = spec.fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0))) / s
    a = ndimage.gaussian_filter(np.clip(a, 0, None), sigma)
    p = ndimage.gaussian_filter(np.clip(p, 0, None), sigma)
    scale = spec.counts / float(a.sum())
    return a * scale, p * scale


def lesion_rc(blob: Blob, spec: BodySpec) -> tuple[float, float]:
    """(row, col) of a blob's centre on the anterior grid."""
    s = spec.spacing_mm
    cols = round((spec.torso_width_mm + 160.0) / s)
    return (blob.z / s + 10.0, blob.x / s + (cols - 1) / 2.0)


def planar_pair(
    spec: BodySpec,
    *,
    hours: float | None = 24.0,
    acquisition: AcquisitionInfo | None = None,
    series_uid: str = "1.2.826.0.1.3680043.10.1.2",
) -> tuple[PlanarImage, PlanarImage, np.ndarray, np.ndarray]:
    """(anterior, posterior as stored, noise-free anterior, noise-free posterior aligned)."""
    a_exp, p_exp = expected_views(spec)
    rng = np.random.default_rng(spec.seed)
    dr, dc = spec.posterior_shift_rc
    p_cam = np.roll(p_exp, (dr, dc), axis=(0, 1))[:, ::-1]
    a = rng.poisson(a_exp).astype(np.float32)
    p = rng.poisson(p_cam).astype(np.float32)
    acq = acquisition or AcquisitionInfo(
        modality="NM",
        radionuclide="In-111",
        radiopharmaceutical="pentetreotide",
        hours_post_injection=hours,
    )
    src = SourceRef("1.2.826.0.1.3680043.10.1.1", series_uid)
    sp = (spec.spacing_mm, spec.spacing_mm)
    ant = PlanarImage(a, View.ANTERIOR, "test", sp, acq, src, SeriesKind.PLANAR_WHOLE_BODY)
    post = PlanarImage(p, View.POSTERIOR, "test", sp, acq, src, SeriesKind.PLANAR_WHOLE_BODY)
    return ant, post, a_exp, p_exp


@pytest.fixture(scope="session")
def three_lesion_spec() -> BodySpec:
    return BodySpec(lesions=THREE_LESIONS)


@pytest.fixture(scope="session")
def three_lesion_study(three_lesion_spec: BodySpec):
    return planar_pair(three_lesion_spec)


@pytest.fixture(scope="session")
def lesion_free_study():
    return planar_pair(BodySpec(lesions=(), seed=7))


def with_spec(spec: BodySpec, **changes: object) -> BodySpec:
    return replace(spec, **changes)  # type: ignore[arg-type]


class _Synth:
    """Namespace handed to tests by the ``synth`` fixture (conftest helpers are not importable
    under ``--import-mode=importlib``)."""

    BodySpec = BodySpec
    Blob = Blob
    THREE_LESIONS = THREE_LESIONS
    LIVER_LESION = LIVER_LESION
    ABDOMEN_LESION = ABDOMEN_LESION
    SPLEEN_LESION = SPLEEN_LESION
    planar_pair = staticmethod(planar_pair)
    expected_views = staticmethod(expected_views)
    lesion_rc = staticmethod(lesion_rc)
    organ_blobs = staticmethod(organ_blobs)
    with_spec = staticmethod(with_spec)


@pytest.fixture(scope="session")
def synth() -> type[_Synth]:
    return _Synth
