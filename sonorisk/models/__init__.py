"""Released models: bundles, the one loader, and model files that cannot run code.

- ``envelope``: the safetensors checkpoint envelope and :func:`read_model_file`,
  the one reader of model files (``weights_only`` torch files or safetensors).
- ``convert``: training checkpoints -> envelopes.
- ``bundle``: the bundle folder (``metadata.json``, model card, sha256 of every
  file), :func:`export_bundle`, :func:`verify_bundle`.
- ``store``: bundled and installed bundles (``SONORISK_MODELS``), the default.
- ``install``: install a bundle from a folder, an archive or an https URL.
- ``resolve``: :func:`resolve_models`, what ``--models NAME|DIR`` means everywhere.
- ``load``: :func:`load_models` and the model cards every output carries.

Submodules import torch only when they need it.
"""

from __future__ import annotations

from sonorisk.lazy import lazy_exports

_LAZY = {
    "read_model_file": "sonorisk.models.envelope",
    "read_envelope": "sonorisk.models.envelope",
    "write_envelope": "sonorisk.models.envelope",
    "export_bundle": "sonorisk.models.bundle",
    "read_bundle": "sonorisk.models.bundle",
    "verify_bundle": "sonorisk.models.bundle",
    "install_bundle": "sonorisk.models.install",
    "list_bundles": "sonorisk.models.store",
    "resolve_models": "sonorisk.models.resolve",
    "ResolvedModels": "sonorisk.models.resolve",
    "load_models": "sonorisk.models.load",
    "ScoringModels": "sonorisk.models.load",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)
