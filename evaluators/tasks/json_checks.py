"""One JSON answer against a schema, numeric constraints and an optional gold value.

Shared by the ``json_output`` task and the trainers' GRPO rewards and post-training
evaluation, so "valid", "constraints met" and "correct" mean the same thing in a reward,
in a fine-tuning trial's ``eval_accuracy`` and in an evaluation sweep.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evaluators.lazy import lazy_module
from evaluators.scoring import extract_json
from evaluators.tasks.constraints import Constraint

if TYPE_CHECKING:
    import jsonschema
else:  # a quarter second to import, and planning a sweep without a JSON task never needs it
    jsonschema = lazy_module("jsonschema")


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


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a usable JSON schema, or None."""
    if not isinstance(schema, dict):
        return "must be a JSON schema object"
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"is not a valid JSON schema: {exc.message}"
    return None


def parse_constraints(specs: Any) -> list[Constraint]:
    """Constraints from their JSON form; ValueError naming the bad one by index."""
    if not isinstance(specs, list):
        raise ValueError("must be a list of constraints")
    out = []
    for index, spec in enumerate(specs):
        try:
            out.append(Constraint.parse(spec))
        except ValueError as exc:
            raise ValueError(f"[{index}]: {exc}") from None
    return out


@dataclass(frozen=True)
class JsonCheck:
    """What one answer amounts to as JSON."""

    #: the JSON value found in the answer (None: none found)
    value: Any
    #: why the value does not validate against the schema (empty: it does, or there is no schema)
    schema_errors: list[str] = field(default_factory=list)
    #: labels of the constraints the value breaks (checked only for a valid value)
    broken: list[str] = field(default_factory=list)
    #: how it breaks them, one line per problem
    violations: list[str] = field(default_factory=list)
    constraints: int = 0
    #: None when there is no gold value to compare with
    matches_gold: bool | None = None

    @property
    def found(self) -> bool:
        return self.value is not None

    @property
    def valid(self) -> bool:
        """JSON was found and it validates against the schema."""
        return self.found and not self.schema_errors

    @property
    def violation_rate(self) -> float | None:
        """Fraction of the constraints a valid value breaks; None when invalid or unconstrained."""
        return len(self.broken) / self.constraints if self.valid and self.constraints else None

    @property
    def constraints_met(self) -> float | None:
        """Fraction of the constraints met (an invalid value meets none); None when unconstrained."""
        if not self.constraints:
            return None
        return 1.0 - len(self.broken) / self.constraints if self.valid else 0.0

    @property
    def correct(self) -> bool:
        """Valid, breaks no constraint, and equals the gold value where there is one."""
        return self.valid and not self.broken and self.matches_gold is not False


def check_json(
    answer: str,
    schema: dict | None = None,
    constraints: Sequence[Constraint] = (),
    gold: Any = None,
    has_gold: bool = False,
) -> JsonCheck:
    """Find the JSON in ``answer`` and check it against the schema, the constraints and the gold value.

    ``has_gold`` tells a gold value of JSON ``null`` from no gold at all.
    """
    value = extract_json(answer)
    if value is None:
        missing_gold = False if has_gold else None
        return JsonCheck(None, ["no JSON in the output"], constraints=len(constraints), matches_gold=missing_gold)
    errors = (
        [e.message for e in jsonschema.validators.validator_for(schema)(schema).iter_errors(value)] if schema else []
    )
    broken: list[str] = []
    violations: list[str] = []
    if not errors:
        for constraint in constraints:
            problems = constraint.problems(value)
            if problems:
                broken.append(constraint.label)
                violations += problems
    return JsonCheck(
        value,
        errors,
        broken,
        violations,
        len(constraints),
        same_json(value, gold) if has_gold else None,
    )
