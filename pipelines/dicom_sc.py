"""Secondary Capture image of an overlay panel (uint8 RGB), for viewers without SR/SEG support.

The panel is the one the HTML report shows (:mod:`octoscan.pipelines.overlays`): patient
right on the image left, head at the top, so PatientOrientation is ("L", "F"). No patient
identifier is drawn (overlays draw one only with ``show_phi``), so BurnedInAnnotation is
"NO". The source images it was rendered from are listed in SourceImageSequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from octoscan.pipelines.dicom_uids import MANUFACTURER, ObjectIdentity

SC_PATIENT_ORIENTATION = ("L", "F")
SC_MAX_SIDE_PX = 2048
"""Panels longer than this are shrunk by an integer factor (block mean) before capture."""


def fit_panel(rgb: np.ndarray, *, max_side_px: int = SC_MAX_SIDE_PX) -> np.ndarray:
    """``rgb`` (row, col, 3) uint8, shrunk by the smallest integer factor that brings its
    longer side to ``max_side_px`` or less (mean of k x k blocks; edge rows/columns that do
    not fill a block are dropped). Returned unchanged when it already fits."""
    if max_side_px < 1:
        raise ValueError(f"max_side_px={max_side_px}; expected >= 1")
    arr = np.asarray(rgb)
    k = -(-max(arr.shape[0], arr.shape[1]) // max_side_px)
    if k <= 1:
        return arr
    rows, cols = (arr.shape[0] // k) * k, (arr.shape[1] // k) * k
    blocks = arr[:rows, :cols].reshape(rows // k, k, cols // k, k, arr.shape[2])
    return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)


def build_secondary_capture(
    rgb: np.ndarray,
    reference: Dataset,
    identity: ObjectIdentity,
    *,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int,
    instance_number: int,
    sources: Sequence[tuple[str, str]] = (),
    comment: str | None = None,
) -> hd.sc.SCImage:
    """An RGB Secondary Capture of ``rgb`` (row, col, 3) uint8.

    ``reference`` is a (patient-replaced) source header giving the Patient and Study
    modules; ``sources`` are (SOP Class UID, SOP Instance UID) pairs of the images shown.
    Raises ValueError for an array that is not uint8 RGB.
    """
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(
            f"overlay panel of dtype {arr.dtype} and shape {arr.shape}; expected uint8 "
            "(row, col, 3)"
        )
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=reference,
        pixel_array=np.ascontiguousarray(arr),
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_instance_uid,
        sop_instance_uid=sop_instance_uid,
        series_number=series_number,
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        patient_orientation=SC_PATIENT_ORIENTATION,
    )
    sc.BurnedInAnnotation = "NO"
    sc.ImageType = ["DERIVED", "SECONDARY", "OTHER"]
    if comment:
        sc.ImageComments = comment
    if sources:
        items = []
        for class_uid, instance_uid in dict.fromkeys(sources):
            item = Dataset()
            item.ReferencedSOPClassUID = class_uid
            item.ReferencedSOPInstanceUID = instance_uid
            items.append(item)
        sc.SourceImageSequence = DicomSequence(items)
    return sc
