"""Atomic file writes: a reader never sees half a checkpoint or half a report."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def atomic_torch_save(payload: Any, path: Path) -> Path:
    """``torch.save`` to a temporary file, then rename over ``path``."""
    import torch

    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def atomic_write_text(text: str, path: Path) -> Path:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
