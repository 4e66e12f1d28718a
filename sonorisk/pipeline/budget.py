"""Memory budget per video: refuse frames too large to score, before scoring them.

A header can claim anything, but the frame size the decoder delivers is real,
and memory grows with it: the frames held for the scan-region estimate, colour
conversions, the overlay and the crops all scale with the pixel count. Measured
with sonorisk-busi 1.2.0 and `sonorisk score` on 40-frame videos (peak RSS,
/usr/bin/time -v, 2026-11-29):

    1000x750   1.33 GB      2000x1500  1.52 GB      3000x2250  1.98 GB

about 1.25 GB of models, torch and decoder plus about 110 bytes a pixel (an
8000x8000 upload used 7.2 GB, issue 15). The check runs on the first frame, so
a video is refused in milliseconds with the reason instead of exhausting the
machine, and a service running two jobs at once keeps serving.
"""

from __future__ import annotations

import math

from sonorisk.errors import InputError

BASE_MB = 1250.0
BYTES_PER_PIXEL = 110.0


def estimate_mb(width: int, height: int) -> float:
    """Peak memory (MB) to score a video of ``width`` x ``height`` frames."""
    return BASE_MB + BYTES_PER_PIXEL * width * height / 1e6


def check_memory(width: int, height: int, budget_mb: float | None, source: str) -> None:
    """``InputError`` naming the frame size, the estimate and the budget when over it."""
    if budget_mb is None:
        return
    need = estimate_mb(width, height)
    if need > budget_mb:
        largest = math.isqrt(max(0, int((budget_mb - BASE_MB) * 1e6 / BYTES_PER_PIXEL)))
        raise InputError(
            source,
            f"{width}x{height} frames need about {need:,.0f} MB to score, "
            f"over the memory budget of {budget_mb:,.0f} MB "
            f"(pipeline.memory_budget_mb); frames up to about "
            f"{largest:,.0f}x{largest:,.0f} fit",
        )
