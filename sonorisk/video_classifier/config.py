"""Typed configs of the video classifiers (``configs/classifier*.yaml``).

One :class:`ClassifierConfig` holds how clips are built, which model scores
them and how it is trained; it is stored whole in every checkpoint so a model
is rebuilt exactly as it was trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sonorisk.errors import ConfigError
from sonorisk.video_classifier.clips import ClipConfig

Backbone2D = Literal["resnet18", "resnet50", "densenet121", "mobilenet_v2", "googlenet"]

# ImageNet statistics: both torchvision's ImageNet weights and an ImageNet
# ResNet50 inflated to I3D expect them.
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# The four classes of seed 000 (Li et al. 2025) and which of them are cancers.
SUBTYPE_CLASSES = ["idc", "fibroadenoma", "mucinous_carcinoma", "inflammatory_mass"]
SUBTYPE_MALIGNANT = ["idc", "mucinous_carcinoma"]


@dataclass
class I3DOptions:
    """I3D-ResNet built with pytorchvideo's ``create_resnet`` (I3D kernels)."""

    depth: int = 50  # 50, 101 or 152 (pytorchvideo's stage depths)
    width: int = 64  # stem channels; 64 is the real ResNet, tests use 8
    dropout: float = 0.5
    # Spatial stride of stages 1-4 (ResNet: 1,2,2,2 -> heatmaps at 1/32 of the
    # crop). Smaller strides give finer heatmaps for small crops at more compute.
    spatial_strides: list[int] = field(default_factory=lambda: [1, 2, 2, 2])


@dataclass
class Lite3DOptions:
    """I3D-Lite0: EfficientNet-Lite0 inflated in time (``sonorisk.video_classifier.lite3d``).

    Its ImageNet weights expect inputs in [-1, 1]: set ``model.mean`` and
    ``model.std`` to 0.498 / 0.502 (configs/release/classifier.yaml does).
    """

    temporal_kernel: int = 3  # taps of the inflated 1x1 expansion convolutions
    inflate_from_stage: int = 3  # MBConv stages from this index (0-6) on are inflated
    inflate_every: int = 2  # every n-th block from there (I3D-R50 alternates too)
    last_stride: int = 1  # 1: features at 1/16 of the crop (finer CAMs); 2: ImageNet's 1/32
    dropout: float = 0.3


@dataclass
class TimesformerOptions:
    """Hugging Face ``TimesformerConfig`` fields (defaults: TimeSformer-base)."""

    patch_size: int = 16
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    # "space_only" is left out: its token layout differs and the heatmap assumes this one.
    attention_type: Literal["divided_space_time", "joint_space_time"] = "divided_space_time"
    dropout: float = 0.0

    def validate(self, clips: ClipConfig, source: str) -> None:
        if clips.crop_size % self.patch_size:
            raise ConfigError(
                f"{source}.patch_size",
                f"crop_size {clips.crop_size} must be a multiple of {self.patch_size}",
            )
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"{source}.hidden_size", "must be a multiple of num_attention_heads")


@dataclass
class Static2DOptions:
    """2D CNN applied frame by frame; clip logit = GAP over frames and space."""

    backbone: Backbone2D = "resnet50"
    dropout: float = 0.0


@dataclass
class PcaSvmOptions:
    """Deep features + PCA + RBF SVM (seed 003: PCA to 404 components, C=1)."""

    backbone: Backbone2D = "resnet50"
    pca_components: int = 404  # capped by the number of training clips
    svm_c: float = 1.0
    svm_gamma: str = "scale"  # sklearn's gamma ("scale", "auto" or a number as text)
    calibration_folds: int = 3  # Platt scaling on cross-validated decision values


@dataclass(frozen=True)
class ClassifierKind:
    """One clip-classifier family, declared once (as torchvision registers its
    model builders): the config, the builder, the trainer and the CLI all read
    the kinds from :data:`CLASSIFIER_KINDS`."""

    name: str  # ``model.kind`` in configs and checkpoints
    # The ``ClipClassifier`` subclass, as "module:Class" so that configs load
    # without importing torch (the class is imported when a model is built), or
    # the class itself (a kind registered at run time).
    model: str | type[Any]
    # The ModelConfig field holding this kind's options (None: it has none). An
    # options object with ``validate(clips, source)`` is checked with the config.
    options: str | None = None


CLASSIFIER_KINDS: dict[str, ClassifierKind] = {
    k.name: k
    for k in (
        ClassifierKind("i3d", "sonorisk.video_classifier.i3d:I3DClassifier", "i3d"),
        ClassifierKind("lite3d", "sonorisk.video_classifier.lite3d:Lite3DClassifier", "lite3d"),
        ClassifierKind(
            "timesformer",
            "sonorisk.video_classifier.timesformer:TimesformerClassifier",
            "timesformer",
        ),
        ClassifierKind(
            "static2d", "sonorisk.video_classifier.static2d:Static2DClassifier", "static2d"
        ),
        ClassifierKind("pca-svm", "sonorisk.video_classifier.pca_svm:PcaSvmClassifier", "pca_svm"),
    )
}


def register_classifier_kind(kind: ClassifierKind) -> ClassifierKind:
    """Add a kind at run time (a plugin, a test); a name is registered once."""
    known = CLASSIFIER_KINDS.get(kind.name)
    if known is not None and known != kind:
        raise ConfigError("model.kind", f"classifier kind {kind.name!r} is already registered")
    CLASSIFIER_KINDS[kind.name] = kind
    return kind


def classifier_kinds() -> list[str]:
    """The registered kind names, in registration order (CLI choices, messages)."""
    return list(CLASSIFIER_KINDS)


@dataclass
class ModelConfig:
    kind: str = "i3d"  # a name in CLASSIFIER_KINDS (checked by validate)
    classes: list[str] = field(default_factory=lambda: ["benign", "malignant"])
    malignant_classes: list[str] = field(default_factory=lambda: ["malignant"])
    # A local file of pretrained weights: a torchvision 2D state dict (ImageNet;
    # inflated to 3D for I3D), a pytorchvideo I3D state dict (Kinetics), or a
    # Hugging Face TimeSformer directory/state dict. None = random init.
    weights: str | None = None
    weights_description: str = ""  # e.g. "torchvision ResNet50 IMAGENET1K_V2"
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    i3d: I3DOptions = field(default_factory=I3DOptions)
    lite3d: Lite3DOptions = field(default_factory=Lite3DOptions)
    timesformer: TimesformerOptions = field(default_factory=TimesformerOptions)
    static2d: Static2DOptions = field(default_factory=Static2DOptions)
    pca_svm: PcaSvmOptions = field(default_factory=PcaSvmOptions)
    # A "not a lesion" check beside the malignancy head (GAP models only): a
    # logistic layer on the pooled clip features, fitted after training on
    # lesion crops against background crops and false-track crops
    # (sonorisk.video_classifier.lesion_check). Each ClipScore then carries
    # P(lesion); the pipeline folds it into each lesion's confidence.
    lesion_check: bool = False

    def validate(self, source: str = "model") -> None:
        if self.kind not in CLASSIFIER_KINDS:
            raise ConfigError(f"{source}.kind", f"must be one of {classifier_kinds()}")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ConfigError(
                f"{source}.classes", f"need >= 2 distinct classes, got {self.classes}"
            )
        unknown = sorted(set(self.malignant_classes) - set(self.classes))
        if unknown:
            raise ConfigError(f"{source}.malignant_classes", f"not in classes: {unknown}")
        if not self.malignant_classes or set(self.malignant_classes) == set(self.classes):
            raise ConfigError(
                f"{source}.malignant_classes",
                "must name some but not all classes (P(malignant) needs both sides)",
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"{source}.mean/std", "need 3 values each, std > 0")


@dataclass
class AugmentConfig:
    """Clip augmentation; one draw per clip so all its frames move together."""

    hflip: bool = True  # lateral flip: a lesion scanned from the other side
    rotate_deg: float = 10.0
    scale_min: float = 0.85  # random zoom-in (crop of this fraction, resized back)
    brightness: float = 0.2
    contrast: float = 0.2
    blur_prob: float = 0.2  # seed 000 used blur
    # Resolution: on this share of clips the crop is shrunk to a random
    # resample_min..1 of its size (area) and enlarged back (bilinear), as a crop
    # cut from a smaller video is. Tried against the lesion check's failure on
    # video scaled down after rendering (docs/end-to-end.md): a classifier
    # trained with it was not better there. 0: off (the released 1.x
    # classifiers were trained without it).
    resample_prob: float = 0.0
    resample_min: float = 0.5
    # Calipers: on this share of clips, calipers (sonorisk.data.calipers) measure
    # the lesion, whatever its class, as BUSI's radiologists measured some
    # lesions; so that burned-in calipers stop telling benign from malignant
    # (cine filmed while scanning has none; docs/end-to-end.md, "Calipers").
    calipers_prob: float = 0.0

    def validate(self, source: str = "train.augment") -> None:
        for name in ("blur_prob", "resample_prob", "calipers_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(
                    f"{source}.{name}", f"must be in [0, 1], got {getattr(self, name)}"
                )
        if not 0.0 < self.resample_min <= 1.0:
            raise ConfigError(
                f"{source}.resample_min", f"must be in (0, 1], got {self.resample_min}"
            )


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-4
    lr_step_epochs: int = 5  # seed 000: lr halved every 5 epochs
    lr_gamma: float = 0.5
    class_balance: Literal["loss", "sampler", "none"] = "loss"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    val_fraction: float = 0.2  # by patient, when the dataset has no split column
    seed: int = 0
    num_threads: int = 2
    device: str = "auto"  # "auto" = cuda when available, else cpu
    max_steps_per_epoch: int | None = None  # cap for smoke runs and tests
    max_clips_per_video: int | None = None  # cap so long videos do not dominate
    static2d_frames: int = 1  # frames drawn per clip when training a 2D model


@dataclass
class ClassifierConfig:
    clips: ClipConfig = field(default_factory=ClipConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        self.clips.validate("clips")
        self.model.validate("model")
        field_name = CLASSIFIER_KINDS[self.model.kind].options
        options = getattr(self.model, field_name) if field_name else None
        check = getattr(options, "validate", None)  # options that depend on the clips
        if check is not None:
            check(self.clips, f"model.{field_name}")
        if self.train.batch_size < 1 or self.train.epochs < 0:
            raise ConfigError("train", "batch_size must be >= 1 and epochs >= 0")
        if not 0.0 <= self.train.val_fraction < 1.0:
            raise ConfigError("train.val_fraction", "must be in [0, 1)")
        self.train.augment.validate()
