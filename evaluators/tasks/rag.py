"""HELMET's retrieval-augmented QA on NQ and HotpotQA (one task, ``dataset: nq | hotpotqa``).

Reads HELMET's KILT files under ``data_dir``: ``kilt/nq-dev-multikilt_1000_k1000_dep6.jsonl``
and ``kilt/hotpotqa-dev-multikilt_1000_k1000_dep3.jsonl`` (or ``test_file``), one question a
line with ``question``, ``answers`` (list) and ``ctxs`` (passages with ``title`` and
``text``), and demonstrations from the ``...-train-..._k3_...`` files (or ``demo_file``).

Gold passages are those marked ``has_answer: true``; a file without that field falls back to
the passages containing an answer string (how DPR computes ``has_answer``). The gold passages
are always kept, at ``gold_depth`` (a list is spread over the samples), and the other passages
are packed around them in file order until the prompt fills ``context_length``. The prompt is
HELMET's: instruction, ``shots`` demonstrations, passages as ``Document (Title: ...): ...``,
``Question: ...`` and ``Answer:``. HELMET stops generation at the first newline, so ``score``
is substring exact match of the answer line against any gold answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evaluators.scoring import answer_line, normalize, substring_exact_match
from evaluators.tasks.base import TASKS, PromptLength, Sample, Scored, Task
from evaluators.tasks.checks import at_least, context_length_problems, depth_problems, depths_of, file_problems
from evaluators.tasks.datafiles import Row, pick, read_jsonl
from evaluators.tasks.fitting import Fitter
from evaluators.tasks.helmet_files import demo_choice, passages, resolve

FILES = {
    "nq": ("kilt/nq-dev-multikilt_1000_k1000_dep6.jsonl", "kilt/nq-train-multikilt_1000_k3_dep6.jsonl"),
    "hotpotqa": (
        "kilt/hotpotqa-dev-multikilt_1000_k1000_dep3.jsonl",
        "kilt/hotpotqa-train-multikilt_1000_k3_dep3.jsonl",
    ),
}
INSTRUCTION = (
    "Use the given documents to write a concise and short answer to the question. "
    "Write your answer in the following format:\nAnswer: [answer]"
)
ANSWER_PREFIX = "Answer:"


def _passage(ctx: dict[str, Any]) -> str:
    return f"Document (Title: {ctx['title']}): {ctx['text']}"


def _answers(row: Row) -> list[str]:
    answers = row.get("answers", (list, str))
    answers = [answers] if isinstance(answers, str) else answers
    if not answers or not all(isinstance(a, str) for a in answers):
        raise row.error("field 'answers' must be a non-empty list of strings")
    return answers


def _split_gold(ctxs: list[dict[str, Any]], answers: list[str]) -> tuple[list[dict], list[dict]]:
    if any("has_answer" in c for c in ctxs):
        is_gold = [bool(c.get("has_answer")) for c in ctxs]
    else:
        wanted = [normalize(a) for a in answers if normalize(a)]
        is_gold = [any(a in normalize(c["text"]) for a in wanted) for c in ctxs]
    gold = [c for c, g in zip(ctxs, is_gold, strict=True) if g]
    return gold, [c for c, g in zip(ctxs, is_gold, strict=True) if not g]


def _demo(row: Row) -> str:
    documents = "\n\n".join(_passage(c) for c in passages(row))
    return f"{documents}\n\nQuestion: {row.get('question', str)}\nAnswer: {_answers(row)[0]}"


def _place(distractors: list[dict], gold: list[dict], depth: float) -> list[dict]:
    at = round(depth * len(distractors))
    return [*distractors[:at], *gold, *distractors[at:]]


@TASKS.register
@dataclass
class Rag(Task):
    """HELMET RAG (NQ, HotpotQA): answer from passages packed around the gold one to ``context_length``."""

    name = "rag"
    stop_at_newline = True
    label_fields = ("dataset",)
    max_new_tokens = 20

    #: HELMET's data folder (the one holding kilt/)
    data_dir: str
    #: the question set: nq (Natural Questions) or hotpotqa
    dataset: Literal["nq", "hotpotqa"] = "nq"
    #: tokens of the whole prompt as rendered, filled with passages around the gold ones
    context_length: int = 8192
    #: demonstrations (question, passages, answer) before the question
    shots: int = 2
    #: where the gold passages sit among the others, 0 (first) to 1 (last); a list is spread over the samples
    gold_depth: float | list[float] = field(default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    #: a questions file to use instead of HELMET's (absolute, or relative to data_dir)
    test_file: str = ""
    #: a demonstrations file to use instead of HELMET's (absolute, or relative to data_dir)
    demo_file: str = ""

    @property
    def paths(self) -> tuple[Path, Path]:
        test, demo = FILES[self.dataset]
        return resolve(self.data_dir, self.test_file, test), resolve(self.data_dir, self.demo_file, demo)

    def check(self) -> list[tuple[str, str]]:
        test, demo = self.paths
        return [
            *context_length_problems(self.context_length),
            *depth_problems("gold_depth", self.gold_depth),
            *at_least("shots", self.shots, 0),
            *file_problems("test_file" if self.test_file else "data_dir", test),
            *(file_problems("demo_file" if self.demo_file else "data_dir", demo) if self.shots else []),
        ]

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        test_path, demo_path = self.paths
        rows = read_jsonl(test_path, f"{self.dataset} RAG file")
        demos = read_jsonl(demo_path, f"{self.dataset} demonstration file") if self.shots else []
        fitter = Fitter(self.context_length, "passages but the gold ones")
        depths = depths_of(self.gold_depth)
        chosen = pick(rows, count, seed, f"rag:{self.dataset}")
        return [
            self._sample(row, i, seed, depths[i % len(depths)], demos, fitter, prompt_length)
            for i, row in enumerate(chosen)
        ]

    def _sample(
        self, row: Row, index: int, seed: int, depth: float, demos: list[Row], fitter: Fitter, length: PromptLength
    ) -> Sample:
        question = row.get("question", str)
        answers = _answers(row)
        gold, distractors = _split_gold(passages(row), answers)
        shown = demo_choice(demos, question, "question", self.shots, f"rag-demos:{seed}:{question}")
        head = INSTRUCTION + "\n\n" + "".join(_demo(d) + "\n\n" for d in shown)
        prompt_question = f"Question: {question}"

        def context(n: int) -> str:
            return head + "\n\n".join(_passage(c) for c in _place(distractors[:n], gold, depth))

        try:
            n = fitter.fit(lambda n: length(context(n), prompt_question, ANSWER_PREFIX), upper=len(distractors))
        except ValueError as exc:
            raise row.error(f"the gold passages and demonstrations alone do not fit: {exc}") from None
        return Sample(
            id=str(row.data.get("id", f"{self.dataset}-{row.line}")),
            context=context(n),
            question=prompt_question,
            gold=answers,
            answer_prefix=ANSWER_PREFIX,
            meta={
                "gold_depth": depth if gold else None,
                "passages": n + len(gold),
                "gold_passages": len(gold),
                "line": row.line,
            },
        )

    def score(self, answer: str, sample: Sample) -> Scored:
        line = answer_line(answer, ANSWER_PREFIX)
        return Scored(
            scores={"score": substring_exact_match(line or "", sample.gold)},
            format_ok=line is not None,
            extracted=line,
        )
