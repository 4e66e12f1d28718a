"""Keyframe mode: the detector runs on every k-th frame; boxes are carried between.

This is what makes CPU real time possible: with k = 5 the detector's cost is
paid on a fifth of the frames, and optical flow (a few milliseconds on a
shrunk gray frame) moves the tracked boxes in between. k = 1 runs the detector
on every frame (the paper's setting).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sonorisk.detector.interface import FrameDetector
from sonorisk.records import Detection, Frame
from sonorisk.tracking.config import TrackingConfig
from sonorisk.tracking.lesion_tracker import LesionTrack, LesionTracker, TrackerUpdate
from sonorisk.tracking.propagate import propagate_boxes, to_gray_small


@dataclass
class KeyframeStats:
    frames: int = 0
    detector_frames: int = 0
    propagated_frames: int = 0
    detections: list[int] = field(default_factory=list)  # per frame, for diagnostics


class KeyframeTracker:
    """Frames in one at a time; detector on keyframes, propagation between; tracks out."""

    def __init__(self, detector: FrameDetector, config: TrackingConfig | None = None) -> None:
        self.detector = detector
        self.config = config or TrackingConfig()
        self.tracker = LesionTracker(self.config)
        self.stats = KeyframeStats()
        self._prev_gray: np.ndarray | None = None
        self._prev_scale = 1.0
        # Boxes fed to the tracker on the previous frame; carried to the next.
        # All of them, not only confirmed tracks: a lesion first seen on a
        # keyframe must be carried to be confirmed at all.
        self._carry: list[Detection] = []
        self._since_key = 0

    def _is_keyframe(self) -> bool:
        k = max(1, self.config.keyframe_interval)
        return self.stats.frames == 0 or self._since_key >= k

    def process(self, frame: Frame, detections: list[Detection] | None = None) -> TrackerUpdate:
        """Track one frame. ``detections``: this keyframe's boxes when the caller
        already ran the detector (the pipeline detects keyframes in batches)."""
        cfg = self.config
        need_flow = cfg.keyframe_interval > 1 and cfg.propagation == "flow"
        gray, scale = to_gray_small(frame.image, cfg.flow_max_side) if need_flow else (None, 1.0)
        if self._is_keyframe():
            if detections is None:
                detections = self.detector.predict([frame])[0]
            update = self.tracker.update(frame.index, detections)
            self._carry = detections
            self.stats.detector_frames += 1
            self._since_key = 1
        else:
            boxes = [d.box for d in self._carry]
            if (
                need_flow
                and self._prev_gray is not None
                and gray is not None
                and self._prev_gray.shape == gray.shape
            ):
                boxes = propagate_boxes(self._prev_gray, gray, boxes, scale)
            carried = []
            for det, box in zip(self._carry, boxes, strict=True):
                clipped = _clip(box, frame.width, frame.height)
                if clipped is not None:
                    carried.append(Detection(frame.index, clipped, det.score, det.label))
            update = self.tracker.update(frame.index, carried, propagated=True)
            self._carry = carried
            self.stats.propagated_frames += 1
            self._since_key += 1
        self._prev_gray, self._prev_scale = gray, scale
        self.stats.frames += 1
        self.stats.detections.append(len(update.active))
        return update

    def finish(self) -> list[LesionTrack]:
        return self.tracker.finish()


def _clip(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[float, float, float, float] | None:
    x1, y1 = min(max(box[0], 0.0), width), min(max(box[1], 0.0), height)
    x2, y2 = min(max(box[2], 0.0), width), min(max(box[3], 0.0), height)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None  # carried off screen: the lesion left the field of view
    return (x1, y1, x2, y2)
