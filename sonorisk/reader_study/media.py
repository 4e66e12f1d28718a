"""Browser-playable media: every study video is served as an H.264 MP4.

Scanners export AVI/MJPEG and DICOM cine, which browsers do not play; the study
transcodes each video once, at creation, through the project's own reader
(``sonorisk.io.open_video``) and writer (``sonorisk.io.writer``, libx264).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def transcode_h264(source: str | Path, target: str | Path,
                   fallback_fps: float | None = None) -> Transcoded:
    """Decode ``source`` (any format sonorisk reads) and encode ``target`` as H.264 MP4.

    Odd frame sizes lose their last row/column (H.264 4:2:0 needs even sizes).
    """
    from sonorisk.io import open_video
    from sonorisk.io.writer import VideoWriter

    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.stem + ".part.mp4")
    writer: VideoWriter | None = None
    try:
        with open_video(source, color="rgb") as video:
            fps = video.meta.fps or fallback_fps
            if not fps or fps <= 0:
                raise InputError(source, "frame rate unknown: cannot time the video")
            for frame in video:
                image = frame.image
                h, w = image.shape[:2]
                image = image[: h - h % 2, : w - w % 2]
                if writer is None:
                    writer = VideoWriter(tmp, fps, image.shape[1], image.shape[0], codec="h264")
                writer.write(image)
    finally:
        if writer is not None:
            writer.close()
    if writer is None or writer.frames_written == 0:
        tmp.unlink(missing_ok=True)
        raise InputError(source, "no decodable frame: nothing to show readers")
    tmp.replace(target)
    return Transcoded(target, writer.frames_written, float(fps), image.shape[1], image.shape[0])
