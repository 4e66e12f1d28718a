"""Pretrained weights from local files (nothing here downloads anything).

- :func:`read_state_dict` (from ``sonorisk.models.envelope``, the one model-file
  reader) reads a state dict saved by torch or safetensors (plain, or wrapped
  as ``{"state_dict": ...}`` / ``{"model_state": ...}`` / ``{"model": ...}``,
  ``module.`` prefixes of DataParallel stripped); a file that needs pickle is
  refused, so a weights file cannot run code.
- :func:`inflate_resnet2d_to_i3d` turns a torchvision 2D ResNet state dict
  (ImageNet) into I3D weights: each 2D kernel is repeated over the temporal
  kernel and divided by its length (Carreira & Zisserman 2017), so a clip of
  identical frames gives the 2D network's activations.
- :func:`load_matching` loads every tensor whose name and shape match and
  reports the rest (new heads are expected to be missing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

from sonorisk.errors import InputError
from sonorisk.models.envelope import read_state_dict

__all__ = [
    "LoadReport",
    "inflate_resnet2d_to_i3d",
    "load_matching",
    "read_state_dict",
    "resnet2d_to_i3d_names",
]


@dataclass
class LoadReport:
    source: str
    method: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the file
    skipped: list[str] = field(default_factory=list)  # in the file, unusable (name/shape)

    def summary(self) -> dict[str, object]:
        return {
            "source": self.source,
            "method": self.method,
            "tensors_loaded": len(self.loaded),
            "tensors_missing": len(self.missing),
            "tensors_skipped": len(self.skipped),
            "missing_examples": self.missing[:8],
        }


def load_matching(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    source: str,
    method: str,
    require_fraction: float = 0.5,
) -> LoadReport:
    """Copy tensors whose name and shape match; refuse a file that barely matches."""
    own = model.state_dict()
    report = LoadReport(source=source, method=method)
    usable: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name in own and own[name].shape == tensor.shape:
            usable[name] = tensor
        else:
            report.skipped.append(name)
    params = [k for k in own if not k.endswith("num_batches_tracked")]
    matched = [k for k in params if k in usable]
    if len(matched) < require_fraction * len(params):
        raise InputError(
            source,
            f"weights do not fit this model: only {len(matched)} of {len(params)} tensors "
            f"match by name and shape (first unmatched in file: {report.skipped[:3]})",
        )
    model.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    report.missing = [k for k in params if k not in usable]
    return report


_TV_BLOCK = re.compile(r"^layer(\d)\.(\d+)\.(conv[123]|bn[123]|downsample\.[01])\.(.+)$")
_TV_TO_PTV = {
    "conv1": "branch2.conv_a",
    "bn1": "branch2.norm_a",
    "conv2": "branch2.conv_b",
    "bn2": "branch2.norm_b",
    "conv3": "branch2.conv_c",
    "bn3": "branch2.norm_c",
    "downsample.0": "branch1_conv",
    "downsample.1": "branch1_norm",
}


def resnet2d_to_i3d_names(name: str, stage_blocks: dict[int, int]) -> str | None:
    """torchvision ResNet parameter name -> pytorchvideo ``create_resnet`` name."""
    if name.startswith("conv1."):
        return "blocks.0.conv." + name.removeprefix("conv1.")
    if name.startswith("bn1."):
        return "blocks.0.norm." + name.removeprefix("bn1.")
    m = _TV_BLOCK.match(name)
    if not m:
        return None  # fc.* and anything else: not part of the backbone
    layer, block, part, leaf = int(m[1]), int(m[2]), m[3], m[4]
    return f"blocks.{stage_blocks[layer]}.res_blocks.{block}.{_TV_TO_PTV[part]}.{leaf}"


def inflate_resnet2d_to_i3d(
    state2d: dict[str, torch.Tensor], target: dict[str, torch.Tensor], stage_blocks: dict[int, int]
) -> dict[str, torch.Tensor]:
    """Inflate 2D conv kernels to the temporal kernel sizes of ``target`` (a 3D state dict)."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state2d.items():
        new = resnet2d_to_i3d_names(name, stage_blocks)
        if new is None or new not in target:
            continue
        inflated = inflate_kernel(tensor, target[new])
        if inflated is not None:
            out[new] = inflated
    return out


def inflate_kernel(tensor: torch.Tensor, want: torch.Tensor) -> torch.Tensor | None:
    """``tensor`` shaped as ``want``: a 2D kernel (4-D) whose target is 3D (5-D) is
    repeated over the temporal taps and divided by their number, so a clip of
    identical frames gives the 2D activations; None when the shapes cannot fit."""
    if tensor.ndim == 4 and want.ndim == 5:
        kt = want.shape[2]
        tensor = tensor.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt
    return tensor if tensor.shape == want.shape else None
