"""A live stream's measurements: latencies, processed rate, Prometheus counters.

Latencies are measured from each frame's arrival in the reader: frame arrival
to its boxes out, and arrival of a clip's last frame to the clip's score out.
The scorer's own latencies (from ``push``) are the fallback for a frame whose
arrival is no longer remembered.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from typing import Any

import numpy as np

from sonorisk.pipeline.events import ClipScored, FrameBoxes

_ARRIVALS_KEPT = 4096  # frames whose arrival time is remembered (bounded memory)


def quantiles(values: deque[float]) -> dict[str, float | None]:
    """p50, p99 and mean of seconds, in milliseconds."""
    if not values:
        return {"p50_ms": None, "p99_ms": None, "mean_ms": None, "n": 0}
    arr = np.asarray(list(values), float) * 1000  # list(): a C-level copy, safe vs. appends
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 2),
        "p99_ms": round(float(np.percentile(arr, 99)), 2),
        "mean_ms": round(float(arr.mean()), 2),
        "n": int(arr.size),
    }


class StreamStats:
    """What one stream measures; ``metrics`` (a ``StreamMetrics``) gets the same."""

    def __init__(self, stream_id: str, metrics: Any = None) -> None:
        self.stream_id = stream_id
        self.metrics = metrics
        self.frames_processed = 0
        self.clips_scored = 0
        self.box_latency: deque[float] = deque(maxlen=5000)
        self.clip_latency: deque[float] = deque(maxlen=2000)
        self._arrival: OrderedDict[int, float] = OrderedDict()
        self._processed_times: deque[float] = deque(maxlen=300)
        self._marks = {"in": 0, "dropped": 0, "reconnects": 0}

    def arrived(self, index: int, at: float) -> None:
        """Frame ``index`` (the stream's numbering) reached the reader at ``at``."""
        self._arrival[index] = at
        while len(self._arrival) > _ARRIVALS_KEPT:
            self._arrival.popitem(last=False)

    def processed(self) -> None:
        self.frames_processed += 1
        self._processed_times.append(time.perf_counter())
        if self.metrics is not None:
            self.metrics.frames_processed.labels(self.stream_id).inc()

    def box_latency_of(self, event: FrameBoxes, done: float) -> float:
        arrived = self._arrival.get(event.frame_index)
        latency = done - arrived if arrived is not None else event.latency_s
        self.box_latency.append(latency)
        if self.metrics is not None:
            self.metrics.box_latency.observe(latency)
        return latency

    def clip_latency_of(self, event: ClipScored, done: float) -> float:
        indices = event.score.frame_indices
        arrived = self._arrival.get(indices[-1]) if indices else None
        latency = done - arrived if arrived is not None else event.latency_s
        self.clip_latency.append(latency)
        self.clips_scored += 1
        if self.metrics is not None:
            self.metrics.clip_latency.observe(latency)
        return latency

    def processed_fps(self, now: float) -> float | None:
        """Frames processed per second over the last 5 s."""
        recent = [t for t in self._processed_times if now - t <= 5.0]
        span = (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
        return round((len(recent) - 1) / span, 2) if span > 0 else None

    def latency(self) -> dict[str, Any]:
        return {"box": quantiles(self.box_latency), "clip": quantiles(self.clip_latency)}

    def count_ingest(self, frames_in: int, frames_dropped: int, reconnects: int) -> None:
        """Advance the Prometheus counters to the reader's totals."""
        if self.metrics is None:
            return
        now = {"in": frames_in, "dropped": frames_dropped, "reconnects": reconnects}
        counters = {
            "in": self.metrics.frames_in,
            "dropped": self.metrics.frames_dropped,
            "reconnects": self.metrics.reconnects,
        }
        for key, value in now.items():
            if value > self._marks[key]:
                counters[key].labels(self.stream_id).inc(value - self._marks[key])
                self._marks[key] = value
