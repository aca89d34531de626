"""HELMET's passage re-ranking on MS MARCO: rank the passages, scored by NDCG@10.

Reads HELMET's ``msmarco/test_reranking_data_k1000_dep3.jsonl`` under ``data_dir`` (or
``test_file``): one query a line with ``qid``, ``query`` and ``ctxs`` (passages with ``id``,
``text``, a graded relevance ``label`` and optionally ``title``); demonstrations come from
``msmarco/test_reranking_data_k10_dep3.jsonl`` (or ``demo_file``), other queries only.

Every passage with a positive label is kept; unlabelled (label 0) passages are added in file
order while the prompt fits ``context_length``; the shown passages keep their file order. The
relevance judgements are the labels of the shown passages, as HELMET takes them from the
sample. The model writes ``Ranking: 3 > 1 > 2``; ``ndcg_at_10`` is computed on the parsed ids
(ids not shown count as irrelevant, repeats count once). A query whose shown passages are all
labelled 0 has no NDCG: it is reported missing, not 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluators.scoring import answer_line, ndcg_at_k
from evaluators.tasks.base import TASKS, PromptLength, Sample, Scored, Task
from evaluators.tasks.checks import at_least, context_length_problems, file_problems
from evaluators.tasks.datafiles import Row, pick, read_jsonl
from evaluators.tasks.fitting import Fitter
from evaluators.tasks.helmet_files import demo_choice, passages, resolve

TEST_FILE = "msmarco/test_reranking_data_k1000_dep3.jsonl"
DEMO_FILE = "msmarco/test_reranking_data_k10_dep3.jsonl"
INSTRUCTION = (
    "You are provided with a list of documents, each indicated by their ID. Rank each document based on their "
    "relevance to the question in descending order from most relevant to least relevant texts. Include all "
    "documents in the rankings. Write your answer using the unique IDs, with the following format:\n"
    "Ranking: ID3 > ID1 > ID2"
)
ANSWER_PREFIX = "Ranking:"
_ID_MARK = re.compile(r"\[|\]|\bID\s*:?\s*", flags=re.IGNORECASE)


def _passage(ctx: dict[str, Any]) -> str:
    if "title" in ctx and ctx["title"] is not None:
        return f"[ID: {ctx['id']}] Document (Title: {ctx['title']}): {ctx['text']}"
    return f"[ID: {ctx['id']}] Document: {ctx['text']}"


def _ctxs(row: Row) -> list[dict[str, Any]]:
    items = passages(row, needs=("id", "text", "label"))
    for index, item in enumerate(items):
        if isinstance(item["label"], bool) or not isinstance(item["label"], (int, float)):
            raise row.error(f"ctxs[{index}].label must be a number, got {item['label']!r}")
    return [{**item, "id": str(item["id"])} for item in items]


def _by_relevance(ctxs: list[dict[str, Any]]) -> str:
    return " > ".join(c["id"] for c in sorted(ctxs, key=lambda c: c["label"], reverse=True))


def _demo(row: Row) -> str:
    ctxs = _ctxs(row)
    documents = "\n\n".join(_passage(c) for c in ctxs)
    return f"{documents}\n\nQuery: {row.get('query', str)}\nRanking: {_by_relevance(ctxs)}"


def parse_ranking(answer: str) -> list[str]:
    """Passage ids in the order written on the ranking line: ``[ID: 3] > ID1 > 2`` gives 3, 1, 2.

    Pieces between ``>`` that are not one word (prose such as "I cannot rank these") are not ids.
    """
    line = answer_line(answer, ANSWER_PREFIX) or ""
    pieces = (_ID_MARK.sub("", piece).strip(" \t.,;") for piece in line.split(">"))
    return [piece for piece in pieces if piece and not any(c.isspace() for c in piece)]


@TASKS.register
@dataclass
class Rerank(Task):
    """HELMET MS MARCO re-ranking: order the passages by relevance; NDCG@10 of the written ranking."""

    name = "rerank"
    stop_at_newline = True
    max_new_tokens = 200
    metrics = ("ndcg_at_10",)

    #: HELMET's data folder (the one holding msmarco/)
    data_dir: str
    #: tokens of the whole prompt as rendered, filled with unlabelled passages besides the relevant ones
    context_length: int = 8192
    #: demonstrations (other queries, ranked) before the query
    shots: int = 2
    #: a queries file to use instead of HELMET's (absolute, or relative to data_dir)
    test_file: str = ""
    #: a demonstrations file to use instead of HELMET's (absolute, or relative to data_dir)
    demo_file: str = ""

    @property
    def paths(self) -> tuple[Path, Path]:
        return resolve(self.data_dir, self.test_file, TEST_FILE), resolve(self.data_dir, self.demo_file, DEMO_FILE)

    def check(self) -> list[tuple[str, str]]:
        test, demo = self.paths
        return [
            *context_length_problems(self.context_length),
            *at_least("shots", self.shots, 0),
            *file_problems("test_file" if self.test_file else "data_dir", test),
            *(file_problems("demo_file" if self.demo_file else "data_dir", demo) if self.shots else []),
        ]

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        test_path, demo_path = self.paths
        rows = read_jsonl(test_path, "MS MARCO re-ranking file")
        demos = read_jsonl(demo_path, "MS MARCO demonstration file") if self.shots else []
        fitter = Fitter(self.context_length, "unlabelled passages")
        return [self._sample(row, seed, demos, fitter, prompt_length) for row in pick(rows, count, seed, "rerank")]

    def _sample(self, row: Row, seed: int, demos: list[Row], fitter: Fitter, length: PromptLength) -> Sample:
        qid = str(row.get("qid", (str, int)))
        query = row.get("query", str)
        ctxs = _ctxs(row)
        relevant = [i for i, c in enumerate(ctxs) if c["label"] > 0]
        others = [i for i, c in enumerate(ctxs) if c["label"] <= 0]
        shown_demos = demo_choice(demos, qid, "qid", self.shots, f"rerank-demos:{seed}:{qid}")
        head = INSTRUCTION + "\n\n" + "".join(_demo(d) + "\n\n" for d in shown_demos)
        question = f"Query: {query}"

        def kept(n: int) -> list[dict[str, Any]]:
            return [ctxs[i] for i in sorted([*relevant, *others[:n]])]

        def context(n: int) -> str:
            return head + "\n\n".join(_passage(c) for c in kept(n))

        try:
            n = fitter.fit(lambda n: length(context(n), question, ANSWER_PREFIX), upper=len(others))
        except ValueError as exc:
            raise row.error(f"the relevant passages and demonstrations alone do not fit: {exc}") from None
        shown = kept(n)
        return Sample(
            id=qid,
            context=context(n),
            question=question,
            gold=[_by_relevance(shown)],
            answer_prefix=ANSWER_PREFIX,
            meta={"qrels": {c["id"]: c["label"] for c in shown}, "passages": len(shown), "line": row.line},
        )

    def score(self, answer: str, sample: Sample) -> Scored:
        qrels: dict[str, float] = sample.meta["qrels"]  # type: ignore[assignment]
        ranking = parse_ranking(answer)
        known = [doc for doc in ranking if doc in qrels]
        scored = Scored(scores={}, format_ok=bool(known), extracted=ranking or None)
        if ranking and len(known) < len(ranking):
            scored.details["unknown_ids"] = [doc for doc in ranking if doc not in qrels]
        if not any(v > 0 for v in qrels.values()):
            scored.missing["ndcg_at_10"] = "no shown passage is labelled relevant, so NDCG is undefined"
        else:
            scored.scores["ndcg_at_10"] = ndcg_at_k(ranking, qrels, 10)
        return scored
