"""Rendering primitives on tiny hand-made arrays whose answer can be checked by eye."""

import numpy as np
import pytest

from octoscan.imaging.render import (
    BACKGROUND,
    GRADE_COLOURS,
    REFERENCE_COLOUR,
    UNGRADED_COLOUR,
    blend_fused,
    colour_bar,
    disc_mask,
    draw_circle,
    draw_contour,
    draw_label,
    hstack_panels,
    legend,
    readable_text_colour,
    robust_window,
    text_panel,
    text_size,
    to_rgb,
    upsample_nearest,
    vstack_panels,
    window_image,
)

RED = (255, 0, 0)


def _grey(value: int, shape=(10, 10)) -> np.ndarray:
    return np.full((*shape, 3), value, dtype=np.uint8)


# ----------------------------------------------------------------------------- windows


def test_window_image_maps_linearly_and_clips():
    arr = np.array([[-5.0, 0.0, 5.0, 10.0, 20.0]])
    assert window_image(arr, low=0.0, high=10.0).tolist() == [[0.0, 0.0, 0.5, 1.0, 1.0]]


def test_window_image_non_finite_values():
    arr = np.array([[np.nan, np.inf, -np.inf]])
    assert window_image(arr, low=0.0, high=1.0).tolist() == [[0.0, 1.0, 0.0]]


@pytest.mark.parametrize("low, high", [(1.0, 1.0), (2.0, 1.0), (0.0, np.nan)])
def test_window_image_rejects_empty_window(low, high):
    with pytest.raises(ValueError, match="high > low"):
        window_image(np.zeros((2, 2)), low=low, high=high)


def test_robust_window_constant_image_is_valid():
    low, high = robust_window(np.full((8, 8), 5.0))
    assert (low, high) == (5.0, 10.0)
    assert np.all(window_image(np.full((8, 8), 5.0), low=low, high=high) == 0.0)


def test_robust_window_all_zero_image():
    assert robust_window(np.zeros((8, 8))) == (0.0, 1.0)
    rgb = to_rgb(window_image(np.zeros((8, 8)), low=0.0, high=1.0), "inverted")
    assert rgb.dtype == np.uint8 and np.all(rgb == 255)


def test_robust_window_all_nan_and_empty():
    assert robust_window(np.full((3, 3), np.nan)) == (0.0, 1.0)
    assert robust_window(np.zeros((0, 4))) == (0.0, 1.0)


def test_robust_window_ignores_small_hot_bladder_block():
    body = np.zeros((120, 120))
    body[10:110, 10:110] = 10.0  # 10 000 body pixels
    body[50:53, 50:53] = 1000.0  # 9 pixels of bladder: under 0.5 % of the body
    assert robust_window(body) == (10.0, 10.0 + 10.0)  # constant body: 10 up to 20
    body[60:70, 60:70] = 12.0
    assert robust_window(body) == (10.0, 12.0)  # the bladder is not the high end


def test_robust_window_background_does_not_pull_percentiles_down():
    img = np.zeros((100, 100))
    img[40:60, 40:60] = np.linspace(1.0, 100.0, 400).reshape(20, 20)
    low, high = robust_window(img, low_percentile=0.0, high_percentile=100.0)
    assert (low, high) == (1.0, 100.0)


def test_robust_window_mask_leaves_out_a_large_bladder():
    img = np.zeros((100, 100))
    img[:, :] = 10.0
    img[50:, :] = 8.0
    img[0:20, 0:20] = 1000.0  # 4 % of the image: too big for the percentile alone
    assert robust_window(img)[1] == 1000.0
    keep = np.ones(img.shape, dtype=bool)
    keep[0:20, 0:20] = False
    assert robust_window(img, mask=keep)[1] == 10.0


def test_robust_window_one_window_over_several_views():
    a = np.full((10, 10), 10.0)
    b = np.full((10, 10), 30.0)
    assert robust_window([a, b], low_percentile=0.0, high_percentile=100.0) == (10.0, 30.0)


def test_robust_window_errors():
    with pytest.raises(ValueError, match="expected 0 <= low < high <= 100"):
        robust_window(np.ones((2, 2)), low_percentile=50.0, high_percentile=50.0)
    with pytest.raises(ValueError, match="at least one array"):
        robust_window([])
    with pytest.raises(ValueError, match="2 masks given for 1 arrays"):
        robust_window([np.ones((2, 2))], mask=[None, None])
    with pytest.raises(ValueError, match=r"mask shape \(3, 3\) matches none"):
        robust_window(np.ones((2, 2)), mask=np.ones((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="differs from array shape"):
        robust_window([np.ones((2, 2))], mask=[np.ones((3, 3), dtype=bool)])


def test_robust_window_does_not_modify_input():
    img = np.arange(16, dtype=np.float32).reshape(4, 4)
    before = img.copy()
    robust_window(img)
    assert np.array_equal(img, before)


# ----------------------------------------------------------------------------- colours


def test_to_rgb_colormaps():
    v = np.array([[0.0, 0.5, 1.0]])
    assert to_rgb(v, "gray")[0, :, 0].tolist() == [0, 128, 255]
    assert to_rgb(v, "inverted")[0, :, 0].tolist() == [255, 128, 0]
    hot = to_rgb(v, "hot")
    assert hot[0, 0].tolist() == [0, 0, 0]
    assert hot[0, 2].tolist() == [255, 255, 255]
    assert hot[0, 1, 0] == 255 and 0 < hot[0, 1, 1] < 255 and hot[0, 1, 2] == 0
    assert hot.dtype == np.uint8 and hot.shape == (1, 3, 3)


def test_to_rgb_clips_and_hides_nan():
    out = to_rgb(np.array([[-1.0, 2.0, np.nan]]), "gray")
    assert out[0, :, 0].tolist() == [0, 255, 0]


def test_to_rgb_errors():
    with pytest.raises(ValueError, match="colormap 'jet'"):
        to_rgb(np.zeros((2, 2)), "jet")
    with pytest.raises(ValueError, match="2-D"):
        to_rgb(np.zeros((2, 2, 2)))


def test_grade_colours_distinct_from_each_other_and_references():
    colours = [GRADE_COLOURS[g] for g in range(5)]
    assert len(set(colours)) == 5
    assert REFERENCE_COLOUR not in colours and UNGRADED_COLOUR not in colours
    assert GRADE_COLOURS[1][2] > GRADE_COLOURS[1][0]  # blue
    assert GRADE_COLOURS[2][1] > GRADE_COLOURS[2][0]  # green
    assert GRADE_COLOURS[4][0] > GRADE_COLOURS[4][1] > GRADE_COLOURS[4][2]  # red-orange


def test_readable_text_colour():
    assert readable_text_colour((255, 255, 255)) == (0, 0, 0)
    assert readable_text_colour((0, 0, 0)) == (255, 255, 255)
    assert readable_text_colour(GRADE_COLOURS[1]) == (255, 255, 255)
    assert readable_text_colour(GRADE_COLOURS[3]) == (0, 0, 0)


def test_blend_fused():
    ct = np.full((2, 2), 0.5)
    em = np.array([[0.0, 1.0], [0.1, np.nan]])
    out = blend_fused(ct, em, alpha=0.6, ramp=0.2)
    assert out[0, 0].tolist() == [128, 128, 128]  # no uptake: the CT untouched
    assert out[1, 1].tolist() == [128, 128, 128]  # NaN counts as no uptake
    assert out[0, 1].tolist() == [204, 204, 204]  # 0.4 * 0.5 + 0.6 * white
    assert out[1, 0, 0] > out[1, 0, 1]  # reddish at low uptake
    with pytest.raises(ValueError, match="one shape"):
        blend_fused(ct, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="alpha"):
        blend_fused(ct, em, alpha=2.0)


# ----------------------------------------------------------------------------- drawing


def test_draw_contour_exactly_on_the_mask_boundary():
    img = _grey(200)
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:7, 3:8] = True
    out = draw_contour(img, mask, RED)
    expected = mask.copy()
    expected[3:6, 4:7] = False  # interior of the 5 x 5 square
    is_red = np.all(out == RED, axis=-1)
    assert np.array_equal(is_red, expected)
    assert np.all(out[~expected] == 200)
    assert np.all(img == 200)  # input untouched


def test_draw_contour_thickness_edge_and_halo():
    img = _grey(0)
    mask = np.zeros((10, 10), dtype=bool)
    mask[0:6, 0:6] = True  # touches the image edge
    out = draw_contour(img, mask, RED, thickness=2)
    is_red = np.all(out == RED, axis=-1)
    assert is_red[0, 0] and is_red[1, 1] and is_red[5, 5] and is_red[4, 0]
    assert not is_red[2, 2] and not is_red[3, 3]
    haloed = draw_contour(img, mask, RED, halo=(255, 255, 255))
    assert haloed[6, 3].tolist() == [255, 255, 255] and haloed[3, 6].tolist() == [255] * 3
    assert haloed[6, 6].tolist() == [0, 0, 0]  # diagonal neighbour: not in the 4-ring
    assert haloed[5, 3].tolist() == list(RED)


def test_draw_contour_empty_mask_and_errors():
    img = _grey(7)
    out = draw_contour(img, np.zeros((10, 10), dtype=bool), RED)
    assert np.array_equal(out, img) and out is not img
    with pytest.raises(ValueError, match="mask shape"):
        draw_contour(img, np.ones((3, 3), dtype=bool), RED)
    with pytest.raises(ValueError, match="thickness"):
        draw_contour(img, np.ones((10, 10), dtype=bool), RED, thickness=0)
    with pytest.raises(ValueError, match="uint8"):
        draw_contour(img.astype(np.float32), np.ones((10, 10), dtype=bool), RED)
    with pytest.raises(ValueError, match="three integers"):
        draw_contour(img, np.ones((10, 10), dtype=bool), (300, 0, 0))


def test_disc_mask_and_draw_circle():
    disc = disc_mask((11, 11), (5, 5), 3.0)
    assert disc.sum() == 29  # lattice points within radius 3
    assert disc[5, 8] and not disc[5, 9] and not disc[8, 8]
    assert disc_mask((5, 5), (2.2, 2.4), 0.0).sum() == 1  # tiny: its nearest pixel
    ellipse = disc_mask((11, 11), (5, 5), (1.0, 4.0))
    assert ellipse[5, 9] and not ellipse[7, 5]
    out = draw_circle(_grey(0, (11, 11)), (5, 5), 3.0, RED)
    is_red = np.all(out == RED, axis=-1)
    assert is_red[5, 8] and is_red[2, 5] and not is_red[5, 5] and not is_red[5, 9]
    with pytest.raises(ValueError, match="radius_px"):
        draw_circle(_grey(0), (5, 5), -1.0, RED)


def test_draw_label_changes_pixels_near_its_position_only():
    img = _grey(255, (60, 80))
    out = draw_label(img, "12", (20, 30), (0, 0, 0), background=(255, 255, 0))
    h, w = text_size("12")
    changed = np.any(out != img, axis=-1)
    rows, cols = np.nonzero(changed)
    assert (rows.min(), cols.min()) == (20, 30)
    assert (rows.max(), cols.max()) == (20 + h - 1, 30 + w - 1)
    box = out[20 : 20 + h, 30 : 30 + w]
    assert np.any(np.all(box < 100, axis=-1))  # dark text inside the yellow box
    assert np.all(img == 255)


def test_draw_label_is_kept_inside_the_image():
    img = _grey(255, (40, 40))
    out = draw_label(img, "7", (100, 100), (255, 0, 0))
    h, w = text_size("7")
    changed = np.any(out != img, axis=-1)
    rows, cols = np.nonzero(changed)
    assert rows.max() <= 39 and cols.max() <= 39
    assert rows.min() >= 40 - h and cols.min() >= 40 - w


def test_text_size_grows_with_text():
    h1, w1 = text_size("1")
    h2, w2 = text_size("123456")
    assert h1 == h2 > 0 and w2 > w1 > 0
    assert text_size("1", size=20)[0] > h1


# ----------------------------------------------------------------------------- panels


def test_upsample_nearest():
    arr = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    assert upsample_nearest(arr, 2).tolist() == [
        [1, 1, 2, 2],
        [1, 1, 2, 2],
        [3, 3, 4, 4],
        [3, 3, 4, 4],
    ]
    assert upsample_nearest(arr, (2, 1)).tolist() == [[1, 2], [1, 2], [3, 4], [3, 4]]
    rgb = upsample_nearest(_grey(9, (2, 3)), 3)
    assert rgb.shape == (6, 9, 3) and rgb.dtype == np.uint8
    with pytest.raises(ValueError, match="factor"):
        upsample_nearest(arr, 0)
    with pytest.raises(ValueError, match="integers >= 1"):
        upsample_nearest(arr, 1.5)
    with pytest.raises(ValueError, match="2-D or 3-D"):
        upsample_nearest(np.zeros(3), 2)


def test_colour_bar_runs_from_high_at_top_to_low_at_bottom():
    height = 200
    bar = colour_bar(height, (0.0, 100.0), "inverted", label="counts", marks={"L ref": 50.0})
    assert bar.shape[0] == height and bar.dtype == np.uint8
    text_h = text_size("Ag")[0]
    top, bottom = text_h + text_h // 2, height - text_h // 2 - 1  # the documented layout
    mark_rows = np.nonzero(np.all(bar[:, :16] == REFERENCE_COLOUR, axis=-1).all(axis=1))[0]
    assert mark_rows.tolist() == [round(bottom - 0.5 * (bottom - top))]  # 50 is mid-window
    column = np.delete(bar[:, 8, 0], mark_rows)[top:bottom]
    assert column[0] == 0 and column[-1] == 255  # black = high on the inverted scale
    assert np.all(np.diff(column.astype(int)) >= 0)


def test_colour_bar_marks_outside_window_and_errors():
    bar = colour_bar(150, (0.0, 10.0), "hot", label="SUV", marks={"S ref": 50.0})
    assert np.any(np.all(bar == REFERENCE_COLOUR, axis=-1))
    with pytest.raises(ValueError, match="high > low"):
        colour_bar(150, (1.0, 1.0), "hot", label="x")
    with pytest.raises(ValueError, match="too small"):
        colour_bar(10, (0.0, 1.0), "hot", label="x")


def test_hstack_and_vstack_panels():
    a, b = _grey(10, (4, 5)), _grey(20, (6, 3))
    row = hstack_panels([a, b], gap=2)
    assert row.shape == (6, 10, 3)
    assert np.all(row[:4, :5] == 10) and np.all(row[:, 7:] == 20)
    assert np.all(row[:, 5:7] == BACKGROUND) and np.all(row[4:, :5] == BACKGROUND)
    titled = hstack_panels([a, b], gap=2, titles=["A", None])
    assert titled.shape[1] == 10 and titled.shape[0] > 6
    assert np.all(titled[-4:, :5] == 10) or np.all(titled[-6:-2, :5] == 10)
    col = vstack_panels([a, b], gap=1)
    assert col.shape == (11, 5, 3)
    assert np.all(col[:4, :5] == 10) and np.all(col[5:, :3] == 20) and np.all(col[5:, 3:] == 255)
    with pytest.raises(ValueError, match="1 titles for 2 panels"):
        hstack_panels([a, b], titles=["x"])
    with pytest.raises(ValueError, match="at least one panel"):
        vstack_panels([])


def test_legend_and_text_panel():
    leg = legend([("grade 3", GRADE_COLOURS[3]), ("ref", REFERENCE_COLOUR)])
    assert leg.dtype == np.uint8
    assert np.any(np.all(leg == GRADE_COLOURS[3], axis=-1))
    assert np.any(np.all(leg == REFERENCE_COLOUR, axis=-1))
    one = text_panel(["short"], width=200)
    wrapped = text_panel(["a long line of words " * 6], width=120)
    assert one.shape[1] == 200 and wrapped.shape[0] > one.shape[0]
    assert np.any(one != 255)
    with pytest.raises(ValueError, match="width"):
        text_panel(["x"], width=0)
