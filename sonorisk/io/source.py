"""The one video-source interface: files and live streams alike.

A ``VideoSource`` is a context manager and an iterator of ``Frame`` with
``.meta`` (``VideoMeta``) and ``.stats`` (``SourceStats``). Concrete sources
(PyAV files and RTSP in ``pyav_source``, DICOM cine in ``dicom_source``) only
implement ``_open`` (return the metadata) and ``_produce`` (yield frames and
drop notices). This base class runs them in a worker thread behind a bounded
queue, which gives two things:

* a watchdog: every wait for the next frame has a deadline, so a stalled
  decoder or a silent network peer surfaces as a typed error, never a hang;
* decode-ahead: the next frames decode while the caller runs its models.

End of iteration: a file that ends normally stops with ``stats.end_reason ==
"eof"``. A file whose data ends early (truncated) or whose container breaks
mid-way stops after delivering every frame it could, with ``end_reason``
``"truncated"``/``"corrupt"`` and the typed error kept in ``stats.error``
(raised instead when ``strict=True``). A live stream that drops or goes silent
raises ``StreamDisconnectedError``/``StreamTimeoutError`` (a live feed never
ends normally, so the caller must hear about it).
"""

from __future__ import annotations

import logging
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Generator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from sonorisk.errors import StreamTimeoutError, VideoError
from sonorisk.records import Frame, VideoMeta

log = logging.getLogger(__name__)

Color = Literal["rgb", "gray"]
EndReason = Literal["eof", "truncated", "corrupt", "disconnected", "timeout", "closed", "error"]

# Beyond these a header is treated as absurd and refused before decoding.
MAX_SIDE = 16384
MAX_PIXELS = 8192 * 8192


@dataclass
class SourceStats:
    """What happened while reading: counts and why the source ended."""

    frames_delivered: int = 0
    frames_dropped: int = 0  # packets/frames that could not be decoded
    frames_declared: int | None = None  # what the container claims, if anything
    end_reason: EndReason | None = None  # None while frames are still coming
    error: VideoError | None = None  # the typed error behind a non-"eof" end
    messages: list[str] = field(default_factory=list)  # first few decoder complaints

    def note(self, message: str) -> None:
        if len(self.messages) < 20:
            self.messages.append(message)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "error"}
        out["messages"] = list(self.messages)
        out["error"] = None if self.error is None else str(self.error)
        out["error_type"] = None if self.error is None else type(self.error).__name__
        return out


@dataclass(frozen=True)
class Dropped:
    """Produced instead of a frame (or a run of ``count`` frames) that cannot be decoded."""

    reason: str
    # A run of frames in one notice: a header that lists 4 billion frames the
    # file does not hold must cost one notice, not 4 billion (hours of work).
    count: int = 1


@dataclass(frozen=True)
class Ended:
    """Produced last: why the producer stopped (and the typed error, if any)."""

    reason: EndReason
    error: VideoError | None = None


def check_dimensions(source: str, width: int, height: int) -> None:
    """Refuse absurd frame sizes from a header before anything is decoded."""
    from sonorisk.errors import UnsupportedVideoError

    if width <= 0 or height <= 0:
        raise UnsupportedVideoError(source, f"header gives frame size {width}x{height}")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise UnsupportedVideoError(
            source,
            f"header gives frame size {width}x{height}, beyond the supported "
            f"{MAX_SIDE} px per side / {MAX_PIXELS} pixels",
        )


def error_text(exc: BaseException) -> str:
    """``exc`` as "Type: message", without the file name an OSError or FFmpeg error appends.

    Our errors name the input as the user gave it; the path inside the
    exception may be another one (resolved, temporary, a server's upload
    folder) that the user must not see.
    """
    strerror = getattr(exc, "strerror", None)
    if strerror:  # OSError and PyAV's FFmpegError keep the file name apart
        return f"{type(exc).__name__}: {strerror}"
    return f"{type(exc).__name__}: {exc}"


class VideoSource(ABC):
    """Iterator of ``Frame`` with ``.meta`` and ``.stats``; use it in ``with``."""

    def __init__(
        self,
        source: str,
        *,
        color: Color,
        open_timeout_s: float,
        frame_timeout_s: float,
        live: bool,
        strict: bool,
        queue_size: int = 4,
    ) -> None:
        if color not in ("rgb", "gray"):
            raise ValueError(f"color must be 'rgb' or 'gray', got {color!r}")
        self.source = source
        self.color: Color = color
        self.live = live
        self.strict = strict
        self.frame_timeout_s = float(frame_timeout_s)
        self.stats = SourceStats()
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._done = False
        self._frame_shape: tuple[int, ...] | None = None  # (height, width) of the last frame
        self._thread = threading.Thread(
            target=self._run, name=f"sonorisk-decode:{source[-40:]}", daemon=True
        )
        self._thread.start()
        # The worker opens the source and reports its metadata first.
        try:
            kind, payload = self._queue.get(timeout=open_timeout_s)
        except queue.Empty:
            self._stop.set()
            raise StreamTimeoutError(
                source, f"could not open within {open_timeout_s:g} s (no answer or stalled read)"
            ) from None
        if kind == "error":
            self._stop.set()
            raise payload
        self.meta: VideoMeta = payload
        self.stats.frames_declared = self.meta.frame_count

    # --- subclass hooks (run in the worker thread) ---------------------------
    @abstractmethod
    def _open(self) -> VideoMeta:
        """Open the source; raise a typed VideoError when it cannot be read."""

    @abstractmethod
    def _produce(self) -> Generator[Frame | Dropped | Ended, None, None]:
        """Yield frames and drop notices, then one ``Ended``."""

    def _release(self) -> None:  # noqa: B027 - optional hook
        """Free what ``_open`` acquired; called once in the worker thread."""

    # --- worker --------------------------------------------------------------
    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            try:
                meta = self._open()
            except VideoError as exc:
                self._put(("error", exc))
                return
            except Exception as exc:  # noqa: BLE001 - any surprise becomes a typed error
                self._put(("error", VideoError(self.source, f"could not open ({error_text(exc)})")))
                return
            if not self._put(("meta", meta)):
                return
            producer = self._produce()
            try:
                for item in producer:
                    if not self._put(("item", item)) or isinstance(item, Ended):
                        break
            except VideoError as exc:
                self._put(("item", Ended("error", exc)))
            except Exception as exc:  # noqa: BLE001
                error = VideoError(self.source, f"read failed ({error_text(exc)})")
                self._put(("item", Ended("error", error)))
            finally:
                producer.close()
        finally:
            # PyAV/pydicom objects are released in the thread that used them.
            self._release()

    # --- consumer ------------------------------------------------------------
    def __iter__(self) -> VideoSource:
        return self

    def __next__(self) -> Frame:
        while True:
            if self._done:
                raise StopIteration
            try:
                _, item = self._queue.get(timeout=self.frame_timeout_s)
            except queue.Empty:
                timed_out = True
            else:
                timed_out = False
            if timed_out:
                error = StreamTimeoutError(
                    self.source,
                    f"no frame within {self.frame_timeout_s:g} s "
                    + ("(stream silent)" if self.live else "(read or decode stalled)"),
                )
                self._finish("timeout", error)
                raise error
            if isinstance(item, Frame):
                self.stats.frames_delivered += 1
                self._check_size(item)
                return item
            if isinstance(item, Dropped):
                self.stats.frames_dropped += item.count
                self.stats.note(item.reason)
                continue
            assert isinstance(item, Ended)
            self._finish(item.reason, item.error)
            if item.error is not None and (self.live or self.strict or item.reason == "error"):
                raise item.error
            if item.error is not None:
                log.warning("%s", item.error)
            raise StopIteration

    def _check_size(self, frame: Frame) -> None:
        """Say where the frame size changes: a consumer that needs one size
        (the scorer, a scan region) refuses the video, and the note tells where."""
        shape = frame.image.shape[:2]
        last = self._frame_shape
        self._frame_shape = shape
        if last is not None and shape != last:
            self.stats.note(
                f"frame {frame.index}: frame size changed from "
                f"{last[1]}x{last[0]} to {shape[1]}x{shape[0]}"
            )

    def _finish(self, reason: EndReason, error: VideoError | None) -> None:
        self._done = True
        self.stats.end_reason = reason
        self.stats.error = error
        self._stop.set()

    def close(self) -> None:
        if not self._done:
            self._done = True
            if self.stats.end_reason is None:
                self.stats.end_reason = "closed"
        self._stop.set()
        # Unblock a worker waiting on a full queue, then let it clean up.
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=2.0)

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)  # absent when __init__ failed early
        if stop is not None:
            stop.set()
