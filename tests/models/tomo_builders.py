"""Builders for the tomographic-scoring tests: the shipped ``[tomo]`` table and a small
synthetic abdomen (emission volume and CT) whose truth is known exactly.

The synthetic body is an elliptic cylinder of soft tissue with a liver on the patient's right
(LPS x < 0), a spleen on the left and posterior, two kidneys beside the spine and spherical
lesions. Concentrations are relative to normal liver (1.0 = ``LIVER_COUNTS`` counts per mL);
the emission image is the concentration sampled with 2 x 2 x 2 sub-voxels (partial volume),
blurred by a Gaussian of ``fwhm_mm`` and given correlated Gaussian noise whose variance is
proportional to the local mean (``noise_cov`` at the liver's level).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from octoscan.imaging.types import AcquisitionInfo, SeriesKind, SourceRef, Volume
from octoscan.models.config import config_to_dict, load_config
from octoscan.models.tomo_config import TomoConfig
from octoscan.models.tomo_lesions import DetectionResult, detect_lesions
from octoscan.models.tomo_organs import OrganMaps, locate_organs
from octoscan.models.tomo_pairing import WorkingGrid, resample_ct_to, working_grid

LIVER_COUNTS = 100.0
STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
FRAME_UID = "1.2.826.0.1.3680043.8.498.9"


def tomo_raw() -> dict:
    """The ``[tomo]`` table of the shipped default rule set as nested dicts (a fresh copy)."""
    return config_to_dict(load_config("default"))["tomo"]


def tomo_config() -> TomoConfig:
    """The shipped defaults (``[tomo]`` of configs/default.toml) as a validated TomoConfig."""
    return load_config("default").tomo


@dataclass(frozen=True)
class Sphere:
    """A spherical lesion: centre (LPS mm), radius (mm), concentration / normal liver."""

    centre: tuple[float, float, float]
    radius_mm: float
    ratio_liver: float

    @property
    def volume_ml(self) -> float:
        return 4.0 / 3.0 * math.pi * self.radius_mm**3 / 1000.0


@dataclass(frozen=True)
class Ellipsoid:
    centre: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]


BODY_SEMI_XY = (150.0, 110.0)
LIVER = Ellipsoid((-70.0, -10.0, 1040.0), (65.0, 75.0, 70.0))
SPLEEN = Ellipsoid((100.0, 40.0, 1070.0), (22.0, 32.0, 38.0))
KIDNEY_RIGHT = Ellipsoid((-65.0, 55.0, 970.0), (25.0, 22.0, 42.0))
KIDNEY_LEFT = Ellipsoid((65.0, 55.0, 975.0), (25.0, 22.0, 42.0))
LEVELS = {"soft": 0.06, "liver": 1.0, "spleen": 5.0, "kidney": 3.5}
HU = {"air": -1000.0, "soft": 40.0, "liver": 60.0, "spleen": 46.0, "kidney": 32.0, "lesion": 40.0}

DEFAULT_LESIONS = (
    Sphere((-85.0, -25.0, 1025.0), 15.0, 3.0),  # in the liver, grade 3 (liver < 3 < spleen)
    Sphere((10.0, -45.0, 985.0), 12.0, 8.0),  # node, grade 4 (above spleen)
    Sphere((35.0, -60.0, 1120.0), 11.0, 2.0),  # node, grade 3
)


def grid_affine(shape: tuple[int, int, int], spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Axial grid centred on (0, 0, 1040) LPS: plane +z, row +y, col +x."""
    dz, dy, dx = spacing_mm
    nz, ny, nx = shape
    a = np.zeros((4, 4))
    a[2, 0], a[1, 1], a[0, 2], a[3, 3] = dz, dy, dx, 1.0
    a[:3, 3] = (-(nx - 1) / 2.0 * dx, -(ny - 1) / 2.0 * dy, 1040.0 - (nz - 1) / 2.0 * dz)
    return a


def _coords(shape: tuple[int, int, int], affine: np.ndarray, sub: int) -> tuple[np.ndarray, ...]:
    """LPS (x, y, z) of sub-voxel centres, shapes broadcastable to shape * sub."""
    axes = []
    for k, n in enumerate(shape):
        step = 1.0 / sub
        idx = (np.arange(n * sub) + 0.5) * step - 0.5
        axes.append(idx.reshape([-1 if a == k else 1 for a in range(3)]))
    x = affine[0, 2] * axes[2] + affine[0, 3]
    y = affine[1, 1] * axes[1] + affine[1, 3]
    z = affine[2, 0] * axes[0] + affine[2, 3]
    return x, y, z


def _inside(e: Ellipsoid, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    (cx, cy, cz), (a, b, c) = e.centre, e.semi_axes_mm
    return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 + ((z - cz) / c) ** 2 <= 1.0


def label_map(
    shape: tuple[int, int, int],
    affine: np.ndarray,
    lesions: Sequence[Sphere],
    *,
    sub: int = 1,
    spleen: bool = True,
) -> np.ndarray:
    """Tissue labels (0 air, 1 soft, 2 liver, 3 spleen, 4 kidney, 10+k lesion k) on the grid,
    optionally at ``sub`` x finer sampling per axis."""
    x, y, z = _coords(shape, affine, sub)
    full = (shape[0] * sub, shape[1] * sub, shape[2] * sub)
    labels = np.zeros(full, dtype=np.uint8)
    body = (x / BODY_SEMI_XY[0]) ** 2 + (y / BODY_SEMI_XY[1]) ** 2 <= 1.0
    labels[np.broadcast_to(body, full)] = 1
    labels[np.broadcast_to(_inside(LIVER, x, y, z), full)] = 2
    if spleen:
        labels[np.broadcast_to(_inside(SPLEEN, x, y, z), full)] = 3
    for kidney in (KIDNEY_RIGHT, KIDNEY_LEFT):
        labels[np.broadcast_to(_inside(kidney, x, y, z), full)] = 4
    for k, les in enumerate(lesions):
        e = Ellipsoid(les.centre, (les.radius_mm,) * 3)
        labels[np.broadcast_to(_inside(e, x, y, z), full)] = 10 + k
    return labels


def concentration(
    shape: tuple[int, int, int],
    affine: np.ndarray,
    lesions: Sequence[Sphere],
    *,
    spleen: bool = True,
    liver_ratio: float = 1.0,
) -> np.ndarray:
    """Concentration / normal liver on the grid, partial volume from 2 x 2 x 2 sub-voxels."""
    labels = label_map(shape, affine, lesions, sub=2, spleen=spleen)
    lut = np.zeros(256, dtype=np.float32)
    lut[1], lut[2] = LEVELS["soft"], LEVELS["liver"] * liver_ratio
    lut[3], lut[4] = LEVELS["spleen"], LEVELS["kidney"]
    for k, les in enumerate(lesions):
        lut[10 + k] = les.ratio_liver
    fine = lut[labels]
    return fine.reshape(shape[0], 2, shape[1], 2, shape[2], 2).mean(axis=(1, 3, 5))


def emission_volume(
    lesions: Sequence[Sphere] = DEFAULT_LESIONS,
    *,
    shape: tuple[int, int, int] = (64, 88, 104),
    spacing_mm: tuple[float, float, float] = (4.0, 4.0, 4.0),
    fwhm_mm: float = 10.0,
    noise_cov: float = 0.05,
    seed: int = 1,
    kind: SeriesKind = SeriesKind.SPECT,
    units: str = "counts",
    radionuclide: str | None = "In-111",
    radiopharmaceutical: str | None = "pentetreotide",
    resolution_fwhm_mm: float | None = 10.0,
    spleen: bool = True,
    frame_uid: str | None = FRAME_UID,
    scale: float = LIVER_COUNTS,
) -> Volume:
    """The synthetic emission volume (module docstring); values = concentration x ``scale``."""
    affine = grid_affine(shape, spacing_mm)
    conc = concentration(shape, affine, lesions, spleen=spleen)
    sigma = [fwhm_mm / 2.3548 / s for s in spacing_mm]
    mean = ndimage.gaussian_filter(conc, sigma, mode="constant") * scale
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(shape).astype(np.float32)
    corr = ndimage.gaussian_filter(white, 1.0, mode="wrap")
    corr /= corr.std()
    sd = noise_cov * np.sqrt(np.maximum(mean, 0.0) * scale)
    array = np.maximum(mean + sd * corr, 0.0).astype(np.float32)
    return Volume(
        array=array,
        affine=affine,
        units=units,
        kind=kind,
        acquisition=AcquisitionInfo(
            modality="PT" if kind is SeriesKind.PET else "NM",
            radionuclide=radionuclide,
            radiopharmaceutical=radiopharmaceutical,
            hours_post_injection=24.0,
        ),
        source=SourceRef(STUDY_UID, STUDY_UID + ".1", frame_of_reference_uid=frame_uid),
        resolution_fwhm_mm=resolution_fwhm_mm,
    )


def ct_volume(
    lesions: Sequence[Sphere] = DEFAULT_LESIONS,
    *,
    shape: tuple[int, int, int] = (64, 144, 170),
    spacing_mm: tuple[float, float, float] = (4.0, 2.5, 2.5),
    noise_hu: float = 8.0,
    seed: int = 2,
    frame_uid: str | None = FRAME_UID,
    spleen: bool = True,
    lesion_hu: Sequence[float] | None = None,
) -> Volume:
    """A CT of the same body in HU on its own (finer) grid, same frame of reference.

    ``lesion_hu`` gives each lesion's HU (default: soft tissue, 40 HU)."""
    affine = grid_affine(shape, spacing_mm)
    labels = label_map(shape, affine, lesions, spleen=spleen)
    lut = np.full(256, HU["air"], dtype=np.float32)
    lut[1], lut[2], lut[3], lut[4] = HU["soft"], HU["liver"], HU["spleen"], HU["kidney"]
    lut[10:] = HU["lesion"]
    for k, value in enumerate(lesion_hu or ()):
        lut[10 + k] = value
    hu = lut[labels]
    rng = np.random.default_rng(seed)
    body = labels > 0
    hu[body] += rng.normal(0.0, noise_hu, size=int(body.sum())).astype(np.float32)
    return Volume(
        array=hu,
        affine=affine,
        units="HU",
        kind=SeriesKind.CT,
        acquisition=AcquisitionInfo(modality="CT"),
        source=SourceRef(STUDY_UID, STUDY_UID + ".2", frame_of_reference_uid=frame_uid),
    )


def true_mask(volume: Volume, ellipsoid: Ellipsoid) -> np.ndarray:
    """Voxels of ``volume`` whose centres lie inside ``ellipsoid``."""
    x, y, z = _coords(volume.shape, volume.affine, 1)
    return np.broadcast_to(_inside(ellipsoid, x, y, z), volume.shape)


@dataclass(frozen=True)
class Detected:
    """Lesion detection on a synthetic volume, with the grid and organs it used."""

    found: DetectionResult
    grid: WorkingGrid
    organs: OrganMaps


def detect(
    emission: Volume,
    *,
    ct: Volume | None = None,
    fwhm_mm: float = 10.0,
    is_pet: bool = False,
    cfg: TomoConfig | None = None,
) -> Detected:
    """Organs and lesions of ``emission`` (with ``ct`` resampled onto the working grid when
    given) as the scorer finds them, under ``cfg`` (default: the shipped ``[tomo]``)."""
    cfg = cfg or tomo_config()
    grid = working_grid(emission, working_voxel_mm=cfg.resolution.working_voxel_mm)
    image = grid.reduce(emission.array)
    hu = resample_ct_to(ct, grid.shape, grid.affine).array if ct is not None else None
    organs = locate_organs(image, grid, ct_hu=hu, organs=cfg.organs, ct=cfg.ct)
    found = detect_lesions(
        image,
        grid,
        organs,
        emission.array,
        fwhm_mm=fwhm_mm,
        is_pet=is_pet,
        detection=cfg.detection,
        organ_cfg=cfg.organs,
        ct_cfg=cfg.ct,
        pvc=cfg.pvc,
    )
    return Detected(found, grid, organs)
