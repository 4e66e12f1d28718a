"""Lesion crops of labelled stills: BUSI (benign 0 / malignant 1, boxes from
``manifest.csv``) and the phantom (subtypes), with the training augmentation.

Augmentation (training views only): horizontal flip, a small change of scale
(box side x 0.85-1.15) and shift (+-8% of the side), brightness and contrast
(+-15%). No vertical flip: posterior shadowing and enhancement lie below a
lesion, and a flip would move them above it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sonorisk.errors import DatasetError
from sonorisk.still_classifier.model import crop_square, resize_square

LABELS = {"benign": 0, "malignant": 1}


@dataclass(frozen=True)
class LesionCrop:
    """One lesion of one still: where it is and what it is."""

    image_path: str
    box: tuple[float, float, float, float]
    label: int  # 1: malignant
    group: str
    still_id: str
    subtype: str | None = None
    image: np.ndarray | None = None  # in memory (phantom); else read from image_path

    def read(self) -> np.ndarray:
        if self.image is not None:
            return self.image
        image = cv2.imread(self.image_path, cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(self.image_path, "not a readable image")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def busi_crops(source: str | Path, heldout_groups: Sequence[str], split: str) -> list[LesionCrop]:
    """Every lesion of the benign and malignant stills of ``split``: ``train`` (groups
    not held out) or ``heldout`` (only the held-out groups)."""
    from sonorisk.data.busi import read_manifest

    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    held = set(heldout_groups)
    out = []
    for still in read_manifest(source):
        if still.label not in LABELS or (still.group in held) != (split == "heldout"):
            continue
        for box in still.boxes:
            x1, y1, x2, y2 = (float(v) for v in box)
            out.append(
                LesionCrop(
                    str(still.image_path),
                    (x1, y1, x2, y2),
                    LABELS[still.label],
                    still.group,
                    still.still_id,
                )
            )
    return out


def phantom_crops(n: int, seed: int = 0, size: tuple[int, int] = (240, 160)) -> list[LesionCrop]:
    """``n`` phantom stills (sonorisk.data.phantom), alternately benign and malignant,
    one lesion each, with their subtypes: the only data here that has subtypes.
    A simulator for testing the subtype head, not a model of any patient."""
    from sonorisk.data.phantom import make_phantom
    from sonorisk.data.slab import mask_box

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        pathology = ("benign", "malignant")[i % 2]
        case = make_phantom(pathology, rng, size=size)
        gray = np.clip(case.slab.image * 255.0, 0, 255).astype(np.uint8)
        box = mask_box(case.slab.lesions[0].mask)
        if box is None:
            continue
        x1, y1, x2, y2 = (float(v) for v in box)
        out.append(
            LesionCrop(
                f"phantom:{i}",
                (x1, y1, x2, y2),
                LABELS[pathology],
                f"phantom{i}",
                f"phantom_{i}",
                case.lesions[0].spec.subtype,
                np.repeat(gray[:, :, None], 3, axis=2),
            )
        )
    return out


def augmented_crop(
    image: np.ndarray, box: Sequence[float], margin: float, size: int, rng: np.random.Generator
) -> np.ndarray:
    """One training view of a lesion (size x size uint8 RGB)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0)
    scale = rng.uniform(0.85, 1.15)
    dx, dy = rng.uniform(-0.08, 0.08, size=2) * side
    cx, cy = (x1 + x2) / 2 + dx, (y1 + y2) / 2 + dy
    half_w, half_h = (x2 - x1) * scale / 2, (y2 - y1) * scale / 2
    crop = crop_square(image, (cx - half_w, cy - half_h, cx + half_w, cy + half_h), margin)
    crop = resize_square(crop, size)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    contrast, brightness = rng.uniform(0.85, 1.15), rng.uniform(-0.15, 0.15) * 255
    mean = float(crop.mean())
    out = (crop.astype(np.float32) - mean) * contrast + mean + brightness
    return np.clip(out, 0, 255).astype(np.uint8)


def plain_crop(image: np.ndarray, box: Sequence[float], margin: float, size: int) -> np.ndarray:
    """The crop the model scores (no augmentation), at the network's size."""
    return resize_square(crop_square(image, box, margin), size)
