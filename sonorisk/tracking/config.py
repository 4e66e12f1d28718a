"""Tracking configuration (``tracking:`` section of a pipeline/detector YAML)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class TrackingConfig:
    # ByteTrack (roboflow ``trackers``) association.
    lost_track_buffer: int = 30  # frames a lost track waits for its lesion (at frame_rate)
    frame_rate: float = 30.0
    track_activation_threshold: float = 0.5  # min score to start a track
    high_conf_det_threshold: float = 0.5  # ByteTrack's first-stage split
    minimum_iou_threshold: float = 0.1
    # A track needs this many consecutive detections before it gets an id:
    # one-frame flicker never becomes a lesion.
    minimum_consecutive_frames: int = 2
    # Finished tracks with fewer observed (detector) frames are dropped.
    min_track_length: int = 3
    # Gaps of at most this many frames inside a track are filled by linear
    # interpolation of the boxes on either side.
    max_gap: int = 15
    # Fragment merging: a new track that starts within ``merge_max_gap`` frames
    # of another track's end, overlapping its last box by ``merge_min_iou`` (or
    # centred within ``merge_center_dist`` box-diagonals), continues that lesion.
    merge_max_gap: int = 45
    merge_min_iou: float = 0.2
    merge_center_dist: float = 0.5
    # Keyframe mode: run the detector on every k-th frame and carry boxes in
    # between (``flow``: pyramidal Lucas-Kanade optical flow; ``hold``: keep).
    keyframe_interval: int = 1
    propagation: Literal["flow", "hold"] = "flow"
    flow_max_side: int = 320  # frames are shrunk to this for optical flow (speed)
