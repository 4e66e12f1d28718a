"""Configs as data: YAML files loaded into typed dataclasses.

One way to layer a config, from the most general to the most specific:

1. the dataclass defaults;
2. the config a checkpoint was trained with (``base``), where a command
   reads one (``eval detector``);
3. the ``--config`` file: a YAML of this verb's config keys;
4. explicit flags (``overrides``: every setting flag is a dotted config key).

The file sits above the checkpoint so that what a user names on the command
line wins over what was stored. The merged mapping is checked once (unknown
keys, types, then the class's own ``validate()``), in :func:`load_config`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sonorisk.errors import ConfigError

T = TypeVar("T")


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, "config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(path, "top level must be a mapping of keys to values")
    return data


def from_dict(cls: type[T], data: dict[str, Any], source: str = "config") -> T:
    """Build dataclass ``cls`` from a (nested) mapping, rejecting unknown keys."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(source, f"unknown key(s) {unknown}; known: {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{source}.{name}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(where, f"expected a mapping, got {value!r}")
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(exc.reason)
        raise ConfigError(where, "; ".join(errors))
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(where, f"must be one of {list(allowed)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(where, f"expected a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(where, f"expected {hint.__name__}, got {value!r}")
        return value
    return value


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, mappings merged key by key (neither is changed)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def nest(overrides: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys as a nested mapping (``{"a.b": 1}`` -> ``{"a": {"b": 1}}``);
    ``None`` values are dropped so unset CLI flags do not clobber a file."""
    out: dict[str, Any] = {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    base: dict[str, Any] | None = None,
    source: str | None = None,
) -> T:
    """Defaults of ``cls``, then ``base`` (a checkpoint's config), then the YAML
    file at ``path``, then ``overrides`` (dotted keys: ``{"train.epochs": 3}``);
    then ``cls.validate()`` where the class has one.
    """
    data = merge(base or {}, load_yaml(path) if path is not None else {})
    config = from_dict(
        cls, merge(data, nest(overrides or {})), source or (str(path) if path else "config")
    )
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate()
    return config


def to_dict(obj: Any) -> dict[str, Any]:
    """A config as a plain mapping (for checkpoints and report metadata)."""
    return dataclasses.asdict(obj)
