"""The reader of a live stream: a live URL into a bounded backlog.

The reader thread pulls frames from PyAV as fast as they arrive and appends
them to a bounded backlog. It never waits for compute: when the backlog is
full the oldest frame is dropped (counted). When the feed drops or goes
silent it reconnects with exponential backoff. ``take`` hands the processor
what is waiting; when compute has fallen behind (more than
``catchup_threshold`` frames waiting) it keeps only the newest
``catchup_window`` frames, which are contiguous, and counts the rest dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sonorisk.errors import VideoError
from sonorisk.records import Frame, VideoMeta
from sonorisk.serving.config import StreamsConfig
from sonorisk.serving.states import StreamState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arrived:
    frame: Frame
    connection: int
    arrived: float  # time.perf_counter() when the reader got it


class LiveIngest:
    """The reader thread: a live URL into a bounded backlog, reconnecting on loss."""

    def __init__(
        self, url: str, config: StreamsConfig, open_source: Callable[..., Any] | None = None
    ) -> None:
        from sonorisk.io import open_video

        self.url = url
        self.config = config
        self._open = open_source or open_video
        self._backlog: deque[Arrived] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.state = StreamState.CONNECTING
        self.frames_in = 0
        self.dropped_full = 0  # dropped because the backlog was full
        self.dropped_catchup = 0  # skipped by the processor's catch-up
        self.reconnects = 0
        self.connections = 0
        self.last_error: str | None = None
        self.fps: float | None = None
        self.meta: VideoMeta | None = None  # of the newest connection
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
                source = self._open(
                    self.url,
                    color="rgb",
                    rtsp_transport=cfg.rtsp_transport,
                    open_timeout_s=cfg.open_timeout_s,
                    read_timeout_s=cfg.read_timeout_s,
                    frame_timeout_s=cfg.read_timeout_s * 2,
                )
                with source:
                    self.connections += 1
                    self.fps = source.meta.fps or self.fps
                    self.meta = source.meta
                    for frame in source:
                        if self.state != StreamState.LIVE:
                            self.state, self.down_since = StreamState.LIVE, None
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
                self.state = StreamState.FAILED
                self.last_error = (
                    f"no frames for {now - self.down_since:.0f} s; gave up "
                    f"(last error: {self.last_error})"
                )
                break
            self.state = StreamState.RECONNECTING
            self.reconnects += 1
            log.info("stream %s: reconnecting in %.1f s (%s)", self.url, delay, self.last_error)
            self._stop.wait(delay)
            delay = min(delay * 2, cfg.reconnect_max_s)
        if self.state != StreamState.FAILED:
            self.state = StreamState.STOPPED
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
