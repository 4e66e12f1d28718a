"""Synthetic sweeps for tracker tests: phantom videos from sonorisk.data.synth,
their ground-truth boxes, and a detector-like corruption of those boxes
(jitter, missed frames, a longer gap, low scores, one-frame false positives)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sonorisk.records import Box, Detection


@dataclass
class Sweep:
    video_id: str
    n_frames: int
    width: int
    height: int
    gt: dict[int, list[Box]]  # frame -> lesion boxes

    @property
    def visible(self) -> list[int]:
        return [i for i, boxes in sorted(self.gt.items()) if boxes]


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sonorisk.data.synth import synthesize_phantom

    out = tmp_path_factory.mktemp("phantom")
    return synthesize_phantom(
        8,
        out / "ds",
        seed=3,
        frames=90,
        size=(240, 180),
        proportions={"benign": 0.5, "malignant": 0.5},
    )


@pytest.fixture(scope="session")
def sweeps(phantom_dir: Path) -> list[Sweep]:
    from sonorisk.data import load_dataset

    ds = load_dataset(phantom_dir)
    out = []
    for vid in ds.video_ids:
        record = ds.video(vid)
        gt = ds.boxes_for(vid)
        out.append(
            Sweep(
                vid,
                record.n_frames,
                record.width or 240,
                record.height or 180,
                {i: gt.get(i, []) for i in range(record.n_frames)},
            )
        )
    return out


def corrupt(
    sweep: Sweep,
    rng: np.random.Generator,
    *,
    jitter: float = 0.05,
    miss_p: float = 0.1,
    gap: int = 6,
    fp_p: float = 0.08,
    low_score_p: float = 0.15,
) -> dict[int, list[Detection]]:
    """Detector-like output: noisy boxes, misses, one gap, low scores, flicker FPs."""
    out: dict[int, list[Detection]] = {i: [] for i in range(sweep.n_frames)}
    visible = sweep.visible
    gap_start = visible[len(visible) // 2] if len(visible) > 3 * gap else None
    for i in range(sweep.n_frames):
        for box in sweep.gt[i]:
            if rng.random() < miss_p:
                continue
            if gap_start is not None and gap_start <= i < gap_start + gap:
                continue
            w, h = box[2] - box[0], box[3] - box[1]
            noise = rng.normal(0, jitter, 4) * np.array([w, h, w, h])
            noisy = tuple(float(v) for v in np.asarray(box) + noise)
            score = float(
                rng.uniform(0.2, 0.45) if rng.random() < low_score_p else rng.uniform(0.6, 0.99)
            )
            out[i].append(Detection(i, noisy, score))
        if rng.random() < fp_p:
            # A one-frame false positive somewhere else in the image.
            x, y = rng.uniform(0, sweep.width - 30), rng.uniform(0, sweep.height - 30)
            size = rng.uniform(10, 30)
            out[i].append(Detection(i, (x, y, x + size, y + size), float(rng.uniform(0.5, 0.95))))
    return out


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory: pytest.TempPathFactory, busi_dir: Path) -> Path:
    """A two-iteration detector training run on BUSI (weights are junk; the loop is real)."""
    from sonorisk.detector.config import DetectorConfig, ModelConfig, TrainConfig
    from sonorisk.detector.train import train_detector

    out = tmp_path_factory.mktemp("det_train_tracking")
    cfg = DetectorConfig(
        model=ModelConfig(
            backbone="mobilenet_v3_small",
            min_size=96,
            max_size=128,
            rpn_pre_nms_top_n_train=100,
            rpn_post_nms_top_n_train=50,
            rpn_pre_nms_top_n_test=50,
            rpn_post_nms_top_n_test=20,
            rpn_batch_size_per_image=32,
            box_batch_size_per_image=32,
            detections_per_img=5,
        ),
        train=TrainConfig(
            epochs=1,
            batch_size=2,
            max_iters_per_epoch=2,
            max_val_images=4,
            num_threads=1,
            out_dir=str(out),
            warmup_iters=2,
            lr=0.005,
        ),
    )
    train_detector([busi_dir], cfg, out, progress=False)
    return out
