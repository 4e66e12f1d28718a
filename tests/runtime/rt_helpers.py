"""Helpers of the ONNX Runtime tests: small models saved as checkpoints, box matching,
and the stated tolerances (docs/runtime.md): boxes match one to one with IoU >= 0.99
and scores within 1e-3; clip, class and lesion-check probabilities and heatmap values
within 1e-4 (absolute)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sonorisk.records import Detection
from sonorisk.tracking.postprocess import box_iou

REPO = Path(__file__).resolve().parents[2]
BOX_IOU_MIN = 0.99
SCORE_TOL = 1e-3
PROB_TOL = 1e-4


def save_tiny_detector(path: Path, backbone: str, seed: int = 0) -> Path:
    """A random-init detector checkpoint (weights are junk; maps are what is compared)."""
    from sonorisk.detector.checkpoint import save_checkpoint
    from sonorisk.detector.config import DetectorConfig, ModelConfig
    from sonorisk.detector.model import build_model

    torch.manual_seed(seed)
    config = DetectorConfig(
        model=ModelConfig(
            backbone=backbone,
            min_size=96,
            max_size=128,
            rpn_pre_nms_top_n_test=50,
            rpn_post_nms_top_n_test=20,
            detections_per_img=5,
        )
    )
    config.inference.device = "cpu"
    model, source = build_model(config.model)
    return save_checkpoint(path, model=model, config=config, weights_source=source.to_dict())


def save_tiny_classifier(path: Path, kind: str, lesion_check: bool, seed: int = 0) -> Path:
    """A random-init clip classifier checkpoint, with a lesion check when asked."""
    from sonorisk.video_classifier.config import ClassifierConfig
    from sonorisk.video_classifier.lesion_check import attach_check
    from sonorisk.video_classifier.registry import build_classifier, save_checkpoint

    torch.manual_seed(seed)
    config = ClassifierConfig()
    config.model.kind = kind  # type: ignore[assignment]
    config.clips.crop_size = 32
    config.model.i3d.width = 8
    config.model.static2d.backbone = "resnet18"
    config.model.pca_svm.backbone = "resnet18"
    model = build_classifier(config)
    if lesion_check:
        rng = np.random.default_rng(seed)
        dim = model.head.fc.in_features  # type: ignore[union-attr]
        attach_check(model, rng.normal(0, 0.05, dim).astype(np.float32), 0.1)  # type: ignore[arg-type]
    return save_checkpoint(
        path, model, training_data={"description": "random init (test)", "synthetic": True}
    )


def assert_same_detections(got: list[Detection], want: list[Detection]) -> None:
    """Same count; each box matches the torch box at its rank (both lists are sorted
    by score) with IoU >= BOX_IOU_MIN and a score within SCORE_TOL."""
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want, strict=True):
        assert box_iou(g.box, w.box) >= BOX_IOU_MIN, (g, w)
        assert abs(g.score - w.score) <= SCORE_TOL, (g, w)
        assert g.frame_index == w.frame_index
