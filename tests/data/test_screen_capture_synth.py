"""Sweeps rendered into a 1920x1080 scanner-like screen: boxes in canvas coordinates."""

from __future__ import annotations

import pytest

from sonorisk.data import load_dataset, validate_dataset
from sonorisk.data.synth import synthesize_from_stills


@pytest.mark.parametrize("shape", ["linear", "convex"])
def test_screen_capture_boxes_on_the_canvas(busi_dir, tmp_path, shape):
    frames_seen = {}

    def keep(video_id, frame):
        frames_seen.setdefault(video_id, []).append(frame)

    root = synthesize_from_stills(
        busi_dir,
        1,
        tmp_path / shape,
        seed=4,
        frames=12,
        size=(240, 180),
        screen_capture=shape,
        labels=["malignant"],
        on_frame=keep,
    )
    assert validate_dataset(root, probe=True) == []
    dataset = load_dataset(root)
    record = dataset.videos[0]
    assert (record.width, record.height) == (1920, 1080)
    ((video_id, rendered),) = frames_seen.items()
    boxed = 0
    for annotation, image in dataset.iter_images(video_id, color="gray"):
        frame = rendered[annotation.frame_index]
        assert len(annotation.boxes) <= len(frame.boxes)
        for box, plain in zip(annotation.boxes, frame.boxes, strict=False):
            # The canvas box is the plain box scaled into the image region.
            scale_x = (box[2] - box[0]) / (plain[2] - plain[0])
            assert 1.5 < scale_x < 6.0
            x1, y1, x2, y2 = (int(v) for v in box)
            inside = image[y1:y2, x1:x2].astype(float)
            assert inside.size and inside.mean() > 5  # ultrasound pixels, not the black UI
            boxed += 1
    assert boxed >= 3
