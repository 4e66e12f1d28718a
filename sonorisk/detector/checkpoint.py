"""Detector checkpoints: one file with weights, config and provenance.

A checkpoint is a dict with ``kind == "sonorisk.detector"``, saved by training
as a ``.pt`` file of plain data and tensors (it loads with
``torch.load(weights_only=True)``) or exported as a safetensors envelope
(``sonorisk.models.envelope``, weights under ``state_dict``). Anything else (a
classifier checkpoint, a bare state dict, a random file, a file that needs
pickle) is refused with a clear error naming the file.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import torch

from sonorisk.atomic import atomic_torch_save
from sonorisk.config import from_dict, to_dict
from sonorisk.detector.config import DetectorConfig
from sonorisk.errors import InputError
from sonorisk.models.envelope import read_model_file

KIND = "sonorisk.detector"
FORMAT_VERSION = 1
# Every checkpoint says what it is: research weights, never a clinical device.
DISCLAIMER = (
    "Research model trained on small public data; not a medical device and not "
    "validated for clinical use."
)


class CheckpointError(InputError):
    """A checkpoint file is missing, unreadable or not a detector checkpoint."""


def save_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    config: DetectorConfig,
    weights_source: dict[str, str],
    epoch: int = 0,
    metrics: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    optimizer: dict[str, Any] | None = None,
    scheduler: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "backend": "torchvision",
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": to_dict(config),
        "weights_source": dict(weights_source),
        "epoch": epoch,
        "metrics": metrics or {},
        "training": training or {},
        "disclaimer": DISCLAIMER,
        "state_dict": model.state_dict(),
        "optimizer": optimizer,
        "scheduler": scheduler,
        "extra": extra or {},
    }
    return atomic_torch_save(payload, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    payload = read_model_file(path, what="detector checkpoint", error=CheckpointError)
    if not isinstance(payload, dict) or payload.get("kind") != KIND:
        found = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            path, f"not a sonorisk detector checkpoint (kind={found!r}, expected {KIND!r})"
        )
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            path,
            f"written by a newer sonorisk (format {payload['format_version']} > {FORMAT_VERSION})",
        )
    return payload


def config_from_checkpoint(payload: dict[str, Any], source: str = "checkpoint") -> DetectorConfig:
    return from_dict(DetectorConfig, payload.get("config", {}), source)
