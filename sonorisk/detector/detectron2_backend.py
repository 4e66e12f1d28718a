"""Optional detectron2 backend behind the ``FrameDetector`` interface.

detectron2 is not on PyPI and is not installed here; this module imports it
only when a detectron2 detector is asked for, and says so clearly when it is
missing. It loads a detectron2 YAML config and a ``.pth`` checkpoint (e.g. the
paper's Faster R-CNN R34-FPN trained with detectron2) and returns the same
``Detection`` records as the torchvision backend. See docs/detector.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sonorisk.detector.config import InferenceConfig
from sonorisk.detector.predictor import (
    ImageLike,
    clean_detections,
    indexed_images,
    is_blank,
    to_rgb_uint8,
)
from sonorisk.errors import ConfigError, InputError
from sonorisk.records import Detection

INSTALL_HINT = ("detectron2 is not installed; build it from source for your torch "
                "(pip install 'git+https://github.com/facebookresearch/detectron2.git') "
                "or use backend: torchvision")


def detectron2_available() -> bool:
    try:
        import detectron2  # noqa: F401
    except ImportError:
        return False
    return True


class Detectron2Detector:
    """A detectron2 model (config + checkpoint) that answers like ``TorchvisionDetector``."""

    def __init__(self, config_file: str | Path, weights: str | Path,
                 inference: InferenceConfig | None = None,
                 lesion_class: int = 0) -> None:
        try:
            from detectron2.config import get_cfg
            from detectron2.engine import DefaultPredictor
        except ImportError as exc:
            raise ConfigError("backend", INSTALL_HINT) from exc
        for path, what in ((Path(config_file), "detectron2 config"),
                           (Path(weights), "detectron2 checkpoint")):
            if not path.is_file():
                raise InputError(path, f"{what} not found")
        self.inference = inference or InferenceConfig()
        cfg = get_cfg()
        cfg.merge_from_file(str(config_file))
        cfg.MODEL.WEIGHTS = str(weights)
        cfg.MODEL.DEVICE = "cuda" if self.inference.device in ("auto", "cuda") and \
            _cuda_available() else "cpu"
        # Let everything through; the operating threshold is applied below.
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
        cfg.MODEL.RETINANET.SCORE_THRESH_TEST = 0.0
        cfg.INPUT.FORMAT = "RGB"
        self._predictor = DefaultPredictor(cfg)
        self.lesion_class = lesion_class
        self.info: dict[str, Any] = {
            "backend": "detectron2",
            "config_file": str(config_file),
            "checkpoint": str(weights),
            "architecture": cfg.MODEL.META_ARCHITECTURE,
            "backbone": cfg.MODEL.BACKBONE.NAME,
            "weights_source": {"kind": "file", "name": str(weights)},
        }

    def predict(self, images: Sequence[ImageLike],
                frame_indices: Sequence[int] | None = None) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        for index, image in indexed_images(images, frame_indices):
            rgb = to_rgb_uint8(image, f"frame {index}", self.inference)
            if is_blank(rgb):
                out.append([])
                continue
            # DefaultPredictor takes one image at a time (its own resize and format).
            instances = self._predictor(rgb)["instances"].to("cpu")
            keep = instances.pred_classes.numpy() == self.lesion_class
            boxes = instances.pred_boxes.tensor.numpy()[keep]
            scores = instances.scores.numpy()[keep]
            out.append(clean_detections(np.asarray(boxes), np.asarray(scores), rgb.shape[1],
                                        rgb.shape[0], int(index), self.inference.score_thresh,
                                        self.inference.containment_thresh,
                                        self.inference.containment_score_factor))
        return out


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
