"""Build a classifier from its config; save and load checkpoints.

A checkpoint is one ``torch.save`` file of plain data and tensors (loaded with
``weights_only=True``), or the same as a safetensors envelope
(``sonorisk.models.envelope``): format tag and version, model kind, the whole config,
class names, weights provenance, a description of the training data (and
whether it was synthetic or tiny: reports must show it), metrics, and the
model/optimizer state.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
from pathlib import Path
from typing import Any

import torch

from sonorisk.atomic import atomic_torch_save
from sonorisk.config import from_dict, to_dict
from sonorisk.errors import InputError
from sonorisk.video_classifier.base import ClipClassifier
from sonorisk.video_classifier.config import (
    CLASSIFIER_KINDS,
    ClassifierConfig,
    classifier_kinds,
)

CHECKPOINT_FORMAT = "sonorisk-video-classifier"
CHECKPOINT_VERSION = 1


def classifier_class(kind: str) -> type[ClipClassifier]:
    """The ``ClipClassifier`` subclass of a registered kind (imported on first use)."""
    spec = CLASSIFIER_KINDS.get(kind)
    if spec is None:
        raise InputError(
            "model.kind", f"unknown classifier kind {kind!r}; known: {classifier_kinds()}"
        )
    if not isinstance(spec.model, str):
        return spec.model
    module, _, name = spec.model.partition(":")
    cls: type[ClipClassifier] = getattr(importlib.import_module(module), name)
    return cls


def build_classifier(config: ClassifierConfig, load_weights: bool = True) -> ClipClassifier:
    """A new classifier: pretrained weights from ``config.model.weights`` or random init.

    Provenance always says which: a model with random init is labelled so.
    """
    model = classifier_class(config.model.kind)(config)
    weights = config.model.weights
    if weights and load_weights:
        report = model.load_pretrained(weights)
        model.provenance = {
            "init": "pretrained",
            "description": config.model.weights_description or "unnamed pretrained weights",
            **report.summary(),
        }
    else:
        model.provenance = {
            "init": "random",
            "description": "random initialisation (no pretrained weights)",
        }
    return model


def save_checkpoint(
    path: str | Path,
    model: ClipClassifier,
    *,
    training_data: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    epoch: int = 0,
    optimizer_state: dict[str, Any] | None = None,
    scheduler_state: dict[str, Any] | None = None,
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "kind": model.kind,
        "config": to_dict(model.config),
        "class_names": list(model.class_names),
        "malignant_classes": list(model.config.model.malignant_classes),
        "weights_provenance": dict(model.provenance),
        "training_data": dict(training_data),
        "metrics": dict(metrics or {}),
        "history": list(history or []),
        "epoch": int(epoch),
        "saved_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_state": optimizer_state,
        "scheduler_state": scheduler_state,
    }
    return atomic_torch_save(payload, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    from sonorisk.models.envelope import read_model_file

    # A training .pt file (weights_only) or a safetensors envelope (weights under
    # "model_state"); a file that needs pickle is refused.
    payload = read_model_file(path, what="checkpoint")
    tag = payload.get("format") if isinstance(payload, dict) else None
    if tag != CHECKPOINT_FORMAT:
        raise InputError(path, f"not a sonorisk video-classifier checkpoint (format tag {tag!r})")
    if payload.get("format_version", 0) > CHECKPOINT_VERSION:
        raise InputError(
            path,
            f"checkpoint format version {payload['format_version']} is newer "
            f"than this sonorisk reads ({CHECKPOINT_VERSION})",
        )
    return payload


def config_from_checkpoint(payload: dict[str, Any], source: str) -> ClassifierConfig:
    return from_dict(ClassifierConfig, payload["config"], source)


def load_classifier(
    checkpoint: str | Path, kind: str | None = None, device: str | torch.device = "cpu"
) -> ClipClassifier:
    """Rebuild a classifier from a checkpoint; refuse one of the wrong kind.

    ``kind`` names what the caller expects (e.g. the pipeline wants "i3d"); a
    checkpoint of another kind, or a detector checkpoint, is refused with an
    error that names the file, what it holds and what was expected.
    """
    payload = read_checkpoint(checkpoint)
    found = payload.get("kind")
    if kind is not None and found != kind:
        raise InputError(checkpoint, f"holds a {found!r} classifier, expected {kind!r}")
    config = config_from_checkpoint(payload, str(checkpoint))
    # Weights come from the checkpoint, not from the pretrained file named in its config.
    model = classifier_class(config.model.kind)(config)
    try:
        model.load_state_dict(payload["model_state"])
    except RuntimeError as exc:
        raise InputError(checkpoint, f"model weights do not match its config ({exc})") from exc
    model.provenance = dict(payload.get("weights_provenance", {}))
    model.checkpoint_info = checkpoint_info(payload)
    return model.to(device).eval()


def checkpoint_info(payload: dict[str, Any]) -> dict[str, Any]:
    """What a loaded classifier keeps of its checkpoint for its card (``model_card``)."""
    return {k: payload.get(k) for k in ("training_data", "metrics", "epoch", "saved_at")}


def model_card(model: ClipClassifier) -> dict[str, Any]:
    """What a report must show about a model (provenance, training data, honesty flags)."""
    training = model.checkpoint_info.get("training_data") or {}
    return {
        "kind": model.kind,
        "classes": list(model.class_names),
        "malignant_classes": list(model.config.model.malignant_classes),
        "weights_provenance": dict(model.provenance),
        "training_data": training,
        "trained_on_synthetic_data": bool(training.get("synthetic", True)),
        "research_only": True,
        "clip_config": dataclasses.asdict(model.config.clips),
    }
