"""Voxel anatomy of the SSTR phantom: analytic shapes in DICOM LPS millimetres.

The body is a list of analytic shapes (ellipsoids, elliptic cylinders, capsules), each with a
tissue label, painted in order onto any voxel grid. The same anatomy therefore rasterises onto
the coarse emission grid (about 4 mm, used for projections, SPECT and PET) and onto the CT grid.

Coordinates: LPS mm (x towards the patient's left, y towards posterior, z towards the head).
The patient lies supine, head first; z = 0 is the sole of the foot, the vertex is at
``height_mm``. x = 0 is the mid-sagittal plane, y = 0 the mid-coronal plane of the torso.
Arrays are (plane, row, col) = (z, y, x) on a :class:`Grid`.

Sizes and positions are drawn from a seeded generator: body height 1.60-1.90 m, torso width
300-380 mm and depth 190-260 mm (a thick abdomen changes attenuation and collimator blur),
organ sizes scaled by +-20 %, positions jittered by about 1 cm. Landmark heights follow
standard anthropometric proportions of stature (vertex 1.00, shoulder 0.82, nipple 0.72,
umbilicus 0.60, hip joint 0.52, knee 0.28); organ sizes follow adult reference values
(ICRP Publication 89: liver about 1.8 L, spleen about 150 mL, each kidney about 150 mL).
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class Tissue(enum.IntEnum):
    """Label values of the phantom (uint8 volumes)."""

    AIR = 0
    SOFT_TISSUE = 1  # muscle and other soft tissue without specific uptake
    FAT = 2  # subcutaneous and visceral fat
    LUNG = 3
    BONE = 4
    BRAIN = 5
    LIVER = 6
    SPLEEN = 7
    KIDNEY_LEFT = 8
    KIDNEY_RIGHT = 9
    BLADDER = 10
    BOWEL = 11  # colon frame and small bowel
    GALLBLADDER = 12
    THYROID = 13
    PITUITARY = 14
    PANCREAS = 15
    HEART = 16  # cardiac blood pool
    ADRENAL = 17
    STOMACH = 18


# Organs whose physiological uptake is imaged (used to keep reference regions clear of them).
UPTAKE_ORGANS: frozenset[Tissue] = frozenset(
    {
        Tissue.LIVER,
        Tissue.SPLEEN,
        Tissue.KIDNEY_LEFT,
        Tissue.KIDNEY_RIGHT,
        Tissue.BLADDER,
        Tissue.BOWEL,
        Tissue.GALLBLADDER,
        Tissue.THYROID,
        Tissue.PITUITARY,
        Tissue.PANCREAS,
        Tissue.HEART,
        Tissue.ADRENAL,
        Tissue.STOMACH,
    }
)


@dataclass(frozen=True)
class Grid:
    """A regular axis-aligned voxel grid in LPS.

    ``shape`` is (planes, rows, cols) = (nz, ny, nx); ``spacing_mm`` is (dz, dy, dx);
    ``origin_mm`` is the LPS (x, y, z) centre of voxel (0, 0, 0). Plane index increases +z
    (towards the head), row index +y (posterior), column index +x (patient left).
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]

    @property
    def affine(self) -> np.ndarray:
        """4x4 map from (plane, row, col, 1) to LPS (x, y, z, 1) mm."""
        dz, dy, dx = self.spacing_mm
        a = np.zeros((4, 4))
        a[2, 0] = dz
        a[1, 1] = dy
        a[0, 2] = dx
        a[:3, 3] = self.origin_mm
        a[3, 3] = 1.0
        return a

    def axis_mm(self, axis: int) -> np.ndarray:
        """Coordinates (mm) of the voxel centres along one array axis (0=z, 1=y, 2=x)."""
        lps_component = (2, 1, 0)[axis]
        return self.origin_mm[lps_component] + self.spacing_mm[axis] * np.arange(
            self.shape[axis], dtype=np.float64
        )

    @property
    def voxel_volume_ml(self) -> float:
        dz, dy, dx = self.spacing_mm
        return dz * dy * dx / 1000.0

    def index_range(self, axis: int, lo_mm: float, hi_mm: float) -> slice:
        """Index slice of voxel centres within [lo_mm, hi_mm] along ``axis`` (may be empty)."""
        lps_component = (2, 1, 0)[axis]
        o = self.origin_mm[lps_component]
        d = self.spacing_mm[axis]
        i0 = max(0, math.ceil((lo_mm - o) / d - 1e-9))
        i1 = min(self.shape[axis], math.floor((hi_mm - o) / d + 1e-9) + 1)
        return slice(i0, max(i0, i1))


@dataclass(frozen=True)
class Shape:
    """An analytic solid in LPS mm.

    ``kind``:

    * ``"ellipsoid"``: centre ``center_mm``, semi-axes ``semi_axes_mm`` (x, y, z) before a
      rotation of ``angle_deg`` about the z axis (positive from +x towards +y).
    * ``"cylinder"``: an elliptic cylinder along z, cross-section semi-axes
      ``semi_axes_mm[0:2]`` at its centre height, half-length ``semi_axes_mm[2]``; the
      cross-section scales linearly from ``taper_bottom`` (at the lower end) to
      ``taper_top`` (upper end).
    * ``"capsule"``: all points within ``semi_axes_mm[0]`` of the segment from ``center_mm``
      to ``end_mm``.

    ``hollow`` > 0 keeps only a shell: points inside the same shape scaled by ``hollow`` are
    removed. ``z_period_mm``/``z_duty`` keep only bands along z (ribs). ``keep_halfspace``
    (nx, ny, nz, d) keeps points with nx*x + ny*y + nz*z <= d.
    """

    kind: str
    center_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    angle_deg: float = 0.0
    taper_bottom: float = 1.0
    taper_top: float = 1.0
    end_mm: tuple[float, float, float] | None = None
    hollow: float = 0.0
    z_period_mm: float | None = None
    z_duty: float = 1.0
    keep_halfspace: tuple[tuple[float, float, float, float], ...] = ()

    def bounds_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounding box (lo, hi) in LPS (x, y, z)."""
        c = np.asarray(self.center_mm, dtype=np.float64)
        a = np.asarray(self.semi_axes_mm, dtype=np.float64)
        if self.kind == "capsule":
            assert self.end_mm is not None
            e = np.asarray(self.end_mm, dtype=np.float64)
            r = a[0]
            return np.minimum(c, e) - r, np.maximum(c, e) + r
        if self.kind == "cylinder":
            t = max(self.taper_bottom, self.taper_top)
            half = np.array([a[0] * t, a[1] * t, a[2]])
            if self.angle_deg:
                rr = max(a[0], a[1]) * t
                half[:2] = rr
            return c - half, c + half
        half = a.copy()
        if self.angle_deg:
            half[:2] = max(a[0], a[1])
        return c - half, c + half

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Boolean membership for broadcastable coordinate arrays (mm)."""
        inside = self._inside(x, y, z, 1.0)
        if self.hollow > 0.0:
            inside &= ~self._inside(x, y, z, self.hollow)
        if self.z_period_mm is not None:
            phase = np.mod(z - self.center_mm[2], self.z_period_mm) / self.z_period_mm
            inside &= phase < self.z_duty
        for nx, ny, nz, d in self.keep_halfspace:
            inside &= (nx * x + ny * y + nz * z) <= d
        return inside

    def _inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, scale: float) -> np.ndarray:
        cx, cy, cz = self.center_mm
        ax, ay, az = (s * scale for s in self.semi_axes_mm)
        if self.kind == "capsule":
            assert self.end_mm is not None
            p0 = np.asarray(self.center_mm)
            seg = np.asarray(self.end_mm) - p0
            length2 = float(seg @ seg)
            t = ((x - p0[0]) * seg[0] + (y - p0[1]) * seg[1] + (z - p0[2]) * seg[2]) / length2
            t = np.clip(t, 0.0, 1.0)
            d2 = (
                (x - p0[0] - t * seg[0]) ** 2
                + (y - p0[1] - t * seg[1]) ** 2
                + (z - p0[2] - t * seg[2]) ** 2
            )
            return d2 <= ax * ax
        dx = x - cx
        dy = y - cy
        if self.angle_deg:
            th = math.radians(self.angle_deg)
            ct, st = math.cos(th), math.sin(th)
            dx, dy = dx * ct + dy * st, -dx * st + dy * ct
        dz = z - cz
        if self.kind == "cylinder":
            hz = self.semi_axes_mm[2]
            frac = np.clip((dz + hz) / (2.0 * hz), 0.0, 1.0)
            taper = self.taper_bottom + (self.taper_top - self.taper_bottom) * frac
            return ((dx / (ax * taper)) ** 2 + (dy / (ay * taper)) ** 2 <= 1.0) & (
                np.abs(dz) <= hz * scale
            )
        return (dx / ax) ** 2 + (dy / ay) ** 2 + (dz / az) ** 2 <= 1.0


@dataclass(frozen=True)
class Anatomy:
    """One phantom body: painted shapes plus the landmarks needed by lesion placement.

    ``parts`` are (tissue, shape) pairs painted in order (later shapes overwrite earlier ones).
    Lengths in mm, LPS.
    """

    seed: int
    height_mm: float
    torso_width_mm: float
    torso_depth_mm: float
    weight_kg: float
    sex: str
    splenectomy: bool
    parts: tuple[tuple[Tissue, Shape], ...]

    def rasterize(self, grid: Grid) -> np.ndarray:
        """Paint the anatomy on ``grid``: a (plane, row, col) uint8 array of :class:`Tissue`."""
        labels = np.zeros(grid.shape, dtype=np.uint8)
        zc, yc, xc = (grid.axis_mm(a) for a in range(3))
        for tissue, shape in self.parts:
            lo, hi = shape.bounds_mm()
            sz = grid.index_range(0, lo[2], hi[2])
            sy = grid.index_range(1, lo[1], hi[1])
            sx = grid.index_range(2, lo[0], hi[0])
            if sz.stop <= sz.start or sy.stop <= sy.start or sx.stop <= sx.start:
                continue
            inside = shape.contains(
                xc[sx][None, None, :], yc[sy][None, :, None], zc[sz][:, None, None]
            )
            labels[sz, sy, sx][inside] = int(tissue)
        return labels


def body_grid(anatomy: Anatomy, *, voxel_mm: float = 4.0) -> Grid:
    """Emission grid covering the whole body (feet to vertex, arms included) plus 2 voxels."""
    half_x = anatomy.torso_width_mm / 2.0 + 150.0
    half_y = anatomy.torso_depth_mm / 2.0 + 40.0
    nx = 2 * math.ceil(half_x / voxel_mm) + 1
    ny = 2 * math.ceil(half_y / voxel_mm) + 1
    nz = math.ceil((anatomy.height_mm + 4 * voxel_mm) / voxel_mm) + 1
    origin = (-(nx - 1) / 2 * voxel_mm, -(ny - 1) / 2 * voxel_mm, -2 * voxel_mm)
    return Grid(shape=(nz, ny, nx), spacing_mm=(voxel_mm,) * 3, origin_mm=origin)


def _ell(c: Sequence[float], a: Sequence[float], angle: float = 0.0, **kw: object) -> Shape:
    return Shape(
        "ellipsoid",
        (float(c[0]), float(c[1]), float(c[2])),
        (float(a[0]), float(a[1]), float(a[2])),
        angle_deg=angle,
        **kw,  # type: ignore[arg-type]
    )


def _cyl(
    cxy: Sequence[float],
    axy: Sequence[float],
    z0: float,
    z1: float,
    *,
    taper_bottom: float = 1.0,
    taper_top: float = 1.0,
    **kw: object,
) -> Shape:
    return Shape(
        "cylinder",
        (float(cxy[0]), float(cxy[1]), (z0 + z1) / 2.0),
        (float(axy[0]), float(axy[1]), (z1 - z0) / 2.0),
        taper_bottom=taper_bottom,
        taper_top=taper_top,
        **kw,  # type: ignore[arg-type]
    )


def _cap(p0: Sequence[float], p1: Sequence[float], r: float) -> Shape:
    return Shape(
        "capsule",
        (float(p0[0]), float(p0[1]), float(p0[2])),
        (float(r), float(r), float(r)),
        end_mm=(float(p1[0]), float(p1[1]), float(p1[2])),
    )


def build_anatomy(seed: int, *, splenectomy: bool = False) -> Anatomy:
    """Draw one phantom body from ``seed`` (same seed, same body).

    ``splenectomy`` leaves the spleen out (its bed becomes soft tissue).
    """
    rng = np.random.default_rng([seed, 101])

    def jit(scale_mm: float) -> float:
        return float(rng.normal(0.0, scale_mm))

    def size(lo: float = 0.8, hi: float = 1.2) -> float:
        return float(rng.uniform(lo, hi))

    sex = "F" if rng.random() < 0.5 else "M"
    H = float(rng.uniform(1600.0, 1900.0))
    W = float(rng.uniform(300.0, 380.0)) * H / 1750.0
    D = float(rng.uniform(190.0, 260.0))
    fat = float(rng.uniform(8.0, 30.0)) * D / 220.0
    # Weight from an elliptic torso volume scaled to a body (calibrated so that a 1.75 m,
    # 340 x 225 mm torso gives about 75 kg).
    weight = round(75.0 * (W / 340.0) * (D / 225.0) * (H / 1750.0) ** 1.5, 1)
    s = H / 1750.0

    z_vertex = H
    z_neck_top = 0.88 * H
    z_shoulder = 0.82 * H
    z_diaphragm = 0.665 * H + jit(8)
    z_kidney = 0.595 * H + jit(8)
    z_crest = 0.585 * H
    z_hip = 0.515 * H
    z_crotch = 0.475 * H

    torso_a = (W / 2.0, D / 2.0)
    parts: list[tuple[Tissue, Shape]] = []
    T = Tissue

    # ---- body outline: fat envelope first, muscle/soft tissue inside --------------------
    head_c = (0.0, -5.0, z_vertex - 115.0 * s)
    head_a = (75.0 * s, 95.0 * s, 115.0 * s)
    parts.append((T.FAT, _ell(head_c, head_a)))
    parts.append((T.FAT, _cyl((0.0, 5.0), (55.0 * s, 60.0 * s), z_shoulder - 20, z_neck_top + 40)))
    parts.append((T.FAT, _cyl((0.0, 0.0), torso_a, z_crotch - 30.0, z_shoulder, taper_top=0.97)))
    parts.append((T.FAT, _ell((0.0, 0.0, z_shoulder - 20.0), (W / 2.0 + 15.0, D / 2.0, 70.0 * s))))
    # buttocks / hips rounded
    parts.append((T.FAT, _ell((0.0, 10.0, z_crotch + 30.0), (W / 2.0, D / 2.0 + 10.0, 110.0 * s))))
    arm_x = W / 2.0 + 48.0 * s
    for side in (-1.0, 1.0):
        parts.append(
            (
                T.FAT,
                _cyl(
                    (side * arm_x, 0.0),
                    (42.0 * s, 45.0 * s),
                    0.40 * H,
                    z_shoulder - 10.0,
                    taper_bottom=0.65,
                    taper_top=1.0,
                ),
            )
        )
        parts.append((T.FAT, _ell((side * arm_x, -10.0, 0.385 * H), (35 * s, 20 * s, 70 * s))))
        leg_x = side * (W / 4.0 + 8.0)
        parts.append(
            (
                T.FAT,
                _cyl(
                    (leg_x, 5.0),
                    (80.0 * s, 85.0 * s),
                    0.045 * H,
                    z_crotch + 20.0,
                    taper_bottom=0.5,
                    taper_top=1.0,
                ),
            )
        )
        parts.append((T.FAT, _ell((leg_x, -30.0, 0.025 * H), (42 * s, 110 * s, 40 * s))))

    # muscle / lean soft tissue inside the fat envelope
    inner = (torso_a[0] - fat, torso_a[1] - fat)
    parts.append((T.SOFT_TISSUE, _ell(head_c, (head_a[0] - 5, head_a[1] - 5, head_a[2] - 5))))
    parts.append(
        (T.SOFT_TISSUE, _cyl((0.0, 5.0), (50.0 * s, 55.0 * s), z_shoulder - 20, z_neck_top + 40))
    )
    parts.append(
        (T.SOFT_TISSUE, _cyl((0.0, 0.0), inner, z_crotch - 30.0, z_shoulder, taper_top=0.97))
    )
    parts.append(
        (T.SOFT_TISSUE, _ell((0.0, 0.0, z_shoulder - 20.0), (inner[0] + 15.0, inner[1], 65.0 * s)))
    )
    parts.append(
        (T.SOFT_TISSUE, _ell((0.0, 10.0, z_crotch + 30.0), (inner[0], inner[1] + 10.0, 105 * s)))
    )
    for side in (-1.0, 1.0):
        parts.append(
            (
                T.SOFT_TISSUE,
                _cyl(
                    (side * arm_x, 0.0),
                    (36.0 * s, 39.0 * s),
                    0.40 * H,
                    z_shoulder - 10.0,
                    taper_bottom=0.65,
                ),
            )
        )
        leg_x = side * (W / 4.0 + 8.0)
        parts.append(
            (
                T.SOFT_TISSUE,
                _cyl(
                    (leg_x, 5.0),
                    (72.0 * s, 77.0 * s),
                    0.045 * H,
                    z_crotch + 20.0,
                    taper_bottom=0.5,
                ),
            )
        )
    # visceral fat filling the abdominal cavity (organs are painted over it)
    parts.append(
        (
            T.FAT,
            _ell(
                (0.0, -10.0, (z_diaphragm + z_hip) / 2.0),
                (inner[0] - 25.0, inner[1] - 30.0, (z_diaphragm - z_hip) / 2.0),
            ),
        )
    )

    # ---- skeleton ------------------------------------------------------------------------
    parts.append((T.BONE, _ell(head_c, head_a, hollow=0.9)))  # skull
    parts.append((T.BRAIN, _ell((0.0, -5.0, z_vertex - 95.0 * s), (62 * s, 80 * s, 75 * s))))
    spine_y = D / 2.0 - fat - 45.0
    parts.append((T.BONE, _cyl((0.0, spine_y), (18.0, 16.0), 0.50 * H, z_neck_top + 20.0)))
    parts.append(
        (
            T.BONE,
            _cyl(
                (0.0, 0.0),
                (inner[0] - 12.0, inner[1] - 12.0),
                z_diaphragm - 60.0,
                z_shoulder - 40.0,
                hollow=0.93,
                z_period_mm=24.0,
                z_duty=0.42,
            ),
        )
    )  # ribs as bands of a thin shell
    parts.append((T.BONE, _cyl((0.0, -inner[1] + 18.0), (14.0, 6.0), z_diaphragm, z_shoulder - 30)))
    parts.append(
        (
            T.BONE,
            _ell(
                (0.0, 25.0, (z_crest + z_hip) / 2.0),
                (inner[0] - 20.0, inner[1] - 20.0, (z_crest - z_hip) / 2.0 + 30.0),
                hollow=0.88,
                keep_halfspace=((0.0, -1.0, 0.0, 10.0),),
            ),
        )
    )  # pelvic ring, posterior/lateral part
    for side in (-1.0, 1.0):
        leg_x = side * (W / 4.0 + 8.0)
        parts.append((T.BONE, _cap((side * (W / 4.0), 10.0, z_hip), (leg_x, 10.0, 0.06 * H), 14.0)))
        parts.append(
            (
                T.BONE,
                _cap((side * arm_x, 0.0, z_shoulder - 30.0), (side * arm_x, 0.0, 0.42 * H), 11),
            )
        )
        parts.append(
            (
                T.BONE,
                _cap((side * 25.0, -40.0, z_shoulder + 5.0), (side * (W / 2.0), 0, z_shoulder), 7),
            )
        )  # clavicles

    # ---- thorax --------------------------------------------------------------------------
    lung_a = (W / 4.0 - 12.0, inner[1] - 25.0, (z_shoulder - z_diaphragm) / 2.0 - 5.0)
    lung_z = (z_shoulder + z_diaphragm) / 2.0 - 5.0
    for side in (-1.0, 1.0):
        parts.append((T.LUNG, _ell((side * (W / 4.0 + 5.0), 5.0, lung_z), lung_a)))
    heart_c = (30.0 + jit(5), -25.0, z_diaphragm + 55.0 * s)
    parts.append((T.HEART, _ell(heart_c, (55.0 * size(), 50.0, 60.0 * s), angle=-25.0)))

    # ---- neck and head organs ------------------------------------------------------------
    z_thyroid = 0.838 * H
    for side in (-1.0, 1.0):
        parts.append((T.THYROID, _ell((side * 17.0, -28.0, z_thyroid), (9.0, 8.0, 22.0 * size()))))
    parts.append((T.PITUITARY, _ell((0.0, -10.0, z_vertex - 105.0 * s), (6.0, 5.0, 4.0))))

    # ---- abdomen -------------------------------------------------------------------------
    stomach_c = (W * 0.16 + jit(5), -30.0, z_diaphragm - 45.0 * s)
    parts.append((T.STOMACH, _ell(stomach_c, (45.0 * size(), 32.0, 55.0 * s), angle=20.0)))
    # liver: a thick right lobe and a thinner, anterior left lobe reaching past the midline
    lf = size(0.85, 1.2) ** (1 / 3)
    right_ax = min(W * 0.19, (inner[0] - 8.0) / 2.0) * lf
    liver_c = (-(inner[0] - 8.0) + right_ax + jit(4), -0.02 * D + jit(4), z_diaphragm - 80.0 * s)
    liver_a = (right_ax, min(D * 0.32, inner[1] - 10.0) * lf, 85.0 * s * lf)
    # slope the inferior surface of the right lobe up towards the left
    liver_cut = ((0.35, 0.0, -1.0, -(liver_c[2] - liver_a[2] * 0.55) + 0.35 * liver_c[0]),)
    parts.append((T.LIVER, _ell(liver_c, liver_a, keep_halfspace=liver_cut)))
    left_c = (0.03 * W + jit(4), -0.13 * D, z_diaphragm - 55.0 * s)
    parts.append((T.LIVER, _ell(left_c, (0.17 * W * lf, 0.17 * D * lf, 48.0 * s * lf), angle=-10)))
    # the spleen is always drawn (so the rest of the body does not depend on splenectomy)
    spleen_scale = size(0.75, 1.35)
    spleen_c = (W * 0.31 + jit(5), D * 0.16 + jit(4), z_diaphragm - 55.0 * s + jit(6))
    spleen_a = (
        26.0 * spleen_scale ** (1 / 3),
        42.0 * spleen_scale ** (1 / 3),
        52.0 * s * spleen_scale ** (1 / 3),
    )
    if not splenectomy:
        parts.append((T.SPLEEN, _ell(spleen_c, spleen_a, angle=35.0)))
    k_scale = size(0.85, 1.15)
    for tissue, side, dz in ((T.KIDNEY_RIGHT, -1.0, -12.0), (T.KIDNEY_LEFT, 1.0, 8.0)):
        kc = (side * (62.0 + jit(4)), D * 0.20 + jit(3), z_kidney + dz)
        parts.append(
            (
                tissue,
                _ell(kc, (28.0 * k_scale, 25.0 * k_scale, 55.0 * s * k_scale), angle=side * 20),
            )
        )
        parts.append((T.ADRENAL, _ell((kc[0] * 0.75, kc[1] - 8.0, kc[2] + 62.0 * s), (9, 5, 14))))
    panc_z = z_kidney + 30.0 * s
    parts.append((T.PANCREAS, _cap((-35.0, 0.0, panc_z - 10.0), (70.0, 28.0, panc_z + 15.0), 13.0)))
    gb_c = (-W * 0.13 + jit(5), -inner[1] * 0.45, liver_c[2] - liver_a[2] * 0.55)
    parts.append((T.GALLBLADDER, _ell(gb_c, (15.0 * size(), 14.0, 32.0 * s), angle=15.0)))
    # colon frame (ascending, transverse, descending, sigmoid) and small bowel loops
    cx = inner[0] - 30.0
    z_tc = z_kidney - 10.0
    z_low = z_crest - 40.0
    colon = (
        (-cx, -15.0, z_low),
        (-cx, -10.0, z_tc),
        (-20.0, -inner[1] * 0.55, z_tc - 15.0),
        (cx, -10.0, z_tc + 15.0),
        (cx, -5.0, z_low),
        (20.0, 10.0, z_hip + 20.0),
    )
    for p0, p1 in itertools.pairwise(colon):
        parts.append((T.BOWEL, _cap(p0, p1, 20.0 * size(0.9, 1.1))))
    for _ in range(7):
        p0 = (rng.uniform(-cx + 35, cx - 35), rng.uniform(-inner[1] * 0.6, 0.0), 0.0)
        zz = rng.uniform(z_crest - 50.0, z_crest + 10.0)
        p1 = (p0[0] + rng.uniform(-40, 40), p0[1] + rng.uniform(-10, 10), zz + rng.uniform(-25, 25))
        parts.append((T.BOWEL, _cap((p0[0], p0[1], zz), p1, 11.0)))
    bladder_fill = size(0.6, 1.4)
    parts.append(
        (
            T.BLADDER,
            _ell(
                (0.0, -inner[1] * 0.35, z_hip - 5.0 + 15.0 * (bladder_fill - 1.0)),
                (
                    42.0 * bladder_fill ** (1 / 3),
                    36.0 * bladder_fill ** (1 / 3),
                    33.0 * bladder_fill ** (1 / 3),
                ),
            ),
        )
    )

    return Anatomy(
        seed=seed,
        height_mm=H,
        torso_width_mm=W,
        torso_depth_mm=D,
        weight_kg=float(weight),
        sex=sex,
        splenectomy=splenectomy,
        parts=tuple(parts),
    )


def ellipsoid_occupancy(
    grid: Grid, shape: Shape, *, supersample: int = 4
) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
    """Fraction (0-1) of each voxel inside ``shape`` within its bounding box.

    Returns (slices into the grid, float32 fractions) or None when the shape misses the grid.
    Each voxel is sampled at ``supersample**3`` regularly spaced points.
    """
    lo, hi = shape.bounds_mm()
    dz, dy, dx = grid.spacing_mm
    sz = grid.index_range(0, lo[2] - dz, hi[2] + dz)
    sy = grid.index_range(1, lo[1] - dy, hi[1] + dy)
    sx = grid.index_range(2, lo[0] - dx, hi[0] + dx)
    if sz.stop <= sz.start or sy.stop <= sy.start or sx.stop <= sx.start:
        return None
    n = supersample
    offs = (np.arange(n) + 0.5) / n - 0.5

    def sub(axis: int, sl: slice) -> np.ndarray:
        centres = grid.axis_mm(axis)[sl]
        return (centres[:, None] + offs[None, :] * grid.spacing_mm[axis]).ravel()

    zs, ys, xs = sub(0, sz), sub(1, sy), sub(2, sx)
    inside = shape.contains(xs[None, None, :], ys[None, :, None], zs[:, None, None])
    nz, ny, nx = sz.stop - sz.start, sy.stop - sy.start, sx.stop - sx.start
    frac = inside.reshape(nz, n, ny, n, nx, n).mean(axis=(1, 3, 5), dtype=np.float64)
    return (sz, sy, sx), frac.astype(np.float32)
