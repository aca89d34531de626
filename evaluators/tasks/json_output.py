"""Structured output: JSON checked against a JSON schema and numeric constraints, from a local JSON Lines file.

A line has ``instruction`` (what to produce), optional ``input`` (the long material it is
produced from: the compressible context), ``schema`` (a JSON schema), optional ``constraints``
(a list in the language of :mod:`evaluators.tasks.constraints`, e.g. per-hour capacity
limits) and optional ``gold`` (the expected JSON). The schema is shown to the model; the
constraints are not (the instruction states the requirements in words, as a user would).

- ``validity_rate``: the output's JSON validates against the schema (no JSON: 0).
- ``violation_rate``: among valid outputs, the fraction of the line's constraints broken;
  missing, with the reason, when the output is not valid or the line has no constraints.
- ``score``: a valid output that breaks no constraint — and, where the line has ``gold``,
  that equals it (numbers compared by value, so ``1`` equals ``1.0``).
- ``format_ok``: the output contains parseable JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from evaluators.tasks.base import TASKS, PromptLength, Sample, Scored, Task
from evaluators.tasks.constraints import Constraint
from evaluators.tasks.datafiles import Row
from evaluators.tasks.json_checks import check_json, parse_constraints, schema_problem
from evaluators.tasks.posttrain_files import data_problems, rows, sample_id


def _schema(row: Row) -> dict[str, Any]:
    schema = row.get("schema", dict)
    problem = schema_problem(schema)
    if problem:
        raise row.error(f"field 'schema' {problem}")
    return schema


def _constraints(row: Row) -> list[Constraint]:
    try:
        return parse_constraints(row.get("constraints", list, default=[]))
    except ValueError as exc:
        raise row.error(f"constraints{exc}") from None


@TASKS.register
@dataclass
class JsonOutput(Task):
    """JSON output checked against a schema and numeric constraints: validity, violation rate, score."""

    name = "json_output"
    max_new_tokens = 512
    metrics = ("validity_rate", "violation_rate", "score")
    lower_is_better = ("violation_rate",)

    #: a JSON Lines file of instructions, JSON schemas and optional constraints and gold values
    data: str

    def check(self) -> list[tuple[str, str]]:
        return data_problems(self.data)

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        return [self._sample(row) for row in rows(self.data, count, seed, self.name)]

    def _sample(self, row: Row) -> Sample:
        schema = _schema(row)
        constraints = _constraints(row)
        instruction = row.get("instruction", str)
        question = f"{instruction}\n\nAnswer with one JSON value that follows this JSON schema:\n{json.dumps(schema)}"
        gold = row.data.get("gold")
        return Sample(
            id=sample_id(row, self.name),
            context=row.get("input", str, default=""),
            question=question,
            gold=[json.dumps(gold)] if gold is not None else [],
            meta={
                "schema": schema,
                "constraints": [c.__dict__ for c in constraints],
                "has_gold": gold is not None,
                "line": row.line,
            },
        )

    def score(self, answer: str, sample: Sample) -> Scored:
        constraints = [Constraint(**c) for c in sample.meta["constraints"]]  # type: ignore[union-attr]
        has_gold = bool(sample.meta["has_gold"])
        check = check_json(
            answer,
            sample.meta["schema"],  # type: ignore[arg-type]
            constraints,
            json.loads(sample.gold[0]) if has_gold else None,
            has_gold,
        )
        scored = Scored(scores={"validity_rate": float(check.valid)}, format_ok=check.found, extracted=check.value)
        if not check.valid:
            scored.details["schema_errors"] = check.schema_errors[:5]
            scored.missing["violation_rate"] = "the output is not valid JSON for the schema"
        elif not constraints:
            scored.missing["violation_rate"] = "this line has no constraints"
        else:
            scored.scores["violation_rate"] = check.violation_rate  # type: ignore[assignment]
        if check.violations:
            scored.details["violated"] = check.violations
        scored.scores["score"] = float(check.correct)
        return scored
