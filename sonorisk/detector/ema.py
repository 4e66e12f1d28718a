"""Exponential moving average of a model's weights and buffers (the "model EMA" of
YOLOv5 / timm / detectron2-d2go).

From-scratch training on a few hundred images is noisy from step to step: the
average of the last few hundred steps validates better and steadier than the
last step. The decay ramps up from 0 (``decay * (1 - exp(-updates / ramp))``) so
the average is not dominated by the random initial weights.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from sonorisk.errors import ConfigError


class ModelEMA:
    """``module`` is the averaged copy: evaluate and save it; train the original."""

    def __init__(
        self, model: nn.Module, decay: float, ramp: float = 500.0, updates: int = 0
    ) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError("train.ema_decay", f"must be in (0, 1), got {decay}")
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.ramp = ramp
        self.updates = updates

    def current_decay(self) -> float:
        return self.decay * (1.0 - math.exp(-self.updates / self.ramp))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        live = model.state_dict()
        for name, avg in self.module.state_dict().items():
            value = live[name].detach()
            if avg.dtype.is_floating_point:
                avg.mul_(d).add_(value, alpha=1.0 - d)
            else:  # integer buffers (BN's num_batches_tracked): follow the live model
                avg.copy_(value)

    def load_state(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["state_dict"])
        self.updates = int(state.get("updates", 0))
