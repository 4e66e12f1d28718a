"""Inference: batches of frames in, ``Detection`` lists in source-pixel coordinates out.

``FrameDetector`` is the interface the tracker and the pipeline use; the
torchvision model (``TorchvisionDetector``) and the optional detectron2 backend
(``sonorisk.detector.detectron2_backend``) both implement it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch

from sonorisk.detector.checkpoint import DISCLAIMER, config_from_checkpoint, load_checkpoint
from sonorisk.detector.config import DetectorConfig, InferenceConfig
from sonorisk.detector.fusion import hflip_boxes, weighted_box_fusion
from sonorisk.detector.model import build_model, resolved_norm
from sonorisk.errors import InputError
from sonorisk.records import Detection, Frame

ImageLike = np.ndarray | Frame


class FrameDetector(Protocol):
    """Anything that finds lesions in frames."""

    info: dict[str, Any]

    def predict(self, images: Sequence[ImageLike],
                frame_indices: Sequence[int] | None = None) -> list[list[Detection]]: ...


def indexed_images(images: Sequence[ImageLike], frame_indices: Sequence[int] | None
                   ) -> list[tuple[int, np.ndarray]]:
    """``(frame index, image)`` for each item: a Frame carries its index; a bare
    array takes it from ``frame_indices`` (or its position)."""
    out: list[tuple[int, np.ndarray]] = []
    for i, item in enumerate(images):
        if isinstance(item, Frame):
            out.append((item.index, item.image))
        else:
            out.append((int(frame_indices[i]) if frame_indices is not None else i, item))
    return out


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_rgb_uint8(image: np.ndarray, source: str, cfg: InferenceConfig) -> np.ndarray:
    """Validate one frame and return it as HxWx3 uint8 (gray is replicated)."""
    if not isinstance(image, np.ndarray):
        raise InputError(source, f"expected a numpy image, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise InputError(source, f"expected HxW gray or HxWx3 RGB, got shape {image.shape}")
    height, width = image.shape[:2]
    if min(height, width) < cfg.min_side:
        raise InputError(source, f"frame {width}x{height} is too small (min side "
                                 f"{cfg.min_side} px)")
    if max(height, width) > cfg.max_side:
        raise InputError(source, f"frame {width}x{height} is too large (max side "
                                 f"{cfg.max_side} px)")
    if image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.number):
            raise InputError(source, f"unsupported pixel type {image.dtype}")
        if not np.isfinite(image).all():
            raise InputError(source, "frame holds NaN or infinite pixel values")
        if np.issubdtype(image.dtype, np.floating) and image.max() <= 1.0:
            image = image * 255.0
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def is_blank(image: np.ndarray) -> bool:
    """A frame with (almost) no contrast — black, white, a frozen blank screen."""
    small = image[:: max(1, image.shape[0] // 64), :: max(1, image.shape[1] // 64)]
    return float(small.std()) < 1.0


def contained_fraction(inner: tuple[float, ...], outer: tuple[float, ...]) -> float:
    """Share of ``inner``'s area that lies inside ``outer``."""
    ix1, iy1 = max(inner[0], outer[0]), max(inner[1], outer[1])
    ix2, iy2 = min(inner[2], outer[2]), min(inner[3], outer[3])
    overlap = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    return overlap / area if area > 0 else 0.0


def area_shrink(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` scaled by ``scale`` < 1 with area averaging (anti-aliased, unlike the
    bilinear resize in torchvision's detection transform); ``scale >= 1``: unchanged."""
    if scale >= 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def suppress_nested(detections: list[Detection], thresh: float, factor: float = 0.0,
                    score_thresh: float = 0.0) -> list[Detection]:
    """Of any pair where one box lies mostly inside the other, the higher-scoring box
    stays; the other's score is multiplied by ``factor`` (0: dropped), as Soft-NMS
    does, and it stays only while that score reaches ``score_thresh``. So at the
    operating threshold the same lesion never gives two boxes, while a ranked list
    (AP) keeps the demoted box in case it was the better one."""
    kept: list[Detection] = []
    demoted: list[Detection] = []
    for det in sorted(detections, key=lambda d: -d.score):
        if all(contained_fraction(det.box, k.box) <= thresh
               and contained_fraction(k.box, det.box) <= thresh for k in kept):
            kept.append(det)
        elif (score := det.score * factor) > 0.0 and score >= score_thresh:
            demoted.append(replace(det, score=score))
    return sorted(kept + demoted, key=lambda d: -d.score)


def clean_detections(boxes: np.ndarray, scores: np.ndarray, width: int, height: int,
                     frame_index: int, score_thresh: float,
                     containment_thresh: float = 1.0,
                     containment_factor: float = 0.0) -> list[Detection]:
    """Drop non-finite, degenerate and low-score boxes, clip to the frame, and
    suppress nested boxes (``suppress_nested``)."""
    out: list[Detection] = []
    for box, score in zip(boxes.reshape(-1, 4), scores.reshape(-1), strict=True):
        if not (np.isfinite(box).all() and math.isfinite(float(score))):
            continue
        if score < score_thresh:
            continue
        x1, y1, x2, y2 = (float(v) for v in box)
        x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
        y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
        if x2 - x1 < 1.0 or y2 - y1 < 1.0:
            continue
        out.append(Detection(frame_index, (x1, y1, x2, y2), float(score)))
    out.sort(key=lambda d: -d.score)
    if containment_thresh >= 1.0:
        return out
    return suppress_nested(out, containment_thresh, containment_factor, score_thresh)


class TorchvisionDetector:
    """A torchvision Faster R-CNN / RetinaNet ready for inference."""

    def __init__(self, model: torch.nn.Module, config: DetectorConfig,
                 info: dict[str, Any] | None = None) -> None:
        self.config = config
        self.device = resolve_device(config.inference.device)
        self.model = model.to(self.device).eval()
        self.info = dict(info or {})

    @classmethod
    def from_checkpoint(cls, path: str | Path,
                        inference: InferenceConfig | None = None,
                        model_overrides: dict[str, Any] | None = None) -> TorchvisionDetector:
        return cls.from_payload(load_checkpoint(path), path, inference, model_overrides)

    @classmethod
    def from_payload(cls, payload: dict[str, Any], path: str | Path,
                     inference: InferenceConfig | None = None,
                     model_overrides: dict[str, Any] | None = None) -> TorchvisionDetector:
        """From a checkpoint dict already read (``load_checkpoint``) from ``path``."""
        config = config_from_checkpoint(payload, str(path))
        if inference is not None:
            config.inference = inference
        for key, value in (model_overrides or {}).items():
            # Only inference-time knobs (input size, proposal counts) may change.
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
        return cls(model, config, info)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        # Mixed precision only on CUDA (float16 autocast). Untested here: no GPU.
        if self.device.type == "cuda" and self.config.inference.amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def predict(self, images: Sequence[ImageLike],
                frame_indices: Sequence[int] | None = None) -> list[list[Detection]]:
        cfg = self.config.inference
        arrays: list[np.ndarray] = []
        indices: list[int] = []
        for index, image in indexed_images(images, frame_indices):
            arrays.append(to_rgb_uint8(image, f"frame {index}", cfg))
            indices.append(index)
        results: list[list[Detection]] = [[] for _ in arrays]
        todo = [i for i, a in enumerate(arrays) if not is_blank(a)]
        for start in range(0, len(todo), max(1, cfg.batch_size)):
            chunk = todo[start:start + max(1, cfg.batch_size)]
            shrunk = [self._shrink(arrays[i]) for i in chunk]
            tensors = [torch.from_numpy(a).to(self.device, non_blocking=True)
                       .permute(2, 0, 1).float().div_(255.0) for a in shrunk]
            views = self._run(tensors)
            for n, i in enumerate(chunk):
                height, width = arrays[i].shape[:2]
                boxes, scores = views[n]
                factor = np.array([width / shrunk[n].shape[1], height / shrunk[n].shape[0]] * 2,
                                  dtype=np.float32)
                boxes = boxes * factor
                results[i] = clean_detections(boxes, scores, width, height, indices[i],
                                              cfg.score_thresh, cfg.containment_thresh,
                                              cfg.containment_score_factor)
        return results

    def _shrink(self, image: np.ndarray) -> np.ndarray:
        """Downscale to the model's input size with area averaging, as training's
        ImageCache does, so inference sees frames shrunk the way training saw them
        (on the BUSI held-out stills this changed AP50 by less than a box)."""
        model = self.config.model
        height, width = image.shape[:2]
        return area_shrink(image, min(model.min_size / min(height, width),
                                      model.max_size / max(height, width)))

    def _run(self, tensors: list[torch.Tensor]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Boxes and scores per image; with ``tta_hflip`` the mirrored view is run in
        the same batch and fused back (sonorisk.detector.fusion)."""
        batch = tensors + [t.flip(-1) for t in tensors] if self.config.inference.tta_hflip \
            else tensors
        with self._autocast():
            outputs = self.model(batch)
        found = [(out["boxes"].float().cpu().numpy(), out["scores"].float().cpu().numpy())
                 for out in outputs]
        if not self.config.inference.tta_hflip:
            return found
        fused = []
        for n, tensor in enumerate(tensors):
            mirrored_boxes, mirrored_scores = found[len(tensors) + n]
            fused.append(weighted_box_fusion(
                [found[n], (hflip_boxes(mirrored_boxes, tensor.shape[-1]), mirrored_scores)]))
        return fused


def load_detector(config: DetectorConfig, checkpoint: str | Path | None = None,
                  model_overrides: dict[str, Any] | None = None) -> FrameDetector:
    """The detector a config asks for: a torchvision checkpoint, or detectron2's
    config + weights (``backend: detectron2``; imported only then)."""
    if config.backend == "detectron2":
        from sonorisk.detector.detectron2_backend import Detectron2Detector

        if not config.detectron2_config or not (checkpoint or config.detectron2_weights):
            raise InputError("config", "backend detectron2 needs detectron2_config and "
                                       "detectron2_weights (or a checkpoint path)")
        return Detectron2Detector(config.detectron2_config,
                                  checkpoint or config.detectron2_weights or "",
                                  config.inference)
    if checkpoint is None:
        raise InputError("config", "a torchvision detector needs a checkpoint file")
    return load_detector_checkpoint(checkpoint, config.inference, model_overrides)


def load_detector_checkpoint(path: str | Path, inference: InferenceConfig | None = None,
                             model_overrides: dict[str, Any] | None = None,
                             device: str | None = None) -> FrameDetector:
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
