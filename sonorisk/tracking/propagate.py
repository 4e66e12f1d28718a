"""Carry boxes from one frame to the next with sparse optical flow (OpenCV).

Between detector keyframes each box is moved by the median Lucas-Kanade
displacement of corner features inside it, and rescaled by the median change
of pairwise feature distances. Speckle gives ultrasound plenty of texture to
track; when too few features survive the box is held in place.
"""

from __future__ import annotations

import cv2
import numpy as np

from sonorisk.records import Box


def to_gray_small(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Gray uint8 copy shrunk so its long side is at most ``max_side``; and the scale used."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image[:, :, :3], cv2.COLOR_RGB2GRAY)
    if gray.dtype != np.uint8:
        gray = np.clip(gray, 0, 255).astype(np.uint8)
    scale = min(1.0, max_side / max(gray.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray, scale


def _track_points(
    prev_gray: np.ndarray, next_gray: np.ndarray, max_corners: int
) -> tuple[np.ndarray, np.ndarray]:
    """Corner features of ``prev_gray`` and where Lucas-Kanade finds them in ``next_gray``."""
    points = cv2.goodFeaturesToTrack(
        prev_gray, maxCorners=max_corners, qualityLevel=0.01, minDistance=3
    )
    if points is None or not len(points):
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    moved, status, _ = cv2.calcOpticalFlowPyrLK(  # type: ignore[call-overload, unused-ignore]  # cv2 stubs: nextPts=None
        prev_gray, next_gray, points, None, winSize=(15, 15), maxLevel=2
    )
    if moved is None:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    ok = status.reshape(-1) == 1
    return points.reshape(-1, 2)[ok], moved.reshape(-1, 2)[ok]


def _move(box: Box, p0: np.ndarray, p1: np.ndarray, scale: float, min_points: int) -> Box:
    x1, y1, x2, y2 = (v * scale for v in box)
    inside = (p0[:, 0] >= x1) & (p0[:, 0] <= x2) & (p0[:, 1] >= y1) & (p0[:, 1] <= y2)
    q0, q1 = p0[inside], p1[inside]
    if len(q0) < min_points:
        return box
    dx, dy = np.median(q1 - q0, axis=0)
    # Scale from the spread of the points around their centroid (robust to outliers).
    s0 = np.median(np.linalg.norm(q0 - q0.mean(axis=0), axis=1))
    s1 = np.median(np.linalg.norm(q1 - q1.mean(axis=0), axis=1))
    zoom = float(np.clip(s1 / s0, 0.8, 1.25)) if s0 > 1e-3 else 1.0
    cx, cy = (x1 + x2) / 2 + dx, (y1 + y2) / 2 + dy
    hw, hh = (x2 - x1) / 2 * zoom, (y2 - y1) / 2 * zoom
    out = np.array([cx - hw, cy - hh, cx + hw, cy + hh], dtype=np.float64) / scale
    if not np.isfinite(out).all():
        return box
    return (float(out[0]), float(out[1]), float(out[2]), float(out[3]))


def propagate_boxes(
    prev_gray: np.ndarray,
    next_gray: np.ndarray,
    boxes: list[Box],
    scale: float = 1.0,
    min_points: int = 5,
    max_corners: int = 400,
) -> list[Box]:
    """Boxes (full-resolution coordinates) moved from ``prev_gray`` to ``next_gray``.

    One feature detection and one optical-flow solve per frame, shared by all
    boxes, so the cost does not grow with the number of boxes.
    """
    if not boxes:
        return []
    p0, p1 = _track_points(prev_gray, next_gray, max_corners)
    return [_move(box, p0, p1, scale, min_points) for box in boxes]


def propagate_box(
    prev_gray: np.ndarray, next_gray: np.ndarray, box: Box, scale: float = 1.0, min_points: int = 5
) -> Box:
    """One box moved from ``prev_gray`` to ``next_gray`` (features from inside the box)."""
    height, width = prev_gray.shape[:2]
    x1, y1, x2, y2 = (v * scale for v in box)
    ix1, iy1 = max(0, int(x1)), max(0, int(y1))
    ix2, iy2 = min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))
    if ix2 - ix1 < 4 or iy2 - iy1 < 4:
        return box
    mask = np.zeros_like(prev_gray)
    mask[iy1:iy2, ix1:ix2] = 255
    points = cv2.goodFeaturesToTrack(
        prev_gray, maxCorners=60, qualityLevel=0.01, minDistance=3, mask=mask
    )
    if points is None or len(points) < min_points:
        return box
    moved, status, _ = cv2.calcOpticalFlowPyrLK(  # type: ignore[call-overload, unused-ignore]  # cv2 stubs: nextPts=None
        prev_gray, next_gray, points, None, winSize=(15, 15), maxLevel=2
    )
    if moved is None:
        return box
    ok = status.reshape(-1) == 1
    return _move(box, points.reshape(-1, 2)[ok], moved.reshape(-1, 2)[ok], scale, min_points)
