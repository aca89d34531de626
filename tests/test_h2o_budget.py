"""H2O's budget: split in half between heavy hitters and recent tokens unless recent_size is given."""

from __future__ import annotations

import pytest
import torch

from evaluators.config import schemas
from evaluators.kvcache import TECHNIQUES, LayerView
from sweeps.errors import SpecError
from sweeps.validation import validate_params


def _validate(**method) -> dict:
    params = {"model": "smollm2-135m-instruct", "task": "passkey", "technique": "h2o", **method}
    config, _ = validate_params(schemas(params), params, {})
    return config


@pytest.mark.parametrize("cache_size", [2, 16, 64, 128, 129, 4096])
def test_every_cache_size_is_valid_without_recent_size(cache_size):
    assert _validate(cache_size=cache_size)["cache_size"] == cache_size
    technique = TECHNIQUES["h2o"](cache_size=cache_size)
    assert technique.recent == cache_size // 2 and technique.check() == []


def test_a_given_recent_size_is_kept_and_checked():
    assert TECHNIQUES["h2o"](cache_size=64, recent_size=16).recent == 16
    with pytest.raises(SpecError, match=r"cache_size: must be larger than recent_size \(64\)"):
        _validate(cache_size=64, recent_size=64)
    with pytest.raises(SpecError, match=r"cache_size: must be at least 2"):
        _validate(cache_size=1)


def test_half_the_budget_goes_to_recent_tokens_and_half_to_heavy_hitters():
    length, budget = 12, 6
    keys = torch.zeros(1, 1, length, 2)
    keys[0, 0, 1] = torch.tensor([5.0, 0.0])  # two heavy hitters every later query attends to
    keys[0, 0, 4] = torch.tensor([4.0, 0.0])
    keys[0, 0, 6] = torch.tensor([3.0, 0.0])
    queries = torch.zeros(1, 1, length, 2)
    queries[0, 0, :, 0] = 1.0
    view = LayerView(0, 1, queries, keys, keys, 1.0)
    kept = TECHNIQUES["h2o"](cache_size=budget).keep(view)[0, 0].tolist()
    assert len(kept) == budget and kept[-3:] == [9, 10, 11]
    # the three heaviest earlier tokens: the two hitters and token 0, a sink (all of query 0's attention)
    assert kept[:3] == [0, 1, 4]


def test_run_names_show_the_recent_tokens_kept():
    assert TECHNIQUES["h2o"](cache_size=64).label() == "h2o c64 r32"
    assert TECHNIQUES["h2o"](cache_size=64, recent_size=8).label() == "h2o c64 r8"
