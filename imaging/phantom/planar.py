"""Conjugate anterior/posterior whole-body projections of the phantom (111In, dual-head camera).

Physics, with the numbers used:

* **Attenuation** along the projection ray (straight to the detector, parallel-hole
  collimator): effective broad-beam coefficients for 111In (photopeaks 171 and 245 keV).
  Narrow-beam values for water from NIST XCOM are 0.144 /cm at 171 keV and 0.127 /cm at
  245 keV (mu/rho 0.1505 cm^2/g at 150 keV, 0.1370 at 200 keV, 0.1186 at 300 keV); scatter
  accepted in a 20 % window lowers the effective value, and 0.12 /cm is the value commonly
  used for 111In conjugate-view quantification. Fat 0.108 /cm (density 0.92), lung 0.036 /cm
  (density about 0.3), bone 0.20 /cm (mixed cortical/trabecular, density about 1.5).
* **Collimator blur**: medium-energy general-purpose parallel-hole collimator, system FWHM
  growing linearly with the distance d from the collimator face,
  FWHM(d) = 4.0 mm + 0.070 * d. This linearises the geometric collimator resolution
  R = h (L_eff + b) / L_eff (Sorenson & Phelps, Physics in Nuclear Medicine, ch. 16) for
  3 mm holes and 58 mm septa combined with 3.5 mm intrinsic resolution: 11 mm at 10 cm and
  18 mm at 20 cm, within the 10-12.5 mm at 10 cm vendors list for MEGP/MELP collimators.
  The body is cut into 12 mm slabs along the projection direction; each slab is blurred with
  the Gaussian of its mean distance and the slabs are summed.
* **Counts**: Poisson noise at a given expected total of the anterior view (clinical
  whole-body 111In views hold roughly 0.5-3 million counts); the posterior view shares the
  same scale factor, so its total differs with the patient's activity distribution. The scan
  velocity is a header value only (typical 111In whole-body speeds: 5-6 cm/min at 24 h,
  8-10 cm/min at 4 h); the frame duration is the image length over that velocity.
* Photopeak windows: 171 keV +-10 % holds 55 % of the photopeak counts, 245 keV +-10 % 45 %.
  A scatter window (a lower window at 135-155 keV) gets 25 % of the photopeak counts blurred
  by a further 40 mm FWHM (only written on request).

Image geometry (the camera's view): rows run head to feet (row 0 superior), pixel spacing
about 2.4 mm, matrix 1024 x 256. The anterior view shows the patient's right on the image's
left (column index grows towards patient left); the posterior view is as the posterior head
sees it, i.e. mirrored left-right (column index grows towards patient right), and the
posterior head is offset by a few millimetres from the anterior head.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from octoscan.imaging.phantom.anatomy import Grid, Tissue

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))

MU_IN111_PER_MM: dict[Tissue, float] = {t: 0.0120 for t in Tissue}
MU_IN111_PER_MM.update(
    {Tissue.AIR: 0.0, Tissue.FAT: 0.0108, Tissue.LUNG: 0.0036, Tissue.BONE: 0.0200}
)

PHOTOPEAK_FRACTIONS = (0.55, 0.45)
SCATTER_FRACTION = 0.25
SCATTER_EXTRA_FWHM_MM = 40.0


@dataclass(frozen=True)
class CameraModel:
    """Dual-head camera with medium-energy parallel-hole collimators (see module docstring).

    ``gap_anterior_mm``: body surface to anterior collimator face; ``gap_posterior_mm``:
    posterior body surface to posterior face (table plus air gap).
    """

    fwhm_at_face_mm: float = 4.0
    fwhm_per_mm: float = 0.070
    gap_anterior_mm: float = 25.0
    gap_posterior_mm: float = 15.0
    slab_mm: float = 12.0
    mu_per_mm: Mapping[Tissue, float] = field(default_factory=lambda: dict(MU_IN111_PER_MM))

    def fwhm_mm(self, distance_mm: float) -> float:
        """System FWHM (mm) at ``distance_mm`` from the collimator face."""
        return self.fwhm_at_face_mm + self.fwhm_per_mm * max(distance_mm, 0.0)


@dataclass(frozen=True)
class PlanarGeometry:
    """Whole-body image grid of the anterior head.

    Pixel (row, col) of the anterior view has its centre at
    z = ``z_top_mm`` - row * ``pixel_mm`` and x = ``x_left_mm`` + col * ``pixel_mm`` (LPS).
    """

    rows: int
    cols: int
    pixel_mm: float
    z_top_mm: float
    x_left_mm: float

    @staticmethod
    def whole_body(
        height_mm: float, *, rows: int = 1024, cols: int = 256, pixel_mm: float = 2.4
    ) -> PlanarGeometry:
        """A grid centred on x = 0 with the vertex about 6 cm below the top row."""
        z_top = min(height_mm + 60.0, (rows - 1) * pixel_mm - 20.0)
        return PlanarGeometry(
            rows=rows,
            cols=cols,
            pixel_mm=pixel_mm,
            z_top_mm=round(z_top, 3),
            x_left_mm=-(cols - 1) / 2.0 * pixel_mm,
        )

    def anterior_rc(self, x_mm: float, z_mm: float) -> tuple[float, float]:
        """(row, col) in the anterior view of an LPS point (its y is irrelevant)."""
        return ((self.z_top_mm - z_mm) / self.pixel_mm, (x_mm - self.x_left_mm) / self.pixel_mm)

    def pixel_centres_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """(z of each row, x of each column) of the anterior view, mm."""
        z = self.z_top_mm - self.pixel_mm * np.arange(self.rows)
        x = self.x_left_mm + self.pixel_mm * np.arange(self.cols)
        return z, x


@dataclass(frozen=True)
class PlanarSimulation:
    """Noise-free expectations and noisy counts of both views.

    Expected images are float64 counts per pixel. ``anterior_windows`` and
    ``posterior_windows`` are (2, rows, cols) int32 Poisson counts of the 171 keV and 245 keV
    photopeak windows, in each camera's own view (posterior mirrored and offset).
    ``posterior_aligned_expected`` is the posterior expectation mirrored back onto the
    anterior grid without the head offset: the noise-free conjugate partner of the anterior
    view. ``posterior_shift_rc`` (drow, dcol), pixels: a structure at anterior (row, col)
    appears in the posterior image, after mirroring its columns, at (row + drow, col + dcol)
    (the two camera heads are not perfectly aligned). ``*_background_*`` are the lesion-free
    noise-free expectations (same scale), when simulated.
    """

    geometry: PlanarGeometry
    anterior_expected: np.ndarray
    posterior_expected: np.ndarray
    posterior_aligned_expected: np.ndarray
    anterior_windows: np.ndarray
    posterior_windows: np.ndarray
    anterior_scatter: np.ndarray
    posterior_scatter: np.ndarray
    posterior_shift_rc: tuple[float, float]
    counts_per_kbq_s: float
    scan_velocity_mm_s: float
    frame_duration_s: float
    anterior_background_expected: np.ndarray | None = None
    posterior_background_aligned_expected: np.ndarray | None = None

    @property
    def geometric_mean_background(self) -> np.ndarray | None:
        """Noise-free GM of the same body without lesions (None when not simulated)."""
        if self.anterior_background_expected is None:
            return None
        assert self.posterior_background_aligned_expected is not None
        return np.sqrt(
            self.anterior_background_expected * self.posterior_background_aligned_expected
        )

    @property
    def geometric_mean_expected(self) -> np.ndarray:
        """Noise-free conjugate-view geometric mean sqrt(A * P) on the anterior grid."""
        return np.sqrt(self.anterior_expected * self.posterior_aligned_expected)

    @property
    def anterior_counts(self) -> np.ndarray:
        return self.anterior_windows.sum(axis=0)

    @property
    def posterior_counts(self) -> np.ndarray:
        return self.posterior_windows.sum(axis=0)


def _attenuation(mu_vox: np.ndarray, dy: float, *, anterior: bool) -> np.ndarray:
    """exp(-line integral of mu) from each voxel centre to the body surface facing the head."""
    mu_dy = (mu_vox * np.float32(dy)).astype(np.float32)
    if anterior:
        path = np.cumsum(mu_dy, axis=1, dtype=np.float32)
    else:
        path = np.cumsum(mu_dy[:, ::-1, :], axis=1, dtype=np.float32)[:, ::-1, :]
    path -= np.float32(0.5) * mu_dy
    return np.exp(-path)


def _project(
    concentration: np.ndarray,
    attenuation: np.ndarray,
    grid: Grid,
    camera: CameraModel,
    *,
    anterior: bool,
    body_rows: tuple[int, int],
) -> np.ndarray:
    """Attenuated, depth-blurred projection along y: (nz, nx) in kBq per mm^2 of detector.

    ``body_rows`` (first, last) are the grid rows (y) holding the body; the collimator face
    sits ``gap_*_mm`` beyond the body surface on the view's side.
    """
    dz, dy, dx = grid.spacing_mm
    y = grid.axis_mm(1)
    j_first, j_last = body_rows
    if anterior:
        distance = y - (y[j_first] - dy / 2.0 - camera.gap_anterior_mm)
    else:
        distance = (y[j_last] + dy / 2.0 + camera.gap_posterior_mm) - y
    out = np.zeros((grid.shape[0], grid.shape[2]), dtype=np.float64)
    n_slab = max(1, round(camera.slab_mm / dy))
    scale = np.float32(grid.voxel_volume_ml)
    for j0 in range(j_first, j_last + 1, n_slab):
        j1 = min(j0 + n_slab, j_last + 1)
        emitted = concentration[:, j0:j1, :] * attenuation[:, j0:j1, :]
        slab = emitted.sum(axis=1, dtype=np.float64) * scale
        d = float(distance[j0:j1].mean())
        sigma = camera.fwhm_mm(d) * FWHM_TO_SIGMA
        out += ndimage.gaussian_filter(slab, (sigma / dz, sigma / dx), mode="constant")
    return out / (dz * dx)


def _sample(density_zx: np.ndarray, grid: Grid, z_mm: np.ndarray, x_mm: np.ndarray) -> np.ndarray:
    """Bilinear samples of a (nz, nx) grid image at the (rows,) z and (cols,) x positions."""
    iz = (z_mm - grid.origin_mm[2]) / grid.spacing_mm[0]
    ix = (x_mm - grid.origin_mm[0]) / grid.spacing_mm[2]
    coords = np.meshgrid(iz, ix, indexing="ij")
    return ndimage.map_coordinates(density_zx, coords, order=1, mode="constant", cval=0.0)


def sample_on_anterior(image_zx: np.ndarray, grid: Grid, geometry: PlanarGeometry) -> np.ndarray:
    """Resample a (nz, nx) image of the emission grid onto the anterior planar grid."""
    z, x = geometry.pixel_centres_mm()
    return _sample(image_zx, grid, z, x)


def simulate_planar(
    concentration: np.ndarray,
    labels: np.ndarray,
    grid: Grid,
    geometry: PlanarGeometry,
    *,
    expected_counts: float,
    seed: int,
    camera: CameraModel | None = None,
    posterior_shift_rc: tuple[float, float] = (0.0, 0.0),
    scan_velocity_mm_s: float = 1.0,
    background_concentration: np.ndarray | None = None,
) -> PlanarSimulation:
    """Project ``concentration`` (kBq/mL on ``grid``) onto both heads and add Poisson noise.

    ``expected_counts`` is the expected total of the anterior view (both photopeaks).
    ``background_concentration`` (the same body without lesions) is projected noise-free with
    the same scale factor, as the lesion-free reference for visibility.
    """
    camera = camera or CameraModel()
    lut = np.zeros(256, dtype=np.float32)
    for tissue, mu in camera.mu_per_mm.items():
        lut[int(tissue)] = mu
    mu_vox = lut[labels]
    body = np.flatnonzero((labels != Tissue.AIR).any(axis=(0, 2)))
    if body.size == 0:
        raise ValueError("phantom labels hold no body")
    rows = (int(body[0]), int(body[-1]))
    dy = grid.spacing_mm[1]
    att_a = _attenuation(mu_vox, dy, anterior=True)
    att_p = _attenuation(mu_vox, dy, anterior=False)
    dens_a = _project(concentration, att_a, grid, camera, anterior=True, body_rows=rows)
    dens_p = _project(concentration, att_p, grid, camera, anterior=False, body_rows=rows)

    z, x = geometry.pixel_centres_mm()
    area = geometry.pixel_mm**2
    raw_a = _sample(dens_a, grid, z, x) * area
    raw_p_aligned = _sample(dens_p, grid, z, x) * area
    # Sample the posterior in the mirrored (anterior-oriented) frame, where the head shift
    # (drow, dcol) moves the sampled points by (+drow * p in z, -dcol * p in x), then flip
    # the columns into the posterior head's own view.
    drow, dcol = posterior_shift_rc
    p = geometry.pixel_mm
    raw_p_camera = _sample(dens_p, grid, z + drow * p, x - dcol * p)[:, ::-1] * area

    total_raw = float(raw_a.sum())
    if total_raw <= 0.0:
        raise ValueError("phantom projection is empty: no activity inside the planar field")
    scale = expected_counts / total_raw  # counts per kBq (per mm^2 integrated) of the scan
    a_exp = raw_a * scale
    p_exp_aligned = raw_p_aligned * scale
    p_exp = raw_p_camera * scale

    rng = np.random.default_rng([seed, 606])
    a_win = np.stack([rng.poisson(a_exp * f) for f in PHOTOPEAK_FRACTIONS]).astype(np.int32)
    p_win = np.stack([rng.poisson(p_exp * f) for f in PHOTOPEAK_FRACTIONS]).astype(np.int32)
    sig = SCATTER_EXTRA_FWHM_MM * FWHM_TO_SIGMA / geometry.pixel_mm
    a_sc = rng.poisson(SCATTER_FRACTION * ndimage.gaussian_filter(a_exp, sig, mode="constant"))
    p_sc = rng.poisson(SCATTER_FRACTION * ndimage.gaussian_filter(p_exp, sig, mode="constant"))

    a_bg = p_bg = None
    if background_concentration is not None:
        bg_a = _project(
            background_concentration, att_a, grid, camera, anterior=True, body_rows=rows
        )
        bg_p = _project(
            background_concentration, att_p, grid, camera, anterior=False, body_rows=rows
        )
        a_bg = _sample(bg_a, grid, z, x) * area * scale
        p_bg = _sample(bg_p, grid, z, x) * area * scale
    length = geometry.rows * geometry.pixel_mm
    return PlanarSimulation(
        geometry=geometry,
        anterior_expected=a_exp,
        posterior_expected=p_exp,
        posterior_aligned_expected=p_exp_aligned,
        anterior_windows=a_win,
        posterior_windows=p_win,
        anterior_scatter=a_sc.astype(np.int32),
        posterior_scatter=p_sc.astype(np.int32),
        posterior_shift_rc=(float(drow), float(dcol)),
        counts_per_kbq_s=scale,
        scan_velocity_mm_s=scan_velocity_mm_s,
        frame_duration_s=length / scan_velocity_mm_s,
        anterior_background_expected=a_bg,
        posterior_background_aligned_expected=p_bg,
    )
