"""Video files and RTSP streams through PyAV (FFmpeg).

Files: AVI (MJPEG, MPEG-4 Part 2/XVID, H.264, raw), MP4, MOV, MPEG-PS and
whatever else FFmpeg demuxes, decoded with FFmpeg's own threads. RTSP: the same
decoder behind ``av.open(url, timeout=(open_s, read_s))`` so a silent or dead
peer ends the read instead of blocking forever.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
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
from sonorisk.io.source import Color, Dropped, Ended, VideoSource, check_dimensions
from sonorisk.records import Frame, VideoMeta

log = logging.getLogger(__name__)

# FFmpeg demuxers that read single still images (a PNG "opens" as a 1-frame video).
_STILL_IMAGE_DEMUXERS = {"image2", "image2pipe"}


def _is_still_image_format(name: str) -> bool:
    return any(part in _STILL_IMAGE_DEMUXERS or part.endswith("_pipe")
               for part in name.split(","))


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
        # The worker's own deadlines sit just behind PyAV's so PyAV's typed
        # error (not the watchdog) normally reports a network stall.
        super().__init__(
            source,
            color=color,
            open_timeout_s=open_timeout_s + 5.0,
            frame_timeout_s=max(frame_timeout_s, read_timeout_s + 5.0),
            live=live,
            strict=strict,
        )

    # --- open ------------------------------------------------------------------
    def _open(self) -> VideoMeta:
        try:
            self._container = av.open(
                self._url,
                mode="r",
                options=self._options,
                timeout=(self._open_timeout_s, self._read_timeout_s),
            )
        except av.error.FFmpegError as exc:
            raise self._open_error(exc) from exc
        container = self._container
        fmt = container.format.name
        if _is_still_image_format(fmt):
            raise NotAVideoError(self.source, f"is a still image ({fmt}), not a video")
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise NotAVideoError(
                self.source, f"has no video stream ({fmt} container with {', '.join(kinds)})"
            )
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None or not ctx.name:
            raise UnsupportedVideoError(self.source, "video codec has no decoder in this FFmpeg")
        check_dimensions(self.source, int(ctx.width), int(ctx.height))
        stream.thread_type = "AUTO"  # frame+slice threads; FFmpeg picks the count
        ctx.thread_count = self._threads
        self._stream = stream
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = None
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

    def _open_error(self, exc: av.error.FFmpegError) -> VideoError:
        text = f"{type(exc).__name__}: {exc.strerror or exc}"
        if self.live:
            if isinstance(exc, av.error.ExitError | av.error.TimeoutError):
                return StreamTimeoutError(
                    self.source, f"no answer within {self._open_timeout_s:g} s ({text})"
                )
            return StreamDisconnectedError(self.source, f"could not connect ({text})")
        if isinstance(exc, av.error.InvalidDataError):
            return NotAVideoError(self.source, f"not a video FFmpeg can read ({text})")
        if isinstance(exc, av.error.ExitError):
            return CorruptVideoError(
                self.source, f"opening stalled beyond {self._open_timeout_s:g} s ({text})"
            )
        return VideoError(self.source, f"could not open ({text})")

    # --- frames ------------------------------------------------------------------
    def _produce(self) -> Iterator[Frame | Dropped | Ended]:
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
                yield self._demux_failure(exc, position, declared)
                return
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                position += 1
                dropped += 1
                yield Dropped(f"frame {position - 1}: {type(exc).__name__}: {exc.strerror}")
                continue
            for frame in frames:
                if first_pts is None and frame.pts is not None:
                    first_pts = frame.pts
                if frame.pts is not None and first_pts is not None and time_base is not None:
                    t = float((frame.pts - first_pts) * time_base)
                else:
                    t = position / fps if fps else float(position)
                if frame.is_corrupt:
                    self.stats.note(f"frame {position}: decoder concealed damage")
                image = frame.to_ndarray(format=fmt)
                yield Frame(index=position, timestamp_s=t, image=image)
                position += 1
        delivered = position - dropped
        if self.live:
            yield Ended(
                "disconnected",
                StreamDisconnectedError(self.source, f"stream ended after {position} frames"),
            )
            return
        if position == 0:
            # Raised, not just reported: there is nothing for the caller to use.
            yield Ended("error", EmptyVideoError(self.source, "holds a video stream with zero frames"))
            return
        if delivered == 0:
            yield Ended("error", CorruptVideoError(
                self.source, f"none of its {position} frames could be decoded"))
            return
        if declared is not None and position < declared:
            yield Ended(
                "truncated",
                TruncatedVideoError(
                    self.source,
                    f"data ends after {position} of the {declared} frames the header declares",
                ),
            )
            return
        yield Ended("eof")

    def _demux_failure(self, exc: av.error.FFmpegError, position: int,
                       declared: int | None) -> Ended:
        text = f"{type(exc).__name__}: {exc.strerror or exc}"
        if self.live:
            if isinstance(exc, av.error.ExitError | av.error.TimeoutError):
                return Ended("timeout", StreamTimeoutError(
                    self.source,
                    f"no data for {self._read_timeout_s:g} s after {position} frames ({text})",
                ))
            return Ended("disconnected", StreamDisconnectedError(
                self.source, f"connection lost after {position} frames ({text})"))
        if declared is not None and position < declared:
            return Ended("truncated", TruncatedVideoError(
                self.source, f"data ends after {position} of {declared} declared frames ({text})"))
        return Ended("corrupt", CorruptVideoError(
            self.source, f"container unreadable after {position} frames ({text})"))

    def _release(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except av.error.FFmpegError as exc:  # closing a broken stream may complain
                log.debug("%s: close: %s", self.source, exc)
            self._container = None


def sniff_file(path: Path) -> None:
    """Check the file exists and is non-empty before handing it to a decoder."""
    from sonorisk.errors import VideoNotFoundError

    if not path.exists():
        raise VideoNotFoundError(path, "no such file")
    if path.is_dir():
        raise NotAVideoError(path, "is a directory, not a video file")
    if path.stat().st_size == 0:
        raise EmptyVideoError(path, "file is empty (0 bytes)")
