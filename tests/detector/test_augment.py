from __future__ import annotations

import numpy as np
import pytest

from sonorisk.detector.augment import augment, gain_contrast_gamma, hflip, rescale, speckle
from sonorisk.detector.config import AugmentConfig


def test_hflip_mirrors_boxes():
    img = np.zeros((50, 100, 1), np.uint8)
    img[:, :10] = 255
    out, boxes = hflip(img, np.array([[10.0, 5.0, 30.0, 25.0]], np.float32))
    assert out[:, -10:].min() == 255 and out[:, :10].max() == 0
    assert boxes.tolist() == [[70.0, 5.0, 90.0, 25.0]]


def test_rescale_scales_boxes_with_the_image():
    img = np.zeros((40, 80, 3), np.uint8)
    out, boxes = rescale(img, np.array([[8.0, 4.0, 16.0, 20.0]], np.float32), 1.5)
    assert out.shape == (60, 120, 3)
    assert boxes[0].tolist() == pytest.approx([12.0, 6.0, 24.0, 30.0])


def test_intensity_transforms_stay_uint8_and_change_pixels():
    rng = np.random.default_rng(0)
    img = rng.integers(20, 200, (30, 30, 1), dtype=np.uint8)
    brighter = gain_contrast_gamma(img, 1.3, 1.0, 1.0)
    assert brighter.dtype == np.uint8 and brighter.mean() > img.mean()
    noisy = speckle(img, 0.3, rng)
    assert noisy.dtype == np.uint8 and not np.array_equal(noisy, img)


def test_augment_keeps_boxes_inside_and_is_seeded():
    img = np.random.default_rng(1).integers(0, 255, (120, 160), dtype=np.uint8)
    boxes = np.array([[0.0, 0.0, 40.0, 30.0], [100.0, 60.0, 160.0, 120.0]], np.float32)
    cfg = AugmentConfig(scale_range=(0.5, 1.5), speckle_p=1.0, blur_p=1.0)
    a = augment(img, boxes, cfg, np.random.default_rng(7))
    b = augment(img, boxes, cfg, np.random.default_rng(7))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    for seed in range(20):
        out, out_boxes = augment(img, boxes, cfg, np.random.default_rng(seed))
        h, w = out.shape[:2]
        assert out.dtype == np.uint8 and out.ndim == 3
        assert np.isfinite(out_boxes).all()
        assert (out_boxes[:, [0, 2]] >= 0).all() and (out_boxes[:, [0, 2]] <= w).all()
        assert (out_boxes[:, [1, 3]] >= 0).all() and (out_boxes[:, [1, 3]] <= h).all()
        assert len(out_boxes) == 2


def test_augment_handles_lesion_free_images():
    img = np.zeros((64, 64, 3), np.uint8)
    out, boxes = augment(img, np.zeros((0, 4)), AugmentConfig(), np.random.default_rng(0))
    assert boxes.shape == (0, 4)


IDENTITY = dict(
    hflip_p=0.0,
    scale_range=(1.0, 1.0),
    gain_range=(1.0, 1.0),
    contrast_range=(1.0, 1.0),
    gamma_range=(1.0, 1.0),
    speckle_p=0.0,
    blur_p=0.0,
)


def test_augment_draws_calipers_somewhere_and_keeps_the_boxes():
    img = np.full((120, 160), 80, np.uint8)
    boxes = np.array([[20.0, 30.0, 60.0, 70.0]], np.float32)
    plain, plain_boxes = augment(img, boxes, AugmentConfig(**IDENTITY), np.random.default_rng(3))
    assert np.array_equal(plain[:, :, 0], img)
    drawn = 0
    for seed in range(10):
        cfg = AugmentConfig(**IDENTITY, calipers_p=1.0)
        out, out_boxes = augment(img, boxes, cfg, np.random.default_rng(seed))
        assert np.array_equal(out_boxes, plain_boxes)  # calipers are not a lesion
        marks = np.argwhere(out[:, :, 0] == 255)
        assert len(marks) >= 4 * 7  # at least four "+" marks (arm >= 3: 7 pixels a stroke)
        # every changed pixel is a caliper's, nothing else moved
        changed = out[:, :, 0] != img
        assert set(np.unique(out[:, :, 0][changed])) <= {230, 255}
        drawn += 1
    assert drawn == 10


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("calipers_p", 1.5),
        ("hflip_p", -0.1),
        ("blur_p", 2.0),
        ("scale_range", (1.2, 0.8)),
        ("gamma_range", (0.0, 1.2)),
        ("speckle_sigma", -0.5),
    ],
)
def test_augment_settings_out_of_range_are_refused_by_name(field, value):
    from sonorisk.errors import ConfigError

    with pytest.raises(ConfigError, match=f"train.augment.{field}"):
        AugmentConfig(**{field: value})
    AugmentConfig()  # the defaults pass
