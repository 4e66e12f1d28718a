"""Inference: batches of frames in, ``Detection`` lists in source-pixel coordinates out.

``FrameDetector`` (``sonorisk.detector.interface``) is the interface the tracker
and the pipeline use; the torchvision model (``TorchvisionDetector``) and the
optional detectron2 backend (``sonorisk.detector.detectron2_backend``) both
implement it, with the frame checks and box clean-up of ``sonorisk.detector.common``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sonorisk.detector.checkpoint import DISCLAIMER, config_from_checkpoint, load_checkpoint
from sonorisk.detector.common import area_shrink, clean_detections, is_blank, to_rgb_uint8
from sonorisk.detector.config import DetectorConfig, InferenceConfig
from sonorisk.detector.fusion import hflip_boxes, weighted_box_fusion
from sonorisk.detector.interface import FrameDetector, FrameLike, as_frames
from sonorisk.detector.model import build_model, resolved_norm
from sonorisk.errors import InputError
from sonorisk.records import Detection

# Re-exported: callers that name the interface through this module keep working.
__all__ = [
    "FrameDetector",
    "TorchvisionDetector",
    "load_detector",
    "load_detector_checkpoint",
    "resolve_device",
]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class TorchvisionDetector:
    """A torchvision Faster R-CNN / RetinaNet ready for inference."""

    def __init__(
        self, model: torch.nn.Module, config: DetectorConfig, info: dict[str, Any] | None = None
    ) -> None:
        self.config = config
        self.device = resolve_device(config.inference.device)
        self.model = model.to(self.device).eval()
        self.info = dict(info or {})

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        inference: InferenceConfig | None = None,
        model_overrides: dict[str, Any] | None = None,
    ) -> TorchvisionDetector:
        return cls.from_payload(load_checkpoint(path), path, inference, model_overrides)

    @classmethod
    def from_payload(
        cls,
        payload: dict[str, Any],
        path: str | Path,
        inference: InferenceConfig | None = None,
        model_overrides: dict[str, Any] | None = None,
    ) -> TorchvisionDetector:
        """From a checkpoint dict already read (``load_checkpoint``) from ``path``."""
        config = config_from_checkpoint(payload, str(path))
        if inference is not None:
            config.inference = inference
        for key, value in (model_overrides or {}).items():
            # Only inference-time knobs may change: the model's input size and
            # proposal counts, or an inference setting (``tta_hflip``).
            if key in {f.name for f in fields(InferenceConfig)}:
                config.inference = replace(config.inference, **{key: value})
            else:
                setattr(config.model, key, value)
        # Weights come from the checkpoint, not the file/hub; the normalisation
        # layers stay those of training ("auto" froze BN for pretrained weights).
        norm = resolved_norm(config.model, config.model.pretrained is not None)
        model, _ = build_model(replace(config.model, pretrained=None, norm=norm))
        model.load_state_dict(payload["state_dict"])
        info = {
            "checkpoint": str(path),
            "backend": "torchvision",
            "architecture": config.model.architecture,
            "backbone": config.model.backbone,
            "weights_source": payload.get("weights_source", {}),
            "epoch": payload.get("epoch"),
            "metrics": payload.get("metrics", {}),
            "training": payload.get("training", {}),
            "disclaimer": payload.get("disclaimer", DISCLAIMER),
        }
        if config.inference.tta_hflip:  # a report says how its boxes were found
            info["test_time_augmentation"] = "horizontal flip, boxes fused (weighted box fusion)"
        return cls(model, config, info)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        # Mixed precision only on CUDA (float16 autocast). Untested here: no GPU.
        if self.device.type == "cuda" and self.config.inference.amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def predict(
        self, frames: Sequence[FrameLike], frame_indices: Sequence[int] | None = None
    ) -> list[list[Detection]]:
        cfg = self.config.inference
        arrays: list[np.ndarray] = []
        indices: list[int] = []
        for frame in as_frames(frames, frame_indices):
            arrays.append(to_rgb_uint8(frame.image, f"frame {frame.index}", cfg))
            indices.append(frame.index)
        results: list[list[Detection]] = [[] for _ in arrays]
        todo = [i for i, a in enumerate(arrays) if not is_blank(a)]
        for start in range(0, len(todo), max(1, cfg.batch_size)):
            chunk = todo[start : start + max(1, cfg.batch_size)]
            shrunk = [self._shrink(arrays[i]) for i in chunk]
            tensors = [
                torch.from_numpy(a)
                .to(self.device, non_blocking=True)
                .permute(2, 0, 1)
                .float()
                .div_(255.0)
                for a in shrunk
            ]
            views = self._run(tensors)
            for n, i in enumerate(chunk):
                height, width = arrays[i].shape[:2]
                boxes, scores = views[n]
                factor = np.array(
                    [width / shrunk[n].shape[1], height / shrunk[n].shape[0]] * 2, dtype=np.float32
                )
                boxes = boxes * factor
                results[i] = clean_detections(
                    boxes,
                    scores,
                    width,
                    height,
                    indices[i],
                    cfg.score_thresh,
                    cfg.containment_thresh,
                    cfg.containment_score_factor,
                )
        return results

    def _shrink(self, image: np.ndarray) -> np.ndarray:
        """Downscale to the model's input size with area averaging, as training's
        ImageCache does, so inference sees frames shrunk the way training saw them
        (on the BUSI held-out stills this changed AP50 by less than a box)."""
        model = self.config.model
        height, width = image.shape[:2]
        return area_shrink(
            image, min(model.min_size / min(height, width), model.max_size / max(height, width))
        )

    def _run(self, tensors: list[torch.Tensor]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Boxes and scores per image; with ``tta_hflip`` the mirrored view is run in
        the same batch and fused back (sonorisk.detector.fusion)."""
        batch = (
            tensors + [t.flip(-1) for t in tensors] if self.config.inference.tta_hflip else tensors
        )
        with self._autocast():
            outputs = self.model(batch)
        found = [
            (out["boxes"].float().cpu().numpy(), out["scores"].float().cpu().numpy())
            for out in outputs
        ]
        if not self.config.inference.tta_hflip:
            return found
        fused = []
        for n, tensor in enumerate(tensors):
            mirrored_boxes, mirrored_scores = found[len(tensors) + n]
            fused.append(
                weighted_box_fusion(
                    [found[n], (hflip_boxes(mirrored_boxes, tensor.shape[-1]), mirrored_scores)]
                )
            )
        return fused


def load_detector(
    config: DetectorConfig,
    checkpoint: str | Path | None = None,
    model_overrides: dict[str, Any] | None = None,
) -> FrameDetector:
    """The detector a config asks for: a torchvision checkpoint, or detectron2's
    config + weights (``backend: detectron2``; imported only then)."""
    if config.backend == "detectron2":
        from sonorisk.detector.detectron2_backend import Detectron2Detector

        if not config.detectron2_config or not (checkpoint or config.detectron2_weights):
            raise InputError(
                "config",
                "backend detectron2 needs detectron2_config and "
                "detectron2_weights (or a checkpoint path)",
            )
        return Detectron2Detector(
            config.detectron2_config,
            checkpoint or config.detectron2_weights or "",
            config.inference,
        )
    if checkpoint is None:
        raise InputError("config", "a torchvision detector needs a checkpoint file")
    return load_detector_checkpoint(checkpoint, config.inference, model_overrides)


def load_detector_checkpoint(
    path: str | Path,
    inference: InferenceConfig | None = None,
    model_overrides: dict[str, Any] | None = None,
    device: str | None = None,
) -> FrameDetector:
    """The detector a checkpoint file holds (``.pt`` or envelope), on the backend it
    names: torchvision, or detectron2 (imported only then). ``inference`` None:
    the checkpoint's own inference settings; ``device`` replaces theirs."""
    payload = load_checkpoint(path)
    if inference is None:
        inference = config_from_checkpoint(payload, str(path)).inference
    if device is not None:
        inference = replace(inference, device=device)
    if payload.get("backend", "torchvision") == "detectron2":
        from sonorisk.detector.detectron2_backend import Detectron2Detector

        return Detectron2Detector.from_payload(payload, path, inference)
    return TorchvisionDetector.from_payload(payload, path, inference, model_overrides)
