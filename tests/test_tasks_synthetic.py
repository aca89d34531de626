"""Synthetic long-context tasks (niah, json_kv, variable_tracking): sizing, determinism, placement, scoring."""

from __future__ import annotations

import json
import random
import re

import pytest
from transformers import AutoTokenizer

from evaluators.prompting import PromptRenderer
from evaluators.tasks import TASKS, Sample
from evaluators.tasks.fitting import largest_fitting
from evaluators.tasks.json_kv import random_uuid
from sweeps.validation import build


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def renderer(tokenizer):
    return PromptRenderer(tokenizer, "auto")


# -- sizing ------------------------------------------------------------------------------------------
def test_largest_fitting_finds_the_boundary_from_any_hint():
    for hint in (0, 1, 36, 37, 38, 500):
        assert largest_fitting(lambda n: n <= 37, hint=hint) == 37
    assert largest_fitting(lambda n: n <= 37, hint=5, upper=20) == 20
    assert largest_fitting(lambda n: False, hint=4) == -1
    assert largest_fitting(lambda n: n == 0, hint=9) == 0


def test_largest_fitting_needs_few_probes_from_a_good_hint():
    probes = []

    def fits(n: int) -> bool:
        probes.append(n)
        return n <= 1000

    assert largest_fitting(fits, hint=1000) == 1000
    assert probes == [1000, 1001]


CASES = [
    ("niah", {}),
    ("niah", {"variant": "multikey", "num_keys": 3, "haystack": "repeat"}),
    ("niah", {"variant": "multivalue", "num_values": 3, "haystack": "needles"}),
    ("json_kv", {}),
    ("variable_tracking", {"num_chains": 2, "num_hops": 3}),
]


@pytest.mark.parametrize("policy", ["auto", "off"])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_prompts_fill_the_context_length(tokenizer, policy, name, params):
    renderer = PromptRenderer(tokenizer, policy)
    task = TASKS[name](context_length=700, **params)
    lengths = [len(renderer.render(s).ids) for s in task.samples(3, 0, renderer.length)]
    # no prompt is longer than asked, and none is short by more than one filler unit (~1 sentence / pair)
    assert all(600 <= n <= 700 for n in lengths), lengths


@pytest.mark.parametrize(("name", "params"), CASES)
def test_samples_are_deterministic_in_the_seed(renderer, name, params):
    task = TASKS[name](context_length=600, **params)
    first = [(s.context, s.question, s.gold) for s in task.samples(3, 7, renderer.length)]
    assert first == [(s.context, s.question, s.gold) for s in task.samples(3, 7, renderer.length)]
    assert [g for *_, g in first] != [s.gold for s in task.samples(3, 8, renderer.length)]


@pytest.mark.parametrize("name", ["niah", "json_kv", "variable_tracking"])
def test_a_context_length_without_room_for_filler_is_an_error(renderer, name):
    with pytest.raises(ValueError, match="context_length 64 is too short"):
        TASKS[name](context_length=64).samples(1, 0, renderer.length)


def test_parameters_are_checked_before_anything_runs():
    assert TASKS["niah"](variant="multikey", num_keys=1).check() == [("num_keys", "must be at least 2, got 1")]
    assert TASKS["niah"](needle_depth=[0.2, 1.5]).check() == [
        ("needle_depth", "depths are fractions of the context in [0, 1], got [0.2, 1.5]")
    ]
    assert TASKS["variable_tracking"](num_hops=0).check() == [("num_hops", "must be at least 1, got 0")]
    assert TASKS["json_kv"](context_length=10).check() == [("context_length", "must be at least 64 tokens, got 10")]
    _, errors = build(TASKS["niah"], {"variant": "multi"})
    assert len(errors) == 1 and "'multikey'" in errors[0].render() and "'multivalue'" in errors[0].render()
    task, errors = build(TASKS["niah"], {"needle_depth": [0.1, 0.9], "haystack": "needles"})
    assert not errors and task.needle_depth == [0.1, 0.9]


# -- niah --------------------------------------------------------------------------------------------
def _needles(context: str) -> list[tuple[str, str]]:
    return re.findall(r"One of the special magic numbers for ([\w-]+) is: (\d+)\.", context)


def test_niah_single_hides_one_needle_at_each_depth(renderer):
    early, late = TASKS["niah"](context_length=1600, needle_depth=[0.1, 0.9]).samples(2, 0, renderer.length)
    for sample, depth in ((early, 0.1), (late, 0.9)):
        ((key, value),) = _needles(sample.context)
        assert sample.gold == [value] and len(value) == 7 and sample.meta["needle_depth"] == depth
        assert key in sample.question and sample.answer_prefix.endswith(f"for {key} mentioned in the provided text is")
        # each prose sentence holds one full stop: count the sentences in front of the needle
        haystack = sample.context.split("\n", 1)[1]
        before = haystack[: haystack.index("One of the special magic")].count(".")
        assert before == round(depth * sample.meta["haystack_units"])
    assert min(early.meta["haystack_units"], late.meta["haystack_units"]) >= 15


def test_niah_multikey_asks_one_of_several_keys(renderer):
    (sample,) = TASKS["niah"](variant="multikey", num_keys=5, context_length=900).samples(1, 3, renderer.length)
    needles = _needles(sample.context)
    keys = [k for k, _ in needles]
    assert len(needles) == 5 and len(set(keys)) == 5
    asked = sample.meta["key"]
    assert dict(needles)[asked] == sample.gold[0] and f"for {asked} mentioned" in sample.question


def test_niah_multivalue_needs_every_value_of_one_key(renderer):
    task = TASKS["niah"](variant="multivalue", num_values=4, context_length=900)
    (sample,) = task.samples(1, 0, renderer.length)
    needles = _needles(sample.context)
    assert {k for k, _ in needles} == {sample.meta["key"]}
    assert sorted(v for _, v in needles) == sorted(sample.gold) and len(set(sample.gold)) == 4
    assert sample.question.startswith("What are all the special magic numbers")


def test_niah_needle_haystack_is_made_of_distractor_needles(renderer):
    (sample,) = TASKS["niah"](haystack="needles", context_length=600).samples(1, 0, renderer.length)
    needles = _needles(sample.context)
    assert len(needles) == sample.meta["haystack_units"] + 1 > 5
    assert [k for k, _ in needles].count(sample.meta["key"]) == 1


def test_niah_scores_substring_match_and_partial_recall():
    task = TASKS["niah"]()
    single = Sample("s", "", "", ["4821937"])
    right = task.score("The special magic number is 4821937.", single)
    assert right.scores == {"score": 1.0} and right.format_ok and right.extracted == ["4821937"]
    wrong = task.score("It is 4821936.", single)
    assert wrong.scores == {"score": 0.0} and wrong.format_ok
    words = task.score("I could not find it.", single)
    assert words.scores == {"score": 0.0} and not words.format_ok and words.extracted is None
    empty = task.score("", single)
    assert empty.scores == {"score": 0.0} and not empty.format_ok

    many = Sample("m", "", "", ["1111111", "2222222", "3333333", "4444444"])
    partial = TASKS["niah"](variant="multivalue").score("3333333, 1111111 and 4444444", many)
    assert partial.scores == {"score": 0.75} and partial.details == {"recalled": ["1111111", "3333333", "4444444"]}


# -- json_kv -----------------------------------------------------------------------------------------
def test_random_uuid_is_a_reproducible_version_4_uuid():
    first = random_uuid(random.Random(11))
    assert first == random_uuid(random.Random(11)) != random_uuid(random.Random(12))
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", first)


def test_json_kv_asks_the_key_at_the_needle_depth(renderer):
    task = TASKS["json_kv"](context_length=1200, needle_depth=[0.0, 0.5, 1.0])
    for sample in task.samples(3, 1, renderer.length):
        assert sample.context.startswith("JSON data:\n{")
        pairs = json.loads(sample.context.removeprefix("JSON data:\n"))
        keys = list(pairs)
        key = re.search(r'Key: "([0-9a-f-]{36})"', sample.question).group(1)
        assert pairs[key] == sample.gold[0] and len(keys) == sample.meta["num_kvs"] > 5
        assert keys.index(key) == round(sample.meta["needle_depth"] * (len(keys) - 1))
        assert sample.answer_prefix == "Corresponding value:"


def test_json_kv_scores_the_value_and_flags_answers_without_a_uuid():
    task = TASKS["json_kv"]()
    gold = "9c15f481-5e07-47f4-95a1-a228a1ce3f29"
    sample = Sample("k", "", "", [gold])
    right = task.score(f' "{gold}"', sample)
    assert right.scores == {"score": 1.0} and right.format_ok and right.extracted == gold
    other = task.score("2169f5a3-e192-4dbc-89ea-9e21b5ad813f", sample)
    assert other.scores == {"score": 0.0} and other.format_ok
    # the value written without dashes still matches after normalization, but is not UUID-shaped
    bare = task.score(gold.replace("-", ""), sample)
    assert bare.scores == {"score": 1.0} and not bare.format_ok and bare.extracted is None
    assert task.score("", sample).scores == {"score": 0.0} and not task.score("", sample).format_ok


# -- variable tracking -------------------------------------------------------------------------------
def test_variable_tracking_chains_appear_in_order(renderer):
    task = TASKS["variable_tracking"](num_chains=2, num_hops=3, context_length=900)
    (sample,) = task.samples(1, 5, renderer.length)
    first, second = sample.meta["chains"]
    assert sample.gold == first and len(first) == 4 and not set(first) & set(second)
    value = sample.meta["value"]
    assert f"VAR {first[0]} = {value}." in sample.context
    for chain in (first, second):
        positions = [sample.context.index(f"VAR {name} = ") for name in chain]
        assert positions == sorted(positions)
        for before, after in zip(chain, chain[1:], strict=False):
            assert f"VAR {after} = VAR {before}." in sample.context
    assert sample.question == f"Question: Find all variables that are assigned the value {value} in the text above."
    assert f"4 variables are assigned the value {value}, they are:" in sample.answer_prefix


def test_variable_tracking_scores_recall_of_the_chain():
    task = TASKS["variable_tracking"]()
    sample = Sample("v", "", "", ["QPWLE", "MZRKA", "BTXOU", "HHJQS", "LCNEV"])
    full = task.score("QPWLE, MZRKA, BTXOU, HHJQS, LCNEV", sample)
    assert full.scores == {"score": 1.0} and full.format_ok
    part = task.score("MZRKA, LCNEV, QPWLE and also AAAAA", sample)
    assert part.scores == {"score": pytest.approx(0.6)} and part.details == {"recalled": ["QPWLE", "MZRKA", "LCNEV"]}
    none = task.score("none of them", sample)
    assert none.scores == {"score": 0.0} and not none.format_ok and none.extracted is None
