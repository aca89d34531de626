"""One prefill for a grid of compression settings against one configuration at a time.

SmolLM2-135M-Instruct reads pass-key prompts. Two grids: the demo's 10 configurations
(examples/quickstart.yaml, ~1K tokens) and a 15-configuration grid (baseline, StreamingLLM,
SnapKV and PyramidKV at several cache sizes with both poolings, H2O) at 2K and 4K tokens.
Each is evaluated twice on the same samples: one configuration at a time, each prefilling
every prompt (as one trial per configuration does), and as one group sharing each prompt's
prefill. Each way runs in a fresh process of its own, so its peak resident memory is its own.
Printed: wall time, the group's cost against all configurations alone and against ONE
configuration alone (target at 4K: at most 1.5x), prefills performed, peak resident memory,
and whether every configuration generated the same tokens both ways.

    python benchmarks/shared_prefill.py [--lengths 2048 4096] [--samples 2] [--no-batch] [--no-demo]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

MODEL = "smollm2-135m-instruct"
MB = 1024 * 1024


def demo_grid() -> list[dict]:
    """The demo sweep's configurations (examples/quickstart.yaml), as technique parameters."""
    from sweeps import spec as spec_module
    from sweeps.plan import make_plan

    spec, _ = spec_module.load(Path(__file__).parent.parent / "examples" / "quickstart.yaml")
    plan = make_plan(spec)
    fields = {"technique", "cache_size", "window_size", "pooling", "sink_tokens"}
    return [{k: v for k, v in t.config.items() if k in fields} for t in plan.trials]


def grid() -> list[dict]:
    """The configurations compared, as technique parameters."""
    configs: list[dict] = [{"technique": "baseline"}]
    configs += [{"technique": "streamingllm", "cache_size": c, "sink_tokens": 4} for c in (256, 512)]
    for technique, sizes in (("snapkv", (256, 512, 1024)), ("pyramidkv", (256, 1024))):
        configs += [
            {"technique": technique, "window_size": 32, "cache_size": c, "pooling": p}
            for c in sizes
            for p in ("avgpool", "maxpool")
        ]
    configs += [{"technique": "h2o", "cache_size": c, "recent_size": 64} for c in (256, 512)]
    return configs


def label(config: dict) -> str:
    return " ".join(str(v) if isinstance(v, str) else f"{k[0]}{v}" for k, v in config.items())


def worker(mode: str, length: int, samples: int, batch: bool, threads: int | None, demo: bool = False) -> dict:
    """Evaluate the grid one way in this process; returns timings, prefills, peak memory and tokens."""
    import torch

    from evaluators.generation import generate
    from evaluators.kvcache import TECHNIQUES
    from evaluators.loader import load
    from evaluators.measure import PeakMemory
    from evaluators.models import ModelRequest
    from evaluators.prompting import PromptRenderer
    from evaluators.quiet import quiet_libraries
    from evaluators.shared_prefill import Member, generate_group
    from evaluators.tasks.passkey import Passkey

    quiet_libraries()
    if threads:
        torch.set_num_threads(threads)
    loaded = load(ModelRequest(MODEL, "float32", "cpu", None, None))
    renderer = PromptRenderer(loaded.tokenizer)
    task = Passkey(context_length=length, needle_depth=[0.2, 0.5, 0.8] if demo else [0.25, 0.5, 0.75])
    prompts = [renderer.render(s).ids for s in task.samples(samples, 0, renderer.length)]
    configs = demo_grid() if demo else grid()
    techniques = [TECHNIQUES[c["technique"]](**{k: v for k, v in c.items() if k != "technique"}) for c in configs]
    settings = {"max_new_tokens": task.max_new_tokens, "eos_ids": loaded.eos_ids}
    loaded_mb = psutil.Process().memory_info().rss / MB
    memory = PeakMemory("cpu")
    memory.start()
    tokens: dict[str, list[list[int]]] = {label(c): [] for c in configs}
    prefills = 0
    start = time.perf_counter()
    if mode == "alone":
        for config, technique in zip(configs, techniques, strict=True):
            for ids in prompts:
                tokens[label(config)].append(generate(loaded.model, ids, technique, **settings).token_ids)
                prefills += 1
    else:
        members = [Member(t) for t in techniques]
        for ids in prompts:
            group = generate_group(loaded.model, ids, members, batch_decode=batch, **settings)
            prefills += group.prefill_forwards
            for config, generation in zip(configs, group.members, strict=True):
                tokens[label(config)].append(generation.token_ids)
    seconds = time.perf_counter() - start
    peak = memory.stop()
    return {
        "seconds": seconds,
        "prefills": prefills,
        "peak_mb": peak,
        "loaded_mb": loaded_mb,
        "prompt_tokens": sum(len(p) for p in prompts) / len(prompts),
        "configs": len(configs),
        "tokens": tokens,
    }


def run_worker(mode: str, length: int, samples: int, batch: bool, threads: int | None, demo: bool = False) -> dict:
    """``worker`` in a fresh interpreter, so memory peaks do not carry over between the two ways."""
    command = [sys.executable, __file__, "--worker", mode, "--lengths", str(length), "--samples", str(samples)]
    command += ([] if batch else ["--no-batch"]) + (["--threads", str(threads)] if threads else [])
    command += ["--demo-worker"] if demo else []
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--no-batch", action="store_true", help="decode the group's members one after another")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo's grid")
    parser.add_argument("--demo-samples", type=int, default=3, help="samples of the demo's grid (the demo runs 3)")
    parser.add_argument("--worker", choices=["alone", "group"], help=argparse.SUPPRESS)
    parser.add_argument("--demo-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, args.lengths[0], args.samples, not args.no_batch, args.threads, args.demo_worker)
        print(json.dumps(result))
        return

    console = Console(width=170)
    table = Table(title="SmolLM2-135M (float32): each grid one configuration at a time, and as one group")
    for column in (
        "grid",
        "prompt tokens",
        "way",
        "wall s",
        "× all alone",
        "× one alone",
        "prefills",
        "peak RSS MB",
        "over model MB",
        "same tokens",
        "load",
    ):
        table.add_column(column, justify="right")
    runs = [] if args.no_demo else [("demo (10)", 1024, args.demo_samples, True)]
    runs += [(f"{len(grid())} configs", length, args.samples, False) for length in args.lengths]
    for name, length, samples, demo in runs:
        alone = run_worker("alone", length, samples, True, args.threads, demo)
        load_alone = os.getloadavg()[0]
        group = run_worker("group", length, samples, not args.no_batch, args.threads, demo)
        load_group = os.getloadavg()[0]
        same = sum(alone["tokens"][k] == group["tokens"][k] for k in alone["tokens"])
        one_alone = alone["seconds"] / alone["configs"]
        for way, result, load in (("one at a time", alone, load_alone), ("one group", group, load_group)):
            table.add_row(
                name,
                f"{result['prompt_tokens']:.0f}",
                way,
                f"{result['seconds']:.1f}",
                f"{result['seconds'] / alone['seconds']:.3f}",
                f"{result['seconds'] / one_alone:.2f}",
                str(result["prefills"]),
                f"{result['peak_mb']:.0f}",
                f"{result['peak_mb'] - result['loaded_mb']:.0f}",
                f"{same}/{len(alone['tokens'])}" if way == "one group" else "",
                f"{load:.1f}",
            )
        console.print(
            f"{name} at {length}: group {alone['seconds'] / group['seconds']:.2f}× faster than one at a time, "
            f"{group['seconds'] / one_alone:.2f}× one configuration alone; {same} configurations same"
        )
    console.print(table)
    console.print("load: the 1-minute load average after each way (2 CPUs here: above 2 means shared time)")


if __name__ == "__main__":
    main()
