"""Frame checks and box clean-up that every detector backend shares.

The torchvision detector (``predictor``), the detectron2 backend and training
all validate frames and clean boxes the same way; keeping these here (numpy and
OpenCV, no torch) means no backend imports another to reach them.
"""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from sonorisk.detector.config import InferenceConfig
from sonorisk.errors import InputError
from sonorisk.records import Detection


def to_rgb_uint8(image: np.ndarray, source: str, cfg: InferenceConfig) -> np.ndarray:
    """Validate one frame and return it as HxWx3 uint8 (gray is replicated)."""
    if not isinstance(image, np.ndarray):
        raise InputError(source, f"expected a numpy image, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise InputError(source, f"expected HxW gray or HxWx3 RGB, got shape {image.shape}")
    height, width = image.shape[:2]
    if min(height, width) < cfg.min_side:
        raise InputError(
            source, f"frame {width}x{height} is too small (min side {cfg.min_side} px)"
        )
    if max(height, width) > cfg.max_side:
        raise InputError(
            source, f"frame {width}x{height} is too large (max side {cfg.max_side} px)"
        )
    if image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.number):
            raise InputError(source, f"unsupported pixel type {image.dtype}")
        if not np.isfinite(image).all():
            raise InputError(source, "frame holds NaN or infinite pixel values")
        if np.issubdtype(image.dtype, np.floating) and image.max() <= 1.0:
            image = image * 255.0
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def is_blank(image: np.ndarray) -> bool:
    """A frame with (almost) no contrast — black, white, a frozen blank screen."""
    small = image[:: max(1, image.shape[0] // 64), :: max(1, image.shape[1] // 64)]
    return float(small.std()) < 1.0


def contained_fraction(inner: tuple[float, ...], outer: tuple[float, ...]) -> float:
    """Share of ``inner``'s area that lies inside ``outer``."""
    ix1, iy1 = max(inner[0], outer[0]), max(inner[1], outer[1])
    ix2, iy2 = min(inner[2], outer[2]), min(inner[3], outer[3])
    overlap = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    return overlap / area if area > 0 else 0.0


def area_shrink(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` scaled by ``scale`` < 1 with area averaging (anti-aliased, unlike the
    bilinear resize in torchvision's detection transform); ``scale >= 1``: unchanged."""
    if scale >= 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def suppress_nested(
    detections: list[Detection], thresh: float, factor: float = 0.0, score_thresh: float = 0.0
) -> list[Detection]:
    """Of any pair where one box lies mostly inside the other, the higher-scoring box
    stays; the other's score is multiplied by ``factor`` (0: dropped), as Soft-NMS
    does, and it stays only while that score reaches ``score_thresh``. So at the
    operating threshold the same lesion never gives two boxes, while a ranked list
    (AP) keeps the demoted box in case it was the better one."""
    kept: list[Detection] = []
    demoted: list[Detection] = []
    for det in sorted(detections, key=lambda d: -d.score):
        if all(
            contained_fraction(det.box, k.box) <= thresh
            and contained_fraction(k.box, det.box) <= thresh
            for k in kept
        ):
            kept.append(det)
        elif (score := det.score * factor) > 0.0 and score >= score_thresh:
            demoted.append(replace(det, score=score))
    return sorted(kept + demoted, key=lambda d: -d.score)


def clean_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    width: int,
    height: int,
    frame_index: int,
    score_thresh: float,
    containment_thresh: float = 1.0,
    containment_factor: float = 0.0,
) -> list[Detection]:
    """Drop non-finite, degenerate and low-score boxes, clip to the frame, and
    suppress nested boxes (``suppress_nested``)."""
    out: list[Detection] = []
    for box, score in zip(boxes.reshape(-1, 4), scores.reshape(-1), strict=True):
        if not (np.isfinite(box).all() and math.isfinite(float(score))):
            continue
        if score < score_thresh:
            continue
        x1, y1, x2, y2 = (float(v) for v in box)
        x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
        y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
        if x2 - x1 < 1.0 or y2 - y1 < 1.0:
            continue
        out.append(Detection(frame_index, (x1, y1, x2, y2), float(score)))
    out.sort(key=lambda d: -d.score)
    if containment_thresh >= 1.0:
        return out
    return suppress_nested(out, containment_thresh, containment_factor, score_thresh)
