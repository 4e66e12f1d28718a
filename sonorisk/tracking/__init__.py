"""sonorisk.tracking: link per-frame lesion detections into lesion tracks.

``LesionTracker`` is incremental (frames in one at a time, as the live pipeline
needs); ``KeyframeTracker`` adds keyframe detection with optical-flow carry;
``track_detections`` / ``track_video`` wrap whole videos. See docs/detector.md.
"""

from sonorisk.tracking.config import TrackingConfig
from sonorisk.tracking.keyframe import KeyframeTracker
from sonorisk.tracking.lesion_tracker import LesionTrack, LesionTracker, TrackerUpdate
from sonorisk.tracking.offline import track_detections, track_video

__all__ = [
    "KeyframeTracker",
    "LesionTrack",
    "LesionTracker",
    "TrackerUpdate",
    "TrackingConfig",
    "track_detections",
    "track_video",
]
