"""The real torchvision detector (tiny, barely trained) driving the keyframe tracker."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sonorisk.detector.config import InferenceConfig
from sonorisk.detector.predictor import TorchvisionDetector
from sonorisk.tracking import KeyframeTracker, TrackingConfig


def test_torchvision_detector_drives_keyframe_tracker(trained_dir: Path, phantom_dir: Path):
    from sonorisk.data import load_dataset
    from sonorisk.records import Frame

    ds = load_dataset(phantom_dir)
    vid = ds.video_ids[0]
    frames = [Frame(a.frame_index, a.frame_index / 30, img) for a, img in ds.iter_images(vid)][:12]
    # Threshold 0 so the junk weights produce boxes for the tracker to link.
    det = TorchvisionDetector.from_checkpoint(
        trained_dir / "last.pt", InferenceConfig(score_thresh=0.0)
    )
    runner = KeyframeTracker(
        det,
        TrackingConfig(
            keyframe_interval=3,
            min_track_length=1,
            track_activation_threshold=0.0,
            high_conf_det_threshold=0.0,
        ),
    )
    live = []
    for frame in frames:
        live += runner.process(frame).active
    tracks = runner.finish()
    assert runner.stats.detector_frames == 4 and runner.stats.propagated_frames == 8
    assert live and tracks
    h, w = frames[0].height, frames[0].width
    for track in tracks:
        for d in track.track.detections:
            assert np.isfinite(d.box).all()
            assert 0 <= d.box[0] < d.box[2] <= w and 0 <= d.box[1] < d.box[3] <= h
