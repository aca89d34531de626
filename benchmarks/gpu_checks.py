"""GPU checks of the evaluate engine in one bounded run: what CPU tests cannot show.

Made for a lent GPU machine with a strict time budget and no network: models are built
from a config with random weights (outputs are meaningless; timings, memory and "grouped
equals alone" comparisons are real), prompts are random token ids, and greedy decoding runs
a fixed number of steps (no EOS). Sections, in order:

1. environment: versions (and where each package was imported from), GPU, memory;
2. engine: ``generate()`` alone per technique at each length: prefill/decode seconds,
   tokens/s, the KV cache size the engine computes against the allocator's measurement,
   and peak memory;
3. shared prefill: a grid of compression settings grouped with ``generate_group()`` (members
   decoded one after another, then as padded batches) against each member alone: wall time,
   prefill forwards, peak memory, and how many members generate exactly their tokens alone;
4. bitsandbytes: a random SmolLM2-shaped model saved, loaded through the project's loader in
   LLM.int8 and NF4 (and bf16 for reference), footprint and one long generation each;
5. deepspeed: a one-rank ZeRO-2 LoRA step through the Hugging Face Trainer with the project's
   DeepSpeed config, over NCCL on a GPU (gloo on CPU); TRL is not used (it needs datasets,
   pandas and pyarrow, which do not fit the wheel budget).

Each section runs in a child process of its own (a CUDA fault, a hang or a crash costs that
section only), each step inside a section is recorded on its own, and a global budget skips
what would start after it (a child still running at the budget plus a grace period is
killed and its finished steps kept). Results: ``OUT/gpu_checks.json`` (rewritten after each
section), ``OUT/gpu_checks.txt`` (the tables) and ``OUT/gpu_checks.log`` (every child's
output); progress lines and the tables go to stdout.

    python benchmarks/gpu_checks.py --out "$OUT" [--budget-s 400] [--sections 1,2,3,4,5]
    python benchmarks/gpu_checks.py --device cpu --tokens 512 --quick --out /tmp/gpu-checks
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.metadata
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # after anything on PYTHONPATH, so carried packages stay first
    sys.path.append(str(REPO))

SECTIONS = {1: "environment", 2: "engine", 3: "shared prefill", 4: "bitsandbytes", 5: "deepspeed"}
MB = 2**20
TAG = "[gpu-checks"
#: seconds a child may run past the budget (to finish a step) before it is killed
GRACE_S = 20.0
#: packages whose version and origin the environment section reports
PACKAGES = (
    "torch",
    "transformers",
    "accelerate",
    "peft",
    "tokenizers",
    "safetensors",
    "huggingface_hub",
    "regex",
    "jsonschema",
    "bitsandbytes",
    "hqq",
    "deepspeed",
    "pydantic",
    "rich",
)

#: Random weights at the usual init (0.02) with tied embeddings make greedy decoding repeat the
#: prompt's last token whatever the cache holds, so "same tokens as alone" would hold trivially.
#: Untied, wider weights make the next token depend on what the cache kept (members differ).
INIT_RANGE = 0.06
#: the shapes of the real models (embeddings untied, see INIT_RANGE), with random weights
SHAPES: dict[str, dict[str, Any]] = {
    "llama-3.2-1b": {
        "hidden_size": 2048,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 8192,
        "vocab_size": 128256,
        "rope_theta": 500000.0,
        "max_position_embeddings": 131072,
    },
    "smollm2-135m": {
        "hidden_size": 576,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "intermediate_size": 1536,
        "vocab_size": 49152,
        "rope_theta": 100000.0,
        "max_position_embeddings": 32768,
    },
}
#: ``--quick``: the same head layouts (GQA groups of 4 and 3) at a size a shared CPU runs in seconds
QUICK_SHAPES: dict[str, dict[str, Any]] = {
    "llama-3.2-1b": {
        "hidden_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "intermediate_size": 256,
        "vocab_size": 2048,
        "rope_theta": 500000.0,
        "max_position_embeddings": 32768,
    },
    "smollm2-135m": {
        "hidden_size": 144,
        "num_hidden_layers": 3,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "intermediate_size": 256,
        "vocab_size": 1024,
        "rope_theta": 100000.0,
        "max_position_embeddings": 32768,
    },
}


# --------------------------------------------------------------------------------------------
# progress and per-step recording (child side)


def progress(message: str) -> None:
    """One progress line, flushed at once (the parent echoes lines with this tag)."""
    print(f"{TAG} {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Recorder:
    """One section's results in a child: steps recorded one by one, the file rewritten after each.

    The file is what the parent reads, also when it has to kill the child: finished steps survive.
    """

    def __init__(self, number: int, path: Path, deadline: float):
        self.path = path
        self.deadline = deadline
        self.data: dict[str, Any] = {"section": number, "name": SECTIONS[number], "status": "running", "steps": []}
        self.started = time.perf_counter()
        self.save()

    def save(self) -> None:
        partial = self.path.with_suffix(".part")
        partial.write_text(json.dumps(self.data, indent=1, default=str))
        partial.replace(self.path)

    def left(self) -> float:
        return self.deadline - time.time()

    def step(self, label: str, fn: Callable[[], dict | None], estimate_s: float | None = None) -> dict | None:
        """Run ``fn`` as one recorded step: its dict is the step's data, an exception its error.

        Skipped when the budget is spent, or when ``estimate_s`` says it would end past it.
        """
        record: dict[str, Any] = {"step": label}
        self.data["steps"].append(record)
        left = self.left()
        if left <= 0 or (estimate_s is not None and estimate_s > left):
            why = "budget spent" if left <= 0 else f"estimated {estimate_s:.0f} s, {left:.0f} s left"
            record.update(status="skipped", reason=why)
            progress(f"  {label}: skipped ({why})")
            self.save()
            return None
        progress(f"  {label} ...")
        record["status"] = "running"
        self.save()
        start = time.perf_counter()
        try:
            result = fn() or {}
            record.update(status="ok", **result)
        except Exception as exc:  # a step's failure is a result; the next step still runs
            record.update(status="error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            progress(f"  {label}: ERROR {type(exc).__name__}: {str(exc)[:300]}")
            result = None
        record["seconds"] = round(time.perf_counter() - start, 3)
        if record["status"] == "ok":
            progress(f"  {label}: ok in {record['seconds']:.1f} s")
        self.save()
        return result

    def finish(self, error: BaseException | None = None) -> None:
        statuses = {s["status"] for s in self.data["steps"]}
        if error is not None:
            self.data["status"] = "error"
            self.data["error"] = f"{type(error).__name__}: {error}"
            self.data["traceback"] = "".join(traceback.format_exception(error))
        elif "error" in statuses:
            self.data["status"] = "error"
        elif statuses == {"skipped"}:
            self.data["status"] = "skipped"
        elif "skipped" in statuses:
            self.data["status"] = "partial"
        else:
            self.data["status"] = "ok"
        self.data["seconds"] = round(time.perf_counter() - self.started, 3)
        self.save()


# --------------------------------------------------------------------------------------------
# shared helpers (child side): devices, models, prompts, techniques


def dtype_of(opts: argparse.Namespace):
    import torch

    if opts.dtype == "auto":
        return torch.bfloat16 if opts.device.startswith("cuda") else torch.float32
    return getattr(torch, opts.dtype)


def sync(opts: argparse.Namespace) -> None:
    import torch

    if opts.device.startswith("cuda"):
        torch.cuda.synchronize()


def allocated_mb(opts: argparse.Namespace) -> float | None:
    """CUDA memory held by tensors now (None on CPU, which has no allocator statistic)."""
    import torch

    if not opts.device.startswith("cuda"):
        return None
    torch.cuda.synchronize()
    return torch.cuda.memory_allocated() / MB


def release(opts: argparse.Namespace) -> None:
    """Free what the last step left behind, so the next one's memory figures are its own."""
    import torch

    gc.collect()
    if opts.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def llama_config(name: str, opts: argparse.Namespace):
    from transformers import LlamaConfig

    shape = dict((QUICK_SHAPES if opts.quick else SHAPES)[name])
    theta = shape.pop("rope_theta")
    return LlamaConfig(
        **shape,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        tie_word_embeddings=False,
        initializer_range=INIT_RANGE,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def build_model(name: str, opts: argparse.Namespace, install_wrapper: bool = True):
    """A Llama with ``name``'s shape and random weights, built directly on the device in the run's dtype."""
    import torch
    from transformers import AutoModelForCausalLM

    from evaluators.kvcache.attention import install

    torch.manual_seed(opts.seed)
    with torch.device(opts.device):
        model = AutoModelForCausalLM.from_config(
            llama_config(name, opts), dtype=dtype_of(opts), attn_implementation="sdpa"
        )
    model.eval()
    if install_wrapper:
        install(model)
    return model


def prompt(length: int, vocab: int, seed: int) -> list[int]:
    """Random token ids (ids 0-2 are the special tokens and stay out), the same for a length and seed."""
    import torch

    generator = torch.Generator().manual_seed(seed * 1_000_003 + length)
    return torch.randint(3, vocab, (length,), generator=generator).tolist()


def hqq_available() -> bool:
    """Quantized caches (``kv_bits``) need hqq; the checks add a quantized member only where it imports."""
    try:
        importlib.import_module("hqq")
        return True
    except Exception:  # any import failure: the kv_bits rows are left out, and the env section says why
        return False


def sizes(opts: argparse.Namespace) -> tuple[int, tuple[int, ...]]:
    """The observation window and the grid's cache sizes: the real ones, or scaled to ``--quick`` prompts."""
    return (16, (32, 64, 128, 256)) if opts.quick else (32, (256, 512, 1024, 2048))


def engine_specs(opts: argparse.Namespace) -> list[dict]:
    """Section 2's techniques: one cache size that bites at every length checked."""
    window, grid = sizes(opts)
    cache = grid[2]
    specs: list[dict] = [
        {"technique": "baseline"},
        {"technique": "snapkv", "window_size": window, "cache_size": cache, "pooling": "maxpool"},
        {"technique": "pyramidkv", "window_size": window, "cache_size": cache},
        {"technique": "streamingllm", "cache_size": cache, "sink_tokens": 4},
        {"technique": "h2o", "cache_size": cache},
    ]
    if hqq_available():
        specs.append({"technique": "baseline", "kv_bits": 4})
    return specs


def grid_specs(opts: argparse.Namespace) -> list[dict]:
    """Section 3's grid: every technique that shares a prefill, at several cache sizes and poolings."""
    window, grid = sizes(opts)
    specs: list[dict] = [{"technique": "baseline"}]
    specs += [{"technique": "streamingllm", "cache_size": c, "sink_tokens": 4} for c in grid[1:3]]
    specs += [
        {"technique": "snapkv", "window_size": window, "cache_size": c, "pooling": p}
        for c in grid
        for p in ("avgpool", "maxpool")
    ]
    specs += [
        {"technique": "pyramidkv", "window_size": window, "cache_size": c, "pooling": p}
        for c, p in zip(grid, ("maxpool", "avgpool", "maxpool", "avgpool"), strict=True)
    ]
    specs += [{"technique": "h2o", "cache_size": c} for c in grid[1:3]]
    if hqq_available():
        specs.append({"technique": "snapkv", "window_size": window, "cache_size": grid[2], "kv_bits": 4})
    return specs


def technique_of(spec: dict):
    """The prepared technique and ``kv_bits`` of a spec, refused if its own checks fail."""
    from evaluators.kvcache import TECHNIQUES

    params = {k: v for k, v in spec.items() if k not in ("technique", "kv_bits")}
    technique = TECHNIQUES[spec["technique"]](**params)
    problems = technique.check()
    if problems:
        raise ValueError(f"{spec}: {problems}")
    return technique, spec.get("kv_bits")


def label_of(spec: dict) -> str:
    technique, kv_bits = technique_of(spec)
    return technique.label() + (f" kv{kv_bits}" if kv_bits else "")


def warm_up(model, opts: argparse.Namespace) -> None:
    """One short generation first, so kernel selection and allocator growth are not timed."""
    from evaluators.generation import generate
    from evaluators.kvcache import TECHNIQUES

    ids = prompt(min(256, max(opts.tokens)), model.config.vocab_size, opts.seed + 99)
    generate(model, ids, TECHNIQUES["baseline"](), max_new_tokens=4, eos_ids=set())
    sync(opts)


@contextmanager
def decode_entry_memory(opts: argparse.Namespace) -> Iterator[list[float]]:
    """Allocated CUDA MiB each time ``generate()`` starts decoding: its cache is built by then and the
    prefill's activations are freed, so the rise from before the call is the cache (plus the prompt's
    ids and last logits, well under 1 MiB)."""
    import evaluators.generation as engine

    seen: list[float] = []
    original = engine.decode

    def measured(*args, **kwargs):
        mb = allocated_mb(opts)
        if mb is not None:
            seen.append(mb)
        return original(*args, **kwargs)

    engine.decode = measured
    try:
        yield seen
    finally:
        engine.decode = original


def r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------------------------
# section 1: environment


def section_environment(rec: Recorder, opts: argparse.Namespace) -> None:
    def interpreter() -> dict:
        return {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "pythonpath": os.environ.get("PYTHONPATH", ""),
        }

    def packages() -> dict:
        found: dict[str, Any] = {}
        for name in PACKAGES:
            try:
                module = importlib.import_module(name)
                where = str(Path(module.__file__).parent)
                found[name] = {"version": importlib.metadata.version(name), "from": where}
            except Exception as exc:  # absent or broken: reported, not fatal
                found[name] = {"missing": f"{type(exc).__name__}: {str(exc)[:200]}"}
        return {"packages": found}

    def gpu() -> dict:
        import torch

        info: dict[str, Any] = {"torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            free, total = torch.cuda.mem_get_info()
            info.update(
                name=props.name,
                capability=f"{props.major}.{props.minor}",
                total_gib=round(total / 2**30, 1),
                free_gib=round(free / 2**30, 1),
                devices=torch.cuda.device_count(),
                bf16=torch.cuda.is_bf16_supported(),
                nccl=".".join(map(str, nccl)) if isinstance(nccl := torch.cuda.nccl.version(), tuple) else str(nccl),
            )
        try:
            query = "--query-gpu=driver_version,name,memory.total,memory.used"
            out = subprocess.run(["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True)
            info["nvidia_smi"] = out.stdout.strip() or out.stderr.strip()
        except OSError as exc:
            info["nvidia_smi"] = f"not run: {exc}"
        return info

    def matmul() -> dict:
        """A bf16 matmul rate: says the GPU runs at its speed (a sanity figure, not a benchmark)."""
        import torch

        n = 1024 if opts.quick or not opts.device.startswith("cuda") else 8192
        a = torch.randn(n, n, device=opts.device, dtype=dtype_of(opts))
        b = torch.randn(n, n, device=opts.device, dtype=dtype_of(opts))
        a @ b
        sync(opts)
        repeats = 3 if n == 1024 else 20
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        sync(opts)
        seconds = time.perf_counter() - start
        return {"matmul_n": n, "matmul_tflops": r(2 * n**3 * repeats / seconds / 1e12, 2)}

    rec.step("interpreter", interpreter)
    rec.step("packages", packages)
    rec.step("gpu", gpu)
    rec.step("matmul", matmul)


# --------------------------------------------------------------------------------------------
# section 2: the engine alone, per technique


def run_alone(model, ids: list[int], spec: dict, opts: argparse.Namespace) -> dict:
    """One ``generate()`` of one technique: timings, the engine's and the allocator's cache size, peak."""
    from evaluators.generation import generate
    from evaluators.measure import PeakMemory

    technique, kv_bits = technique_of(spec)
    release(opts)
    before = allocated_mb(opts)
    memory = PeakMemory(opts.device)
    memory.start()
    with decode_entry_memory(opts) as seen:
        out = generate(model, ids, technique, max_new_tokens=opts.new_tokens, eos_ids=set(), kv_bits=kv_bits)
    peak = memory.stop()
    engine_mb = (out.kv_cache_bytes + out.kv_quant_meta_bytes) / MB
    measured = seen[0] - before if seen and before is not None else None
    return {
        "label": label_of(spec),
        "prompt_tokens": out.prompt_tokens,
        "new_tokens": len(out.token_ids),
        "prefill_s": r(out.prefill_seconds, 4),
        "decode_s": r(out.decode_seconds, 4),
        "prefill_tok_s": r(out.prompt_tokens / out.prefill_seconds, 0),
        "decode_tok_s": r(len(out.token_ids) / out.decode_seconds, 1) if out.decode_seconds else None,
        "kept_mean": r(sum(out.kept_per_layer) / len(out.kept_per_layer), 1),
        "kv_cache_mb": r(engine_mb, 2),
        "kv_quant_meta_mb": r(out.kv_quant_meta_bytes / MB, 2),
        "kv_allocator_mb": r(measured, 2),
        "kv_ratio": r(measured / engine_mb, 4) if measured is not None and engine_mb else None,
        "peak_memory_mb": r(peak, 1),
        "peak_over_before_mb": r(peak - before, 1) if before is not None else None,
        "token_ids": out.token_ids,
    }


def built(name: str, opts: argparse.Namespace, state: dict) -> dict:
    """Build ``name`` into ``state['model']`` and warm it up; its build time and weight memory."""
    before = allocated_mb(opts) or 0.0
    start = time.perf_counter()
    state["model"] = build_model(name, opts)
    sync(opts)
    seconds = time.perf_counter() - start
    warm_up(state["model"], opts)
    weights = allocated_mb(opts)
    return {
        "model": name,
        "build_s": r(seconds, 2),
        "weights_mb": r(weights - before, 1) if weights is not None else None,
        "parameters_m": r(sum(p.numel() for p in state["model"].parameters()) / 1e6, 1),
    }


def engine_model(rec: Recorder, name: str, opts: argparse.Namespace) -> None:
    """Every technique alone on one model shape, length by length (longer lengths skipped when late)."""
    state: dict[str, Any] = {}
    if rec.step(f"{name}: build", lambda: built(name, opts, state)) is None:
        return
    model = state.pop("model")
    last: dict[str, tuple[int, float]] = {}  # a technique's length and seconds, to estimate the next
    for length in opts.tokens:
        ids = prompt(length, model.config.vocab_size, opts.seed)
        for spec in engine_specs(opts):
            label = label_of(spec)
            estimate = None
            if label in last:  # grows a little faster than the prompt
                estimate = last[label][1] * (length / last[label][0]) ** 1.2
            start = time.perf_counter()
            done = rec.step(
                f"{name} {length}: {label}",
                lambda spec=spec, ids=ids, length=length: {
                    "model": name,
                    "tokens": length,
                    **run_alone(model, ids, spec, opts),
                },
                estimate_s=estimate,
            )
            if done is not None:
                last[label] = (length, time.perf_counter() - start)


def section_engine(rec: Recorder, opts: argparse.Namespace) -> None:
    for name in opts.models:
        engine_model(rec, name, opts)
        release(opts)  # the model went with engine_model's frame


# --------------------------------------------------------------------------------------------
# section 3: one shared prefill against each member alone


def compare(alone: list[list[int]], grouped: list[list[int]], labels: list[str]) -> dict:
    """How many members generated exactly their tokens alone, and where the others diverged."""
    differing = []
    tokens = 0
    for label, a, g in zip(labels, alone, grouped, strict=True):
        if a != g:
            diff = sum(x != y for x, y in zip(a, g, strict=False)) + abs(len(a) - len(g))
            first = next((i for i, (x, y) in enumerate(zip(a, g, strict=False)) if x != y), min(len(a), len(g)))
            differing.append({"member": label, "tokens_differing": diff, "first_difference_at": first})
            tokens += diff
    return {
        "same_members": len(labels) - len(differing),
        "members": len(labels),
        "same_fraction": r((len(labels) - len(differing)) / len(labels), 4),
        "differing_tokens": tokens,
        "differing": differing,
    }


def shared_prefill_step(model, length: int, specs: list[dict], opts: argparse.Namespace) -> dict:
    """The grid at one length three ways: alone, grouped (members decoded in turn), grouped (batched)."""
    from evaluators.generation import generate
    from evaluators.measure import PeakMemory
    from evaluators.shared_prefill import Member, generate_group

    ids = prompt(length, model.config.vocab_size, opts.seed)
    prepared = [technique_of(s) for s in specs]
    labels = [label_of(s) for s in specs]
    settings = {"max_new_tokens": opts.new_tokens, "eos_ids": set()}
    ways: dict[str, dict] = {}

    release(opts)
    memory = PeakMemory(opts.device)
    memory.start()
    start = time.perf_counter()
    alone, member_s = [], []
    for technique, kv_bits in prepared:
        begin = time.perf_counter()
        alone.append(generate(model, ids, technique, kv_bits=kv_bits, **settings).token_ids)
        member_s.append(time.perf_counter() - begin)
    wall = time.perf_counter() - start
    ways["alone"] = {"wall_s": r(wall, 3), "prefill_forwards": len(specs), "peak_memory_mb": r(memory.stop(), 1)}
    progress(f"    alone: {wall:.2f} s for {len(specs)} members")
    # the control: each member alone once more, warm; how far does a run differ from itself?
    start = time.perf_counter()
    again = [generate(model, ids, technique, kv_bits=kv_bits, **settings).token_ids for technique, kv_bits in prepared]
    wall_again = time.perf_counter() - start
    control = compare(alone, again, labels)
    ways["alone_again"] = {"wall_s": r(wall_again, 3), "prefill_forwards": len(specs), **control}
    progress(
        f"    alone again: {wall_again:.2f} s, {control['same_members']}/{len(specs)} members same as the first run, "
        f"{control['differing_tokens']} tokens differ"
    )
    wall = min(wall, wall_again)  # ratios against the warm run

    for way, batch in (("group_sequential", False), ("group_batched", True)):
        release(opts)
        memory = PeakMemory(opts.device)
        memory.start()
        start = time.perf_counter()
        group = generate_group(model, ids, [Member(t, b) for t, b in prepared], batch_decode=batch, **settings)
        seconds = time.perf_counter() - start
        same = compare(alone, [m.token_ids for m in group.members], labels)
        ways[way] = {
            "wall_s": r(seconds, 3),
            "over_sum_alone": r(seconds / wall, 4),
            "over_mean_member_alone": r(seconds / (wall / len(specs)), 3),
            "speedup": r(wall / seconds, 2),
            "prefill_forwards": group.prefill_forwards,
            "score_computations": group.score_computations,
            "shared_forward_s": r(group.prefill_seconds, 3),
            "decode_batches": [[labels[i] for i in rows] for rows in group.decode_batches if len(rows) > 1],
            "peak_memory_mb": r(memory.stop(), 1),
            **same,
        }
        progress(
            f"    {way}: {seconds:.2f} s ({wall / seconds:.2f}x faster), "
            f"{same['same_members']}/{len(specs)} members same, {same['differing_tokens']} tokens differ"
        )
    return {
        "tokens": length,
        "members": labels,
        # below 2, every member generates the same tokens and "same as alone" says little
        "distinct_outputs_alone": len({tuple(t) for t in alone}),
        "member_alone_s": [r(s, 3) for s in member_s],
        "ways": ways,
    }


def section_shared_prefill(rec: Recorder, opts: argparse.Namespace) -> None:
    name = opts.group_model
    state: dict[str, Any] = {}

    def build() -> dict:
        state["specs"] = grid_specs(opts)
        return {**built(name, opts, state), "members": [label_of(s) for s in state["specs"]]}

    if rec.step(f"{name}: build", build) is None:
        return
    previous: tuple[int, float] | None = None
    for length in opts.tokens:
        estimate = previous[1] * (length / previous[0]) ** 1.2 if previous and previous[0] < length else None
        start = time.perf_counter()
        done = rec.step(
            f"{name} {length}: {len(state['specs'])} members",
            lambda length=length: {"model": name, **shared_prefill_step(state["model"], length, state["specs"], opts)},
            estimate_s=estimate,
        )
        if done is not None:
            previous = (length, time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# section 4: bitsandbytes weights through the project's loader


def save_random_model(folder: Path, opts: argparse.Namespace) -> dict:
    """A SmolLM2-shaped random model and a small word-level tokenizer, as ``from_pretrained`` reads them."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    model = build_model("smollm2-135m", opts, install_wrapper=False)
    model.save_pretrained(folder)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, 512)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<unk>"
    )
    fast.save_pretrained(folder)
    size = sum(f.stat().st_size for f in folder.iterdir())
    del model
    release(opts)
    return {"folder_mb": r(size / MB, 1)}


def quantized_step(folder: Path, bits: int | None, opts: argparse.Namespace, reference: dict) -> dict:
    """Load through ``evaluators.loader.load`` (as an evaluate trial does) and generate one long prompt."""
    from evaluators.generation import generate
    from evaluators.kvcache import TECHNIQUES
    from evaluators.loader import load
    from evaluators.measure import PeakMemory
    from evaluators.models import ModelRequest

    release(opts)
    before = allocated_mb(opts)
    loaded = load(ModelRequest(str(folder), "auto", opts.device, bits))
    after = allocated_mb(opts)
    model = loaded.model
    layers: dict[str, int] = {}
    for module in model.modules():
        kind = type(module).__name__
        if kind in ("Linear", "Linear8bitLt", "Linear4bit"):
            layers[kind] = layers.get(kind, 0) + 1
    devices = sorted({p.device.type for p in model.parameters()})
    footprint = model.get_memory_footprint() / MB
    if bits is None:
        reference["footprint_mb"] = footprint
    ids = prompt(opts.tokens[0], model.config.vocab_size, opts.seed)
    memory = PeakMemory(opts.device)
    memory.start()
    out = generate(model, ids, TECHNIQUES["baseline"](), max_new_tokens=opts.new_tokens, eos_ids=set())
    peak = memory.stop()
    result = {
        "bits": bits,
        "load_s": r(loaded.load_seconds, 2),
        "footprint_mb": r(footprint, 1),
        "footprint_over_bf16": r(footprint / reference["footprint_mb"], 3) if "footprint_mb" in reference else None,
        "allocated_by_load_mb": r(after - before, 1) if after is not None and before is not None else None,
        "linear_layers": layers,
        "parameter_devices": devices,
        "weight_dtype": str(model.model.layers[0].mlp.down_proj.weight.dtype),
        "prompt_tokens": out.prompt_tokens,
        "prefill_s": r(out.prefill_seconds, 4),
        "decode_s": r(out.decode_seconds, 4),
        "decode_tok_s": r(len(out.token_ids) / out.decode_seconds, 1) if out.decode_seconds else None,
        "peak_memory_mb": r(peak, 1),
        "token_ids": out.token_ids,
    }
    del loaded, model
    release(opts)
    return result


def section_bitsandbytes(rec: Recorder, opts: argparse.Namespace) -> None:
    def version() -> dict:
        import bitsandbytes

        return {"bitsandbytes": bitsandbytes.__version__, "from": str(Path(bitsandbytes.__file__).parent)}

    if rec.step("import bitsandbytes", version) is None:
        return
    with tempfile.TemporaryDirectory(prefix="gpu-checks-model-") as tmp:
        folder = Path(tmp)
        if rec.step("save random smollm2-135m", lambda: save_random_model(folder, opts)) is None:
            return
        reference: dict[str, float] = {}
        full = "bf16" if opts.device.startswith("cuda") else "full precision"
        for bits, label in ((None, full), (8, "int8"), (4, "nf4")):
            load_and_generate = lambda bits=bits: quantized_step(folder, bits, opts, reference)  # noqa: E731
            rec.step(f"{label}: load + {opts.tokens[0]} tokens", load_and_generate)


# --------------------------------------------------------------------------------------------
# section 5: a one-rank DeepSpeed ZeRO-2 step


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RandomTokens:
    """A map-style dataset of random token rows whose labels are the inputs (causal LM loss)."""

    def __init__(self, rows: int, length: int, vocab: int, seed: int):
        import torch

        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(3, vocab, (rows, length), generator=generator)

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, index: int) -> dict:
        row = self.ids[index]
        return {"input_ids": row, "labels": row.clone(), "attention_mask": row.new_ones(row.shape)}


def section_deepspeed(rec: Recorder, opts: argparse.Namespace) -> None:
    on_gpu = opts.device.startswith("cuda")
    backend = "nccl" if on_gpu else "gloo"
    # what Ray Train gives each worker: a process group and its environment (here, one rank)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        RANK="0",
        LOCAL_RANK="0",
        WORLD_SIZE="1",
        LOCAL_WORLD_SIZE="1",
        DS_ACCELERATOR="cuda" if on_gpu else "cpu",
        TOKENIZERS_PARALLELISM="false",
    )

    def imports() -> dict:
        import deepspeed

        if not on_gpu:
            # DeepSpeed's CPU accelerator JIT-compiles a shared-memory all-reduce (minutes of C++ on a
            # busy machine, under a lock a killed build leaves behind); one rank shares with no one
            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        return {"deepspeed": deepspeed.__version__, "from": str(Path(deepspeed.__file__).parent)}

    def group() -> dict:
        import torch
        import torch.distributed as dist

        if on_gpu:
            torch.cuda.set_device(0)
        dist.init_process_group(backend=backend, rank=0, world_size=1)
        return {"backend": dist.get_backend(), "world_size": dist.get_world_size()}

    def train() -> dict:
        import torch.distributed as dist
        from peft import get_peft_model
        from transformers import Trainer, TrainerCallback, TrainingArguments

        from evaluators.measure import PeakMemory
        from trainers.arguments import common_arguments
        from trainers.lora import lora_config, resolve_targets
        from trainers.params import TrainParams

        steps = 2 if opts.quick else 6
        length = 64 if opts.quick else 1024
        model = build_model("smollm2-135m", opts, install_wrapper=False)
        model.config.use_cache = False
        targets = resolve_targets(model, "auto", model.config.model_type)
        model = get_peft_model(model, lora_config(targets, 16, 32, 0.05))
        params = TrainParams(
            model="random smollm2-135m",
            dataset="random tokens",
            max_steps=steps,
            batch_size=2,
            zero_stage=2,
            save_steps=10**6,
            logging_steps=1,
            max_length=length,
        )
        marks: list[float] = []

        class StepTimes(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                sync(opts)
                marks.append(time.perf_counter())

        with tempfile.TemporaryDirectory(prefix="gpu-checks-train-") as out:
            arguments = common_arguments(params, Path(out), opts.device, deepspeed=True)
            trainer = Trainer(
                model=model,
                args=TrainingArguments(**arguments),
                train_dataset=RandomTokens(steps * 2, length, model.config.vocab_size, opts.seed),
                callbacks=[StepTimes()],
            )
            memory = PeakMemory(opts.device)
            memory.start()
            start = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - start
            peak = memory.stop()
            engine = trainer.model_wrapped
            losses = [round(e["loss"], 4) for e in trainer.state.log_history if "loss" in e]
            steps_s = [b - a for a, b in zip([start, *marks], marks, strict=False)]
            result = {
                "zero_config": arguments["deepspeed"]["zero_optimization"],
                "engine": type(engine).__name__,
                "zero_stage": engine.zero_optimization_stage() if hasattr(engine, "zero_optimization_stage") else None,
                "bf16": engine.bfloat16_enabled() if hasattr(engine, "bfloat16_enabled") else None,
                "optimizer": type(getattr(engine, "optimizer", None)).__name__,
                "backend": dist.get_backend() if dist.is_initialized() else None,
                "world_size": dist.get_world_size() if dist.is_initialized() else None,
                "steps": trainer.state.global_step,
                "sequence_tokens": length,
                "losses": losses,
                "train_s": r(seconds, 2),
                # the first step includes building the DeepSpeed engine (Trainer.train does it)
                "first_step_s": r(steps_s[0], 3) if steps_s else None,
                "later_step_s": r(sum(steps_s[1:]) / len(steps_s[1:]), 3) if len(steps_s) > 1 else None,
                "trainable_m": r(sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6, 2),
                "peak_memory_mb": r(peak, 1),
                "device": str(next(model.parameters()).device),
            }
            del trainer, engine
        del model
        release(opts)
        return result

    if rec.step("import deepspeed", imports) is None:
        return
    if rec.step(f"process group ({backend}, 1 rank)", group) is None:
        return
    try:
        rec.step("zero-2 lora steps (hf trainer)", train)
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


SECTION_RUNNERS: dict[int, Callable[[Recorder, argparse.Namespace], None]] = {
    1: section_environment,
    2: section_engine,
    3: section_shared_prefill,
    4: section_bitsandbytes,
    5: section_deepspeed,
}


def child_main(opts: argparse.Namespace) -> int:
    """One section in this process: its steps recorded into ``--part`` as they finish."""
    rec = Recorder(opts.child, Path(opts.part), opts.deadline)
    try:
        if opts.child != 1:  # the environment section reports a missing torch as one of its findings
            import torch

            from evaluators.quiet import quiet_libraries

            quiet_libraries()
            if opts.threads:
                torch.set_num_threads(opts.threads)
        SECTION_RUNNERS[opts.child](rec, opts)
    except Exception as exc:  # outside any step (imports, a model build): the section's error
        rec.finish(exc)
        progress(f"section {opts.child} failed: {type(exc).__name__}: {exc}")
        return 1
    rec.finish()
    return 0


# --------------------------------------------------------------------------------------------
# the parent: children, budget, results, tables


def kill_tree(pid: int) -> None:
    """Kill a child and every process it started, by id.

    Its process group is not enough: ninja (DeepSpeed's JIT builds) puts each compiler in a
    group of its own, which outlives the child and keeps the build's lock.
    """
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for process in tree:
        with suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(tree, timeout=10)


def read_part(part: Path, number: int) -> dict:
    try:
        return json.loads(part.read_text())
    except (OSError, ValueError):  # not written yet, or the child died before its first save
        return {"section": number, "name": SECTIONS[number], "status": "running", "steps": []}


def run_child(
    number: int, argv: list[str], deadline: float, parts: Path, log, on_progress: Callable[[dict], None]
) -> dict:
    """Run one section in a child; kill it (and what it started) once the budget and grace are over.

    While it runs, ``on_progress`` gets its steps so far every few seconds (the results file
    then holds them even if this whole run is cut short from outside).
    """
    part = parts / f"section{number}.json"
    command = [sys.executable, "-u", __file__, *argv, "--child", str(number), "--part", str(part)]
    command += ["--deadline", str(deadline)]
    # nothing here needs the hub; offline, a library that tries it fails at once instead of waiting on
    # a network that is not there (bitsandbytes looks for an optional kernel there on import)
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    tail: deque[str] = deque(maxlen=25)

    def pump() -> None:
        for line in proc.stdout:
            log.write(line)
            log.flush()
            tail.append(line.rstrip())
            if line.startswith(TAG):
                print(line.rstrip(), flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    while proc.poll() is None:
        if time.time() > deadline + GRACE_S:
            timed_out = True
            kill_tree(proc.pid)
            proc.wait()
            break
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            on_progress(read_part(part, number))
    reader.join(timeout=5)
    result = read_part(part, number)
    if timed_out:
        result["status"] = "timeout"
        result["error"] = f"killed {GRACE_S:.0f} s after the budget ran out"
    elif proc.returncode != 0 and result.get("status") in ("running", "ok", None):
        result["status"] = "error"
        result["error"] = f"child exited with {proc.returncode}"
    for step in result.get("steps", []):
        if step.get("status") in (None, "running"):
            step["status"] = "timeout" if timed_out else "crashed"
    if result.get("status") not in ("ok", "skipped", "partial"):
        result["output_tail"] = list(tail)
        print(f"{TAG}] section {number} {result.get('status')}; its last output:", flush=True)
        for line in tail:
            print(f"    | {line}", flush=True)
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["returncode"] = proc.returncode
    return result


def steps_of(results: dict, number: int) -> list[dict]:
    return [s for s in results.get(str(number), {}).get("steps", []) if s.get("status") == "ok"]


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def tables(results: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """The readable summary: (title, columns, rows) per table."""
    out = []
    rows = []
    for key, section in results.items():
        failed = [
            f"{s['step']} ({s.get('error') or s.get('status')})"[:160]
            for s in section.get("steps", [])
            if s.get("status") not in ("ok", "skipped")
        ]
        skipped = [s["step"] for s in section.get("steps", []) if s.get("status") == "skipped"]
        note = section.get("error") or section.get("reason") or ""
        if failed:
            note = f"failed: {'; '.join(failed)[:240]} {note}"
        elif skipped:
            note = f"skipped: {', '.join(skipped)[:90]} {note}"
        name, status = section.get("name", ""), section.get("status", "?")
        rows.append([key, name, status, fmt(section.get("seconds"), 1), note.strip()])
    out.append(("sections", ["#", "section", "status", "s", "note"], rows))

    env = {k: v for s in steps_of(results, 1) for k, v in s.items()}
    if env:
        packages = env.get("packages", {})
        versions = ", ".join(f"{k} {v.get('version', 'MISSING')}" for k, v in packages.items())
        rows = [
            ["gpu", f"{env.get('name', 'none')} {env.get('total_gib', '')} GiB, cc {env.get('capability', '-')}"],
            ["torch cuda / nccl", f"{env.get('torch_cuda')} / {env.get('nccl', '-')}"],
            ["bf16 matmul", f"{env.get('matmul_tflops')} TFLOP/s at n={env.get('matmul_n')}"],
            ["packages", versions],
        ]
        out.append(("environment", ["what", "value"], rows))

    rows = [
        [
            s["model"],
            str(s["tokens"]),
            s["label"],
            fmt(s["prefill_s"], 3),
            fmt(s["decode_s"], 3),
            fmt(s["prefill_tok_s"], 0),
            fmt(s["decode_tok_s"], 1),
            fmt(s["kv_cache_mb"], 1),
            fmt(s["kv_allocator_mb"], 1),
            fmt(s["kv_ratio"], 3),
            fmt(s["peak_memory_mb"], 0),
        ]
        for s in steps_of(results, 2)
        if "label" in s
    ]
    if rows:
        columns = ["model", "tokens", "technique", "prefill s", "decode s", "prefill tok/s", "decode tok/s"]
        columns += ["kv MB engine", "kv MB alloc", "alloc/engine", "peak MB"]
        out.append(("engine: generate() alone", columns, rows))

    rows = []
    for s in steps_of(results, 3):
        if "ways" not in s:
            continue
        for way, w in s["ways"].items():
            same = f"{w['same_members']}/{w['members']}" if "same_members" in w else ""
            if way == "alone":  # below 2, every member generated the same tokens: "same" says little
                same = f"{s.get('distinct_outputs_alone')} distinct"
            rows.append(
                [
                    s["model"],
                    str(s["tokens"]),
                    way,
                    fmt(w["wall_s"], 2),
                    fmt(w.get("over_sum_alone"), 3),
                    fmt(w.get("over_mean_member_alone"), 2),
                    str(w["prefill_forwards"]),
                    fmt(w.get("peak_memory_mb"), 0),
                    same,
                    fmt(w.get("differing_tokens")),
                ]
            )
    if rows:
        columns = ["model", "tokens", "way", "wall s", "/sum alone", "/member alone", "prefills", "peak MB"]
        columns += ["same members", "tokens differ"]
        out.append(("shared prefill: generate_group() vs each member alone", columns, rows))

    rows = [
        [
            str(s["bits"] or "-"),
            fmt(s["load_s"], 1),
            fmt(s["footprint_mb"], 1),
            fmt(s["footprint_over_bf16"], 3),
            ", ".join(f"{k} {v}" for k, v in s["linear_layers"].items()),
            ",".join(s["parameter_devices"]),
            fmt(s["prefill_s"], 3),
            fmt(s["decode_tok_s"], 1),
            fmt(s["peak_memory_mb"], 0),
        ]
        for s in steps_of(results, 4)
        if "bits" in s
    ]
    if rows:
        columns = ["bits", "load s", "footprint MB", "x full", "linear layers", "device", "prefill s", "decode tok/s"]
        out.append(("bitsandbytes through evaluators.loader", [*columns, "peak MB"], rows))

    hidden = ("step", "status", "seconds", "zero_config")
    rows = [[k, fmt(v)] for s in steps_of(results, 5) if "engine" in s for k, v in s.items() if k not in hidden]
    if rows:
        out.append(("deepspeed zero-2 step", ["what", "value"], rows))
    return out


def render(results: dict) -> str:
    """The tables as text: rich's when it is there, plain columns otherwise."""
    try:
        from rich import box
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        lines = []
        for title, columns, rows in tables(results):
            widths = [max(len(str(x)) for x in col) for col in zip(columns, *rows, strict=True)]
            lines += ["", title]
            lines += [
                "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
                for row in [columns, *rows]
            ]
        return "\n".join(lines)
    console = Console(record=True, width=170, force_terminal=False, color_system=None, file=io.StringIO())
    for title, columns, rows in tables(results):
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def write_results(out: Path, summary: dict) -> None:
    partial = out / "gpu_checks.json.part"
    partial.write_text(json.dumps(summary, indent=1, default=str))
    partial.replace(out / "gpu_checks.json")


def parent_main(opts: argparse.Namespace, argv: list[str]) -> int:
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    deadline = started + opts.budget_s
    summary: dict[str, Any] = {
        "options": {k: v for k, v in vars(opts).items() if k not in ("child", "part", "deadline")},
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "sections": {},
    }
    passed = [*argv, "--device", opts.device, "--new-tokens", str(opts.new_tokens)]  # resolved once, here
    progress(f"sections {opts.sections}, budget {opts.budget_s:.0f} s, device {opts.device}, out {out}")
    with tempfile.TemporaryDirectory(prefix="gpu-checks-") as parts, open(out / "gpu_checks.log", "w") as log:
        for number in opts.sections:
            if time.time() >= deadline:
                result = {"section": number, "name": SECTIONS[number], "status": "skipped", "reason": "budget spent"}
                progress(f"section {number} ({SECTIONS[number]}): skipped, budget spent")
            else:
                progress(f"section {number} ({SECTIONS[number]}), {deadline - time.time():.0f} s of budget left")
                log.write(f"===== section {number} ({SECTIONS[number]}) =====\n")

                def running(partial: dict, number: int = number) -> None:
                    summary["sections"][str(number)] = partial
                    write_results(out, summary)

                result = run_child(number, passed, deadline, Path(parts), log, running)
                progress(f"section {number} ({SECTIONS[number]}): {result.get('status')} in {result['seconds']:.1f} s")
            summary["sections"][str(number)] = result
            summary["elapsed_s"] = round(time.time() - started, 1)
            write_results(out, summary)
    text = render(summary["sections"])
    (out / "gpu_checks.txt").write_text(text)
    print(text, flush=True)
    bad = [k for k, s in summary["sections"].items() if s.get("status") in ("error", "timeout")]
    failed = f"; failed: {bad}" if bad else ""
    progress(f"done in {time.time() - started:.0f} s; results in {out}/gpu_checks.json{failed}")
    return 1 if bad else 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="gpu_checks_out", help="folder for gpu_checks.json/.txt/.log")
    parser.add_argument("--budget-s", type=float, default=400.0, help="no section or step starts after this")
    parser.add_argument("--sections", default="1,2,3,4,5", help="comma-separated section numbers (1-5)")
    parser.add_argument("--device", default=None, help="cuda (default when there is one) or cpu")
    parser.add_argument("--dtype", default="auto", help="auto: bfloat16 on cuda, float32 on cpu")
    parser.add_argument("--tokens", type=int, nargs="+", default=[8192, 16384], help="prompt lengths, ascending")
    parser.add_argument("--new-tokens", type=int, default=None, help="greedy steps per generation (32; quick: 8)")
    parser.add_argument(
        "--models", default="llama-3.2-1b,smollm2-135m", help="section 2's model shapes, in order (budget permitting)"
    )
    parser.add_argument("--group-model", default="llama-3.2-1b", help="section 3's model shape")
    parser.add_argument("--quick", action="store_true", help="tiny model shapes and cache sizes (CPU dry runs)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in each section (CPU runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    opts.sections = sorted({int(s) for s in str(opts.sections).split(",") if s.strip()})
    unknown = [s for s in opts.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; known: {SECTIONS}")
    opts.models = [m.strip() for m in opts.models.split(",") if m.strip()]
    for model in [*opts.models, opts.group_model]:
        if model not in SHAPES:
            parser.error(f"unknown model shape {model!r}; known: {', '.join(SHAPES)}")
    opts.tokens = sorted(opts.tokens)
    if opts.new_tokens is None:
        opts.new_tokens = 8 if opts.quick else 32
    if opts.device is None:
        opts.device = "cuda" if _cuda_visible() else "cpu"
    return opts


def _cuda_visible() -> bool:
    """Whether a GPU is there, without importing torch in the parent (children import it)."""
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return Path("/dev/nvidiactl").exists()


def main() -> int:
    argv = sys.argv[1:]
    opts = parse(argv)
    if opts.child is not None:
        return child_main(opts)
    return parent_main(opts, argv)


if __name__ == "__main__":
    sys.exit(main())
