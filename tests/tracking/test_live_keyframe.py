"""The live schedule's tracker: every frame tracked at once, late detections
carried forward by optical flow, bounded work per frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sonorisk.records import Detection, Frame
from sonorisk.tracking import KeyframeTracker, TrackingConfig
from sonorisk.tracking import keyframe as kf
from sonorisk.tracking.propagate import propagate_boxes, to_gray_small


def panning(n: int, dx: int = 3, h: int = 160, w: int = 220) -> tuple[list[Frame], int]:
    """Speckle that moves ``dx`` px right per frame, with a bright disc in it."""
    rng = np.random.default_rng(4)
    width = w + dx * n + 40
    big = cv2.GaussianBlur(rng.rayleigh(55.0, (h, width)).clip(0, 255).astype(np.uint8), (0, 0), 1)
    cv2.circle(big, (width - w // 2 - 20, h // 2), 18, 230, -1)
    frames = []
    for i in range(n):
        x0 = width - w - dx * i  # the view slides left: content moves right
        frames.append(Frame(i, i / 30.0, np.ascontiguousarray(big[:, x0 : x0 + w])))
    return frames, dx


def disc_box(frame: Frame) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(frame.image > 215)
    return (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))


def tracker() -> KeyframeTracker:
    return KeyframeTracker(detector=None, config=TrackingConfig(frame_rate=30.0))  # type: ignore[arg-type]


def test_a_late_detection_is_carried_to_the_frame_it_arrives_on() -> None:
    frames, _ = panning(12)
    live = tracker()
    found_on = 2
    detection = Detection(found_on, disc_box(frames[found_on]), 0.9)
    applied = None
    for frame in frames[:10]:
        arrived = (found_on, [detection]) if frame.index == 7 else None
        update = live.process_live(frame, arrived)
        if live.stats.detector_frames and applied is None:
            applied = frame.index
            carried = live._carry[0].box
    assert applied == 7  # 5 frames late: within one call's forward budget
    # The box followed the content from frame 2 to frame 7 (15 px to the right).
    assert carried == pytest.approx(disc_box(frames[7]), abs=2.5)
    assert live.stats.max_delay_frames == 5
    assert update.frame_index == 9


def test_forwarding_a_very_late_answer_is_spread_over_frames(monkeypatch) -> None:
    monkeypatch.setattr(kf, "LIVE_FORWARD_STEPS", 3)
    frames, _ = panning(30)
    live = tracker()
    detection = Detection(1, disc_box(frames[1]), 0.9)
    keyframes = []
    for frame in frames[:20]:
        before = live.stats.detector_frames
        live.process_live(frame, (1, [detection]) if frame.index == 10 else None)
        if live.stats.detector_frames > before:
            keyframes.append(frame.index)
            carried = live._carry[0].box
    # Arriving 9 frames behind, 3 steps a frame: at frames 4, 7 and 10 after
    # frames 10, 11 and 12, and at the present on frame 13.
    assert keyframes == [13]
    assert carried == pytest.approx(disc_box(frames[13]), abs=3.0)
    assert live.stats.max_delay_frames == 12


def test_answers_too_old_or_overtaken_are_dropped_and_counted(monkeypatch) -> None:
    monkeypatch.setattr(kf, "LIVE_FLOW_FRAMES", 5)
    frames, _ = panning(20)
    live = tracker()
    old = Detection(0, disc_box(frames[0]), 0.9)
    for frame in frames[:8]:
        live.process_live(frame, (0, [old]) if frame.index == 7 else None)
    assert live.stats.late_dropped == 1 and live.stats.detector_frames == 0

    monkeypatch.setattr(kf, "LIVE_FORWARD_STEPS", 2)
    first, second = Detection(8, disc_box(frames[8]), 0.9), Detection(10, disc_box(frames[10]), 0.9)
    for frame in frames[8:14]:
        arrived = {11: (8, [first]), 12: (10, [second])}.get(frame.index)
        live.process_live(frame, arrived)
    # The answer for frame 8 was still on its way when the one for frame 10 came.
    assert live.stats.late_dropped == 2
    assert live.stats.detector_frames == 1


def test_carried_boxes_are_let_go_when_the_detector_falls_far_behind(monkeypatch) -> None:
    monkeypatch.setattr(kf, "LIVE_FLOW_FRAMES", 6)
    frames, _ = panning(20)
    live = tracker()
    live.process_live(frames[0], None)
    live.process_live(frames[1], (0, [Detection(0, disc_box(frames[0]), 0.9)]))
    assert live._carry
    for frame in frames[2:7]:
        live.process_live(frame, None)
    assert live._carry  # 6 frames since the detection: still carried
    live.process_live(frames[7], None)
    assert live._carry == []  # 7 frames: let go


def test_flow_around_boxes_follows_the_content() -> None:
    frames, dx = panning(3, dx=5)
    (prev, scale), (nxt, _) = (to_gray_small(f.image, 320) for f in frames[:2])
    box = disc_box(frames[0])
    moved = propagate_boxes(prev, nxt, [box, (5.0, 5.0, 40.0, 40.0)], scale)
    assert moved[0] == pytest.approx((box[0] + dx, box[1], box[2] + dx, box[3]), abs=1.0)
    assert moved[1] == pytest.approx((5.0 + dx, 5.0, 40.0 + dx, 40.0), abs=1.0)
