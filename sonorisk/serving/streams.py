"""Live streams: RTSP (or any live URL) into the incremental pipeline.

Two threads per stream:

* the **reader** pulls frames from PyAV as fast as they arrive and appends
  them to a bounded backlog. It never waits for compute: when the backlog is
  full the oldest frame is dropped (counted). When the feed drops or goes
  silent it reconnects with exponential backoff.
* the **processor** takes what is waiting and pushes it through one
  ``IncrementalScorer``. When compute has fallen behind (more than
  ``catchup_threshold`` frames waiting) it skips to the newest
  ``catchup_window`` frames, which are contiguous, so the detector runs on the
  newest frames, the tracker carries each lesion across the skipped stretch
  (same lesion id), and 8-frame clips still form inside the window. Skipped
  frames are counted as dropped and reported.

A gap in the feed of at most ``short_gap_s`` (a reconnect, a stall) keeps the
lesion state: frame numbers continue and the tracker links across it. A
longer gap ends every lesion (``lesion_ended`` events, a ``segment_ended``
event with the segment's result) and starts a new segment.

Latencies are measured from each frame's arrival in the reader: frame arrival
to its boxes out, and arrival of a clip's last frame to the clip's score out.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sonorisk.errors import VideoError
from sonorisk.records import Frame
from sonorisk.serving.config import StreamsConfig

log = logging.getLogger(__name__)

CONNECTING, LIVE, RECONNECTING, STOPPED, FAILED = (
    "connecting", "live", "reconnecting", "stopped", "failed")


@dataclass(frozen=True)
class Arrived:
    frame: Frame
    connection: int
    arrived: float  # time.perf_counter() when the reader got it


class LiveIngest:
    """The reader thread: a live URL into a bounded backlog, reconnecting on loss."""

    def __init__(self, url: str, config: StreamsConfig,
                 open_source: Callable[..., Any] | None = None) -> None:
        from sonorisk.io import open_video

        self.url = url
        self.config = config
        self._open = open_source or open_video
        self._backlog: deque[Arrived] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.state = CONNECTING
        self.frames_in = 0
        self.dropped_full = 0  # dropped because the backlog was full
        self.dropped_catchup = 0  # skipped by the processor's catch-up
        self.reconnects = 0
        self.connections = 0
        self.last_error: str | None = None
        self.fps: float | None = None
        self.down_since: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"ingest {url}", daemon=True)

    @property
    def frames_dropped(self) -> int:
        return self.dropped_full + self.dropped_catchup

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def backlog(self) -> int:
        with self._cond:
            return len(self._backlog)

    def _run(self) -> None:
        cfg = self.config
        delay = cfg.reconnect_initial_s
        while not self._stop.is_set():
            try:
                source = self._open(self.url, color="rgb", rtsp_transport=cfg.rtsp_transport,
                                    open_timeout_s=cfg.open_timeout_s,
                                    read_timeout_s=cfg.read_timeout_s,
                                    frame_timeout_s=cfg.read_timeout_s * 2)
                with source:
                    self.connections += 1
                    self.fps = source.meta.fps or self.fps
                    for frame in source:
                        if self.state != LIVE:
                            self.state, self.down_since = LIVE, None
                            delay = cfg.reconnect_initial_s
                        self._append(Arrived(frame, self.connections, time.perf_counter()))
                        if self._stop.is_set():
                            break
            except VideoError as exc:
                self.last_error = str(exc)
            except Exception as exc:  # noqa: BLE001 (a reader must survive any decoder error)
                log.exception("stream %s: unexpected reader error", self.url)
                self.last_error = f"{type(exc).__name__}: {exc}"
            if self._stop.is_set():
                break
            now = time.perf_counter()
            if self.down_since is None:
                self.down_since = now
            if cfg.give_up_after_s is not None and now - self.down_since > cfg.give_up_after_s:
                self.state = FAILED
                self.last_error = (f"no frames for {now - self.down_since:.0f} s; gave up "
                                   f"(last error: {self.last_error})")
                break
            self.state = RECONNECTING
            self.reconnects += 1
            log.info("stream %s: reconnecting in %.1f s (%s)", self.url, delay, self.last_error)
            self._stop.wait(delay)
            delay = min(delay * 2, cfg.reconnect_max_s)
        if self.state != FAILED:
            self.state = STOPPED
        with self._cond:
            self._cond.notify_all()

    def _append(self, item: Arrived) -> None:
        with self._cond:
            if len(self._backlog) >= self.config.max_backlog:
                self._backlog.popleft()
                self.dropped_full += 1
            self._backlog.append(item)
            self.frames_in += 1
            self._cond.notify()

    def take(self, timeout_s: float) -> list[Arrived]:
        """Everything waiting (after catch-up), or [] after ``timeout_s``."""
        cfg = self.config
        with self._cond:
            if not self._backlog:
                self._cond.wait(timeout_s)
            if len(self._backlog) > cfg.catchup_threshold:
                skip = len(self._backlog) - cfg.catchup_window
                for _ in range(skip):
                    self._backlog.popleft()
                self.dropped_catchup += skip
            items = list(self._backlog)
            self._backlog.clear()
            return items

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def _quantiles(values: deque[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "mean_ms": None, "n": 0}
    arr = np.asarray(list(values), float) * 1000  # list(): a C-level copy, safe vs. appends
    return {"p50_ms": round(float(np.percentile(arr, 50)), 2),
            "p99_ms": round(float(np.percentile(arr, 99)), 2),
            "mean_ms": round(float(arr.mean()), 2), "n": int(arr.size)}


class StreamSession:
    """One live stream: reader + processor, events out to subscribers."""

    adapters: tuple[Any, Any]  # (detector, classifier), set by the stream host

    def __init__(self, stream_id: str, url: str, config: StreamsConfig,
                 make_scorer: Callable[[float | None], Any], *, notice: list[str],
                 metrics: Any = None, open_source: Callable[..., Any] | None = None,
                 on_end: Callable[[StreamSession], None] | None = None) -> None:
        self.stream_id = stream_id
        self.url = url
        self.config = config
        self.make_scorer = make_scorer
        self.notice = notice
        self.metrics = metrics
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
        self.frames_processed = 0
        self.segment = 0
        self.segments: list[dict[str, Any]] = []  # results of ended segments
        self.lesions: dict[tuple[int, int], dict[str, Any]] = {}
        self.box_latency: deque[float] = deque(maxlen=5000)
        self.clip_latency: deque[float] = deque(maxlen=2000)
        self.clips_scored = 0
        self.error: str | None = None
        self._arrival: OrderedDict[int, float] = OrderedDict()
        self._processed_times: deque[float] = deque(maxlen=300)
        self._metric_marks = {"in": 0, "dropped": 0, "reconnects": 0}
        self._thread = threading.Thread(target=self._loop, name=f"stream {stream_id}",
                                        daemon=True)

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
    def state(self) -> str:
        if self._stop.is_set() and not self._thread.is_alive():
            return STOPPED
        if self.error is not None:
            return FAILED
        return self.ingest.state

    # ---------------------------------------------------------- subscribers
    def subscribe(self) -> queue.Queue[dict[str, Any]]:
        q: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=self.config.event_queue)
        q.put({"event": "hello", "stream_id": self.stream_id, "url": self.url,
               "notice": self.notice, "status": self.status()})
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
        recent = [t for t in self._processed_times if now - t <= 5.0]
        span = (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
        return {
            "stream_id": self.stream_id,
            "url": self.url,
            "state": self.state,
            "frames_in": self.ingest.frames_in,
            "frames_processed": self.frames_processed,
            "frames_dropped": self.ingest.frames_dropped,
            "dropped_backlog_full": self.ingest.dropped_full,
            "dropped_catchup": self.ingest.dropped_catchup,
            "backlog": self.ingest.backlog(),
            "reconnects": self.ingest.reconnects,
            "connections": self.ingest.connections,
            "last_error": self.error or self.ingest.last_error,
            "input_fps": self.ingest.fps,
            "processed_fps": round((len(recent) - 1) / span, 2) if span > 0 else None,
            "segment": self.segment,
            "clips_scored": self.clips_scored,
            "latency": {"box": _quantiles(self.box_latency),
                        "clip": _quantiles(self.clip_latency)},
            "lesions": [dict(v) for _, v in sorted(self.lesions.items())],
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
        scorer: Any = None
        offset = 0
        last_global = -1
        last_arrival: float | None = None
        last_connection: int | None = None
        last_shape: tuple[int, ...] | None = None
        next_stats = time.perf_counter() + 1.0
        while not self._stop.is_set():
            items = self.ingest.take(0.2)
            self._update_counters()
            now = time.perf_counter()
            if now >= next_stats:
                next_stats = now + 1.0
                self._publish({"event": "stats", **self._brief()})
            if (scorer is not None and not items and last_arrival is not None
                    and now - last_arrival > cfg.short_gap_s):
                self._end_segment(scorer, f"no frames for {now - last_arrival:.1f} s")
                scorer = None
            if not items and self.ingest.state in (STOPPED, FAILED):
                break
            for item in items:
                if scorer is not None and item.connection != last_connection:
                    gap = item.arrived - (last_arrival or item.arrived)
                    self._publish({"event": "reconnected", "gap_s": round(gap, 3),
                                   "connection": item.connection})
                    if gap > cfg.short_gap_s:
                        self._end_segment(scorer, f"feed gap of {gap:.1f} s")
                        scorer = None
                shape = item.frame.image.shape
                if scorer is not None and last_shape is not None and shape != last_shape:
                    self._end_segment(scorer, f"frame size changed from {last_shape[:2]} to "
                                              f"{shape[:2]}")
                    scorer = None
                last_shape = shape
                if scorer is None:
                    scorer = self.make_scorer(self.ingest.fps)
                    self.segment += 1
                    self._publish({"event": "segment_started", "segment": self.segment})
                if item.connection != last_connection or item.frame.index + offset <= last_global:
                    offset = last_global + 1 - item.frame.index
                index = item.frame.index + offset
                last_global, last_arrival, last_connection = index, item.arrived, item.connection
                self._arrival[index] = item.arrived
                while len(self._arrival) > 4096:
                    self._arrival.popitem(last=False)
                frame = Frame(index, round(item.arrived - self._t0, 4), item.frame.image)
                events = scorer.push(frame)
                self.frames_processed += 1
                self._processed_times.append(time.perf_counter())
                if self.metrics is not None:
                    self.metrics.frames_processed.labels(self.stream_id).inc()
                self._emit(events)
        if scorer is not None:
            self._end_segment(scorer, "stream stopped")

    def _update_counters(self) -> None:
        if self.metrics is None:
            return
        marks = self._metric_marks
        now = {"in": self.ingest.frames_in, "dropped": self.ingest.frames_dropped,
               "reconnects": self.ingest.reconnects}
        counters = {"in": self.metrics.frames_in, "dropped": self.metrics.frames_dropped,
                    "reconnects": self.metrics.reconnects}
        for key, value in now.items():
            if value > marks[key]:
                counters[key].labels(self.stream_id).inc(value - marks[key])
                marks[key] = value

    def _brief(self) -> dict[str, Any]:
        status = self.status()
        return {k: status[k] for k in ("state", "frames_in", "frames_processed",
                                       "frames_dropped", "backlog", "reconnects",
                                       "processed_fps", "latency", "segment")}

    def _end_segment(self, scorer: Any, reason: str) -> None:
        from sonorisk.pipeline.scorer import describe

        events = scorer.finish()
        self._emit(events)
        result = describe(scorer.result())
        # ``reason`` says why the segment ended; ``risk_reason`` why it has no risk.
        summary = {"segment": self.segment, **result, "reason": reason,
                   "risk_reason": result["reason"]}
        self.segments.append(summary)
        self._publish({"event": "segment_ended", **summary})

    def _emit(self, events: list[Any]) -> None:
        from sonorisk.pipeline.events import ClipScored, FrameBoxes, LesionEnded, LesionUpdated

        done = time.perf_counter()
        for event in events:
            if isinstance(event, FrameBoxes):
                arrived = self._arrival.get(event.frame_index)
                latency = done - arrived if arrived is not None else event.latency_s
                self.box_latency.append(latency)
                if self.metrics is not None:
                    self.metrics.box_latency.observe(latency)
                self._publish({
                    "event": "boxes", "segment": self.segment, "frame": event.frame_index,
                    "t": event.timestamp_s, "keyframe": event.keyframe,
                    "latency_ms": round(latency * 1000, 2),
                    "boxes": [{"lesion_id": b.lesion_id,
                               "box": [round(float(v), 1) for v in b.box],
                               "score": round(float(b.score), 3), "source": b.source}
                              for b in event.boxes]})
            elif isinstance(event, ClipScored):
                score = event.score
                last = score.frame_indices[-1] if score.frame_indices else None
                arrived = self._arrival.get(last) if last is not None else None
                latency = done - arrived if arrived is not None else event.latency_s
                self.clip_latency.append(latency)
                self.clips_scored += 1
                if self.metrics is not None:
                    self.metrics.clip_latency.observe(latency)
                self._publish({
                    "event": "clip", "segment": self.segment, "lesion_id": score.track_id,
                    "clip_index": score.clip_index,
                    "frames": [int(i) for i in score.frame_indices],
                    # A candidate's clips are not scored in public: no number shown.
                    "probability": (None if event.candidate
                                    else round(float(score.probability), 4)),
                    "candidate": event.candidate,
                    "lesion_probability": (round(float(score.lesion_probability), 4)
                                           if score.lesion_probability is not None else None),
                    "latency_ms": round(latency * 1000, 2)})
            elif isinstance(event, LesionUpdated):
                risk = event.risk
                entry = {"segment": self.segment, "lesion_id": risk.track_id,
                         "risk": risk.risk, "clips": risk.clips_used,
                         "status": risk.status.value, "confidence": risk.confidence,
                         "ended": False}
                self.lesions[(self.segment, risk.track_id)] = entry
                self._publish({"event": "lesion", **entry})
            elif isinstance(event, LesionEnded):
                key = (self.segment, event.lesion_id)
                if event.dropped:
                    self.lesions.pop(key, None)
                else:
                    final = event.risk
                    self.lesions[key] = {
                        "segment": self.segment, "lesion_id": event.lesion_id,
                        "risk": final.risk if final else None,
                        "clips": final.clips_used if final else 0,
                        "status": final.status.value if final else "no scorable lesion",
                        "confidence": final.confidence if final else None,
                        "ended": True}
                self._publish({"event": "lesion_ended", "segment": self.segment,
                               "lesion_id": event.lesion_id, "dropped": event.dropped,
                               "frames": [event.first_frame, event.last_frame],
                               "risk": event.risk.risk if event.risk else None})
