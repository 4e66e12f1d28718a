"""Keyframe mode: the detector runs on every k-th frame; boxes are carried between.

This is what makes CPU real time possible: with k = 5 the detector's cost is
paid on a fifth of the frames, and optical flow (a few milliseconds on a
shrunk gray frame) moves the tracked boxes in between. k = 1 runs the detector
on every frame (the paper's setting).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from sonorisk.detector.interface import FrameDetector
from sonorisk.records import Box, Detection, Frame
from sonorisk.tracking.config import TrackingConfig
from sonorisk.tracking.lesion_tracker import LesionTrack, LesionTracker, TrackerUpdate
from sonorisk.tracking.propagate import propagate_boxes, to_gray_small

# Live schedule: how many recent frames are kept to carry a late detection
# forward (3 s at 30 fps). A detection older than this is dropped (counted),
# and boxes carried this long without a detection are let go: flow alone must
# not keep a box alive when the detector has fallen that far behind.
LIVE_FLOW_FRAMES = 90
# Frames a late answer is carried forward per frame tracked: bounds what one
# frame can cost (about 1.5 ms of flow a step) while the answer catches up.
LIVE_FORWARD_STEPS = 6


@dataclass
class _Pending:
    """A detector answer on its way from the frame it was found on to the present."""

    found_on: int
    at: int  # the frame its boxes have been carried to so far
    detections: list[Detection]
    boxes: list[Box]


@dataclass
class KeyframeStats:
    frames: int = 0
    detector_frames: int = 0
    propagated_frames: int = 0
    detections: list[int] = field(default_factory=list)  # per frame, for diagnostics
    # Live schedule: detections applied frames after the frame they were found
    # on (the largest delay), and those too old to carry forward.
    max_delay_frames: int = 0
    late_dropped: int = 0


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
        # Live schedule: the recent frames, shrunk and gray, with their scale
        # (to carry a late detection forward); None without flow.
        self._grays: OrderedDict[int, tuple[np.ndarray | None, float]] = OrderedDict()
        self._last_detected: int | None = None  # live: the frame boxes were last detected on
        self._pending: _Pending | None = None  # live: an answer being carried forward

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
            boxes = _flow(self._prev_gray, gray, [d.box for d in self._carry], scale)
            carried = _moved(self._carry, boxes, frame)
            update = self.tracker.update(frame.index, carried, propagated=True)
            self._carry = carried
            self.stats.propagated_frames += 1
            self._since_key += 1
        self._prev_gray, self._prev_scale = gray, scale
        self.stats.frames += 1
        self.stats.detections.append(len(update.active))
        return update

    def process_live(
        self, frame: Frame, arrived: tuple[int, list[Detection]] | None = None
    ) -> TrackerUpdate:
        """Track one frame at once, never waiting for the detector (the pipeline's
        ``when_free`` schedule).

        Every frame's boxes are the previous frame's, moved by optical flow.
        ``arrived``: detections the detector found on an earlier frame ``k``
        and returned just now. Their boxes are carried forward from ``k``
        through the frames since (kept, shrunk and gray), at most
        ``LIVE_FORWARD_STEPS`` frames per call so that no frame waits long for
        a late answer; on the call that reaches the present, that frame is a
        keyframe for the tracker. A newer answer replaces one still being
        carried forward; one older than the frames kept (``LIVE_FLOW_FRAMES``)
        is dropped. Both are counted (``late_dropped``)."""
        cfg = self.config
        use_flow = cfg.propagation == "flow"
        gray, scale = to_gray_small(frame.image, cfg.flow_max_side) if use_flow else (None, 1.0)
        self._grays[frame.index] = (gray, scale)
        while len(self._grays) > LIVE_FLOW_FRAMES:
            self._grays.popitem(last=False)
        if arrived is not None:
            if self._pending is not None:
                self.stats.late_dropped += 1  # superseded by a newer answer
            k, detections = arrived
            self._pending = _Pending(k, k, detections, [d.box for d in detections])
        forwarded = self._advance(frame) if self._pending is not None else None
        if forwarded is not None:
            update = self.tracker.update(frame.index, forwarded)
            self._carry = forwarded
            self.stats.detector_frames += 1
        else:
            if (
                self._last_detected is not None
                and frame.index - self._last_detected > LIVE_FLOW_FRAMES
            ):
                self._carry = []
            boxes = _flow(self._prev_gray, gray, [d.box for d in self._carry], scale)
            self._carry = _moved(self._carry, boxes, frame)
            update = self.tracker.update(frame.index, self._carry, propagated=True)
            self.stats.propagated_frames += 1
        self._prev_gray, self._prev_scale = gray, scale
        self.stats.frames += 1
        self.stats.detections.append(len(update.active))
        return update

    def _advance(self, frame: Frame) -> list[Detection] | None:
        """Carry the pending answer up to ``LIVE_FORWARD_STEPS`` frames forward;
        its detections on ``frame`` once it gets there, else None."""
        pending = self._pending
        assert pending is not None
        if pending.at not in self._grays:
            self.stats.late_dropped += 1  # older than the frames kept
            self._pending = None
            return None
        previous = self._grays[pending.at][0]
        steps = 0
        for index, (gray, scale) in self._grays.items():
            if index <= pending.at:
                continue
            if steps == LIVE_FORWARD_STEPS:
                return None  # more on the next frame
            pending.boxes = _flow(previous, gray, pending.boxes, scale)
            pending.at, previous = index, gray
            steps += 1
        self._pending = None
        self._last_detected = pending.found_on
        self.stats.max_delay_frames = max(
            self.stats.max_delay_frames, frame.index - pending.found_on
        )
        return _moved(pending.detections, pending.boxes, frame)

    def finish(self) -> list[LesionTrack]:
        return self.tracker.finish()


def _flow(
    prev: np.ndarray | None, gray: np.ndarray | None, boxes: list[Box], scale: float
) -> list[Box]:
    """Boxes moved from frame ``prev`` to ``gray`` (held where flow cannot run)."""
    if prev is None or gray is None or prev.shape != gray.shape or not boxes:
        return boxes
    return propagate_boxes(prev, gray, boxes, scale)


def _moved(detections: list[Detection], boxes: list[Box], frame: Frame) -> list[Detection]:
    """``detections`` at their new ``boxes`` on ``frame``; those carried off it are gone."""
    out = []
    for det, box in zip(detections, boxes, strict=True):
        clipped = _clip(box, frame.width, frame.height)
        if clipped is not None:
            out.append(Detection(frame.index, clipped, det.score, det.label))
    return out


def _clip(
    box: tuple[float, float, float, float], width: int, height: int
) -> tuple[float, float, float, float] | None:
    x1, y1 = min(max(box[0], 0.0), width), min(max(box[1], 0.0), height)
    x2, y2 = min(max(box[2], 0.0), width), min(max(box[3], 0.0), height)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None  # carried off screen: the lesion left the field of view
    return (x1, y1, x2, y2)
