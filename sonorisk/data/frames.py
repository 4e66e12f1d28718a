"""Frame access for dataset items: still images and frames of video files.

Uses PyAV directly (sonorisk.io's reader is for live and archived inputs with
error recovery; a dataset's files were written by us or validated on import).
Random access keeps one decoder open and decodes forward, so reading a video's
frames in order costs one decode; going backwards seeks straight to the frame in
intra-only codecs (MJPEG, as synthesized) and restarts from the start otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from sonorisk.errors import DatasetError

if TYPE_CHECKING:
    import av

# PyAV is imported where a video is opened, not here: still folders and splits
# (sonorisk.data) then work where PyAV is not installed (a bare GPU machine
# training the detector on packed stills: scripts/gpu_detector.sh).


def read_still(path: str | Path, color: str = "rgb") -> np.ndarray:
    """Read a still image as HxWx3 RGB (``color="rgb"``) or HxW gray uint8."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "missing file")
    flag = cv2.IMREAD_GRAYSCALE if color == "gray" else cv2.IMREAD_COLOR
    image = cv2.imread(str(path), flag)
    if image is None:
        raise DatasetError(path, "not a readable image")
    if color == "gray":
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _to_array(frame: av.VideoFrame, color: str) -> np.ndarray:
    if color == "gray":
        return frame.to_ndarray(format="gray")
    return frame.to_ndarray(format="rgb24")


# Codecs whose every frame is a key frame: seeking by timestamp lands exactly.
INTRA_ONLY_CODECS = frozenset({"mjpeg", "rawvideo", "png", "ffv1", "huffyuv", "utvideo"})


class _OpenVideo:
    """One open video with a decoder positioned somewhere in it.

    Frame indices are decode positions (0, 1, 2 ...), not timestamps: AVI keeps
    no presentation time for B-frames, so timestamps are only trusted to seek
    in intra-only codecs, where a frame's timestamp is its index.
    """

    def __init__(self, path: Path) -> None:
        import av

        self.path = path
        try:
            self.container = av.open(str(path))
        except (av.FFmpegError, OSError) as exc:
            raise DatasetError(path, f"cannot open video ({exc})") from exc
        if not self.container.streams.video:
            self.container.close()
            raise DatasetError(path, "file holds no video stream")
        self.stream = self.container.streams.video[0]
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.rate = float(rate) if rate else None
        self.time_base = self.stream.time_base
        self.intra_only = self.stream.codec_context.name in INTRA_ONLY_CODECS
        self._iter: Iterator[av.VideoFrame] | None = None
        self.next_index = 0  # index of the frame the decoder yields next

    def _restart(self, target: int) -> None:
        """Position the decoder at frame ``target`` (intra-only) or at the start."""
        if target > 0 and self.intra_only and self.rate and self.time_base:
            pts = int(round(target / self.rate / float(self.time_base)))
            self.container.seek(pts, stream=self.stream, backward=True, any_frame=False)
            self._iter = self.container.decode(self.stream)
            first = next(self._iter, None)
            if first is not None and first.pts is not None:
                index = int(round(float(first.pts * self.time_base) * self.rate))
                if index <= target:
                    self._pending = (index, first)
                    return
            # The seek did not land where expected: fall back to decoding from the start.
        self.container.seek(0, stream=self.stream)
        self._iter = self.container.decode(self.stream)
        self._pending = None
        self.next_index = 0

    _pending: tuple[int, av.VideoFrame] | None = None

    def _frames(self) -> Iterator[tuple[int, av.VideoFrame]]:
        assert self._iter is not None
        if self._pending is not None:
            index, frame = self._pending
            self._pending = None
            self.next_index = index + 1
            yield index, frame
        for frame in self._iter:
            index = self.next_index
            self.next_index += 1
            yield index, frame

    def read(self, target: int, color: str) -> np.ndarray:
        import av

        if self._iter is None or target < self.next_index:
            self._restart(target)
        try:
            for index, frame in self._frames():
                if index == target:
                    return _to_array(frame, color)
        except av.FFmpegError as exc:
            raise DatasetError(self.path, f"cannot decode frame {target} ({exc})") from exc
        self._iter = None
        raise DatasetError(self.path, f"frame index {target} beyond the video")

    def close(self) -> None:
        self.container.close()


class VideoFrameReader:
    """Reads frames by index, keeping the last video open between calls."""

    def __init__(self) -> None:
        self._open: _OpenVideo | None = None

    def read(self, path: str | Path, index: int, color: str = "rgb") -> np.ndarray:
        path = Path(path)
        if not path.is_file():
            raise DatasetError(path, "missing file")
        if self._open is None or self._open.path != path:
            self.close()
            self._open = _OpenVideo(path)
        return self._open.read(index, color)

    def close(self) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None

    @staticmethod
    def iterate(path: str | Path, color: str = "rgb") -> Iterator[tuple[int, np.ndarray]]:
        """(index, image) for every frame, decoded once in order."""
        import av

        video = _OpenVideo(Path(path))
        try:
            for position, frame in enumerate(video.container.decode(video.stream)):
                yield position, _to_array(frame, color)
        except av.FFmpegError as exc:
            raise DatasetError(path, f"cannot decode ({exc})") from exc
        finally:
            video.close()

    @staticmethod
    def probe(path: str | Path) -> tuple[int, int, int]:
        """(width, height, frame count); counts by demuxing when the header does not say."""
        import av

        video = _OpenVideo(Path(path))
        try:
            width, height = video.stream.width, video.stream.height
            count = video.stream.frames
            if not count:
                count = sum(1 for packet in video.container.demux(video.stream) if packet.size > 0)
            return int(width), int(height), int(count)
        except av.FFmpegError as exc:
            raise DatasetError(path, f"cannot read ({exc})") from exc
        finally:
            video.close()
