from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from sonorisk.detector.reference import ReferenceDetector
from sonorisk.records import Frame
from sonorisk.tracking import KeyframeTracker, TrackingConfig, track_video
from sonorisk.tracking.postprocess import box_iou
from sonorisk.tracking.propagate import propagate_box, to_gray_small


def speckle_image(rng: np.random.Generator, h: int = 200, w: int = 260) -> np.ndarray:
    img = rng.rayleigh(60.0, (h, w)).clip(0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (0, 0), 1.0)


def test_propagate_box_follows_a_shift():
    rng = np.random.default_rng(0)
    big = speckle_image(rng, 260, 320)
    prev, nxt = big[20:220, 20:280], big[16:216, 13:273]  # content moves by (+7, +4)
    box = (60.0, 50.0, 140.0, 120.0)
    moved = propagate_box(prev, nxt, box)
    assert moved == pytest.approx((67.0, 54.0, 147.0, 124.0), abs=1.0)


def test_propagate_box_in_shrunk_coordinates():
    rng = np.random.default_rng(1)
    big = speckle_image(rng, 500, 700)
    prev_full, next_full = big[40:440, 40:640], big[30:430, 20:620]  # shift (+20, +10)
    prev, scale = to_gray_small(prev_full, 300)
    nxt, _ = to_gray_small(next_full, 300)
    assert scale == pytest.approx(0.5)
    moved = propagate_box(prev, nxt, (200.0, 150.0, 320.0, 260.0), scale)
    assert moved == pytest.approx((220.0, 160.0, 340.0, 270.0), abs=3.0)


def test_propagate_box_holds_on_a_textureless_frame():
    flat = np.full((100, 100), 90, np.uint8)
    assert propagate_box(flat, flat, (10.0, 10.0, 50.0, 50.0)) == (10.0, 10.0, 50.0, 50.0)


def _frames(phantom_dir: Path, video_id: str) -> tuple[list[Frame], dict]:
    from sonorisk.data import load_dataset

    ds = load_dataset(phantom_dir)
    frames = [
        Frame(a.frame_index, a.frame_index / 30.0, img) for a, img in ds.iter_images(video_id)
    ]
    return frames, ds.boxes_for(video_id)


def _mean_iou(tracks: list, gt: dict) -> float:
    boxes = {d.frame_index: d.box for t in tracks for d in t.track.detections}
    visible = [i for i, b in gt.items() if b]
    return float(np.mean([box_iou(boxes[i], gt[i][0]) if i in boxes else 0.0 for i in visible]))


def test_keyframe_mode_runs_detector_on_every_kth_frame_and_flow_beats_hold(
    phantom_dir: Path, sweeps: list
):
    sweep = max(sweeps, key=lambda s: len(s.visible))
    frames, gt = _frames(phantom_dir, sweep.video_id)
    results = {}
    for propagation in ("flow", "hold"):
        detector = ReferenceDetector(gt)
        runner = KeyframeTracker(
            detector, TrackingConfig(keyframe_interval=5, propagation=propagation)
        )
        finished = []
        for frame in frames:
            finished += runner.process(frame).finished
        finished += runner.finish()
        assert detector.frames_seen == len(range(0, len(frames), 5))
        assert runner.stats.propagated_frames == len(frames) - detector.frames_seen
        assert len(finished) == 1  # one lesion, one track
        assert finished[0].propagated_frames  # carried frames are marked as such
        results[propagation] = _mean_iou(finished, gt)
    assert results["flow"] >= 0.8
    assert results["flow"] > results["hold"]


def test_every_frame_mode_and_offline_wrapper(phantom_dir: Path, sweeps: list):
    sweep = sweeps[0]
    frames, gt = _frames(phantom_dir, sweep.video_id)
    detector = ReferenceDetector(gt)
    tracks = track_video(frames, detector, TrackingConfig(keyframe_interval=1))
    assert detector.frames_seen == len(frames)
    if sweep.visible:
        assert len(tracks) == 1
        assert _mean_iou(tracks, gt) == pytest.approx(1.0)
    else:
        assert tracks == []


def test_caller_supplied_keyframe_detections(phantom_dir: Path, sweeps: list):
    """The pipeline batches keyframes through the detector itself and hands the
    boxes in; the tracker then must not call the detector again."""
    sweep = max(sweeps, key=lambda s: len(s.visible))
    frames, gt = _frames(phantom_dir, sweep.video_id)
    detector = ReferenceDetector(gt)
    runner = KeyframeTracker(detector, TrackingConfig(keyframe_interval=4))
    supplied = ReferenceDetector(gt)
    finished = []
    for frame in frames:
        given = supplied.predict([frame])[0] if frame.index % 4 == 0 else None
        finished += runner.process(frame, detections=given).finished
    finished += runner.finish()
    assert detector.calls == 0
    assert runner.stats.detector_frames == len(range(0, len(frames), 4))
    assert len(finished) == 1 and _mean_iou(finished, gt) > 0.8
