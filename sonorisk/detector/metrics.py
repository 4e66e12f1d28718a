"""Detection metrics (pure functions): COCO AP/AP50, per-video detection rate, FP rates."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CocoResult:
    ap: float | None  # AP@[.50:.95]; None when the ground truth holds no box
    ap50: float | None
    n_images: int
    n_boxes: int


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between xyxy boxes ``a`` (N x 4) and ``b`` (M x 4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def coco_ap(
    gt_boxes: Sequence[np.ndarray],
    pred_boxes: Sequence[np.ndarray],
    pred_scores: Sequence[np.ndarray],
    sizes: Sequence[tuple[int, int]],
) -> CocoResult:
    """COCO AP and AP50 (pycocotools) for one class over a list of images.

    ``sizes`` are (width, height) per image. Images without ground truth count:
    detections on them are false positives.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not (len(gt_boxes) == len(pred_boxes) == len(pred_scores) == len(sizes)):
        raise ValueError("gt, predictions, scores and sizes must have one entry per image")
    images, annotations, results = [], [], []
    ann_id = 1
    for image_id, (gts, boxes, scores, (width, height)) in enumerate(
        zip(gt_boxes, pred_boxes, pred_scores, sizes, strict=True), start=1
    ):
        images.append({"id": image_id, "width": int(width), "height": int(height)})
        for x1, y1, x2, y2 in np.asarray(gts, dtype=float).reshape(-1, 4):
            w, h = x2 - x1, y2 - y1
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x1, y1, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            ann_id += 1
        for (x1, y1, x2, y2), score in zip(
            np.asarray(boxes, dtype=float).reshape(-1, 4),
            np.asarray(scores, dtype=float).reshape(-1),
            strict=True,
        ):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    if not annotations:
        return CocoResult(None, None, len(images), 0)
    if not results:
        return CocoResult(0.0, 0.0, len(images), len(annotations))
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": 1, "name": "lesion"}],
        }
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.params.maxDets = [1, 10, 100]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ap, ap50 = float(ev.stats[0]), float(ev.stats[1])
    return CocoResult(max(ap, 0.0), max(ap50, 0.0), len(images), len(annotations))


def frame_hit(gts: np.ndarray, boxes: np.ndarray, iou_thresh: float = 0.5) -> bool:
    """Whether any detection overlaps any ground-truth lesion by ``iou_thresh``."""
    iou = box_iou(gts, boxes)
    return bool(iou.size and iou.max() >= iou_thresh)


def detection_rate(
    gt_boxes: Sequence[np.ndarray], pred_boxes: Sequence[np.ndarray], iou_thresh: float = 0.5
) -> float | None:
    """Share of lesion frames with a matching detection (None if no lesion frame)."""
    hits = [
        frame_hit(g, p, iou_thresh)
        for g, p in zip(gt_boxes, pred_boxes, strict=True)
        if len(np.asarray(g).reshape(-1, 4))
    ]
    return float(np.mean(hits)) if hits else None


def false_positive_count(pred_boxes: Sequence[np.ndarray]) -> int:
    """Detections on lesion-free frames: every one is a false positive."""
    return int(sum(len(np.asarray(p).reshape(-1, 4)) for p in pred_boxes))


def false_positives_per_minute(n_false_positives: int, n_frames: int, fps: float) -> float:
    if fps <= 0 or n_frames <= 0:
        raise ValueError("fps and frame count must be positive")
    return n_false_positives / (n_frames / fps / 60.0)


def bootstrap_ap_ci(
    gt_boxes: Sequence[np.ndarray],
    pred_boxes: Sequence[np.ndarray],
    pred_scores: Sequence[np.ndarray],
    sizes: Sequence[tuple[int, int]],
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float] | None]:
    """Percentile bootstrap intervals of COCO AP and AP50, resampling images.

    Images are the unit (each held-out still is its own near-duplicate group
    once the split is group-aware), so the interval reflects which images were
    held out. A resample with no ground-truth box is drawn again.
    """
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    rng = np.random.default_rng(seed)
    n = len(gt_boxes)
    aps: list[float] = []
    ap50s: list[float] = []
    while len(ap50s) < n_boot:
        pick = rng.integers(0, n, n)
        result = coco_ap(
            [gt_boxes[i] for i in pick],
            [pred_boxes[i] for i in pick],
            [pred_scores[i] for i in pick],
            [sizes[i] for i in pick],
        )
        if result.ap is None or result.ap50 is None:  # both None together
            continue
        aps.append(result.ap)
        ap50s.append(result.ap50)
    tail = (1.0 - level) / 2 * 100
    return {
        name: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail)))
        for name, v in (("ap", aps), ("ap50", ap50s))
    }
