"""Passkey samples and prompt rendering under each chat-template policy."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from evaluators.prompting import ChatTemplateError, PromptRenderer
from evaluators.scoring import substring_exact_match
from evaluators.tasks import TASKS


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def plain_tokenizer(tiny_model_plain):
    return AutoTokenizer.from_pretrained(tiny_model_plain)


@pytest.mark.parametrize("policy", ["auto", "off"])
def test_passkey_prompts_fill_the_context_length(tokenizer, policy):
    renderer = PromptRenderer(tokenizer, policy)
    task = TASKS["passkey"](context_length=600, needle_depth=[0.0, 0.5, 1.0])
    samples = task.samples(6, seed=3, prompt_length=renderer.length)
    lengths = [len(renderer.render(s).ids) for s in samples]
    assert all(540 <= n <= 610 for n in lengths), lengths
    assert [s.meta["needle_depth"] for s in samples] == [0.0, 0.5, 1.0, 0.0, 0.5, 1.0]
    for sample in samples:
        key = sample.gold[0]
        assert len(key) == 5 and sample.context.count(key) == 2


def test_passkey_is_deterministic_in_the_seed(tokenizer):
    renderer = PromptRenderer(tokenizer)
    task = TASKS["passkey"](context_length=300)
    first = [s.gold for s in task.samples(4, 0, renderer.length)]
    assert first == [s.gold for s in task.samples(4, 0, renderer.length)]
    assert first != [s.gold for s in task.samples(4, 1, renderer.length)]


def test_needle_depth_places_the_key(tokenizer):
    renderer = PromptRenderer(tokenizer)
    early, late = TASKS["passkey"](context_length=500, needle_depth=[0.1, 0.9]).samples(2, 0, renderer.length)
    assert early.context.index(early.gold[0]) < len(early.context) * 0.25
    assert late.context.index(late.gold[0]) > len(late.context) * 0.75


def test_context_and_question_split_exactly(tokenizer):
    renderer = PromptRenderer(tokenizer, "auto")
    (sample,) = TASKS["passkey"](context_length=300).samples(1, 0, renderer.length)
    rendered = renderer.render(sample)
    head = tokenizer.decode(rendered.ids[: rendered.question_start])
    tail = tokenizer.decode(rendered.ids[rendered.question_start :])
    assert head.startswith("<|im_start|>user\n") and head.endswith(sample.context)
    assert sample.question in tail and tail.endswith("<|im_start|>assistant\n" + sample.answer_prefix)


def test_chat_template_policies(tokenizer, plain_tokenizer):
    assert PromptRenderer(tokenizer, "auto").applied
    off = PromptRenderer(tokenizer, "off")
    assert not off.applied and off.off_for_chat_model
    plain = PromptRenderer(plain_tokenizer, "auto")
    assert not plain.applied and not plain.off_for_chat_model
    with pytest.raises(ChatTemplateError, match="no chat template"):
        PromptRenderer(plain_tokenizer, "on")


def test_substring_exact_match_normalizes():
    assert substring_exact_match(" 46398.", ["46398"]) == 1.0
    assert substring_exact_match("The pass key is 4639", ["46398"]) == 0.0
    assert substring_exact_match("", ["46398"]) == 0.0


def test_line_stop_waits_for_text_before_a_line_break(tokenizer):
    from evaluators.stopping import LineStop

    stop = LineStop.for_tokenizer(tokenizer)
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    words = tokenizer("The pass key", add_special_tokens=False)["input_ids"]
    assert not stop(newline)  # a leading line break is not an answer yet
    assert not stop(newline + words)
    assert stop(newline + words + newline)
    assert LineStop.for_tokenizer(tokenizer) is stop  # computed once per tokenizer
