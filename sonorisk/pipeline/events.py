"""What the incremental pipeline emits, in order, as frames go in.

The events are the scorer's only output: every consumer (the score document,
Server-Sent Events of a live stream, the overlay and heatmap writers; see
``sinks.py`` and ``fold.py``) reads the same events whether the frames came
from a file or a live stream. So an event carries everything its consumers
need: a finished lesion its boxes, a scored clip its crops when heatmaps are
asked for, the end of the video its timing and scan region.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sonorisk.records import Box, ClipScore, LesionRisk

if TYPE_CHECKING:  # the scorer imports this module; these are only annotations
    import numpy as np

    from sonorisk.io.scan_region import ScanRegion
    from sonorisk.pipeline.scorer import StageTiming

BoxSource = Literal["detector", "propagated", "interpolated", "backfilled"]


@dataclass(frozen=True)
class LesionBox:
    """One lesion's box in one frame, with how it was obtained."""

    lesion_id: int
    box: Box  # source-frame pixels
    score: float
    source: BoxSource


@dataclass(frozen=True)
class FrameBoxes:
    """The tracked lesion boxes of one frame (possibly none)."""

    frame_index: int
    timestamp_s: float
    boxes: tuple[LesionBox, ...]
    keyframe: bool  # the detector ran on this frame
    latency_s: float  # frame pushed -> this event emitted


@dataclass(frozen=True)
class ClipScored:
    """A classifier scored one 8-frame clip of a lesion."""

    score: ClipScore
    latency_s: float  # clip's last frame pushed -> score emitted
    # Its lesion is (so far) a candidate: the clip's malignancy must not be shown.
    candidate: bool = False
    # The clip's crops (T x H x W x 3), only when heatmaps are asked for (to draw them).
    crops: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class LesionUpdated:
    """A lesion's running risk changed (a new clip was scored)."""

    risk: LesionRisk


@dataclass(frozen=True)
class LesionEnded:
    """The tracker finalised a lesion (it left the view, or the video ended).

    ``dropped`` lesions were judged flicker by the tracker; any clips they had
    are withdrawn from every risk.
    """

    lesion_id: int
    first_frame: int
    last_frame: int
    dropped: bool
    risk: LesionRisk | None = None
    frames: tuple[int, ...] = field(default=())
    # Every box of the lesion by frame, in the order the scorer got them: the
    # back-filled and interpolated ones too, which no FrameBoxes carried.
    # Empty for a dropped lesion.
    boxes: Mapping[int, LesionBox] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class VideoEnded:
    """The video or stream segment ended (``finish``): no event follows."""

    frames: int  # frames pushed
    timing: StageTiming
    scan_region: ScanRegion | None  # None: the detector saw whole frames


Event = FrameBoxes | ClipScored | LesionUpdated | LesionEnded | VideoEnded
