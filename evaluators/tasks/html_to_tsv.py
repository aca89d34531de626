"""LongProc's HTML to TSV: extract the rows a web page lists into a TSV table.

Reads ``html_to_tsv/html_to_tsv_<length>.json`` under ``data_dir`` (records with ``task_id``,
``html_path``, ``task_topic``, ``task_description``, ``filtering_instruction``, ``tsv_header``
and the gold table ``gt``) and the page files they point to. Scoring follows LongProc: the
table is taken from the ```` ```tsv ```` block (or the whole answer), its first line is the
header, an incomplete last line is dropped and other rows of the wrong width count as ``N/A``
rows; cells are compared after lowercasing and removing punctuation, articles and all spaces,
column by column in order. ``precision`` is the fraction of output rows found in the gold
table, ``recall`` the fraction of gold rows found in the output, ``f1`` their harmonic mean.
An output without rows has no precision (missing) and recall 0.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from evaluators.scoring import normalize
from evaluators.tasks.base import TASKS, PromptLength, Sample, Scored, Task
from evaluators.tasks.checks import file_problems
from evaluators.tasks.datafiles import Row, pick, read_json_list
from evaluators.tasks.longproc_files import OUTPUT_TOKENS, fill, load_prompt, split_prompt

FIELDS = ("task_topic", "task_description", "filtering_instruction", "tsv_header")


def extract_tsv(answer: str) -> str:
    """The table text: inside the ```` ```tsv ```` fence when there is one, else the whole answer."""
    fenced = re.search(r"```tsv([\s\S]*)```", answer)
    if fenced:
        return fenced.group(1).strip()
    if "```tsv" in answer:
        return answer.split("```tsv", 1)[1].strip()
    return answer.strip()


def _cell(text: str) -> str:
    return normalize(text).replace(" ", "")


def parse_table(text: str) -> tuple[list[str], list[tuple[str, ...]]]:
    """Header and normalized rows of a TSV text, repaired as LongProc repairs model output."""
    lines = list(csv.reader(text.strip().split("\n"), delimiter="\t")) if text.strip() else []
    if not lines:
        return [], []
    header, rows = lines[0], lines[1:]
    if rows and len(rows[-1]) != len(header):
        rows = rows[:-1]  # a cut-off last line, or a closing remark
    width = len(header)
    return header, [tuple(_cell(c) for c in row) if len(row) == width else (_cell("N/A"),) * width for row in rows]


@TASKS.register
@dataclass
class HtmlToTsv(Task):
    """LongProc HTML to TSV: the listed items of a web page as TSV rows; F1 over rows."""

    name = "html_to_tsv"
    label_fields = ("length",)
    metrics = ("f1", "precision", "recall")

    #: LongProc's data folder (the one holding html_to_tsv/)
    data_dir: str
    #: the expected output's length, as LongProc names its files; it sets the generation budget
    length: Literal["0.5k", "2k", "8k"] = "0.5k"

    @property
    def max_new_tokens(self) -> int:  # type: ignore[override]
        return OUTPUT_TOKENS[self.length]

    @property
    def folder(self) -> Path:
        return Path(self.data_dir) / "html_to_tsv"

    @property
    def data_file(self) -> Path:
        return self.folder / f"html_to_tsv_{self.length}.json"

    def check(self) -> list[tuple[str, str]]:
        return file_problems("data_dir", self.data_file, self.folder / "prompts.yaml")

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        rows = read_json_list(self.data_file, "LongProc html_to_tsv file")
        template = load_prompt(self.folder)
        head, tail = split_prompt(template, "html_str", str(self.folder / "prompts.yaml"))
        return [self._sample(row, head, tail) for row in pick(rows, count, seed, f"html_to_tsv:{self.length}")]

    def _sample(self, row: Row, head: str, tail: str) -> Sample:
        fields = {name: row.get(name, str) for name in FIELDS}
        page = self.folder / row.get("html_path", str)
        if not page.is_file():
            raise row.error(f"html_path points to a missing file: {page}")
        gold = row.get("gt", str)
        if not parse_table(gold)[1]:
            raise row.error("field 'gt' has no rows under its header")
        fields["html_str"] = page.read_text(encoding="utf-8")
        return Sample(
            id=row.get("task_id", str),
            context=fill(head, fields, row.where),
            question=fill(tail, fields, row.where),
            gold=[gold],
            meta={"website_id": row.data.get("website_id"), "record": row.line},
        )

    def score(self, answer: str, sample: Sample) -> Scored:
        header, rows = parse_table(extract_tsv(answer))
        gold_header, gold_rows = parse_table(sample.gold[0])
        hits = sum(row in set(gold_rows) for row in rows)
        recall = sum(row in set(rows) for row in gold_rows) / len(gold_rows)
        scored = Scored(
            scores={"recall": recall},
            format_ok=len(header) == len(gold_header) and any(set(r) != {_cell("N/A")} for r in rows),
            extracted=len(rows),
            details={"rows": len(rows), "gold_rows": len(gold_rows)},
        )
        if rows:
            precision = hits / len(rows)
            scored.scores["precision"] = precision
            scored.scores["f1"] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        else:
            scored.missing["precision"] = "the output has no TSV rows"
            scored.scores["f1"] = 0.0
        return scored
