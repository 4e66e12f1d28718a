"""I3D-ResNet (WAUVE's video classifier) built with pytorchvideo's ``create_resnet``.

The architecture is ``pytorchvideo.models.hub.i3d_r50`` (I3D temporal kernels:
stem 5x7x7, conv_a kernels (3,1,1)/(1,1,1) alternating, a temporal max-pool
after stage 1) but without its head, whose AvgPool3d is fixed to 8x224x224
inputs. Here a global average pool + linear (:class:`GAPHead`) follows the last
conv, as the paper added "a GAP layer after the last convolutional layer ... to
generate heatmaps": any clip size works, and the CAM is exact.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from sonorisk.errors import ConfigError
from sonorisk.video_classifier.base import GAPClassifier
from sonorisk.video_classifier.config import ClassifierConfig
from sonorisk.video_classifier.weights import (
    LoadReport,
    inflate_resnet2d_to_i3d,
    load_matching,
    read_state_dict,
)

# i3d_r50's conv_a temporal kernels per stage (pytorchvideo hub/resnet.py).
I3D_CONV_A = (
    (3, 1, 1),
    [(3, 1, 1), (1, 1, 1)],
    [(3, 1, 1), (1, 1, 1)],
    [(1, 1, 1), (3, 1, 1)],
)
# With the stage-1 pool, torchvision's layer1..4 sit at blocks 1, 3, 4, 5.
STAGE_BLOCKS = {1: 1, 2: 3, 3: 4, 4: 5}
# Where a sonorisk 2D model (static2d, pca-svm) keeps its torchvision backbone.
SONORISK_2D_PREFIX = "backbone.body."


def build_i3d_backbone(
    depth: int, width: int, spatial_strides: tuple[int, ...] = (1, 2, 2, 2)
) -> nn.ModuleList:
    # Imported here: pytorchvideo is heavy and only this model needs it. Only
    # pytorchvideo.models is used; pytorchvideo.transforms does not import with
    # torchvision >= 0.17 (it needs torchvision.transforms.functional_tensor).
    with warnings.catch_warnings():
        # pytorchvideo 0.1.5 calls torch.jit.script at import (deprecated in torch 2.14).
        warnings.simplefilter("ignore", FutureWarning)
        from pytorchvideo.models.resnet import create_resnet

    if depth not in (50, 101, 152):
        raise ConfigError("model.i3d.depth", f"must be 50, 101 or 152, got {depth}")
    if len(spatial_strides) != 4 or min(spatial_strides) < 1:
        raise ConfigError(
            "model.i3d.spatial_strides", f"need 4 strides >= 1, got {spatial_strides}"
        )
    if width < 1:
        raise ConfigError("model.i3d.width", f"must be >= 1, got {width}")
    net = create_resnet(
        input_channel=3,
        model_depth=depth,
        stem_dim_out=width,
        stem_conv_kernel_size=(5, 7, 7),
        stage1_pool=nn.MaxPool3d,
        stage_conv_a_kernel_size=I3D_CONV_A,
        stage_spatial_h_stride=tuple(spatial_strides),
        stage_spatial_w_stride=tuple(spatial_strides),
        head=None,
    )
    return net.blocks


class I3DClassifier(GAPClassifier):
    kind = "i3d"

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config)
        opts = config.model.i3d
        self.blocks = build_i3d_backbone(opts.depth, opts.width, tuple(opts.spatial_strides))
        self.feature_dim = opts.width * 32  # create_resnet doubles 4x width over 4 stages
        self.make_heads(self.feature_dim, opts.dropout)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def load_pretrained(self, path: str) -> LoadReport:
        """ImageNet 2D ResNet (inflated) or a pytorchvideo I3D state dict (Kinetics).

        A sonorisk static2d or pca-svm checkpoint with a ResNet-50 backbone also
        inflates: its backbone (``backbone.body.*``, torchvision names below that)
        is the 2D ResNet, e.g. one trained on the same training split when no
        ImageNet file is at hand.
        """
        state = read_state_dict(path)
        if any(k.startswith(SONORISK_2D_PREFIX) for k in state):
            state = {
                k.removeprefix(SONORISK_2D_PREFIX): v
                for k, v in state.items()
                if k.startswith(SONORISK_2D_PREFIX)
            }
        if any(k.startswith("layer1.") for k in state):
            inflated = inflate_resnet2d_to_i3d(state, self.state_dict(), STAGE_BLOCKS)
            return load_matching(self, inflated, path, "2d-resnet inflated to i3d")
        # A pytorchvideo model saves "blocks.N..." names; its Kinetics head
        # (blocks.6.proj) has another shape and stays unused.
        return load_matching(self, state, path, "pytorchvideo i3d state dict")
