"""The 2D still classifier (issue 17): P(malignant) of a lesion crop of a still
image, with a CAM heatmap and, where trained, subtype probabilities.

See docs/classifiers.md (the still classifier) and docs/models.md. Names are
imported on first use, so ``sonorisk --help`` (which registers this package's
verbs) does not import torch.
"""

from __future__ import annotations

from sonorisk.lazy import lazy_exports

_LAZY = {
    "StillClassifierConfig": "sonorisk.still_classifier.config",
    "StillClassifier": "sonorisk.still_classifier.model",
    "StillFileError": "sonorisk.still_classifier.model",
    "StillScore": "sonorisk.still_classifier.model",
    "build_still_classifier": "sonorisk.still_classifier.model",
    "load_still_classifier": "sonorisk.still_classifier.model",
    "still_card": "sonorisk.still_classifier.model",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)
