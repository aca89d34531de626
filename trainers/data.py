"""Training data from JSONL files: one example per line, checked before anything starts.

SFT rows hold ``messages`` (a conversation whose last turn is the assistant's) or a
``prompt`` and a ``completion``; GRPO rows hold a ``prompt`` and the gold fields their
rewards need (``answer``; ``constraints`` and ``schema`` as the ``json_output`` task
writes them). A bad row is reported with the file, the line
and the field, all problems of a file at once, so a broken dataset fails at `sweeps plan`
and not minutes into a trial.
"""

from __future__ import annotations

import json
import random
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from evaluators.tasks.datafiles import utf8_lines
from evaluators.tasks.json_checks import parse_constraints, schema_problem

ROLES = ("system", "user", "assistant")
#: problems shown per file; the rest are counted
MAX_SHOWN = 8


class DataError(ValueError):
    """The dataset file is missing or has rows that cannot be used; the message lists them."""


@dataclass(frozen=True)
class Example:
    """One row, normalized: the conversation up to the answer, the reference answer and gold fields."""

    line: int
    prompt: tuple[dict, ...]
    completion: str | None = None
    answer: str | None = None
    #: numeric constraints on a JSON answer, in the language of ``evaluators.tasks.constraints``
    constraints: list[dict] | None = field(default=None, hash=False)
    #: a JSON schema the answer must validate against
    schema: dict | None = field(default=None, hash=False)

    def to_dict(self) -> dict:
        return {
            "line": self.line,
            "prompt": list(self.prompt),
            "completion": self.completion,
            "answer": self.answer,
            "constraints": self.constraints,
            "schema": self.schema,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Example:
        return cls(
            line=data["line"],
            prompt=tuple(data["prompt"]),
            completion=data.get("completion"),
            answer=data.get("answer"),
            constraints=data.get("constraints"),
            schema=data.get("schema"),
        )


def _messages(value: object, where: str, problems: list[str]) -> list[dict] | None:
    if not isinstance(value, list) or not value:
        problems.append(f"{where} must be a non-empty list of {{role, content}} messages")
        return None
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            problems.append(f"{where}[{i}] must be a mapping with 'role' and 'content'")
            return None
        if message["role"] not in ROLES:
            problems.append(f"{where}[{i}].role {message['role']!r} is not one of {', '.join(ROLES)}")
            return None
        if not isinstance(message["content"], str):
            problems.append(f"{where}[{i}].content must be a string")
            return None
        out.append({"role": message["role"], "content": message["content"]})
    return out


def _prompt(value: object, problems: list[str]) -> tuple[dict, ...] | None:
    """A prompt is a string (one user turn) or a list of messages that does not end with the answer."""
    if isinstance(value, str):
        if not value.strip():
            problems.append("field 'prompt' is empty")
            return None
        return ({"role": "user", "content": value},)
    messages = _messages(value, "field 'prompt'", problems)
    if messages is None:
        return None
    if messages[-1]["role"] == "assistant":
        problems.append("field 'prompt' ends with an assistant message; the answer belongs in 'completion'")
        return None
    return tuple(messages)


@dataclass(frozen=True)
class _Gold:
    answer: str | None = None
    constraints: list[dict] | None = None
    schema: dict | None = None


def _gold(row: dict, needs: Collection[str], problems: list[str]) -> _Gold:
    """The row's gold fields, checked: what the rewards and the post-training evaluation score against."""
    answer = row.get("answer")
    if answer is not None and not isinstance(answer, (str, int, float)):
        problems.append("field 'answer' must be a string or a number")
        answer = None
    constraints = row.get("constraints")
    if constraints is not None:
        try:
            parse_constraints(constraints)
        except ValueError as exc:
            problems.append(f"field 'constraints'{exc if str(exc).startswith('[') else ' ' + str(exc)}")
            constraints = None
    schema = row.get("schema")
    if schema is not None:
        problem = schema_problem(schema)
        if problem:
            problems.append(f"field 'schema' {problem}")
            schema = None
    for name in needs:
        if row.get(name) is None:
            problems.append(f"missing field {name!r} (needed by the rewards)")
    return _Gold(None if answer is None else str(answer), constraints, schema)


def parse_sft(row: dict, line: int) -> tuple[Example | None, list[str]]:
    """An SFT row: ``messages`` ending with the assistant turn, or ``prompt`` + ``completion``."""
    problems: list[str] = []
    gold = _gold(row, (), problems)
    if "messages" in row:
        messages = _messages(row["messages"], "field 'messages'", problems)
        if messages is not None:
            if messages[-1]["role"] != "assistant" or len(messages) < 2:
                problems.append("field 'messages' must end with an assistant message that follows the prompt")
            elif not messages[-1]["content"].strip():
                problems.append("field 'messages' ends with an empty assistant message: nothing to learn")
            else:
                example = Example(
                    line, tuple(messages[:-1]), messages[-1]["content"], gold.answer, gold.constraints, gold.schema
                )
                return (None, problems) if problems else (example, [])
        return None, problems
    if "prompt" not in row:
        return None, ["missing field 'messages' (or 'prompt' and 'completion')"]
    prompt = _prompt(row["prompt"], problems)
    completion = row.get("completion")
    if completion is None:
        problems.append("missing field 'completion'")
    elif not isinstance(completion, str) or not completion.strip():
        problems.append("field 'completion' must be a non-empty string")
    if problems or prompt is None:
        return None, problems
    return Example(line, prompt, completion, gold.answer, gold.constraints, gold.schema), []


def parse_grpo(row: dict, line: int, needs: Collection[str]) -> tuple[Example | None, list[str]]:
    """A GRPO row: ``prompt`` plus the gold fields named in ``needs``."""
    problems: list[str] = []
    if "prompt" not in row:
        problems.append("missing field 'prompt'")
        prompt = None
    else:
        prompt = _prompt(row["prompt"], problems)
    gold = _gold(row, needs, problems)
    if problems or prompt is None:
        return None, problems
    return Example(line, prompt, None, gold.answer, gold.constraints, gold.schema), []


def load_examples(path: str | Path, kind: str, needs: Collection[str] = ()) -> list[Example]:
    """Every example of a JSONL file, or a DataError naming each bad line and field."""
    path = Path(path).expanduser()
    try:
        found = path.is_file()
        stat = path.stat() if found else None
        resolved = str(path.resolve())
    except (OSError, ValueError, RuntimeError) as exc:  # a name too long, a NUL byte, a symlink loop
        raise DataError(f"{str(path)[:200]}: cannot be read as a dataset file ({exc.__class__.__name__})") from None
    if stat is None:
        raise DataError(f"{str(path)[:200]}: no such dataset file")
    return list(_load(resolved, stat.st_size, stat.st_mtime_ns, kind, tuple(sorted(needs))))


@lru_cache(maxsize=16)
def _load(path: str, size: int, mtime_ns: int, kind: str, needs: tuple[str, ...]) -> tuple[Example, ...]:
    """Parse once per file version: the plan validates every trial, and trials share files."""
    examples: list[Example] = []
    problems: list[str] = []
    try:
        lines = list(utf8_lines(Path(path)))
    except ValueError as exc:
        raise DataError(str(exc)) from None
    for number, text in lines:
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: not valid JSON ({exc.msg})")
            continue
        if not isinstance(row, dict):
            problems.append(f"{path}:{number}: a row must be a JSON object")
            continue
        example, row_problems = parse_sft(row, number) if kind == "sft" else parse_grpo(row, number, needs)
        problems += [f"{path}:{number}: {p}" for p in row_problems]
        if example is not None:
            examples.append(example)
    if problems:
        shown = problems[:MAX_SHOWN]
        more = f"\n  ... and {len(problems) - MAX_SHOWN} more" if len(problems) > MAX_SHOWN else ""
        raise DataError(f"{len(problems)} bad row(s) in the dataset:\n  " + "\n  ".join(shown) + more)
    if not examples:
        raise DataError(f"{path}: the dataset has no rows")
    return tuple(examples)


def split(examples: list[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A deterministic held-out split: the same file, fraction and seed give the same split everywhere."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = max(1, round(len(examples) * eval_fraction)) if eval_fraction > 0 else 0
    held_out = sorted(order[:held])
    kept = sorted(order[held:])
    return [examples[i] for i in kept], [examples[i] for i in held_out]
