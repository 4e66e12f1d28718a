"""Training checkpoints -> safetensors envelopes (what bundles ship).

A detector checkpoint (``kind == "sonorisk.detector"``) keeps its weights under
``state_dict``; a classifier checkpoint (``format == "sonorisk-video-classifier"``)
under ``model_state``. The conversion keeps everything else a checkpoint says
(config, provenance, training data, metrics) and drops the optimizer and
scheduler state, which only resuming a training needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sonorisk.errors import InputError
from sonorisk.models.envelope import read_model_file, write_envelope

DETECTOR_KIND = "sonorisk.detector"  # sonorisk.detector.checkpoint.KIND
CLASSIFIER_FORMAT = "sonorisk-video-classifier"  # video_classifier.registry.CHECKPOINT_FORMAT


@dataclass(frozen=True)
class RoleSpec:
    state_key: str
    training_only: tuple[str, ...]
    # Keys of the checkpoint's ``extra`` mapping that only resuming needs.
    training_only_extra: tuple[str, ...] = ()


ROLES = {
    # A detector trained with a weight average (train.ema_decay) keeps the raw
    # trained weights beside the averaged ones for --resume: extra.train_state_dict.
    "detector": RoleSpec("state_dict", ("optimizer", "scheduler"), ("train_state_dict",)),
    "classifier": RoleSpec("model_state", ("optimizer_state", "scheduler_state")),
}


def checkpoint_role(payload: Any, source: str | Path) -> str:
    """``"detector"`` or ``"classifier"``: what a checkpoint dict holds."""
    if isinstance(payload, dict):
        if payload.get("kind") == DETECTOR_KIND:
            return "detector"
        if payload.get("format") == CLASSIFIER_FORMAT:
            return "classifier"
    found = (
        f"kind={payload.get('kind')!r}, format={payload.get('format')!r}"
        if isinstance(payload, dict)
        else type(payload).__name__
    )
    raise InputError(source, f"not a sonorisk detector or classifier checkpoint ({found})")


def to_envelope(
    source: str | Path, target: str | Path, *, dtype: str | None = None, expect: str | None = None
) -> str:
    """Convert the checkpoint ``source`` (a ``.pt`` file or an envelope) into the
    envelope ``target``; returns its role. ``expect`` refuses the other role."""
    payload = read_model_file(source, what="checkpoint")
    role = checkpoint_role(payload, source)
    if expect is not None and role != expect:
        raise InputError(source, f"holds a {role} checkpoint, expected a {expect}")
    spec = ROLES[role]
    state = payload.get(spec.state_key)
    if not isinstance(state, dict) or not state:
        raise InputError(source, f"{role} checkpoint holds no weights ({spec.state_key!r})")
    drop = {spec.state_key, *spec.training_only, "envelope_version", "state_key", "stored_dtype"}
    rest = {k: v for k, v in payload.items() if k not in drop}
    if isinstance(rest.get("extra"), dict):
        rest["extra"] = {
            k: v for k, v in rest["extra"].items() if k not in spec.training_only_extra
        }
    write_envelope(target, rest, state, state_key=spec.state_key, dtype=dtype)
    return role
