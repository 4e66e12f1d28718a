"""The torchvision detector with its backbone + FPN (and the RPN's head) run by ONNX Runtime.

Exported: the backbone with its FPN, the heavy part, and for Faster R-CNN also
the RPN's head (one 3x3 convolution of 256 channels on every FPN level, then
the objectness and box-delta convolutions), which cost the RPN most of its
time in torch (26 of 109 ms a frame, sonorisk-busi, 2 threads). Torchvision's
transform, anchors, proposal selection, ROI heads and postprocessing stay in
torch, unchanged. The whole Faster R-CNN also exports as one graph (one image
per call), but it was no faster (0.137 against 0.132 s a frame for the model
call, measured side by side), and this split keeps batching, flip TTA and the
predictor's box rules exactly as they are.

The graph takes the transform's padded batch (``B x 3 x H x W``, normalised)
with dynamic batch, height and width, and returns the FPN maps under their
torchvision names, then the head's objectness and deltas per level, so any
frame size and detector input size works. ``runtime: onnx-int8`` runs the
same graph quantized to 8-bit integers (:mod:`sonorisk.runtime.quantize`).
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
OBJECTNESS = "rpn_objectness_"
DELTAS = "rpn_deltas_"


class _ExportedPart(nn.Module):
    """The backbone's maps, then the RPN head's objectness and deltas per level
    (``head`` None: the maps only), as one flat tuple (what export traces)."""

    def __init__(self, backbone: nn.Module, head: nn.Module | None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps = tuple(self.backbone(images).values())
        if self.head is None:
            return maps
        objectness, deltas = self.head(list(maps))
        return maps + tuple(objectness) + tuple(deltas)


class OnnxBackbone(nn.Module):
    """Stands in for ``model.backbone``: same input, same ordered dict of maps.
    When the graph has the RPN head too, its outputs wait in ``head_outputs``
    for :class:`OnnxRpnHead` (the RPN asks for them right after the backbone)."""

    def __init__(self, session: Any, out_channels: int) -> None:
        super().__init__()
        self.session = session
        self.out_channels = out_channels  # torchvision's backbone contract
        self.outputs = [o.name for o in session.get_outputs()]
        self.has_head = any(name.startswith(OBJECTNESS) for name in self.outputs)
        self.head_outputs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        if images.device.type != "cpu":
            raise RuntimeError("the ONNX backbone runs on the CPU only")
        feed = np.ascontiguousarray(images.detach().float().numpy())
        named = dict(zip(self.outputs, self.session.run(self.outputs, {INPUT: feed}), strict=True))
        if self.has_head:
            self.head_outputs = (
                [torch.from_numpy(v) for k, v in named.items() if k.startswith(OBJECTNESS)],
                [torch.from_numpy(v) for k, v in named.items() if k.startswith(DELTAS)],
            )
        return OrderedDict(
            (name.removeprefix(PREFIX), torch.from_numpy(m))
            for name, m in named.items()
            if name.startswith(PREFIX)
        )


class OnnxRpnHead(nn.Module):
    """Stands in for ``model.rpn.head``: the outputs the graph computed with the
    maps it is given. Each is used once: a call with no fresh outputs (the
    backbone did not run first) is an error, never a stale answer."""

    def __init__(self, backbone: OnnxBackbone) -> None:
        super().__init__()
        self._backbone = [backbone]  # a list: not registered as a submodule twice

    def forward(
        self, features: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        backbone = self._backbone[0]
        outputs, backbone.head_outputs = backbone.head_outputs, None
        if outputs is None or len(outputs[0]) != len(features):
            raise RuntimeError("the ONNX RPN head runs only right after the ONNX backbone")
        return outputs


def export_job(
    backbone: nn.Module, height: int, width: int, head: nn.Module | None = None
) -> ExportJob:
    """The backbone (and the RPN ``head``, if given) traced on one ``height x
    width`` input (multiples of 32, as the transform pads to), every axis but
    the channels dynamic."""
    example = torch.zeros(1, 3, height, width)
    with torch.no_grad():
        names = list(backbone.eval()(example).keys())
    outputs = [PREFIX + n for n in names]
    if head is not None:
        outputs += [OBJECTNESS + n for n in names] + [DELTAS + n for n in names]
    axes = {INPUT: {0: "batch", 2: "height", 3: "width"}}
    axes.update({o: {0: "batch", 2: f"{o}_height", 3: f"{o}_width"} for o in outputs})
    return ExportJob(_ExportedPart(backbone, head), (example,), [INPUT], outputs, axes)


def _pad32(size: int) -> int:
    return max(32, -(-size // 32) * 32)


def to_onnx_detector(
    detector: Any,
    source: str | Path,
    sha256: str,
    options: OrtOptions | None = None,
    int8: bool = False,
) -> Any:
    """``detector`` (a ``TorchvisionDetector`` loaded from ``source``) with its backbone
    (and RPN head) replaced by the ONNX graph of them; ``sha256``: the file's, the
    cache key. ``int8``: the graph quantized to 8-bit integers (sonorisk.runtime.quantize)."""
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
    model = detector.model
    backbone: Any = model.backbone  # torchvision's (untyped) backbone, .out_channels
    rpn: Any = getattr(model, "rpn", None)  # Faster R-CNN; RetinaNet has none
    head = rpn.head if rpn is not None else None
    model_cfg = detector.config.model
    path = cached_export(
        ROLE,
        Path(source),
        sha256,
        lambda: export_job(backbone, _pad32(model_cfg.min_size), _pad32(model_cfg.max_size), head),
        options,
    )
    if int8:
        from sonorisk.runtime.quantize import cached_int8

        path = cached_int8(path, detector)
    exported = OnnxBackbone(make_session(path, options), backbone.out_channels)
    model.backbone = exported
    parts = "backbone and FPN"
    if head is not None:
        rpn.head = OnnxRpnHead(exported)
        parts += " and the RPN head"
    detector.info = {
        **detector.info,
        "runtime": runtime_info(
            path,
            options,
            f"{parts} (ONNX{', int8' if int8 else ''}); the rest of the RPN, "
            "ROI heads and postprocessing (torch)",
        ),
    }
    return detector
