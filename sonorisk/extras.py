"""Install extras: what scoring alone does not need, and the error when one is missing.

``pip install sonorisk`` scores videos (``score``, ``batch``, ``demo``,
training, evaluation). The service, the reader study and the TimeSformer
classifier bring large stacks of their own, so they come as extras
(pyproject.toml): ``[serve]``, ``[study]``, ``[timesformer]``, or ``[all]``.
Code that needs one imports it through :func:`import_extra` (or checks with
:func:`require_extra` before starting work), so a missing extra is one clear
line naming the pip command, not a traceback from deep inside an import.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from sonorisk.errors import SonoriskError

# The modules each extra provides that sonorisk imports (pyproject.toml lists
# the distributions; tests/test_extras.py checks the two agree).
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("ray", "ray.serve", "fastapi", "prometheus_client", "sqlalchemy"),
    "study": ("sqlalchemy", "fastapi", "uvicorn", "jinja2"),
    "timesformer": ("transformers",),
}
# What each extra is for, in the error message.
PURPOSE = {
    "serve": "the HTTP service (sonorisk serve) and batch --ray",
    "study": "the reader study (sonorisk reader-study)",
    "timesformer": "the TimeSformer clip classifier",
}


class MissingExtraError(SonoriskError):
    """A feature needs an extra that is not installed."""

    def __init__(self, extra: str, module: str, what: str | None = None) -> None:
        self.extra, self.module = extra, module
        super().__init__(
            f"{what or PURPOSE[extra]} needs the '{extra}' extra ({module} is not installed): "
            f"pip install 'sonorisk[{extra}]'"
        )


def extras_of(module: str) -> list[str]:
    """The extras that provide ``module`` (or the package it is part of)."""
    top = module.split(".")[0]
    return [
        extra for extra, modules in EXTRAS.items() if any(m.split(".")[0] == top for m in modules)
    ]


def extra_of(module: str) -> str | None:
    """An extra that provides ``module``; None: none does (a bug, not a missing extra)."""
    found = extras_of(module)
    return found[0] if found else None


def import_extra(module: str, extra: str, what: str | None = None) -> ModuleType:
    """``importlib.import_module(module)``, or :class:`MissingExtraError` naming ``extra``."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {sorted(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or module
        # Only a module of the extra counts: a module missing for another reason
        # (a bug, a broken install) must not read as "install the extra".
        if extra not in extras_of(missing):
            raise
        raise MissingExtraError(extra, missing, what) from exc


def require_extra(extra: str, what: str | None = None) -> None:
    """Import every module of ``extra`` now: fail before any work when one is missing."""
    for module in EXTRAS[extra]:
        import_extra(module, extra, what)
