"""``detectron2.engine.DefaultPredictor`` over a bright-spot "model"."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from detectron2.structures import Boxes, Instances


class BrightSpotModel(torch.nn.Module):
    """Boxes the pixels brighter than 200 in the red (first RGB) channel; its one
    weight, ``score``, is the score of that box, so a test sees which weights loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.score = torch.nn.Parameter(torch.tensor(0.0))


class DefaultPredictor:
    """One image (HxWxC uint8, channel order ``cfg.INPUT.FORMAT``) in, the
    ``{"instances": Instances}`` of that image in its own pixels out, after the
    test-time score threshold of the config (as detectron2's ROI heads apply it)."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.model = BrightSpotModel()
        self.seen: list[np.ndarray] = []

    def __call__(self, original_image: np.ndarray) -> dict[str, Instances]:
        self.seen.append(original_image)
        height, width = original_image.shape[:2]
        red = original_image[..., 0 if self.cfg.INPUT.FORMAT == "RGB" else 2]
        ys, xs = np.nonzero(red > 200)
        boxes: list[list[float]] = []
        scores: list[float] = []
        classes: list[int] = []
        if len(xs):
            spot = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
            lesion = float(self.model.score.detach())
            boxes += [spot, spot, [2.0, 2.0, 12.0, 12.0], [width - 10.0, 2.0, width + 20.0, 12.0]]
            scores += [lesion, 0.99, 0.1, 0.6]
            classes += [0, 1, 0, 0]  # class 1: another class on the same spot
        keep = [i for i, s in enumerate(scores) if s >= self.cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST]
        return {
            "instances": Instances(
                (height, width),
                Boxes(torch.tensor([boxes[i] for i in keep])),
                torch.tensor([scores[i] for i in keep]),
                torch.tensor([classes[i] for i in keep], dtype=torch.int64),
            )
        }
