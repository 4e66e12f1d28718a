"""Model bundles: a versioned folder of weights, metadata and a model card.

Layout (after MONAI bundles and Hugging Face model cards)::

    <root>/<name>/<version>/
        detector.safetensors     # envelopes (sonorisk.models.envelope)
        classifier.safetensors
        still_classifier.safetensors   # optional: the 2D still classifier (since 1.3.0)
        README.md                # the model card, rendered from the metadata
        metadata.json            # what the bundle is; sha256 of every other file

``metadata.json`` lists the sha256 and size of every file but itself; the
bundle's own digest (what every output names) is the sha256 of
``metadata.json``, so it covers every byte of the bundle.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import re
import shutil
from dataclasses import dataclass, field
from importlib import metadata as _importlib_metadata
from pathlib import Path, PurePosixPath
from typing import Any

from sonorisk.errors import InputError

METADATA = "metadata.json"
CARD = "README.md"
BUNDLE_FORMAT = "sonorisk.bundle"
BUNDLE_FORMAT_VERSION = 1
MODEL_FILES = {"detector": "detector.safetensors", "classifier": "classifier.safetensors"}
# Models a bundle may carry beside the two it must: the 2D still classifier, which
# builds on the bundle's detector (sonorisk.still_classifier).
OPTIONAL_MODEL_FILES = {"still_classifier": "still_classifier.safetensors"}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
REQUIRED_INFO = ("task", "intended_use", "limitations", "training_data", "notice")
REQUIRED_METADATA = ("name", "version", "files", "models", "notice")
METRIC_FIELDS = ("value", "ci_low", "ci_high", "n", "method", "note")
PACKAGES = ("torch", "torchvision", "safetensors", "numpy", "sonorisk")


class BundleError(InputError):
    """A bundle folder, its metadata or one of its files is wrong; names the file."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_name(value: Any, what: str, source: str | Path) -> str:
    """A bundle name or version: one path component, no traversal."""
    if not isinstance(value, str) or not NAME_PATTERN.match(value) or value in (".", ".."):
        raise BundleError(
            source,
            f"bad bundle {what} {value!r}: use letters, digits and "
            "'.', '_', '+', '-' (at most 64, starting with a letter "
            "or digit)",
        )
    return value


def _relative(name: str, source: Path) -> str:
    """A file name from metadata: relative, inside the bundle, POSIX separators."""
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or "\\" in name:
        raise BundleError(source, f"file entry {name!r} is not a relative path inside the bundle")
    return pure.as_posix()


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Bundle:
    """A bundle folder as its metadata describes it."""

    path: Path
    metadata: dict[str, Any] = field(repr=False)
    sha256: str  # of metadata.json: the bundle's identity

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def notice(self) -> str:
        return str(self.metadata["notice"])

    @property
    def card(self) -> Path:
        return self.path / CARD

    @property
    def files(self) -> dict[str, FileEntry]:
        return {
            name: FileEntry(str(entry["sha256"]), int(entry["bytes"]))
            for name, entry in self.metadata["files"].items()
        }

    def model_file(self, role: str) -> Path:
        return self.path / self.metadata["models"][role]["file"]

    def has_model(self, role: str) -> bool:
        """True when the bundle lists a model of ``role`` (optional ones may be absent)."""
        return isinstance(self.metadata["models"].get(role), dict)

    @property
    def size_bytes(self) -> int:
        return sum(f.bytes for f in self.files.values()) + (self.path / METADATA).stat().st_size

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        return dict(self.metadata.get("metrics") or {})


def read_bundle(path: str | Path) -> Bundle:
    """Read and check ``path/metadata.json`` (not the files' hashes: see verify_bundle)."""
    path = Path(path)
    meta_path = path / METADATA
    if not meta_path.is_file():
        raise BundleError(path, f"not a model bundle: no {METADATA}")
    raw = meta_path.read_bytes()
    try:
        metadata = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(meta_path, f"not valid JSON ({exc})") from exc
    if not isinstance(metadata, dict):
        raise BundleError(meta_path, "must hold a JSON object")
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise BundleError(meta_path, f"lacks {missing}")
    if metadata.get("format_version", 1) > BUNDLE_FORMAT_VERSION:
        raise BundleError(
            meta_path,
            f"bundle format {metadata['format_version']} is newer "
            f"than this sonorisk reads ({BUNDLE_FORMAT_VERSION})",
        )
    check_name(metadata["name"], "name", meta_path)
    check_name(metadata["version"], "version", meta_path)
    files = metadata["files"]
    if not isinstance(files, dict):
        raise BundleError(meta_path, "'files' must map file names to {sha256, bytes}")
    for name, entry in files.items():
        _relative(name, meta_path)
        if name == METADATA:
            raise BundleError(meta_path, f"{METADATA} cannot list its own hash")
        if (
            not isinstance(entry, dict)
            or not re.fullmatch(r"[0-9a-f]{64}", str(entry.get("sha256")))
            or not isinstance(entry.get("bytes"), int)
        ):
            raise BundleError(
                meta_path, f"file entry {name!r} needs a sha256 (64 hex digits) and bytes"
            )
    for role in MODEL_FILES:
        model = metadata["models"].get(role) if isinstance(metadata["models"], dict) else None
        if not isinstance(model, dict) or model.get("file") not in files:
            raise BundleError(meta_path, f"models.{role}.file must name a listed file")
    for role in OPTIONAL_MODEL_FILES:
        model = metadata["models"].get(role)
        if model is not None and (not isinstance(model, dict) or model.get("file") not in files):
            raise BundleError(meta_path, f"models.{role}.file must name a listed file")
    return Bundle(path, metadata, hashlib.sha256(raw).hexdigest())


@dataclass
class Problem:
    file: str
    reason: str


@dataclass
class VerifyReport:
    bundle: Bundle
    problems: list[Problem] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)  # files in the folder not listed

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            first = self.problems[0]
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise BundleError(self.bundle.path / first.file, first.reason + more)


def check_file(bundle: Bundle, name: str) -> Problem | None:
    """One listed file against its size and sha256."""
    entry = bundle.files[name]
    path = bundle.path / name
    if not path.is_file():
        return Problem(name, "missing: listed in metadata.json but not in the bundle")
    size = path.stat().st_size
    if size != entry.bytes:
        return Problem(
            name,
            f"size {size} bytes, metadata.json says {entry.bytes}: the file was changed or damaged",
        )
    found = sha256_file(path)
    if found != entry.sha256:
        return Problem(
            name,
            f"sha256 {found} does not match metadata.json ({entry.sha256}): "
            "the file was changed or damaged",
        )
    return None


def verify_bundle(path: str | Path) -> VerifyReport:
    """Check every listed file (present, size, sha256); list unlisted files."""
    bundle = read_bundle(path)
    report = VerifyReport(bundle)
    for name in sorted(bundle.files):
        problem = check_file(bundle, name)
        if problem is not None:
            report.problems.append(problem)
    listed = set(bundle.files) | {METADATA}
    report.extras = sorted(
        p.relative_to(bundle.path).as_posix()
        for p in bundle.path.rglob("*")
        if p.is_file() and p.relative_to(bundle.path).as_posix() not in listed
    )
    return report


# ----------------------------------------------------------------- export
def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = _importlib_metadata.version(name)
        except _importlib_metadata.PackageNotFoundError:
            continue
    return out


def _check_info(info: dict[str, Any]) -> None:
    missing = [k for k in REQUIRED_INFO if not info.get(k)]
    if missing:
        raise BundleError("info", f"bundle info lacks {missing} (required: {list(REQUIRED_INFO)})")
    data = info["training_data"]
    if not isinstance(data, dict) or not all(
        data.get(k) for k in ("description", "licence", "citation")
    ):
        raise BundleError("info.training_data", "needs description, licence and citation")
    for name, metric in (info.get("metrics") or {}).items():
        if not isinstance(metric, dict) or "value" not in metric:
            raise BundleError(
                f"info.metrics.{name}", f"needs at least 'value' (fields: {list(METRIC_FIELDS)})"
            )
        unknown = set(metric) - set(METRIC_FIELDS)
        if unknown:
            raise BundleError(
                f"info.metrics.{name}",
                f"unknown fields {sorted(unknown)}; known: {list(METRIC_FIELDS)}",
            )


def _copy_still_classifier(source: str | Path, stage: Path) -> None:
    """The still classifier's envelope, as it is (its header names the detector it
    builds on by sha256: that must be the bundle's detector)."""
    from sonorisk.still_classifier.model import FORMAT, load_still_classifier

    target = stage / OPTIONAL_MODEL_FILES["still_classifier"]
    shutil.copyfile(source, target)
    detector = stage / MODEL_FILES["detector"]
    try:
        still = load_still_classifier(target, detector=detector)
    except InputError as exc:
        raise BundleError(source, f"not a still classifier for this bundle ({exc.reason})") from exc
    base = still.payload.get("base")
    if base and base.get("file") != detector.name:
        raise BundleError(
            source,
            f"builds on {base.get('file')!r}; in a bundle it must name "
            f"{detector.name!r} ({FORMAT})",
        )


def _model_summary(path: Path, role: str) -> dict[str, Any]:
    """What the card says about each model, read back from its envelope."""
    from sonorisk.models.envelope import read_model_file

    payload = read_model_file(path, what=f"{role} envelope")
    config = payload.get("config") or {}
    if role == "still_classifier":
        model = config.get("model") or {}
        return {
            "file": path.name,
            "format": payload.get("format"),
            "classes": payload.get("classes"),
            "subtypes": model.get("subtypes") or None,
            "backbone": model.get("backbone"),
            "stored": payload.get("stored"),
            "base": payload.get("base"),
            "crop": config.get("crop"),
            "stored_dtype": payload.get("stored_dtype"),
        }
    if role == "detector":
        model = config.get("model") or {}
        return {
            "file": path.name,
            "backend": payload.get("backend", "torchvision"),
            "architecture": model.get("architecture"),
            "backbone": model.get("backbone"),
            "input_min_size": model.get("min_size"),
            "weights_init": payload.get("weights_source", {}),
            "stored_dtype": payload.get("stored_dtype"),
        }
    return {
        "file": path.name,
        "kind": payload.get("kind"),
        "classes": payload.get("class_names"),
        "malignant_classes": payload.get("malignant_classes"),
        "clip": {
            k: (config.get("clips") or {}).get(k)
            for k in ("crop_size", "clip_len")
            if k in (config.get("clips") or {})
        },
        "weights_init": payload.get("weights_provenance", {}),
        "stored_dtype": payload.get("stored_dtype"),
    }


def export_bundle(
    detector_checkpoint: str | Path,
    classifier_checkpoint: str | Path,
    out_root: str | Path,
    name: str,
    version: str,
    info: dict[str, Any],
    dtype: str | None = "float16",
    *,
    extra_files: dict[str, str | Path] | None = None,
    force: bool = False,
    still_classifier: str | Path | None = None,
) -> Path:
    """Write the bundle ``out_root/name/version/`` from two training checkpoints
    (and, optionally, a still-classifier envelope: ``still_classifier``).

    ``info`` says what the bundle is (see docs/models.md): required ``task``,
    ``intended_use``, ``limitations``, ``training_data`` (``description``,
    ``licence``, ``citation``) and ``notice`` (the line every output carries);
    optional ``training`` (``command``, ``config``, ...), ``heldout_groups``,
    ``metrics`` (name -> ``{value, ci_low, ci_high, n, method, note}``),
    ``input_format``, ``output_format``, ``description``, ``licence``,
    ``package_versions`` (merged over the ones found here) and any other key
    (kept as is). ``extra_files`` (bundle-relative name -> source file) are
    copied in and hashed like the rest. Returns the bundle folder.
    """
    from sonorisk.models.card import render_card
    from sonorisk.models.convert import to_envelope

    out_root = Path(out_root)
    check_name(name, "name", "name")
    check_name(version, "version", "version")
    _check_info(info)
    target = out_root / name / version
    if target.exists() and not force:
        raise BundleError(target, "bundle already exists (pass force=True to replace it)")
    stage = out_root / name / f".{version}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        for role, source in (
            ("detector", detector_checkpoint),
            ("classifier", classifier_checkpoint),
        ):
            to_envelope(source, stage / MODEL_FILES[role], dtype=dtype, expect=role)
        if still_classifier is not None:
            _copy_still_classifier(still_classifier, stage)
        for rel, source in (extra_files or {}).items():
            rel = _relative(rel, Path("extra_files"))
            if rel in (METADATA, CARD, *MODEL_FILES.values(), *OPTIONAL_MODEL_FILES.values()):
                raise BundleError(source, f"extra file {rel!r} would replace a bundle file")
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, stage / rel)
        metadata = _metadata(stage, name, version, info, dtype)
        (stage / CARD).write_text(render_card(metadata))
        metadata["files"] = _hash_files(stage)
        (stage / METADATA).write_text(
            json.dumps(metadata, indent=2, sort_keys=False, allow_nan=False) + "\n"
        )
        verify_bundle(stage).raise_for_problems()
        if target.exists():
            shutil.rmtree(target)
        stage.rename(target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target


def _hash_files(folder: Path) -> dict[str, dict[str, Any]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != METADATA)
    return {
        p.relative_to(folder).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in files
    }


def _metadata(
    stage: Path, name: str, version: str, info: dict[str, Any], dtype: str | None
) -> dict[str, Any]:
    known = {
        "task",
        "intended_use",
        "limitations",
        "training_data",
        "training",
        "heldout_groups",
        "metrics",
        "input_format",
        "output_format",
        "notice",
        "package_versions",
        "description",
        "licence",
    }
    limitations = info["limitations"]
    metadata: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "name": name,
        "version": version,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "description": info.get("description", ""),
        "task": info["task"],
        "intended_use": info["intended_use"],
        "limitations": [limitations] if isinstance(limitations, str) else list(limitations),
        "notice": info["notice"],
        "licence": info.get(
            "licence", "Apache-2.0 (weights and code); the training data keeps its own licence"
        ),
        "training_data": info["training_data"],
        "training": info.get("training", {}),
        "heldout_groups": info.get("heldout_groups"),
        "metrics": {
            k: {f: v.get(f) for f in METRIC_FIELDS} for k, v in (info.get("metrics") or {}).items()
        },
        "input_format": info.get("input_format", DEFAULT_INPUT),
        "output_format": info.get("output_format", DEFAULT_OUTPUT),
        "weights": {"stored_dtype": dtype or "as trained", "loaded_dtype": "float32"},
        "models": {
            role: _model_summary(stage / file, role)
            for role, file in {**MODEL_FILES, **OPTIONAL_MODEL_FILES}.items()
            if (stage / file).is_file()
        },
        "package_versions": {**package_versions(), **(info.get("package_versions") or {})},
    }
    metadata.update({k: v for k, v in info.items() if k not in known})
    metadata["files"] = _hash_files(stage)  # weights and extras, for the card
    return metadata


DEFAULT_INPUT = (
    "B-mode breast ultrasound video (AVI, MP4, MOV, MPEG; DICOM cine; RTSP), "
    "any frame rate and size; see docs/video-input.md"
)
DEFAULT_OUTPUT = (
    "one JSON document per video (docs/score-schema.md): lesions with boxes, "
    "a confidence that each is a lesion, 8-frame clip malignancy "
    "probabilities, lesion risk (mean of its clips) and a video risk by the "
    "named risk_rule; low-confidence tracks are candidates, never scored; 'no "
    "scorable lesion' with the reason when no lesion gets a risk"
)
