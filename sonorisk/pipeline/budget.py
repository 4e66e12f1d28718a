"""Memory budget per video: refuse frames too large to score, before scoring them.

A header can claim anything, but the frame size the decoder delivers is real,
and memory grows with it: the scorer holds whole frames (3 bytes a pixel)
while they wait for the detector, and a short ring of recent ones, and the
colour conversions, crops and decoder buffers add some more. How many frames
are held depends on the pipeline settings (``frames_held``): with the default
settings 37, with the CPU profile (keyframes every 6th frame, batches of 4,
two batches queued under ``overlap``) 89. Measured with sonorisk-busi 1.3.0,
``sonorisk score`` and a 120-frame 2400x1800 video (peak RSS,
``/usr/bin/time``, 2026-11-30): 1.93 GB with configs/pipeline.yaml and 2.59 GB
with configs/pipeline-cpu.yaml, which this model gives as 1.93 and 2.60 GB:

    about 1.25 GB of models, torch and decoder,
    plus (3 x frames held + 46) bytes a pixel.

(An 8000x8000 upload once used 7.2 GB, issue 15.) The check runs on the first
frame, so a video is refused in milliseconds with the reason instead of
exhausting the machine, and a service running two jobs at once keeps serving.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sonorisk.errors import InputError

if TYPE_CHECKING:
    from sonorisk.pipeline.config import PipelineConfig

BASE_MB = 1250.0
# Per pixel besides the held frames: colour conversions, crops, decoder buffers.
OTHER_BYTES_PER_PIXEL = 46.0
# Frames held with the default pipeline settings (and what a still is budgeted as).
DEFAULT_FRAMES_HELD = 37


def bytes_per_pixel(frames: int = DEFAULT_FRAMES_HELD) -> float:
    return 3.0 * frames + OTHER_BYTES_PER_PIXEL


def _batch_frames(config: PipelineConfig) -> int:
    """Frames spanned by one batch of keyframes."""
    return config.detector_batch_size * max(1, config.tracking.keyframe_interval)


def recent_frames(config: PipelineConfig) -> int:
    """The scorer's ring of tracked frames: enough for a new lesion's back-filled
    first frames, a bridged gap and a batch of boxes handed back late."""
    tracking = config.tracking
    return max(tracking.max_gap, tracking.minimum_consecutive_frames) + 2 + _batch_frames(config)


def frames_held(config: PipelineConfig) -> int:
    """Whole frames the scorer may hold at once with ``config``: the ring of recent
    frames plus those queued for the detector (two batches under ``overlap``, the
    scan-region sample while it is estimated)."""
    in_flight = 2 if config.overlap and config.schedule == "in_order" else 1
    queued = _batch_frames(config) * in_flight
    if config.crop == "auto" and config.crop_wait:
        queued = max(queued, config.crop_sample)
    return recent_frames(config) + queued


def estimate_mb(width: int, height: int, frames: int = DEFAULT_FRAMES_HELD) -> float:
    """Peak memory (MB) to score a video of ``width`` x ``height`` frames while
    holding ``frames`` of them."""
    return BASE_MB + bytes_per_pixel(frames) * width * height / 1e6


def check_memory(
    width: int,
    height: int,
    budget_mb: float | None,
    source: str,
    frames: int = DEFAULT_FRAMES_HELD,
) -> None:
    """``InputError`` naming the frame size, the estimate and the budget when over it."""
    if budget_mb is None:
        return
    need = estimate_mb(width, height, frames)
    if need > budget_mb:
        largest = math.isqrt(max(0, int((budget_mb - BASE_MB) * 1e6 / bytes_per_pixel(frames))))
        raise InputError(
            source,
            f"{width}x{height} frames need about {need:,.0f} MB to score, "
            f"over the memory budget of {budget_mb:,.0f} MB "
            f"(pipeline.memory_budget_mb); frames up to about "
            f"{largest:,.0f}x{largest:,.0f} fit",
        )
