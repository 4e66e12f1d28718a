"""Names a package exports but imports only on first use.

``sonorisk --help`` registers every package's verbs; importing a package must
not import torch, pandas or Ray until one of its names is really used. A
package lists ``{name: module}`` and sets ``__getattr__ = lazy_exports(__name__,
that_mapping)`` (PEP 562).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``names[name]`` when ``name`` is first asked for."""

    def __getattr__(name: str) -> Any:  # noqa: ANN401 - any exported object
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
