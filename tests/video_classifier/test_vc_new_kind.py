"""A clip-classifier kind added from outside the package, through the registry.

The registry (``sonorisk.video_classifier.config.CLASSIFIER_KINDS``) is the one
place a kind is declared: this module registers a tiny kind and then trains,
loads and scores it through the same entry points the shipped kinds use
(``sonorisk train classifier``, ``load_classifier``, ``sonorisk eval classifier``,
the pipeline's ``IncrementalScorer``), with no other change to the package.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sonorisk.cli import main
from sonorisk.video_classifier.base import GAPClassifier
from sonorisk.video_classifier.config import (
    CLASSIFIER_KINDS,
    ClassifierConfig,
    ClassifierKind,
    register_classifier_kind,
)
from sonorisk.video_classifier.registry import load_classifier


class TinyClassifier(GAPClassifier):
    """One 3D convolution and the GAP head: the least a kind must provide."""

    kind = "tiny3d"

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config)
        self.conv = nn.Conv3d(3, 4, kernel_size=3, padding=1)
        self.make_heads(4, dropout=0.0)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


@pytest.fixture
def tiny_kind():
    spec = register_classifier_kind(ClassifierKind("tiny3d", TinyClassifier))
    yield spec
    CLASSIFIER_KINDS.pop(spec.name)


def test_registered_kind_trains_loads_and_scores(tiny_kind, phantom_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "classifier",
                "--data",
                str(phantom_dir),
                "--model",
                "tiny3d",
                "--out",
                str(out),
                "--crop-size",
                "16",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--val-fraction",
                "0.3",
                "--threads",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["kind"] == "tiny3d" and summary["epochs"] == 1

    model = load_classifier(out / "best.pt", kind="tiny3d")
    assert type(model) is TinyClassifier and model.clip_config.crop_size == 16
    clips = np.random.default_rng(0).integers(0, 255, (2, 8, 16, 16, 3), dtype=np.uint8)
    scores = model.predict(clips)
    assert [s.heatmap.shape for s in scores] == [(8, 16, 16)] * 2
    assert all(0.0 <= s.probability <= 1.0 for s in scores)

    table = tmp_path / "scores.csv"
    assert (
        main(
            [
                "eval",
                "classifier",
                "--data",
                str(phantom_dir),
                "--checkpoint",
                str(out / "best.pt"),
                "--name",
                "tiny",
                "--out",
                str(table),
            ]
        )
        == 0
    )
    rows = pd.read_csv(table)
    assert len(rows) > 0 and set(rows["model"]) == {"tiny"}
    assert rows["score"].between(0.0, 1.0).all()


def test_registered_kind_scores_in_the_pipeline(tiny_kind) -> None:
    from sonorisk.detector.reference import ReferenceDetector
    from sonorisk.pipeline.config import PipelineConfig
    from sonorisk.pipeline.scorer import IncrementalScorer
    from sonorisk.records import Frame
    from sonorisk.video_classifier.clips import ClipConfig
    from sonorisk.video_classifier.registry import build_classifier

    config = ClassifierConfig(clips=ClipConfig(crop_size=16))
    config.model.kind = "tiny3d"
    model = build_classifier(config)
    rng = np.random.default_rng(1)
    frames = [Frame(i, i / 25, rng.integers(0, 255, (64, 64), dtype=np.uint8)) for i in range(16)]
    detector = ReferenceDetector({i: [(20.0, 20.0, 40.0, 40.0)] for i in range(16)})
    scorer = IncrementalScorer(detector, model, PipelineConfig(crop="none"), fps=25)
    for frame in frames:
        scorer.push(frame)
    scorer.finish()
    result = scorer.result()
    assert result.clips == 2 and result.risk is not None and 0.0 <= result.risk <= 1.0


def test_unknown_kind_names_the_registered_ones(tiny_kind) -> None:
    from sonorisk.errors import ConfigError

    config = ClassifierConfig()
    config.model.kind = "nope"
    with pytest.raises(ConfigError, match="tiny3d"):
        config.validate()
    with pytest.raises(ConfigError, match="already registered"):
        register_classifier_kind(ClassifierKind("tiny3d", GAPClassifier))
