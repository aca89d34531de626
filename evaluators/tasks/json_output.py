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
import math
from dataclasses import dataclass
from typing import Any

import jsonschema

from evaluators.scoring import extract_json
from evaluators.tasks.base import PromptLength, Sample, Scored, Task, register
from evaluators.tasks.constraints import Constraint
from evaluators.tasks.datafiles import Row
from evaluators.tasks.posttrain_files import data_problems, rows, sample_id


def same_json(a: Any, b: Any) -> bool:
    """Deep equality of JSON values, numbers by value (``1 == 1.0``) but booleans never equal to numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _schema(row: Row) -> dict[str, Any]:
    schema = row.get("schema", dict)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise row.error(f"field 'schema' is not a valid JSON schema: {exc.message}") from None
    return schema


def _constraints(row: Row) -> list[Constraint]:
    out = []
    for index, spec in enumerate(row.get("constraints", list, default=[])):
        try:
            out.append(Constraint.parse(spec))
        except ValueError as exc:
            raise row.error(f"constraints[{index}]: {exc}") from None
    return out


@register
@dataclass
class JsonOutput(Task):
    """JSON output checked against a schema and numeric constraints: validity, violation rate, score."""

    name = "json_output"
    max_new_tokens = 512
    metrics = ("validity_rate", "violation_rate", "score")

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
        value = extract_json(answer)
        scored = Scored(scores={}, format_ok=value is not None, extracted=value)
        schema: dict[str, Any] = sample.meta["schema"]  # type: ignore[assignment]
        errors = (
            [e.message for e in jsonschema.validators.validator_for(schema)(schema).iter_errors(value)]
            if value is not None
            else ["no JSON in the output"]
        )
        valid = not errors
        scored.scores["validity_rate"] = float(valid)
        constraints = [Constraint(**c) for c in sample.meta["constraints"]]  # type: ignore[union-attr]
        broken = [c.label for c in constraints if valid and c.problems(value)]
        if not valid:
            scored.details["schema_errors"] = errors[:5]
            scored.missing["violation_rate"] = "the output is not valid JSON for the schema"
        elif not constraints:
            scored.missing["violation_rate"] = "this line has no constraints"
        else:
            scored.scores["violation_rate"] = len(broken) / len(constraints)
        if broken:
            scored.details["violated"] = [problem for c in constraints for problem in c.problems(value)]
        matches_gold = not sample.meta["has_gold"] or same_json(value, json.loads(sample.gold[0]))
        scored.scores["score"] = float(valid and not broken and matches_gold)
        return scored
