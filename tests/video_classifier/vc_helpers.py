"""Small configs and clip generators shared by the classifier tests."""

from __future__ import annotations

import numpy as np

from sonorisk.video_classifier.clips import ClipConfig
from sonorisk.video_classifier.config import (
    AugmentConfig,
    ClassifierConfig,
    I3DOptions,
    PcaSvmOptions,
    Static2DOptions,
    TimesformerOptions,
)
from sonorisk.video_classifier.data import ClipSet


def tiny_config(
    kind: str, size: int = 32, classes: list[str] | None = None, malignant: list[str] | None = None
) -> ClassifierConfig:
    cfg = ClassifierConfig(clips=ClipConfig(crop_size=size))
    cfg.model.kind = kind  # type: ignore[assignment]
    if classes is not None:
        cfg.model.classes = classes
        cfg.model.malignant_classes = malignant or [classes[-1]]
    cfg.model.i3d = I3DOptions(width=4, dropout=0.0, spatial_strides=[1, 1, 1, 1])
    cfg.model.static2d = Static2DOptions(backbone="resnet18")
    cfg.model.pca_svm = PcaSvmOptions(backbone="mobilenet_v2", pca_components=8)
    cfg.model.timesformer = TimesformerOptions(
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    cfg.train.epochs = 1
    cfg.train.batch_size = 4
    cfg.train.lr = 3e-3
    cfg.train.num_threads = 1
    cfg.train.augment = AugmentConfig(
        rotate_deg=0.0, scale_min=1.0, brightness=0.0, contrast=0.0, blur_prob=0.0
    )
    return cfg


def blob_clips(
    n: int, size: int, seed: int, length: int = 8
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Phantom clips: noisy background; label 1 (malignant) = a bright disc at a random place.

    Returns clips (N x T x size x size x 3 uint8), labels, and disc centres (y, x).
    """
    rng = np.random.default_rng(seed)
    clips = rng.integers(40, 90, size=(n, length, size, size, 3)).astype(np.uint8)
    labels = np.arange(n) % 2
    yy, xx = np.mgrid[:size, :size]
    centres = []
    for i in range(n):
        cy, cx = (int(v) for v in rng.integers(size // 5, size - size // 5, 2))
        centres.append((cy, cx))
        if labels[i]:
            clips[i][:, (yy - cy) ** 2 + (xx - cx) ** 2 <= (size / 8) ** 2] = 230
    return clips, labels, centres


def clipset(
    clips: np.ndarray,
    labels: np.ndarray,
    prefix: str,
    classes: list[str] | None = None,
    clips_per_video: int = 1,
) -> ClipSet:
    vids = [f"{prefix}{i // clips_per_video}" for i in range(len(labels))]
    return ClipSet(
        clips,
        np.asarray(labels, dtype=np.int64),
        vids,
        [f"p{v}" for v in vids],
        classes or ["benign", "malignant"],
    )
