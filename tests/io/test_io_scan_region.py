"""Scan-region crop: synthetic screen captures (known region) and the real clips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sonorisk.data.screen_capture import make_layout, render
from sonorisk.io import open_video
from sonorisk.io.scan_region import RegionCropper, estimate_scan_region
from sonorisk.io.writer import write_video

from .conftest import REAL_VIDEO_NAMES  # noqa: TID252


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def busi_sweep(image: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A probe sweep over a still: a window sliding across it, with fresh noise."""
    h, w = image.shape[:2]
    cw, ch = int(w * 0.8), int(h * 0.85)
    out = []
    for i in range(n):
        x = int((w - cw) * i / (n - 1))
        y = int((h - ch) / 2 + 3 * np.sin(i / 3))
        crop = image[y : y + ch, x : x + cw].astype(np.float32)
        out.append(np.clip(crop + rng.normal(0, 3, crop.shape), 0, 255).astype(np.uint8))
    return out


def _busi_images(busi_dir, count: int, seed: int) -> list[np.ndarray]:
    names = sorted(p for p in (busi_dir / "benign").glob("*.png") if "_mask" not in p.name)
    names += sorted(p for p in (busi_dir / "malignant").glob("*.png") if "_mask" not in p.name)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(names), size=count, replace=False)
    return [cv2.imread(str(names[i]), cv2.IMREAD_GRAYSCALE) for i in picks]


@pytest.mark.parametrize("shape", ["linear", "convex"])
def test_region_found_on_synthetic_screen_captures(busi_dir, shape):
    rng = np.random.default_rng(7 if shape == "linear" else 8)
    ious = []
    for image in _busi_images(busi_dir, 4, seed=len(shape)):
        frames = busi_sweep(image, 12, rng)
        layout = make_layout(frames[0].shape, rng, shape=shape)
        screens = []
        for i, frame in enumerate(frames):
            screen = render(frame, layout)
            # Interface text that changes every frame (cine counter, clock).
            cv2.putText(
                screen,
                f"Frame {i + 1}/300  00:00:{i:02d}",
                (40, 1040),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.8,
                (230, 230, 230),
                2,
            )
            screens.append(screen)
        region = estimate_scan_region(screens)
        assert region.kind == shape
        ious.append(iou(region.box, layout.region))
        mask_iou = (region.mask & layout.mask).sum() / (region.mask | layout.mask).sum()
        assert mask_iou >= 0.9, mask_iou
    assert min(ious) >= 0.9, ious


def test_region_through_an_encoded_video_and_cropper(busi_dir, tmp_path):
    """Screen capture -> MJPEG AVI -> decode -> RegionCropper: crops match the layout."""
    rng = np.random.default_rng(3)
    image = _busi_images(busi_dir, 1, seed=5)[0]
    frames = busi_sweep(image, 20, rng)
    layout = make_layout(frames[0].shape, rng, shape="linear", calipers=True, color_bar=True)
    path = tmp_path / "screen.avi"
    write_video(path, (render(f, layout) for f in frames), 30.0, "mjpeg")
    with open_video(path) as src:
        cropper = RegionCropper(src)  # the sampling `score` uses
        crops = list(cropper)
    region = cropper.region
    assert region is not None and region.kind == "linear"
    assert iou(region.box, layout.region) >= 0.9
    assert len(crops) == 20
    assert all(c.image.shape[:2] == (region.height, region.width) for c in crops)
    # Boxes in crop coordinates map back into the frame.
    assert region.to_frame_coords((0, 0, 10, 10))[:2] == region.box[:2]
    # The crop holds the ultrasound image: it correlates with the source frame.
    x1, y1, x2, y2 = layout.region
    shown = cv2.resize(frames[5], (x2 - x1, y2 - y1))
    cx1, cy1, cx2, cy2 = region.box
    ov = (max(x1, cx1), max(y1, cy1), min(x2, cx2), min(y2, cy2))
    got = crops[5].image[ov[1] - cy1 : ov[3] - cy1, ov[0] - cx1 : ov[2] - cx1, 0]
    want = shown[ov[1] - y1 : ov[3] - y1, ov[0] - x1 : ov[2] - x1]
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.95


@pytest.mark.parametrize("name", REAL_VIDEO_NAMES)
def test_region_on_real_clips_is_sensible(real_videos_dir, name):
    with open_video(real_videos_dir / name, color="gray") as src:
        frames = [f.image for f in src]
    sample = frames[:: max(1, len(frames) // 24)][:24]
    region = estimate_scan_region(sample)
    h, w = frames[0].shape
    x1, y1, x2, y2 = region.box
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    # These clips are already cropped: the image fills most of the frame.
    assert region.width * region.height >= 0.6 * w * h
    # The region covers the bright, moving image area.
    stack = np.stack(sample).astype(np.float32)
    active = (stack.std(axis=0) > 5) & (stack.mean(axis=0) > 20)
    assert active.sum() > 0.2 * w * h
    assert region.mask[active].mean() >= 0.97
    # And leaves out what is black in every frame (outside a fan).
    dark = stack.max(axis=0) < 3
    if dark.sum() > 0.02 * w * h:
        assert region.mask[dark].mean() < 0.5
    if name.startswith("Cov_convex"):
        assert region.kind == "convex"  # the README's fan


def test_crop_refuses_other_frame_sizes():
    region = estimate_scan_region([np.zeros((60, 80), np.uint8)] * 2)
    with pytest.raises(ValueError, match="80x60"):
        region.crop(np.zeros((50, 50), np.uint8))


def test_the_sampler_keeps_the_first_frames_and_refuses_a_size_change():
    from sonorisk.errors import InputError
    from sonorisk.io.scan_region import RegionSampler, crop_region

    sampler = RegionSampler(3)
    frames = [np.full((60, 80), i, np.uint8) for i in range(5)]
    assert [sampler.add(f) for f in frames] == [False, False, True, True, True]
    region = sampler.estimate()
    assert region.frames_used == 3  # the first three, not the later ones
    assert crop_region(region) is None  # nothing stands out: the whole frame, no crop
    mixed = RegionSampler(2)
    mixed.add(np.zeros((60, 80), np.uint8))
    mixed.add(np.zeros((40, 80), np.uint8))
    with pytest.raises(InputError, match="frame size changes"):
        mixed.estimate()
