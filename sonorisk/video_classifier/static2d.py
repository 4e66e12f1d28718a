"""2D static baselines: a torchvision CNN applied to each frame, GAP head, CAM.

Backbones: the paper's comparator ResNet50 and seed 000's ResNet18, ResNet50,
DenseNet121, MobileNetV2 and GoogLeNet. The head pools over frames and space
together, so a clip's logit is the mean of its frames' logits: scoring a clip
is the paper's "all ROI images" pattern. :func:`static_video_score` applies the
three input patterns (one key frame, two key frames, all ROI frames) to a
video's crops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn

from sonorisk.errors import ConfigError, InputError
from sonorisk.records import Box
from sonorisk.video_classifier.base import GAPClassifier
from sonorisk.video_classifier.config import ClassifierConfig
from sonorisk.video_classifier.weights import LoadReport, load_matching, read_state_dict


def build_2d_backbone(name: str) -> tuple[nn.Module, int]:
    """A torchvision classification CNN without its pool/classifier, and its width.

    Parameter names stay torchvision's (``features.*``, ``layer1.*`` ...) so
    ImageNet state dicts saved from torchvision load by name.
    """
    import torchvision.models as tvm

    if name in ("resnet18", "resnet50"):
        net = getattr(tvm, name)(weights=None)
        body = nn.Sequential()
        for part in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            body.add_module(part, getattr(net, part))
        return body, net.fc.in_features
    if name == "densenet121":
        net = tvm.densenet121(weights=None)
        body = nn.Sequential()
        body.add_module("features", net.features)
        body.add_module("relu", nn.ReLU(inplace=False))  # torchvision applies it in forward()
        return body, net.classifier.in_features
    if name == "mobilenet_v2":
        net = tvm.mobilenet_v2(weights=None)
        body = nn.Sequential()
        body.add_module("features", net.features)
        return body, net.last_channel
    if name == "googlenet":
        # aux_logits off: the auxiliary classifiers only serve ImageNet training.
        net = tvm.googlenet(weights=None, aux_logits=False, init_weights=True)
        body = nn.Sequential()
        for part in (
            "conv1",
            "maxpool1",
            "conv2",
            "conv3",
            "maxpool2",
            "inception3a",
            "inception3b",
            "maxpool3",
            "inception4a",
            "inception4b",
            "inception4c",
            "inception4d",
            "inception4e",
            "maxpool4",
            "inception5a",
            "inception5b",
        ):
            body.add_module(part, getattr(net, part))
        return body, net.fc.in_features
    raise ConfigError("model.static2d.backbone", f"unknown 2D backbone {name!r}")


class FrameFeatures(nn.Module):
    """Runs a 2D backbone on every frame: ``B x 3 x T x H x W`` -> ``B x D x T x h x w``."""

    def __init__(self, backbone: str) -> None:
        super().__init__()
        self.body, self.dim = build_2d_backbone(backbone)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        f = self.body(frames)
        return f.reshape(b, t, *f.shape[1:]).permute(0, 2, 1, 3, 4)

    def load_pretrained(self, owner: nn.Module, prefix: str, path: str) -> LoadReport:
        """Load a torchvision state dict into ``owner``'s backbone (at ``prefix``).

        Accepts torchvision names (``layer1.*``, ``features.*``) or names already
        under ``prefix`` (a backbone saved from sonorisk). The classifier of an
        ImageNet file (``fc.*``/``classifier.*``) has no place here and is skipped.
        """
        state = read_state_dict(path)
        remapped = {(k if k.startswith(prefix) else f"{prefix}{k}"): v for k, v in state.items()}
        own = {k for k in owner.state_dict() if k.startswith(prefix)}
        usable = {k: v for k, v in remapped.items() if k in own}
        if not usable:
            raise InputError(path, "no tensor in this file matches the 2D backbone by name")
        report = load_matching(
            owner, usable, path, "torchvision 2d state dict", require_fraction=0.0
        )
        params = [k for k in own if not k.endswith("num_batches_tracked")]
        if len(report.loaded) < 0.9 * len(params):
            raise InputError(
                path,
                f"only {len(report.loaded)} of {len(params)} backbone "
                "tensors match: weights of another backbone?",
            )
        return report


class Static2DClassifier(GAPClassifier):
    kind = "static2d"

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config)
        opts = config.model.static2d
        self.backbone = FrameFeatures(opts.backbone)
        self.make_heads(self.backbone.dim, opts.dropout)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def load_pretrained(self, path: str) -> LoadReport:
        return self.backbone.load_pretrained(self, "backbone.body.", path)

    def training_batch(self, clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # A 2D model learns from single frames (the paper's static images):
        # ``train.static2d_frames`` random frames of each clip.
        pick = rng.integers(0, clips.shape[1], size=(len(clips), self.config.train.static2d_frames))
        return np.stack([c[p] for c, p in zip(clips, pick, strict=True)])

    def predict_frames(
        self, crops: np.ndarray, batch_size: int = 64, source: str = "crops"
    ) -> np.ndarray:
        """P(malignant) of single ROI crops (``N x H x W x 3`` uint8), one per frame.

        The scorer for :func:`static_video_score`'s key-frame patterns.
        """
        size = self.config.clips.crop_size
        if (
            not isinstance(crops, np.ndarray)
            or crops.dtype != np.uint8
            or crops.ndim != 4
            or crops.shape[1:] != (size, size, 3)
        ):
            got = getattr(crops, "shape", type(crops).__name__)
            raise InputError(source, f"expected uint8 crops N x {size} x {size} x 3, got {got}")
        if len(crops) == 0:
            raise InputError(source, "empty batch: no crops to score")
        was_training = self.training
        self.eval()
        out = []
        try:
            with torch.no_grad():
                for start in range(0, len(crops), batch_size):
                    x = self.to_input(crops[start : start + batch_size, None])  # T = 1
                    out.append(self.malignant_probability(self(x)).cpu().numpy())
        finally:
            self.train(was_training)
        return np.concatenate(out)


InputPattern = Literal["key_frame", "two_key_frames", "all_frames"]


def default_key_frames(boxes: Sequence[Box]) -> tuple[int, int]:
    """Stand-in key frames when no radiologist chose them.

    The paper's key frames were the lesion's largest cross-section and an
    orthogonal view, picked by radiologists. A single sweep has no orthogonal
    view, so this picks the largest box (largest cross-section) and, as a
    proxy for a second view, the frame whose box shape (aspect ratio) differs
    most from it. Documented as a proxy in docs/classifiers.md.
    """
    if not boxes:
        raise InputError("boxes", "no frames to choose key frames from")
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    first = int(np.argmax(areas))
    aspect = [np.log((b[2] - b[0]) / (b[3] - b[1])) for b in boxes]
    second = int(np.argmax([abs(a - aspect[first]) for a in aspect]))
    return first, second


def static_video_score(
    score_frames: Callable[[np.ndarray], np.ndarray],
    crops: np.ndarray,
    pattern: InputPattern,
    boxes: Sequence[Box] | None = None,
    key_frames: Sequence[int] | None = None,
) -> float:
    """P(malignant) of a video from its ROI crops (``N x H x W x 3``) by one input pattern.

    ``score_frames`` maps crops to per-frame P(malignant); the video score is
    the mean over the chosen frames (one, two, or all).
    """
    if crops.ndim != 4 or len(crops) == 0:
        raise InputError("crops", f"need N x H x W x 3 ROI crops, got shape {crops.shape}")
    if pattern == "all_frames":
        chosen = list(range(len(crops)))
    else:
        if key_frames is None:
            if boxes is None:
                raise InputError("key_frames", f"pattern {pattern!r} needs key frames or boxes")
            key_frames = default_key_frames(boxes)
        chosen = list(key_frames[:1] if pattern == "key_frame" else key_frames[:2])
        if pattern == "two_key_frames" and len(chosen) != 2:
            raise InputError("key_frames", "pattern 'two_key_frames' needs two frames")
        if any(not 0 <= i < len(crops) for i in chosen):
            raise InputError("key_frames", f"{chosen} out of range for {len(crops)} crops")
    return float(np.mean(score_frames(crops[chosen])))
