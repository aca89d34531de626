"""Scoring functions shared by every task (and by GRPO rewards)."""

from __future__ import annotations

import re
import string

_SPACE = re.compile(r"\s+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize(text: str) -> str:
    """Lowercase, drop punctuation and articles, squeeze whitespace (SQuAD-style)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = _ARTICLES.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def substring_exact_match(answer: str, gold: list[str]) -> float:
    """1.0 when any gold answer appears in the normalized output (HELMET's SubEM)."""
    norm = normalize(answer)
    return float(any(normalize(g) and normalize(g) in norm for g in gold))


def exact_match(answer: str, gold: list[str]) -> float:
    """1.0 when the normalized output equals a normalized gold answer."""
    norm = normalize(answer)
    return float(any(norm == normalize(g) for g in gold))


def is_empty(answer: str) -> bool:
    """An answer with no visible characters: the failure quantized models hide behind a score of 0."""
    return not answer.strip()
