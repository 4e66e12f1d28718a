"""A detector that answers with known boxes (ground truth or saved detections).

Used to measure the tracker and keyframe propagation apart from detector
quality (an upper bound: what tracking does with a perfect detector), and to
replay detections saved from an earlier run. It counts its calls, so the
keyframe speed-up can be checked as detector calls saved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sonorisk.detector.interface import FrameLike, as_frames
from sonorisk.records import Box, Detection


class ReferenceDetector:
    """``FrameDetector`` over a mapping frame index -> boxes (score ``score``)."""

    def __init__(
        self, boxes: Mapping[int, Sequence[Box]], score: float = 1.0, source: str = "ground truth"
    ) -> None:
        self.boxes = {int(k): list(v) for k, v in boxes.items()}
        self.score = score
        self.calls = 0
        self.frames_seen = 0
        self.info: dict[str, Any] = {"backend": "reference", "source": source}

    def predict(
        self, frames: Sequence[FrameLike], frame_indices: Sequence[int] | None = None
    ) -> list[list[Detection]]:
        self.calls += 1
        out = []
        for frame in as_frames(frames, frame_indices):
            self.frames_seen += 1
            out.append(
                [
                    Detection(frame.index, (float(x1), float(y1), float(x2), float(y2)), self.score)
                    for x1, y1, x2, y2 in self.boxes.get(frame.index, [])
                ]
            )
        return out
