"""Export torch modules to ONNX once, and find the export again by the model file's sha256.

A graph is named ``<role>-<sha256 of the model file>-e<EXPORT_VERSION>-opset<OPSET>.onnx``
in the cache folder (``$SONORISK_ONNX_CACHE``, else ``onnx/`` in sonorisk's
user cache folder), never beside the model: bundled models live inside the
installed package, which must stay as shipped. The same model file therefore
exports once per machine; a changed file (another sha256) or a change to what
is exported (``EXPORT_VERSION``) exports again. Writes go to a temporary file
that is renamed into place, so two processes loading at once never see half a
graph (each writes a whole one; the last rename wins).

Exporter: torch's TorchScript-based exporter (``dynamo=False``). With torch
2.14 it exports the detector backbone in about 1 s and needs only ``onnx``;
the torch.export-based exporter (torch's default since 2.9) also exported it,
and ONNX Runtime gave the same maps, but took 16 s and needs the extra
package ``onnxscript``. Torch marks the TorchScript exporter deprecated: when
it goes, switch to ``dynamo=True`` with ``dynamic_shapes`` (and add onnxscript).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sonorisk.errors import ConfigError
from sonorisk.runtime.sessions import OrtOptions, import_module

ENV_CACHE = "SONORISK_ONNX_CACHE"
# Bump when an exported graph would change for the same model file (other
# outputs, another wrapper): cached graphs of older versions are then ignored.
EXPORT_VERSION = 2
OPSET = 17


def cache_dir() -> Path:
    """Where exported graphs are kept by default."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    from sonorisk.models.store import user_cache_root

    return user_cache_root() / "onnx"


@dataclass(frozen=True)
class ExportJob:
    """A module to export and how its graph's inputs and outputs are named."""

    module: torch.nn.Module
    example: tuple[torch.Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    # name -> {axis: symbolic name}: the axes that may change size between calls.
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)


def graph_path(role: str, sha256: str, options: OrtOptions) -> Path:
    folder = options.cache_dir if options.cache_dir is not None else cache_dir()
    return Path(folder) / f"{role}-{sha256}-e{EXPORT_VERSION}-opset{OPSET}.onnx"


def cached_export(
    role: str, source: Path, sha256: str, make_job: Callable[[], ExportJob], options: OrtOptions
) -> Path:
    """The graph of ``source`` for ``role``: from the cache, or exported now
    (``make_job`` is called only then)."""
    path = graph_path(role, sha256, options)
    if path.is_file():
        return path
    _refuse_package_folder(path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            ENV_CACHE,
            f"cannot create the ONNX cache folder {path.parent} "
            f"({exc}); set {ENV_CACHE} to a writable folder",
        ) from exc
    job = make_job()
    write_graph(
        path,
        lambda tmp: export(job, tmp),
        {
            "sonorisk.role": role,
            "sonorisk.source": str(source),
            "sonorisk.source_sha256": sha256,
            "sonorisk.export_version": str(EXPORT_VERSION),
            "sonorisk.torch": torch.__version__,
        },
    )
    return path


def write_graph(path: Path, make: Callable[[Path], None], metadata: dict[str, str]) -> None:
    """``make`` writes a graph to a temporary file beside ``path``, which is stamped
    with ``metadata`` and renamed into place: processes loading at once never
    read half a graph."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.stem + ".", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        make(tmp)
        stamp(tmp, metadata)
        tmp.chmod(0o644)  # mkstemp makes it 0600; other users' workers read the cache too
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def export(job: ExportJob, path: Path) -> None:
    """``job.module`` traced on ``job.example`` and written as ONNX to ``path``."""
    job.module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        # The exporter warns that it is deprecated, and the tracer about Python
        # values it records as constants (e.g. the clip length, fixed per model).
        # Agreement with torch is what the tests check instead.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            job.module,
            job.example,
            str(path),
            input_names=job.input_names,
            output_names=job.output_names,
            dynamic_axes=job.dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def stamp(path: Path, metadata: dict[str, str]) -> None:
    """Provenance in the graph's metadata (``onnx`` tools and ``get_modelmeta`` show it)."""
    onnx = import_module("onnx")
    model = onnx.load(str(path))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def _refuse_package_folder(folder: Path) -> None:
    from sonorisk.models.store import bundled_dir

    resolved, package = folder.resolve(), bundled_dir().resolve()
    if resolved == package or package in resolved.parents:
        raise ConfigError(
            ENV_CACHE,
            f"{folder} is inside the bundled models folder; exported "
            "graphs go to a cache folder, never into the package",
        )
