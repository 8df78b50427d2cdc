"""View resolution for planar NM: evidence order, prone swap, energy windows, frame vectors."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from octoscan.imaging.types import View
from octoscan.imaging.views import (
    SingleViewFile,
    ViewDecision,
    classify_energy_windows,
    complement_views,
    frame_vectors,
    patient_posture,
    resolve_planar_layout,
    view_from_orientation,
    view_from_text,
)
from tests.imaging import nm_builders as b


def _views(layout):
    return {g.detector: (g.decision.view, g.decision.rule) for g in layout.groups}


# --------------------------------------------------------------------------- primitives


@pytest.mark.parametrize(
    ("row", "col", "expected"),
    [
        ((1, 0, 0), (0, 0, -1), View.ANTERIOR),  # patient left to the right, feet down
        ((-1, 0, 0), (0, 0, -1), View.POSTERIOR),
        ((1, 0, 0), (0, 0, 1), View.POSTERIOR),  # upside down anterior = seen from behind
        ((1, 0, 0), (0, 1, 0), None),  # axial
        ((0, 1, 0), (0, 0, -1), None),  # sagittal
        ((0.9, 0.0, 0.436), (0.436, 0.0, -0.9), View.ANTERIOR),  # rotated in the plane
    ],
)
def test_view_from_orientation(row, col, expected):
    assert view_from_orientation(row, col) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ANT", View.ANTERIOR),
        ("WB_ANT", View.ANTERIOR),
        ("Anterior whole body", View.ANTERIOR),
        ("POST", View.POSTERIOR),
        ("WB-POSTERIOR 4H", View.POSTERIOR),
        ("thorax dorsal", View.POSTERIOR),
        ("ANT/POST", None),
        ("WB 24h post injection", None),
        ("WB 24H POST", View.POSTERIOR),
        ("post inj 4h", None),
        ("post-therapy anterior", View.ANTERIOR),
        ("OCTREOSCAN WB", None),
        ("", None),
        ("ANTIBODY", None),
    ],
)
def test_view_from_text(text, expected):
    assert view_from_text(text) is expected


@pytest.mark.parametrize(
    ("position", "codes", "expected"),
    [
        ("HFS", (), "supine"),
        ("FFP", (), "prone"),
        ("HFDL", (), "decubitus"),
        (None, (("F-10310", "99SDM", "prone"),), "prone"),
        (None, (("40199007", "SCT", "supine"),), "supine"),
        ("HFS", (("1240000", "SCT", "prone"),), "conflict"),
        (None, (), None),
    ],
)
def test_patient_posture(position, codes, expected):
    ds = Dataset()
    if position:
        ds.PatientPosition = position
    if codes:
        item = b.code_item(("F-10450", "99SDM", "recumbent"))
        item.PatientOrientationModifierCodeSequence = DicomSequence([b.code_item(c) for c in codes])
        ds.PatientOrientationCodeSequence = DicomSequence([item])
    assert patient_posture(ds)[0] == expected


def test_frame_vectors_follow_frame_increment_pointer():
    ds = b.nm_planar()
    vectors, notes = frame_vectors(ds)
    assert vectors == {"DetectorVector": (1, 1, 2, 2), "EnergyWindowVector": (1, 2, 1, 2)}
    assert notes == []
    ds.DetectorVector = [1, 2]  # wrong length for 4 frames
    vectors, notes = frame_vectors(ds)
    assert "DetectorVector" not in vectors
    assert notes == ["DetectorVector has 2 values for 4 frames: ignored"]


# --------------------------------------------------------------------------- energy windows


def test_in111_photopeaks_summed_scatter_windows_excluded():
    ds = b.nm_planar(
        windows=[
            b.Window(*b.IN111_WINDOWS[0]),
            b.Window(*b.SCATTER_BY_NAME),
            b.Window(*b.IN111_WINDOWS[1]),
            b.Window(*b.SCATTER_BY_LIMITS),
        ]
    )
    windows = classify_energy_windows(ds, "In-111")
    assert [w.is_photopeak for w in windows] == [True, False, True, False]
    assert "scatter window" in windows[1].reason
    assert "no In-111 photopeak" in windows[3].reason
    layout = resolve_planar_layout(ds, radionuclide="In-111")
    # frames: detector-major, windows 1..4 -> detector 1 frames 0..3, detector 2 frames 4..7
    assert [g.frames for g in layout.groups] == [(0, 2), (4, 6)]
    assert layout.groups[0].energy_windows_used == (
        "In111_171 (154-188 keV)",
        "In111_245 (221-270 keV)",
    )
    assert any("SC1 (120-140 keV) not summed" in w for w in layout.warnings)


def test_tc99m_window_limits_decide():
    ds = b.nm_planar(windows=[b.Window(None, 126.0, 154.0), b.Window(None, 100.0, 120.0)])
    windows = classify_energy_windows(ds, "Tc-99m")
    assert [w.is_photopeak for w in windows] == [True, False]
    assert windows[0].label == "window 1 (126-154 keV)"


def test_unknown_radionuclide_keeps_windows_unchecked():
    ds = b.nm_planar(windows=[b.Window("EM", 100.0, 120.0)])
    (window,) = classify_energy_windows(ds, None)
    assert window.is_photopeak
    assert "limits not checked" in window.reason


# --------------------------------------------------------------------------- view rules


def test_view_code_sequence_sct_and_srt():
    for ant, post in ((b.ANTERIOR, b.POSTERIOR), (b.ANTERIOR_SRT, b.POSTERIOR_SRT)):
        ds = b.nm_planar(detectors=[b.detector_item(view=post), b.detector_item(view=ant)])
        assert _views(resolve_planar_layout(ds, radionuclide="In-111")) == {
            1: (View.POSTERIOR, "ViewCodeSequence"),
            2: (View.ANTERIOR, "ViewCodeSequence"),
        }


def test_prone_patient_swaps_view_code_labels():
    ds = b.nm_planar(patient_position="HFP")
    layout = resolve_planar_layout(ds, radionuclide="In-111")
    assert _views(layout) == {
        1: (View.POSTERIOR, "ViewCodeSequence +prone swap"),
        2: (View.ANTERIOR, "ViewCodeSequence +prone swap"),
    }
    assert "prone patient" in layout.groups[0].decision.warnings[0]


def test_decubitus_patient_leaves_labels_unknown():
    ds = b.nm_planar(patient_position="HFDR")
    layout = resolve_planar_layout(ds, radionuclide="In-111")
    views = _views(layout)
    assert views[1][0] is View.UNKNOWN
    assert views[1][1] == "none: ViewCodeSequence says anterior but patient decubitus"


def test_missing_position_assumes_supine_with_warning():
    ds = b.nm_planar(patient_position=None)
    layout = resolve_planar_layout(ds, radionuclide="In-111")
    assert layout.groups[0].decision.view is View.ANTERIOR
    assert "supine assumed" in layout.groups[0].decision.warnings[0]


def test_lateral_view_code_is_not_anterior_or_posterior():
    ds = b.nm_planar(detectors=[b.detector_item(view=b.LEFT_LATERAL), b.detector_item()])
    views = _views(resolve_planar_layout(ds, radionuclide="In-111"))
    assert views[1][0] is View.UNKNOWN
    assert "neither anterior nor posterior" in views[1][1]


def test_per_detector_orientation_decides_and_is_not_swapped_for_prone():
    detectors = [
        b.detector_item(iop=b.IOP_POSTERIOR),
        b.detector_item(iop=b.IOP_ANTERIOR),
    ]
    ds = b.nm_planar(detectors=detectors, patient_position="FFP")
    rule = "ImageOrientationPatient (DetectorInformationSequence)"
    assert _views(resolve_planar_layout(ds, radionuclide="In-111")) == {
        1: (View.POSTERIOR, rule),
        2: (View.ANTERIOR, rule),
    }


def test_identical_detector_orientations_are_placeholders():
    # the Siemens Symbia case: two opposed heads with the same IOP
    detectors = [b.detector_item(iop=b.IOP_POSTERIOR), b.detector_item(iop=b.IOP_POSTERIOR)]
    ds = b.nm_planar(detectors=detectors, series_description="ANT")
    layout = resolve_planar_layout(ds, radionuclide="In-111")
    assert {v for v, _ in _views(layout).values()} == {View.UNKNOWN}
    assert any("placeholder values, not evidence" in w for w in layout.warnings)
    # object-level text cannot tell two detectors apart
    assert "cannot tell several detectors apart" in layout.groups[0].decision.rule


def test_detector_number_alone_never_decides():
    ds = b.nm_planar(detectors=[b.detector_item(), b.detector_item()])
    layout = resolve_planar_layout(ds, radionuclide="In-111")
    for group in layout.groups:
        assert group.decision.view is View.UNKNOWN
        assert group.decision.rule.startswith("none: ")
        assert group.decision.warnings


def test_patient_orientation_decides_single_view_object():
    ds = b.nm_planar(
        detectors=[b.detector_item()], patient_orientation=("R", "F"), series_description="ANT"
    )
    assert _views(resolve_planar_layout(ds, radionuclide="In-111")) == {
        1: (View.POSTERIOR, "PatientOrientation")
    }


@pytest.mark.parametrize(
    ("keyword", "text", "expected"),
    [
        ("image_id", "WB POST", View.POSTERIOR),
        ("series_description", "Octreoscan ANT 24h", View.ANTERIOR),
    ],
)
def test_text_decides_single_view_object(keyword, text, expected):
    ds = b.nm_planar(detectors=[b.detector_item()], **{keyword: text})
    view, rule = _views(resolve_planar_layout(ds, radionuclide="In-111"))[1]
    assert view is expected
    assert rule == {"image_id": "ImageID", "series_description": "SeriesDescription"}[keyword]


def test_text_label_swapped_for_prone_patient():
    ds = b.nm_planar(
        detectors=[b.detector_item()], series_description="WB ANT", patient_position="HFP"
    )
    assert _views(resolve_planar_layout(ds, radionuclide="In-111")) == {
        1: (View.POSTERIOR, "SeriesDescription +prone swap")
    }


def test_opposite_detector_completed_when_heads_are_180_degrees_apart():
    detectors = [
        b.detector_item(view=b.ANTERIOR, start_angle=0),
        b.detector_item(start_angle=180),
    ]
    ds = b.nm_planar(detectors=detectors)
    views = _views(resolve_planar_layout(ds, radionuclide="In-111"))
    assert views[2][0] is View.POSTERIOR
    assert views[2][1].startswith("opposite of detector 1 (ViewCodeSequence)")
    detectors[1] = b.detector_item(start_angle=90)  # L-mode heads: no conclusion
    ds = b.nm_planar(detectors=detectors)
    assert _views(resolve_planar_layout(ds, radionuclide="In-111"))[2][0] is View.UNKNOWN


def test_complement_views_across_two_single_view_files():
    t = datetime(2024, 3, 2, 10, 0, 0)
    known = SingleViewFile("a", ViewDecision(View.ANTERIOR, "ImageID"), 1, t)
    unknown = SingleViewFile("b", ViewDecision(View.UNKNOWN, "none: x"), 2, t)
    out = complement_views([known, unknown])
    assert out["b"].view is View.POSTERIOR
    assert out["b"].rule.startswith("opposite of the other single-view file (ImageID")
    same_detector = SingleViewFile("b", ViewDecision(View.UNKNOWN, "none: x"), 1, t)
    assert complement_views([known, same_detector]) == {}
    later = SingleViewFile("b", ViewDecision(View.UNKNOWN, "none: x"), 2, datetime(2024, 3, 2, 11))
    assert complement_views([known, later]) == {}


def test_dynamic_frames_grouped_and_summed_over_time():
    layout = resolve_planar_layout(b.nm_dynamic(), radionuclide="Tc-99m")
    (group,) = layout.groups
    assert group.frames == (0, 1, 2)
    assert group.summed_over == ("PhaseVector", "TimeSliceVector")


def test_frames_without_detector_vector_are_never_summed_across_heads():
    ds = b.nm_planar(windows=[b.Window(*b.IN111_WINDOWS[0])])
    del ds.DetectorVector
    ds.FrameIncrementPointer = 0x00540010
    layout = resolve_planar_layout(ds, radionuclide="In-111")
    assert [g.frames for g in layout.groups] == [(0,), (1,)]
    assert all(g.decision.view is View.UNKNOWN for g in layout.groups)
    assert "no DetectorVector" in layout.groups[0].decision.rule
    assert any("each frame is kept apart" in w for w in layout.warnings)


def test_empty_view_code_item_falls_through_to_orientation():
    empty = b.detector_item(iop=b.IOP_ANTERIOR)
    empty.ViewCodeSequence = DicomSequence([Dataset()])
    ds = b.nm_planar(detectors=[empty, b.detector_item(iop=b.IOP_POSTERIOR)])
    views = _views(resolve_planar_layout(ds, radionuclide="In-111"))
    assert views[1] == (View.ANTERIOR, "ImageOrientationPatient (DetectorInformationSequence)")
