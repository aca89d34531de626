"""Model reuse across trials: the same sweep with and without Tune actor reuse, side by side.

With reuse (the evaluate workload's default), a worker keeps its loaded model and each
later trial on it skips loading; without, every trial starts a new actor and loads the
model again. Prints wall time, model loads and the ratio, measured in one run.

    python benchmarks/model_reuse.py [--trials 8] [--model smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sweeps.plan import make_plan
from sweeps.runner import connect_ray, launch
from sweeps.spec import parse
from sweeps.store import SweepStore


def sweep(storage: Path, model: str, trials: int) -> dict:
    sizes = [64 + 32 * i for i in range(trials)]
    return {
        "name": "reuse-bench",
        "workload": "evaluate",
        "storage": str(storage),
        "resources": {"cpu": 2},
        "max_concurrent": 1,
        "fixed": {
            "model": model,
            "task": "passkey",
            "context_length": 256,
            "samples": 1,
            "max_new_tokens": 4,
        },
        "grid": {"method": [{"technique": "streamingllm", "cache_size": sizes}]},
    }


def run(reuse: bool, model: str, trials: int) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        raw = sweep(Path(tmp), model, trials)
        plan = make_plan(parse(raw))
        start = time.perf_counter()
        summary = launch(plan, raw, console=Console(file=io.StringIO()), reuse_actors=reuse)
        wall = time.perf_counter() - start
        store = SweepStore(plan.spec.sweep_dir)
        loads = sum(bool(store.result(t.key)["info"]["model_loaded_by_trial"]) for t in plan.trials)
        return wall, loads, summary.counts["done"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    connect_ray(None)
    run(True, args.model, 1)  # warm-up: model conversion cache, worker imports
    rows = {reuse: run(reuse, args.model, args.trials) for reuse in (False, True)}
    table = Table(title=f"model reuse: {args.trials} trials of {args.model}, one worker", title_justify="left")
    for column in ("mode", "wall s", "model loads", "trials done"):
        table.add_column(column, justify="right")
    for reuse, (wall, loads, done) in rows.items():
        table.add_row("reuse_actors" if reuse else "fresh actor per trial", f"{wall:.1f}", str(loads), str(done))
    console = Console()
    console.print(table)
    fresh, reused = rows[False][0], rows[True][0]
    console.print(
        f"wall time ratio (fresh / reuse): [bold]{fresh / reused:.2f}x[/]; "
        f"model loads {rows[False][1]} → {rows[True][1]}"
    )


if __name__ == "__main__":
    main()
