"""Planar loader: counts per view, photopeak sums, spacing, side-by-side captures, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from octoscan.imaging.discovery import discover
from octoscan.imaging.errors import InvalidInputError, UnsupportedAcquisitionError
from octoscan.imaging.planar import load_planar, split_side_by_side
from octoscan.imaging.types import SeriesKind, View
from tests.imaging import nm_builders as b

WINDOWS = [
    b.Window(*b.IN111_WINDOWS[0]),
    b.Window(*b.SCATTER_BY_NAME),
    b.Window(*b.IN111_WINDOWS[1]),
]


def _entry(folder, kind):
    return next(s for s in discover(folder).series if s.kind is kind)


def test_whole_body_two_views_photopeaks_summed(tmp_path):
    def values(detector, window):
        frame = np.full((8, 6), b.planar_value(detector, window))
        frame[0, 0] += detector  # marks the head so a swap of views would show
        return frame

    b.write(b.nm_planar(windows=WINDOWS, frame_values=values), tmp_path / "wb.dcm")
    images = load_planar(_entry(tmp_path, SeriesKind.PLANAR_WHOLE_BODY))
    by_view = {im.view: im for im in images}
    assert set(by_view) == {View.ANTERIOR, View.POSTERIOR}
    ant, post = by_view[View.ANTERIOR], by_view[View.POSTERIOR]
    # windows 1 and 3 are photopeaks, window 2 (SC1) is scatter: 110 + 130 per pixel
    assert ant.counts.dtype == np.float32
    assert ant.counts.shape == (8, 6)
    assert ant.counts[1, 1] == 240.0
    assert ant.counts[0, 0] == 242.0  # +1 in each of the two summed frames of head 1
    assert post.counts[1, 1] == 440.0
    assert ant.total_counts == 48 * 240 + 2
    assert post.total_counts == 48 * 440 + 4
    assert ant.view_rule == "ViewCodeSequence"
    assert ant.pixel_spacing_mm == (4.0, 4.0)
    assert ant.is_count_data
    assert ant.frame_index is None  # two frames summed
    assert ant.acquisition.energy_windows_used == (
        "In111_171 (154-188 keV)",
        "In111_245 (221-270 keV)",
    )
    assert ant.acquisition.radionuclide == "In-111"
    assert ant.acquisition.hours_post_injection == pytest.approx(24.0)
    assert ant.acquisition.injected_activity_mbq == pytest.approx(200.0)
    assert ant.acquisition.frame_duration_s == pytest.approx(600.0)
    assert ant.kind is SeriesKind.PLANAR_WHOLE_BODY
    assert ant.source.paths == (str(tmp_path / "wb.dcm"),)


def test_prone_patient_swaps_loaded_views(tmp_path):
    def values(detector, window):
        return np.full((4, 4), 100 * detector)

    ds = b.nm_planar(windows=WINDOWS[:1], patient_position="FFP", frame_values=values)
    path = b.write(ds, tmp_path / "wb.dcm")
    images = {im.view: im for im in load_planar([path])}
    # head 1 carries the "anterior" code but the patient lies prone: it saw the back
    assert images[View.POSTERIOR].counts[0, 0] == 100.0
    assert images[View.ANTERIOR].counts[0, 0] == 200.0
    assert images[View.POSTERIOR].view_rule == "ViewCodeSequence +prone swap"


def test_dynamic_frames_summed_with_total_duration(tmp_path):
    b.write(b.nm_dynamic(), tmp_path / "dyn.dcm")
    (image,) = load_planar(_entry(tmp_path, SeriesKind.PLANAR_STATIC))
    assert image.counts[0, 0] == 1 + 2 + 3
    assert image.acquisition.frame_duration_s == pytest.approx(30 + 30 + 60)
    assert image.frame_index is None


def test_side_by_side_capture_split_into_unknown_halves(tmp_path):
    b.write(b.sc_whole_body(), tmp_path / "sc.dcm")
    images = load_planar(_entry(tmp_path, SeriesKind.SECONDARY_CAPTURE))
    assert [im.counts.shape for im in images] == [(40, 15), (40, 15)]
    assert [im.total_counts for im in images] == [36 * 10 * 5, 36 * 10 * 7]
    for im, side in zip(images, ("left", "right"), strict=True):
        assert im.view is View.UNKNOWN
        assert im.view_rule.startswith(f"none: {side} half of a side-by-side")
        assert not im.is_count_data
        assert any("not raw counts" in w for w in im.warnings)


def test_narrow_capture_is_one_view(tmp_path):
    b.write(b.sc_whole_body(side_by_side=False), tmp_path / "sc.dcm")
    (image,) = load_planar(_entry(tmp_path, SeriesKind.SECONDARY_CAPTURE))
    assert image.counts.shape == (40, 14)  # 14 x 30 mm = 420 mm: one body width
    assert image.total_counts == 36 * 12 * 5
    assert image.view is View.UNKNOWN
    assert image.view_rule.startswith("none: no anterior/posterior ViewCodeSequence")


def test_split_needs_a_central_gap():
    img = np.ones((40, 30), dtype=np.float32)
    assert split_side_by_side(img, (30.0, 30.0)) is None  # wide enough, no gap
    img[:, 13:17] = 0
    left, right = split_side_by_side(img, (30.0, 30.0))
    assert left.shape == (40, 15) and right.shape == (40, 15)
    assert split_side_by_side(img, (10.0, 10.0)) is None  # 300 mm: a single body


def test_missing_pixel_spacing_gives_none_and_warning(tmp_path):
    path = b.write(b.nm_planar(windows=WINDOWS[:1], pixel_spacing=None), tmp_path / "wb.dcm")
    for image in load_planar([path]):
        assert image.pixel_spacing_mm is None
        assert any("PixelSpacing missing" in w for w in image.warnings)


def test_two_single_view_files_loaded_with_complement(tmp_path):
    paths = [
        b.write(
            b.nm_planar(
                series_key="pair",
                instance=1,
                detectors=[b.detector_item()],
                detector_numbers=[1],
                windows=WINDOWS[:1],
                image_id="POST",
            ),
            tmp_path / "1.dcm",
        ),
        b.write(
            b.nm_planar(
                series_key="pair",
                instance=2,
                detectors=[b.detector_item()],
                detector_numbers=[2],
                windows=WINDOWS[:1],
            ),
            tmp_path / "2.dcm",
        ),
    ]
    first, second = load_planar(paths)
    assert first.view is View.POSTERIOR and first.view_rule == "ImageID"
    assert second.view is View.ANTERIOR
    assert second.view_rule.startswith("opposite of the other single-view file (ImageID")
    assert second.counts[0, 0] == b.planar_value(2, 1)
    assert second.frame_index == 0


def test_tomo_projections_refused(tmp_path):
    path = b.write(b.nm_tomo(), tmp_path / "tomo.dcm")
    with pytest.raises(UnsupportedAcquisitionError, match="raw SPECT projections are not scored"):
        load_planar([path])
    with pytest.raises(UnsupportedAcquisitionError, match="raw SPECT projections are not scored"):
        load_planar(_entry(tmp_path, SeriesKind.TOMO_PROJECTIONS))


def test_non_planar_file_refused(tmp_path):
    path = b.write(b.ct_slice(), tmp_path / "ct.dcm")
    with pytest.raises(InvalidInputError, match="expected a planar NM image") as exc:
        load_planar([path])
    assert exc.value.code == "not_planar"


def test_only_scatter_windows_refused(tmp_path):
    ds = b.nm_planar(windows=[b.Window(*b.SCATTER_BY_NAME)])
    path = b.write(ds, tmp_path / "scatter.dcm")
    with pytest.raises(InvalidInputError, match="no photopeak frame to sum") as exc:
        load_planar([path])
    assert exc.value.code == "no_photopeak_window"


def test_empty_input_refused():
    with pytest.raises(InvalidInputError, match="no file given"):
        load_planar([])
