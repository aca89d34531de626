"""llm-sweeps: sweeps for LLM efficiency research, and reading them back.

``sweeps.load(name, storage="./runs")`` gives a finished or running sweep as a ``Study``:
its plan, the trials' statuses, ``to_pandas()`` and ``report()``. ``sweeps.plan_file(path)``
plans a sweep file as ``sweeps launch`` would, without running it. Imports stay cheap: the
study modules (pandas, plotly, matplotlib) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweeps.study import Study, load
    from sweeps.sweep_file import plan_file

__all__ = ["Study", "load", "plan_file"]


#: where each public name lives, imported on first use
_HOMES = {"Study": "sweeps.study", "load": "sweeps.study", "plan_file": "sweeps.sweep_file"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'sweeps' has no attribute {name!r}")
