"""Model files that cannot run code: the safetensors envelope, and the one reader.

An envelope is one ``.safetensors`` file: the tensors of a state dict, and in
the header's ``__metadata__`` one key (``"sonorisk"``) whose value is a JSON
string of everything else a checkpoint carries (kind or format tag, config,
provenance, training data, metrics) plus where the state goes back
(``state_key``) and how the tensors were stored (``stored_dtype``). Weights
may be stored as float16; they come back as float32 (integer and bool buffers
are stored as they are).

:func:`read_model_file` is the only way sonorisk opens a model file: an
envelope through safetensors, a ``.pt`` checkpoint through
``torch.load(weights_only=True)``. A file that needs pickle to load (an
object of some class, not plain data and tensors) is refused: a model file
must not be able to run code.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from sonorisk.errors import InputError

ENVELOPE_KEY = "sonorisk"
ENVELOPE_VERSION = 1
SUFFIX = ".safetensors"
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class ModelFileError(InputError):
    """A model file is missing, unreadable, needs pickle, or is not what was asked for."""


def _jsonable(value: Any) -> Any:
    """``json.dumps`` fallback: numpy scalars and arrays, paths; anything else is refused."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist") and not isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not plain data")


def write_envelope(
    path: str | Path,
    payload: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    *,
    state_key: str,
    dtype: str | None = None,
) -> Path:
    """Write ``state_dict`` and the plain-data ``payload`` as one safetensors file.

    ``payload`` must not hold the state itself (nor any tensor): it becomes JSON.
    ``dtype`` ("float16", "bfloat16" or None: as they are) is the storage type of
    floating-point tensors; integer and bool buffers are never cast.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if dtype is not None and dtype not in _DTYPES:
        raise InputError("dtype", f"unknown storage dtype {dtype!r}; known: {list(_DTYPES)}")
    if state_key in payload:
        raise InputError(path, f"payload must not hold the state itself ({state_key!r})")
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise InputError(
                path, f"state entry {name!r} is a {type(tensor).__name__}, not a tensor"
            )
        tensor = tensor.detach().cpu()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(_DTYPES[dtype])
        # Own contiguous storage: safetensors refuses tensors that share memory.
        tensors[name] = tensor.contiguous().clone()
    header = {
        **payload,
        "envelope_version": ENVELOPE_VERSION,
        "state_key": state_key,
        "stored_dtype": dtype or "as saved",
    }
    try:
        text = json.dumps(header, default=_jsonable, sort_keys=True)
    except TypeError as exc:
        raise InputError(path, f"checkpoint metadata is not plain data ({exc})") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={ENVELOPE_KEY: text})
    os.replace(tmp, path)
    return path


def is_safetensors(path: str | Path) -> bool:
    """True when the file starts like safetensors (an 8-byte header length, then JSON)."""
    try:
        with Path(path).open("rb") as fh:
            head = fh.read(9)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 0 < length <= size - 8 and head[8:9] == b"{"


def read_envelope(
    path: str | Path, *, what: str = "model file", error: type[InputError] = ModelFileError
) -> dict[str, Any]:
    """The checkpoint dict of an envelope, its state under its ``state_key`` as float32."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = fh.metadata() or {}
            state = {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for a bad file
        raise error(path, f"not a readable {what} (safetensors: {exc})") from exc
    text = metadata.get(ENVELOPE_KEY)
    if text is None:
        raise error(
            path,
            f"a safetensors file without sonorisk metadata (no "
            f"{ENVELOPE_KEY!r} key in its header): plain weights, not a "
            f"sonorisk {what}",
        )
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(path, f"sonorisk metadata is not valid JSON ({exc})") from exc
    if not isinstance(payload, dict) or "state_key" not in payload:
        raise error(path, "sonorisk metadata lacks its state_key")
    if payload.get("envelope_version", 0) > ENVELOPE_VERSION:
        raise error(
            path,
            f"envelope version {payload['envelope_version']} is newer than "
            f"this sonorisk reads ({ENVELOPE_VERSION})",
        )
    if payload.get("stored_dtype") in _DTYPES:
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    payload[payload["state_key"]] = state
    return payload


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_UNSUPPORTED = re.compile(r"Unsupported operand [^\n]*")


def read_model_file(
    path: str | Path, *, what: str = "model file", error: type[InputError] = ModelFileError
) -> Any:
    """What a model file holds, read without running code.

    An envelope (by its content, whatever its name) through safetensors;
    anything else through ``torch.load(weights_only=True)``. Errors name the
    file; a file that needs pickle is refused as such.
    """
    path = Path(path)
    if not path.is_file():
        raise error(path, f"{what} not found")
    if is_safetensors(path):
        return read_envelope(path, what=what, error=error)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        message = str(exc)
        found = _GLOBAL.search(message) if "Weights only load failed" in message else None
        if found:  # a class, function or foreign object: only pickle could build it
            raise error(
                path,
                f"refused: this {what} needs pickle to load (it holds "
                f"{found.group(1)}), and model "
                "files must not run code. Save plain tensors and data "
                "(a state dict, numbers, strings, lists, dicts) or a "
                "safetensors envelope instead",
            ) from exc
        detail = _UNSUPPORTED.search(message)
        raise error(
            path,
            f"not a readable {what} ({type(exc).__name__}: "
            f"{detail.group(0) if detail else message[:300]})",
        ) from exc


def read_state_dict(path: str | Path, *, what: str = "torch weights file") -> dict[str, Any]:
    """Pretrained weights: a state dict (plain, or wrapped as ``{"state_dict": ...}``,
    ``{"model_state": ...}`` or ``{"model": ...}``; DataParallel's ``module.``
    prefixes stripped), from a torch file or a safetensors file (plain or envelope)."""
    path = Path(path)
    if is_safetensors(path):
        obj = _plain_or_envelope_safetensors(path, what)
    else:
        obj = read_model_file(path, what=what)
    for key in ("state_dict", "model_state", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise ModelFileError(path, "holds no state dict (a mapping of names to tensors)")
    tensors = {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelFileError(path, "holds no tensors")
    return tensors


def _plain_or_envelope_safetensors(path: Path, what: str) -> dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            enveloped = ENVELOPE_KEY in (fh.metadata() or {})
            state = {} if enveloped else {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for a bad file
        raise ModelFileError(path, f"not a readable {what} (safetensors: {exc})") from exc
    if enveloped:
        return read_envelope(path, what=what)
    return {
        k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in state.items()
    }
