"""The "not a lesion" check: a logistic layer on the clip classifier's pooled features.

The malignancy head only ever saw lesions, so it gives any crop a malignancy
probability, a crop of fat or of a rib shadow included. The check learns, on
the same pooled features, lesion crops against crops that are not a lesion:

- lesions: the ground-truth tracks of annotated sweeps;
- background: a box of the lesion's size and motion moved to a place in the
  same sweep that overlaps no lesion, and random boxes in lesion-free sweeps;
- false tracks: what the pipeline itself tracked where no lesion was (tracks of
  a ``sonorisk batch`` run that overlap no ground-truth box).

It is fitted after the classifier (the trunk stays frozen, so the malignancy
head and its held-out figures are unchanged) and stored in the classifier's
weights as ``lesion_head``; every ``ClipScore`` then carries P(lesion). Recipe:
``scripts/e2e_release.sh``; entry point ``python -m sonorisk.video_classifier.lesion_check``.

``--export-copies N`` adds N copies of every track as another export would
give it (frames smaller, JPEG-compressed again): the released check's P(lesion)
falls when a video is encoded again, which copies fitted beside the originals
prevent (``scripts/check_rescale.sh``; docs/end-to-end.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from sonorisk.cli_args import finite_float
from sonorisk.errors import InputError
from sonorisk.io import open_video
from sonorisk.records import Box, Detection, Track
from sonorisk.tracking.postprocess import box_iou
from sonorisk.video_classifier.base import GAPClassifier
from sonorisk.video_classifier.clips import ClipConfig, clips_from_track

log = logging.getLogger(__name__)

LESION, NOT_LESION = 1, 0


@dataclass(frozen=True)
class TrackSample:
    """Boxes along one track of one video, and whether they hold a lesion."""

    video: Path
    boxes: Mapping[int, Box]  # frame index -> source-pixel box
    label: int  # LESION or NOT_LESION
    group: str  # near-duplicate group of the source still (for group-aware splits)
    kind: str  # "lesion", "background", "false_track"


def track_frames(
    video: Path, boxes: Mapping[int, Box]
) -> tuple[dict[int, np.ndarray], float | None]:
    """The decoded RGB frames a track's boxes lie on, and the video's frame rate."""
    wanted = set(boxes)
    frames: dict[int, np.ndarray] = {}
    with open_video(video, color="rgb") as source:
        fps = source.meta.fps
        for frame in source:
            if frame.index in wanted:
                frames[frame.index] = frame.image
            if frame.index >= max(wanted):
                break
    return frames, fps


@dataclass(frozen=True)
class Export:
    """How a copy of a video differs from it: frames scaled by ``scale`` (area
    interpolation) and JPEG-compressed again at ``quality`` (None: not)."""

    scale: float = 1.0
    quality: int | None = None

    def apply(self, image: np.ndarray) -> np.ndarray:
        if self.scale != 1.0:
            h, w = image.shape[:2]
            size = (max(2, round(w * self.scale)), max(2, round(h * self.scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        if self.quality is not None:
            bgr = np.ascontiguousarray(image[:, :, ::-1])  # RGB frames, OpenCV's order
            ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
            if decoded is None:
                raise InputError("lesion check", f"JPEG at quality {self.quality} failed")
            image = np.ascontiguousarray(decoded[:, :, ::-1])
        return image


def random_export(rng: np.random.Generator, min_scale: float, min_quality: int) -> Export:
    """A smaller, more compressed export: scale in ``[min_scale, 1]``, JPEG
    quality in ``[min_quality, 95]``."""
    return Export(float(rng.uniform(min_scale, 1.0)), int(rng.integers(min_quality, 96)))


def exported_crops(
    frames: Mapping[int, np.ndarray],
    boxes: Mapping[int, Box],
    clip_config: ClipConfig,
    fps: float | None,
    export: Export | None = None,
) -> list[np.ndarray]:
    """The clips the pipeline would cut along ``boxes`` from ``frames``, or from
    the frames as ``export`` would leave them (boxes scaled alike).

    Why whole frames: shrinking a crop alone changes nothing when the lesion
    covered fewer pixels than the crop to begin with; and what moved the lesion
    check on smaller exports was the compression, not the scale (JPEG quality
    95 again lowered its median on true lesions from 0.96 to 0.84, area or
    bilinear scaling to two thirds did not lower it: docs/end-to-end.md)."""
    if export is not None:
        s = export.scale
        frames = {i: export.apply(image) for i, image in frames.items()}
        boxes = {i: (b[0] * s, b[1] * s, b[2] * s, b[3] * s) for i, b in boxes.items()}
    track = Track(0, [Detection(i, (*boxes[i],), 1.0) for i in sorted(boxes) if i in frames])
    return [c.crops for c in clips_from_track(track, frames, clip_config, fps)]


def track_crops(
    video: Path, boxes: Mapping[int, Box], clip_config: ClipConfig, fps: float | None = None
) -> list[np.ndarray]:
    """The clips (``T x S x S x 3`` uint8) the pipeline would cut along ``boxes``."""
    frames, video_fps = track_frames(video, boxes)
    return exported_crops(frames, boxes, clip_config, fps or video_fps)


def background_boxes(
    lesion: Mapping[int, Box],
    others: Iterable[Box],
    width: int,
    height: int,
    rng: np.random.Generator,
    tries: int = 50,
) -> dict[int, Box] | None:
    """The lesion's boxes shifted by one offset to where they overlap no lesion.

    The shifted track moves as the lesion does (same probe motion), so the only
    thing that tells it apart is what the crops show. None when no such place
    fits inside the frame.
    """
    frames = sorted(lesion)
    if not frames:
        return None
    avoid = [*lesion.values(), *others]
    stack = np.asarray([lesion[i] for i in frames], dtype=float)
    lo_x, lo_y = -stack[:, 0].min(), -stack[:, 1].min()
    hi_x, hi_y = width - stack[:, 2].max(), height - stack[:, 3].max()
    if hi_x <= lo_x or hi_y <= lo_y:
        return None
    for _ in range(tries):
        dx, dy = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
        moved = {
            i: (b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy)
            for i, b in zip(frames, stack.tolist(), strict=True)
        }
        if all(box_iou(m, a) < 0.05 for m in moved.values() for a in avoid):
            return moved
    return None


def random_track(
    n_frames: int, width: int, height: int, rng: np.random.Generator, length: int = 24
) -> dict[int, Box]:
    """A box of plausible lesion size drifting slowly through a lesion-free sweep."""
    side_w = rng.uniform(0.12, 0.35) * width
    side_h = side_w * rng.uniform(0.5, 1.0)
    start = int(rng.integers(0, max(1, n_frames - length)))
    x0 = rng.uniform(0, width - side_w)
    y0 = rng.uniform(0, height - side_h)
    vx, vy = rng.normal(0, 1.5, size=2)
    out: dict[int, Box] = {}
    for k in range(min(length, n_frames - start)):
        x = float(np.clip(x0 + vx * k, 0, width - side_w))
        y = float(np.clip(y0 + vy * k, 0, height - side_h))
        out[start + k] = (x, y, x + side_w, y + side_h)
    return out


def overlaps_truth(
    boxes: Mapping[int, Box], truth: Mapping[int, Sequence[Box]], min_iou: float = 0.3
) -> float:
    """Share of a track's frames whose box overlaps a ground-truth box by ``min_iou``."""
    if not boxes:
        return 0.0
    hits = sum(
        any(box_iou(box, t) >= min_iou for t in truth.get(i, ())) for i, box in boxes.items()
    )
    return hits / len(boxes)


def pooled_features(model: GAPClassifier, clips: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """``N x D`` pooled trunk features of uint8 clips ``N x T x S x S x 3``."""
    model.validate_clips(clips)
    model.eval()
    out = [
        model.pooled_features(model.to_input(clips[i : i + batch_size])).float().cpu().numpy()
        for i in range(0, len(clips), batch_size)
    ]
    return np.concatenate(out)


def fit_check(
    features: np.ndarray,
    labels: np.ndarray,
    c: float = 0.1,
    seed: int = 0,
    what: str = "lesion check",
) -> tuple[np.ndarray, float]:
    """L2 logistic regression on standardised features, folded back into one
    linear layer on the raw features: returns ``(weight D, bias)``. ``what``
    names the check in the error (the still classifier's check uses it too)."""
    from sklearn.linear_model import LogisticRegression

    if len(set(np.asarray(labels).tolist())) != 2:
        raise InputError(what, "needs both lesion and non-lesion examples")
    mean = features.mean(axis=0)
    std = features.std(axis=0) + 1e-6
    lr = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=seed)
    lr.fit((features - mean) / std, labels)
    weight = lr.coef_[0] / std
    bias = float(lr.intercept_[0] - np.sum(lr.coef_[0] * mean / std))
    return weight.astype(np.float32), bias


def attach_check(model: GAPClassifier, weight: np.ndarray, bias: float) -> GAPClassifier:
    """The same classifier with its lesion check set to ``(weight, bias)``."""
    model.config = dataclasses.replace(
        model.config, model=dataclasses.replace(model.config.model, lesion_check=True)
    )
    head = torch.nn.Linear(len(weight), 1)
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight).view(1, -1))
        head.bias.fill_(bias)
    model.lesion_head = head.to(model.device)
    return model


# ------------------------------------------------------------------ samples
def _videos_of(root: Path, groups: set[str] | None) -> Iterator[tuple[Any, str, Any, str]]:
    """(dataset, video id, record, group) of every video in ``groups`` (None: all)."""
    from sonorisk.data.dataset import load_dataset

    dataset = load_dataset(root)
    for video_id in dataset.video_ids:
        record = dataset.video(video_id)
        group = str(record.extra.get("group") or record.patient_id)
        if groups is None or group in groups:
            yield dataset, video_id, record, group


def _dataset_samples(
    root: Path, rng: np.random.Generator, background: bool, lesions: bool, groups: set[str] | None
) -> list[TrackSample]:
    out: list[TrackSample] = []
    for dataset, video_id, record, group in _videos_of(root, groups):
        path = dataset.path(video_id)
        boxes = dataset.boxes_for(video_id)
        per_lesion: dict[int, dict[int, Box]] = {}
        for frame in dataset.frames(video_id):
            for lid, box in zip(frame.lesion_ids, frame.boxes, strict=True):
                per_lesion.setdefault(int(lid), {})[frame.frame_index] = box
        width, height = int(record.width), int(record.height)
        if not per_lesion:
            if background:
                n = int(record.n_frames or 48)
                out.append(
                    TrackSample(
                        path, random_track(n, width, height, rng), NOT_LESION, group, "background"
                    )
                )
            continue
        for track in per_lesion.values():
            if lesions:
                out.append(TrackSample(path, track, LESION, group, "lesion"))
            if background:
                others = [b for i, bs in boxes.items() for b in bs]
                moved = background_boxes(track, others, width, height, rng)
                if moved is not None:
                    out.append(TrackSample(path, moved, NOT_LESION, group, "background"))
    return out


def false_track_samples(
    batch_dir: Path, dataset_root: Path, groups: set[str] | None
) -> list[TrackSample]:
    """Tracks of a ``sonorisk batch`` run that overlap no ground-truth box."""
    out: list[TrackSample] = []
    for dataset, video_id, _, group in _videos_of(dataset_root, groups):
        doc_path = batch_dir / f"{video_id}.json"
        if not doc_path.exists():
            continue
        document = json.loads(doc_path.read_text())
        truth = dataset.boxes_for(video_id)
        for lesion in document.get("lesions", []):
            boxes = {int(b["frame"]): tuple(b["box"]) for b in lesion["boxes"]}
            if overlaps_truth(boxes, truth) == 0.0:
                out.append(
                    TrackSample(dataset.path(video_id), boxes, NOT_LESION, group, "false_track")
                )
    return out


def sample_features(
    model: GAPClassifier,
    samples: Sequence[TrackSample],
    copies: int = 0,
    min_scale: float = 0.5,
    min_quality: int = 30,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Features of every clip of every sample, their labels and sample indices;
    with ``copies`` > 0, also of the clips of that many copies of each sample
    as another export would give them (``random_export``: smaller, compressed
    again), so the check does not learn one encoder's grain."""
    rng = np.random.default_rng(seed)
    feats: list[np.ndarray] = []
    labels: list[int] = []
    owner: list[int] = []
    for k, sample in enumerate(samples):
        frames, fps = track_frames(sample.video, sample.boxes)
        exports = [None, *(random_export(rng, min_scale, min_quality) for _ in range(copies))]
        crops = [
            c
            for export in exports
            for c in exported_crops(frames, sample.boxes, model.config.clips, fps, export)
        ]
        if not crops:
            continue
        f = pooled_features(model, np.stack(crops))
        feats.append(f)
        labels += [sample.label] * len(f)
        owner += [k] * len(f)
    if not feats:
        raise InputError("lesion check", "no sample gave a full clip")
    return np.concatenate(feats), np.asarray(labels), owner


def main(argv: Sequence[str] | None = None) -> int:
    from sonorisk.data.splits import read_id_lines
    from sonorisk.video_classifier.registry import load_classifier

    p = argparse.ArgumentParser(
        prog="python -m sonorisk.video_classifier.lesion_check",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--classifier", required=True, help="trained classifier checkpoint (.pt)")
    p.add_argument(
        "--lesions",
        nargs="+",
        default=[],
        help="annotated sweep datasets: their lesions, and background boxes moved off them",
    )
    p.add_argument(
        "--lesion-free",
        nargs="*",
        default=[],
        help="lesion-free sweep datasets: random background tracks",
    )
    p.add_argument(
        "--false-tracks",
        nargs=2,
        action="append",
        default=[],
        metavar=("BATCH_JSON_DIR", "DATASET"),
        help="a sonorisk batch run's JSON folder and the dataset it scored",
    )
    p.add_argument("--groups", help="use only these groups of every dataset (one a line)")
    p.add_argument("--c", type=finite_float, default=0.1, help="inverse L2 strength (default 0.1)")
    p.add_argument(
        "--export-copies",
        type=int,
        default=0,
        help="also fit on N copies of every track as another export would give it: "
        "frames made smaller and JPEG-compressed again (default 0)",
    )
    p.add_argument(
        "--export-min-scale",
        type=finite_float,
        default=0.5,
        help="smallest size factor of such a copy, in (0, 1] (default 0.5)",
    )
    p.add_argument(
        "--export-min-quality",
        type=int,
        default=30,
        help="lowest JPEG quality of such a copy, 1 to 95 (default 30)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="classifier checkpoint with the check")
    args = p.parse_args(argv)
    if args.export_copies < 0:
        p.error(f"--export-copies must be 0 or more, got {args.export_copies}")
    if not 0.0 < args.export_min_scale <= 1.0:
        p.error(f"--export-min-scale must be in (0, 1], got {args.export_min_scale}")
    if not 1 <= args.export_min_quality <= 95:
        p.error(f"--export-min-quality must be 1 to 95, got {args.export_min_quality}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(max(1, torch.get_num_threads()))

    rng = np.random.default_rng(args.seed)
    groups = set(read_id_lines(args.groups)) if args.groups else None
    samples: list[TrackSample] = []
    for root in args.lesions:
        samples += _dataset_samples(Path(root), rng, background=True, lesions=True, groups=groups)
    for root in args.lesion_free:
        samples += _dataset_samples(Path(root), rng, background=True, lesions=False, groups=groups)
    for batch_dir, root in args.false_tracks:
        samples += false_track_samples(Path(batch_dir), Path(root), groups)
    kinds: dict[str, int] = {}
    for s in samples:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    log.info("lesion check: %d tracks %s", len(samples), kinds)

    from sonorisk.atomic import atomic_torch_save
    from sonorisk.video_classifier.registry import read_checkpoint

    model = load_classifier(args.classifier)
    if not isinstance(model, GAPClassifier):
        raise InputError(
            args.classifier,
            f"a {model.kind!r} classifier has no pooled "
            "features for a lesion check (GAP models only)",
        )
    features, labels, _ = sample_features(
        model,
        samples,
        args.export_copies,
        args.export_min_scale,
        args.export_min_quality,
        args.seed,
    )
    weight, bias = fit_check(features, labels, args.c, args.seed)
    log.info(
        "fitted on %d clips (%d lesion, %d not)",
        len(labels),
        int(labels.sum()),
        int((labels == 0).sum()),
    )
    payload: dict[str, Any] = read_checkpoint(args.classifier)
    attach_check(model, weight, bias)
    payload["config"]["model"]["lesion_check"] = True
    payload["model_state"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    info = dict(payload.get("training_data") or {})
    info["lesion_check"] = {
        "description": "logistic layer on pooled clip features: lesion crops against "
        "background crops and false-track crops (trunk frozen)",
        "tracks": kinds,
        "clips": {"lesion": int(labels.sum()), "not_lesion": int((labels == 0).sum())},
        "sources": {
            "lesions": args.lesions,
            "lesion_free": args.lesion_free,
            "false_tracks": [b for b, _ in args.false_tracks],
        },
        "c": args.c,
        # copies of every track as another export gives it (random_export)
        "export_copies": {
            "copies": args.export_copies,
            "min_scale": args.export_min_scale,
            "min_jpeg_quality": args.export_min_quality,
        },
    }
    payload["training_data"] = info
    atomic_torch_save(payload, Path(args.out))
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
