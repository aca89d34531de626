"""Post-training evaluation tasks from local JSON Lines files (math, multiple choice, extractive QA,
JSON output with schema and constraints), the scoring helpers they add, and one real sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sweep_helpers import run_file

from evaluators.scoring import answer_line, as_number, math_answers_equal
from evaluators.tasks import TASKS, Sample
from evaluators.tasks.constraints import Constraint, parse_path, select
from evaluators.tasks.json_checks import same_json
from sweeps.store import SweepStore

DATA = Path(__file__).parent / "data" / "posttrain"


def _no_length(*_: str) -> int:
    raise AssertionError("file-based post-training tasks do not size prompts")


def _samples(name: str, file: str, count: int = 10, seed: int = 0) -> dict[str, Sample]:
    task = TASKS[name](data=str(DATA / file))
    return {s.id: s for s in task.samples(count, seed, _no_length)}


def _write(tmp_path: Path, rows: list[dict]) -> str:
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


# -- scoring helpers ---------------------------------------------------------------------------------
def test_answer_line_takes_the_line_after_the_prefix():
    assert answer_line("Answer: Paris\nBecause it is.") == "Paris"
    assert answer_line("Let me think.\nAnswer:\n  Rome  ") == "Rome"
    assert answer_line("\n\nLisbon\nMadrid") == "Lisbon"
    assert answer_line("label: 12", "label:") == "12"
    assert answer_line("   \n") is None and answer_line("Answer:") is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("1,234", 1234.0), ("-0.5", -0.5), ("3/4", 0.75), ("\\frac{3}{4}", 0.75), ("\\dfrac{1}{8}", 0.125)]
    + [("45\\%", None), ("45%", 45.0), ("$5$", 5.0), ("90^\\circ", 90.0), ("\\text{12}", 12.0)]
    + [("\\frac{\\pi}{2}", None), ("x + 1", None), ("12 apples", None), ("1,23", None), ("", None), (None, None)],
)
def test_as_number_accepts_only_whole_numbers(text, value):
    assert as_number(text) == value


def test_math_answers_compare_numerically_or_as_latex():
    assert math_answers_equal("72.0", "72") and math_answers_equal("1,000", "1000")
    assert math_answers_equal("\\frac{3}{4}", "0.75")
    assert math_answers_equal("\\dfrac{\\pi}{2}", "\\frac{\\pi}{2}")
    assert math_answers_equal("\\left( 1, 2 \\right)", "(1,2)")
    assert not math_answers_equal("2", "\\frac{\\pi}{2}")  # "2" is not the first number of a fraction
    assert not math_answers_equal(None, "1")


# -- math --------------------------------------------------------------------------------------------
def test_math_reads_final_answers_from_gsm8k_and_math_solutions():
    samples = _samples("math", "math.jsonl")
    assert {k: s.gold for k, s in samples.items()} == {
        "m1": ["84"],
        "m2": ["72"],
        "m3": ["\\frac{\\pi}{2}"],
        "m4": ["0.75"],
    }
    assert samples["m3"].question == "What is $\\arcsin(1)$?\n\nSolve the problem. Put the final answer in \\boxed{}."
    assert samples["m1"].context == "" and samples["m1"].meta == {"line": 1}


def test_math_scores_boxed_answers():
    task = TASKS["math"](data=str(DATA / "math.jsonl"))
    samples = _samples("math", "math.jsonl")
    m1, m3, m4 = samples["m1"], samples["m3"], samples["m4"]

    right = task.score("12 * 7 = 84, so the answer is \\boxed{84}.", m1)
    assert right.scores == {"accuracy": 1.0, "abs_error": 0.0} and right.format_ok and right.extracted == "84"
    off = task.score("\\boxed{80}", m1)
    assert off.scores == {"accuracy": 0.0, "abs_error": 4.0} and off.format_ok
    last_box = task.score("First \\boxed{80}, no wait: \\boxed{84.0}", m1)
    assert last_box.scores == {"accuracy": 1.0, "abs_error": 0.0}
    unboxed = task.score("The answer is 84.", m1)
    assert unboxed.scores == {"accuracy": 0.0} and not unboxed.format_ok
    assert unboxed.missing == {"abs_error": "the output has no \\boxed{} answer"}
    words = task.score("\\boxed{eighty-four}", m1)
    assert words.scores == {"accuracy": 0.0} and words.format_ok
    assert words.missing == {"abs_error": "the boxed answer is not a number"}
    latex = task.score("\\boxed{\\dfrac{\\pi}{2}}", m3)
    assert latex.scores == {"accuracy": 1.0} and latex.missing == {"abs_error": "the gold answer is not a number"}
    fraction = task.score("\\boxed{\\frac{3}{4}}", m4)
    assert fraction.scores == {"accuracy": 1.0, "abs_error": 0.0}
    empty = task.score("", m1)
    assert empty.scores == {"accuracy": 0.0} and not empty.format_ok and "abs_error" in empty.missing


def test_math_rows_are_picked_by_seed():
    first = list(_samples("math", "math.jsonl", count=3, seed=0))
    assert first == list(_samples("math", "math.jsonl", count=3, seed=0)) and len(first) == 3
    orders = {tuple(_samples("math", "math.jsonl", count=4, seed=s)) for s in range(5)}
    assert len(orders) > 1


def test_math_file_problems(tmp_path):
    assert TASKS["math"](data=str(tmp_path / "none.jsonl")).check() == [
        ("data", f"file not found: {tmp_path / 'none.jsonl'}")
    ]
    assert TASKS["math"](data="rows.json").check() == [("data", "expected a JSON Lines file (.jsonl), got 'rows.json'")]
    path = _write(tmp_path, [{"question": "1+1?", "answer": "2"}, {"question": "2+2?"}])
    with pytest.raises(ValueError, match=r"rows\.jsonl, line 2: missing field 'answer'"):
        TASKS["math"](data=path).samples(2, 0, _no_length)
    path = _write(tmp_path, [{"answer": "2"}])
    with pytest.raises(ValueError, match=r"rows\.jsonl, line 1: missing field 'question' or 'problem'"):
        TASKS["math"](data=path).samples(1, 0, _no_length)
    with pytest.raises(ValueError, match=r"math data file not found: .*none\.jsonl"):
        TASKS["math"](data=str(tmp_path / "none.jsonl")).samples(1, 0, _no_length)


# -- multiple choice ---------------------------------------------------------------------------------
def test_multiple_choice_reads_arc_formats():
    samples = _samples("multiple_choice", "arc.jsonl")
    assert samples["a1"].gold == ["B"] and samples["a2"].gold == ["C"] and samples["a3"].gold == ["3"]
    assert samples["a1"].question == (
        "Which gas do plants absorb from the air for photosynthesis?\nA. Oxygen\nB. Carbon dioxide\nC. Nitrogen\n"
        "D. Helium\n\nAnswer with the letter of the correct choice."
    )
    assert samples["a2"].meta["choices"] == [["A", "Venus"], ["B", "Earth"], ["C", "Mercury"]]
    assert samples["a3"].question.endswith("3. six\n\nAnswer with the label of the correct choice.")
    assert samples["a1"].answer_prefix == "Answer:"


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("B", "B"),
        ("(B) Carbon dioxide", "B"),
        ("B. Carbon dioxide", "B"),
        ("The answer is (B).", "B"),
        ("answer: b", None),  # a lowercase letter is not a label: it may be the article "a"
        ("I think the correct answer is: D", "D"),
        ("Carbon dioxide", "B"),
        ("\\boxed{B}", "B"),
        ("A plant takes in carbon dioxide.", None),
        ("Photosynthesis uses light.", None),
        ("", None),
    ],
)
def test_multiple_choice_extracts_the_label(answer, label):
    task = TASKS["multiple_choice"](data=str(DATA / "arc.jsonl"))
    scored = task.score(answer, _samples("multiple_choice", "arc.jsonl")["a1"])
    assert scored.extracted == label and scored.format_ok is (label is not None)
    assert scored.scores == {"accuracy": float(label == "B")}


def test_multiple_choice_boolq_is_yes_or_no():
    samples = _samples("multiple_choice", "boolq.jsonl")
    sun = next(s for s in samples.values() if s.gold == ["yes"])
    assert sun.context == "The Sun is the star at the center of the Solar System."
    assert sun.question == "is the sun a star?\n\nAnswer yes or no."
    task = TASKS["multiple_choice"](data=str(DATA / "boolq.jsonl"))
    assert task.score("Yes, it is.", sun).scores == {"accuracy": 1.0}
    no = task.score("No.", sun)
    assert no.scores == {"accuracy": 0.0} and no.format_ok and no.extracted == "no"
    assert task.score("The answer is yes.", sun).extracted == "yes"
    maybe = task.score("Maybe.", sun)
    assert maybe.scores == {"accuracy": 0.0} and not maybe.format_ok


def test_multiple_choice_gold_must_be_a_choice(tmp_path):
    path = _write(tmp_path, [{"question": "q", "choices": ["x", "y"], "answerKey": "C"}])
    with pytest.raises(ValueError, match=r"line 1: gold label 'C' is not one of the choice labels \['A', 'B'\]"):
        TASKS["multiple_choice"](data=path).samples(1, 0, _no_length)


# -- extractive QA -----------------------------------------------------------------------------------
def test_extractive_qa_context_is_the_passage():
    samples = _samples("extractive_qa", "squad.jsonl")
    eiffel = samples["s1"]
    assert eiffel.context.startswith("The Eiffel Tower was completed in 1889")
    assert eiffel.question.endswith("Question: When was the Eiffel Tower completed?")
    assert eiffel.gold == ["1889", "in 1889"] and samples["s2"].gold == ["Marie Curie"]


def test_extractive_qa_scores_f1_and_exact_match():
    task = TASKS["extractive_qa"](data=str(DATA / "squad.jsonl"))
    eiffel = _samples("extractive_qa", "squad.jsonl")["s1"]
    exact = task.score("Answer: 1889\nIt was built for the fair.", eiffel)
    assert exact.scores == {"f1": 1.0, "exact_match": 1.0} and exact.extracted == "1889"
    # "it was completed in 1889 for fair" vs "in 1889": 2 common of 7 and 2 tokens -> F1 = 4/9
    long = task.score("It was completed in 1889 for the fair.", eiffel)
    assert long.scores == {"f1": pytest.approx(4 / 9), "exact_match": 0.0} and long.format_ok
    empty = task.score("", eiffel)
    assert empty.scores == {"f1": 0.0, "exact_match": 0.0} and not empty.format_ok


def test_extractive_qa_rejects_unanswerable_rows(tmp_path):
    path = _write(tmp_path, [{"context": "c", "question": "q", "answers": {"text": [], "answer_start": []}}])
    with pytest.raises(ValueError, match=r"line 1: field 'answers' is empty \(unanswerable"):
        TASKS["extractive_qa"](data=path).samples(1, 0, _no_length)


# -- JSON output and constraints ---------------------------------------------------------------------
def test_paths_select_values():
    document = {"schedule": [{"hour": 1, "load": 30}, {"hour": 2, "load": 40}], "totals": {"cost": 7}}
    assert parse_path("schedule[*].load") == ["schedule", "*", "load"]
    assert select(document, "schedule[*].load") == [30, 40]
    assert select(document, "schedule[1].hour") == [2]
    assert select(document, "totals.cost") == [7]
    assert select(document, "schedule[5].load") == [] and select(document, "nothing[*]") == []
    with pytest.raises(ValueError, match="malformed path"):
        parse_path("schedule[x]")


def test_constraints_bound_items_totals_and_groups():
    document = {"schedule": [{"hour": 1, "load": 30}, {"hour": 1, "load": 40}, {"hour": 2, "load": 20}]}
    per_item = Constraint.parse({"path": "schedule[*].load", "min": 0, "max": 35})
    assert per_item.problems(document) == ["schedule[*].load min=0 max=35: value 40"]
    total = Constraint.parse({"path": "schedule[*]", "field": "load", "max": 90})
    assert total.problems(document) == [] and total.label == "sum of schedule[*].load max=90"
    hourly = Constraint.parse({"path": "schedule[*]", "field": "load", "sum_by": "hour", "max": 50, "name": "cap"})
    assert hourly.problems(document) == ["cap for hour=1: sum 70"]
    broken = {"schedule": [{"hour": 1, "load": "heavy"}]}
    assert hourly.problems(broken) == ["cap for hour=1: a load is missing or not a number"]
    assert Constraint.parse({"path": "missing[*].x", "max": 1}).problems(document) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"path": "a"}, "needs 'min' or 'max'"),
        ({"path": "a", "max": 1, "limit": 2}, "unknown constraint key"),
        ({"path": "a[*]", "sum_by": "hour", "max": 1}, "'sum_by' needs 'field'"),
        ({"max": 1}, "needs a 'path' string"),
        ({"path": "a", "max": "big"}, "max must be a number"),
    ],
)
def test_bad_constraints_are_rejected(spec, message):
    with pytest.raises(ValueError, match=message):
        Constraint.parse(spec)


def test_same_json_compares_numbers_by_value():
    assert same_json({"total": 90}, {"total": 90.0}) and not same_json({"total": 90}, {"total": 91})
    assert not same_json([1, 2], [2, 1]) and not same_json(True, 1) and not same_json({"a": 1}, {"a": 1, "b": 2})


VALID = {
    "schedule": [
        {"job": "A", "hour": 1, "load": 30},
        {"job": "B", "hour": 1, "load": 20},
        {"job": "C", "hour": 2, "load": 40},
    ]
}


def test_json_output_prompt_shows_the_schema():
    sample = _samples("json_output", "json_output.jsonl")["j1"]
    assert sample.context == "Jobs: A needs load 30, B needs load 20, C needs load 40."
    assert sample.question.startswith("Schedule the three jobs over hours 1 and 2.")
    assert '{"type": "object", "properties": {"schedule":' in sample.question


def test_json_output_scores_validity_violations_and_score():
    task = TASKS["json_output"](data=str(DATA / "json_output.jsonl"))
    samples = _samples("json_output", "json_output.jsonl")
    jobs, total = samples["j1"], samples["j2"]

    good = task.score("```json\n" + json.dumps(VALID) + "\n```", jobs)
    assert good.scores == {"validity_rate": 1.0, "violation_rate": 0.0, "score": 1.0} and good.format_ok
    crowded = {"schedule": [{**VALID["schedule"][0]}, {**VALID["schedule"][1]}, {**VALID["schedule"][2], "hour": 1}]}
    over = task.score(json.dumps(crowded), jobs)
    assert over.scores == {"validity_rate": 1.0, "violation_rate": 0.5, "score": 0.0}
    assert over.details == {"violated": ["hourly capacity for hour=1: sum 90"]}
    wrong_type = {"schedule": [{"job": "A", "hour": 1, "load": "thirty"}]}
    invalid = task.score(json.dumps(wrong_type), jobs)
    assert invalid.scores == {"validity_rate": 0.0, "score": 0.0} and invalid.format_ok
    assert invalid.missing == {"violation_rate": "the output is not valid JSON for the schema"}
    assert invalid.details["schema_errors"] == ["'thirty' is not of type 'number'"]
    prose = task.score("I would put A and B in hour 1.", jobs)
    assert prose.scores == {"validity_rate": 0.0, "score": 0.0} and not prose.format_ok
    assert "violation_rate" in prose.missing

    matches = task.score('{"total": 90.0}', total)
    assert matches.scores == {"validity_rate": 1.0, "score": 1.0}
    assert matches.missing == {"violation_rate": "this line has no constraints"}
    differs = task.score('{"total": 91}', total)
    assert differs.scores == {"validity_rate": 1.0, "score": 0.0}


def test_json_output_rejects_bad_schemas_and_constraints(tmp_path):
    path = _write(tmp_path, [{"instruction": "i", "schema": {"type": "objekt"}}])
    with pytest.raises(ValueError, match=r"line 1: field 'schema' is not a valid JSON schema"):
        TASKS["json_output"](data=path).samples(1, 0, _no_length)
    path = _write(tmp_path, [{"instruction": "i", "schema": {}, "constraints": [{"path": "a"}]}])
    with pytest.raises(ValueError, match=r"line 1: constraints\[0\]: constraint .* needs 'min' or 'max'"):
        TASKS["json_output"](data=path).samples(1, 0, _no_length)


# -- a real sweep ------------------------------------------------------------------------------------
def test_a_sweep_reports_posttrain_metrics_and_their_missing_reasons(ray_session, sweep_file, tiny_model):
    path = sweep_file(
        name="posttrain",
        experiment="posttrain",
        max_concurrent=1,
        fixed={"model": str(tiny_model), "samples": 2, "max_new_tokens": 8},
        grid={
            "job": [
                {"task": "math", "data": str(DATA / "math.jsonl")},
                {"task": "json_output", "data": str(DATA / "json_output.jsonl")},
            ]
        },
    )
    plan, summary, _ = run_file(path)
    assert summary.counts["done"] == 2 and summary.failed == 0
    store = SweepStore(plan.spec.sweep_dir)
    records = {t.config["task"]: store.result(t.key) for t in plan.trials}
    math_record, json_record = records["math"], records["json_output"]
    # a random tiny model writes no \boxed{} and no JSON: the scores are real zeros, the rest missing with reasons
    assert math_record["metrics"]["accuracy"] == 0.0 and math_record["metrics"]["format_ok_rate"] == 0.0
    assert math_record["missing"] == {"abs_error": "the output has no \\boxed{} answer"}
    assert json_record["metrics"]["validity_rate"] == 0.0 and json_record["metrics"]["score"] == 0.0
    assert json_record["missing"] == {"violation_rate": "the output is not valid JSON for the schema"}
    rows = [json.loads(line) for line in (store.trial_dir(plan.trials[0].key) / "generations.jsonl").open()]
    assert len(rows) == 2 and all("missing" in r and "scores" in r for r in rows)
