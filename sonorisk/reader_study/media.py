"""Browser-playable media: every study video is served as an H.264 MP4.

Scanners export AVI/MJPEG and DICOM cine, which browsers do not play; the study
transcodes each video once, at creation, through the project's own reader
(``sonorisk.io.open_video``) and writer (``sonorisk.io.writer``, libx264).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sonorisk.errors import InputError


@dataclass(frozen=True)
class Transcoded:
    path: Path
    frames: int
    fps: float
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def transcode_h264(
    source: str | Path, target: str | Path, fallback_fps: float | None = None
) -> Transcoded:
    """Decode ``source`` (any format sonorisk reads) and encode ``target`` as H.264 MP4.

    Odd frame sizes lose their last row/column (H.264 4:2:0 needs even sizes).
    """
    from sonorisk.io import open_video
    from sonorisk.io.writer import write_video

    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.stem + ".part.mp4")
    fps = 0.0

    def images() -> Iterator[np.ndarray]:
        nonlocal fps  # known once the first frame has been asked for
        with open_video(source, color="rgb") as video:
            rate = video.meta.fps or fallback_fps
            if not rate or rate <= 0:
                raise InputError(source, "frame rate unknown: cannot time the video")
            fps = rate
            for frame in video:
                yield frame.image

    frames = images()
    first = next(frames, None)
    if first is None:
        raise InputError(source, "no decodable frame: nothing to show readers")
    written = write_video(tmp, itertools.chain([first], frames), fps, codec="h264", even=True)
    tmp.replace(target)
    height, width = first.shape[:2]  # the writer trims odd sizes to even ones
    return Transcoded(target, written, float(fps), width - width % 2, height - height % 2)
