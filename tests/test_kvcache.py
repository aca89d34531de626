"""KV-cache techniques on a tiny model: exactness, budgets, true positions, selection rules."""

from __future__ import annotations

import math

import pytest
import torch
from tiny import build_model

from evaluators.generation import generate
from evaluators.kvcache import TECHNIQUES, LayerView
from evaluators.kvcache.attention import install
from evaluators.kvcache.snapkv import pool_scores, prefix_scores

PROMPT = 180
NEW = 8


@pytest.fixture(scope="module")
def model():
    m = build_model(vocab_size=400, eos_token_id=1, bos_token_id=0, seed=3, layers=3)
    install(m)
    return m


@pytest.fixture(scope="module")
def prompt():
    return torch.randint(5, 400, (PROMPT,), generator=torch.Generator().manual_seed(7)).tolist()


def run(model, prompt, technique, split=None):
    return generate(model, prompt, technique, max_new_tokens=NEW, eos_ids=set(), compress_until=split)


def techniques(cache_size):
    return [
        TECHNIQUES["streamingllm"](cache_size=cache_size, sink_tokens=4),
        TECHNIQUES["snapkv"](window_size=16, cache_size=cache_size, pooling="avgpool"),
        TECHNIQUES["snapkv"](window_size=16, cache_size=cache_size, pooling="maxpool", kernel_size=5),
    ]


def test_baseline_matches_transformers_generate(model, prompt):
    reference = model.generate(
        torch.tensor([prompt]), max_new_tokens=NEW, do_sample=False, eos_token_id=None, pad_token_id=0
    )[0, PROMPT:].tolist()
    assert run(model, prompt, TECHNIQUES["baseline"]()).token_ids == reference


@pytest.mark.parametrize("query_aware", [True, False])
def test_full_budget_reproduces_baseline_exactly(model, prompt, query_aware):
    split = None if query_aware else 150
    budget = PROMPT if query_aware else 150  # exactly the compressible length: selection runs, keeps all
    baseline = run(model, prompt, TECHNIQUES["baseline"](), split)
    for technique in techniques(budget):
        result = run(model, prompt, technique, split)
        assert result.token_ids == baseline.token_ids, technique.label()
        assert result.kept_per_layer == [budget] * 3


@pytest.mark.parametrize("query_aware", [True, False])
def test_kept_length_equals_budget_on_every_layer(model, prompt, query_aware):
    split = None if query_aware else 150
    for technique in techniques(64):
        result = run(model, prompt, technique, split)
        assert result.kept_per_layer == [64, 64, 64], technique.label()
        appended = 0 if query_aware else PROMPT - 150  # the question joins the cache uncompressed
        bytes_per_token = 3 * 2 * 16 * 2 * 4  # layers x kv heads x head dim x (k, v) x float32
        assert result.kv_cache_bytes == (64 + appended) * bytes_per_token


def test_generated_tokens_sit_at_true_positions(model, prompt):
    seen: list[list[int]] = []
    hook = model.model.rotary_emb.register_forward_hook(
        lambda mod, args, kwargs, out: seen.append(kwargs["position_ids"][0].tolist()), with_kwargs=True
    )
    try:
        result = run(model, prompt, TECHNIQUES["snapkv"](window_size=16, cache_size=48))
    finally:
        hook.remove()
    assert seen[0] == list(range(PROMPT))  # prefill
    decode = [p for step in seen[1:] for p in step]
    assert decode == [PROMPT + i for i in range(NEW - 1)]  # not 48, 49, ... (the cache length)
    assert result.kept_per_layer == [48] * 3


def test_compression_changes_the_output_when_it_bites(model, prompt):
    baseline = run(model, prompt, TECHNIQUES["baseline"]())
    squeezed = [run(model, prompt, t).token_ids for t in techniques(24)]
    assert any(tokens != baseline.token_ids for tokens in squeezed)


def test_streamingllm_keeps_sinks_and_recent_tokens():
    keys = torch.zeros(1, 2, 10, 4)
    view = LayerView(0, 1, torch.zeros(1, 4, 10, 4), keys, keys, 0.5)
    kept = TECHNIQUES["streamingllm"](cache_size=6, sink_tokens=2).keep(view)
    assert kept.shape == (1, 2, 6)
    assert kept[0, 0].tolist() == [0, 1, 6, 7, 8, 9] and kept[0, 1].tolist() == [0, 1, 6, 7, 8, 9]


def hand_snapkv_scores(queries, keys, window, scaling):
    """SnapKV scores written out with loops, to check the vectorized version against."""
    _, q_heads, length, _ = queries.shape
    kv_heads = keys.shape[1]
    groups = q_heads // kv_heads
    scores = [[0.0] * (length - window) for _ in range(kv_heads)]
    for h in range(q_heads):
        kv = h // groups
        for i in range(length - window, length):
            logits = [
                float(queries[0, h, i] @ keys[0, kv, j]) * scaling if j <= i else -math.inf for j in range(length)
            ]
            top = max(logits)
            weights = [math.exp(x - top) for x in logits]
            total = sum(weights)
            for j in range(length - window):
                scores[kv][j] += weights[j] / total / groups
    return torch.tensor(scores)


def test_snapkv_scores_average_query_heads_of_each_kv_head():
    gen = torch.Generator().manual_seed(0)
    queries = torch.randn(1, 4, 7, 3, generator=gen)
    keys = torch.randn(1, 2, 7, 3, generator=gen)
    view = LayerView(0, 1, queries, keys, keys, 0.5)
    got = prefix_scores(view, window=3, pooling="avgpool", kernel_size=1)
    assert torch.allclose(got[0], hand_snapkv_scores(queries, keys, 3, 0.5), atol=1e-6)


def test_pooling_spreads_scores_to_neighbours():
    scores = torch.tensor([[[0.0, 1.0, 0.0, 0.0, 5.0, 0.0]]])
    assert pool_scores(scores, "maxpool", 3)[0, 0].tolist() == [1.0, 1.0, 1.0, 5.0, 5.0, 5.0]
    avg = pool_scores(scores, "avgpool", 3)[0, 0].tolist()
    assert avg == pytest.approx([0.5, 1 / 3, 1 / 3, 5 / 3, 5 / 3, 2.5])


def test_snapkv_keeps_the_window_and_the_most_attended_prefix():
    # One KV head; the window's queries point at key 1 strongly and key 3 weakly.
    keys = torch.zeros(1, 1, 8, 2)
    keys[0, 0, 1] = torch.tensor([10.0, 0.0])
    keys[0, 0, 3] = torch.tensor([3.0, 0.0])
    queries = torch.zeros(1, 1, 8, 2)
    queries[0, 0, :, 0] = 1.0
    view = LayerView(0, 1, queries, keys, keys, 1.0)
    kept = TECHNIQUES["snapkv"](window_size=2, cache_size=4, kernel_size=1).keep(view)
    assert kept[0, 0].tolist() == [1, 3, 6, 7]


def test_generation_ends_where_the_stop_rule_says(model, prompt):
    result = generate(
        model, prompt, TECHNIQUES["baseline"](), max_new_tokens=NEW, eos_ids=set(), stop=lambda tokens: len(tokens) == 3
    )
    full = run(model, prompt, TECHNIQUES["baseline"]())
    assert result.token_ids == full.token_ids[:3] and not result.stopped_by_eos
