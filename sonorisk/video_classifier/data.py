"""Training clips from a video dataset: ground-truth boxes -> tracks -> clips.

Each video's annotated lesion boxes become tracks (:func:`tracks_from_boxes`,
one per lesion id, split at gaps) and the clip builder crops them exactly as
the pipeline crops detector tracks, so a model sees the same kind of clip in
training and in use. Every clip carries its video's label (one lesion per
video, as in the paper).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sonorisk.errors import DatasetError
from sonorisk.video_classifier.clips import ClipBuilder, ClipConfig, tracks_from_boxes

log = logging.getLogger(__name__)


@dataclass
class ClipSet:
    """Clips with labels, in memory: ``clips`` is N x T x H x W x 3 uint8."""

    clips: np.ndarray
    labels: np.ndarray  # class index per clip
    video_ids: list[str]
    patient_ids: list[str]
    class_names: list[str]
    skipped: dict[str, str] = field(default_factory=dict)  # video id -> reason
    boxes: np.ndarray | None = None  # N x T x 4 source-pixel boxes of each clip frame

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> ClipSet:
        idx = np.flatnonzero(mask)
        return ClipSet(
            self.clips[idx],
            self.labels[idx],
            [self.video_ids[i] for i in idx],
            [self.patient_ids[i] for i in idx],
            self.class_names,
            dict(self.skipped),
            self.boxes[idx] if self.boxes is not None else None,
        )

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts, strict=True)}


def _norm(text: object) -> str:
    return str(text).strip().lower().replace(" ", "_").replace("-", "_")


def label_field_for(classes: Sequence[str], label_field: str) -> str:
    if label_field != "auto":
        return label_field
    return "pathology" if {_norm(c) for c in classes} <= {"benign", "malignant"} else "subtype"


def video_class(record: Any, classes: Sequence[str], label_field: str) -> int | None:
    """Class index of a video, or None when its label is not one of ``classes``."""
    value = record.pathology if label_field == "pathology" else record.subtype
    if value is None:
        return None
    lookup = {_norm(c): i for i, c in enumerate(classes)}
    return lookup.get(_norm(value))


def clips_from_dataset(
    dataset: Any,
    clip_config: ClipConfig,
    classes: Sequence[str],
    label_field: str = "auto",
    video_ids: Sequence[str] | None = None,
    max_clips_per_video: int | None = None,
    seed: int = 0,
) -> ClipSet:
    """Build labelled clips for ``video_ids`` (default: all) of a ``VideoDataset``.

    Videos whose label is not among ``classes`` (e.g. "normal" for a
    benign/malignant model, or an unlisted subtype) are skipped and recorded
    in ``ClipSet.skipped`` with the reason.
    """
    field_name = label_field_for(classes, label_field)
    rng = np.random.default_rng(seed)
    crops: list[np.ndarray] = []
    clip_boxes: list[np.ndarray] = []
    labels: list[int] = []
    vids: list[str] = []
    patients: list[str] = []
    skipped: dict[str, str] = {}
    for video_id in video_ids if video_ids is not None else dataset.video_ids:
        record = dataset.video(video_id)
        label = video_class(record, classes, field_name)
        if label is None:
            value = record.pathology if field_name == "pathology" else record.subtype
            skipped[video_id] = f"{field_name} {value!r} is not one of {list(classes)}"
            continue
        frames = dataset.frames(video_id)
        boxes = {f.frame_index: f.boxes for f in frames if f.boxes}
        ids = {f.frame_index: f.lesion_ids for f in frames if f.boxes}
        tracks = tracks_from_boxes(boxes, ids)
        wanted: dict[int, list[tuple[int, tuple[float, float, float, float]]]] = defaultdict(list)
        for track in tracks:
            for det in track.detections:
                wanted[det.frame_index].append((track.track_id, det.box))
        builder = ClipBuilder(clip_config, fps=record.fps)
        video_clips = []
        if wanted:
            for annotation, image in dataset.iter_images(video_id):
                for track_id, box in wanted.get(annotation.frame_index, []):
                    clip = builder.push(track_id, annotation.frame_index, image, box)
                    if clip is not None:
                        video_clips.append(clip)
        if not video_clips:
            skipped[video_id] = f"no track of {clip_config.length} annotated frames"
            continue
        if max_clips_per_video is not None and len(video_clips) > max_clips_per_video:
            keep = sorted(rng.choice(len(video_clips), max_clips_per_video, replace=False))
            video_clips = [video_clips[i] for i in keep]
        crops.extend(c.crops for c in video_clips)
        clip_boxes.extend(np.asarray(c.boxes, dtype=np.float32) for c in video_clips)
        labels.extend([label] * len(video_clips))
        vids.extend([video_id] * len(video_clips))
        patients.extend([str(record.patient_id)] * len(video_clips))
    if not crops:
        raise DatasetError(
            getattr(dataset, "root", "dataset"),
            f"no clips could be built for classes {list(classes)} "
            f"(skipped: {dict(list(skipped.items())[:5])})",
        )
    if skipped:
        log.info("skipped %d videos (first: %s)", len(skipped), next(iter(skipped.items())))
    return ClipSet(
        np.stack(crops),
        np.asarray(labels, dtype=np.int64),
        vids,
        patients,
        list(classes),
        skipped,
        np.stack(clip_boxes),
    )


def describe_training_data(dataset: Any, train: ClipSet, val: ClipSet | None) -> dict[str, Any]:
    """The training-data description every checkpoint carries (medical honesty)."""
    sets = [train] + ([val] if val is not None else [])
    video_ids = sorted({v for s in sets for v in s.video_ids})
    records = [dataset.video(v) for v in video_ids]
    synthetic = [bool(getattr(r, "synthetic", False)) for r in records]
    generators = sorted({str(r.generator) for r in records if getattr(r, "generator", None)})
    n_videos = len(video_ids)
    counts = train.class_counts()
    if val is not None:
        counts = {k: counts[k] + val.class_counts()[k] for k in counts}
    return {
        "dataset": str(getattr(dataset, "root", "")),
        "synthetic": any(synthetic),
        "all_synthetic": all(synthetic) if synthetic else False,
        "generators": generators,
        "videos": n_videos,
        "patients": len({p for s in sets for p in s.patient_ids}),
        "clips": sum(len(s) for s in sets),
        "train_clips": len(train),
        "val_clips": len(val) if val is not None else 0,
        "class_counts": counts,
        "skipped_videos": {**train.skipped, **(val.skipped if val is not None else {})},
        # Fewer than a few hundred videos cannot support any clinical claim.
        "tiny": n_videos < 200,
        "note": "research use only; not a medical device",
    }
