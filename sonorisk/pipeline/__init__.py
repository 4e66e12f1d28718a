"""The incremental scorer that every entry point drives (DESIGN.md)."""

from sonorisk.pipeline.config import PipelineConfig
from sonorisk.pipeline.events import (
    ClipScored,
    Event,
    FrameBoxes,
    LesionBox,
    LesionEnded,
    LesionUpdated,
)
from sonorisk.pipeline.scorer import IncrementalScorer, LesionRecord, StageTiming, VideoResult

__all__ = [
    "ClipScored",
    "Event",
    "FrameBoxes",
    "IncrementalScorer",
    "LesionBox",
    "LesionEnded",
    "LesionRecord",
    "LesionUpdated",
    "PipelineConfig",
    "StageTiming",
    "VideoResult",
]
