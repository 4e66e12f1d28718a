"""Pipeline configuration (``configs/pipeline*.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sonorisk.errors import ConfigError
from sonorisk.pipeline.lesions import LesionRules
from sonorisk.tracking.config import TrackingConfig


@dataclass
class PipelineConfig:
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # Keyframes are detected in batches of this many (1: lowest latency, live).
    detector_batch_size: int = 4
    # Clips are scored in batches of this many; the rest at the end of the video.
    classifier_batch_size: int = 8
    # Heatmaps cost a backward pass per batch (CAM for I3D is nearly free).
    heatmaps: bool = False
    # Scan-region crop (sonorisk.io.scan_region): "auto" finds the ultrasound
    # image inside a screen capture from the first ``crop_sample`` frames and
    # the detector sees only that; boxes are reported in source pixels.
    crop: Literal["auto", "none"] = "auto"
    crop_sample: int = 16
    # While the region is estimated: True holds the first ``crop_sample``
    # frames until it is known (files: the detector sees every frame at its
    # trained scale); False detects them on the whole frame meanwhile and crops
    # from then on (live streams: the first boxes do not wait ~0.5 s).
    crop_wait: bool = True
    # From tracks to lesions: duplicates, lesion confidence, the video risk rule.
    lesions: LesionRules = field(default_factory=LesionRules)
    # Memory one video may need (sonorisk.pipeline.budget: about 1.25 GB plus
    # 110 bytes a pixel): larger frames are refused on the first frame with the
    # reason. 4096 MB admits about 5200x5200; null: no limit.
    memory_budget_mb: float | None = 4096.0

    def validate(self) -> None:
        self.lesions.validate()
        if self.detector_batch_size < 1:
            raise ConfigError("pipeline.detector_batch_size",
                              f"must be >= 1, got {self.detector_batch_size}")
        if self.classifier_batch_size < 1:
            raise ConfigError("pipeline.classifier_batch_size",
                              f"must be >= 1, got {self.classifier_batch_size}")
        if self.memory_budget_mb is not None and self.memory_budget_mb <= 0:
            raise ConfigError("pipeline.memory_budget_mb",
                              f"must be > 0 (or null: no limit), got {self.memory_budget_mb}")
        if self.crop_sample < 1:
            raise ConfigError("pipeline.crop_sample", f"must be >= 1, got {self.crop_sample}")
        if self.tracking.keyframe_interval < 1:
            raise ConfigError("pipeline.tracking.keyframe_interval",
                              f"must be >= 1, got {self.tracking.keyframe_interval}")
