"""Pure track post-processing: gap interpolation and fragment tests."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sonorisk.records import Box, Detection


def box_iou(a: Box, b: Box) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def center_distance(a: Box, b: Box) -> float:
    """Distance between box centres in units of ``a``'s diagonal."""
    ca = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
    cb = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    diag = math.hypot(a[2] - a[0], a[3] - a[1])
    return math.hypot(ca[0] - cb[0], ca[1] - cb[1]) / max(diag, 1e-6)


def interpolate_gaps(
    detections: Sequence[Detection], max_gap: int
) -> tuple[list[Detection], list[int]]:
    """Fill gaps of at most ``max_gap`` missing frames with linearly interpolated boxes.

    Returns the filled, frame-ordered detections and the indices of the frames
    that were filled. An interpolated detection's score is the lower of its two
    neighbours' (it was never seen by the detector, so it gets no credit above them).
    """
    ordered = sorted(detections, key=lambda d: d.frame_index)
    out: list[Detection] = []
    filled: list[int] = []
    for prev, nxt in zip(ordered, ordered[1:], strict=False):
        out.append(prev)
        missing = nxt.frame_index - prev.frame_index - 1
        if 0 < missing <= max_gap:
            a, b = np.asarray(prev.box), np.asarray(nxt.box)
            for step in range(1, missing + 1):
                t = step / (missing + 1)
                x1, y1, x2, y2 = (float(v) for v in (1 - t) * a + t * b)
                index = prev.frame_index + step
                out.append(
                    Detection(index, (x1, y1, x2, y2), min(prev.score, nxt.score), prev.label)
                )
                filled.append(index)
    if ordered:
        out.append(ordered[-1])
    return out, filled


def drop_spikes(
    detections: Sequence[Detection], max_gap: int, min_iou: float = 0.3, neighbours_iou: float = 0.3
) -> tuple[list[Detection], list[int]]:
    """Remove single boxes that disagree with both neighbours while the neighbours agree.

    A false positive caught by a lesion's track (a blip next to the lesion while
    the lesion itself was missed) shows up as one box far from the line between
    the boxes before and after it. Such a box is dropped (interpolation then
    fills the frame); a real change of the lesion's box moves the neighbours too.
    Returns the kept detections and the dropped frame indices.
    """
    ordered = sorted(detections, key=lambda d: d.frame_index)
    if len(ordered) < 3:
        return list(ordered), []
    kept = [ordered[0]]
    dropped: list[int] = []
    for prev, cur, nxt in zip(ordered, ordered[1:], ordered[2:], strict=False):
        span = nxt.frame_index - prev.frame_index
        if span - 1 <= max_gap and box_iou(prev.box, nxt.box) >= neighbours_iou:
            t = (cur.frame_index - prev.frame_index) / span
            x1, y1, x2, y2 = (
                float((1 - t) * a + t * b) for a, b in zip(prev.box, nxt.box, strict=True)
            )
            if box_iou(cur.box, (x1, y1, x2, y2)) < min_iou:
                dropped.append(cur.frame_index)
                continue
        kept.append(cur)
    kept.append(ordered[-1])
    return kept, dropped


def continues(
    last: Detection, first: Detection, max_gap: int, min_iou: float, max_center_dist: float
) -> bool:
    """Whether a track starting with ``first`` plausibly continues one ending with ``last``."""
    gap = first.frame_index - last.frame_index
    if gap <= 0 or gap > max_gap:
        return False
    return (
        box_iou(last.box, first.box) >= min_iou
        or center_distance(last.box, first.box) <= max_center_dist
    )
