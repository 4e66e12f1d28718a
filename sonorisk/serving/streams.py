"""Live streams: RTSP (or any live URL) into the incremental pipeline.

Two threads per stream:

* the **reader** (``stream_ingest.LiveIngest``) pulls frames as fast as they
  arrive into a bounded backlog, dropping the oldest when it is full, and
  reconnects with backoff;
* the **processor** (``StreamSession``) takes what is waiting and pushes it
  through one ``IncrementalScorer``. When compute has fallen behind the reader
  hands over only the newest ``catchup_window`` frames, which are contiguous,
  so the detector runs on the newest frames, the tracker carries each lesion
  across the skipped stretch (same lesion id), and 8-frame clips still form
  inside the window. Skipped frames are counted as dropped and reported.

The scorer's events go to the stream's sinks, as a file's go to its own
(``sonorisk.pipeline.sinks``): the Server-Sent Events (``stream_events``) and
the fold that makes the score document (``sonorisk.pipeline.fold``).

A gap in the feed of at most ``short_gap_s`` (a reconnect, a stall) keeps the
lesion state: frame numbers continue and the tracker links across it. A
longer gap ends every lesion (``lesion_ended`` events) and the segment: its
``segment_ended`` event carries the segment's summary and its versioned score
document (score.schema.json), the same document a file gets; a new segment
starts with the next frame.

Measurements (latencies from each frame's arrival, rates, Prometheus
counters) are in ``stream_stats``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sonorisk.models.load import scoring_cards
from sonorisk.pipeline.document import ScoreDocument
from sonorisk.pipeline.fold import ScoreFold
from sonorisk.pipeline.sinks import Sinks
from sonorisk.records import Frame, VideoMeta
from sonorisk.serving.config import StreamsConfig
from sonorisk.serving.states import StreamState
from sonorisk.serving.stream_events import StreamEventSink
from sonorisk.serving.stream_ingest import Arrived, LiveIngest
from sonorisk.serving.stream_stats import StreamStats

log = logging.getLogger(__name__)

__all__ = [
    "CONNECTING",
    "FAILED",
    "LIVE",
    "RECONNECTING",
    "STOPPED",
    "Arrived",
    "LiveIngest",
    "StreamSession",
    "StreamState",
]

# The states by name (older imports); StreamState members equal these strings.
CONNECTING, LIVE, RECONNECTING, STOPPED, FAILED = (
    StreamState.CONNECTING,
    StreamState.LIVE,
    StreamState.RECONNECTING,
    StreamState.STOPPED,
    StreamState.FAILED,
)


class StreamSession:
    """One live stream: reader + processor, events out to subscribers."""

    adapters: tuple[Any, Any]  # (detector, classifier), set by the stream host

    def __init__(
        self,
        stream_id: str,
        url: str,
        config: StreamsConfig,
        make_scorer: Callable[[float | None], Any],
        *,
        notice: list[str],
        models: dict[str, dict[str, Any]] | None = None,
        metrics: Any = None,
        open_source: Callable[..., Any] | None = None,
        on_end: Callable[[StreamSession], None] | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.url = url
        self.config = config
        self.make_scorer = make_scorer
        self.notice = notice
        # The model cards, for each segment's document (unrecorded when not given).
        self.models = models or scoring_cards({}, {}, None)
        self.on_end = on_end
        self.ingest = LiveIngest(url, config, open_source)
        self.started_at = time.time()
        self._t0 = time.perf_counter()
        self._stop = threading.Event()
        self._subscribers: list[queue.Queue[dict[str, Any]]] = []
        self._sub_lock = threading.Lock()
        # Numbered events for readers in other processes (the ingress polls a
        # stream host with ``events_after``); bounded like a subscriber's queue.
        self._log: deque[tuple[int, dict[str, Any]]] = deque(maxlen=config.event_queue)
        self._seq = 0
        self.stats = StreamStats(stream_id, metrics)
        self.sse = StreamEventSink(self._publish, self.stats)
        self.segments: list[dict[str, Any]] = []  # summaries of ended segments
        self._scorer: Any = None  # the current segment's scorer (for its detector figures)
        self.error: str | None = None
        self._thread = threading.Thread(target=self._loop, name=f"stream {stream_id}", daemon=True)

    @property
    def segment(self) -> int:
        """The number of the current (or last) segment; 0 before the first frame."""
        return self.sse.segment

    @property
    def frames_processed(self) -> int:
        return self.stats.frames_processed

    # ------------------------------------------------------------- control
    def start(self) -> None:
        self.ingest.start()
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> dict[str, Any]:
        self._stop.set()
        self.ingest.stop()
        self.ingest.join(timeout_s)
        self._thread.join(timeout_s)
        return self.status()

    @property
    def state(self) -> StreamState:
        if self._stop.is_set() and not self._thread.is_alive():
            return StreamState.STOPPED
        if self.error is not None:
            return StreamState.FAILED
        return self.ingest.state

    # ---------------------------------------------------------- subscribers
    def subscribe(self) -> queue.Queue[dict[str, Any]]:
        q: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=self.config.event_queue)
        q.put(
            {
                "event": "hello",
                "stream_id": self.stream_id,
                "url": self.url,
                "notice": self.notice,
                "status": self.status(),
            }
        )
        with self._sub_lock:
            self._subscribers.append(q)
        return q

    def unsubscribe(self, q: queue.Queue[dict[str, Any]]) -> None:
        with self._sub_lock:
            if q in self._subscribers:
                self._subscribers.remove(q)

    @property
    def seq(self) -> int:
        """The number of the newest event (0 before the first)."""
        with self._sub_lock:
            return self._seq

    @property
    def running(self) -> bool:
        """The processor is alive: the stream holds one of the ``max_streams`` slots."""
        return self._thread.is_alive()

    def events_after(self, after: int) -> tuple[list[dict[str, Any]], int]:
        """Events numbered above ``after`` still held (a reader too slow loses its
        oldest, never the stream) and the newest number."""
        with self._sub_lock:
            return [e for n, e in self._log if n > after], self._seq

    def _publish(self, event: dict[str, Any]) -> None:
        with self._sub_lock:
            self._seq += 1
            self._log.append((self._seq, event))
            subscribers = list(self._subscribers)
        for q in subscribers:
            while True:
                try:
                    q.put_nowait(event)
                    break
                except queue.Full:  # a slow client loses its oldest events, not the stream
                    with contextlib.suppress(queue.Empty):
                        q.get_nowait()

    # -------------------------------------------------------------- status
    def status(self) -> dict[str, Any]:
        now = time.perf_counter()
        return {
            "stream_id": self.stream_id,
            "url": self.url,
            "state": self.state,
            "frames_in": self.ingest.frames_in,
            "frames_processed": self.stats.frames_processed,
            "frames_dropped": self.ingest.frames_dropped,
            "dropped_backlog_full": self.ingest.dropped_full,
            "dropped_catchup": self.ingest.dropped_catchup,
            "backlog": self.ingest.backlog(),
            "reconnects": self.ingest.reconnects,
            "connections": self.ingest.connections,
            "last_error": self.error or self.ingest.last_error,
            "input_fps": self.ingest.fps,
            "processed_fps": self.stats.processed_fps(now),
            "segment": self.segment,
            "clips_scored": self.stats.clips_scored,
            "detection": self._detection(),
            "latency": self.stats.latency(),
            "lesions": self.sse.table(),
            "ended_segments": self.segments,
            "notice": self.notice,
            "uptime_s": round(now - self._t0, 2),
        }

    # ----------------------------------------------------------- processing
    def _loop(self) -> None:
        try:
            self._process()
        except Exception as exc:  # noqa: BLE001 (report it; the server keeps serving)
            log.exception("stream %s: processing failed", self.stream_id)
            self.error = f"{type(exc).__name__}: {exc}"
            self._publish({"event": "error", "error": self.error})
            self.ingest.stop()
        finally:
            self._publish({"event": "stopped", "status": self.status()})
            if self.on_end is not None:
                self.on_end(self)

    def _process(self) -> None:
        cfg = self.config
        segment: _Segment | None = None
        offset = 0
        last_global = -1
        last_arrival: float | None = None
        last_connection: int | None = None
        last_shape: tuple[int, ...] | None = None
        next_stats = time.perf_counter() + 1.0
        while not self._stop.is_set():
            items = self.ingest.take(0.2)
            self.stats.count_ingest(
                self.ingest.frames_in, self.ingest.frames_dropped, self.ingest.reconnects
            )
            now = time.perf_counter()
            if now >= next_stats:
                next_stats = now + 1.0
                self._publish({"event": "stats", **self._brief()})
            if (
                segment is not None
                and not items
                and last_arrival is not None
                and now - last_arrival > cfg.short_gap_s
            ):
                self._end_segment(segment, f"no frames for {now - last_arrival:.1f} s")
                segment = None
            if not items and self.ingest.state in (StreamState.STOPPED, StreamState.FAILED):
                break
            for item in items:
                if segment is not None and item.connection != last_connection:
                    gap = item.arrived - (last_arrival or item.arrived)
                    self._publish(
                        {
                            "event": "reconnected",
                            "gap_s": round(gap, 3),
                            "connection": item.connection,
                        }
                    )
                    if gap > cfg.short_gap_s:
                        self._end_segment(segment, f"feed gap of {gap:.1f} s")
                        segment = None
                shape = item.frame.image.shape
                if segment is not None and last_shape is not None and shape != last_shape:
                    self._end_segment(
                        segment, f"frame size changed from {last_shape[:2]} to {shape[:2]}"
                    )
                    segment = None
                last_shape = shape
                if segment is None:
                    segment = self._start_segment(item)
                if item.connection != last_connection or item.frame.index + offset <= last_global:
                    offset = last_global + 1 - item.frame.index
                index = item.frame.index + offset
                last_global, last_arrival, last_connection = index, item.arrived, item.connection
                self.stats.arrived(index, item.arrived)
                frame = Frame(index, round(item.arrived - self._t0, 4), item.frame.image)
                segment.sinks.frame(frame)
                segment.sinks.events(segment.scorer.push(frame))
                self.stats.processed()
        if segment is not None:
            self._end_segment(segment, "stream stopped")

    def _detection(self) -> dict[str, Any] | None:
        """How the current segment's frames met the detector: frames it was
        applied to (``keyframes``) and, under the live schedule, how many frames
        late its boxes arrived at most and how many came too late to use."""
        scorer = self._scorer
        if scorer is None:
            return None
        stats = scorer.tracker.stats
        return {
            "schedule": scorer.config.schedule,
            "frames": stats.frames,
            "keyframes": stats.detector_frames,
            "max_delay_frames": stats.max_delay_frames,
            "late_dropped": stats.late_dropped,
            # The mean detector call, from the frame sent to its boxes back.
            "call_ms": (
                round(1000 * scorer.timing.detector_s / scorer.timing.keyframes, 1)
                if scorer.timing.keyframes
                else None
            ),
        }

    def _brief(self) -> dict[str, Any]:
        status = self.status()
        return {
            k: status[k]
            for k in (
                "state",
                "frames_in",
                "frames_processed",
                "frames_dropped",
                "backlog",
                "reconnects",
                "processed_fps",
                "latency",
                "segment",
            )
        }

    def _start_segment(self, first: Arrived) -> _Segment:
        scorer = self.make_scorer(self.ingest.fps)
        self._scorer = scorer
        fold = ScoreFold(scorer.config.lesions)
        self.sse.segment += 1
        self._publish({"event": "segment_started", "segment": self.segment})
        height, width = first.frame.image.shape[:2]
        meta = _segment_meta(self.url, self.ingest.meta, width, height, self.ingest.fps)
        return _Segment(
            scorer,
            fold,
            Sinks([fold, self.sse]),
            meta,
            time.perf_counter(),
            self.ingest.frames_dropped,
        )

    def _end_segment(self, segment: _Segment, reason: str) -> None:
        from sonorisk.config import to_dict

        segment.sinks.events(segment.scorer.finish())
        decode = {
            "frames_dropped": self.ingest.frames_dropped - segment.dropped_before,
            "end_reason": reason,
        }
        document = segment.fold.document(
            segment.meta,
            models=self.models,
            pipeline_config=to_dict(segment.scorer.config),
            decode=decode,
            wall_s=time.perf_counter() - segment.started,
        )
        summary = ScoreDocument.from_json(document).summary().as_dict()
        # ``reason`` says why the segment ended; ``risk_reason`` why it has no risk.
        brief = {
            "segment": self.segment,
            **summary,
            "reason": reason,
            "risk_reason": summary["reason"],
        }
        self.segments.append(brief)
        self._publish({"event": "segment_ended", **brief, "document": document})


@dataclass
class _Segment:
    """One segment of a stream: its scorer and the sinks its events go to."""

    scorer: Any  # an IncrementalScorer (made by the host's ``make_scorer``)
    fold: ScoreFold
    sinks: Sinks
    meta: VideoMeta
    started: float  # perf_counter at its first frame
    dropped_before: int  # the reader's drops when it started


def _segment_meta(
    url: str, connection: VideoMeta | None, width: int, height: int, fps: float | None
) -> VideoMeta:
    """What the document says of a segment's video: the stream's URL and frame size;
    a live stream has no frame count or duration up front."""
    if connection is None:
        return VideoMeta(url, width, height, fps, None, "", None, is_live=True)
    return replace(
        connection,
        source=url,
        width=width,
        height=height,
        fps=fps,
        frame_count=None,
        duration_s=None,
        is_live=True,
    )
