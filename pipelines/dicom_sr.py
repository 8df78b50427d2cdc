"""Structured Report (TID 1500 Imaging Measurement Report) of one scored image set.

Content, per scored image set (planar views, or one emission volume):

* one measurement group per lesion, tracking identifier "lesion <id>" (the result.json id):
  ratios of the lesion peak to the liver and to the spleen (or kidney) reference means, each
  with its interval as TID 310 measurement uncertainty (upper = high bound - ratio,
  lower = ratio - low bound; rounded to the 4 decimals of result.json), the Krenning grade
  (a number 0-4; its uncertainty spans ``grade_range``) and a coded "borderline" evaluation,
  the diameter (mm), area (cm2, planar) or volume (mL, tomographic), peak and mean uptake,
  and as text the grading method, the interval method, the body region and the warnings.
* one group per reference region ("liver reference", ...): mean, standard deviation, pixel
  count, volume, whether it was usable, method and warnings.
* one group "PRRT eligibility" without a region: the decision and the imaging-only decision
  (coded), the rule set, the uptake rule, every reason, criterion and study warning as text.

Regions: planar groups (TID 1410) carry an image-coordinate SCOORD on the stored frame(s)
of the scored view: a closed POLYLINE along the mask outline (2-D SCOORD has no POLYGON
type; a closed polyline is its polygon), or a CIRCLE / ELLIPSE from centre and radius
without a mask. Tomographic groups (TID 1411) reference their segment of the
Segmentation; a finding with neither is reported in a group without a region (TID 1501).

Values come from the result.json dictionaries (:mod:`octoscan.pipelines.result_json`), so a
viewer reads exactly the numbers of result.json. Concepts without a standard code use the
private coding scheme ``99OCTOSCAN`` (declared in CodingSchemeIdentificationSequence).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import NuclearMedicineImageStorage, SecondaryCaptureImageStorage
from scipy import ndimage
from skimage import measure

from octoscan.imaging.dicom_io import read_dataset
from octoscan.imaging.pixels import decode_frames_with_info
from octoscan.imaging.types import PlanarImage, SeriesKind, View
from octoscan.imaging.views import resolve_planar_layout
from octoscan.models.types import PlanarScore
from octoscan.pipelines.dicom_uids import MANUFACTURER, ObjectIdentity

PRIVATE_SCHEME = "99OCTOSCAN"
_UNCERTAINTY_DIGITS = 4  # the precision of ratios in result.json
_POLYGON_TOLERANCE_PX = 0.25


def _private(value: str, meaning: str) -> Code:
    return Code(value, PRIVATE_SCHEME, meaning)


RATIO_LIVER = _private("RATIO-LIVER", "Lesion peak to liver reference mean ratio")
RATIO_GRADE4 = {
    "spleen": _private("RATIO-SPLEEN", "Lesion peak to spleen reference mean ratio"),
    "kidney": _private("RATIO-KIDNEY", "Lesion peak to kidney reference mean ratio"),
}
KRENNING_GRADE = _private("KRENNING", "Krenning grade")
BORDERLINE = _private("BORDERLINE", "Grade interval straddles a Krenning threshold")
GRADING_METHOD = _private("GRADING-METHOD", "Grading method")
INTERVAL_METHOD = _private("CI-METHOD", "Interval method")
BODY_REGION = _private("BODY-REGION", "Body region")
DETECTION_SOURCE = _private("DETECTION", "Detected by")
NOT_GRADED = _private("NOT-GRADED", "Not graded")
PIXEL_COUNT = _private("N-PIXELS", "Number of pixels or voxels in region")
REFERENCE_USABLE = _private("REF-USABLE", "Reference region usable")
REFERENCE_METHOD = _private("REF-METHOD", "Reference region method")
VARIANCE_METHOD = _private("VARIANCE-METHOD", "Variance method")
DECISION = _private("DECISION", "PRRT eligibility decision")
IMAGING_DECISION = _private("IMAGING-DECISION", "PRRT eligibility decision from imaging")
RULE_SET = _private("RULE-SET", "Rule set")
UPTAKE_RULE = _private("UPTAKE-RULE", "Uptake rule")
REASON = _private("REASON", "Decision reason")
CRITERION = _private("CRITERION", "Eligibility criterion")
WARNING = _private("WARNING", "Warning")
SCORING_IMAGE = _private("SCORING-IMAGE", "Scoring image")
SUPPORT_NOTE = _private("SUPPORT-NOTE", "Decision support note")
SUMMARY = _private("SUMMARY", "Summary")
DECISION_VALUES = {
    "eligible": _private("ELIGIBLE", "Eligible for PRRT"),
    "not_eligible": _private("NOT-ELIGIBLE", "Not eligible for PRRT"),
    "needs_review": _private("NEEDS-REVIEW", "Needs review by the physician"),
}
DECISION_TRACKING_ID = "PRRT eligibility"
SUPPORT_TEXT = (
    "Decision support for the physician, not an autonomous decision; the physician decides."
)

UCUM_ML = Code("ml", "UCUM", "milliliter")
UCUM_CM2 = Code("cm2", "UCUM", "square centimeter")
UCUM_GRADE = Code("{grade}", "UCUM", "grade")
UCUM_PIXELS = Code("{pixels}", "UCUM", "pixels")
UCUM_COUNTS = Code("{counts}", "UCUM", "counts")
UCUM_COUNTS_PER_PIXEL = Code("{counts}/{pixel}", "UCUM", "counts per pixel")
UCUM_BQ_ML = Code("Bq/ml", "UCUM", "becquerels per milliliter")

_ORGAN_CODES: Mapping[str, Code] = {
    "liver": codes.SCT.Liver,
    "spleen": codes.SCT.Spleen,
    "kidney": codes.SCT.Kidney,
}
_REGION_CODES: Mapping[str, Code] = {
    "liver": codes.SCT.Liver,
    "bone": codes.SCT.Bone,
    "lung": codes.SCT.Lung,
    "head_neck": codes.SCT.HeadAndNeck,
    "thorax": codes.SCT.Thorax,
    "abdomen": codes.SCT.Abdomen,
    "pelvis": codes.SCT.Pelvis,
    "lower_limbs": codes.SCT.LowerLimb,
    "torso": codes.SCT.Trunk,
    "soft tissue": codes.SCT.SoftTissue,
}


def organ_code(organ: str) -> Code | None:
    """SNOMED code of a reference organ ("liver", "spleen", "kidney")."""
    return _ORGAN_CODES.get(organ)


def lesion_site_code(region: str) -> Code | None:
    """SNOMED code of a lesion's body region, None when the region has no code."""
    return _REGION_CODES.get(region)


def lesion_tracking_id(lesion_id: int) -> str:
    return f"lesion {lesion_id}"


def reference_tracking_id(organ: str) -> str:
    return f"{organ} reference"


def algorithm_family(source: str) -> Code:
    """CID 7162 family: a CNN finding is AI, a threshold finding neighbourhood analysis."""
    if source in ("cnn", "both"):
        return codes.cid7162.ArtificialIntelligence
    return codes.cid7162.NeighborhoodAnalysis


def uptake_unit(units: str) -> Code | None:
    """UCUM code of an uptake unit of octoscan (planar counts/pixel, counts, Bq/mL, SUVbw)."""
    if units.startswith("counts/pixel"):
        return UCUM_COUNTS_PER_PIXEL
    if units == "counts":
        return UCUM_COUNTS
    if units == "Bq/mL":
        return UCUM_BQ_ML
    if units == "SUVbw":
        return codes.UCUM.StandardizedUptakeValueBodyWeight
    return None


# --------------------------------------------------------------------------- planar regions


@dataclass(frozen=True)
class SourceFrames:
    """Where the scoring grid lies on a stored planar object.

    ``frame_numbers`` are 1-based (the frames summed into the view); ``column_offset`` is the
    first stored column of the grid (a half of a side-by-side image); ``mirrored`` is True
    when the grid is the left-right mirror of the stored view (a posterior view scored
    alone). ``width`` is the number of columns of the grid.
    """

    sop_class_uid: str
    sop_instance_uid: str
    frame_numbers: tuple[int, ...]
    column_offset: int
    width: int
    mirrored: bool
    view: str

    def to_source_xy(self, rc: np.ndarray) -> np.ndarray:
        """(N, 2) grid (row, col) pixel-index coordinates -> (N, 2) SCOORD (column, row).

        SCOORD puts (0, 0) at the top left corner of the top left pixel, so a pixel centre
        at index (r, c) is at (c + 0.5, r + 0.5).
        """
        rc = np.asarray(rc, dtype=np.float64)
        x = rc[:, 1] + 0.5
        if self.mirrored:
            x = self.width - x
        return np.column_stack([x + self.column_offset, rc[:, 0] + 0.5])


def view_image(score: PlanarScore, images: Sequence[PlanarImage], view: View) -> PlanarImage | None:
    """The loaded ``view`` image that planar scoring used, if it can be told.

    An image of the scored series and time point with the scoring image's shape and
    spacing; among several, the one planar scoring prefers (whole body, count data, most
    counts).
    """
    hours = score.hours_post_injection

    def same_time(im: PlanarImage) -> bool:
        h = im.acquisition.hours_post_injection
        return (h is None and hours is None) or (
            h is not None and hours is not None and abs(h - hours) < 1e-6
        )

    candidates = [
        im
        for im in images
        if im.view == view
        and im.source.series_instance_uid in score.series_instance_uids
        and im.counts.shape == score.scoring_image.shape
        and im.pixel_spacing_mm is not None
        and np.allclose(im.pixel_spacing_mm, score.pixel_spacing_mm)
        and same_time(im)
    ]
    if not candidates:
        return None
    return max(
        candidates,
        key=lambda im: (
            int(im.kind == SeriesKind.PLANAR_WHOLE_BODY),
            int(im.is_count_data),
            im.total_counts,
        ),
    )


def scored_view(score: PlanarScore, images: Sequence[PlanarImage]) -> PlanarImage | None:
    """The image whose pixel grid the score's regions live on: the anterior view, or the
    posterior for a posterior-only study (``grid == "posterior_mirrored"``), or the single
    view of unknown side."""
    if score.grid == "posterior_mirrored":
        return view_image(score, images, View.POSTERIOR)
    if score.views_used == (View.UNKNOWN.value,):
        return view_image(score, images, View.UNKNOWN)
    return view_image(score, images, View.ANTERIOR)


def locate_planar_source(image: PlanarImage, *, mirrored: bool) -> SourceFrames | None:
    """Find the stored frames (and columns) ``image`` was built from.

    The source file is re-read and every candidate (the recorded frame, each view group of
    the header layout, each single frame; the whole width or either half) is compared with
    ``image.counts`` pixel for pixel, so the answer does not depend on how views were
    decided. None when nothing matches (the file changed since it was loaded).
    """
    if not image.source.paths:
        return None
    path = image.source.paths[0]
    ds = read_dataset(path)
    decoded = decode_frames_with_info(ds, path).array
    n_frames = decoded.shape[0]
    candidates: list[tuple[int, ...]] = []
    if image.frame_index is not None:
        candidates.append((image.frame_index,))
    if ds.get("Modality") == "NM":
        layout = resolve_planar_layout(ds, radionuclide=image.acquisition.radionuclide)
        candidates.extend(g.frames for g in layout.groups if g.frames)
    candidates.extend((f,) for f in range(n_frames))
    counts = np.asarray(image.counts, dtype=np.float32)
    rows, width = counts.shape
    for frames in dict.fromkeys(candidates):
        if not all(0 <= f < n_frames for f in frames):
            continue
        summed = np.asarray(decoded[list(frames)], dtype=np.float64).sum(axis=0)
        summed = summed.astype(np.float32)
        if summed.shape[0] != rows or summed.shape[1] < width:
            continue
        for offset in dict.fromkeys((0, summed.shape[1] - width)):
            if np.array_equal(summed[:, offset : offset + width], counts):
                multi = _is_multiframe_iod(ds)
                return SourceFrames(
                    sop_class_uid=str(ds.SOPClassUID),
                    sop_instance_uid=str(ds.SOPInstanceUID),
                    frame_numbers=tuple(f + 1 for f in frames) if multi else (),
                    column_offset=int(offset),
                    width=width,
                    mirrored=mirrored,
                    view=image.view.value,
                )
    return None


_MULTIFRAME_IOD = {
    str(NuclearMedicineImageStorage): True,
    str(SecondaryCaptureImageStorage): False,
}


def _is_multiframe_iod(ds: Dataset) -> bool:
    """Whether ``ds``'s SOP class is a multi-frame IOD (frame numbers are then referenced).

    NM is, single-frame Secondary Capture is not (even when NumberOfFrames = 1 is present);
    other classes count as multi-frame when they hold more than one frame."""
    known = _MULTIFRAME_IOD.get(str(ds.get("SOPClassUID") or ""))
    if known is not None:
        return known
    return int(ds.get("NumberOfFrames") or 1) > 1


def _polygon_area(points: np.ndarray) -> float:
    y, x = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def simplify_polyline(points: np.ndarray, tolerance: float) -> np.ndarray:
    """The vertices of ``points`` (N, 2) that Douglas-Peucker keeps at ``tolerance`` (same
    units): every dropped point lies within ``tolerance`` of the kept chain's segment that
    spans it. First and last points are kept (a closed outline that repeats its first point
    stays closed). Written here rather than taken from scikit-image, whose
    ``approximate_polygon`` module imports scipy.signal (0.8 s in each worker process)."""
    pts = np.asarray(points, dtype=np.float64)
    n = len(pts)
    if n < 3 or tolerance <= 0:
        return pts
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        a, b = pts[i], pts[j]
        inner = pts[i + 1 : j]
        ab = b - a
        length2 = float(ab @ ab)
        if length2 > 0.0:
            t = np.clip((inner - a) @ ab / length2, 0.0, 1.0)
            nearest = a + t[:, None] * ab
        else:  # the chain returns to its start: distance to that point
            nearest = a
        dist = np.hypot(*(inner - nearest).T)
        k = int(np.argmax(dist))
        if dist[k] > tolerance:
            m = i + 1 + k
            keep[m] = True
            stack.extend(((i, m), (m, j)))
    return pts[keep]


def mask_outline(mask: np.ndarray) -> tuple[np.ndarray, int] | None:
    """Closed outline (N, 2) in (row, col) pixel-index coordinates of the largest part of
    ``mask`` (on pixel edges, corners cut diagonally), and the number of parts. None for an
    empty mask."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    _, n_parts = ndimage.label(mask)
    contours = measure.find_contours(np.pad(mask, 1).astype(np.float32), 0.5)
    best = max(contours, key=lambda c: abs(_polygon_area(c))) - 1.0
    outline = simplify_polyline(best, _POLYGON_TOLERANCE_PX)
    if not np.array_equal(outline[0], outline[-1]):
        outline = np.vstack([outline, outline[:1]])
    return outline, int(n_parts)


def planar_region(
    frames: SourceFrames,
    *,
    mask: np.ndarray | None,
    center_rc: Sequence[float] | None,
    radius_mm: float | None,
    spacing_mm: tuple[float, float],
) -> tuple[hd.sr.ImageRegion | None, str | None]:
    """(SCOORD region on the stored frames, a note) for one finding on the scoring grid."""
    source = hd.sr.SourceImageForRegion(
        referenced_sop_class_uid=frames.sop_class_uid,
        referenced_sop_instance_uid=frames.sop_instance_uid,
        referenced_frame_numbers=list(frames.frame_numbers) or None,
    )
    outline = mask_outline(mask) if mask is not None else None
    if outline is not None:
        points, n_parts = outline
        note = f"mask has {n_parts} parts: outline of the largest" if n_parts > 1 else None
        data = frames.to_source_xy(points)
        region = hd.sr.ImageRegion(graphic_type="POLYLINE", graphic_data=data, source_image=source)
        return region, note
    if center_rc is None or radius_mm is None or not radius_mm > 0:
        return None, "no mask and no centre/radius: region not drawn"
    centre = frames.to_source_xy(np.array([center_rc]))[0]
    dx = np.array([radius_mm / spacing_mm[1], 0.0])  # half axes in stored pixels
    dy = np.array([0.0, radius_mm / spacing_mm[0]])
    if math.isclose(dx[0], dy[1], rel_tol=1e-6):
        data = np.array([centre, centre + dx])
        region = hd.sr.ImageRegion(graphic_type="CIRCLE", graphic_data=data, source_image=source)
        return region, None
    horizontal = np.array([centre - dx, centre + dx])
    vertical = np.array([centre - dy, centre + dy])
    axes = [horizontal, vertical] if dx[0] > dy[1] else [vertical, horizontal]
    data = np.vstack(axes)
    region = hd.sr.ImageRegion(graphic_type="ELLIPSE", graphic_data=data, source_image=source)
    return region, None


# --------------------------------------------------------------------------- report content


@dataclass(frozen=True)
class ReportFindings:
    """What one measurement report states, as the dictionaries of result.json.

    ``lesions``: :func:`~octoscan.pipelines.result_json.lesion_to_dict` items;
    ``references``: organ -> :func:`~octoscan.pipelines.result_json.reference_to_dict`;
    ``decision``: :func:`~octoscan.pipelines.result_json.decision_to_dict`. ``units`` is the
    uptake unit of peaks and means; ``scoring_note`` says on which image they were measured.
    """

    lesions: tuple[dict[str, Any], ...]
    references: Mapping[str, dict[str, Any]]
    decision: Mapping[str, Any]
    warnings: tuple[str, ...]
    units: str
    config_name: str
    config_hash: str
    scoring_note: str


Region = hd.sr.ImageRegion | hd.sr.ReferencedSegment


def _num(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _interval_properties(
    value: float, interval: Sequence[Any] | None
) -> hd.sr.MeasurementProperties | None:
    if interval is None or len(interval) != 2:
        return None
    low, high = _num(interval[0]), _num(interval[1])
    if low is None or high is None:
        return None
    return hd.sr.MeasurementProperties(
        upper_measurement_uncertainty=round(high - value, _UNCERTAINTY_DIGITS),
        lower_measurement_uncertainty=round(value - low, _UNCERTAINTY_DIGITS),
    )


def _measurement(
    name: Code, value: Any, unit: Code | None, properties: Any = None
) -> hd.sr.Measurement | None:
    v = _num(value)
    if v is None or unit is None:
        return None
    return hd.sr.Measurement(name=name, value=v, unit=unit, properties=properties)


def _text_items(name: Code, values: Sequence[str]) -> list[hd.sr.TextContentItem]:
    return [
        hd.sr.TextContentItem(
            name=name, value=str(v), relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
        )
        for v in values
        if str(v)
    ]


def _yes_no(flag: bool) -> Code:
    return codes.SCT.Yes if flag else codes.SCT.No


def _lesion_summary(d: Mapping[str, Any]) -> str:
    def ratio(name: str, value: Any, interval: Any) -> str:
        if value is None:
            return f"ratio to {name} not measured"
        text = f"ratio to {name} {value:.4g}"
        if interval is not None and None not in interval:
            text += f" [{interval[0]:.4g}, {interval[1]:.4g}]"
        return text

    grade = (
        f"Krenning {d['grade']} (range {d['grade_range'][0]}-{d['grade_range'][1]}"
        f"{', borderline' if d.get('borderline') else ''})"
        if d.get("graded", True)
        else "not graded"
    )
    organ = d.get("spleen_reference_organ") or "spleen"
    return "; ".join(
        [
            grade,
            ratio("liver", d.get("ratio_liver"), d.get("ratio_liver_ci")),
            ratio(organ, d.get("ratio_spleen"), d.get("ratio_spleen_ci")),
        ]
    )


def _lesion_content(
    d: Mapping[str, Any], units: str
) -> tuple[list[hd.sr.Measurement], list[hd.sr.QualitativeEvaluation], list[Any]]:
    measurements: list[hd.sr.Measurement | None] = []
    ratio = _num(d.get("ratio_liver"))
    if ratio is not None:
        props = _interval_properties(ratio, d.get("ratio_liver_ci"))
        measurements.append(_measurement(RATIO_LIVER, ratio, codes.UCUM.Ratio, props))
    ratio4 = _num(d.get("ratio_spleen"))
    if ratio4 is not None:
        organ = d.get("spleen_reference_organ") or "spleen"
        props = _interval_properties(ratio4, d.get("ratio_spleen_ci"))
        measurements.append(_measurement(RATIO_GRADE4[organ], ratio4, codes.UCUM.Ratio, props))
    graded = bool(d.get("graded", True))
    texts: list[Any] = []
    if graded:
        grade = int(d["grade"])
        low, high = (int(g) for g in d["grade_range"])
        measurements.append(
            hd.sr.Measurement(
                name=KRENNING_GRADE,
                value=grade,
                unit=UCUM_GRADE,
                properties=hd.sr.MeasurementProperties(
                    upper_measurement_uncertainty=high - grade,
                    lower_measurement_uncertainty=grade - low,
                ),
            )
        )
    else:
        texts += _text_items(NOT_GRADED, ["no usable liver reference: the lesion is not graded"])
    measurements.append(
        _measurement(codes.SCT.Diameter, d.get("diameter_mm"), codes.UCUM.Millimeter)
    )
    measurements.append(_measurement(codes.SCT.Area, d.get("area_cm2"), UCUM_CM2))
    measurements.append(_measurement(codes.SCT.Volume, d.get("volume_ml"), UCUM_ML))
    unit = uptake_unit(units)
    measurements.append(_measurement(codes.DCM.PeakValueWithinROI, d.get("peak_counts"), unit))
    measurements.append(_measurement(codes.SCT.Mean, d.get("mean_counts"), unit))
    evaluations = [hd.sr.QualitativeEvaluation(BORDERLINE, _yes_no(bool(d.get("borderline"))))]
    texts += _text_items(SUMMARY, [_lesion_summary(d)])
    texts += _text_items(GRADING_METHOD, [d.get("grading_method") or ""])
    texts += _text_items(INTERVAL_METHOD, [d.get("ci_method") or ""])
    texts += _text_items(BODY_REGION, [d.get("region") or ""])
    texts += _text_items(DETECTION_SOURCE, [d.get("source") or ""])
    texts += _text_items(WARNING, list(d.get("warnings") or ()))
    return [m for m in measurements if m is not None], evaluations, texts


def _reference_content(
    d: Mapping[str, Any], units: str
) -> tuple[list[hd.sr.Measurement], list[hd.sr.QualitativeEvaluation], list[Any]]:
    unit = uptake_unit(units)
    region = d.get("region") or {}
    measurements = [
        _measurement(codes.SCT.Mean, d.get("mean"), unit),
        _measurement(codes.SCT.StandardDeviation, d.get("std"), unit),
        _measurement(PIXEL_COUNT, d.get("n_pixels"), UCUM_PIXELS),
        _measurement(codes.SCT.Volume, region.get("volume_ml"), UCUM_ML),
    ]
    evaluations = [
        hd.sr.QualitativeEvaluation(REFERENCE_USABLE, _yes_no(bool(d.get("usable", True))))
    ]
    texts = _text_items(REFERENCE_METHOD, [d.get("method") or ""])
    texts += _text_items(VARIANCE_METHOD, [d.get("variance_method") or ""])
    texts += _text_items(WARNING, list(d.get("warnings") or ()))
    return [m for m in measurements if m is not None], evaluations, texts


def _group(
    *,
    tracking: hd.sr.TrackingIdentifier,
    region: Region | None,
    finding_type: Code | None,
    site: Code | None,
    algorithm: hd.sr.AlgorithmIdentification,
    measurements: Sequence[hd.sr.Measurement],
    evaluations: Sequence[hd.sr.QualitativeEvaluation],
    texts: Sequence[Any],
) -> Any:
    common: dict[str, Any] = {
        "tracking_identifier": tracking,
        "finding_type": finding_type,
        "finding_sites": [hd.sr.FindingSite(site)] if site is not None else None,
        "algorithm_id": algorithm,
        "measurements": list(measurements) or None,
        "qualitative_evaluations": list(evaluations) or None,
    }
    group: Any
    if isinstance(region, hd.sr.ImageRegion):
        group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            referenced_region=region, **common
        )
    elif isinstance(region, hd.sr.ReferencedSegment):
        group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            referenced_segment=region, **common
        )
    else:
        group = hd.sr.MeasurementsAndQualitativeEvaluations(**common)
    if texts:
        container = group[0]
        if "ContentSequence" not in container:
            container.ContentSequence = hd.sr.ContentSequence()
        container.ContentSequence.extend(texts)
    return group


def _decision_group(
    findings: ReportFindings,
    tracking: hd.sr.TrackingIdentifier,
    algorithm: hd.sr.AlgorithmIdentification,
) -> Any:
    decision = findings.decision
    evaluations = [hd.sr.QualitativeEvaluation(DECISION, DECISION_VALUES[decision["status"]])]
    imaging = decision.get("imaging_status")
    if imaging in DECISION_VALUES:
        evaluations.append(hd.sr.QualitativeEvaluation(IMAGING_DECISION, DECISION_VALUES[imaging]))
    criteria = [
        f"{c['name']}: {c['verdict']} ({c['reason']})" for c in decision.get("criteria") or ()
    ]
    texts = _text_items(SUPPORT_NOTE, [SUPPORT_TEXT])
    texts += _text_items(RULE_SET, [decision.get("rule_set") or ""])
    texts += _text_items(UPTAKE_RULE, [decision.get("uptake_rule") or ""])
    texts += _text_items(REASON, list(decision.get("reasons") or ()))
    texts += _text_items(CRITERION, criteria)
    texts += _text_items(SCORING_IMAGE, [findings.scoring_note])
    texts += _text_items(WARNING, list(findings.warnings))
    return _group(
        tracking=tracking,
        region=None,
        finding_type=None,
        site=None,
        algorithm=algorithm,
        measurements=(),
        evaluations=evaluations,
        texts=texts,
    )


def measurement_report(
    findings: ReportFindings,
    regions: Mapping[str, Region | None],
    identity: ObjectIdentity,
    *,
    part: str,
    procedure: Code,
) -> hd.sr.MeasurementReport:
    """The TID 1500 content tree (module docstring).

    ``regions`` maps tracking identifiers ("lesion 3", "liver reference") to their SCOORD
    region or segment reference; ``part`` names the image set (it goes into the tracking
    UIDs, which the Segmentation shares).
    """
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=identity.uid("device"),
        name=MANUFACTURER,
        manufacturer_name=MANUFACTURER,
        model_name=MANUFACTURER,
    )
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )
    algorithm = hd.sr.AlgorithmIdentification(
        name=MANUFACTURER,
        version=identity.software_version,
        parameters=[f"config {findings.config_name}", f"config hash {findings.config_hash}"],
    )

    def tracking(identifier: str) -> hd.sr.TrackingIdentifier:
        return hd.sr.TrackingIdentifier(
            uid=identity.uid("tracking", part, identifier), identifier=identifier
        )

    groups: list[Any] = []
    for d in findings.lesions:
        tid = lesion_tracking_id(int(d["id"]))
        measurements, evaluations, texts = _lesion_content(d, findings.units)
        groups.append(
            _group(
                tracking=tracking(tid),
                region=regions.get(tid),
                finding_type=codes.SCT.Lesion,
                site=lesion_site_code(str(d.get("region") or "")),
                algorithm=algorithm,
                measurements=measurements,
                evaluations=evaluations,
                texts=texts,
            )
        )
    for organ, d in findings.references.items():
        tid = reference_tracking_id(organ)
        measurements, evaluations, texts = _reference_content(d, findings.units)
        groups.append(
            _group(
                tracking=tracking(tid),
                region=regions.get(tid),
                finding_type=codes.NCIt.ReferenceRegion,
                site=organ_code(organ),
                algorithm=algorithm,
                measurements=measurements,
                evaluations=evaluations,
                texts=texts,
            )
        )
    groups.append(_decision_group(findings, tracking(DECISION_TRACKING_ID), algorithm))
    return hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=procedure,
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )


def _coding_scheme_item() -> Dataset:
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = "octoscan local concepts"
    item.CodingSchemeResponsibleOrganization = MANUFACTURER
    return item


def build_sr(
    report: hd.sr.MeasurementReport,
    evidence: Sequence[Dataset],
    identity: ObjectIdentity,
    *,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int,
    instance_number: int,
) -> hd.sr.ComprehensiveSR:
    """A Comprehensive SR holding ``report``; ``evidence`` are the (patient-replaced) headers
    of every object the report references, the first one giving the Patient and Study
    modules. The SR is COMPLETE, UNVERIFIED and PRELIMINARY: a physician has not signed it."""
    sr = hd.sr.ComprehensiveSR(
        evidence=list(evidence),
        content=report,
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=sop_instance_uid,
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
    sr.CodingSchemeIdentificationSequence = [_coding_scheme_item()]
    return sr
