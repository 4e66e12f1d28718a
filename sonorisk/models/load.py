"""Load the models to score with, and the cards that every output carries.

:func:`load_models` is what score, batch, the demo, the benchmarks and the
tests call; the serving deployments call :func:`load_detector_file` and
:func:`load_classifier_file` (one model per replica) and the ingress joins
their cards with :func:`scoring_cards`. One set of card functions for all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sonorisk.models.resolve import ResolvedModels, resolve_models, unrecorded_section
from sonorisk.runtime import Runtime, check_runtime, is_onnx
from sonorisk.runtime.sessions import OrtOptions


@dataclass
class ScoringModels:
    """A detector, a clip classifier and (when the bundle has one) a still
    classifier, with what reports must say about them."""

    detector: Any  # FrameDetector
    classifier: Any  # ClipScorer (pipeline.scorer)
    cards: dict[str, dict[str, Any]]
    resolved: ResolvedModels | None = field(default=None, repr=False)
    # sonorisk.still_classifier.StillClassifier; its card is cards["still_classifier"].
    still: Any | None = None

    def __post_init__(self) -> None:
        self.cards.setdefault("bundle", unrecorded_section())


def load_detector_file(
    path: str | Path,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
    runtime: Runtime = "torch",
    ort: OrtOptions | None = None,
) -> Any:
    """The detector of one checkpoint file (``.pt`` or envelope; torchvision or
    detectron2 backend), with its own inference settings on ``device``.
    ``overrides``: inference-time model knobs (``min_size``, ...). ``runtime``:
    ``onnx`` runs its backbone with ONNX Runtime (sonorisk.runtime; CPU only)."""
    from sonorisk.detector.predictor import load_detector_checkpoint

    check_runtime(runtime, device)
    if is_onnx(runtime):
        device = "cpu"
    detector = load_detector_checkpoint(path, None, overrides, device=device)
    return with_runtime(detector, path, runtime, ort)


def with_runtime(
    detector: Any, path: str | Path, runtime: Runtime, ort: OrtOptions | None = None
) -> Any:
    """``detector`` (loaded from ``path`` on the CPU) as ``runtime`` runs it: as it
    is for torch, its exported part on ONNX Runtime (in int8 for ``onnx-int8``)."""
    check_runtime(runtime, "cpu")
    if not is_onnx(runtime):
        return detector
    from sonorisk.models.bundle import sha256_file
    from sonorisk.runtime.onnx_detector import to_onnx_detector

    return to_onnx_detector(detector, path, sha256_file(path), ort, int8=runtime == "onnx-int8")


def load_classifier_file(
    path: str | Path, device: str = "cpu", runtime: Runtime = "torch", ort: OrtOptions | None = None
) -> Any:
    """The clip classifier of one checkpoint file; ``runtime: onnx`` as for the
    detector (``onnx-int8`` runs the classifier in float: its 3D convolutions
    were slower in int8, sonorisk.runtime.quantize)."""
    check_runtime(runtime, device)
    if is_onnx(runtime):
        from sonorisk.models.bundle import sha256_file
        from sonorisk.runtime.onnx_classifier import load_onnx_classifier

        return load_onnx_classifier(path, sha256_file(path), ort)
    from sonorisk.video_classifier.registry import load_classifier

    return load_classifier(path, device=device)


def load_still_file(
    path: str | Path, device: str = "cpu", detector: str | Path | None = None
) -> Any:
    """The still classifier of one file (it finds the detector it builds on beside
    it, or as ``detector``; its sha256 is checked)."""
    from sonorisk.still_classifier import load_still_classifier

    return load_still_classifier(path, device=device, detector=detector)


def still_missing_reason(models: ScoringModels) -> str:
    """Why ``models`` cannot score a still (for score_still's error)."""
    resolved = models.resolved
    named = resolved.label() if resolved is not None else "the models given"
    return (
        f"{named} has no still-image classifier (still_classifier.safetensors); use a "
        "bundle that has one (sonorisk-busi 1.3.0 or later: `sonorisk models list`)"
    )


def detector_card(detector: Any) -> dict[str, Any]:
    card = dict(detector.info)
    card["demonstration"] = bool((card.get("training") or {}).get("demonstration"))
    return card


def classifier_card(classifier: Any) -> dict[str, Any]:
    from sonorisk.video_classifier.registry import model_card

    card = model_card(classifier)
    card["demonstration"] = bool(card["training_data"].get("demonstration"))
    runtime = getattr(classifier, "runtime_info", None)  # set by runtime onnx only
    if runtime:
        card["runtime"] = dict(runtime)
    return card


def scoring_cards(
    detector: dict[str, Any], classifier: dict[str, Any], resolved: ResolvedModels | None
) -> dict[str, dict[str, Any]]:
    """The ``models`` section of a score document: both cards and the bundle."""
    return {
        "detector": detector,
        "classifier": classifier,
        "bundle": resolved.section() if resolved is not None else unrecorded_section(),
    }


def load_models(
    models: ResolvedModels | str | os.PathLike[str] | None = None,
    classifier: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    detector_overrides: dict[str, Any] | None = None,
    runtime: Runtime = "torch",
    ort: OrtOptions | None = None,
) -> ScoringModels:
    """Load the detector and the classifier.

    ``models``: a :class:`ResolvedModels`, or a spec for :func:`resolve_models`
    (None: the default bundle; a bundle name or folder). With ``classifier``,
    ``models`` is the detector file and ``classifier`` the classifier file.
    ``runtime``: ``torch`` (default) or ``onnx`` (ONNX Runtime on the CPU, graphs
    exported once and cached; ``ort``: its threads and cache folder).
    """
    if isinstance(models, ResolvedModels):
        resolved = models
    elif classifier is not None:
        if models is None:
            raise TypeError("load_models(detector, classifier): the detector file is missing")
        resolved = resolve_models(None, Path(models), Path(classifier))
    else:
        resolved = resolve_models(models)
    detector = load_detector_file(
        resolved.detector, device, resolved.detector_settings(detector_overrides), runtime, ort
    )
    clip_classifier = load_classifier_file(resolved.classifier, device, runtime, ort)
    cards = scoring_cards(detector_card(detector), classifier_card(clip_classifier), resolved)
    still = None
    if resolved.still_classifier is not None:
        from sonorisk.still_classifier import still_card

        still = load_still_file(
            resolved.still_classifier, "cpu" if is_onnx(runtime) else device, resolved.detector
        )
        cards["still_classifier"] = still_card(still)
    return ScoringModels(detector, clip_classifier, cards, resolved, still)
