"""Pipeline fixtures: moving-blob frames, a ground-truth box detector, a tiny real I3D.

The box detector is a test double for the detector stage only: it returns the
known lesion box of each frame, so the clip, tracking and aggregation rules can
be checked exactly (the real detector is exercised in tests/detector and in the
end-to-end test).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from sonorisk.detector.interface import as_frames
from sonorisk.records import Box, Detection, Frame


@dataclass
class BoxDetector:
    """Returns ``boxes[frame_index]`` (a list of boxes) for each frame asked."""

    boxes: dict[int, list[Box]]
    calls: list[list[int]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=lambda: {"kind": "ground-truth boxes (test)"})

    def predict(
        self, frames: Sequence[Any], frame_indices: Sequence[int] | None = None
    ) -> list[list[Detection]]:
        indices = [f.index for f in as_frames(frames, frame_indices)]
        self.calls.append(indices)
        return [[Detection(i, b, 0.95) for b in self.boxes.get(i, [])] for i in indices]


def blob_video(
    n_frames: int, visible: Sequence[int], size: int = 96, seed: int = 0
) -> tuple[list[Frame], dict[int, list[Box]]]:
    """Gray speckle frames with a bright disc drifting right on ``visible`` frames."""
    rng = np.random.default_rng(seed)
    frames, boxes = [], {}
    shown = set(visible)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n_frames):
        image = rng.integers(20, 60, size=(size, size), dtype=np.uint8)
        if i in shown:
            cx, cy, r = 30 + 0.3 * i, size / 2, 10
            image[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = 220
            boxes[i] = [(cx - r, cy - r, cx + r, cy + r)]
        frames.append(Frame(i, i / 30.0, image))
    return frames, boxes


@pytest.fixture(scope="session")
def tiny_i3d():
    import torch

    from sonorisk.video_classifier.config import ClassifierConfig
    from sonorisk.video_classifier.registry import build_classifier

    torch.manual_seed(0)
    cfg = ClassifierConfig()
    cfg.clips.crop_size = 32
    cfg.model.i3d.width = 8
    return build_classifier(cfg)


@dataclass
class BrightBlobDetector:
    """A real (if simple) detector: connected components of very bright pixels.

    It works in whatever pixels it is shown, so it tells whether the pipeline
    maps boxes from the detector's view (e.g. a scan-region crop) back to the
    source frame correctly.
    """

    threshold: int = 200
    min_area: int = 30
    seen_shapes: list[tuple[int, ...]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=lambda: {"kind": "bright-blob (test)"})

    def predict(
        self, frames: Sequence[Any], frame_indices: Sequence[int] | None = None
    ) -> list[list[Detection]]:
        import cv2

        out = []
        for frame in as_frames(frames, frame_indices):
            index, image = frame.index, frame.image
            gray = image if image.ndim == 2 else image.max(axis=2)
            self.seen_shapes.append(gray.shape)
            n, _, stats, _ = cv2.connectedComponentsWithStats(
                (gray >= self.threshold).astype(np.uint8)
            )
            dets = [
                Detection(index, (float(x), float(y), float(x + w), float(y + h)), 0.9)
                for x, y, w, h, area in stats[1:n]
                if area >= self.min_area
            ]
            out.append(dets)
        return out
