"""Weighted box fusion (Solovyev, Wang & Gabruseva, "Weighted boxes fusion", 2019):
merge the boxes of several views of one image (test-time flips, or several models)
into one list. Pure functions on numpy arrays.

Unlike NMS, which keeps one box of a cluster and throws the others away, WBF
averages the cluster's coordinates weighted by score, and scores a cluster by
the mean over *views*, so a box that only one view of two found keeps half its
score: agreement between views is rewarded, one-view flukes are damped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sonorisk.detector.metrics import box_iou


def hflip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """xyxy boxes of a horizontally flipped image, mapped back to the original."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)


def weighted_box_fusion(
    views: Sequence[tuple[np.ndarray, np.ndarray]], iou_thresh: float = 0.55
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse ``(boxes N x 4, scores N)`` of several views of one image.

    Boxes are taken in descending score; each joins the first cluster whose fused
    box it overlaps by more than ``iou_thresh`` and moves it (score-weighted mean),
    or starts a new cluster. A cluster's score is the sum of its scores over the
    number of views, capped at the best member's score so that two boxes of one
    view cannot push a cluster above what any single box said.
    Returns the fused boxes and scores in descending score.
    """
    if not views:
        raise ValueError("weighted_box_fusion needs at least one view")
    boxes = np.concatenate([np.asarray(b, np.float32).reshape(-1, 4) for b, _ in views])
    scores = np.concatenate([np.asarray(s, np.float32).reshape(-1) for _, s in views])
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    fused_boxes: list[np.ndarray] = []
    members: list[list[int]] = []
    for i in np.argsort(-scores, kind="stable"):
        if fused_boxes:
            overlap = box_iou(np.asarray(fused_boxes), boxes[i : i + 1])[:, 0]
            best = int(np.argmax(overlap))
            if overlap[best] > iou_thresh:
                members[best].append(int(i))
                w = scores[members[best]]
                fused_boxes[best] = (boxes[members[best]] * w[:, None]).sum(0) / max(
                    float(w.sum()), 1e-12
                )
                continue
        fused_boxes.append(boxes[i].copy())
        members.append([int(i)])
    if not fused_boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    fused_scores = np.array(
        [min(float(scores[m].sum()) / len(views), float(scores[m].max())) for m in members],
        np.float32,
    )
    order = np.argsort(-fused_scores, kind="stable")
    return np.asarray(fused_boxes, np.float32)[order], fused_scores[order]
