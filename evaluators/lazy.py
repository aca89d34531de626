"""A module that is imported when first used, not when its importer is.

The KV-cache technique modules hold both a technique's parameters (a dataclass that
`sweeps plan` validates every trial against) and its tensor code. Importing torch for the
parameters alone costs seconds per command on every `sweeps plan`, `status` or `list`; with
``torch = lazy_module("torch")`` torch is imported the first time a technique computes.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for the module ``name``; the first attribute read imports it, later reads go straight to it."""

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __reduce__(self) -> tuple:
        return (LazyModule, (self._name,))

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not yet imported"
        return f"<lazy module {self._name!r} ({state})>"


def lazy_module(name: str) -> Any:
    """``name`` as a stand-in that imports it on first use (typed ``Any``: type checkers see the real
    module through an ``if TYPE_CHECKING: import ...`` beside it)."""
    return LazyModule(name)
