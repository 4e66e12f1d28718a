"""Pictures of a result: heatmap strips per clip, and an overlay video.

Colours follow the paper's Fig. 6: on a heatmap red is malignant evidence and
blue benign evidence (0.5 is neutral); on the overlay, lesion boxes are green
with the probability of the clip that covers the frame above them. Every
overlay frame carries a banner saying it is research output.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from sonorisk.io.writer import write_video
from sonorisk.pipeline.scorer import LesionRecord, VideoResult
from sonorisk.records import ClipScore, Frame

BANNER = "RESEARCH OUTPUT - NOT FOR CLINICAL USE"


def heatmap_strip(crops: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """A clip's crops (T x H x W x 3 uint8) over its heatmap (T x H x W in [0, 1]),
    side by side: top row the crops, bottom row the overlays (RGB uint8)."""
    if crops.shape[:3] != heatmap.shape:
        raise ValueError(f"crops {crops.shape[:3]} and heatmap {heatmap.shape} differ")
    top, bottom = [], []
    for crop, heat in zip(crops, heatmap, strict=True):
        colour = cv2.applyColorMap((np.clip(heat, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
        colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
        top.append(crop)
        bottom.append(cv2.addWeighted(crop, 1 - alpha, colour, alpha, 0))
    return np.vstack([np.hstack(top), np.hstack(bottom)])


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write PNG")
    return path


def write_heatmaps(result: VideoResult, out_dir: Path, stem: str) -> dict[tuple[int, int], str]:
    """A strip per scored clip with a heatmap, named by its (merged) lesion and clip:
    ``<stem>.heatmaps/lesion<L>_clip<C>.png``. Returns the names (relative to
    ``out_dir``) by (lesion id, clip index), as the document lists them."""
    names: dict[tuple[int, int], str] = {}
    for lesion in result.lesions:
        for score in lesion.scores:
            crops = lesion.crops.get(score.clip_index)
            if crops is None or score.heatmap is None:
                continue
            name = f"{stem}.heatmaps/lesion{lesion.lesion_id}_clip{score.clip_index}.png"
            write_png(out_dir / name, heatmap_strip(crops, score.heatmap))
            names[(lesion.lesion_id, score.clip_index)] = name
    return names


def clip_covering(scores: list[ClipScore], frame_index: int) -> ClipScore | None:
    for score in scores:
        if score.frame_indices and score.frame_indices[0] <= frame_index <= score.frame_indices[-1]:
            return score
    return None


MIN_OVERLAY_WIDTH = 640  # smaller videos are enlarged so the labels stay legible


def draw_frame(
    image: np.ndarray,
    frame_index: int,
    lesions: Iterable[LesionRecord],
    video_risk: float | None,
    *,
    still: bool = False,
) -> np.ndarray:
    """One overlay frame: lesion boxes, clip probabilities, running video risk.
    ``still``: a still image's overlay (its one "clip" is the lesion's score)."""
    canvas = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    zoom = max(1.0, MIN_OVERLAY_WIDTH / canvas.shape[1])
    if zoom > 1.0:
        canvas = cv2.resize(canvas, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LINEAR)
    canvas = np.ascontiguousarray(canvas.copy())
    scale = canvas.shape[1] / 1000
    thick = max(1, round(scale * 2))
    for record in lesions:
        box = record.boxes.get(frame_index)
        if box is None:
            continue
        x1, y1, x2, y2 = (round(v * zoom) for v in box.box)
        observed = box.source in ("detector", "backfilled")
        colour = (0, 220, 0) if observed else (150, 230, 150)
        if record.candidate:  # not confidently a lesion: grey, and no number
            colour = (160, 160, 160)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thick)
        clip = clip_covering(record.scores, frame_index)
        label = f"L{record.lesion_id}"
        if record.candidate:
            label += " candidate (not scored)"
        elif clip is not None and still:
            label += f": p={clip.probability:.2f}"
        elif clip is not None:
            label += f" clip {clip.clip_index}: p={clip.probability:.2f}"
        cv2.putText(
            canvas,
            label,
            (x1, max(int(40 * scale), y1 - 6)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.8 * scale,
            colour,
            thick,
            cv2.LINE_AA,
        )
    risk = "n/a" if video_risk is None else f"{video_risk:.2f}"
    bar = int(30 * scale)
    cv2.rectangle(canvas, (0, 0), (canvas.shape[1], bar), (0, 0, 0), -1)
    cv2.putText(
        canvas,
        f"{BANNER}   {'image' if still else 'video'} risk {risk}",
        (6, int(bar * 0.72)),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.7 * scale,
        (255, 255, 0),
        max(1, thick // 2),
        cv2.LINE_AA,
    )
    return canvas


def write_overlay(
    path: Path,
    frames: Iterable[Frame],
    lesions: list[LesionRecord],
    video_risk: float | None,
    fps: float,
) -> int:
    """Encode the overlay video (H.264 MP4; even-sized frames). Returns frames written."""
    canvases = (draw_frame(frame.image, frame.index, lesions, video_risk) for frame in frames)
    first = next(canvases, None)
    if first is None:
        return 0
    return write_video(path, itertools.chain([first], canvases), fps, codec="h264", even=True)


def write_still_overlay(out_dir: Path, stem: str, image: np.ndarray, result: VideoResult) -> str:
    """A still's overlay: the image with its lesion boxes and scores, as
    ``<stem>.overlay.png`` (a still has no video to draw on). Returns the name
    relative to ``out_dir``."""
    name = f"{stem}.overlay.png"
    write_png(out_dir / name, draw_frame(image, 0, result.lesions, result.risk, still=True))
    return name
