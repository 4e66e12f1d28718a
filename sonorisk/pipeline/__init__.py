"""The incremental scorer that every entry point drives (docs/design.md).

Names resolve on first use, so ``sonorisk --help`` (which imports
``sonorisk.pipeline.cli``) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "PipelineConfig": "sonorisk.pipeline.config",
    "ClipScored": "sonorisk.pipeline.events",
    "Event": "sonorisk.pipeline.events",
    "FrameBoxes": "sonorisk.pipeline.events",
    "LesionBox": "sonorisk.pipeline.events",
    "LesionEnded": "sonorisk.pipeline.events",
    "LesionUpdated": "sonorisk.pipeline.events",
    "IncrementalScorer": "sonorisk.pipeline.scorer",
    "LesionRecord": "sonorisk.pipeline.scorer",
    "StageTiming": "sonorisk.pipeline.scorer",
    "VideoResult": "sonorisk.pipeline.scorer",
    "VideoEnded": "sonorisk.pipeline.events",
    "ScoreDocument": "sonorisk.pipeline.document",
    "ScoreFold": "sonorisk.pipeline.fold",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sonorisk.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
