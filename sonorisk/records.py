"""The small typed records that flow between pipeline stages.

Every stage consumes and produces these, so the file scorer and the
live-stream server share one pipeline (docs/design.md); the reader study reads
the JSON documents scoring stored, not these records.
Images are numpy arrays; boxes are ``(x1, y1, x2, y2)`` floats in the pixel
coordinates of the source frame (after any scan-region crop, the crop offset is
recorded so boxes can be mapped back).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class VideoMeta:
    """What is known about a video before (or while) its frames are read."""

    source: str
    width: int
    height: int
    fps: float | None
    frame_count: int | None  # None when the container does not say (live streams)
    codec: str
    duration_s: float | None
    container: str = ""
    pixel_format: str = ""
    is_live: bool = False


@dataclass(frozen=True)
class Frame:
    """One decoded frame. ``image`` is HxW (gray) or HxWx3 (RGB), uint8."""

    index: int
    timestamp_s: float
    image: np.ndarray

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class Detection:
    """A lesion candidate in one frame."""

    frame_index: int
    box: Box
    score: float
    label: str = "lesion"


@dataclass
class Track:
    """Detections of one lesion linked over frames (ordered by frame index)."""

    track_id: int
    detections: list[Detection] = field(default_factory=list)

    @property
    def frame_indices(self) -> list[int]:
        return [d.frame_index for d in self.detections]

    def __len__(self) -> int:
        return len(self.detections)


@dataclass(frozen=True)
class Clip:
    """Consecutive frames of one track, cropped to the lesion.

    ``crops`` is T x H x W x C uint8 (T = 8 by the paper's rule).
    """

    track_id: int
    clip_index: int
    frame_indices: tuple[int, ...]
    boxes: tuple[Box, ...]
    crops: np.ndarray


@dataclass(frozen=True)
class ClipScore:
    """A classifier's output for one clip."""

    track_id: int
    clip_index: int
    frame_indices: tuple[int, ...]
    probability: float  # P(malignant)
    class_probabilities: dict[str, float] = field(default_factory=dict)
    heatmap: np.ndarray | None = None  # T x H x W float in [0, 1], or None
    # P(the crops show a lesion at all), from the classifier's lesion check;
    # None when the model has none.
    lesion_probability: float | None = None


class LesionStatus(StrEnum):
    SCORED = "scored"
    NO_SCORABLE_LESION = "no scorable lesion"
    # A track the system is not confident is a lesion (pipeline.lesions):
    # reported with its boxes and confidence, never scored.
    CANDIDATE = "candidate"


@dataclass(frozen=True)
class LesionRisk:
    """The running (or final) risk of one lesion: the mean of its clips.

    ``risk`` is None when no clip of the lesion could be scored; sonorisk never
    invents a number for it.
    """

    track_id: int
    risk: float | None
    clips_used: int
    status: LesionStatus
    confidence: float | None = None  # that it is a lesion at all (pipeline.lesions)
