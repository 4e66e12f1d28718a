"""Lesion clips and the clip classifiers (WAUVE's I3D-R50 and its comparators).

- ``clips``: the clip builder (paper's 8-frame rule; incremental; numpy only).
- ``base``: the one interface, ``ClipClassifier.predict(clips) -> list[ClipScore]``.
- ``i3d``, ``lite3d``, ``timesformer``, ``static2d``, ``pca_svm``: the model families,
  each one entry of ``config.CLASSIFIER_KINDS`` (the kind registry).
- ``registry``: ``build_classifier``, ``save_checkpoint``, ``load_classifier``, ``model_card``.
- ``train``: ``train_on_clips``, ``train_from_dataset`` (``sonorisk train classifier``).

Submodules are imported on use so that ``import sonorisk.video_classifier.clips``
does not load torch.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "ClipBuilder": "sonorisk.video_classifier.clips",
    "ClipConfig": "sonorisk.video_classifier.clips",
    "clips_from_track": "sonorisk.video_classifier.clips",
    "ClassifierConfig": "sonorisk.video_classifier.config",
    "ClassifierKind": "sonorisk.video_classifier.config",
    "register_classifier_kind": "sonorisk.video_classifier.config",
    "ClipClassifier": "sonorisk.video_classifier.base",
    "build_classifier": "sonorisk.video_classifier.registry",
    "load_classifier": "sonorisk.video_classifier.registry",
    "model_card": "sonorisk.video_classifier.registry",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sonorisk.video_classifier' has no attribute {name!r}")
