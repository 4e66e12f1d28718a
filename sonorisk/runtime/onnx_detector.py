"""The torchvision detector with its backbone + FPN run by ONNX Runtime.

Only the backbone is exported: it is most of the detector's time (the bundled
EfficientNet-Lite0 FPN: 0.76 of 0.92 s for four 320x480 frames in torch on
this 2-core CPU), and ONNX Runtime runs it faster (``benchmarks/runtime.py``,
docs/runtime.md). Torchvision's transform, RPN, ROI heads and postprocessing
stay in torch, unchanged. The whole Faster R-CNN also exports as one graph
(one image per call), but it was no faster (0.137 against 0.132 s a frame for
the model call, measured side by side), and this split keeps batching, flip
TTA and the predictor's box rules exactly as they are.

The graph takes the transform's padded batch (``B x 3 x H x W``, normalised)
with dynamic batch, height and width, and returns the FPN maps under their
torchvision names, so any frame size and detector input size works.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sonorisk.errors import ConfigError
from sonorisk.runtime.onnx_export import ExportJob, cached_export
from sonorisk.runtime.sessions import OrtOptions, make_session, runtime_info

ROLE = "detector-backbone"
INPUT = "images"
# ONNX output names are prefixed: the exporter refuses a bare "0" (the FPN's first map).
PREFIX = "feat_"


class _MapsAsTuple(nn.Module):
    """The backbone with its ordered dict of maps returned as a tuple (what export traces)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.backbone(images).values())


class OnnxBackbone(nn.Module):
    """Stands in for ``model.backbone``: same input, same ordered dict of maps."""

    def __init__(self, session: Any, out_channels: int) -> None:
        super().__init__()
        self.session = session
        self.out_channels = out_channels  # torchvision's backbone contract
        self.outputs = [o.name for o in session.get_outputs()]

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        if images.device.type != "cpu":
            raise RuntimeError("the ONNX backbone runs on the CPU only")
        feed = np.ascontiguousarray(images.detach().float().numpy())
        maps = self.session.run(self.outputs, {INPUT: feed})
        return OrderedDict(
            (name.removeprefix(PREFIX), torch.from_numpy(m))
            for name, m in zip(self.outputs, maps, strict=True)
        )


def export_job(backbone: nn.Module, height: int, width: int) -> ExportJob:
    """The backbone traced on one ``height x width`` input (multiples of 32, as the
    transform pads to), every axis but the channels dynamic."""
    example = torch.zeros(1, 3, height, width)
    with torch.no_grad():
        names = list(backbone.eval()(example).keys())
    outputs = [PREFIX + n for n in names]
    axes = {INPUT: {0: "batch", 2: "height", 3: "width"}}
    axes.update({o: {0: "batch", 2: f"{o}_height", 3: f"{o}_width"} for o in outputs})
    return ExportJob(_MapsAsTuple(backbone), (example,), [INPUT], outputs, axes)


def _pad32(size: int) -> int:
    return max(32, -(-size // 32) * 32)


def to_onnx_detector(
    detector: Any, source: str | Path, sha256: str, options: OrtOptions | None = None
) -> Any:
    """``detector`` (a ``TorchvisionDetector`` loaded from ``source``) with its backbone
    replaced by the ONNX graph of it; ``sha256``: the file's, the cache key."""
    from sonorisk.detector.predictor import TorchvisionDetector

    options = options or OrtOptions()
    if not isinstance(detector, TorchvisionDetector):
        raise ConfigError(
            "runtime",
            f"runtime onnx supports the torchvision detector backend, "
            f"not {type(detector).__name__} ({source})",
        )
    if detector.device.type != "cpu":
        raise ConfigError("runtime", "runtime onnx runs on the CPU only")
    backbone: Any = detector.model.backbone  # torchvision's (untyped) backbone, .out_channels
    model_cfg = detector.config.model
    path = cached_export(
        ROLE,
        Path(source),
        sha256,
        lambda: export_job(backbone, _pad32(model_cfg.min_size), _pad32(model_cfg.max_size)),
        options,
    )
    detector.model.backbone = OnnxBackbone(make_session(path, options), backbone.out_channels)
    detector.info = {
        **detector.info,
        "runtime": runtime_info(
            path, options, "backbone and FPN (ONNX); RPN, ROI heads and postprocessing (torch)"
        ),
    }
    return detector
