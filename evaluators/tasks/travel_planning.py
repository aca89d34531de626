"""LongProc's travel planning: search for a trip plan that meets stay, schedule and flight constraints.

Reads ``travel_planning/travel_planning_all.json`` under ``data_dir`` (records with
``num_cities``, ``total_days``, ``constraints``, ``connected_cities``, ``ground_truth_cities``
and ``ground_truth_durations`` (``**``-separated), ``disambig_question_text`` and
``estimated_output_tokens``), keeping those LongProc puts in the chosen ``length``
(``2k``: estimated output under 2048 tokens; ``8k``: 4096 to 8191), and the worked examples
of ``travel_planning_icl_examples.json``, which fill the prompt's ``{demonstration}``. The
examples' solving procedures are written by this module's own search (trip_plans.solve), in
its own words; their plans use LongProc's plan format.

Metrics: ``accuracy`` is LongProc's: the plan between ``<Plan>`` tags lists the ground truth
cities in order with their durations. ``plan_valid`` checks the plan against the constraints
themselves (every city once for its days, fixed days kept, direct flights, Day 1 to the last
day), so a correct plan that differs from the reference still counts. LongProc's
``partial_accuracy``, which compares the model's procedure line by line with LongProc's own
wording of the search, is not computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from evaluators.tasks.base import TASKS, PromptLength, Sample, Scored, Task
from evaluators.tasks.checks import file_problems
from evaluators.tasks.datafiles import Row, pick, read_json_list
from evaluators.tasks.longproc_files import OUTPUT_TOKENS, fill, load_prompt, split_prompt
from evaluators.tasks.trip_plans import Stay, Trip, plan_text, read_plan, solve, violations, write_plan

#: estimated output tokens LongProc keeps for each length
OUTPUT_RANGE = {"2k": (0, 2048), "8k": (4096, 8192)}


def demonstration(row: Row) -> str:
    """One worked example: the problem, the narrated search, and the plan in ``<Plan>`` tags."""
    stays, steps = solve(Trip.from_row(row))
    if not stays:
        raise row.error("this worked example has no plan that meets its constraints")
    procedure = "\n".join(steps)
    return (
        f"# Example\n{row.get('disambig_question_text', str)}\n\n<Solving Procedure>\n{procedure}\n"
        f"</Solving Procedure>\n\n<Plan>\n{write_plan(stays)}\n</Plan>"
    )


def _gold(row: Row) -> list[Stay]:
    cities = [c for c in row.get("ground_truth_cities", str).split("**") if c]
    try:
        days = [int(d) for d in row.get("ground_truth_durations", str).split("**") if d]
    except ValueError:
        raise row.error("field 'ground_truth_durations' must be numbers separated by '**'") from None
    if len(cities) != len(days) or not cities:
        raise row.error("ground_truth_cities and ground_truth_durations must list the same, non-zero number of stays")
    return [Stay(city, 0, n - 1) for city, n in zip(cities, days, strict=True)]  # only city and length matter


@TASKS.register
@dataclass
class TravelPlanning(Task):
    """LongProc travel planning: a trip plan by search; exact match with the reference, and constraint check."""

    name = "travel_planning"
    label_fields = ("length",)
    metrics = ("accuracy", "plan_valid")

    #: LongProc's data folder (the one holding travel_planning/)
    data_dir: str
    #: the expected output's length, as LongProc names its files; it sets the generation budget
    length: Literal["2k", "8k"] = "2k"

    @property
    def max_new_tokens(self) -> int:  # type: ignore[override]
        return OUTPUT_TOKENS[self.length]

    @property
    def folder(self) -> Path:
        return Path(self.data_dir) / "travel_planning"

    def check(self) -> list[tuple[str, str]]:
        return file_problems(
            "data_dir",
            self.folder / "travel_planning_all.json",
            self.folder / "travel_planning_icl_examples.json",
            self.folder / "prompts.yaml",
        )

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        low, high = OUTPUT_RANGE[self.length]
        rows = [
            row
            for row in read_json_list(self.folder / "travel_planning_all.json", "LongProc travel planning file")
            if low <= row.get("estimated_output_tokens", (int, float)) < high
        ]
        if not rows:
            raise ValueError(f"{self.folder / 'travel_planning_all.json'}: no problem of length {self.length}")
        examples = read_json_list(self.folder / "travel_planning_icl_examples.json", "LongProc worked examples file")
        prompt_file = str(self.folder / "prompts.yaml")
        head, tail = split_prompt(load_prompt(self.folder), "demonstration", prompt_file)
        head = fill(head, {"demonstration": "\n\n".join(demonstration(e) for e in examples)}, prompt_file)
        return [self._sample(row, head, tail) for row in pick(rows, count, seed, f"travel_planning:{self.length}")]

    def _sample(self, row: Row, head: str, tail: str) -> Sample:
        trip = Trip.from_row(row)
        gold = _gold(row)
        return Sample(
            id=str(row.data.get("id", f"travel_planning-{row.line}")),
            context=head,
            question=fill(tail, {"problem": row.get("disambig_question_text", str)}, row.where),
            gold=[f"{s.city} ({s.days} days)" for s in gold],
            meta={
                "trip": {
                    "total_days": trip.total_days,
                    "durations": trip.durations,
                    "fixed": trip.fixed,
                    "flights": sorted(trip.flights),
                },
                "gold_stays": [[s.city, s.days] for s in gold],
                "record": row.line,
            },
        )

    def score(self, answer: str, sample: Sample) -> Scored:
        text = plan_text(answer)
        stays = read_plan(text) if text is not None else []
        meta = sample.meta["trip"]
        trip = Trip(
            meta["total_days"],  # type: ignore[index]
            meta["durations"],  # type: ignore[index]
            {c: tuple(d) for c, d in meta["fixed"].items()},  # type: ignore[index,union-attr]
            frozenset(tuple(f) for f in meta["flights"]),  # type: ignore[index,union-attr]
        )
        gold = [tuple(g) for g in sample.meta["gold_stays"]]  # type: ignore[union-attr]
        written = [(s.city, s.days) for s in stays]
        broken = violations(trip, stays)
        return Scored(
            scores={"accuracy": float(written[: len(gold)] == gold), "plan_valid": float(not broken)},
            format_ok=bool(stays),
            extracted=[f"{s.city} (Day {s.start}-{s.end})" for s in stays] or None,
            details={"violations": broken} if broken else {},
        )
