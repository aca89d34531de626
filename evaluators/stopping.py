"""Stopping at the first line break after an answer, as HELMET does for short-answer tasks.

Which token ids end a line depends on the tokenizer (``\\n`` alone, or glued to other text in
byte-level BPE), so the sets are computed once per tokenizer from its vocabulary. A line
break before any visible text does not stop: models often open with a newline.
"""

from __future__ import annotations

from dataclasses import dataclass
from weakref import WeakKeyDictionary

from transformers import PreTrainedTokenizerBase

_BY_TOKENIZER: WeakKeyDictionary = WeakKeyDictionary()


@dataclass(frozen=True)
class LineStop:
    """Token ids that contain a line break, and ids that show nothing but whitespace."""

    line_breaks: frozenset[int]
    blanks: frozenset[int]

    @classmethod
    def for_tokenizer(cls, tokenizer: PreTrainedTokenizerBase) -> LineStop:
        if tokenizer not in _BY_TOKENIZER:
            texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
            _BY_TOKENIZER[tokenizer] = cls(
                line_breaks=frozenset(i for i, t in enumerate(texts) if "\n" in t),
                blanks=frozenset(i for i, t in enumerate(texts) if not t.strip()),
            )
        return _BY_TOKENIZER[tokenizer]

    def __call__(self, generated: list[int]) -> bool:
        """Whether generation should stop after the last token of ``generated``."""
        return generated[-1] in self.line_breaks and any(t not in self.blanks for t in generated)
