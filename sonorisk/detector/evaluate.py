"""Evaluate a detector on samples: COCO AP/AP50, per-video detection rate, false positives.

AP uses every detection the model returns (down to its own low score floor);
detection rate and false-positive rates use the operating threshold, the one
the tracker sees.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from sonorisk.detector.interface import FrameDetector, as_frames
from sonorisk.detector.metrics import (
    bootstrap_ap_ci,
    coco_ap,
    detection_rate,
    false_positive_count,
)
from sonorisk.detector.samples import DetectionSample

SampleReader = Callable[[DetectionSample], tuple[np.ndarray, np.ndarray]]


def read_sample(sample: DetectionSample) -> tuple[np.ndarray, np.ndarray]:
    return sample.load(), sample.boxes


@dataclass
class DetectorEvaluation:
    ap: float | None
    ap50: float | None
    n_images: int
    n_lesion_boxes: int
    score_thresh: float
    # 95% percentile-bootstrap intervals over images (when asked for).
    ap_ci: tuple[float, float] | None = None
    ap50_ci: tuple[float, float] | None = None
    bootstrap_resamples: int = 0
    per_video_detection_rate: dict[str, float] = field(default_factory=dict)
    mean_video_detection_rate: float | None = None
    still_detection_rate: float | None = None
    lesion_free_stills: int = 0
    false_positives_per_image: float | None = None  # on lesion-free stills
    lesion_free_video_frames: int = 0  # evaluated frames of videos without any lesion
    false_positives_per_minute: float | None = None  # on lesion-free videos
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_detector(
    detector: FrameDetector,
    samples: Sequence[DetectionSample],
    score_thresh: float,
    reader: SampleReader = read_sample,
    batch_size: int = 4,
    default_fps: float = 30.0,
    progress: bool = False,
    bootstrap: int = 0,
) -> DetectorEvaluation:
    from tqdm import tqdm

    gts: list[np.ndarray] = []
    boxes: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    sizes: list[tuple[int, int]] = []
    order = list(samples)
    bar = tqdm(total=len(order), desc="eval", disable=not progress, mininterval=5)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        loaded = [reader(s) for s in chunk]
        dets = detector.predict(as_frames([img for img, _ in loaded]))
        for (image, gt), frame_dets in zip(loaded, dets, strict=True):
            gts.append(np.asarray(gt, dtype=np.float32).reshape(-1, 4))
            boxes.append(np.asarray([d.box for d in frame_dets], dtype=np.float32).reshape(-1, 4))
            scores.append(np.asarray([d.score for d in frame_dets], dtype=np.float32))
            sizes.append((int(image.shape[1]), int(image.shape[0])))
        bar.update(len(chunk))
    bar.close()
    coco = coco_ap(gts, boxes, scores, sizes)
    kept = [b[s >= score_thresh] for b, s in zip(boxes, scores, strict=True)]
    result = DetectorEvaluation(coco.ap, coco.ap50, coco.n_images, coco.n_boxes, score_thresh)
    if bootstrap and coco.ap50 is not None:
        ci = bootstrap_ap_ci(gts, boxes, scores, sizes, n_boot=bootstrap)
        result.ap_ci, result.ap50_ci = ci["ap"], ci["ap50"]
        result.bootstrap_resamples = bootstrap

    video_gt: dict[str, list[np.ndarray]] = defaultdict(list)
    video_pred: dict[str, list[np.ndarray]] = defaultdict(list)
    still_gt, still_pred, free_stills = [], [], []
    free_video: dict[str, list[np.ndarray]] = defaultdict(list)
    fps_of: dict[str, float] = {}
    # A lesion-free video is one without a lesion box in any evaluated frame;
    # frames of a lesion video where the lesion is out of view do not count
    # (the lesion's edge may still be on screen below the annotation's size).
    lesion_videos = {s.video_id for s, gt in zip(order, gts, strict=True) if s.video_id and len(gt)}
    unknown_fps = False
    for sample, gt, pred in zip(order, gts, kept, strict=True):
        if sample.video_id:
            if len(gt):
                video_gt[sample.video_id].append(gt)
                video_pred[sample.video_id].append(pred)
            elif sample.video_id not in lesion_videos:
                free_video[sample.video_id].append(pred)
            fps_of[sample.video_id] = sample.fps or default_fps
            unknown_fps |= sample.fps is None
        elif len(gt):
            still_gt.append(gt)
            still_pred.append(pred)
        else:
            free_stills.append(pred)
    for vid in sorted(video_gt):
        rate = detection_rate(video_gt[vid], video_pred[vid])
        if rate is not None:
            result.per_video_detection_rate[vid] = rate
    if result.per_video_detection_rate:
        result.mean_video_detection_rate = float(
            np.mean(list(result.per_video_detection_rate.values()))
        )
    result.still_detection_rate = detection_rate(still_gt, still_pred) if still_gt else None
    if free_stills:
        result.lesion_free_stills = len(free_stills)
        result.false_positives_per_image = false_positive_count(free_stills) / len(free_stills)
    if free_video:
        n_fp = sum(false_positive_count(v) for v in free_video.values())
        n_frames = sum(len(v) for v in free_video.values())
        minutes = sum(len(v) / fps_of[k] / 60.0 for k, v in free_video.items())
        result.lesion_free_video_frames = n_frames
        # Frames may be sampled (stride); the rate uses the frames actually evaluated.
        result.false_positives_per_minute = n_fp / minutes if minutes > 0 else None
        if unknown_fps:
            result.notes.append(f"fps unknown for some videos; assumed {default_fps}")
    return result


def format_evaluation(ev: DetectorEvaluation) -> str:
    def fmt(value: float | None, pct: bool = False) -> str:
        if value is None:
            return "n/a"
        return f"{value:.1%}" if pct else f"{value:.4f}"

    def ci(bounds: tuple[float, float] | None) -> str:
        if bounds is None:
            return ""
        return (
            f"  (95% CI {bounds[0]:.4f}-{bounds[1]:.4f}, bootstrap over images, "
            f"{ev.bootstrap_resamples} resamples)"
        )

    lines = [
        f"images: {ev.n_images}  lesion boxes: {ev.n_lesion_boxes}  "
        f"operating score threshold: {ev.score_thresh}",
        f"COCO AP@[.50:.95]: {fmt(ev.ap)}{ci(ev.ap_ci)}",
        f"COCO AP50:         {fmt(ev.ap50)}{ci(ev.ap50_ci)}",
    ]
    if ev.still_detection_rate is not None:
        lines.append(f"still detection rate (IoU>=0.5): {fmt(ev.still_detection_rate, True)}")
    if ev.per_video_detection_rate:
        lines.append(
            f"per-video detection rate (IoU>=0.5), mean {fmt(ev.mean_video_detection_rate, True)}:"
        )
        lines += [f"  {vid}: {rate:.1%}" for vid, rate in ev.per_video_detection_rate.items()]
    if ev.false_positives_per_image is not None:
        lines.append(
            f"false positives per lesion-free still: {ev.false_positives_per_image:.3f} "
            f"({ev.lesion_free_stills} stills)"
        )
    if ev.false_positives_per_minute is not None:
        lines.append(
            f"false positives per minute of lesion-free video: "
            f"{ev.false_positives_per_minute:.2f} ({ev.lesion_free_video_frames} frames)"
        )
    lines += [f"note: {n}" for n in ev.notes]
    return "\n".join(lines)
