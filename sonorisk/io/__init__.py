"""sonorisk.io: video in (files, DICOM cine, RTSP) and the scan-region crop.

``open_video`` is the one interface the pipeline drives; see docs/video-input.md.
"""

from sonorisk.io.open import is_live_url, open_video
from sonorisk.io.scan_region import (
    RegionCropper,
    RegionSampler,
    ScanRegion,
    crop_region,
    estimate_scan_region,
)
from sonorisk.io.source import SourceStats, VideoSource

__all__ = [
    "RegionCropper",
    "RegionSampler",
    "ScanRegion",
    "SourceStats",
    "VideoSource",
    "crop_region",
    "estimate_scan_region",
    "is_live_url",
    "open_video",
]
