"""Training/evaluation samples for the detector, from stills or video datasets.

Two sources are understood:

* a BUSI-style still folder (``manifest.csv`` with ``id,label,boxes,group,source``),
  read directly so the detector trains on the raw shared data;
* a sonorisk dataset folder (``annotations.json`` + ``videos.csv``), read through
  ``sonorisk.data.load_dataset``; frames are sampled every ``stride`` frames.

Every sample carries a ``group`` (patient or near-duplicate group) so splits
never put one patient on both sides.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from sonorisk.errors import DatasetError, InputError

ImageLoader = Callable[[], np.ndarray]


@dataclass
class DetectionSample:
    """One image (still or video frame) with its lesion boxes (xyxy, source pixels)."""

    key: str
    group: str
    label: str  # "benign" | "malignant" | "normal" | "" (unknown)
    boxes: np.ndarray  # N x 4 float32
    load: ImageLoader = field(repr=False)
    video_id: str = ""
    frame_index: int = 0
    fps: float | None = None

    @property
    def lesion_free(self) -> bool:
        return len(self.boxes) == 0


def read_image_file(path: Path) -> np.ndarray:
    """An image file as uint8 HxW (gray) or HxWx3 (RGB)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(path, "cannot read image (missing, empty or not an image)")
    if image.dtype != np.uint8:
        image = cv2.normalize(
            image,
            None,
            0,
            255,  # type: ignore[call-overload, unused-ignore]  # cv2 stubs: dst=None
            cv2.NORM_MINMAX,
        ).astype(np.uint8)
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = image[:, :, :3]
        if image.shape[2] == 1:
            return image[:, :, 0]
        b, g, r = image[:, :, 0], image[:, :, 1], image[:, :, 2]
        # Gray stored as three equal channels: keep one (a third of the memory).
        if np.array_equal(b, g) and np.array_equal(g, r):
            return b.copy()
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def _parse_boxes(text: str, where: str) -> np.ndarray:
    boxes = []
    for part in (text or "").split(";"):
        part = part.strip()
        if not part:
            continue
        values = part.split()
        if len(values) != 4:
            raise DatasetError(where, f"box {part!r} is not 'x1 y1 x2 y2'")
        boxes.append([float(v) for v in values])
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def is_still_folder(path: Path) -> bool:
    return (path / "manifest.csv").is_file() and not (path / "annotations.json").is_file()


def load_still_folder(path: str | Path) -> list[DetectionSample]:
    """A BUSI-style folder: ``manifest.csv`` rows -> samples (normals have no boxes)."""
    root = Path(path)
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise DatasetError(root, "no manifest.csv (expected a BUSI-style still folder)")
    samples: list[DetectionSample] = []
    with manifest.open(newline="") as handle:
        reader = csv.DictReader(handle)
        need = {"id", "label", "boxes", "source"}
        if not need <= set(reader.fieldnames or []):
            raise DatasetError(manifest, f"needs columns {sorted(need)}, has {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            file = root / row["source"]
            if not file.is_file():
                alt = root / row["label"] / f"{row['id']}.png"
                file = alt if alt.is_file() else file
            samples.append(
                DetectionSample(
                    key=row["id"],
                    group=row.get("group") or row["id"],
                    label=row["label"],
                    boxes=_parse_boxes(row["boxes"], f"{manifest}:{line}"),
                    load=partial(read_image_file, file),
                )
            )
    if not samples:
        raise DatasetError(manifest, "manifest lists no images")
    return samples


def load_video_dataset(path: str | Path, stride: int = 1) -> list[DetectionSample]:
    """Frames of a sonorisk dataset folder (every ``stride``-th frame of each video)."""
    from sonorisk.data import load_dataset

    dataset = load_dataset(path)
    samples: list[DetectionSample] = []
    for frame in dataset.frames():
        if stride > 1 and frame.frame_index % stride:
            continue
        record = dataset.video(frame.video_id)
        samples.append(
            DetectionSample(
                key=f"{frame.video_id}:{frame.frame_index}",
                group=str(record.patient_id or frame.video_id),
                label=str(record.pathology or ""),
                boxes=np.asarray([list(b) for b in frame.boxes], dtype=np.float32).reshape(-1, 4),
                load=partial(dataset.read_image, frame, color="rgb"),
                video_id=str(frame.video_id),
                frame_index=int(frame.frame_index),
                fps=float(record.fps) if record.fps else None,
            )
        )
    if not samples:
        raise DatasetError(path, "dataset holds no annotated frames")
    return samples


def load_samples(path: str | Path, video_frame_stride: int = 1) -> list[DetectionSample]:
    """Samples from a still folder or a sonorisk dataset folder, whichever ``path`` is."""
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(root, "data folder not found")
    if is_still_folder(root):
        return load_still_folder(root)
    if (root / "annotations.json").is_file():
        return load_video_dataset(root, video_frame_stride)
    raise DatasetError(
        root, "neither a still folder (manifest.csv) nor a sonorisk dataset (annotations.json)"
    )


def group_split(
    samples: list[DetectionSample], val_fraction: float, seed: int
) -> tuple[list[DetectionSample], list[DetectionSample]]:
    """Train/validation split that keeps each group on one side, stratified by label.

    Uses scikit-learn's StratifiedGroupKFold and takes one fold as validation, so
    the validation share is about ``val_fraction``.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0.0 < val_fraction < 1.0:
        raise InputError("train.val_fraction", f"must be in (0, 1), got {val_fraction}")
    groups = [s.group for s in samples]
    n_groups = len(set(groups))
    n_splits = max(2, min(round(1.0 / val_fraction), n_groups))
    if n_groups < 2:
        raise DatasetError("split", "need at least two groups (patients) to split")
    labels = [s.label or ("normal" if s.lesion_free else "lesion") for s in samples]
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_idx, val_idx = next(splitter.split(np.zeros(len(samples)), labels, groups))
    return [samples[i] for i in train_idx], [samples[i] for i in val_idx]


def read_val_groups(source: str | Path) -> set[str]:
    """Held-out groups from a detector checkpoint (``training.val_groups``) or a text file."""
    from sonorisk.detector.checkpoint import load_checkpoint

    path = Path(source)
    if not path.is_file():
        raise DatasetError(path, "train.val_groups_from: file not found")
    if path.suffix in {".pt", ".pth"}:
        groups = load_checkpoint(path).get("training", {}).get("val_groups")
        if not groups:
            raise DatasetError(path, "checkpoint records no held-out groups")
        return {str(g) for g in groups}
    from sonorisk.data.splits import read_id_lines

    groups = set(read_id_lines(path))
    if not groups:
        raise DatasetError(path, "no group ids in the file")
    return groups


def split_by_groups(
    samples: list[DetectionSample], val_groups: set[str]
) -> tuple[list[DetectionSample], list[DetectionSample]]:
    """Validation = the samples of ``val_groups``; training = all others."""
    train = [s for s in samples if s.group not in val_groups]
    val = [s for s in samples if s.group in val_groups]
    if not val:
        raise DatasetError("split", "no sample belongs to the given held-out groups")
    if not train:
        raise DatasetError("split", "every sample belongs to the held-out groups")
    return train, val
