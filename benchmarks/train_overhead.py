"""What Ray Train + DeepSpeed cost: the same SFT steps through the platform and with bare TRL, side by side.

Both runs train the same LoRA on the same rows for the same steps with the same threads:
once as a one-trial sweep (a Tune trial that launches a Ray Train worker running TRL's
SFTTrainer under DeepSpeed ZeRO-2, with checkpoints, MLflow and the post-training
evaluation), once as TRL alone in this process (no Ray, no DeepSpeed). The table shows the
training loop's throughput (samples/s as the Hugging Face trainer measures it) and the wall
time end to end; the ratios are the platform's overhead. With ``--workers 2`` a third row
splits the same work over two ZeRO-2 workers (data parallel over gloo).

    python benchmarks/train_overhead.py [--steps 20] [--workers 2] [--model smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sweeps.plan import make_plan
from sweeps.runner import connect_ray, launch
from sweeps.spec import parse
from sweeps.store import SweepStore
from trainers.arithmetic import write_dataset
from trainers.data import load_examples, split
from trainers.run import SUMMARY, Worker, run
from trainers.sft import SFTParams

THREADS = os.cpu_count() or 1


def fixed(model: str, dataset: Path, steps: int, batch_size: int) -> dict:
    return {
        "model": model,
        "dataset": str(dataset),
        "max_steps": steps,
        "batch_size": batch_size,
        "save_steps": steps,
        "eval_steps": steps,
        "max_new_tokens": 8,
        "eval_fraction": 0.05,
        "learning_rate": 1e-3,
        "zero_stage": 2,
    }


def platform_run(storage: Path, params: dict, workers: int) -> dict:
    """One trial through Tune → Ray Train → DeepSpeed → TRL; its summary plus the wall time."""
    raw = {
        "name": f"overhead-{workers}w",
        "workload": "sft",
        "storage": str(storage),
        "resources": {"cpu": THREADS // workers, "gpu": 0},
        "fixed": {**params, "num_workers": workers, "batch_size": params["batch_size"] // workers},
    }
    plan = make_plan(parse(raw))
    started = time.perf_counter()
    summary = launch(plan, raw, console=Console(file=io.StringIO()))
    wall = time.perf_counter() - started
    if summary.counts["done"] != 1:
        raise SystemExit(f"the platform run failed: see {plan.spec.sweep_dir}")
    trial_dir = SweepStore(plan.spec.sweep_dir).trial_dir(plan.trials[0].key)
    return {**json.loads((trial_dir / SUMMARY).read_text())["metrics"], "wall": wall}


def bare_run(folder: Path, params: dict) -> dict:
    """The same steps with TRL alone in this process: no Ray, no DeepSpeed."""
    sft = SFTParams(**params)
    train, held_out = split(load_examples(sft.dataset, "sft"), sft.eval_fraction, sft.seed)
    started = time.perf_counter()
    metrics = run("sft", sft, train, held_out, folder, Worker(), report=lambda _: None, deepspeed=False)
    return {**metrics, "wall": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4, help="examples per step, over all workers")
    parser.add_argument("--workers", type=int, default=1, help="also run the platform with this many workers")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = write_dataset(root / "sft.jsonl", count=200, kind="sft", system="Be brief.")
        params = fixed(args.model, dataset, args.steps, args.batch_size)
        connect_ray(None)
        rows = {}
        console.print(f"{args.steps} SFT steps of {args.batch_size} examples on {args.model}, {THREADS} threads")
        rows["bare TRL, one process"] = bare_run(root / "bare", params)
        rows["platform, 1 worker (Ray Train + ZeRO-2)"] = platform_run(root / "runs", params, 1)
        if args.workers > 1:
            rows[f"platform, {args.workers} workers (ZeRO-2, gloo)"] = platform_run(root / "runs", params, args.workers)
    bare = rows["bare TRL, one process"]
    table = Table(title="training overhead", title_justify="left")
    for column in ("run", "train samples/s", "vs bare", "wall s", "vs bare", "eval_format_ok_rate"):
        table.add_column(column, justify="right")
    for name, row in rows.items():
        table.add_row(
            name,
            f"{row['train_samples_per_second']:.2f}",
            f"{row['train_samples_per_second'] / bare['train_samples_per_second']:.2f}x",
            f"{row['wall']:.1f}",
            f"{row['wall'] / bare['wall']:.2f}x",
            f"{row.get('eval_format_ok_rate', float('nan')):.2f}",
        )
    console.print(table)
    platform = rows["platform, 1 worker (Ray Train + ZeRO-2)"]
    throughput = platform["train_samples_per_second"] / bare["train_samples_per_second"]
    console.print(
        f"throughput ratio (platform / bare): [bold]{throughput:.2f}x[/]; "
        f"wall time ratio: {platform['wall'] / bare['wall']:.2f}x"
    )


if __name__ == "__main__":
    main()
