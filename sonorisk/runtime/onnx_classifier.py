"""A GAP clip classifier (i3d, lite3d, static2d) run by ONNX Runtime behind ``predict``.

The exported graph is the model's own ``score_batch`` with heatmaps on: one
pass through the trunk gives the class logits, the class activation map of the
malignant evidence (``B x t x h x w``: a GAP head's CAM is one weighted sum of
the last feature maps, cheap enough to always compute) and, when the model
has one, the lesion check's logit. The batch axis is dynamic; clip length and
crop size are fixed by the model's clip config, as in torch.

:class:`OnnxClipClassifier` is a :class:`ClipClassifier` without a trunk: the
inherited ``predict`` (validation, normalisation, softmax, heatmap resizing,
``ClipScore`` records) is the very code the torch model runs; only
``score_batch`` calls ONNX Runtime. Models without a GAP head (timesformer,
pca-svm) get gradient-based heatmaps, which a forward-only graph cannot give:
runtime onnx refuses them with a clear error.

A second load finds the exported graph by the file's sha256 and builds no
torch model at all: the checkpoint gives config and provenance, the graph the
rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sonorisk.errors import ConfigError
from sonorisk.runtime.onnx_export import ExportJob, cached_export, graph_path
from sonorisk.runtime.sessions import OrtOptions, make_session, runtime_info
from sonorisk.video_classifier.base import ClipClassifier, GAPClassifier
from sonorisk.video_classifier.config import ClassifierConfig

ROLE = "classifier"
INPUT = "clips"
LOGITS, CAM, LESION = "logits", "cam", "lesion"


class _ScoreBatch(nn.Module):
    """``GAPClassifier.score_batch(x, heatmaps=True)`` as a module (what export traces)."""

    def __init__(self, model: GAPClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, cam, lesion = self.model.score_batch(x, heatmaps=True)
        assert cam is not None
        return (logits, cam) if lesion is None else (logits, cam, lesion)


def export_job(model: GAPClassifier) -> ExportJob:
    t, size, _, _ = model.expected_shape()
    example = torch.zeros(2, 3, t, size, size)
    outputs = [LOGITS, CAM] + ([LESION] if model.lesion_head is not None else [])
    return ExportJob(
        _ScoreBatch(model.eval()),
        (example,),
        [INPUT],
        outputs,
        {name: {0: "batch"} for name in [INPUT, *outputs]},
    )


class OnnxClipClassifier(ClipClassifier):
    """Same interface and outputs as the torch classifier it was exported from."""

    def __init__(
        self, config: ClassifierConfig, kind: str, session: Any, runtime: dict[str, Any]
    ) -> None:
        super().__init__(config)
        # The torch model's kind (a class attribute there): cards name the model
        # that was trained, and ``runtime`` says how it ran.
        self.kind = kind  # type: ignore[misc]  # shadows the ClassVar on purpose
        self.session = session
        self.runtime_info = runtime
        self.has_lesion_check = LESION in {o.name for o in session.get_outputs()}

    def _run(self, x: torch.Tensor, names: list[str]) -> list[torch.Tensor]:
        feed = np.ascontiguousarray(x.detach().float().cpu().numpy())
        return [torch.from_numpy(a) for a in self.session.run(names, {INPUT: feed})]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, [LOGITS])[0]

    def evidence(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, cam = self._run(x, [LOGITS, CAM])
        return logits, cam

    def score_batch(
        self, x: torch.Tensor, heatmaps: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        names = [LOGITS] + ([CAM] if heatmaps else []) + ([LESION] if self.has_lesion_check else [])
        found = dict(zip(names, self._run(x, names), strict=True))
        return found[LOGITS], found.get(CAM), found.get(LESION)


def load_onnx_classifier(
    path: str | Path, sha256: str, options: OrtOptions | None = None
) -> OnnxClipClassifier:
    """The classifier checkpoint at ``path`` (sha256 ``sha256``) run by ONNX Runtime."""
    from sonorisk.video_classifier.registry import (
        checkpoint_info,
        config_from_checkpoint,
        read_checkpoint,
    )

    options = options or OrtOptions()
    payload = read_checkpoint(path)
    graph = graph_path(ROLE, sha256, options)
    if not graph.is_file():
        graph = _export(Path(path), sha256, options)
    classifier = OnnxClipClassifier(
        config_from_checkpoint(payload, str(path)),
        str(payload.get("kind")),
        make_session(graph, options),
        runtime_info(graph, options, "whole forward: logits, CAM and lesion check (ONNX)"),
    )
    classifier.provenance = dict(payload.get("weights_provenance", {}))
    classifier.checkpoint_info = checkpoint_info(payload)
    return classifier.eval()


def _export(path: Path, sha256: str, options: OrtOptions) -> Path:
    from sonorisk.video_classifier.registry import load_classifier

    model = load_classifier(path)
    if not isinstance(model, GAPClassifier):
        # Only a GAP head gives its heatmap without gradients (see the module docstring).
        raise ConfigError(
            "runtime",
            f"runtime onnx supports GAP classifiers (i3d, lite3d, "
            f"static2d), not {model.kind!r} ({path})",
        )
    return cached_export(ROLE, path, sha256, lambda: export_job(model), options)
