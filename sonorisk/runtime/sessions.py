"""ONNX Runtime sessions made one way: CPU, threads sized like torch's, no spinning."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from sonorisk.errors import ConfigError

EXTRA_HINT = "pip install 'sonorisk[onnx]' (onnxruntime and onnx)"


class MissingRuntimeError(ConfigError):
    """``runtime: onnx`` was asked for but onnxruntime (or onnx) is not installed."""


def import_module(name: str) -> ModuleType:
    """``onnxruntime`` or ``onnx``, or an error that names the pip extra."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingRuntimeError(
            "runtime",
            f"runtime onnx needs the Python package {name}, which is not installed: {EXTRA_HINT}",
        ) from exc


@dataclass(frozen=True)
class OrtOptions:
    """How the ONNX Runtime sessions run and where the exported graphs are kept."""

    # Intra-op threads; None: torch.get_num_threads() when the session is made,
    # so the thread sizing every entry point already does for torch holds here too.
    threads: int | None = None
    # Folder of exported graphs; None: sonorisk.runtime.onnx_export.cache_dir().
    cache_dir: Path | None = None

    def resolved_threads(self) -> int:
        if self.threads is not None:
            return max(1, self.threads)
        import torch

        return max(1, torch.get_num_threads())


def make_session(path: Path, options: OrtOptions) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU for the graph at ``path``."""
    ort = import_module("onnxruntime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.resolved_threads()
    # One model call at a time per process: parallelism comes from intra-op
    # threads (and from more worker processes), never from a second pool.
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ONNX Runtime's pool threads spin between ops by default, the same cliff as
    # OpenMP's on a shared machine (sonorisk.threads); they sleep instead.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def runtime_info(path: Path, options: OrtOptions, exported: str) -> dict[str, Any]:
    """What a model card says about the runtime: package, version, graph, threads."""
    ort = import_module("onnxruntime")
    return {
        "name": "onnxruntime",
        "version": ort.__version__,
        "exported": exported,
        "graph": path.name,
        "threads": options.resolved_threads(),
    }
