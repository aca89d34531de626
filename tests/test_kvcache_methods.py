"""PyramidKV, H2O, DuoAttention and KV quantization: exactness, budgets, hand-computed selections, sizes."""

from __future__ import annotations

import math

import pytest
import torch
from tiny import build_model

from evaluators.generation import generate
from evaluators.kvcache import TECHNIQUES, LayerView
from evaluators.kvcache import h2o as h2o_module
from evaluators.kvcache.attention import install
from evaluators.kvcache.base import ModelContext
from evaluators.kvcache.duoattention import full_heads, read_pattern, write_pattern
from evaluators.kvcache.h2o import accumulated_attention
from evaluators.kvcache.pyramidkv import pyramid_budgets

PROMPT, NEW, LAYERS, KV_HEADS, HEAD_DIM = 180, 8, 3, 2, 16
GATES = [[0.9, 0.1], [0.2, 0.8], [0.5, 0.05]]  # layers x KV heads, DuoAttention's format


@pytest.fixture(scope="module")
def model():
    m = build_model(vocab_size=400, eos_token_id=1, bos_token_id=0, seed=3, layers=LAYERS)
    install(m)
    return m


@pytest.fixture(scope="module")
def prompt():
    return torch.randint(5, 400, (PROMPT,), generator=torch.Generator().manual_seed(7)).tolist()


@pytest.fixture(scope="module")
def pattern(tmp_path_factory):
    folder = tmp_path_factory.mktemp("duo-pattern")
    write_pattern(GATES, folder / "full_attention_heads.tsv")
    return folder


def run(model, prompt, technique, split=None, kv_bits=None, trial_dir="/tmp"):
    technique.prepare(ModelContext(model, None, None, trial_dir))
    return generate(model, prompt, technique, max_new_tokens=NEW, eos_ids=set(), compress_until=split, kv_bits=kv_bits)


def covering(budget: int, pattern) -> list:
    """Each technique with the budget that exactly covers ``budget`` compressible tokens."""
    window = 8
    return [
        TECHNIQUES["h2o"](cache_size=budget, recent_size=16),
        # the last layer's budget is window + (cache - window) / beta: make that the prompt
        TECHNIQUES["pyramidkv"](window_size=window, cache_size=window + 20 * (budget - window)),
        TECHNIQUES["duoattention"](cache_size=budget, sink_tokens=4, sparsity=0.5, pattern=str(pattern)),
    ]


@pytest.mark.parametrize("query_aware", [True, False])
def test_full_budget_reproduces_baseline_exactly(model, prompt, pattern, query_aware):
    split = None if query_aware else 150
    budget = PROMPT if query_aware else 150
    baseline = run(model, prompt, TECHNIQUES["baseline"](), split)
    for technique in covering(budget, pattern):
        result = run(model, prompt, technique, split)
        assert result.token_ids == baseline.token_ids, technique.label()
        assert all(kept == [budget] * KV_HEADS for kept in result.kept_per_head), technique.label()


def test_pyramid_budgets_fall_linearly_and_average_to_the_cache_size():
    # c = 128 - 8 = 120; beta 20: from 2c - c/20 = 234 down to c/20 = 6, plus the window
    assert pyramid_budgets(128, 8, 4, 20) == [242, 166, 90, 14]
    budgets = pyramid_budgets(1000, 32, 30, 20)
    assert sum(budgets) == 30 * 1000 and budgets == sorted(budgets, reverse=True)


def test_pyramidkv_keeps_its_budget_on_each_layer(model, prompt):
    result = run(model, prompt, TECHNIQUES["pyramidkv"](window_size=8, cache_size=64))
    assert result.kept_per_layer == pyramid_budgets(64, 8, LAYERS, 20)  # [117, 64, 11]


def test_h2o_keeps_its_budget(model, prompt):
    result = run(model, prompt, TECHNIQUES["h2o"](cache_size=64, recent_size=16))
    assert result.kept_per_layer == [64, 64, 64]


def hand_accumulated(queries, keys, scaling):
    length = keys.shape[2]
    totals = [0.0] * length
    for i in range(length):
        logits = [float(queries[0, 0, i] @ keys[0, 0, j]) * scaling for j in range(i + 1)]
        top = max(logits)
        weights = [math.exp(x - top) for x in logits]
        for j, w in enumerate(weights):
            totals[j] += w / sum(weights)
    return totals


def test_h2o_selects_heavy_hitters_by_attention_accumulated_over_all_queries():
    keys = torch.zeros(1, 1, 7, 2)
    keys[0, 0, 2] = torch.tensor([4.0, 0.0])  # a heavy hitter every later query looks at
    keys[0, 0, 4] = torch.tensor([2.0, 0.0])
    queries = torch.zeros(1, 1, 7, 2)
    queries[0, 0, :, 0] = 1.0
    view = LayerView(0, 1, queries, keys, keys, 1.0)
    expected = hand_accumulated(queries, keys, 1.0)
    assert accumulated_attention(view)[0, 0].tolist() == pytest.approx(expected, abs=1e-6)
    kept = TECHNIQUES["h2o"](cache_size=4, recent_size=2).keep(view)[0, 0].tolist()
    heavy = sorted(sorted(range(5), key=lambda j: expected[j], reverse=True)[:2])
    # token 2 collects ~0.8-0.97 from each of queries 2..6 (~4.4); token 0 is a sink: all of
    # query 0 and half of query 1 (~1.55); token 4 only ~0.11 from each of queries 4..6
    assert kept == [*heavy, 5, 6] and heavy == [0, 2]


@pytest.mark.parametrize("chunk_elements", [2**26, 100])  # one chunk, or chunks of two queries (the last of one)
def test_h2o_accumulated_attention_over_gqa_heads_and_query_chunks(monkeypatch, chunk_elements):
    monkeypatch.setattr(h2o_module, "CHUNK_ELEMENTS", chunk_elements)
    generator = torch.Generator().manual_seed(3)
    kv_heads, groups, length, scaling = 2, 2, 11, 0.5
    queries = torch.randn(1, kv_heads * groups, length, 4, generator=generator)
    keys = torch.randn(1, kv_heads, length, 4, generator=generator)
    got = accumulated_attention(LayerView(0, 1, queries, keys, keys, scaling))
    for kv in range(kv_heads):  # each KV head: the mean over the query heads of its group
        per_query_head = [
            hand_accumulated(queries[:, kv * groups + g : kv * groups + g + 1], keys[:, kv : kv + 1], scaling)
            for g in range(groups)
        ]
        expected = [sum(column) / groups for column in zip(*per_query_head, strict=True)]
        assert got[0, kv].tolist() == pytest.approx(expected, abs=1e-5)


def test_duoattention_head_split_follows_the_pattern_and_sparsity(pattern):
    gates = read_pattern(pattern)
    assert gates == GATES
    # the 3 lowest of 6 gates (0.05, 0.1, 0.2) are streaming heads
    assert full_heads(gates, 0.5) == [[True, False], [False, True], [True, False]]
    assert full_heads(gates, 0.0) == [[True, True]] * 3
    assert full_heads(gates, 1.0) == [[False, False]] * 3


def test_duoattention_keeps_full_and_streaming_heads_per_head(model, prompt, pattern, tmp_path):
    result = run(
        model,
        prompt,
        TECHNIQUES["duoattention"](cache_size=40, sink_tokens=4, sparsity=0.5, pattern=str(pattern)),
        trial_dir=tmp_path,
    )
    assert result.kept_per_head == [[PROMPT, 40], [40, PROMPT], [PROMPT, 40]]
    assert read_pattern(tmp_path / "full_attention_heads.tsv") == GATES  # written with 6 decimals


def test_duoattention_estimates_a_pattern_without_a_file(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evaluators.prompting import PromptRenderer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    install(model)
    context = ModelContext(model, tokenizer, PromptRenderer(tokenizer), tmp_path)
    technique = TECHNIQUES["duoattention"](cache_size=64, sink_tokens=4, sparsity=0.5, estimate_length=300)
    assert technique.prepare(context) == ["full_attention_heads.tsv"]
    gates = read_pattern(tmp_path / "full_attention_heads.tsv")
    assert len(gates) == model.config.num_hidden_layers and {len(r) for r in gates} == {2}
    assert all(0.0 <= g <= 1.0 for row in gates for g in row) and len({g for row in gates for g in row}) > 1


def analytic_bytes(kept_per_head, bytes_per_element: float) -> float:
    return sum(sum(layer) for layer in kept_per_head) * HEAD_DIM * 2 * bytes_per_element


@pytest.mark.parametrize("kv_bits", [None, 8, 4, 2])
def test_kv_cache_size_equals_the_analytic_size(model, prompt, pattern, kv_bits):
    techniques = [TECHNIQUES[name]() for name in ("baseline", "int8", "int4")] + [
        TECHNIQUES["streamingllm"](cache_size=64),
        TECHNIQUES["snapkv"](window_size=8, cache_size=64),
        TECHNIQUES["pyramidkv"](window_size=8, cache_size=64),
        TECHNIQUES["h2o"](cache_size=64, recent_size=16),
    ]
    if kv_bits is None:
        techniques.append(TECHNIQUES["duoattention"](cache_size=40, sink_tokens=4, pattern=str(pattern)))
    for technique in techniques:
        result = run(model, prompt, technique, kv_bits=kv_bits)
        per_element = 4 if kv_bits is None else kv_bits / 8  # float32, or packed bits
        assert result.kv_cache_bytes == analytic_bytes(result.kept_per_head, per_element), technique.label()
        assert (result.kv_quant_meta_bytes > 0) == (kv_bits is not None)


def test_kv_bits_8_keeps_the_output_close_to_baseline(model, prompt):
    baseline = run(model, prompt, TECHNIQUES["baseline"]())
    assert run(model, prompt, TECHNIQUES["baseline"](), kv_bits=8).token_ids == baseline.token_ids
