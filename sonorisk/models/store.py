"""Where bundles live: bundled with the package, or installed by the user.

- Bundled: ``sonorisk/bundled/<name>/<version>/`` (package data; read-only).
- Installed: the user model directory, ``$SONORISK_MODELS`` or else the
  platform cache directory (``platformdirs.user_cache_dir("sonorisk")/models``;
  without platformdirs ``$XDG_CACHE_HOME/sonorisk/models`` or
  ``~/.cache/sonorisk/models``).

A name resolves to its highest version over both places (installed wins a tie).
The default bundle is ``$SONORISK_DEFAULT_MODELS`` if set, else the name in
``sonorisk/bundled/default.txt``, else the only name under ``sonorisk/bundled/``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sonorisk.errors import InputError
from sonorisk.models.bundle import METADATA, Bundle, BundleError, check_name, read_bundle

log = logging.getLogger(__name__)

ENV_MODELS = "SONORISK_MODELS"
ENV_DEFAULT = "SONORISK_DEFAULT_MODELS"
BUNDLED_DIR = Path(__file__).resolve().parents[1] / "bundled"
DEFAULT_FILE = "default.txt"
Where = Literal["bundled", "installed"]


def user_cache_root() -> Path:
    """sonorisk's platform cache folder (installed bundles, exported ONNX graphs)."""
    try:
        import platformdirs
    except ImportError:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return cache.expanduser() / "sonorisk"
    return Path(platformdirs.user_cache_dir("sonorisk"))


def user_model_dir() -> Path:
    env = os.environ.get(ENV_MODELS)
    if env:
        return Path(env).expanduser()
    return user_cache_root() / "models"


def bundled_dir() -> Path:
    return BUNDLED_DIR


def roots() -> list[tuple[Where, Path]]:
    return [("installed", user_model_dir()), ("bundled", bundled_dir())]


@dataclass(frozen=True)
class Located:
    bundle: Bundle
    where: Where


def version_key(version: str) -> tuple[int, object]:
    """Sort key: PEP 440 order where the version parses, text order otherwise (lower)."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # packaging is nearly always there; fall back to numbers and text
        return (0, tuple(int(p) if p.isdigit() else -1 for p in re.split(r"[.+-]", version)))
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


def _scan(root: Path, where: Where) -> list[Located]:
    out: list[Located] = []
    if not root.is_dir():
        return out
    for meta in sorted(root.glob(f"*/*/{METADATA}")):
        folder = meta.parent
        if folder.name.startswith(".") or folder.parent.name.startswith("."):
            continue  # staging folders of an install in progress
        try:
            bundle = read_bundle(folder)
        except BundleError as exc:
            log.warning("skipping %s: %s", folder, exc)
            continue
        if (bundle.name, bundle.version) != (folder.parent.name, folder.name):
            log.warning("skipping %s: metadata names %s@%s", folder, bundle.name, bundle.version)
            continue
        out.append(Located(bundle, where))
    return out


def list_bundles() -> list[Located]:
    """Every readable bundle, installed first, each sorted by name then version."""
    found: list[Located] = []
    for where, root in roots():
        found += sorted(
            _scan(root, where), key=lambda x: (x.bundle.name, version_key(x.bundle.version))
        )
    return found


def parse_spec(spec: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME@VERSION`` (both checked)."""
    name, _, version = spec.partition("@")
    check_name(name, "name", spec)
    if version:
        check_name(version, "version", spec)
    return name, version or None


def find_bundle(name: str, version: str | None = None) -> Located:
    """The bundle ``name`` (highest version unless ``version``), installed or bundled."""
    matches = [
        x
        for x in list_bundles()
        if x.bundle.name == name and (version is None or x.bundle.version == version)
    ]
    if not matches:
        known = sorted({f"{x.bundle.name}@{x.bundle.version}" for x in list_bundles()})
        label = f"{name}@{version}" if version else name
        raise InputError(
            label,
            f"no such model bundle (installed in {user_model_dir()} or "
            f"bundled in {bundled_dir()}); known: {known or 'none'}. "
            "`sonorisk models list` shows them, `sonorisk models install "
            "PATH_OR_URL` adds one",
        )
    rank = {"installed": 1, "bundled": 0}
    return max(matches, key=lambda x: (version_key(x.bundle.version), rank[x.where]))


def default_spec() -> str | None:
    """The default bundle's name (or NAME@VERSION, or a folder); None when there is none."""
    env = os.environ.get(ENV_DEFAULT)
    if env:
        return env
    marker = bundled_dir() / DEFAULT_FILE
    if marker.is_file():
        line = marker.read_text().strip().splitlines()
        if line and line[0].strip():
            return line[0].strip()
    names = sorted({x.bundle.name for x in _scan(bundled_dir(), "bundled")})
    return names[0] if len(names) == 1 else None


def remove_bundle(spec: str) -> list[Path]:
    """Delete ``NAME`` (every installed version) or ``NAME@VERSION`` from the user
    model directory. Bundled bundles cannot be removed."""
    name, version = parse_spec(spec)
    installed = [
        x
        for x in _scan(user_model_dir(), "installed")
        if x.bundle.name == name and (version is None or x.bundle.version == version)
    ]
    if not installed:
        bundled = [
            x
            for x in _scan(bundled_dir(), "bundled")
            if x.bundle.name == name and (version is None or x.bundle.version == version)
        ]
        if bundled:
            raise InputError(
                spec,
                f"is bundled with sonorisk ({bundled[0].bundle.path}) and "
                "cannot be removed; only installed bundles can",
            )
        raise InputError(spec, f"no installed bundle of that name in {user_model_dir()}")
    removed = []
    for x in installed:
        shutil.rmtree(x.bundle.path)
        removed.append(x.bundle.path)
        parent = x.bundle.path.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
    return removed
