"""Overlay composition from hand-built scoring results (tiny images, exact pixels)."""

import dataclasses
import warnings

import numpy as np
import pytest

from octoscan.imaging.render import (
    GRADE_COLOURS,
    REFERENCE_COLOUR,
    UNGRADED_COLOUR,
    text_size,
)
from octoscan.imaging.types import AcquisitionInfo, PlanarImage, SeriesKind, SourceRef, View, Volume
from octoscan.models.types import Decision, Lesion, OrganRegion, PlanarScore, ReferenceRegion
from octoscan.pipelines.overlays import (
    _caption,
    _display_grid,
    _plane,
    render_planar_overlays,
    render_volume_overlays,
)

H, W = 120, 100
SPACING = (2.0, 2.0)


def _box(r0, r1, c0, c1, shape=(H, W)):
    m = np.zeros(shape, dtype=bool)
    m[r0:r1, c0:c1] = True
    return m


def _lesion(id_, *, grade=3, mask=None, center_rc=(60.0, 50.0), diameter_mm=12.0, **kw):
    fields = dict(
        id=id_,
        diameter_mm=diameter_mm,
        peak=50.0,
        mean=40.0,
        units="counts/pixel",
        ratio_liver=1.8,
        ratio_liver_ci=(1.5, 2.1),
        ratio_spleen=0.7,
        ratio_spleen_ci=(0.6, 0.8),
        spleen_reference_organ="spleen",
        grade=grade,
        grade_range=(grade, grade) if grade is not None else (0, 0),
        borderline=False,
        region="abdomen",
        grading_method="planar apparent peak",
        ci_method="poisson",
        center_rc=center_rc,
        mask=mask,
    )
    fields.update(kw)
    return Lesion(**fields)


def _ref(organ, mean, *, center_rc=None, mask=None, radius_mm=4.0, plausible=True, **kw):
    return ReferenceRegion(
        organ=organ,
        mean=mean,
        std=1.0,
        variance_of_mean=0.01,
        variance_method="poisson",
        method="test",
        radius_mm=radius_mm,
        center_rc=center_rc,
        mask=mask,
        plausible=plausible,
        **kw,
    )


def _score(
    image,
    *,
    lesions=(),
    references=(),
    organs=(),
    views=("anterior", "posterior"),
    grid="anterior",
    shift=(0.0, 0.0),
    hours=24.0,
):
    return PlanarScore(
        tracer="111In-pentetreotide",
        tracer_assumed=False,
        views_used=views,
        grid=grid,
        hours_post_injection=hours,
        grading_method="planar apparent peak / reference mean",
        ci_method="poisson",
        pixel_spacing_mm=SPACING,
        posterior_shift_rc=shift,
        orientation="head up",
        organs=tuple(organs),
        references=tuple(references),
        lesions=tuple(lesions),
        decision=Decision(
            status="needs_review",
            imaging_status="needs_review",
            rule_set="default",
            uptake_rule="> liver",
            reasons=("borderline",),
        ),
        config_name="default",
        config_hash="0" * 16,
        series_instance_uids=("1.2.3",),
        warnings=(),
        scoring_image=image,
    )


def _planar(counts, view):
    return PlanarImage(
        counts=np.asarray(counts, dtype=np.float32),
        view=view,
        view_rule="test",
        pixel_spacing_mm=SPACING,
        acquisition=AcquisitionInfo(),
        source=SourceRef("1.2", "1.2.3"),
        kind=SeriesKind.PLANAR_WHOLE_BODY,
    )


def _body():
    img = np.zeros((H, W))
    img[10:110, 20:80] = 10.0
    return img


def _panel_image(panel, shape=(H, W)):
    """The image part of a titled panel (the title strip sits on top)."""
    return panel[panel.shape[0] - shape[0] :]


def _is(rgb, colour):
    return np.all(rgb == colour, axis=-1)


# ----------------------------------------------------------------------------- planar


def test_lesion_contour_in_grade_colour_and_numbered():
    img = _body()
    mask = _box(58, 63, 44, 49)
    img[mask] = 40.0
    score = _score(img, lesions=[_lesion(7, grade=3, mask=mask)])
    out = render_planar_overlays(score, None, scale=1, crop_to_body=False)
    assert set(out) == {"geometric_mean", "summary"}
    gm = _panel_image(out["geometric_mean"])
    assert gm.shape == (H, W, 3) and gm.dtype == np.uint8
    # the contour: the 2-pixel ring just outside the lesion, every lesion pixel left visible
    ring = _box(56, 65, 42, 51) & ~mask
    is_grade = _is(gm, GRADE_COLOURS[3])
    assert np.all(is_grade[ring])
    assert not np.any(is_grade[mask])
    assert np.all(gm[mask] == gm[60, 46]) and np.all(gm[60, 46] < 255)  # dark: hot
    assert not np.any(is_grade[:, :42]) and not np.any(is_grade[:50])
    # the label "7": a grade-coloured box right of the contour, 2 pixels off it
    h, w = text_size("7", size=13)
    label = gm[50:72, 53 : 53 + w]
    assert np.count_nonzero(_is(label, GRADE_COLOURS[3])) > h * w // 3


def test_grades_coloured_and_circle_for_a_lesion_without_mask():
    score = _score(
        _body(),
        lesions=[
            _lesion(1, grade=1, center_rc=(30.0, 50.0), diameter_mm=12.0),  # radius 3 px
            _lesion(2, grade=None, center_rc=(90.0, 50.0), diameter_mm=8.0),
        ],
    )
    gm = _panel_image(render_planar_overlays(score, scale=1, crop_to_body=False)["geometric_mean"])
    blue = _is(gm, GRADE_COLOURS[1])
    # a 6 mm disc (3 px) outlined by the ring of 2 px just outside it
    assert blue[30, 55] and blue[30, 54] and blue[25, 50] and blue[35, 50] and blue[30, 45]
    assert not blue[30, 50] and not blue[30, 53] and not blue[30, 56]
    black = _is(gm, UNGRADED_COLOUR)
    assert black[90, 54] and not black[90, 52] and not black[90, 50]


def test_references_drawn_and_labelled():
    liver_mask = _box(40, 46, 30, 36)
    score = _score(
        _body(),
        references=[
            _ref("liver", 10.0, center_rc=(43.0, 33.0), mask=liver_mask),
            _ref("spleen", 12.0, center_rc=(80.0, 60.0), radius_mm=4.0),
        ],
    )
    gm = _panel_image(render_planar_overlays(score, scale=1, crop_to_body=False)["geometric_mean"])
    ref = _is(gm, REFERENCE_COLOUR)
    assert np.all(ref[_box(38, 48, 28, 38) & ~liver_mask])
    assert not np.any(ref[liver_mask])
    assert ref[80, 64] and ref[76, 60] and not ref[80, 60] and not ref[80, 62]
    h, w = text_size("L ref", size=13)
    # the label box, filled with the reference colour, right of the liver outline
    assert np.count_nonzero(ref[30:56, 40 : 40 + w]) > h * w // 2


def test_posterior_is_mirrored_and_shifted_onto_the_anterior_grid():
    ant = _body()
    ant[60, 30] = 100.0
    post_raw = _body()[:, ::-1].copy()
    post_raw[60, W - 1 - 28] = 100.0  # mirrored: column 28, shifted by +2 columns: column 30
    score = _score(ant, shift=(0.0, 2.0))
    images = {
        "anterior": _planar(ant, View.ANTERIOR),
        "posterior": _planar(post_raw, View.POSTERIOR),
    }
    out = render_planar_overlays(score, images, scale=1, crop_to_body=False, window=(0.0, 100.0))
    assert set(out) == {"anterior", "posterior", "geometric_mean", "summary"}
    post = _panel_image(out["posterior"])
    anterior = _panel_image(out["anterior"])
    assert post[60, 30].tolist() == [0, 0, 0]  # black = high counts (inverted grey)
    assert anterior[60, 30].tolist() == [0, 0, 0]
    assert post[60, 28].tolist() == [230, 230, 230]
    # one window on every view: 10 counts show the same grey in all panels
    assert post[40, 50].tolist() == anterior[40, 50].tolist() == [230, 230, 230]
    assert _panel_image(out["geometric_mean"])[40, 50].tolist() == [230, 230, 230]


def test_summary_holds_all_views_side_by_side():
    img = _body()
    images = {"anterior": _planar(img, View.ANTERIOR), "posterior": _planar(img, View.POSTERIOR)}
    out = render_planar_overlays(_score(img), images, scale=1, crop_to_body=False)
    summary = out["summary"]
    assert summary.dtype == np.uint8 and summary.ndim == 3
    assert summary.shape[1] > 3 * W + 200  # three views plus the colour bar and legend
    assert np.any(_is(summary, GRADE_COLOURS[4]))  # legend swatches
    assert np.any(_is(summary, GRADE_COLOURS[0]))


def test_same_window_is_robust_to_a_large_bladder_found_by_scoring():
    img = _body()
    img[10:60, 20:80] = 20.0
    bladder = _box(80, 110, 20, 80)  # nearly a third of the body
    img[bladder] = 1000.0
    organ = OrganRegion(
        organ="bladder", center_rc=(95.0, 50.0), mean=1000.0, method="t", mask=bladder
    )
    opts = {"scale": 1, "crop_to_body": False}
    with_bladder = render_planar_overlays(_score(img, organs=[organ]), **opts)
    without = render_planar_overlays(_score(img), **opts)
    assert _panel_image(with_bladder["geometric_mean"])[30, 50].tolist() == [0, 0, 0]
    assert _panel_image(without["geometric_mean"])[30, 50, 0] > 200


def test_window_reaches_above_the_spleen_reference():
    img = _body()
    img[40:60, 40:60] = 100.0  # spleen, 7 % of the body: saturating at the 99.5th percentile
    spleen = _ref("spleen", 100.0, center_rc=(50.0, 50.0))
    out = render_planar_overlays(_score(img, references=[spleen]), scale=1, crop_to_body=False)
    # window high = 1.25 x 100: the spleen shows at 80 % (dark grey), not black
    assert _panel_image(out["geometric_mean"])[43, 43].tolist() == [51, 51, 51]


def test_single_view_and_missing_posterior():
    img = _body()
    score = _score(img, views=("anterior",), shift=None)
    out = render_planar_overlays(score, {"anterior": _planar(img, View.ANTERIOR)})
    assert set(out) == {"anterior", "summary"}
    out = render_planar_overlays(score, None)
    assert set(out) == {"anterior", "summary"}
    post_only = _score(img, views=("posterior",), grid="posterior_mirrored", shift=None)
    assert set(render_planar_overlays(post_only)) == {"posterior", "summary"}


def test_all_zero_images_no_lesions_no_references():
    img = np.zeros((H, W))
    images = {"anterior": _planar(img, View.ANTERIOR), "posterior": _planar(img, View.POSTERIOR)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = render_planar_overlays(_score(img, shift=None), images)
    for panel in out.values():
        assert panel.dtype == np.uint8 and panel.ndim == 3 and panel.shape[2] == 3
    assert np.all(_panel_image(out["anterior"], (H * 4, W * 4))[40:-40, 40:-40] == 255)


def test_non_finite_scoring_image_and_odd_masks_do_not_break_rendering():
    img = _body()
    img[5, 50] = np.nan
    img[6, 50] = np.inf
    lesion = _lesion(3, mask=np.ones((5, 5), dtype=bool), center_rc=(60.0, 50.0))
    out = render_planar_overlays(_score(img, lesions=[lesion]), scale=1, crop_to_body=False)
    gm = _panel_image(out["geometric_mean"])
    assert gm.dtype == np.uint8
    assert gm[5, 50].tolist() == [255, 255, 255]  # NaN shown as no counts
    assert gm[6, 50].tolist() == [255, 255, 255]  # non-finite values are not counts
    assert _is(gm, GRADE_COLOURS[3])[60, 55]  # wrong-shape mask: drawn as a 12 mm circle


def test_inputs_are_not_modified():
    img = _body()
    mask = _box(58, 63, 44, 49)
    lesion = _lesion(1, mask=mask)
    counts = img.astype(np.float32)
    images = {
        "anterior": _planar(counts, View.ANTERIOR),
        "posterior": _planar(counts, View.POSTERIOR),
    }
    before = (img.copy(), mask.copy(), counts.copy())
    render_planar_overlays(_score(img, lesions=[lesion], shift=(1.5, -1.0)), images)
    assert np.array_equal(img, before[0])
    assert np.array_equal(mask, before[1])
    assert np.array_equal(counts, before[2])


def test_patient_text_only_with_show_phi():
    score = _score(_body())
    plain = render_planar_overlays(score)["summary"]
    hidden = render_planar_overlays(score, patient_text="DOE^JANE 1234")["summary"]
    shown = render_planar_overlays(score, show_phi=True, patient_text="DOE^JANE 1234")["summary"]
    assert np.array_equal(plain, hidden)
    assert shown.shape[0] > plain.shape[0]


def test_display_is_enlarged_with_square_pixels():
    score = dataclasses.replace(_score(_body()), pixel_spacing_mm=(4.0, 2.0))
    gm = render_planar_overlays(score, scale=2, crop_to_body=False)["geometric_mean"]
    assert gm.shape[1] == 2 * W
    assert gm.shape[0] > 4 * H  # rows of 4 mm repeated 4 times, columns of 2 mm twice
    # a constant body of 10 counts: window 0-20 (robust_window's constant-image rule)
    assert np.all(_panel_image(gm, (4 * H, 2 * W))[4 * 10 : 4 * 110, 2 * 20 : 2 * 80] == 128)
    default = render_planar_overlays(_score(_body()), crop_to_body=False)["geometric_mean"]
    assert default.shape[1] == 4 * W  # at least 400 pixels wide


def test_crop_keeps_the_body_and_every_lesion():
    img = _body()
    lesion = _lesion(1, center_rc=(118.0, 2.0), diameter_mm=2.0)  # outside the body
    gm = render_planar_overlays(_score(img, lesions=[lesion]), scale=1)["geometric_mean"]
    # body columns 20-79, widened to 17-82 by the 9-pixel smoothing; the lesion pulls the
    # left edge to column 2, the 8-pixel margin is clipped at 0: columns 0-90 remain
    assert gm.shape[1] == 91
    assert np.any(_is(gm, GRADE_COLOURS[3]))


def test_caption_names_decision_rule_set_views_and_time():
    text = _caption(_score(_body()))
    assert "NEEDS REVIEW" in text and "rule set: default" in text
    assert "anterior + posterior (conjugate-view geometric mean)" in text
    assert "24.0 h p.i." in text
    single = _caption(_score(_body(), views=("anterior",), hours=None))
    assert "anterior only" in single and "time p.i. unknown" in single


def test_rejects_bad_spacing_and_scale():
    score = dataclasses.replace(_score(_body()), pixel_spacing_mm=(0.0, 2.0))
    with pytest.raises(ValueError, match="pixel_spacing_mm"):
        render_planar_overlays(score)
    with pytest.raises(ValueError, match="scale=0"):
        render_planar_overlays(_score(_body()), scale=0)


# ----------------------------------------------------------------------------- volumes


def _volume(array, spacing=2.0, *, flip_planes=False, units="counts"):
    """Axial stack: planes along +z (or -z), rows along +y (posterior), columns along +x."""
    arr = np.asarray(array, dtype=np.float32)
    affine = np.eye(4)
    affine[:3, 0] = (0.0, 0.0, -spacing if flip_planes else spacing)
    affine[:3, 1] = (0.0, spacing, 0.0)
    affine[:3, 2] = (spacing, 0.0, 0.0)
    if flip_planes:
        affine[2, 3] = spacing * (arr.shape[0] - 1)
    return Volume(
        array=arr,
        affine=affine,
        units=units,
        kind=SeriesKind.SPECT,
        acquisition=AcquisitionInfo(),
        source=SourceRef("1.2", "1.2.4"),
    )


def _phantom_volume():
    arr = np.zeros((20, 30, 30), dtype=np.float32)
    arr[2:18, 5:25, 5:25] = 1.0
    arr[9:12, 14:17, 9:12] = 10.0  # lesion around index (10, 15, 10): LPS (20, 30, 20) mm
    arr[10, 15, 10] = 20.0
    return arr


def _tomo_lesion(id_=1, *, grade=3, mask=None, centre=(20.0, 30.0, 20.0), diameter_mm=6.0):
    return _lesion(
        id_,
        grade=grade,
        mask=mask,
        center_rc=None,
        diameter_mm=diameter_mm,
        center_lps_mm=centre,
        units="counts",
    )


def test_display_planes_are_in_radiological_orientation():
    vol = _volume(_phantom_volume())
    grid = _display_grid(vol, vol.array, 2.0, [], crop=False)
    shape, affine = grid.axial(20.0)
    axial = _plane(vol, shape, affine, order=1, cval=0.0)
    assert axial.shape == (30, 30)
    assert np.unravel_index(np.argmax(axial), axial.shape) == (15, 10)  # rows y, columns x
    shape, affine = grid.coronal(30.0)
    coronal = _plane(vol, shape, affine, order=1, cval=0.0)
    assert coronal.shape == (20, 30)
    # rows run head (z = 38 mm) to feet: z = 20 mm is row (38 - 20) / 2 = 9
    assert np.unravel_index(np.argmax(coronal), coronal.shape) == (9, 10)
    # a stack stored feet-first (negative slice step) shows the same planes
    flipped = _volume(_phantom_volume()[::-1], flip_planes=True)
    grid_f = _display_grid(flipped, flipped.array, 2.0, [], crop=False)
    assert np.allclose(_plane(flipped, shape, affine, order=1, cval=0.0), coronal)
    assert np.allclose(grid_f.lo, grid.lo) and np.allclose(grid_f.hi, grid.hi)


def test_volume_overlays_panels_and_contours():
    vol = _volume(_phantom_volume())
    mask = np.zeros(vol.shape, dtype=bool)
    mask[9:12, 14:17, 9:12] = True
    lesions = [
        _tomo_lesion(1, grade=4, mask=mask),
        _tomo_lesion(2, grade=2, centre=(30.0, 20.0, 24.0)),
    ]
    liver = _ref("liver", 1.0, radius_mm=6.0, center_lps_mm=(40.0, 30.0, 20.0))
    out = render_volume_overlays(vol, lesions, [liver])
    assert set(out) == {"mip", "lesion_1", "lesion_2"}
    for panel in out.values():
        assert panel.dtype == np.uint8 and panel.ndim == 3 and panel.shape[2] == 3
    assert np.any(_is(out["lesion_1"], GRADE_COLOURS[4]))
    assert np.any(_is(out["lesion_1"], REFERENCE_COLOUR))
    assert np.any(_is(out["mip"], GRADE_COLOURS[2])) and np.any(_is(out["mip"], GRADE_COLOURS[4]))
    # lesion 2's sphere (radius 3 mm, 4 mm above z = 20) does not reach lesion 1's axial plane
    assert np.any(_is(out["lesion_2"], GRADE_COLOURS[2]))


def test_volume_overlays_with_ct_on_another_grid():
    vol = _volume(_phantom_volume())
    ct_arr = np.full((40, 60, 60), 40.0, dtype=np.float32)  # soft tissue, 1 mm grid
    ct_arr[:, :5] = -1000.0  # air in front of the patient
    ct = dataclasses.replace(_volume(ct_arr, spacing=1.0, units="HU"), kind=SeriesKind.CT)
    fused = render_volume_overlays(vol, [_tomo_lesion()], [], ct)
    alone = render_volume_overlays(vol, [_tomo_lesion()], [])
    assert fused["lesion_1"].shape != alone["lesion_1"].shape  # 1 mm display pixels with CT
    grey = np.all(fused["lesion_1"][..., :1] == fused["lesion_1"], axis=-1)
    level = round((40.0 + 160.0) / 400.0 * 255)  # soft tissue in the CT window
    assert np.count_nonzero(grey & (fused["lesion_1"][..., 0] == level)) > 100


def test_volume_overlays_all_zero_and_inputs_unmodified():
    arr = np.zeros((6, 8, 8), dtype=np.float32)
    vol = _volume(arr)
    lesion = _tomo_lesion(centre=(6.0, 6.0, 4.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = render_volume_overlays(vol, [lesion], [])
    assert set(out) == {"mip", "lesion_1"}
    assert np.all(arr == 0.0)
    nan_vol = _volume(np.full((6, 8, 8), np.nan))
    out = render_volume_overlays(nan_vol, [lesion], [])
    assert out["lesion_1"].dtype == np.uint8


def test_volume_overlays_reject_planar_or_outside_lesions():
    vol = _volume(_phantom_volume())
    with pytest.raises(ValueError, match="lesion 4 has no center_lps_mm"):
        render_volume_overlays(vol, [_lesion(4)], [])
    with pytest.raises(ValueError, match=r"lesion 1 centre .* outside the volume"):
        render_volume_overlays(vol, [_tomo_lesion(centre=(500.0, 0.0, 0.0))], [])
    with pytest.raises(ValueError, match="pixel_mm"):
        render_volume_overlays(vol, [], [], pixel_mm=0.0)
