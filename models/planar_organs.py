"""Body outline, orientation and physiological organs on a planar (conjugate-view) image.

Everything is measured in millimetres through the pixel spacing and in intensities relative
to the image itself, so matrix size, pixel size and count level do not matter.

Conventions. The scoring image lies on the anterior view's grid. In the standard display of
an anterior view the patient's right is on the viewer's left (low column index) and the head
is at row 0. Work happens in a *canonical frame* with exactly that layout; when the image is
stored feet first (head at the bottom) or the liver appears on the image right, the frame
flips rows and/or columns, says so in a warning, and every mask and point is mapped back to
the stored grid on output.

Method (all thresholds from ``[planar.organs]``):

1. Body: the image smoothed to organ scale, thresholded at a fraction of the median soft-tissue
   level, largest connected part, holes filled.
2. Orientation (whole-body images only): the end whose body rows split into two runs (legs) is
   the feet; when that is unclear, the count-weighted centre of organ-level uptake (upper
   abdomen) lies in the cranial half.
3. Organ-scale image: smoothed, then a grey opening with a disk that removes lesion-sized hot
   spots. Its regional maxima seed a watershed inside the organ-level region (a multiple of
   the soft-tissue level); neighbouring basins joined by a high saddle are merged.
4. Classification by anatomy: the liver is the largest basin in the upper torso, off the
   midline (its side fixes the laterality); the spleen is the hottest basin on the other
   side, at least 60 mm from the midline, at or above liver height; the kidneys are a pair
   of kidney-sized blobs of the posterior view (difference of Gaussians) at about the same
   height either side of the spine, at or below the liver's centre, with more counts on
   the posterior view; the bladder is the lowest midline basin below the kidneys. Each
   organ's mask is its basin (or, for a kidney, its blob grown to half height above the
   surroundings) above half of the organ's own level, so that a lesion next to an organ
   keeps its own basin.
5. Head and neck: the zone above the shoulders, where midline hot spots are pituitary or
   thyroid (physiological).
6. Reference regions (:func:`place_reference`): a circle where the organ projects thickest,
   clear of its outline, of other organs and of lesions.

Constants below named ``_*_MM`` are anatomical priors in millimetres (implementation
choices); thresholds a site may tune are in the configuration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.morphology import disk, ellipse, opening
from skimage.segmentation import watershed

from octoscan.models.config import OrganConfig
from octoscan.models.stats import fwhm_to_sigma_px, smooth
from octoscan.models.types import OrganRegion

_MERGE_SADDLE_FRACTION = 0.92  # basins joined by a saddle above this fraction of the lower peak
_HALF = 0.5  # organ masks: the basin above half of the organ's own level
_SPLEEN_MAX_ROW_OFFSET_MM = 200.0  # spleen centre at most this far above the liver's centre
_SPLEEN_MIN_OFFSET_MM = 60.0  # spleen centre at least this far from the midline
_LIVER_LATERAL_MIN_MM = 15.0  # liver centre at least this far from the midline
_BLADDER_MAX_OFFSET_MM = 50.0
_HEAD_NECK_MARGIN_MM = 30.0  # liver centre at least this far from the midline (/ torso width)


@dataclass(frozen=True)
class Frame:
    """Canonical frame: flips (rows, cols) that take the stored grid to standard display."""

    shape: tuple[int, int]
    flip_rows: bool
    flip_cols: bool

    def to_canonical(self, arr: np.ndarray) -> np.ndarray:
        out = arr
        if self.flip_rows:
            out = out[::-1, :]
        if self.flip_cols:
            out = out[:, ::-1]
        return out

    def to_stored(self, arr: np.ndarray) -> np.ndarray:
        """Canonical -> stored (the flips are their own inverse)."""
        return np.ascontiguousarray(self.to_canonical(arr))

    def point_to_stored(self, rc: tuple[float, float]) -> tuple[float, float]:
        r, c = rc
        if self.flip_rows:
            r = self.shape[0] - 1 - r
        if self.flip_cols:
            c = self.shape[1] - 1 - c
        return (float(r), float(c))

    def point_to_canonical(self, rc: tuple[float, float]) -> tuple[float, float]:
        return self.point_to_stored(rc)


@dataclass(frozen=True)
class OrganMap:
    """Result of :func:`find_organs`.

    Masks in ``organs`` and ``body`` are on the stored grid. ``frame`` maps to the canonical
    frame in which the rest of planar scoring works; ``canonical_*`` fields are in that frame.
    ``soft_tissue_level`` is the median body level of the organ-scale image (counts per pixel).
    ``organ_peaks`` (canonical) is where each hot organ's own peak lies (spleen, kidneys,
    bladder): a hot spot there is the organ. ``head_neck_rows`` (canonical, [start, stop))
    is the zone above the shoulders, None when the image does not show it. ``midline_col``
    (canonical) is the body's midline.
    """

    body: np.ndarray
    organs: tuple[OrganRegion, ...]
    frame: Frame
    orientation: str
    whole_body: bool
    soft_tissue_level: float
    midline_col: float
    torso_width_mm: float
    head_neck_rows: tuple[int, int] | None
    canonical_organ_image: np.ndarray
    organ_peaks: dict[str, tuple[int, int]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def organ(self, name: str) -> OrganRegion | None:
        for o in self.organs:
            if o.organ == name:
                return o
        return None

    def canonical_mask(self, name: str) -> np.ndarray | None:
        o = self.organ(name)
        if o is None or o.mask is None:
            return None
        return self.frame.to_canonical(o.mask)


@dataclass
class _Basin:
    label: int
    mask: np.ndarray  # canonical, half-level mask
    full: np.ndarray  # canonical, whole basin
    peak: float
    level: float
    area_cm2: float
    row_mm: float
    col_mm: float
    offset: float  # signed lateral offset from the midline, mm (+ = image right)
    pa_ratio: float | None
    peak_rc: tuple[int, int] = (0, 0)
    # the watershed basins merged into this one: (mask, peak) each
    parts: tuple[tuple[np.ndarray, tuple[int, int]], ...] = ()


def _footprint(radius_mm: float, spacing_mm: tuple[float, float]) -> np.ndarray:
    rr = max(1, round(radius_mm / spacing_mm[0]))
    rc = max(1, round(radius_mm / spacing_mm[1]))
    if rr == rc:
        return disk(rr, decomposition="sequence")
    return ellipse(rc, rr)


def grey_open(
    image: np.ndarray,
    radius_mm: float,
    spacing_mm: tuple[float, float],
    *,
    within: np.ndarray | None = None,
) -> np.ndarray:
    """Grey opening with a disk of ``radius_mm`` (an ellipse in pixels for anisotropic grids).

    ``within`` (bool, image shape; optional): only the values inside it are wanted. The
    opening is then computed on the bounding box of ``within`` grown by twice the
    footprint's reach, which gives the same values inside ``within`` as the whole image
    (an opening at a pixel depends only on pixels within twice the reach; image edges are
    padded alike); outside the box the result is -inf. An empty ``within``: all -inf.
    """
    fp = _footprint(radius_mm, spacing_mm)
    if within is None:
        return opening(image, fp)
    out = np.full(image.shape, -np.inf)
    rows = np.flatnonzero(np.any(within, axis=1))
    cols = np.flatnonzero(np.any(within, axis=0))
    if rows.size == 0:
        return out
    reach_r, reach_c = _reach(fp)
    r0, r1 = max(int(rows[0]) - 2 * reach_r, 0), int(rows[-1]) + 2 * reach_r + 1
    c0, c1 = max(int(cols[0]) - 2 * reach_c, 0), int(cols[-1]) + 2 * reach_c + 1
    out[r0:r1, c0:c1] = opening(np.asarray(image)[r0:r1, c0:c1], fp)
    return out


def _reach(footprint: np.ndarray | tuple[tuple[np.ndarray, int], ...]) -> tuple[int, int]:
    """(rows, cols) from the centre to the far edge of a footprint, or of the footprint that
    a decomposed sequence of (footprint, repeats) pairs adds up to."""
    if isinstance(footprint, np.ndarray):
        return footprint.shape[0] // 2, footprint.shape[1] // 2
    return (
        sum(int(n) * (fp.shape[0] // 2) for fp, n in footprint),
        sum(int(n) * (fp.shape[1] // 2) for fp, n in footprint),
    )


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask.copy()
    sizes = ndimage.sum_labels(mask, lab, index=np.arange(1, n + 1))
    return lab == (int(np.argmax(sizes)) + 1)


def body_mask(smoothed: np.ndarray, *, fraction: float) -> tuple[np.ndarray, float]:
    """Body outline of a smoothed planar image and the median soft-tissue level.

    Pixels above 1 % of the 99.5th percentile are "not air"; their median is the soft-tissue
    level; the body is everything above ``fraction`` of it (largest part, holes filled).
    """
    hi = float(np.percentile(smoothed, 99.5))
    if hi <= 0.0:
        return np.zeros(smoothed.shape, dtype=bool), 0.0
    not_air = smoothed > 0.01 * hi
    soft = float(np.median(smoothed[not_air]))
    body = smoothed > fraction * soft
    body = _largest_component(body)
    body = ndimage.binary_fill_holes(body)
    return body, soft


def _runs_per_row(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask.astype(np.int8), ((0, 0), (1, 1)))
    return (np.diff(padded, axis=1) == 1).sum(axis=1)


def _orientation(
    body: np.ndarray, organ_image: np.ndarray, organ_level: float
) -> tuple[bool, str, list[str]]:
    """(flip_rows, description, warnings) for a whole-body image."""
    rows = np.flatnonzero(body.any(axis=1))
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    n = r1 - r0
    band = max(3, n // 8)
    runs = _runs_per_row(body)
    top_two = float(np.mean(runs[r0 : r0 + band] >= 2))
    bottom_two = float(np.mean(runs[r1 - band : r1] >= 2))
    weights = np.where(body & (organ_image > organ_level), organ_image, 0.0)
    total = float(weights.sum())
    centroid = (
        float((weights.sum(axis=1) * np.arange(body.shape[0])).sum() / total - r0) / n
        if total > 0
        else 0.5
    )
    legs_cue = bottom_two - top_two  # > 0: legs at the bottom: head first
    if abs(legs_cue) >= 0.3:
        flip = legs_cue < 0
        how = "two-legged end of the body"
    elif abs(centroid - 0.5) >= 0.05:
        flip = centroid > 0.5
        how = "position of the abdominal organs"
    else:
        return (
            False,
            "head at row 0 (assumed: orientation not determined)",
            [
                "whole-body orientation could not be determined from the image; head assumed at "
                "row 0"
            ],
        )
    if flip:
        return (
            True,
            f"feet at row 0 (from the {how}): rows reversed for scoring",
            [
                f"image stored feet first (head at the last row, judged from the {how}); scored "
                "with rows reversed and positions reported on the stored grid"
            ],
        )
    return False, f"head at row 0 (from the {how})", []


def _merge_basins(labels: np.ndarray, image: np.ndarray, peaks: dict[int, float]) -> np.ndarray:
    """Merge neighbouring basins whose saddle is above a fraction of the lower peak."""
    parent = {k: k for k in peaks}

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    saddles: dict[tuple[int, int], float] = {}
    for axis in (0, 1):
        a = labels
        b = np.roll(labels, -1, axis=axis)
        va = image
        vb = np.roll(image, -1, axis=axis)
        sl = [slice(None), slice(None)]
        sl[axis] = slice(0, labels.shape[axis] - 1)
        a, b, va, vb = a[tuple(sl)], b[tuple(sl)], va[tuple(sl)], vb[tuple(sl)]
        sel = (a != b) & (a > 0) & (b > 0)
        if not sel.any():
            continue
        la, lb = a[sel], b[sel]
        v = np.minimum(va[sel], vb[sel])
        lo = np.minimum(la, lb)
        hi = np.maximum(la, lb)
        keys = lo.astype(np.int64) * (int(labels.max()) + 1) + hi
        order = np.argsort(keys)
        keys, v = keys[order], v[order]
        uniq, start = np.unique(keys, return_index=True)
        maxima = np.maximum.reduceat(v, start)
        base = int(labels.max()) + 1
        for key, val in zip(uniq.tolist(), maxima.tolist(), strict=True):
            pair = (key // base, key % base)
            saddles[pair] = max(saddles.get(pair, -np.inf), val)
    for (i, j), s in sorted(saddles.items(), key=lambda kv: -kv[1]):
        ri, rj = find(i), find(j)
        if ri == rj:
            continue
        if s >= _MERGE_SADDLE_FRACTION * min(peaks[ri], peaks[rj]):
            keep, drop = (ri, rj) if peaks[ri] >= peaks[rj] else (rj, ri)
            parent[drop] = keep
    lut = np.zeros(int(labels.max()) + 1, dtype=labels.dtype)
    for k in peaks:
        lut[k] = find(k)
    return lut[labels]


def find_organs(
    image: np.ndarray,
    *,
    spacing_mm: tuple[float, float],
    config: OrganConfig,
    anterior: np.ndarray | None = None,
    posterior: np.ndarray | None = None,
) -> OrganMap:
    """Locate body, orientation, liver, spleen, kidneys and bladder on a planar image.

    ``image`` is the scoring image (geometric mean or single view) on the stored anterior
    grid; ``anterior`` and ``posterior`` (mirrored, registered) on the same grid, when both
    exist, let the kidneys be recognised by their posterior dominance. Organs not found are
    absent from ``organs``; warnings say why.
    """
    image = np.asarray(image, dtype=np.float64)
    shape = (int(image.shape[0]), int(image.shape[1]))
    warnings: list[str] = []
    sigma = fwhm_to_sigma_px(config.smoothing_fwhm_mm, spacing_mm)
    s_stored = smooth(image, sigma)
    body_stored, soft = body_mask(s_stored, fraction=config.body_threshold_fraction)
    if soft <= 0.0 or not body_stored.any():
        frame = Frame(shape, False, False)
        return OrganMap(
            body=body_stored,
            organs=(),
            frame=frame,
            orientation="unknown (empty image)",
            whole_body=False,
            soft_tissue_level=0.0,
            midline_col=shape[1] / 2.0,
            torso_width_mm=0.0,
            head_neck_rows=None,
            canonical_organ_image=s_stored,
            warnings=("image holds no counts: no organ can be located",),
        )
    rows = np.flatnonzero(body_stored.any(axis=1))
    length_mm = (int(rows[-1]) - int(rows[0]) + 1) * spacing_mm[0]
    whole_body = length_mm >= config.whole_body_min_length_mm
    organ_stored = grey_open(s_stored, config.opening_radius_mm, spacing_mm)
    organ_level = config.organ_threshold_factor * soft

    if whole_body:
        flip_rows, orientation, w = _orientation(body_stored, organ_stored, organ_level)
        warnings.extend(w)
    else:
        flip_rows, orientation = False, "head at row 0 (assumed: static view)"
    frame = Frame(shape, flip_rows, False)
    body = frame.to_canonical(body_stored)
    organ_img = frame.to_canonical(organ_stored)
    ant = (
        frame.to_canonical(np.asarray(anterior, dtype=np.float64)) if anterior is not None else None
    )
    post = (
        frame.to_canonical(np.asarray(posterior, dtype=np.float64))
        if posterior is not None
        else None
    )
    if ant is not None and post is not None:
        ant = smooth(ant, sigma)
        post = smooth(post, sigma)

    midline, torso_width_mm = _torso_geometry(body, spacing_mm)
    basins = _basins(
        organ_img,
        body,
        organ_level=organ_level,
        spacing_mm=spacing_mm,
        midline=midline,
        torso_width_mm=torso_width_mm,
        ant=ant,
        post=post,
    )
    gm_smooth = smooth(frame.to_canonical(image), fwhm_to_sigma_px(10.0, spacing_mm))
    organs_c, peaks_c, flip_cols, w = _classify(
        basins,
        body=body,
        organ_img=organ_img,
        gm_smooth=gm_smooth,
        midline=midline,
        spacing_mm=spacing_mm,
        whole_body=whole_body,
        config=config,
        ant=ant,
        post=post,
    )
    warnings.extend(w)
    if flip_cols:
        frame = Frame(shape, flip_rows, True)
        organs_c = {k: v[:, ::-1] for k, v in organs_c.items()}
        peaks_c = {k: (r, shape[1] - 1 - c) for k, (r, c) in peaks_c.items()}
        body = body[:, ::-1]
        organ_img = organ_img[:, ::-1]
        midline = shape[1] - 1 - midline
        warnings.append(
            "the liver appears on the image right of this anterior view (mislabelled view, "
            "mirrored image or situs inversus): scored with columns reversed; check laterality"
        )
    head_neck = _head_neck_rows(body, spacing_mm) if whole_body else None

    organs: list[OrganRegion] = []
    s_canon = frame.to_canonical(s_stored)
    pixel_cm2 = spacing_mm[0] * spacing_mm[1] / 100.0
    for name, mask_c in organs_c.items():
        if not mask_c.any():
            continue
        rr, cc = np.nonzero(mask_c)
        center = frame.point_to_stored((float(rr.mean()), float(cc.mean())))
        organs.append(
            OrganRegion(
                organ=name,
                center_rc=(round(center[0], 2), round(center[1], 2)),
                mean=float(s_canon[mask_c].mean()),
                method="planar organ-scale watershed with anatomical priors",
                area_cm2=round(float(mask_c.sum()) * pixel_cm2, 2),
                mask=frame.to_stored(mask_c),
            )
        )
    return OrganMap(
        body=frame.to_stored(body),
        organs=tuple(organs),
        frame=frame,
        orientation=orientation,
        whole_body=whole_body,
        soft_tissue_level=soft,
        midline_col=float(midline),
        torso_width_mm=torso_width_mm,
        head_neck_rows=head_neck,
        canonical_organ_image=np.ascontiguousarray(organ_img),
        organ_peaks=peaks_c,
        warnings=tuple(warnings),
    )


def _widest_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: length of the widest run of True and the centre column of that run."""
    padded = np.pad(mask.astype(np.int8), ((0, 0), (1, 1)))
    d = np.diff(padded, axis=1)
    sr, sc = np.nonzero(d == 1)
    _, ec = np.nonzero(d == -1)
    widths = np.zeros(mask.shape[0])
    centres = np.full(mask.shape[0], np.nan)
    if sr.size == 0:
        return widths, centres
    lengths = ec - sc  # starts and ends pair up row by row, in order
    order = np.lexsort((-lengths, sr))
    sr, sc, lengths = sr[order], sc[order], lengths[order]
    first = np.ones(sr.size, dtype=bool)
    first[1:] = sr[1:] != sr[:-1]
    widths[sr[first]] = lengths[first]
    centres[sr[first]] = sc[first] + 0.5 * (lengths[first] - 1)
    return widths, centres


def _torso_geometry(body: np.ndarray, spacing_mm: tuple[float, float]) -> tuple[float, float]:
    """Midline column and torso width (mm).

    The midline is the median centre of the body's full left-to-right extent over the rows
    of the middle of the body (arms, when both are in the image, are symmetric); the torso
    width is the median width of the widest run over the broad rows (it may include arms
    lying against the body).
    """
    widths, _ = _widest_runs(body)
    valid = widths > 0
    if not valid.any():
        return body.shape[1] / 2.0, body.shape[1] * spacing_mm[1]
    rows = np.flatnonzero(valid)
    n = rows[-1] - rows[0] + 1
    middle = rows[(rows >= rows[0] + 0.2 * n) & (rows <= rows[0] + 0.6 * n)]
    if middle.size == 0:
        middle = rows
    any_cols = body[middle]
    first = np.argmax(any_cols, axis=1)
    last = body.shape[1] - 1 - np.argmax(any_cols[:, ::-1], axis=1)
    midline = float(np.median(0.5 * (first + last)))
    hi = np.percentile(widths[valid], 80)
    torso = valid & (widths >= 0.6 * hi)
    torso_width = float(np.median(widths[torso])) * spacing_mm[1]
    return midline, torso_width


def _basins(
    organ_img: np.ndarray,
    body: np.ndarray,
    *,
    organ_level: float,
    spacing_mm: tuple[float, float],
    midline: float,
    torso_width_mm: float,
    ant: np.ndarray | None,
    post: np.ndarray | None,
) -> list[_Basin]:
    region = body & (organ_img > organ_level)
    if not region.any():
        return []
    min_dist = max(1, round(25.0 / min(spacing_mm)))
    coords = peak_local_max(
        np.where(region, organ_img, 0.0),
        min_distance=min_dist,
        threshold_abs=organ_level,
        exclude_border=False,
    )
    markers = np.zeros(organ_img.shape, dtype=np.int32)
    for k, (r, c) in enumerate(coords, start=1):
        markers[r, c] = k
    raw = watershed(-organ_img, markers, mask=region)
    peaks = {k: float(organ_img[r, c]) for k, (r, c) in enumerate(coords, start=1)}
    labels = _merge_basins(raw, organ_img, peaks)
    pixel_cm2 = spacing_mm[0] * spacing_mm[1] / 100.0
    out: list[_Basin] = []
    objects = ndimage.find_objects(labels)
    for idx, sl in enumerate(objects, start=1):
        if sl is None:
            continue
        full = np.zeros(labels.shape, dtype=bool)
        full[sl] = labels[sl] == idx
        values = organ_img[full]
        peak = float(values.max())
        level = float(np.percentile(values, 90))
        mask = full & (organ_img >= _HALF * level)
        mask = _largest_component(mask) if mask.any() else mask
        if not mask.any():
            continue
        rr, cc = np.nonzero(mask)
        pa = None
        if ant is not None and post is not None:
            a_mean = float(ant[mask].mean())
            p_mean = float(post[mask].mean())
            pa = p_mean / a_mean if a_mean > 0 else None
        out.append(
            _Basin(
                label=idx,
                mask=mask,
                full=full,
                peak=peak,
                level=level,
                area_cm2=float(mask.sum()) * pixel_cm2,
                row_mm=float(rr.mean()) * spacing_mm[0],
                col_mm=float(cc.mean()) * spacing_mm[1],
                offset=(float(cc.mean()) - midline) * spacing_mm[1],
                pa_ratio=pa,
                peak_rc=_argmax_in(organ_img, full),
                parts=tuple(
                    (raw == k, (int(coords[k - 1][0]), int(coords[k - 1][1])))
                    for k in np.unique(raw[full])
                    if k > 0
                ),
            )
        )
    return out


def _ellipse_mask(
    shape: tuple[int, int],
    center: tuple[float, float],
    half_mm: tuple[float, float],
    spacing_mm: tuple[float, float],
) -> np.ndarray:
    rr = np.arange(shape[0])[:, None]
    cc = np.arange(shape[1])[None, :]
    return (((rr - center[0]) * spacing_mm[0] / half_mm[0]) ** 2) + (
        ((cc - center[1]) * spacing_mm[1] / half_mm[1]) ** 2
    ) <= 1.0


def grow_region(
    image: np.ndarray,
    peak_rc: tuple[int, int],
    *,
    window_mm: tuple[float, float],
    spacing_mm: tuple[float, float],
    fraction: float = _HALF,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """Pixels connected to ``peak_rc`` above background + ``fraction`` x (peak - background).

    The background is the 20th percentile of ``image`` in an elliptical ring around the
    window (half-axes ``window_mm`` (rows, cols), ring out to 1.8 times); the region never
    leaves the window (nor ``allowed``, when given).
    """
    shape = (int(image.shape[0]), int(image.shape[1]))
    inner = _ellipse_mask(shape, peak_rc, window_mm, spacing_mm)
    outer = _ellipse_mask(shape, peak_rc, (1.8 * window_mm[0], 1.8 * window_mm[1]), spacing_mm)
    ring = outer & ~inner
    if allowed is not None:
        ring &= allowed
    bg = float(np.percentile(image[ring], 20)) if ring.any() else 0.0
    peak = float(image[peak_rc])
    cand = inner & (image >= bg + fraction * (peak - bg))
    if allowed is not None:
        cand &= allowed
    lab, _ = ndimage.label(cand)
    k = lab[peak_rc]
    return lab == k if k > 0 else np.zeros(shape, dtype=bool)


_KIDNEY_WINDOW_MM = (60.0, 35.0)  # half-axes (rows, cols) of a kidney's search window
_KIDNEY_OFFSET_MM = (25.0, 140.0)  # |centre - midline|
_KIDNEY_PAIR_MAX_DROW_MM = 50.0
_KIDNEY_PAIR_MAX_DOFFSET_MM = 35.0
_KIDNEY_DOG_SIGMA_MM = (18.0, 30.0)
_KIDNEY_ABOVE_LIVER_MM = 10.0  # kidney centres lie at most this far above the liver's centre
_KIDNEY_MIN_AREA_CM2 = 20.0  # half-maximum area of a kidney on the posterior view
_REMNANT_MM = 8.0  # a basin whose highest point is this close to a kidney is its flank


def _find_kidneys(
    gm_smooth: np.ndarray,
    body: np.ndarray,
    *,
    liver: _Basin,
    side_sign: float,
    midline: float,
    spacing_mm: tuple[float, float],
    config: OrganConfig,
    ant: np.ndarray | None,
    post: np.ndarray | None,
    exclude: np.ndarray,
) -> dict[str, tuple[np.ndarray, tuple[int, int]]]:
    """Kidneys as a pair of kidney-sized blobs either side of the spine.

    Blobs: maxima of a difference of Gaussians (kidney scale) of the posterior view (the
    kidneys lie posterior) or of the scoring image without one, at or below the liver's
    centre, 25-140 mm from the midline, kidney-sized (half-maximum area of at least
    ``_KIDNEY_MIN_AREA_CM2``). A pair lies at about the same height and distance from the
    midline and is scored by its weaker member (kidneys take up alike); with both views
    each blob must have more counts on the posterior view. Without a pair, a single
    posterior-dominant blob on the liver side is taken as the right kidney.
    """
    have_pa = ant is not None and post is not None
    base = post if post is not None else gm_smooth
    s1 = (_KIDNEY_DOG_SIGMA_MM[0] / spacing_mm[0], _KIDNEY_DOG_SIGMA_MM[0] / spacing_mm[1])
    s2 = (_KIDNEY_DOG_SIGMA_MM[1] / spacing_mm[0], _KIDNEY_DOG_SIGMA_MM[1] / spacing_mm[1])
    dog = smooth(base, s1) - smooth(base, s2)
    rows = np.arange(body.shape[0])[:, None] * spacing_mm[0]
    zone = body & (rows >= liver.row_mm - _KIDNEY_ABOVE_LIVER_MM) & (rows <= liver.row_mm + 220.0)
    if not zone.any() or float(dog[zone].max()) <= 0.0:
        return {}
    peaks = peak_local_max(
        np.where(zone, dog, 0.0),
        min_distance=max(1, round(10.0 / min(spacing_mm))),
        threshold_abs=1e-9,
        exclude_border=False,
    )
    pixel_cm2 = spacing_mm[0] * spacing_mm[1] / 100.0
    cands = []
    for r, c in peaks:
        if exclude[r, c]:
            continue
        dx = (float(c) - midline) * spacing_mm[1] * side_sign  # liver side negative
        if not _KIDNEY_OFFSET_MM[0] <= abs(dx) <= _KIDNEY_OFFSET_MM[1]:
            continue
        pa = None
        if have_pa:
            assert ant is not None and post is not None
            a = float(ant[r, c])
            pa = float(post[r, c]) / a if a > 0 else None
            if pa is None or pa < config.kidney_min_posterior_anterior_ratio:
                continue
        grown = grow_region(
            base,
            (int(r), int(c)),
            window_mm=_KIDNEY_WINDOW_MM,
            spacing_mm=spacing_mm,
            allowed=body,
        )
        if float(grown.sum()) * pixel_cm2 < _KIDNEY_MIN_AREA_CM2:
            continue
        cands.append((int(r), int(c), dx, float(dog[r, c])))
    best: tuple[float, tuple[int, int, float, float], tuple[int, int, float, float]] | None = None
    for ri in cands:
        for le in cands:
            if not (ri[2] < 0.0 < le[2]):
                continue
            if abs(ri[0] - le[0]) * spacing_mm[0] > _KIDNEY_PAIR_MAX_DROW_MM:
                continue
            if abs(abs(ri[2]) - abs(le[2])) > _KIDNEY_PAIR_MAX_DOFFSET_MM:
                continue
            score = min(ri[3], le[3])
            if best is None or score > best[0]:
                best = (score, ri, le)
    found: dict[str, tuple[int, int]] = {}
    if best is not None:
        found = {"kidney_right": best[1][:2], "kidney_left": best[2][:2]}
    elif have_pa:
        single = [k for k in cands if k[2] < 0.0 and k[0] * spacing_mm[0] >= liver.row_mm - 20.0]
        if single:
            k = max(single, key=lambda x: x[3])
            found = {"kidney_right": (k[0], k[1])}
    out: dict[str, tuple[np.ndarray, tuple[int, int]]] = {}
    for name, rc in found.items():
        mask = grow_region(
            gm_smooth, rc, window_mm=_KIDNEY_WINDOW_MM, spacing_mm=spacing_mm, allowed=body
        )
        if mask.any():
            out[name] = (mask, rc)
    return out


def _minus(
    b: _Basin, taken: np.ndarray, organ_img: np.ndarray, spacing_mm: tuple[float, float]
) -> _Basin | None:
    """The basin without ``taken`` pixels (kidneys).

    None when nothing is left or what is left is only the flank of a kidney: its highest
    point touches the kidney (within ``_REMNANT_MM``) instead of standing apart.
    """
    mask = b.mask & ~taken
    if not mask.any():
        return None
    mask = _largest_component(mask)
    peak_rc = b.peak_rc
    if taken[peak_rc]:
        peak_rc = _argmax_in(organ_img, mask)
        dist = ndimage.distance_transform_edt(~taken, sampling=spacing_mm)
        if float(dist[peak_rc]) < _REMNANT_MM:
            return None
    rr, cc = np.nonzero(mask)
    pixel_cm2 = spacing_mm[0] * spacing_mm[1] / 100.0
    return _Basin(
        label=b.label,
        mask=mask,
        full=b.full & ~taken,
        peak=float(organ_img[peak_rc]),
        level=float(np.percentile(organ_img[mask], 90)),
        area_cm2=float(mask.sum()) * pixel_cm2,
        row_mm=float(rr.mean()) * spacing_mm[0],
        col_mm=float(cc.mean()) * spacing_mm[1],
        offset=b.offset,
        pa_ratio=b.pa_ratio,
        peak_rc=peak_rc,
        parts=b.parts,
    )


def _classify(
    basins: list[_Basin],
    *,
    body: np.ndarray,
    organ_img: np.ndarray,
    gm_smooth: np.ndarray,
    midline: float,
    spacing_mm: tuple[float, float],
    whole_body: bool,
    config: OrganConfig,
    ant: np.ndarray | None,
    post: np.ndarray | None,
) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, int]], bool, list[str]]:
    """Name the basins.

    Returns canonical masks, canonical peak locations (the point whose hot spot is the organ
    itself), whether columns must flip, and warnings.
    """
    warnings: list[str] = []
    organs: dict[str, np.ndarray] = {}
    peaks: dict[str, tuple[int, int]] = {}
    if not basins:
        return organs, peaks, False, ["no organ-level uptake found: liver and spleen not located"]
    rows = np.flatnonzero(body.any(axis=1))
    top_mm = float(rows[0]) * spacing_mm[0]
    length_mm = (float(rows[-1]) - float(rows[0]) + 1.0) * spacing_mm[0]

    def rel_row(b: _Basin) -> float:
        return (b.row_mm - top_mm) / length_mm

    # liver: largest basin in the upper torso, off the midline
    liver_cands = [
        b
        for b in basins
        if b.area_cm2 >= config.liver_min_area_cm2
        and abs(b.offset) >= _LIVER_LATERAL_MIN_MM
        and (not whole_body or 0.15 <= rel_row(b) <= 0.55)
    ]
    if not liver_cands:
        warnings.append(
            f"liver not found (no organ-level region of {config.liver_min_area_cm2:g} cm^2 or "
            "more in the upper torso)"
        )
        return organs, peaks, False, warnings
    liver = max(liver_cands, key=lambda b: b.area_cm2)
    flip_cols = liver.offset > 0
    sign = -1.0 if flip_cols else 1.0  # multiply offsets so the liver side is negative

    def off(b: _Basin) -> float:
        return b.offset * sign

    rest = [b for b in basins if b is not liver]

    # spleen: hottest basin on the side opposite the liver, lateral, at liver height or above
    spleen_cands = [
        b
        for b in rest
        if off(b) >= _SPLEEN_MIN_OFFSET_MM
        and liver.row_mm - _SPLEEN_MAX_ROW_OFFSET_MM <= b.row_mm <= liver.row_mm + 40.0
        and config.spleen_min_area_cm2 <= b.area_cm2 <= config.spleen_max_area_cm2
    ]
    spleen_zone = np.zeros(body.shape, dtype=bool)
    if spleen_cands:
        spleen = max(spleen_cands, key=lambda b: b.level)
        # keep only the merged parts that peak as far out as a spleen does: a hot lesion
        # against the spleen's medial side (pancreatic tail, node) keeps its own part
        lateral = [
            m
            for m, (r, c) in spleen.parts
            if (c - midline) * spacing_mm[1] * sign >= _SPLEEN_MIN_OFFSET_MM
        ]
        spleen_mask = spleen.mask
        if lateral and len(lateral) < len(spleen.parts):
            keep = np.logical_or.reduce(lateral)
            trimmed = spleen.mask & keep
            if trimmed.any():
                spleen_mask = _largest_component(trimmed)
        organs["spleen"] = spleen_mask
        peaks["spleen"] = _argmax_in(organ_img, spleen_mask)
        rest = [b for b in rest if b is not spleen]
        spleen_zone = ndimage.binary_dilation(
            spleen_mask, iterations=max(1, round(5.0 / min(spacing_mm)))
        )
    else:
        warnings.append(
            "spleen not found (splenectomy, or no hot organ opposite the liver at liver height)"
        )

    kidney_found = _find_kidneys(
        gm_smooth,
        body,
        liver=liver,
        side_sign=sign,
        midline=midline,
        spacing_mm=spacing_mm,
        config=config,
        ant=ant,
        post=post,
        exclude=spleen_zone,
    )
    kidneys = {name: mk & ~spleen_zone for name, (mk, _) in kidney_found.items()}
    kidneys = {name: mk for name, mk in kidneys.items() if mk.any()}
    peaks.update({name: rc for name, (_, rc) in kidney_found.items() if name in kidneys})
    taken = np.zeros(body.shape, dtype=bool)
    for m in kidneys.values():
        taken |= m
    taken_wide = ndimage.binary_dilation(taken, iterations=2) if taken.any() else taken
    # liver level: median of the basin's upper part once kidneys are removed (hot lesions
    # and the kidney inflate a high percentile); the mask is the basin above half of it
    region = liver.full & ~taken_wide & ~spleen_zone
    values = organ_img[region]
    if values.size:
        upper = values[values >= 0.3 * float(np.percentile(values, 90))]
        level = float(np.median(upper))
        liver_mask = region & (organ_img >= _HALF * level)
    else:
        liver_mask = region
    organs["liver"] = _largest_component(liver_mask) if liver_mask.any() else liver_mask
    rest = [
        m for m in (_minus(b, taken_wide, organ_img, spacing_mm) for b in rest) if m is not None
    ]
    organs.update(kidneys)

    # bladder: lowest midline basin below the kidneys (whole-body images)
    if whole_body:
        lowest_kidney = max(
            (float(np.nonzero(k)[0].mean()) * spacing_mm[0] for k in kidneys.values()),
            default=liver.row_mm + 100.0,
        )
        bl = [
            b
            for b in rest
            if abs(b.offset) <= _BLADDER_MAX_OFFSET_MM
            and b.row_mm > lowest_kidney + 60.0
            and rel_row(b) <= 0.75
        ]
        if bl:
            bladder = max(bl, key=lambda b: b.row_mm)
            organs["bladder"] = bladder.mask
            peaks["bladder"] = _argmax_in(organ_img, bladder.mask)
    return organs, peaks, flip_cols, warnings


def _argmax_in(image: np.ndarray, mask: np.ndarray) -> tuple[int, int]:
    r, c = np.unravel_index(int(np.argmax(np.where(mask, image, -np.inf))), image.shape)
    return (int(r), int(c))


def _head_neck_rows(body: np.ndarray, spacing_mm: tuple[float, float]) -> tuple[int, int] | None:
    """Canonical rows [top of body, shoulders) of a head-first whole-body image.

    The head is the widest part of the top 200 mm; the shoulders are the first row below it
    at least 1.6 times as wide (arms included or not, the torso is wider than that); the zone
    reaches ``_HEAD_NECK_MARGIN_MM`` below that row.
    """
    rows = np.flatnonzero(body.any(axis=1))
    if rows.size == 0:
        return None
    r0 = int(rows[0])
    widths = body.sum(axis=1).astype(np.float64) * spacing_mm[1]
    head_rows = max(2, math.ceil(200.0 / spacing_mm[0]))
    search = min(body.shape[0], r0 + math.ceil(500.0 / spacing_mm[0]))
    w = widths[r0:search]
    if w.size <= head_rows:
        return None
    head_peak = int(np.argmax(w[:head_rows]))
    head_w = float(w[head_peak])
    wide = np.flatnonzero(w[head_peak:] >= 1.6 * head_w)
    if wide.size == 0:
        return None
    # the thyroid lies at the base of the neck, where the shoulders already widen
    margin = round(_HEAD_NECK_MARGIN_MM / spacing_mm[0])
    return (r0, min(body.shape[0], r0 + head_peak + int(wide[0]) + margin))


# --------------------------------------------------------------------------------------------
# reference regions


def _disk_kernel(radius_mm: float, spacing_mm: tuple[float, float]) -> np.ndarray:
    rr = math.ceil(radius_mm / spacing_mm[0])
    rc = math.ceil(radius_mm / spacing_mm[1])
    y = np.arange(-rr, rr + 1)[:, None] * spacing_mm[0]
    x = np.arange(-rc, rc + 1)[None, :] * spacing_mm[1]
    return (y**2 + x**2 <= radius_mm**2).astype(np.float64)


def circle_mask(
    shape: tuple[int, int],
    center_rc: tuple[float, float],
    radius_mm: float,
    spacing_mm: tuple[float, float],
) -> np.ndarray:
    """Pixels whose centres lie within ``radius_mm`` of ``center_rc`` (mm through spacing)."""
    return _ellipse_mask(shape, center_rc, (radius_mm, radius_mm), spacing_mm)


@dataclass(frozen=True)
class ReferencePlacement:
    """Where a reference circle goes (canonical frame) and how it was chosen."""

    organ: str
    center_rc: tuple[int, int]
    radius_mm: float
    method: str
    warnings: tuple[str, ...] = ()


def place_reference(
    organ_mask: np.ndarray,
    exclusion: np.ndarray,
    image: np.ndarray,
    variance: np.ndarray | None,
    *,
    organ: str,
    diameter_mm: float,
    edge_margin_mm: float,
    spacing_mm: tuple[float, float],
    prefer_lateral_of_col: float | None = None,
    prefer_lower_col: bool = True,
    brightest: bool = True,
    prefer_above_row: float | None = None,
) -> ReferencePlacement | None:
    """Choose the centre of a reference circle inside ``organ_mask`` (canonical frame).

    Candidate centres keep ``diameter_mm / 2 + edge_margin_mm`` from the organ outline and
    from ``exclusion`` (lesions, hot structures); the margin is relaxed step by step when no
    centre qualifies (and a warning says so). Among candidates, optionally those lateral to
    ``prefer_lateral_of_col`` (the right lobe of the liver, off the spine: lower columns
    when ``prefer_lower_col``; the margin is relaxed further when only a relaxed step has
    candidates there) and at or above ``prefer_above_row`` (canonical rows: cranial),
    each preference dropped when no candidate meets it, the circle is placed where the organ
    projects thickest (highest local mean), among the more homogeneous half of the
    candidates (coefficient of variation beyond counting noise at or below the median) so
    that an unseen hot spot does not attract it; with ``brightest`` False, the most
    homogeneous circle closest to the candidates' median level is taken instead.
    """
    radius = diameter_mm / 2.0
    usable = organ_mask & ~exclusion
    if not usable.any():
        return None
    dist = ndimage.distance_transform_edt(usable, sampling=spacing_mm)
    side: np.ndarray | None = None
    if prefer_lateral_of_col is not None:
        cols = np.arange(usable.shape[1])[None, :]
        side = cols <= prefer_lateral_of_col if prefer_lower_col else cols >= prefer_lateral_of_col
    # the outline margin is relaxed step by step: the first step with any candidate, or with
    # a lateral preference the first step with candidates on the preferred side (the
    # lateral side matters more: off the spine)
    steps = [
        (m, dist >= radius + m) for m in (edge_margin_mm, 0.5 * edge_margin_mm, 0.0, -0.5 * radius)
    ]
    steps = [(m, c) for m, c in steps if c.any()]
    if not steps:
        return None
    margin, cands = steps[0]
    if side is not None:
        margin, cands = next(((m, c & side) for m, c in steps if (c & side).any()), (margin, cands))
    warnings: list[str] = []
    if margin < edge_margin_mm:
        warnings.append(
            f"{organ} reference kept only {max(margin, -radius) + radius:.0f} mm from the "
            f"organ outline or a lesion (wanted {radius + edge_margin_mm:.0f} mm)"
        )
    if prefer_above_row is not None:
        rows_idx = np.arange(usable.shape[0])[:, None]
        upper = np.broadcast_to(rows_idx <= prefer_above_row, usable.shape)
        if (cands & upper).any():
            cands = cands & upper
    kernel = _disk_kernel(radius, spacing_mm)
    n = float(kernel.sum())
    rows = np.flatnonzero(cands.any(axis=1))
    cols = np.flatnonzero(cands.any(axis=0))
    pr, pc = kernel.shape[0], kernel.shape[1]
    box = (
        slice(max(0, rows[0] - pr), min(image.shape[0], rows[-1] + pr + 1)),
        slice(max(0, cols[0] - pc), min(image.shape[1], cols[-1] + pc + 1)),
    )
    img = image[box]
    m1 = ndimage.correlate(img, kernel, mode="nearest") / n
    m2 = ndimage.correlate(img * img, kernel, mode="nearest") / n
    local_var = np.maximum(m2 - m1 * m1, 0.0)
    if variance is not None:
        noise = ndimage.correlate(variance[box], kernel, mode="nearest") / n
        local_var = np.maximum(local_var - noise, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = np.where(m1 > 0, np.sqrt(local_var) / np.maximum(m1, 1e-12), np.inf)
    cb = cands[box]
    if brightest:
        # the thickest part of the organ (highest mean) among its more homogeneous half
        cv_limit = float(np.median(cv[cb]))
        score = np.where(cb & (cv <= cv_limit), -m1, np.inf)
    else:
        med = float(np.median(m1[cb]))
        score = np.where(cb, cv + 0.25 * np.abs(m1 / max(med, 1e-12) - 1.0), np.inf)
    r, c = np.unravel_index(int(np.argmin(score)), score.shape)
    r, c = r + box[0].start, c + box[1].start
    return ReferencePlacement(
        organ=organ,
        center_rc=(int(r), int(c)),
        radius_mm=radius,
        method=(
            f"{diameter_mm:g} mm circle where the {organ} projects thickest "
            f"({edge_margin_mm:g} mm inside its outline, clear of lesions and other organs)"
            if brightest
            else f"{diameter_mm:g} mm circle in the most homogeneous part of the {organ}"
        ),
        warnings=tuple(warnings),
    )
