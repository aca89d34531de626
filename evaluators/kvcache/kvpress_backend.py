"""Any press of the kvpress library as a technique (``technique: kvpress``), for sweeping presses
this platform does not implement itself.

kvpress compresses through forward hooks on the attention modules during prefill; here its
press wraps only the prefill, and decoding continues in the platform's own loop at true
positions, measured like every other technique. The library is an optional extra
(``pip install 'llm-sweeps[kvpress]'``); kvpress 0.5.5 requires transformers < 5.3.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from evaluators.kvcache.base import TECHNIQUES, KVTechnique

MISSING = (
    "technique kvpress needs the kvpress package: pip install 'llm-sweeps[kvpress]' "
    "(kvpress 0.5.5 pins transformers<5.3, so use a separate environment)"
)


def available_presses() -> dict[str, type]:
    import kvpress

    return {name: obj for name, obj in vars(kvpress).items() if name.endswith("Press") and isinstance(obj, type)}


@TECHNIQUES.register
@dataclass
class KVPress(KVTechnique):
    """A kvpress press by class name, with its parameters in ``press_args``."""

    name = "kvpress"
    supports_kv_bits = False  # presses prune the plain cache layers they find
    shares_prefill = False  # the press hooks the model and prunes the one cache it prefills

    #: class name of a kvpress press, e.g. SnapKVPress or ExpectedAttentionPress
    press: str = "SnapKVPress"
    #: the press's own parameters, e.g. {compression_ratio: 0.5}
    press_args: dict[str, Any] = field(default_factory=dict)

    def check(self) -> list[tuple]:
        if importlib.util.find_spec("kvpress") is None:
            return [("press", MISSING)]
        presses = available_presses()
        if self.press not in presses:
            return [("press", "unknown press", sorted(presses))]
        cls = presses[self.press]
        accepted = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
        unknown = sorted(set(self.press_args) - set(accepted))
        if unknown:
            return [
                (
                    "press_args",
                    f"{self.press} has no parameter(s) {', '.join(unknown)}; its parameters: "
                    f"{', '.join(accepted) or 'none'}",
                )
            ]
        try:
            cls(**self.press_args)
        except Exception as exc:  # the press's own validation, in its words
            return [("press_args", f"{self.press}({self.press_args}) is invalid: {exc}")]
        return []

    def label(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in sorted(self.press_args.items()))
        return " ".join(part for part in ("kvpress", self.press, args) if part)

    def prefill(self, model: Any) -> AbstractContextManager:
        """kvpress's hooks, active while the prompt is prefilled."""
        return available_presses()[self.press](**self.press_args)(model)
