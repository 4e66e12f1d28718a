"""Build the torchvision detector (Faster R-CNN or RetinaNet on a FPN backbone).

One foreground class, "lesion" (label 1), plus background (label 0).
Pretrained backbone weights come from a file or, on request, the torchvision
hub; otherwise the backbone is randomly initialised. ``WeightsSource`` records
which, and it travels into every checkpoint and every output.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sonorisk.detector.backbones import (
    WeightsSource,
    backbone_spec,
    build_backbone,
    resolved_norm,
    retinanet_anchors,
)
from sonorisk.detector.config import ModelConfig
from sonorisk.errors import ConfigError

# Re-exported: checkpoints, the predictor and detectron2 packing name them here.
__all__ = ["LABEL_NAMES", "NUM_CLASSES", "WeightsSource", "build_model", "resolved_norm"]

NUM_CLASSES = 2  # background + lesion
LABEL_NAMES = {1: "lesion"}


def _n_feature_maps(backbone: nn.Module) -> int:
    with torch.no_grad():
        was_training = backbone.training
        backbone.eval()
        out = backbone(torch.zeros(1, 3, 64, 64))
        backbone.train(was_training)
    return len(out)


def build_model(cfg: ModelConfig) -> tuple[nn.Module, WeightsSource]:
    """The detector described by ``cfg`` and where its backbone weights came from."""
    from torchvision.models.detection import FasterRCNN, RetinaNet

    if cfg.min_size < 32 or cfg.max_size < cfg.min_size:
        raise ConfigError(
            "model.min_size", f"need 32 <= min_size <= max_size, got {cfg.min_size}/{cfg.max_size}"
        )
    retina = cfg.architecture == "retinanet"
    spec = backbone_spec(cfg.backbone)
    backbone, source = build_backbone(cfg, for_retinanet=retina)
    n_levels = _n_feature_maps(backbone)
    anchors = retinanet_anchors(n_levels) if retina else spec.anchors(n_levels)
    common: dict[str, Any] = {
        "min_size": cfg.min_size,
        "max_size": cfg.max_size,
        "anchor_generator": anchors,
        "detections_per_img": cfg.detections_per_img,
    }
    # The input scaling the backbone's weights expect (default: torchvision's).
    scaling: dict[str, Any] = {}
    if spec.image_mean is not None and spec.image_std is not None:
        scaling = {"image_mean": list(spec.image_mean), "image_std": list(spec.image_std)}
    common.update(scaling)
    if retina:
        model = RetinaNet(
            backbone,
            num_classes=NUM_CLASSES,
            score_thresh=cfg.box_score_thresh,
            nms_thresh=cfg.box_nms_thresh,
            topk_candidates=max(cfg.rpn_pre_nms_top_n_test, 1),
            **common,
        )
    else:
        box_head: dict[str, Any] = {}
        if cfg.box_representation_size != 1024:  # torchvision builds the default itself
            from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

            if cfg.box_representation_size < 16:
                raise ConfigError(
                    "model.box_representation_size",
                    f"need >= 16, got {cfg.box_representation_size}",
                )
            resolution = 7  # torchvision's MultiScaleRoIAlign output size
            box_head = {
                # out_channels: an int (torchvision's backbone contract) that torch's
                # nn.Module.__getattr__ types as Tensor | Module
                "box_head": TwoMLPHead(
                    backbone.out_channels * resolution**2,  # type: ignore[operator]
                    cfg.box_representation_size,
                ),
                "box_predictor": FastRCNNPredictor(cfg.box_representation_size, NUM_CLASSES),
            }
        model = FasterRCNN(
            backbone,
            num_classes=None if box_head else NUM_CLASSES,
            rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_top_n_train,
            rpn_post_nms_top_n_train=cfg.rpn_post_nms_top_n_train,
            rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_top_n_test,
            rpn_post_nms_top_n_test=cfg.rpn_post_nms_top_n_test,
            rpn_batch_size_per_image=cfg.rpn_batch_size_per_image,
            box_batch_size_per_image=cfg.box_batch_size_per_image,
            box_score_thresh=cfg.box_score_thresh,
            box_nms_thresh=cfg.box_nms_thresh,
            box_detections_per_img=cfg.detections_per_img,
            min_size=cfg.min_size,
            max_size=cfg.max_size,
            rpn_anchor_generator=anchors,
            **box_head,
            **scaling,
        )
    return model, source
