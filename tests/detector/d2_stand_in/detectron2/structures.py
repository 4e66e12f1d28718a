"""``detectron2.structures``: ``Boxes`` and ``Instances`` (the fields the backend reads)."""

from __future__ import annotations

import torch


class Boxes:
    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor.reshape(-1, 4).float()


class Instances:
    def __init__(
        self,
        image_size: tuple[int, int],
        pred_boxes: Boxes,
        scores: torch.Tensor,
        pred_classes: torch.Tensor,
    ) -> None:
        self.image_size = image_size
        self.pred_boxes = pred_boxes
        self.scores = scores
        self.pred_classes = pred_classes

    def to(self, device: str) -> Instances:
        return self  # always on the CPU here
