"""The still-image classifier in the ingress (upload jobs of still images).

Video jobs send their model calls to the Detector and Classifier deployments;
a still image needs one detector call (through the same deployment) and one
small 2D classification per lesion, which the ingress makes itself with the
bundle's still classifier (``still_classifier.safetensors``), loaded once per
ingress replica, on the CPU.
"""

from __future__ import annotations

from typing import Any


def has_still_classifier(resolved: Any) -> bool:
    """Whether the served models (``sonorisk.models.resolve.ResolvedModels``) include a
    still classifier; without one still uploads are refused."""
    return getattr(resolved, "still_classifier", None) is not None


def load_still_model(resolved: Any) -> Any:
    """The bundle's still classifier on the CPU, or None when it has none."""
    if not has_still_classifier(resolved):
        return None
    from sonorisk.models.load import load_still_file

    return load_still_file(resolved.still_classifier, "cpu", resolved.detector)


def attach_still(models: Any, still: Any) -> None:
    """Give ``ScoringModels`` the still classifier and its card (nothing when None:
    scoring a still then fails saying the models have no still classifier)."""
    if still is None:
        return
    from sonorisk.still_classifier import still_card

    models.still = still
    models.cards["still_classifier"] = still_card(still)
