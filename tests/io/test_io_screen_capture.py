"""The screen-capture renderer the sweep synthesizer uses."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sonorisk.data.screen_capture import make_layout, render, render_screen_capture


def _image(h: int = 300, w: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(30, 220, (h, w), dtype=np.uint8), (7, 7), 0)
    return img


@pytest.mark.parametrize("shape", ["linear", "convex"])
def test_deterministic_for_the_rng(shape):
    img = _image()
    a, la = render_screen_capture(img, np.random.default_rng(5), shape=shape)
    b, lb = render_screen_capture(img, np.random.default_rng(5), shape=shape)
    c, lc = render_screen_capture(img, np.random.default_rng(6), shape=shape)
    np.testing.assert_array_equal(a, b)
    assert la.region == lb.region and la.scale == lb.scale
    assert la.region != lc.region or not np.array_equal(a, c)


def test_linear_layout_places_the_image_and_maps_boxes():
    img = _image()
    layout = make_layout(img.shape, np.random.default_rng(1), shape="linear", calipers=False)
    out = render(img, layout)
    assert out.shape == (1080, 1920, 3) and out.dtype == np.uint8
    x1, y1, x2, y2 = layout.region
    assert 0 <= x1 < x2 <= 1920 and 0 <= y1 < y2 <= 1080
    shown = cv2.resize(img, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out[y1:y2, x1:x2, 0], shown)
    # Image corners map to the region corners; boxes map by scale + offset.
    mapped = layout.map_box((0, 0, img.shape[1], img.shape[0]))
    np.testing.assert_allclose(mapped, layout.region, atol=1.0)
    bx = layout.map_box((100, 50, 200, 150))
    assert bx[2] - bx[0] == pytest.approx(100 * layout.scale)
    pts = layout.map_points(np.array([[100, 50]]))
    np.testing.assert_allclose(pts[0], bx[:2])
    # The mask is exactly the region for a linear probe.
    assert layout.mask.sum() == (x2 - x1) * (y2 - y1)


def test_a_lesion_box_lands_on_the_lesion_in_the_canvas():
    img = np.full((240, 320), 60, np.uint8)
    img[100:140, 200:260] = 250  # a bright "lesion" at a known box
    out, layout = render_screen_capture(img, np.random.default_rng(2), calipers=False)
    x1, y1, x2, y2 = (round(v) for v in layout.map_box((200, 100, 260, 140)))
    inside = out[y1 + 2 : y2 - 2, x1 + 2 : x2 - 2, 0]
    assert inside.min() > 200
    ring = out[y1 - 8 : y1 - 4, x1:x2, 0]
    assert ring.max() < 100


def test_convex_fan_masks_the_image():
    img = np.full((300, 400), 200, np.uint8)
    layout = make_layout(img.shape, np.random.default_rng(3), shape="convex", calipers=False)
    out = render(img, layout)
    x1, y1, x2, y2 = layout.region
    window = layout.mask[y1:y2, x1:x2]
    # A fan: touches all sides of its box, misses the top corners.
    assert window[0].any() and window[-1].any() and window[:, 0].any() and window[:, -1].any()
    assert not window[0, 0] and not window[0, -1]
    assert 0.45 < window.mean() < 0.9
    assert not layout.mask[:y1].any() and not layout.mask[y2:].any()
    # Inside the fan the image shows; outside it, the backdrop.
    assert np.all(out[layout.mask][:, 0] == 200)
    corner = out[y1 : y1 + 5, x1 : x1 + 5]
    np.testing.assert_array_equal(corner, layout.background[y1 : y1 + 5, x1 : x1 + 5])


def test_layout_is_reused_identically_for_every_frame():
    layout = make_layout((300, 400), np.random.default_rng(4), shape="linear", calipers=True)
    a = render(_image(seed=1), layout)
    b = render(_image(seed=2), layout)
    outside = ~layout.mask
    np.testing.assert_array_equal(a[outside], b[outside])  # interface never moves
    assert not np.array_equal(a[layout.mask], b[layout.mask])
    # The interface is there: text, ruler, bars (many non-backdrop pixels).
    backdrop = layout.background[1070, 1910]
    assert (np.abs(a[outside].astype(int) - backdrop).sum(axis=1) > 60).sum() > 5000


def test_rgb_input_and_bad_input():
    rgb = np.dstack([_image(seed=s) for s in range(3)])
    out, layout = render_screen_capture(rgb, np.random.default_rng(0), calipers=False)
    x1, y1, x2, y2 = layout.region
    shown = cv2.resize(rgb, (x2 - x1, y2 - y1))
    np.testing.assert_array_equal(out[y1:y2, x1:x2], shown)
    with pytest.raises(ValueError, match="layout was made for"):
        render(_image(200, 200), layout)
    with pytest.raises(ValueError, match="uint8"):
        render(rgb.astype(np.float32), layout)
    with pytest.raises(ValueError, match="shape"):
        make_layout((10, 10), np.random.default_rng(0), shape="sector")  # type: ignore[arg-type]
