"""What the tracker and the pipeline need of a detector: a Protocol, no torch, no OpenCV.

``FrameDetector.predict(frames)`` takes ``Frame`` records (each carries its own
index) and returns one list of ``Detection`` per frame, in source pixels.
Importing this module costs numpy only, so the tracker, the scorer and test
doubles can name the interface without loading a model stack.

Backends still accept bare images with ``frame_indices`` (the pipeline passes
its cropped views that way, and the Serve deployment's wire format is arrays
plus indices); :func:`as_frames` is the one place that turns that form into
frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from sonorisk.records import Detection, Frame

# A frame, or a bare image whose index comes from ``frame_indices`` (or its position).
FrameLike = Frame | np.ndarray


class FrameDetector(Protocol):
    """Anything that finds lesions in frames."""

    info: dict[str, Any]

    def predict(self, frames: Sequence[Frame]) -> list[list[Detection]]: ...


def as_frames(
    images: Sequence[FrameLike], frame_indices: Sequence[int] | None = None
) -> list[Frame]:
    """``images`` as frames: a ``Frame`` keeps its index; a bare image takes
    ``frame_indices[i]`` (or its position ``i``) and an unknown timestamp (NaN:
    no detector reads it). The image itself is not checked here: each backend
    validates what it can run."""
    if frame_indices is not None and len(frame_indices) != len(images):
        raise ValueError(f"{len(images)} images but {len(frame_indices)} frame indices")
    out: list[Frame] = []
    for i, item in enumerate(images):
        if isinstance(item, Frame):
            out.append(item)
        else:
            index = int(frame_indices[i]) if frame_indices is not None else i
            out.append(Frame(index, math.nan, item))
    return out
