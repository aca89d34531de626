"""kvpress as an optional backend (the `kvpress` extra).

kvpress 0.5.5 pins transformers<5.3, so these run in an environment made with
`pip install -e '.[kvpress,dev]'`; in the default environment only the clear error for
the missing package is checked.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from tiny import build_model

from sweeps.errors import SpecError
from sweeps.plan import make_plan
from sweeps.spec import parse

HAS_KVPRESS = importlib.util.find_spec("kvpress") is not None


def plan_errors(**method) -> list[str]:
    raw = {
        "name": "kvp",
        "workload": "evaluate",
        "fixed": {"model": "org/model", "task": "passkey"},
        "grid": {"method": [{"technique": "kvpress", **method}]},
    }
    with pytest.raises(SpecError) as info:
        make_plan(parse(raw))
    return [e.render() for e in info.value.errors]


@pytest.mark.skipif(HAS_KVPRESS, reason="checks the error shown when kvpress is not installed")
def test_without_kvpress_the_error_names_the_package_and_the_extra():
    (message,) = plan_errors(press="SnapKVPress")
    assert "needs the kvpress package: pip install 'llm-sweeps[kvpress]'" in message


@pytest.mark.skipif(not HAS_KVPRESS, reason="needs the kvpress extra")
def test_unknown_press_and_parameters_are_named():
    assert any("did you mean 'SnapKVPress'?" in m for m in plan_errors(press="SnapKvPres"))
    messages = plan_errors(press="SnapKVPress", press_args={"compresion_ratio": 0.5})
    assert any("SnapKVPress has no parameter(s) compresion_ratio" in m and "compression_ratio" in m for m in messages)


@pytest.mark.skipif(not HAS_KVPRESS, reason="needs the kvpress extra")
def test_a_press_compresses_the_prefill_and_decoding_stays_at_true_positions():
    from evaluators.generation import generate
    from evaluators.kvcache import TECHNIQUES
    from evaluators.kvcache.attention import install

    model = build_model(vocab_size=400, eos_token_id=1, bos_token_id=0, seed=3, layers=3)
    install(model)
    prompt = torch.randint(5, 400, (180,), generator=torch.Generator().manual_seed(7)).tolist()
    baseline = generate(model, prompt, TECHNIQUES["baseline"](), max_new_tokens=8, eos_ids=set())
    untouched = TECHNIQUES["kvpress"](press="SnapKVPress", press_args={"compression_ratio": 0.0})
    assert generate(model, prompt, untouched, max_new_tokens=8, eos_ids=set()).token_ids == baseline.token_ids
    seen: list[list[int]] = []
    hook = model.model.rotary_emb.register_forward_hook(
        lambda mod, args, kwargs, out: seen.append(kwargs["position_ids"][0].tolist()), with_kwargs=True
    )
    try:
        half = TECHNIQUES["kvpress"](press="SnapKVPress", press_args={"compression_ratio": 0.5})
        result = generate(model, prompt, half, max_new_tokens=8, eos_ids=set())
    finally:
        hook.remove()
    assert result.kept_per_layer == [90, 90, 90]  # measured from the cache kvpress pruned
    assert result.kv_cache_bytes == 90 * 3 * 2 * 16 * 2 * 4
    assert [p for step in seen[1:] for p in step] == [180 + i for i in range(7)]
