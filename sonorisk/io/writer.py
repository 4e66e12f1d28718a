"""Write frames to a video file through PyAV.

Used by the sweep synthesizer (AVI/MJPEG, as scanners export), the overlay
writer and the tests that need real files in several codecs.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import cast

import av
import numpy as np


def constant_quality(qscale: int) -> dict[str, str]:
    """Encoder options for a fixed quantiser (ffmpeg's ``-q:v``; 2 best, 31 worst).

    ``-q:v`` is an option of the ffmpeg program, not of libavcodec: given to an
    encoder through PyAV it is silently ignored, and MJPEG then runs
    rate-controlled at its default bit rate, every frame of a sweep smaller
    and blurrier than the one before (30 kB to 8 kB a 480x360 frame over the
    first 10 frames, about the size quantiser 31 gives). The program sets each
    frame's quality; through the library, pinning the quantiser range does it
    (``global_quality`` alone leaves it at ``qmin``, 2).
    """
    q = str(qscale)
    return {"flags": "+qscale", "qmin": q, "qmax": q}


# codec name -> (PyAV encoder, pixel format, extra encoder options)
CODECS: dict[str, tuple[str, str, dict[str, str]]] = {
    "mjpeg": ("mjpeg", "yuvj420p", constant_quality(3)),
    "mpeg4": ("mpeg4", "yuv420p", constant_quality(4)),  # MPEG-4 Part 2 (XVID-like)
    "h264": ("libx264", "yuv420p", {"preset": "veryfast", "crf": "20"}),
    "rawvideo": ("rawvideo", "bgr24", {}),
    "mpeg2video": ("mpeg2video", "yuv420p", constant_quality(4)),
}
QSCALE_CODECS = frozenset({"mjpeg", "mpeg4", "mpeg2video"})


def qscale_problem(codec: str, qscale: int) -> str | None:
    """What is wrong with quantiser ``qscale`` for ``codec``, or None (the one
    check the writer, ``sonorisk synth`` and ``dataset rescale`` share)."""
    if codec not in QSCALE_CODECS:
        return f"{codec} takes no quantiser; only {sorted(QSCALE_CODECS)} do"
    if not 2 <= qscale <= 31:
        return f"must be 2 (best) to 31 (worst), got {qscale}"
    return None


def quantiser(codec: str, qscale: int | None = None) -> int | None:
    """The constant quantiser a file written with ``codec`` (and ``qscale``) gets,
    or None for codecs that take none (what a dataset table records)."""
    if codec not in QSCALE_CODECS:
        return None
    if qscale is not None:
        return qscale
    return int(CODECS[codec][2]["qmin"])


class VideoWriter:
    """Context manager that encodes uint8 frames (HxW gray or HxWx3 RGB)."""

    def __init__(
        self,
        path: str | Path,
        fps: float,
        width: int,
        height: int,
        codec: str = "mjpeg",
        qscale: int | None = None,
    ) -> None:
        """``qscale``: another quantiser (2 best to 31 worst) for the codecs that
        take one (``QSCALE_CODECS``), e.g. to make an export more compressed."""
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}; choose from {sorted(CODECS)}")
        encoder, pix_fmt, options = CODECS[codec]
        if qscale is not None:
            problem = qscale_problem(codec, qscale)
            if problem:
                raise ValueError(f"qscale: {problem}")
            options = constant_quality(qscale)
        if codec != "rawvideo" and (width % 2 or height % 2):
            raise ValueError(f"{codec} needs even frame dimensions, got {width}x{height}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container: av.container.OutputContainer | None = av.open(str(self.path), mode="w")
        rate = Fraction(fps).limit_denominator(1001)
        # a video encoder (CODECS), so add_stream gives a VideoStream
        self._stream = cast("av.VideoStream", self._container.add_stream(encoder, rate=rate))
        self._stream.width = width
        self._stream.height = height
        self._stream.pix_fmt = pix_fmt
        self._stream.options = dict(options)
        self._stream.time_base = 1 / rate
        self.frames_written = 0

    def write(self, image: np.ndarray) -> None:
        if self._container is None:
            raise ValueError(f"{self.path}: the writer is closed")
        if image.dtype != np.uint8:
            raise ValueError(f"frames must be uint8, got {image.dtype}")
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        h, w = image.shape[:2]
        if (w, h) != (self._stream.width, self._stream.height):
            raise ValueError(
                f"frame is {w}x{h}, stream is {self._stream.width}x{self._stream.height}"
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.frames_written
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    codec: str = "mjpeg",
    even: bool = False,
    qscale: int | None = None,
) -> int:
    """Encode ``frames`` to ``path``; returns the number of frames written.

    ``even`` trims a last odd row/column from every frame (H.264 and MPEG-4
    need even sizes; browsers and players need H.264). ``qscale``: as for
    ``VideoWriter``.
    """
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError(f"{path}: no frames to write")

    def trim(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        return image[: h - h % 2, : w - w % 2] if even else image

    first = trim(first)
    height, width = first.shape[:2]
    with VideoWriter(path, fps, width, height, codec, qscale) as writer:
        writer.write(first)
        for image in iterator:
            writer.write(trim(image))
        return writer.frames_written
