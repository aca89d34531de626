"""What the platform costs on the demo sweep: `sweeps launch` against a bare loop, side by side.

The demo (examples/quickstart.yaml: SmolLM2-135M-Instruct, pass key, 10 compression settings)
runs three ways, each in a fresh process with fresh storage (a temporary folder):

  (a) `sweeps launch` with `share_prefill: false`: one configuration per trial;
  (b) `sweeps launch` as the file says: the trials share each sample's prefill in groups;
  (c) a bare loop in one process: one model load, no Ray, no MLflow, the same prompts and
      the same `generate` call per configuration and sample as a trial of (a) makes.

Each wall time is the process's, start to end (imports, Ray, MLflow and model load
included), measured from outside. (a)/(c) is what Ray Tune, MLflow and storage add to the
same work; (b)/(c) is set against the sharing factor (prefills alone / prefills run). Every
configuration's score, and every sample's output, must agree across the three ways (the exit
status says whether they did). The machine's load average is printed beside the figures, and
the CPU seconds of each run's process tree, by kind of process, with them: on a shared machine
the load moves the wall times, and the CPU seconds show where the platform's own time goes.

    python benchmarks/platform_overhead.py [--repeats 1] [--samples 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "quickstart.yaml"
WAYS = {
    "a": "(a) launch, share_prefill: false",
    "b": "(b) launch, shared prefills",
    "c": "(c) bare loop",
}


@dataclass
class Outcome:
    """One run of one way: wall time, CPU seconds, load during it, and per trial its score and outputs."""

    wall: float
    #: CPU seconds per kind of process in the run's tree
    cpu_by: dict[str, float]
    load: float
    #: trial key -> task score (the configuration's mean over samples)
    scores: dict[str, float]
    #: trial key -> the samples' visible outputs, in sample order
    outputs: dict[str, list[str]]
    prefills: int
    trial_samples: int
    #: seconds spent on the samples themselves (generation and scoring), summed over trials
    sample_seconds: float
    #: of those, prefilling (a member's share of a shared prefill, and its own compression) and decoding
    prefill_seconds: float
    decode_seconds: float
    model_load: float
    #: the way's own account of its time, when it reports one (the launch's closing line)
    notes: list[str] = field(default_factory=list)

    @property
    def cpu(self) -> float:
        return sum(self.cpu_by.values())

    @property
    def rest(self) -> float:
        """Process wall time outside the samples and the model load: imports, Ray, Tune, MLflow, storage."""
        return self.wall - self.sample_seconds - self.model_load


def overrides(storage: Path, samples: int | None) -> list[str]:
    """``--set`` assignments every way shares: its own storage, and the sample count if overridden."""
    sets = [f"storage={storage}"]
    return sets + ([f"fixed.samples={samples}"] if samples else [])


def configurations(storage: Path, samples: int | None) -> tuple[list[dict], int, dict[str, str]]:
    """The demo's trials as the platform plans them (key and flat parameters), the CPUs per trial, run names."""
    from sweeps.plan import make_plan
    from sweeps.spec import load

    spec, _ = load(DEMO, overrides(storage, samples))
    plan = make_plan(spec)
    configs = [{"key": t.key, "params": t.config} for t in plan.trials]
    return configs, int(spec.resources.cpu), {t.key: plan.run_name(t) for t in plan.trials}


class Watch:
    """Watches a run while it lasts: the 1-minute load average, and the CPU seconds of its process tree.

    On a shared machine a wall time says as much about the neighbours as about the run; the
    CPU seconds of the run's own processes (Ray's daemons and workers included) say what work
    it did. Each process is read every ``every`` seconds, so up to that much of a process's
    last CPU time is missed: a slight underestimate, a little larger for a run of many
    processes (a launch's) than for one (the bare loop).
    """

    def __init__(self, pid: int, every: float = 0.5) -> None:
        self.pid = pid
        self.every = every
        self.loads: list[float] = [os.getloadavg()[0]]
        #: (pid, start time) -> (what the process is, its CPU seconds when last read)
        self._cpu: dict[tuple[int, float], tuple[str, float]] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for proc in tree:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    key = (proc.pid, proc.create_time())
                    known = self._cpu.get(key, ("", 0.0))[0]
                    what = "the run's own process" if proc.pid == self.pid else label(proc, known)
                    self._cpu[key] = (what, times.user + times.system)
            except psutil.Error:  # ended between the listing and the reading
                pass

    def _watch(self) -> None:
        ticks = 0
        while not self._done.wait(self.every):
            self._read()
            ticks += 1
            if ticks % 10 == 0:  # every 5 s
                self.loads.append(os.getloadavg()[0])

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self.loads.append(os.getloadavg()[0])

    @property
    def load(self) -> float:
        return statistics.fmean(self.loads)

    @property
    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds per kind of process (Ray's daemons by name, workers by what they ran last)."""
        out: dict[str, float] = {}
        for what, seconds in self._cpu.values():
            out[what] = out.get(what, 0.0) + seconds
        return out


def label(proc: psutil.Process, known: str = "") -> str:
    """What a process of the run is: a Ray worker by its title (``ray::IDLE``, ``ray::<Trainable>.train``),
    a Python daemon by its script, anything else by its name. A process that is ending shows no
    command line; it keeps the label ``known`` from an earlier reading."""
    command = proc.cmdline()
    if not command and known:
        return known
    if command and command[0].startswith("ray::"):
        return command[0].split()[0]
    scripts = [Path(arg).stem for arg in command[1:] if arg.endswith(".py")]
    return f"python {scripts[0]}" if "python" in proc.name() and scripts else proc.name()


def timed(command: list[str], cwd: Path, log: Path) -> tuple[float, dict[str, float], float]:
    """Run ``command`` in a fresh process: its wall time start to end, CPU seconds per kind of process
    in its tree, and the mean load meanwhile."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("RAY_ADDRESS", None)  # a launch starts a Ray of its own, as on a fresh machine
    env["COLUMNS"] = "250"  # the launch's lines unwrapped in its log, which is read back
    with log.open("w") as out:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        watch = Watch(process.pid)
        code = process.wait()
        wall = time.perf_counter() - start
        watch.stop()
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise SystemExit(f"{' '.join(command)} failed ({code}); log {log}:\n{tail}")
    return wall, watch.cpu_by_process, watch.load


def platform(way: str, folder: Path, configs: list[dict], samples: int | None) -> Outcome:
    """The demo through ``sweeps launch`` in a fresh process; results read back from its storage."""
    from sweeps.spec import load
    from sweeps.store import SweepStore

    storage = folder / "runs"
    sets = overrides(storage, samples) + (["share_prefill=false"] if way == "a" else [])
    command = [sys.executable, "-m", "sweeps.cli", "launch", str(DEMO)]
    for assignment in sets:
        command += ["--set", assignment]
    log = folder / "launch.log"
    wall, cpu_by, load_mean = timed(command, folder, log)
    store = SweepStore(load(DEMO, sets)[0].sweep_dir)
    scores, outputs = {}, {}
    prefills = trial_samples = 0.0
    sample_seconds = prefill_seconds = decode_seconds = model_load = 0.0
    for config in configs:
        result = store.result(config["key"])
        if not result or result.get("status") != "completed":
            raise SystemExit(f"{WAYS[way]}: trial {config['key']} did not complete; see {log}")
        info = result["info"]
        scores[config["key"]] = result["metrics"]["score"]
        rows = [json.loads(line) for line in (store.trial_dir(config["key"]) / "generations.jsonl").open()]
        outputs[config["key"]] = [row["output"] for row in rows]
        sample_seconds += sum(row["seconds"] for row in rows)
        prefill_seconds += sum(row["prefill_s"] for row in rows)
        decode_seconds += sum(row["decode_s"] for row in rows)
        # a group's prefills are counted once over its members
        prefills += info["group_prefills"] / info["group_size"]
        trial_samples += info["samples_evaluated"]
        if info["model_loaded_by_trial"]:
            model_load += info["model_load_seconds"]
    lines = log.read_text().splitlines()
    # what the launch says of itself: its groups, the prefills they saved, its own clock (from launch() on)
    notes = [line.strip() for line in lines if line.startswith(("Trial groups:", "Shared prefills:"))]
    notes += [f"launch's own clock: {line.rsplit(' in ', 1)[-1]}" for line in lines if "already completed) in" in line]
    return Outcome(
        wall,
        cpu_by,
        load_mean,
        scores,
        outputs,
        round(prefills),
        round(trial_samples),
        sample_seconds,
        prefill_seconds,
        decode_seconds,
        model_load,
        notes,
    )


def bare(folder: Path, configs: list[dict], threads: int) -> Outcome:
    """The demo as a bare loop in a fresh process (``--worker``), which writes what it did to ``folder``."""
    (folder / "configs.json").write_text(json.dumps({"configs": configs, "threads": threads}))
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(folder)]
    wall, cpu_by, load_mean = timed(command, folder, folder / "bare.log")
    done = json.loads((folder / "bare.json").read_text())
    return Outcome(
        wall,
        cpu_by,
        load_mean,
        done["scores"],
        done["outputs"],
        done["prefills"],
        done["trial_samples"],
        done["sample_seconds"],
        done["prefill_seconds"],
        done["decode_seconds"],
        done["model_load"],
    )


def worker(folder: Path) -> None:
    """The bare loop: what a trial of (a) does per configuration and sample, without Ray, Tune or MLflow.

    The evaluators' own API throughout (loader, renderer, the task's samples and scorer,
    ``generate``), so any difference in the scores is the platform's, not this loop's.
    """
    import torch

    from evaluators import config as evaluate_config
    from evaluators.generation import generate
    from evaluators.health import visible_text
    from evaluators.kvcache.base import ModelContext
    from evaluators.loader import load
    from evaluators.prompting import PromptRenderer
    from evaluators.quiet import quiet_libraries
    from evaluators.scoring import split_thinking
    from evaluators.stopping import LineStop
    from evaluators.summary import task_metrics

    given = json.loads((folder / "configs.json").read_text())
    configs, threads = given["configs"], given["threads"]
    quiet_libraries()
    if threads > 0:
        torch.set_num_threads(threads)  # as a trial does with its CPUs
    # the model, task and samples come from the first configuration, as in a trial group
    settings, task, _ = evaluate_config.split(configs[0]["params"])
    loaded = load(evaluate_config.model_request(settings, "cpu"))
    renderer = PromptRenderer(loaded.tokenizer, settings.chat_template)
    samples = task.samples(settings.samples, settings.seed, renderer.length)
    stop = LineStop.for_tokenizer(loaded.tokenizer) if task.stop_at_newline else None
    max_new_tokens = settings.max_new_tokens or task.max_new_tokens
    scores: dict[str, float] = {}
    outputs: dict[str, list[str]] = {}
    prefills = 0
    prefill_seconds = decode_seconds = 0.0
    start = time.perf_counter()
    for config in configs:
        own, _, technique = evaluate_config.split(config["params"])
        prepared = folder / config["key"]
        prepared.mkdir(exist_ok=True)
        technique.prepare(ModelContext(loaded.model, loaded.tokenizer, renderer, prepared))
        rows = []
        for sample in samples:
            rendered = renderer.render(sample)
            result = generate(
                loaded.model,
                rendered.ids,
                technique,
                max_new_tokens=max_new_tokens,
                eos_ids=loaded.eos_ids,
                compress_until=None if own.query_aware else rendered.question_start,
                kv_bits=own.kv_bits,
                stop=stop,
            )
            prefills += 1
            prefill_seconds += result.prefill_seconds
            decode_seconds += result.decode_seconds
            output = visible_text(loaded.tokenizer, result.token_ids)
            scored = task.score(split_thinking(output, renderer.opens_thinking).answer, sample)
            rows.append({"scores": scored.scores, "missing": scored.missing, "output": output})
        metrics, _ = task_metrics(rows, task.metrics)
        scores[config["key"]] = metrics["score"]
        outputs[config["key"]] = [row["output"] for row in rows]
        print(f"{config['key']}: score {scores[config['key']]:.3f} at {time.perf_counter() - start:.1f} s", flush=True)
    record = {
        "scores": scores,
        "outputs": outputs,
        "prefills": prefills,
        "trial_samples": len(configs) * len(samples),
        "sample_seconds": time.perf_counter() - start,
        "prefill_seconds": prefill_seconds,
        "decode_seconds": decode_seconds,
        "model_load": loaded.load_seconds,
    }
    (folder / "bare.json").write_text(json.dumps(record))


def agree(runs: dict[str, list[Outcome]], key: str) -> tuple[bool, bool]:
    """Whether every run of every way has the same score, and the same outputs, for trial ``key``."""
    all_runs = [o for outcomes in runs.values() for o in outcomes]
    return (
        len({o.scores[key] for o in all_runs}) == 1,
        all(o.outputs[key] == all_runs[0].outputs[key] for o in all_runs),
    )


def cpu_table(runs: dict[str, list[Outcome]], shown: int = 8) -> Table:
    """Where each way's CPU seconds went, by kind of process (the first run of each way)."""
    kinds: dict[str, float] = {}
    for outcomes in runs.values():
        for kind, seconds in outcomes[0].cpu_by.items():
            kinds[kind] = max(kinds.get(kind, 0.0), seconds)
    top = sorted(kinds, key=kinds.__getitem__, reverse=True)[:shown]
    table = Table(title="CPU seconds by process", title_justify="left")
    table.add_column("process")
    for way in runs:
        table.add_column(f"({way})", justify="right")
    for kind in top:
        table.add_row(kind, *(f"{outcomes[0].cpu_by.get(kind, 0.0):.1f}" for outcomes in runs.values()))
    rest = [sum(s for k, s in outcomes[0].cpu_by.items() if k not in top) for outcomes in runs.values()]
    if any(rest):
        table.add_row("the others", *(f"{r:.1f}" for r in rest))
    return table


def report(console: Console, configs: list[dict], runs: dict[str, list[Outcome]], names: dict[str, str]) -> bool:
    """The figures: one row per way (medians over the repeats), then the scores per configuration;
    whether every configuration's score agreed across the ways and runs."""
    wall = {way: statistics.median(o.wall for o in outcomes) for way, outcomes in runs.items()}
    cpu = {way: statistics.median(o.cpu for o in outcomes) for way, outcomes in runs.items()}
    repeats = len(runs["c"])
    table = Table(
        title=f"the demo sweep three ways: {len(configs)} configurations, median of {repeats} run(s)",
        title_justify="left",
    )
    for column in (
        "way",
        "wall s",
        "wall × bare",
        "CPU s",
        "CPU × bare",
        "prefills",
        "sharing",
        "samples s",
        "prefill s",
        "decode s",
        "model load s",
        "rest s",
        "load avg",
    ):
        table.add_column(column, justify="right")
    for way, outcomes in runs.items():
        middle = min(outcomes, key=lambda o: abs(o.wall - wall[way]))  # the run the median names
        walls = " / ".join(f"{o.wall:.1f}" for o in outcomes)
        table.add_row(
            WAYS[way],
            f"{wall[way]:.1f}" + (f"  ({walls})" if repeats > 1 else ""),
            f"{wall[way] / wall['c']:.3f}",
            f"{cpu[way]:.1f}",
            f"{cpu[way] / cpu['c']:.3f}",
            f"{middle.prefills} of {middle.trial_samples}",
            f"{middle.trial_samples / middle.prefills:.1f}×",
            f"{middle.sample_seconds:.1f}",
            f"{middle.prefill_seconds:.1f}",
            f"{middle.decode_seconds:.1f}",
            f"{middle.model_load:.1f}",
            f"{middle.rest:.1f}",
            " / ".join(f"{o.load:.1f}" for o in outcomes),
        )
    console.print(table)
    console.print(
        "wall s: the process's, start to end; CPU s: user + system seconds of its process tree (Ray's daemons "
        "and workers included). "
        "samples s: generation and scoring of every trial-sample (the trials' own per-sample seconds), "
        "of which prefill s (a member's share of a shared prefill, plus its own compression) and decode s; "
        "rest: the process's other time (interpreter, imports, Ray and Tune, MLflow, storage, "
        "the canary prompt). load avg: mean 1-minute load while the way ran, this benchmark's own "
        f"busy threads included ({os.cpu_count()} CPUs).",
        style="dim",
    )
    console.print(cpu_table(runs))
    for way in ("a", "b"):
        for line in runs[way][0].notes:
            console.print(f"{WAYS[way]}: {line}", highlight=False)

    scores = Table(title="score per configuration (pass key found, mean over samples)", title_justify="left")
    for column in ("trial", "(a)", "(b)", "(c)", "scores agree", "outputs agree"):
        scores.add_column(column, justify="right")
    all_agree = True
    for config in configs:
        key = config["key"]
        same_score, same_output = agree(runs, key)
        all_agree = all_agree and same_score
        scores.add_row(
            names[key],
            *(f"{runs[way][0].scores[key]:.3f}" for way in ("a", "b", "c")),
            "✓" if same_score else "[red]✗[/]",
            "✓" if same_output else "[yellow]✗[/]",
        )
    console.print(scores)

    sharing = runs["b"][0].trial_samples / runs["b"][0].prefills
    console.print(
        f"(a)/(c) = [bold]{wall['a'] / wall['c']:.2f}×[/] wall, {cpu['a'] / cpu['c']:.2f}× CPU "
        "(target ≤ 1.05×: the platform adds little to the same work)"
    )
    console.print(
        f"(b)/(c) = [bold]{wall['b'] / wall['c']:.2f}×[/] wall, {cpu['b'] / cpu['c']:.2f}× CPU: "
        f"{wall['c'] / wall['b']:.2f}× faster than the bare loop ({cpu['c'] / cpu['b']:.2f}× less CPU); "
        f"sharing factor {sharing:.1f}× (prefills alone / prefills run; target: faster by about that much)"
    )
    alone = runs["a"][0]
    bound = alone.sample_seconds / (alone.prefill_seconds / sharing + alone.sample_seconds - alone.prefill_seconds)
    console.print(
        f"in (a) prefill is {alone.prefill_seconds / alone.sample_seconds:.0%} of the samples' time: sharing it "
        f"{sharing:.0f}× with every other part unchanged would make the samples at most {bound:.2f}× faster "
        f"(Amdahl); (b)'s decode took {runs['b'][0].decode_seconds / alone.decode_seconds:.2f}× (a)'s "
        f"({runs['b'][0].decode_seconds:.1f} s batched against {alone.decode_seconds:.1f} s alone)"
    )
    verdict = "[green]all agree[/]" if all_agree else "[red]DISAGREE[/]"
    console.print(f"scores per configuration across (a), (b), (c): {verdict}")
    return all_agree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of each way; figures are medians (default 1: on a 2-CPU machine one run of the three ways "
        "takes over 10 minutes idle, and an hour or more when the machine is shared)",
    )
    parser.add_argument("--samples", type=int, default=None, help="samples per configuration (default: the file's)")
    parser.add_argument("--keep", action="store_true", help="keep the runs' storage and logs, and say where")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return

    console = Console(width=170)
    root = Path(tempfile.mkdtemp(prefix="platform-overhead-"))
    agreed = False
    try:
        configs, threads, names = configurations(root / "plan", args.samples)
        console.print(
            f"{DEMO.relative_to(ROOT)}: {len(configs)} configurations × "
            f"{configs[0]['params']['samples']} samples, {args.repeats} repeat(s); "
            f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs"
        )
        runs: dict[str, list[Outcome]] = {way: [] for way in WAYS}
        for repeat in range(1, args.repeats + 1):
            for way in WAYS:
                folder = root / f"{way}-{repeat}"
                folder.mkdir()
                console.print(f"run {repeat}/{args.repeats}: {WAYS[way]} …", highlight=False)
                outcome = bare(folder, configs, threads) if way == "c" else platform(way, folder, configs, args.samples)
                runs[way].append(outcome)
                console.print(f"  {outcome.wall:.1f} s, load {outcome.load:.1f}", highlight=False)
        agreed = report(console, configs, runs, names)
    finally:
        if args.keep:
            console.print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if not agreed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
