"""One answer to "which models?" for every entry point (score, batch, serve, eval,
benchmarks): :func:`resolve_models`.

``spec`` may be

- ``None``: the default bundle (``sonorisk.models.store.default_spec``);
- a bundle folder (holds ``metadata.json``), or a folder of versions of one
  bundle (its highest version);
- a legacy folder holding ``detector.pt`` and ``classifier.pt`` (what
  ``sonorisk demo --train`` writes) or the same as ``.safetensors``;
- a bundle ``NAME`` or ``NAME@VERSION``, installed or bundled.

``detector=`` / ``classifier=`` files override the spec's (both given: the spec
is not looked at). Precedence: explicit files > folder > name > default. A
bundle's model files are checked against the sha256 in its metadata here, so
nothing loads a changed file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sonorisk.errors import InputError
from sonorisk.models.bundle import (
    METADATA,
    MODEL_FILES,
    OPTIONAL_MODEL_FILES,
    Bundle,
    check_file,
    read_bundle,
    sha256_file,
)
from sonorisk.models.store import (
    bundled_dir,
    default_spec,
    find_bundle,
    parse_spec,
    user_model_dir,
    version_key,
)

Where = Literal["bundled", "installed", "folder", "files"]
ROLES = ("detector", "classifier")
STILL_ROLE = "still_classifier"  # optional (OPTIONAL_MODEL_FILES)
LEGACY_NAMES = {
    "detector": ("detector.pt", "detector.safetensors"),
    "classifier": ("classifier.pt", "classifier.safetensors"),
}
NO_MODELS_HINT = (
    "name the models with --models NAME|DIR (a bundle, or a folder with "
    "detector.pt and classifier.pt) or --detector FILE --classifier FILE. "
    "No default bundle is installed: install one with `sonorisk models install "
    "PATH_OR_URL` (see docs/models.md), or train a demonstration pair with "
    "`sonorisk demo --train` and use --models sonorisk-demo/models"
)


@dataclass(frozen=True)
class ResolvedModels:
    """The two model files to load and, when they are a bundle's, that bundle."""

    detector: Path
    classifier: Path
    where: Where
    bundle: Bundle | None = None
    sha256: dict[str, str] = field(default_factory=dict)  # role -> the file's sha256
    # The bundle's still classifier (sonorisk.still_classifier), when it has one.
    still_classifier: Path | None = None

    def section(self) -> dict[str, Any]:
        """What every output says about its models (``models.bundle`` of a score
        document; batch rows and job summaries carry name, version, sha256)."""
        b = self.bundle
        return {
            "name": b.name if b else None,
            "version": b.version if b else None,
            "sha256": b.sha256 if b else None,
            "where": self.where,
            "path": str(b.path) if b else None,
            "notice": b.notice if b else None,
            "files": {
                role: {"path": str(getattr(self, role)), "sha256": self.sha256.get(role)}
                for role in (*ROLES, STILL_ROLE)
                if getattr(self, role, None) is not None
            },
        }

    def detector_settings(self, overrides: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The detector settings a run loads with: the bundle's own
        (``pipeline.detector`` of its metadata, what its figures were measured
        with, e.g. ``tta_hflip``), then ``overrides`` (a run's flags) over them."""
        merged = {**bundle_detector_settings(self.bundle), **(overrides or {})}
        return merged or None

    def label(self) -> str:
        if self.bundle is not None:
            return f"{self.bundle.name} {self.bundle.version} ({self.where}, {self.bundle.path})"
        return f"{self.detector} + {self.classifier}"


# Detector settings a bundle may fix for the runs that use it (``pipeline.detector``).
BUNDLE_DETECTOR_SETTINGS = {"tta_hflip": bool}


def bundle_detector_settings(bundle: Bundle | None) -> dict[str, Any]:
    """``pipeline.detector`` of a bundle's metadata, checked ({} when absent)."""
    if bundle is None:
        return {}
    settings = (bundle.metadata.get("pipeline") or {}).get("detector") or {}
    if not isinstance(settings, dict):
        raise InputError(bundle.path / METADATA, "pipeline.detector must be a mapping")
    for key, value in settings.items():
        kind = BUNDLE_DETECTOR_SETTINGS.get(key)
        if kind is None or not isinstance(value, kind):
            known = ", ".join(f"{k} ({t.__name__})" for k, t in BUNDLE_DETECTOR_SETTINGS.items())
            raise InputError(
                bundle.path / METADATA,
                f"pipeline.detector.{key}: {value!r} is not a setting a bundle may fix "
                f"(known: {known})",
            )
    return dict(settings)


def unrecorded_section() -> dict[str, Any]:
    """The bundle section of models built in code, not through resolve_models."""
    return {
        "name": None,
        "version": None,
        "sha256": None,
        "where": "unrecorded",
        "path": None,
        "notice": None,
        "files": {},
    }


def from_bundle(bundle: Bundle, where: Where) -> ResolvedModels:
    """A bundle's models, each checked against its sha256 (refused if changed)."""
    sha = {}
    roles = [*ROLES, *(r for r in OPTIONAL_MODEL_FILES if bundle.has_model(r))]
    for role in roles:
        name = bundle.metadata["models"][role]["file"]
        problem = check_file(bundle, name)
        if problem is not None:
            raise InputError(
                bundle.path / problem.file,
                f"{problem.reason}; refusing to "
                f"load it (`sonorisk models verify {bundle.path}` checks every "
                "file; reinstall the bundle)",
            )
        sha[role] = bundle.files[name].sha256
    still = (
        bundle.model_file("still_classifier").resolve()
        if bundle.has_model("still_classifier")
        else None
    )
    return ResolvedModels(
        bundle.model_file("detector").resolve(),
        bundle.model_file("classifier").resolve(),
        where,
        bundle,
        sha,
        still,
    )


def bundle_folder(folder: Path) -> Path | None:
    """``folder`` if it is a bundle; its highest version if it holds versions of one
    (``<root>/<name>/``); None otherwise."""
    if (folder / METADATA).is_file():
        return folder
    versions = [
        p for p in folder.iterdir() if (p / METADATA).is_file() and not p.name.startswith(".")
    ]
    return max(versions, key=lambda p: version_key(p.name)) if versions else None


def locate_bundle(spec: str | None) -> tuple[Bundle, Where]:
    """The bundle a NAME[@VERSION] or folder names (None: the default), unchecked
    (``verify_bundle`` checks its files)."""
    text = spec if spec is not None else default_spec()
    if text is None:
        raise InputError("models", NO_MODELS_HINT)
    path = Path(text).expanduser()
    if path.is_dir():
        folder = bundle_folder(path)
        if folder is None:
            raise InputError(
                path, f"not a model bundle: no {METADATA} in it (nor in a version folder under it)"
            )
        return read_bundle(folder), _where_of(folder)
    if os.sep in text or path.is_file():
        raise InputError(path, "model bundle folder not found")
    located = find_bundle(*parse_spec(text))
    return located.bundle, located.where


def _from_folder(folder: Path) -> ResolvedModels:
    found = bundle_folder(folder)
    if found is not None:
        return from_bundle(read_bundle(found), _where_of(found))
    files = {}
    for role, names in LEGACY_NAMES.items():
        found = next((folder / n for n in names if (folder / n).is_file()), None)
        if found is None:
            raise InputError(
                folder, f"not a model bundle (no {METADATA}) and no {' or '.join(names)} in it"
            )
        files[role] = found
    return _from_files(files["detector"], files["classifier"], "files")


def _where_of(folder: Path) -> Where:
    folder = folder.resolve()
    places: tuple[tuple[Where, Path], ...] = (
        ("installed", user_model_dir()),
        ("bundled", bundled_dir()),
    )
    for where, root in places:
        if folder.is_relative_to(Path(root).resolve()):
            return where
    return "folder"


def _from_files(detector: Path, classifier: Path, where: Where) -> ResolvedModels:
    for role, path in (("detector", detector), ("classifier", classifier)):
        if not path.is_file():
            raise InputError(path, f"{role} checkpoint not found")
    return ResolvedModels(
        detector.resolve(),
        classifier.resolve(),
        where,
        None,
        {"detector": sha256_file(detector), "classifier": sha256_file(classifier)},
    )


def _resolve_spec(spec: str | os.PathLike[str] | None) -> ResolvedModels:
    if spec is None:
        spec = default_spec()
        if spec is None:
            raise InputError("models", NO_MODELS_HINT)
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        return _from_folder(path)
    if path.is_file():
        raise InputError(
            path,
            "is a file: --models takes a bundle NAME or a folder; give "
            "checkpoint files with --detector FILE --classifier FILE",
        )
    looks_like_path = (
        os.sep in text or text.startswith(".") or text.endswith(tuple(MODEL_FILES.values()))
    )
    if looks_like_path:
        raise InputError(path, "model folder not found")
    name, version = parse_spec(text)
    located = find_bundle(name, version)
    return from_bundle(located.bundle, located.where)


def resolve_models(
    spec: str | os.PathLike[str] | None = None,
    detector: str | Path | None = None,
    classifier: str | Path | None = None,
) -> ResolvedModels:
    """The models ``spec`` names, with ``detector``/``classifier`` overriding its files."""
    if detector and classifier:
        return _from_files(Path(detector).expanduser(), Path(classifier).expanduser(), "files")
    base = _resolve_spec(spec)
    if not detector and not classifier:
        return base
    # One file replaced: the pair is no longer the bundle; say the files.
    return _from_files(
        Path(detector).expanduser() if detector else base.detector,
        Path(classifier).expanduser() if classifier else base.classifier,
        "files",
    )


def resolve_model_file(spec: str | Path, role: str) -> Path:
    """A checkpoint file as it is, or the ``role`` model of a bundle NAME or folder
    (what ``sonorisk eval detector|classifier --checkpoint`` takes)."""
    if role not in (*ROLES, STILL_ROLE):
        raise ValueError(f"role must be one of {(*ROLES, STILL_ROLE)}, got {role!r}")
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.suffix in (".pt", ".pth", ".safetensors"):
        raise InputError(path, f"{role} checkpoint not found")
    found = getattr(_resolve_spec(str(spec)), role)
    if found is None:
        raise InputError(
            str(spec),
            f"the bundle has no still-image classifier ({OPTIONAL_MODEL_FILES[STILL_ROLE]})",
        )
    return found
