"""Tiny still classifiers (a few trunk blocks, small crops) and a detector file
with an EfficientNet-Lite0 trunk for them to build on. Weights are random."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sonorisk.still_classifier.config import (
    CropConfig,
    ModelConfig,
    StillClassifierConfig,
    TrainConfig,
)


def tiny_config(**model) -> StillClassifierConfig:
    base = dict(backbone="random", trunk_blocks=3, head_channels=8, dropout=0.0)
    base.update(model)
    return StillClassifierConfig(
        crop=CropConfig(size=48, margin=0.25),
        model=ModelConfig(**base),
        train=TrainConfig(epochs=2, batch_size=8, augment_copies=2, cv_folds=2, lr=0.01),
    )


@pytest.fixture(scope="session")
def lite0_detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A detector checkpoint as the detector's own code builds and saves it
    (EfficientNet-Lite0 FPN, random init): what the still classifier builds on."""
    from sonorisk.detector.checkpoint import save_checkpoint
    from sonorisk.detector.config import DetectorConfig
    from sonorisk.detector.model import build_model

    from ..detector.conftest import tiny_model  # noqa: TID252

    torch.manual_seed(0)
    config = DetectorConfig(model=tiny_model(backbone="efficientnet_lite0"))
    model, source = build_model(config.model)
    with torch.no_grad():  # random init leaves running stats at 0/1: make them matter
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.uniform_(-0.1, 0.1)
    out = tmp_path_factory.mktemp("lite0_det") / "detector.pt"
    return save_checkpoint(out, model=model, config=config, weights_source=source.to_dict())
