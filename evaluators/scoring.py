"""Scoring functions shared by every task and by GRPO rewards: one implementation of each metric.

Text metrics follow the conventions of the studies this platform reproduces: SQuAD-style
normalization for exact match and F1, substring exact match as HELMET uses it for recall
tasks, ROUGE-L as LCS F-measure over tokens, NDCG@10 for re-ranking. Extraction helpers pull
the answer out of free text (``\\boxed{}``, JSON, numbers) and say when there is none, so a
missing answer is a format failure rather than a silent zero.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

_SPACE = re.compile(r"\s+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def normalize(text: str) -> str:
    """Lowercase, drop punctuation and articles, squeeze whitespace (SQuAD-style)."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return _SPACE.sub(" ", _ARTICLES.sub(" ", text)).strip()


def tokens(text: str) -> list[str]:
    return normalize(text).split()


def is_empty(answer: str) -> bool:
    """An answer with no visible characters: the failure quantized models hide behind a score of 0."""
    return not answer.strip()


# -- text matching ---------------------------------------------------------------------------------
def exact_match(answer: str, gold: Iterable[str]) -> float:
    """1.0 when the normalized output equals a normalized gold answer."""
    norm = normalize(answer)
    return float(any(norm == normalize(g) for g in gold))


def substring_exact_match(answer: str, gold: Iterable[str]) -> float:
    """1.0 when any gold answer appears in the normalized output (HELMET's SubEM)."""
    norm = normalize(answer)
    return float(any(normalize(g) and normalize(g) in norm for g in gold))


def f1(answer: str, gold: Iterable[str]) -> float:
    """Token-level F1 against the best-matching gold answer (SQuAD)."""
    predicted = tokens(answer)
    best = 0.0
    for reference in gold:
        expected = tokens(reference)
        if not predicted or not expected:
            best = max(best, float(predicted == expected))
            continue
        common = sum((Counter(predicted) & Counter(expected)).values())
        if common:
            precision, recall = common / len(predicted), common / len(expected)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(answer: str, gold: Iterable[str]) -> float:
    """ROUGE-L F-measure (longest common subsequence of tokens) against the best gold answer."""
    predicted = tokens(answer)
    best = 0.0
    for reference in gold:
        expected = tokens(reference)
        if not predicted or not expected:
            continue
        common = _lcs(predicted, expected)
        if common:
            precision, recall = common / len(predicted), common / len(expected)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def accuracy(answer: str | None, gold: Iterable[str]) -> float:
    """1.0 when an extracted label equals a gold label (case and punctuation ignored)."""
    return 0.0 if answer is None else exact_match(answer, gold)


# -- ranking ---------------------------------------------------------------------------------------
def ndcg_at_k(ranking: Sequence[str], relevance: Mapping[str, float], k: int = 10) -> float:
    """NDCG@k of a ranked list of ids, given graded relevance of the relevant ids."""
    seen: set[str] = set()
    gains = []
    for doc in ranking:
        if doc not in seen:  # a repeated id earns nothing the second time
            seen.add(doc)
            gains.append(relevance.get(doc, 0.0))
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))
    ideal = sorted(relevance.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


# -- extraction ------------------------------------------------------------------------------------
def extract_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced; None if absent."""
    found = None
    for match in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                found = text[start:i].strip()
                break
    return found


def numbers_equal(a: float | None, b: float | None, tolerance: float = 1e-6) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def extract_json(text: str) -> object | None:
    """The first JSON object or array in ``text`` (fenced or bare); None when there is none."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, flags=re.DOTALL)
    candidates = [fenced.group(1)] if fenced else []
    candidates.append(text)
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for match in re.finditer(r"[\[{]", candidate):
            try:
                value, _ = decoder.raw_decode(candidate, match.start())
            except json.JSONDecodeError:
                continue
            return value
    return None


# -- reasoning models ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Thinking:
    """An output split into its reasoning and its answer."""

    answer: str
    thinking: str
    present: bool
    unfinished: bool


def split_thinking(text: str, opened_by_prompt: bool = False) -> Thinking:
    """Strip a reasoning model's thinking (up to ``</think>``) before scoring.

    ``opened_by_prompt``: the chat template already wrote ``<think>`` into the prompt (as
    DeepSeek-R1 distills do), so the output starts inside the thinking. Thinking that never
    closes leaves no answer: the sample is empty and counted as unfinished.
    """
    if THINK_CLOSE in text:
        thinking, _, answer = text.rpartition(THINK_CLOSE)
        return Thinking(answer.strip(), thinking.replace(THINK_OPEN, "").strip(), True, False)
    if THINK_OPEN in text or opened_by_prompt:
        return Thinking("", text.replace(THINK_OPEN, "").strip(), True, True)
    return Thinking(text.strip(), "", False, False)


# -- answers on a line, numbers written alone, math answers -----------------------------------------
def answer_line(text: str, prefix: str = "Answer:") -> str | None:
    """The answer line: the first non-blank text after ``prefix`` (its own line or the next), else the first line.

    Benchmarks that stop generation at the first newline (HELMET's RAG, re-rank and ICL) score
    this line only; here the model may go on, and what it writes after is not scored. The prefix
    is matched case-insensitively and also stripped when the model repeats it. None when blank.
    """
    marker = re.search(re.escape(prefix), text, flags=re.IGNORECASE)
    rest = text[marker.end() :] if marker else text
    line = next((candidate for candidate in rest.splitlines() if candidate.strip()), "")
    line = re.sub(r"^\s*" + re.escape(prefix), "", line.strip(), flags=re.IGNORECASE).strip()
    return line or None


_LATEX_NOISE = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\ |\$|\s+")
_WHOLE_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?%?")


def _strip_latex(text: str) -> str:
    text = _LATEX_NOISE.sub("", text)
    text = re.sub(r"\\[dt]frac", r"\\frac", text)
    text = re.sub(r"\\text\{([^{}]*)\}", r"\1", text)
    text = text.replace("^\\circ", "").replace("^{\\circ}", "")
    return text.rstrip(".")


def as_number(text: str | None) -> float | None:
    """``text`` as a number when it is nothing but one (``1,234``, ``-0.5``, ``3/4``, ``\\frac{3}{4}``, ``45%``).

    Strict on purpose: ``\\frac{\\pi}{2}``, ``x + 1`` or ``12 apples`` are not numbers here, so
    comparing two answers numerically is only done when both really are numbers
    (:func:`math_number` first removes an answer's form, such as its unit).
    """
    if text is None:
        return None
    cleaned = _strip_latex(text)
    fraction = re.fullmatch(r"([-+]?)(?:\\frac\{([-+]?[\d.]+)\}\{([-+]?[\d.]+)\}|([-+]?[\d.]+)/([-+]?[\d.]+))", cleaned)
    if fraction:
        sign, *parts = fraction.groups()
        top, bottom = (g for g in parts if g is not None)
        try:
            denominator = float(bottom)
            value = float(top) / denominator if denominator else None
        except ValueError:
            return None
        return -value if value is not None and sign == "-" else value
    if not cleaned or not re.search(r"\d", cleaned) or not _WHOLE_NUMBER.fullmatch(cleaned):
        return None
    return float(cleaned.rstrip("%").replace(",", ""))


def final_answer(text: str) -> str:
    """The final answer of a reference solution: after GSM8K's ``####``, inside MATH's ``\\boxed{}``, or as written."""
    text = text.strip()
    if "####" in text:
        text = text.rsplit("####", 1)[1].strip()
    boxed = extract_boxed(text)
    return boxed if boxed is not None else text


_WRAPPED_TEXT = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox)\s*\{([^{}]*)\}")
_ASSIGNED = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(?=\S)")
_TRAILING_UNIT = re.compile(r"(.+?)\s*([A-Za-z]{2,}(?:[\s/]+[A-Za-z]+)*)\.?")
_WORDS = re.compile(r"[A-Za-z][A-Za-z\s'-]*")


def math_answer(text: str) -> str:
    """A math answer without the form around it, so that only its value is compared.

    ``x = 5`` → ``5`` (one variable assigned), ``5 apples`` / ``5\\text{ cm}`` → ``5`` (a unit after a
    number), ``\\$5`` → ``5``, ``\\text{Paris}`` → ``Paris``, ``1{,}000`` → ``1,000``, a Unicode minus → ``-``.
    """
    text = _WRAPPED_TEXT.sub(r" \1 ", text)
    text = text.replace("\\$", " ").replace("$", " ").replace("\\%", "%").replace("{,}", ",").replace("\u2212", "-")
    text = re.sub(r"\\[,;:!]", "", text).replace("\\ ", " ").strip().rstrip(".").strip()
    text = _ASSIGNED.sub("", text)
    unit = _TRAILING_UNIT.fullmatch(text)
    if unit and as_number(unit.group(1)) is not None:
        text = unit.group(1)
    return text.strip()


def math_number(text: str | None) -> float | None:
    """The number a math answer stands for (``x = 5``, ``5 apples``, ``45\\%``), or None when it is not one."""
    return None if text is None else as_number(math_answer(text))


def math_answers_equal(predicted: str | None, gold: str | None) -> bool:
    """The one answer comparison of the platform: the ``math`` task's accuracy, GRPO's ``boxed_match``
    reward and the post-training ``eval_accuracy`` all use it, so a hit means the same everywhere.

    Equal as numbers when both are numbers (``1,000`` = ``1000.0``, ``\\frac{3}{4}`` = ``0.75``,
    ``x=5`` = ``5 apples`` = ``5``); else equal as LaTeX with spacing and sizing removed; plain words
    also ignoring case and articles (``The Nile`` = ``nile``). An empty answer never matches.
    """
    if predicted is None or gold is None:
        return False
    a, b = math_answer(predicted), math_answer(gold)
    if not a or not b:
        return False
    x, y = as_number(a), as_number(b)
    if x is not None and y is not None:
        return numbers_equal(x, y)
    if _strip_latex(a) == _strip_latex(b):
        return True
    return bool(_WORDS.fullmatch(a) and _WORDS.fullmatch(b)) and normalize(a) == normalize(b)
