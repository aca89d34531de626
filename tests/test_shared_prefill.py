"""One prefill for many compression settings: every member of a group equals its run alone, exactly."""

from __future__ import annotations

import pytest
import torch
from tiny import build_model

import evaluators.kvcache.h2o as h2o_module
import evaluators.kvcache.snapkv as snapkv_module
from evaluators.generation import generate
from evaluators.kvcache import TECHNIQUES
from evaluators.kvcache.attention import hooked, install
from evaluators.kvcache.base import ModelContext
from evaluators.kvcache.duoattention import write_pattern
from evaluators.kvcache.pyramidkv import pyramid_budgets
from evaluators.shared_prefill import Member, SharedCompression, generate_group, group_key

PROMPT, SPLIT, NEW, LAYERS = 160, 130, 6, 3
GATES = [[0.9, 0.1], [0.2, 0.8], [0.5, 0.05]]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's matrices are too small to split across threads; on a busy machine it only costs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def every_technique(pattern, kv_bits):
    """Every registered technique that can share a prefill, with budgets that bite and that do not."""
    members = [
        TECHNIQUES["baseline"](),
        TECHNIQUES["streamingllm"](cache_size=48, sink_tokens=4),
        TECHNIQUES["snapkv"](window_size=16, cache_size=40, pooling="avgpool"),
        TECHNIQUES["snapkv"](window_size=16, cache_size=72, pooling="avgpool"),
        TECHNIQUES["snapkv"](window_size=16, cache_size=56, pooling="maxpool", kernel_size=5),
        TECHNIQUES["snapkv"](window_size=16, cache_size=400),  # keeps everything
        TECHNIQUES["pyramidkv"](window_size=16, cache_size=56),
        TECHNIQUES["h2o"](cache_size=48, recent_size=16),
        TECHNIQUES["h2o"](cache_size=80, recent_size=8),
    ]
    if kv_bits is None:  # its per-head caches cannot be stored quantized
        members.append(TECHNIQUES["duoattention"](cache_size=40, sink_tokens=4, sparsity=0.5, pattern=str(pattern)))
    return members


def prepared(model, techniques, tmp_path):
    for technique in techniques:
        technique.prepare(ModelContext(model, None, None, tmp_path))
    return techniques


def alone(model, prompt, technique, split, kv_bits):
    return generate(model, prompt, technique, max_new_tokens=NEW, eos_ids=set(), compress_until=split, kv_bits=kv_bits)


def assert_same(single, member, label):
    assert member.token_ids == single.token_ids, label
    assert member.kept_per_head == single.kept_per_head, label
    assert member.kept_per_layer == single.kept_per_layer, label
    assert member.kv_cache_bytes == single.kv_cache_bytes, label
    assert member.kv_quant_meta_bytes == single.kv_quant_meta_bytes, label
    assert member.positions == single.positions and member.stopped_by_eos == single.stopped_by_eos, label


@pytest.mark.parametrize("kv_bits", [None, 4])
@pytest.mark.parametrize("query_aware", [True, False])
def test_every_member_equals_its_run_alone(model, prompt, pattern, tmp_path, query_aware, kv_bits):
    split = None if query_aware else SPLIT
    techniques = prepared(model, every_technique(pattern, kv_bits), tmp_path)
    group = generate_group(
        model, prompt, [Member(t, kv_bits) for t in techniques], max_new_tokens=NEW, eos_ids=set(), compress_until=split
    )
    outputs = set()
    for technique, member in zip(techniques, group.members, strict=True):
        assert_same(alone(model, prompt, technique, split, kv_bits), member, technique.label())
        outputs.add(tuple(member.token_ids))
    assert len(outputs) > 2  # the budgets bite: members differ from one another
    if kv_bits is None:  # plain caches of similar size decoded as padded batches
        assert any(len(rows) > 2 for rows in group.decode_batches)


def test_members_store_their_caches_in_bits_of_their_own(model, prompt):
    members = [
        Member(TECHNIQUES["baseline"]()),
        Member(TECHNIQUES["baseline"](), kv_bits=4),
        Member(TECHNIQUES["snapkv"](window_size=16, cache_size=56), kv_bits=8),
        Member(TECHNIQUES["snapkv"](window_size=16, cache_size=56), kv_bits=2),
        Member(TECHNIQUES["snapkv"](window_size=16, cache_size=56)),
    ]
    group = generate_group(model, prompt, members, max_new_tokens=NEW, eos_ids=set(), compress_until=SPLIT)
    for member, result in zip(members, group.members, strict=True):
        single = alone(model, prompt, member.technique, SPLIT, member.kv_bits)
        assert_same(single, result, f"{member.technique.label()} kv_bits={member.kv_bits}")
    assert len({m.kv_cache_bytes for m in group.members}) == 5
    assert sorted(map(sorted, group.decode_batches)) == [[0, 4], [1], [2], [3]]  # quantized caches decode alone


def test_batched_decoding_pads_different_lengths_and_keeps_true_positions(model, prompt):
    techniques = [
        TECHNIQUES["snapkv"](window_size=16, cache_size=40),
        TECHNIQUES["pyramidkv"](window_size=16, cache_size=56),  # a different length on every layer
        TECHNIQUES["streamingllm"](cache_size=64),
    ]
    members = [Member(t) for t in techniques]
    seen: list[list[list[int]]] = []
    hook = model.model.rotary_emb.register_forward_hook(
        lambda mod, args, kwargs, out: seen.append(kwargs["position_ids"].tolist()), with_kwargs=True
    )
    try:
        batched = generate_group(model, prompt, members, max_new_tokens=NEW, eos_ids=set())
    finally:
        hook.remove()
    assert batched.decode_batches == [[0, 1, 2]]
    assert [m.kept_per_layer[0] for m in batched.members] == [40, pyramid_budgets(56, 16, LAYERS, 20)[0], 64]
    assert seen[0] == [list(range(PROMPT))]  # the one prefill
    assert seen[1:] == [[[PROMPT + step]] * 3 for step in range(NEW - 1)]  # every row at the true position
    apart = generate_group(model, prompt, members, max_new_tokens=NEW, eos_ids=set(), batch_decode=False)
    assert apart.decode_batches == [[0], [1], [2]]
    assert [m.token_ids for m in batched.members] == [m.token_ids for m in apart.members]


def test_members_that_stop_leave_the_batch_and_the_rest_go_on(model, prompt):
    techniques = [TECHNIQUES["snapkv"](window_size=16, cache_size=c) for c in (40, 48, 64)]
    reference = [alone(model, prompt, t, None, None).token_ids for t in techniques]
    stop_at = reference[1][2]  # the third token of the middle member ends it there (and any other that emits it)
    group = generate_group(model, prompt, [Member(t) for t in techniques], max_new_tokens=NEW, eos_ids={stop_at})
    for technique, member in zip(techniques, group.members, strict=True):
        single = generate(model, prompt, technique, max_new_tokens=NEW, eos_ids={stop_at})
        assert_same(single, member, technique.label())
    assert group.decode_batches == [[0, 1, 2]]
    assert group.members[1].stopped_by_eos and len(group.members[1].token_ids) <= 3
    assert any(len(m.token_ids) == NEW for m in group.members)  # the others decoded on without it


def count_prompt_forwards(model, lengths: list[int]):
    return model.model.register_forward_pre_hook(
        lambda mod, args, kwargs: lengths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )


@pytest.mark.parametrize("query_aware", [True, False])
def test_one_prefill_and_scores_computed_once_per_scorer(model, prompt, monkeypatch, query_aware):
    split = None if query_aware else SPLIT
    calls = {"window": 0, "accumulated": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(snapkv_module, "prefix_scores", counted("window", snapkv_module.prefix_scores))
    monkeypatch.setattr(h2o_module, "accumulated_attention", counted("accumulated", h2o_module.accumulated_attention))
    techniques = [
        *(TECHNIQUES["snapkv"](window_size=16, cache_size=c, pooling="avgpool") for c in (40, 56, 72)),
        TECHNIQUES["pyramidkv"](window_size=16, cache_size=48, pooling="avgpool"),  # same scorer as the three
        TECHNIQUES["snapkv"](window_size=16, cache_size=56, pooling="maxpool"),  # a scorer of its own
        *(TECHNIQUES["h2o"](cache_size=c, recent_size=16) for c in (48, 80)),
        TECHNIQUES["streamingllm"](cache_size=48),  # no scorer
    ]
    compressed = PROMPT if query_aware else SPLIT

    lengths: list[int] = []
    handle = count_prompt_forwards(model, lengths)
    try:
        group = generate_group(
            model, prompt, [Member(t) for t in techniques], max_new_tokens=NEW, eos_ids=set(), compress_until=split
        )
    finally:
        handle.remove()
    assert lengths.count(compressed) == 1 and group.prefill_forwards == 1
    assert lengths.count(PROMPT - compressed) == (0 if query_aware else len(techniques))  # each its own question
    assert calls == {"window": 2 * LAYERS, "accumulated": LAYERS}
    assert group.score_computations == 3 * LAYERS
    # nested top-k: the four window-attention budgets sort their shared scores once per layer
    assert group.rankings == 2 * LAYERS
    shares = sum(m.prefill_seconds for m in group.members)  # the members' shares add up to the group's prefill
    if query_aware:
        assert shares == pytest.approx(group.prefill_seconds, rel=1e-9)  # only float rounding
    else:  # plus each member's question
        assert shares > group.prefill_seconds

    calls.update(window=0, accumulated=0)
    lengths.clear()
    handle = count_prompt_forwards(model, lengths)
    try:
        for technique in techniques:
            alone(model, prompt, technique, split, None)
    finally:
        handle.remove()
    assert lengths.count(compressed) == len(techniques)
    assert calls == {"window": 5 * LAYERS, "accumulated": 2 * LAYERS}


def test_the_full_prompt_cache_is_dropped_layer_by_layer(model, prompt):
    from transformers import DynamicCache

    from evaluators.generation import forward_at, new_cache

    members = [
        Member(TECHNIQUES["snapkv"](window_size=16, cache_size=40)),
        Member(TECHNIQUES["baseline"]()),
        Member(TECHNIQUES["snapkv"](window_size=16, cache_size=400)),  # keeps everything too
    ]
    scratch = DynamicCache(config=model.config)
    caches = [new_cache(model, None) for _ in members]
    held: list[list[int]] = []  # after each decoder layer: prompt tokens the scratch cache holds, per layer
    hooks = [
        layer.register_forward_hook(
            lambda *_: held.append([lay.keys.numel() if lay.is_initialized else 0 for lay in scratch.layers])
        )
        for layer in model.model.layers
    ]
    try:
        with torch.inference_mode(), hooked(SharedCompression(members, scratch, caches, LAYERS)):
            forward_at(model, torch.tensor([prompt]), scratch, 0)
    finally:
        for hook in hooks:
            hook.remove()
    assert held == [[0] * LAYERS] * LAYERS  # each layer's full keys were gone once its members had selected
    assert [c.layers[0].keys.shape[-2] for c in caches] == [40, PROMPT, PROMPT]
    # members that keep everything hold the one full cache together, not a copy each
    assert all(a.keys.data_ptr() == b.keys.data_ptr() for a, b in zip(caches[1].layers, caches[2].layers, strict=True))


PARAMS = {"model": "tiny", "task": "passkey", "context_length": 512, "samples": 3}


def key(**params) -> str:
    return group_key({**PARAMS, **params})


def test_group_key_ignores_compression_settings_only():
    base = key(technique="baseline")
    assert key(technique="snapkv", window_size=32, cache_size=256, pooling="maxpool") == base
    assert key(technique="streamingllm", cache_size=128) == base
    assert key(technique="duoattention", sparsity=0.3) == base
    assert key(technique="h2o", cache_size=128, kv_bits=4) == base
    assert key(technique="baseline", query_aware=True, seed=0) == base  # defaults spelled out
    assert key(technique="baseline", query_aware=False) != base  # the prefill itself differs
    assert key(technique="baseline", context_length=1024) != base
    assert key(technique="baseline", samples=4) != base
    assert len(base) == 16 and "tiny" not in base


def test_techniques_that_change_the_model_or_the_prefill_are_keyed_apart():
    base = key(technique="baseline")
    int8, int4 = key(technique="int8"), key(technique="int4")
    assert len({base, int8, int4}) == 3
    assert key(technique="snapkv", cache_size=256, quantization=8) == int8  # the same 8-bit model
    assert key(technique="snapkv", cache_size=256, quantization=4) == int4
    press = key(technique="kvpress", press="SnapKVPress", press_args={"compression_ratio": 0.5})
    other = key(technique="kvpress", press="SnapKVPress", press_args={"compression_ratio": 0.2})
    assert len({base, press, other}) == 3


def test_a_group_refuses_members_that_prefill_on_their_own(model, prompt, pattern, tmp_path):
    press = TECHNIQUES["kvpress"](press="SnapKVPress")
    with pytest.raises(ValueError, match="kvpress SnapKVPress prefills on its own"):
        generate_group(model, prompt, [Member(TECHNIQUES["baseline"]()), Member(press)], max_new_tokens=2, eos_ids=())
    duo = prepared(model, [TECHNIQUES["duoattention"](cache_size=40, pattern=str(pattern))], tmp_path)[0]
    with pytest.raises(ValueError, match="cannot store its cache in 4 bits"):
        generate_group(model, prompt, [Member(duo, kv_bits=4)], max_new_tokens=2, eos_ids=())


def test_smollm2_group_of_four_answers_as_each_alone(smollm2):
    from evaluators.loader import load
    from evaluators.models import ModelRequest
    from evaluators.prompting import PromptRenderer
    from evaluators.tasks.passkey import Passkey

    loaded = load(ModelRequest(str(smollm2), "float32", "cpu", None, None))
    renderer = PromptRenderer(loaded.tokenizer)
    sample = Passkey(context_length=1024, needle_depth=0.5).samples(1, 0, renderer.length)[0]
    ids = renderer.render(sample).ids
    techniques = [
        TECHNIQUES["baseline"](),
        TECHNIQUES["snapkv"](window_size=32, cache_size=256, pooling="maxpool"),
        TECHNIQUES["pyramidkv"](window_size=32, cache_size=256, pooling="avgpool"),
        TECHNIQUES["streamingllm"](cache_size=256),
    ]
    settings = {"max_new_tokens": 12, "eos_ids": loaded.eos_ids}
    group = generate_group(loaded.model, ids, [Member(t) for t in techniques], **settings)
    assert len(ids) > 900 and group.prefill_forwards == 1
    for technique, member in zip(techniques, group.members, strict=True):
        assert_same(generate(loaded.model, ids, technique, **settings), member, technique.label())
    assert sample.gold[0] in loaded.tokenizer.decode(group.members[0].token_ids)  # the full cache finds the key
