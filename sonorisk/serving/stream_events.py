"""A live stream's Server-Sent Events: the scorer's events as JSON-ready dicts.

``StreamEventSink`` is the stream's sink beside the document fold
(``sonorisk.pipeline.sinks``): it turns each scorer event into the dict a
client receives (docs/serving.md lists them) and keeps the table of the
stream's lesions that its status shows. Boxes are written as the score
document writes them (``report.box_json``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from sonorisk.pipeline.events import ClipScored, Event, FrameBoxes, LesionEnded, LesionUpdated
from sonorisk.pipeline.report import box_json
from sonorisk.records import Frame, LesionRisk
from sonorisk.serving.stream_stats import StreamStats


def boxes_event(event: FrameBoxes, segment: int, latency_s: float) -> dict[str, Any]:
    return {
        "event": "boxes",
        "segment": segment,
        "frame": event.frame_index,
        "t": event.timestamp_s,
        "keyframe": event.keyframe,
        "latency_ms": round(latency_s * 1000, 2),
        "boxes": [{"lesion_id": b.lesion_id, **box_json(b)} for b in event.boxes],
    }


def clip_event(event: ClipScored, segment: int, latency_s: float) -> dict[str, Any]:
    score = event.score
    return {
        "event": "clip",
        "segment": segment,
        "lesion_id": score.track_id,
        "clip_index": score.clip_index,
        "frames": [int(i) for i in score.frame_indices],
        # A candidate's clips are not scored in public: no number shown.
        "probability": None if event.candidate else float(score.probability),
        "candidate": event.candidate,
        "lesion_probability": (
            float(score.lesion_probability) if score.lesion_probability is not None else None
        ),
        "latency_ms": round(latency_s * 1000, 2),
    }


def lesion_entry(risk: LesionRisk, segment: int, ended: bool) -> dict[str, Any]:
    """A lesion's row in the stream's status (and its ``lesion`` event)."""
    return {
        "segment": segment,
        "lesion_id": risk.track_id,
        "risk": risk.risk,
        "clips": risk.clips_used,
        "status": risk.status.value,
        "confidence": risk.confidence,
        "ended": ended,
    }


def lesion_ended_event(event: LesionEnded, segment: int) -> dict[str, Any]:
    return {
        "event": "lesion_ended",
        "segment": segment,
        "lesion_id": event.lesion_id,
        "dropped": event.dropped,
        "frames": [event.first_frame, event.last_frame],
        "risk": event.risk.risk if event.risk else None,
    }


class StreamEventSink:
    """The scorer's events of one stream, published as dicts; its lesion table."""

    def __init__(self, publish: Callable[[dict[str, Any]], None], stats: StreamStats) -> None:
        self.publish = publish
        self.stats = stats
        self.segment = 0
        self.lesions: dict[tuple[int, int], dict[str, Any]] = {}  # (segment, lesion id) -> row

    def frame(self, frame: Frame) -> None:
        """Clients get boxes, not frames."""

    def events(self, events: Iterable[Event]) -> None:
        done = time.perf_counter()
        for event in events:
            if isinstance(event, FrameBoxes):
                self.publish(
                    boxes_event(event, self.segment, self.stats.box_latency_of(event, done))
                )
            elif isinstance(event, ClipScored):
                self.publish(
                    clip_event(event, self.segment, self.stats.clip_latency_of(event, done))
                )
            elif isinstance(event, LesionUpdated):
                entry = lesion_entry(event.risk, self.segment, ended=False)
                self.lesions[(self.segment, event.risk.track_id)] = entry
                self.publish({"event": "lesion", **entry})
            elif isinstance(event, LesionEnded):
                key = (self.segment, event.lesion_id)
                if event.dropped or event.risk is None:  # flicker: withdrawn
                    self.lesions.pop(key, None)
                else:
                    self.lesions[key] = lesion_entry(event.risk, self.segment, ended=True)
                self.publish(lesion_ended_event(event, self.segment))

    def table(self) -> list[dict[str, Any]]:
        return [dict(v) for _, v in sorted(self.lesions.items())]
