"""Pass-key retrieval against KV-cache budget, for every eviction technique, query-aware and not.

SmolLM2-135M-Instruct reads ~1.5K tokens with a pass key at several depths. Each technique
keeps 10%-100% of the prompt's cache; the x axis is the cache actually kept (measured from the
cache tensors), so techniques with per-layer or per-head budgets compare fairly. The sweep runs
on the platform itself (Ray, MLflow, storage); the curve is written as a CSV and a PNG and
printed as a table.

    python benchmarks/passkey_curve.py [--out benchmarks/out] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sweeps.plan import make_plan
from sweeps.runner import connect_ray, launch
from sweeps.spec import parse
from sweeps.store import SweepStore

CONTEXT = 1536
TECHNIQUES = ("streamingllm", "snapkv", "pyramidkv", "h2o", "duoattention")


def method(technique: str, budget: int) -> dict:
    """One technique at one cache budget (tokens), with the study's usual companions."""
    if technique == "streamingllm":
        return {"technique": technique, "cache_size": budget, "sink_tokens": 4}
    if technique in ("snapkv", "pyramidkv"):
        return {"technique": technique, "cache_size": budget, "window_size": min(32, budget // 2)}
    if technique == "h2o":
        return {"technique": technique, "cache_size": budget, "recent_size": max(1, min(128, budget // 2))}
    return {"technique": technique, "cache_size": budget, "sink_tokens": min(64, budget // 4), "sparsity": 0.5}


def sweep(storage: Path, fractions: list[float], depths: list[float]) -> dict:
    budgets = sorted({max(16, round(CONTEXT * f)) for f in fractions})
    methods = [{"technique": "baseline"}] + [method(t, b) for t in TECHNIQUES for b in budgets]
    return {
        "name": "passkey-curve",
        "workload": "evaluate",
        "experiment": "passkey-curve",
        "storage": str(storage),
        "resources": {"cpu": 2},
        "max_concurrent": 1,
        "fixed": {
            "model": "smollm2-135m-instruct",
            "task": "passkey",
            "context_length": CONTEXT,
            "needle_depth": depths,
            "samples": len(depths),
        },
        "grid": {"query_aware": [True, False], "method": methods},
    }


def collect(store: SweepStore, plan) -> list[dict]:
    """One row per finished trial; the cache kept is relative to the full cache of the same mode."""
    records = {t.key: store.result(t.key) for t in plan.trials}
    finished = [(t, r) for t, r in ((t, records[t.key]) for t in plan.trials) if r and r["status"] == "completed"]
    full = {
        t.config["query_aware"]: r["metrics"]["kv_cache_mb"] for t, r in finished if t.config["technique"] == "baseline"
    }
    rows = []
    for trial, record in finished:
        metrics = record["metrics"]
        rows.append(
            {
                "technique": trial.config["technique"],
                "query_aware": trial.config["query_aware"],
                "cache_size": trial.config.get("cache_size"),
                "kept_fraction": metrics["kv_cache_mb"] / full[trial.config["query_aware"]],
                "kv_cache_mb": metrics["kv_cache_mb"],
                "score": metrics["score"],
                "seconds_per_sample": metrics["seconds_per_sample"],
            }
        )
    return sorted(rows, key=lambda r: (r["query_aware"], r["technique"], r["kept_fraction"]))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, aware in zip(axes, (True, False), strict=True):
        for technique in ("baseline", *TECHNIQUES):
            points = [r for r in rows if r["technique"] == technique and r["query_aware"] == aware]
            if points:
                style = (
                    {"marker": "*", "markersize": 12, "linestyle": "none"}
                    if technique == "baseline"
                    else {"marker": "o"}
                )
                ax.plot([p["kept_fraction"] for p in points], [p["score"] for p in points], label=technique, **style)
        ax.set_title("query-aware (question compressible)" if aware else "context only (question kept)")
        ax.set_xlabel("KV cache kept (fraction of the full cache, measured)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("pass-key score (substring match)")
    axes[1].legend(loc="lower right")
    fig.suptitle(f"SmolLM2-135M-Instruct, pass key in {CONTEXT} tokens")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--quick", action="store_true", help="two budgets and two depths (a smoke run)")
    args = parser.parse_args()
    fractions = [0.1, 0.5] if args.quick else [0.1, 0.25, 0.5, 1.0]
    depths = [0.25, 0.75] if args.quick else [0.1, 0.3, 0.5, 0.7, 0.9]
    args.out.mkdir(parents=True, exist_ok=True)
    raw = sweep(args.out / "runs", fractions, depths)
    plan = make_plan(parse(raw))
    console = Console()
    console.print(f"{len(plan.trials)} trials x {len(depths)} prompts; results resume from {args.out / 'runs'}")
    connect_ray(None)
    launch(plan, raw, console=Console(file=io.StringIO()))
    rows = collect(SweepStore(plan.spec.sweep_dir), plan)
    with (args.out / "passkey_curve.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.out / "passkey_curve.png")
    table = Table(title="pass-key score against KV-cache kept", title_justify="left")
    for column in ("query_aware", "technique", "cache_size", "kept", "kv MiB", "score", "s/sample"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            str(r["query_aware"]),
            r["technique"],
            str(r["cache_size"] or "all"),
            f"{r['kept_fraction']:.0%}",
            f"{r['kv_cache_mb']:.1f}",
            f"{r['score']:.2f}",
            f"{r['seconds_per_sample']:.1f}",
        )
    console.print(table)
    console.print(f"wrote {args.out / 'passkey_curve.csv'} and {args.out / 'passkey_curve.png'}")


if __name__ == "__main__":
    main()
