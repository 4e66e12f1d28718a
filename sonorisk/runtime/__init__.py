"""Inference runtimes: the torch models as trained, or the same models run by ONNX Runtime.

``runtime: torch`` (the default) runs the models as they are loaded.
``runtime: onnx`` exports them to ONNX once (cached by the model file's
sha256, :mod:`sonorisk.runtime.onnx_export`) and runs the exported graphs with
ONNX Runtime on the CPU, behind the interfaces the pipeline already uses:

- detector (:mod:`sonorisk.runtime.onnx_detector`): the backbone + FPN (the
  heavy part) runs in ONNX Runtime; torchvision's transform, RPN, ROI heads
  and postprocessing stay in torch, so ``FrameDetector.predict`` is unchanged;
- clip classifier (:mod:`sonorisk.runtime.onnx_classifier`): the whole
  forward of a GAP classifier (i3d, lite3d, static2d) with its class
  activation map and lesion check, behind ``ClipClassifier.predict``.

``runtime: onnx-int8`` is ``onnx`` with the detector's graph quantized to
8-bit integers (:mod:`sonorisk.runtime.quantize`); the classifier stays in
float.

``docs/runtime.md`` has the agreement with torch and the measured speed.
Needs the ``onnx`` extra (``pip install 'sonorisk[onnx]'``).
"""

from __future__ import annotations

from typing import Literal, cast, get_args

from sonorisk.errors import ConfigError

Runtime = Literal["torch", "onnx", "onnx-int8"]
RUNTIMES: tuple[str, ...] = get_args(Runtime)


def is_onnx(runtime: str) -> bool:
    """Whether ``runtime`` runs the models with ONNX Runtime (on the CPU)."""
    return runtime.startswith("onnx")


def check_runtime(runtime: str, device: str) -> Runtime:
    """``runtime`` if it is known and can run on ``device``; a clear error otherwise."""
    if runtime not in RUNTIMES:
        raise ConfigError(
            "runtime", f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}"
        )
    if is_onnx(runtime):
        if device not in ("cpu", "auto"):  # auto: the CPU, the only place onnx runs
            raise ConfigError(
                "runtime",
                f"runtime {runtime} runs on the CPU only (device "
                f"{device!r} asked for); use runtime torch for a GPU",
            )
        from sonorisk.runtime.sessions import import_module

        # Fail before any export work when a package is missing.
        import_module("onnxruntime")
        import_module("onnx")
    return cast(Runtime, runtime)  # one of RUNTIMES (checked above)
