"""Whole-video conveniences on top of the incremental trackers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sonorisk.detector.interface import FrameDetector
from sonorisk.records import Detection, Frame
from sonorisk.tracking.config import TrackingConfig
from sonorisk.tracking.keyframe import KeyframeTracker
from sonorisk.tracking.lesion_tracker import LesionTrack, LesionTracker


def track_detections(
    per_frame: Mapping[int, Sequence[Detection]],
    n_frames: int,
    config: TrackingConfig | None = None,
) -> list[LesionTrack]:
    """Link precomputed detections (frame index -> detections) of a whole video."""
    tracker = LesionTracker(config)
    finished: list[LesionTrack] = []
    for index in range(n_frames):
        finished += tracker.update(index, list(per_frame.get(index, ()))).finished
    finished += tracker.finish()
    return sorted(finished, key=lambda t: t.track_id)


def track_video(
    frames: Iterable[Frame], detector: FrameDetector, config: TrackingConfig | None = None
) -> list[LesionTrack]:
    """Detect (every k-th frame, per config) and track a whole video."""
    runner = KeyframeTracker(detector, config)
    finished: list[LesionTrack] = []
    for frame in frames:
        finished += runner.process(frame).finished
    finished += runner.finish()
    return sorted(finished, key=lambda t: t.track_id)
