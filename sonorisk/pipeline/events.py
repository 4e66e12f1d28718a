"""What the incremental pipeline emits, in order, as frames go in.

A consumer (the CLI writing a report, the server pushing Server-Sent Events,
the reader-study replay) reads the same events whether the frames came from a
file or a live stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sonorisk.records import Box, ClipScore, LesionRisk

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


Event = FrameBoxes | ClipScored | LesionUpdated | LesionEnded
