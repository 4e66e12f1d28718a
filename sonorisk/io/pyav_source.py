"""Video files and RTSP streams through PyAV (FFmpeg).

Files: AVI (MJPEG, MPEG-4 Part 2/XVID, H.264, raw), MP4, MOV, MPEG-PS and
whatever else FFmpeg demuxes, decoded with FFmpeg's own threads. RTSP: the same
decoder behind ``av.open(url, timeout=(open_s, read_s))`` so a silent or dead
peer ends the read instead of blocking forever.
"""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import av
import av.error

from sonorisk.errors import (
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    StreamDisconnectedError,
    StreamTimeoutError,
    TruncatedVideoError,
    UnsupportedVideoError,
    VideoError,
)
from sonorisk.io.probe import avi_declared_size, special_file_kind, truncation_reason
from sonorisk.io.source import (
    Color,
    Dropped,
    Ended,
    VideoSource,
    check_dimensions,
    error_text,
)
from sonorisk.records import Frame, VideoMeta

log = logging.getLogger(__name__)

# FFmpeg demuxers that read single still images (a PNG "opens" as a 1-frame video).
_STILL_IMAGE_DEMUXERS = {"image2", "image2pipe"}
# FFmpeg "decodes" any text file as ANSI art through these; they are never video.
_TEXT_DEMUXERS = {"tty", "bin", "xbin", "adf", "idf"}


def _is_still_image_format(name: str) -> bool:
    return any(part in _STILL_IMAGE_DEMUXERS or part.endswith("_pipe") for part in name.split(","))


# Frame rates a scanner's cine can have; outside them the header is suspect.
MIN_PLAUSIBLE_FPS, MAX_PLAUSIBLE_FPS = 1.0, 240.0


class PyAVSource(VideoSource):
    """A file or network URL decoded by PyAV."""

    def __init__(
        self,
        source: str,
        *,
        color: Color = "rgb",
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        frame_timeout_s: float = 30.0,
        live: bool = False,
        strict: bool = False,
        options: dict[str, str] | None = None,
        threads: int = 0,
    ) -> None:
        self._url = source
        self._open_timeout_s = open_timeout_s
        self._read_timeout_s = read_timeout_s
        self._options = dict(options or {})
        self._threads = threads
        self._container: Any = None
        self._stream: Any = None
        self._last_t = -1.0
        # AVI stores no presentation times (constant rate by design), so the
        # frame index over the rate is the timestamp; elsewhere trust the pts.
        self._constant_rate = False
        self._expected_frames: int | None = None  # duration x fps, when no count is declared
        self._duration_s: float | None = None
        # The worker's own deadlines sit just behind PyAV's so PyAV's typed
        # error (not the watchdog) normally reports a network stall.
        super().__init__(
            source,
            color=color,
            open_timeout_s=open_timeout_s * 1.5 + 1.0,
            frame_timeout_s=max(frame_timeout_s, read_timeout_s * 1.5 + 1.0),
            live=live,
            strict=strict,
        )

    # --- open ------------------------------------------------------------------
    def _open(self) -> VideoMeta:
        started = time.monotonic()
        try:
            self._container = av.open(
                self._url,
                mode="r",
                options=self._options,
                timeout=(self._open_timeout_s, self._read_timeout_s),
            )
        except av.error.FFmpegError as exc:
            raise self._open_error(exc, time.monotonic() - started) from exc
        container = self._container
        fmt = container.format.name
        if _is_still_image_format(fmt):
            raise NotAVideoError(self.source, f"is a still image ({fmt}), not a video")
        if fmt in _TEXT_DEMUXERS:
            raise NotAVideoError(self.source, f"is text ({fmt} demuxer), not a video")
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise NotAVideoError(
                self.source, f"has no video stream ({fmt} container with {', '.join(kinds)})"
            )
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None or not ctx.name:
            raise UnsupportedVideoError(self.source, "video codec has no decoder in this FFmpeg")
        local = not self.live and Path(self.source).is_file()
        claimed = avi_declared_size(Path(self.source)) if local else None
        if claimed is not None:
            check_dimensions(self.source, *claimed)
        check_dimensions(self.source, int(ctx.width), int(ctx.height))
        self._constant_rate = fmt == "avi"
        # Files: frame + slice threads (throughput). Live: slice threads only,
        # since frame threading holds back one frame per thread (latency).
        stream.thread_type = "SLICE" if self.live else "AUTO"
        ctx.thread_count = self._threads
        self._stream = stream
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else None
        if fps is not None and not MIN_PLAUSIBLE_FPS <= fps <= MAX_PLAUSIBLE_FPS:
            # Kept (timestamps follow the file), but said: clip lengths in
            # seconds and real-time factors built on it mean nothing.
            self.stats.note(
                f"implausible frame rate {fps:g} fps in the header (ultrasound "
                f"cine runs {MIN_PLAUSIBLE_FPS:g}-{MAX_PLAUSIBLE_FPS:g} fps)"
            )
            log.warning("%s: implausible frame rate %g fps in the header", self.source, fps)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = None
        self._duration_s = duration
        if fps and duration and not stream.frames:
            self._expected_frames = round(duration * fps)
        return VideoMeta(
            source=self.source,
            width=int(ctx.width),
            height=int(ctx.height),
            fps=fps,
            frame_count=int(stream.frames) if stream.frames else None,
            codec=str(ctx.name),
            duration_s=None if self.live else duration,
            container=fmt,
            pixel_format=str(ctx.pix_fmt or ""),
            is_live=self.live,
        )

    def _open_error(self, exc: av.error.FFmpegError, elapsed_s: float) -> VideoError:
        text = error_text(exc)
        if self.live:
            # An interrupted open surfaces as ExitError, TimeoutError or (RTSP
            # mid-handshake) InvalidDataError: the elapsed time tells them apart.
            timed_out = elapsed_s >= 0.9 * self._open_timeout_s
            if timed_out or isinstance(exc, av.error.ExitError | av.error.TimeoutError):
                return StreamTimeoutError(
                    self.source, f"no answer within {self._open_timeout_s:g} s ({text})"
                )
            return StreamDisconnectedError(self.source, f"could not connect ({text})")
        cut = self._truncation()
        if cut is not None:
            return TruncatedVideoError(self.source, f"file is cut short, no frame readable ({cut})")
        if isinstance(exc, av.error.EOFError):
            return EmptyVideoError(self.source, f"container ends before any frame ({text})")
        if isinstance(exc, av.error.InvalidDataError):
            return NotAVideoError(self.source, f"not a video FFmpeg can read ({text})")
        if isinstance(exc, av.error.ExitError):
            return CorruptVideoError(
                self.source, f"opening stalled beyond {self._open_timeout_s:g} s ({text})"
            )
        return VideoError(self.source, f"could not open ({text})")

    # --- frames ------------------------------------------------------------------
    def _produce(self) -> Generator[Frame | Dropped | Ended, None, None]:
        stream = self._stream
        time_base = stream.time_base
        fps = float(stream.average_rate) if stream.average_rate else None
        fmt = "rgb24" if self.color == "rgb" else "gray"
        declared = int(stream.frames) if stream.frames else None
        position = 0  # decoded + dropped: the frame's position in the stream
        first_pts: int | None = None
        dropped = 0
        demuxer = self._container.demux(stream)
        while True:
            try:
                packet = next(demuxer)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:
                # Frames still inside the (threaded) decoder come out first.
                for frame in _flush(stream):
                    yield self._frame(frame, position, first_pts, fps, time_base, fmt)
                    position += 1
                yield self._demux_failure(exc, position)
                return
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                position += 1
                dropped += 1
                yield Dropped(f"frame {position - 1}: {error_text(exc)}")
                continue
            for frame in frames:
                if first_pts is None and frame.pts is not None:
                    first_pts = frame.pts
                yield self._frame(frame, position, first_pts, fps, time_base, fmt)
                position += 1
        yield from self._end(position, dropped, declared)

    def _truncation(self) -> str | None:
        if self.live or "://" in self.source or not Path(self.source).is_file():
            return None
        return truncation_reason(Path(self.source))

    def _end(self, position: int, dropped: int, declared: int | None) -> Iterator[Dropped | Ended]:
        """The end of a stream the demuxer read to its end (EOF)."""
        if self.live:
            yield Ended(
                "disconnected",
                StreamDisconnectedError(self.source, f"stream ended after {position} frames"),
            )
            return
        if position == dropped:
            # Raised, not just reported: there is nothing for the caller to use.
            yield Ended("error", self._nothing_decoded(position, declared))
            return
        cut = self._truncation()
        if cut is not None:
            yield Ended(
                "truncated",
                TruncatedVideoError(
                    self.source, f"file is cut short after {position} frames ({cut})"
                ),
            )
            return
        expected = self._expected_frames
        if (
            declared is None
            and expected is not None
            and position < 0.9 * expected - 1
            and not self._reached_the_end()
        ):
            # No frame count in the header (MPEG-PS/TS) and the frames stop well
            # before the container's duration: the duration at the frame rate
            # is the only sign of lost frames. (Frames that reach the end at
            # uneven intervals are a variable frame rate, not a loss.)
            declared = expected
        missing = declared - position if declared is not None and position < declared else 0
        if missing:  # frames the header lists that the demuxer never found: one notice
            yield Dropped(
                f"frames {position}-{position + missing - 1}: listed in the header, "
                "missing from the container (damaged data or a false header)",
                count=missing,
            )
        lost = dropped + missing
        if lost:
            yield Ended(
                "eof",
                CorruptVideoError(
                    self.source,
                    f"{lost} of {position + missing} frames were undecodable or missing",
                ),
            )
            return
        yield Ended("eof")

    def _nothing_decoded(self, position: int, declared: int | None) -> VideoError:
        """Why a file that opened gave no frame at all: cut short, damaged or empty."""
        cut = self._truncation()  # first: a cut file also "holds zero frames"
        if cut is not None:
            return TruncatedVideoError(self.source, f"file is cut short, no frame readable ({cut})")
        if position:
            return CorruptVideoError(self.source, f"none of its {position} frames could be decoded")
        if declared:
            return CorruptVideoError(
                self.source,
                f"its header lists {declared} frames but none could be read (truncated or damaged)",
            )
        return EmptyVideoError(self.source, "holds a video stream with zero frames")

    def _reached_the_end(self) -> bool:
        """Whether the last frame's timestamp is near the container's duration."""
        if self._duration_s is None or self._constant_rate or self._last_t < 0:
            return False
        return self._last_t >= 0.9 * self._duration_s - 0.1

    def _frame(
        self,
        frame: Any,
        position: int,
        first_pts: int | None,
        fps: float | None,
        time_base: Any,
        fmt: str,
    ) -> Frame:
        t_index = position / fps if fps else float(position)
        if self._constant_rate or frame.pts is None or first_pts is None or time_base is None:
            t = t_index
        else:
            t = float((frame.pts - first_pts) * time_base)
            if t <= self._last_t:
                # Timestamps out of order (B-frames in a container without
                # presentation times): trust the frame rate from here on.
                self._constant_rate = True
                t = max(t_index, self._last_t + 1e-6)
        self._last_t = t
        if frame.is_corrupt:
            self.stats.note(f"frame {position}: decoder concealed damage")
        return Frame(index=position, timestamp_s=t, image=frame.to_ndarray(format=fmt))

    def _demux_failure(self, exc: av.error.FFmpegError, position: int) -> Ended:
        text = error_text(exc)
        if self.live:
            if isinstance(exc, av.error.ExitError | av.error.TimeoutError):
                return Ended(
                    "timeout",
                    StreamTimeoutError(
                        self.source,
                        f"no data for {self._read_timeout_s:g} s after {position} frames ({text})",
                    ),
                )
            return Ended(
                "disconnected",
                StreamDisconnectedError(
                    self.source, f"connection lost after {position} frames ({text})"
                ),
            )
        cut = self._truncation()
        if cut is not None:
            return Ended(
                "truncated",
                TruncatedVideoError(
                    self.source, f"file is cut short after {position} frames ({cut}; {text})"
                ),
            )
        return Ended(
            "corrupt",
            CorruptVideoError(
                self.source, f"container unreadable after {position} frames ({text})"
            ),
        )

    def _release(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except av.error.FFmpegError as exc:  # closing a broken stream may complain
                log.debug("%s: close: %s", self.source, exc)
            self._container = None


def _flush(stream: Any) -> list[Any]:
    try:
        return list(stream.codec_context.decode(None))
    except av.error.FFmpegError:
        return []


def sniff_file(path: Path) -> None:
    """Check the path is a non-empty file (or a FIFO) before handing it to a decoder."""
    from sonorisk.errors import VideoNotFoundError

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        why = "a link to a missing file" if path.is_symlink() else "no such file"
        raise VideoNotFoundError(path, why) from None
    except OSError as exc:
        raise VideoError(path, f"cannot be read ({error_text(exc)})") from None
    kind = special_file_kind(mode)
    if kind == "directory":
        raise NotAVideoError(path, "is a directory, not a video file")
    if stat.S_ISFIFO(mode):  # a pipe has no size; the read watchdog guards it
        return
    if kind is not None:
        raise NotAVideoError(
            path,
            f"is a {kind}, not a regular file: refused (sonorisk reads "
            "video files, FIFOs and stream URLs)",
        )
    if path.stat().st_size == 0:
        raise EmptyVideoError(path, "file is empty (0 bytes)")
