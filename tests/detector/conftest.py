"""Tiny detector configs and a tiny trained checkpoint shared by the detector tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from sonorisk.detector.config import DetectorConfig, ModelConfig, TrainConfig


def tiny_model(**kw) -> ModelConfig:
    base = dict(
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
    )
    base.update(kw)
    return ModelConfig(**base)


def tiny_config(out_dir: Path, **train_kw) -> DetectorConfig:
    train = dict(
        epochs=1,
        batch_size=2,
        max_iters_per_epoch=2,
        max_val_images=6,
        num_threads=1,
        out_dir=str(out_dir),
        warmup_iters=2,
        lr=0.005,
    )
    train.update(train_kw)
    return DetectorConfig(model=tiny_model(), train=TrainConfig(**train))


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory: pytest.TempPathFactory, busi_dir: Path) -> Path:
    """A two-iteration training run on BUSI (real data, real loop): weights are junk."""
    from sonorisk.detector.train import train_detector

    out = tmp_path_factory.mktemp("det_train")
    train_detector([busi_dir], tiny_config(out), out, progress=False)
    return out
