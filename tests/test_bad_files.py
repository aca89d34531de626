"""Bad sweep files, ``--set`` values and command lines: every one exits with code 2 within
seconds, with one message per problem that names its place in the file's own terms, no
traceback, a bounded size, and nothing written anywhere.

The bulk is generated: every key of the example sweep files of every workload (evaluate, sft,
grpo) is mutated (wrong type, a boolean for a number, NaN and infinity, absurd magnitudes,
misspelt keys and choices, markup characters, non-UTF-8 bytes, huge values, nesting, alias
bombs, duplicate keys) and run through the CLI in-process; a few go through the real
``sweeps`` executable.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from sweeps import cli
from sweeps.errors import SpecError
from sweeps.grid import MAX_TRIALS, expand

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
STORAGE = "@STORAGE@"  # replaced by the test's own folder when the file is written
#: a refused file answers within this (generous: it catches hangs, not slowness)
HANG_BOUND_S = 30
MAX_MESSAGE = 6000
MARKUP = "[red]x[/red] [/]"
HUGE = "h" * 100_000


@dataclass(frozen=True)
class Case:
    """A sweep file (text or bytes) and what the refusal must name."""

    id: str
    text: str | bytes
    where: str
    args: tuple[str, ...] = ()
    #: exactly one problem (a single mutation); None when the count is not the point
    one: bool = True
    message: str = ""


def example(name: str) -> dict:
    """An example sweep file as a mapping, its storage and data made independent of the working folder."""
    raw = yaml.safe_load((EXAMPLES / name).read_text())
    raw["storage"] = STORAGE
    raw.pop("tracking", None)
    if "dataset" in raw.get("fixed", {}):
        raw["fixed"]["dataset"] = str(ROOT / raw["fixed"]["dataset"])
    return raw


BASES = {"evaluate": example("quickstart.yaml"), "sft": example("lora_sft.yaml"), "grpo": example("grpo.yaml")}
#: keys whose values are free text (any string is valid there)
FREE_TEXT = {("experiment",), ("storage",), ("scheduler", "metric"), ("fixed", "target_modules")}
REQUIRED = {
    "evaluate": [("name",), ("workload",), ("fixed", "model"), ("fixed", "task")],
    "sft": [("name",), ("workload",), ("fixed", "model"), ("fixed", "dataset")],
    "grpo": [("fixed", "model"), ("fixed", "dataset")],
}


def dump(raw: dict) -> str:
    return yaml.dump(raw, Dumper=yaml.CSafeDumper, sort_keys=False, default_flow_style=None, width=10_000)


def leaves(node: object, path: tuple = ()) -> Iterator[tuple[tuple, object]]:
    """``(path, value)`` of every scalar and every list of scalars (an axis) in a sweep file."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    elif isinstance(node, list) and node and all(isinstance(v, dict) for v in node):
        for i, value in enumerate(node):
            yield from leaves(value, (*path, i))
    else:
        yield path, node


def dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def replaced(raw: dict, path: tuple, value: object) -> dict:
    """A deep copy of ``raw`` with the value at ``path`` replaced (an axis: its first item)."""
    copy = deepcopy(raw)
    node = copy
    for part in path[:-1]:
        node = node[part]
    if isinstance(node[path[-1]], list) and not isinstance(value, list) and path[0] == "grid":
        node[path[-1]][0] = value
    else:
        node[path[-1]] = value
    return copy


def renamed(raw: dict, path: tuple, new: str) -> dict:
    copy = deepcopy(raw)
    node = copy
    for part in path[:-1]:
        node = node[part]
    node[new] = node.pop(path[-1])
    return copy


def where_of(path: tuple, value: object) -> str:
    """The place a message must name: the key, or its first item when it is an axis."""
    return dotted(path) + ("[0]" if path[0] == "grid" and isinstance(value, list) else "")


#: what replaces a value of each kind; each key gets one of them in turn (all of them over the keys)
BAD_VALUES = {
    "bool": [("not-a-bool", "maybe"), ("int-for-bool", 5)],
    "number": [("true", True), ("nan", float("nan")), ("huge", 1e30), ("inf", float("inf")), ("text", "many")],
    "text": [("markup", MARKUP), ("huge-text", HUGE), ("misspelt-value", "@TYPO@"), ("nested-list", [[["deep"]]])],
}


def kind_of(path: tuple, value: object) -> str | None:
    scalar = value[0] if isinstance(value, list) and value else value
    if isinstance(scalar, bool):
        return "bool"
    if isinstance(scalar, (int, float)):
        return "number"
    if (isinstance(scalar, str) or scalar is None) and path not in FREE_TEXT:
        return "text"
    return None


def mutations() -> Iterator[Case]:
    """Three or four bad variants of every key of every example file, plus file-level damage."""
    turn = 0
    for workload, raw in BASES.items():
        for path, value in leaves(raw):
            if path[-1] == "storage":
                continue
            name = f"{workload}-{dotted(path)}"
            here = where_of(path, value)
            scalar = value[0] if isinstance(value, list) and value else value
            if isinstance(path[-1], str) and path[:2] not in (("fixed", "rewards"), ("grid", "rewards")):
                typo = f"{path[-1]}{path[-1][-1]}"
                yield Case(f"{name}-misspelt-key", dump(renamed(raw, path, typo)), dotted((*path[:-1], typo)))
            kind = kind_of(path, value)
            options = [("mapping", {"[/]": 1}), *BAD_VALUES.get(kind, [])]
            label, bad = options[turn % len(options)]
            turn += 1
            bad = f"{scalar}~x" if bad == "@TYPO@" else bad
            # a mapping in a grid is a sub-grid: its unknown key and what it displaces are two problems
            one = not (label == "mapping" and path[0] == "grid" and len(path) > 2)
            # a mapping among an axis's plain values is one problem of the whole axis
            where = dotted(path) if label == "mapping" else here
            yield Case(f"{name}-{label}", dump(replaced(raw, path, bad)), where, one=one)
            if len(path) == 1 or (path[0] in ("resources", "scheduler") and len(path) == 2):
                yield Case(f"{name}-duplicate", with_duplicate(raw, path), dotted(path), message="appears twice")
        text = dump(raw)
        yield Case(f"{workload}-latin1-byte", text.replace("name: ", "name: \xff").encode("latin-1"), "line 1")
        yield Case(f"{workload}-utf16", text.encode("utf-16"), "(file)", message="UTF-16")
        deep = text + "deep: " + "[" * 100 + "\n"
        yield Case(f"{workload}-deep", deep, "line ", message="nests more than")
        for path in REQUIRED[workload]:
            copy = deepcopy(raw)
            node = copy
            for part in path[:-1]:
                node = node[part]
            del node[path[-1]]
            yield Case(f"{workload}-missing-{dotted(path)}", dump(copy), "", message=f"{path[-1]!r}")
        yield Case(f"{workload}-alias-bomb", dump(raw) + billion_laughs(), "(file)", message="aliases")


def with_duplicate(raw: dict, path: tuple) -> str:
    """The file with ``path`` (a top-level key, or a key of a second-level mapping) written twice."""
    lines = dump(raw).splitlines(keepends=True)
    if len(path) == 1:
        return "".join(lines) + "".join(line for line in lines if line.startswith(f"{path[0]}:"))
    section = lines.index(next(line for line in lines if line.startswith(f"{path[0]}:")))
    if lines[section].rstrip().endswith("}"):  # a flow mapping: {cpu: 2, gpu: 0}
        value = yaml.safe_dump(raw[path[0]][path[1]], default_flow_style=True).strip().removesuffix("...").strip()
        lines[section] = lines[section].replace("{", f"{{{path[1]}: {value}, ", 1)
    else:
        at = next(i for i, line in enumerate(lines) if i > section and line.startswith(f"  {path[1]}:"))
        lines.insert(at + 1, lines[at])
    return "".join(lines)


def billion_laughs() -> str:
    lines = ['lol0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        lines.append(f"lol{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def quickstart(**changes: object) -> dict:
    raw = deepcopy(BASES["evaluate"])
    for dotted_path, value in changes.items():
        node = raw
        *parents, last = dotted_path.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return raw


def sft(**changes: object) -> dict:
    raw = deepcopy(BASES["sft"])
    for key, value in changes.items():
        *parents, last = key.split("__")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return raw


def listed_in_the_issue() -> Iterator[Case]:
    """Every finding of issue 9, section 4, that is a bad file."""
    q = dump(BASES["evaluate"])
    yield Case("markup-key", dump(quickstart(fixed__x=None)).replace("x: null", '"[/]": 1'), "fixed.[/]")
    yield Case(
        "markup-workload",
        q.replace("workload: evaluate", 'workload: "[/evaluate]"'),
        "workload",
        message="'[/evaluate]'",
    )
    yield Case(
        "markup-task",
        dump(quickstart(fixed__task="[red]passkey")),
        "fixed.task",
        message="'[red]passkey' is not accepted",
    )
    yield Case(
        "markup-model-path",
        dump(quickstart(fixed__model="/data/[old]/helmet")),
        "fixed.model",
        message="/data/[old]/helmet",
    )
    yield Case("markup-storage-file", q.replace(STORAGE, "/etc/passwd/[x]"), "storage", message="/etc/passwd/[x]")
    yield Case("utf16-file", q.encode("utf-16"), "(file)", message="UTF-16")
    yield Case("latin1-file", q.replace("quickstart", "quickstart\xe9").encode("latin-1"), "line 1", message="0xe9")
    yield Case("storage-regular-file", q.replace(STORAGE, "/etc/passwd"), "storage", message="not a folder")
    yield Case("storage-dev-null", q.replace(STORAGE, "/dev/null"), "storage")
    yield Case("storage-proc", q.replace(STORAGE, "/proc/sweeps"), "storage", message="system folder")
    yield Case("storage-under-a-file", q.replace(STORAGE, "/etc/passwd/runs"), "storage", message="file")
    yield Case("name-300", dump(quickstart(name="n" * 300)), "name", message="at most 100")
    yield Case("deep-brackets", q + "x: " + "[" * 10_000 + "\n", "line", message="nests more than")
    nested = "{method: [" * 460 + "{technique: baseline}" + "]}" * 460
    yield Case("deep-sub-grids", q.replace("grid:\n", f"grid: {nested}\nx:\n"), "line", message="nests more than")
    yield Case("alias-bomb", q + billion_laughs(), "(file)", message="aliases")
    yield Case("alias-loop", q.replace("samples: 3", "samples: &s [1, *s]"), "line", message="refers to the value")
    near = {"seed": list(range(1000)), "method": [{"technique": "snapkv", "cache_size": list(range(200, 400))}]}
    yield Case("grid-200000", dump(quickstart(grid=near)), "grid", message="expands to 200,000 trials")
    yield Case(
        "grid-astronomical",
        dump(quickstart(grid={f"a{i}": {"seed": list(range(10))} for i in range(40)})),
        "grid",
        message="trials, more than",
    )
    yield Case("duplicate-top", q + "name: other\n", "name", message="lines 1 and")
    yield Case("duplicate-fixed", q.replace("  samples: 3\n", "  samples: 3\n  samples: 4\n"), "fixed.samples")
    yield Case(
        "duplicate-sub-grid",
        q.replace("    cache_size: [128, 256, 512]\n", "    cache_size: 1\n    cache_size: 2\n", 1),
        "cache_size",
    )
    for path in ("fixed__samples", "retries", "max_concurrent", "resources__gpu"):
        yield Case(f"true-{path}", dump(quickstart(**{path: True})), path.replace("__", "."), message="true")
    nan_rate = dump(sft(grid__learning_rate=[float("nan")]))
    yield Case("sft-nan-learning-rate", nan_rate, "grid.learning_rate[0]", message="not a finite number")
    inf_rate = dump(sft(grid__learning_rate=["inf"]))
    yield Case("sft-inf-text-learning-rate", inf_rate, "grid.learning_rate[0]", message="not a finite number")
    grpo = deepcopy(BASES["grpo"])
    for key in ("temperature", "beta"):
        bad = deepcopy(grpo)
        bad["fixed"][key] = float("inf")
        yield Case(f"grpo-inf-{key}", dump(bad), f"fixed.{key}", message="finite")
    yield Case("nan-cpu", dump(quickstart(resources__cpu=float("nan"))), "resources.cpu")
    yield Case("samples-1e30", dump(quickstart(fixed__samples=1e30)), "fixed.samples", message="out of range")
    yield Case("context-1e15", dump(quickstart(fixed__context_length=1e15)), "fixed.context_length")
    schedule = {"type": "asha", "metric": "eval_loss", "grace_period": 50, "max_t": 10}
    yield Case("grace-above-max-t", dump(sft(scheduler=schedule)), "scheduler.grace_period", message="max_t")
    stpe = {"type": "asha", "metric": "eval_loss", "time_attr": "stpe"}
    yield Case("time-attr", dump(sft(scheduler=stpe)), "scheduler.time_attr", message="did you mean 'step'?")
    yield Case("model-etc-passwd", dump(quickstart(fixed__model="/etc/passwd")), "fixed.model", message="is a file")
    yield Case("model-empty", dump(quickstart(fixed__model="")), "fixed.model", message="empty")
    yield Case("tracking-no-host", dump(quickstart(tracking="http://")), "tracking", message="no host")
    yield Case("tracking-space", dump(quickstart(tracking="http://my host:5000")), "tracking", message="spaces")
    yield Case("tracking-missing-dir", dump(quickstart(tracking="sqlite:////missing/dir/x.db")), "tracking")
    yield Case("resources-scalar", dump(quickstart(resources=5)), "resources", message="a mapping with keys cpu, gpu")
    yield Case("grid-int-key", q.replace("grid:\n", "grid:\n  1: x\n"), "grid", message="key 1 is not a name")
    yield Case("target-modules-int", dump(sft(fixed__target_modules=5)), "fixed.target_modules", message="a string or")
    yield Case("name-pattern", dump(quickstart(name="bad name")), "name", message="letters, digits")
    misspelt = q.replace("technique: snapkv", "technique: snapkvv")
    yield Case("technique-snapkvv", misspelt, "technique", message="did you mean 'snapkv'?")
    yield Case(
        "scheduler-hyperband",
        dump(sft(scheduler={"type": "hyperband", "metric": "m"})),
        "scheduler.type",
        message="'asha'",
    )
    yield Case("jsonl-latin1", dump(sft(fixed__dataset="@DATA@")), "fixed.dataset", message="0xff")
    yield Case("secret-not-echoed", dump(quickstart(fixed__hf_token=["hf_plantedsecret123"])), "fixed.hf_token")


def write_case(case: Case, tmp_path: Path) -> Path:
    storage = str(tmp_path / "runs")
    data = tmp_path / "data.jsonl"
    text = case.text if isinstance(case.text, bytes) else case.text.encode()
    if b"@DATA@" in text:
        rows = (ROOT / "examples/data/arithmetic-sft.jsonl").read_bytes().splitlines(keepends=True)[:20]
        rows[1] = rows[1].replace(b"}", b', "x": "\xff"}', 1)
        data.write_bytes(b"".join(rows))
        text = text.replace(b"@DATA@", str(data).encode())
    sweep = tmp_path / "sweep.yaml"
    sweep.write_bytes(text.replace(STORAGE.encode(), storage.encode()))
    return sweep


def run_cli(args: list[str], capsys, monkeypatch) -> tuple[int, str, str, float]:
    """The CLI in this process (fast): exit code, stdout, stderr and seconds taken."""
    monkeypatch.setattr(sys, "argv", ["sweeps", *args])
    start = time.monotonic()
    with pytest.raises(SystemExit) as info:
        cli.main()
    seconds = time.monotonic() - start
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err, seconds


def assert_refused(outcome: tuple[int, str, str, float], case: Case, tmp_path: Path) -> None:
    code, out, err, seconds = outcome
    assert code == 2, f"exit {code}\n{out}\n{err}"
    assert "Traceback" not in out + err and "Error:" not in err.split("\n")[0].replace("error:", "")
    assert err.startswith("error:"), err
    assert case.where in err, err
    assert case.message in err, err
    assert len(err) < MAX_MESSAGE, f"{len(err)} characters"
    if case.one:
        assert "error: 1 problem(s)" in err, err
    assert seconds < HANG_BOUND_S
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written in (["sweep.yaml"], ["data.jsonl", "sweep.yaml"]), written  # no storage, no mlflow.db


GENERATED = list(mutations())


def test_the_generator_covers_every_workload_with_enough_mutations():
    assert len(GENERATED) >= 150
    assert {case.id.split("-")[0] for case in GENERATED} == {"evaluate", "sft", "grpo"}
    assert len({case.id for case in GENERATED}) == len(GENERATED)


@pytest.mark.parametrize("case", GENERATED, ids=[c.id for c in GENERATED])
def test_generated_bad_file_is_refused(case: Case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = write_case(case, tmp_path)
    assert_refused(run_cli(["plan", str(sweep)], capsys, monkeypatch), case, tmp_path)


ISSUE = list(listed_in_the_issue())


@pytest.mark.parametrize("case", ISSUE, ids=[c.id for c in ISSUE])
def test_bad_file_from_the_issue_is_refused(case: Case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = write_case(case, tmp_path)
    assert_refused(run_cli(["plan", str(sweep)], capsys, monkeypatch), case, tmp_path)
    if case.id == "secret-not-echoed":
        assert "hf_plantedsecret123" not in capsys.readouterr().err


def test_a_misspelt_technique_is_the_only_problem(tmp_path, capsys, monkeypatch):
    raw = quickstart(grid={"method": [{"technique": "snapkvv", "window_size": 32, "cache_size": 128}]})
    sweep = write_case(Case("x", dump(raw), ""), tmp_path)
    code, _, err, _ = run_cli(["plan", str(sweep)], capsys, monkeypatch)
    assert code == 2 and "error: 1 problem(s)" in err and "unknown key" not in err, err
    assert "grid.method[0].technique: 'snapkvv' is not accepted" in err and "did you mean 'snapkv'?" in err


@pytest.mark.parametrize(
    "assignment, where",
    [
        ("fixed.samples=true", "fixed.samples"),
        ("fixed.samples=[1", "--set fixed.samples"),
        ("fixed.samples", "--set"),
        ("fixed.samples=.nan", "fixed.samples"),
        ("resources.cpu=.inf", "resources.cpu"),
        ("fixed.model=[/x]", "fixed.model"),
        ("grid.task=" + "[" * 200, "--set grid.task"),
        ("fixed.samples=" + billion_laughs().replace("\n", ", ").replace("lol0: ", "{lol0: ") + "}", "--set"),
        ("." * 50 + "=1", "--set"),
    ],
)
def test_bad_override_is_refused(assignment, where, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    case = Case("set", dump(BASES["evaluate"]), where, one=False)
    sweep = write_case(case, tmp_path)
    assert_refused(run_cli(["plan", str(sweep), "--set", assignment], capsys, monkeypatch), case, tmp_path)


@pytest.mark.parametrize(
    "args, words",
    [
        (["plan", "--set"], "requires an argument"),
        (["plan"], "Missing argument"),
        (["plan", "x.yaml", "--sett", "a=1"], "No such option: --sett"),
        (["plna"], "Did you mean 'plan'?"),
        (["plan", "/no/such/file.yaml"], "no such sweep file"),
        (["plan", "/etc"], "is a folder"),
    ],
)
def test_command_line_mistakes_are_usage_errors(args, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err, _ = run_cli(args, capsys, monkeypatch)
    assert code == 2 and words in err and "Traceback" not in out + err, (code, out, err)
    assert len(err) < MAX_MESSAGE and not list(tmp_path.iterdir())


@pytest.mark.parametrize("value", ["off", "on"])
def test_chat_template_off_and_on_unquoted_are_accepted(value, tmp_path, capsys, monkeypatch):
    """YAML 1.1 reads them as booleans; the README writes them without quotes."""
    text = dump(BASES["sft"]).replace("  target_modules: auto\n", f"  target_modules: auto\n  chat_template: {value}\n")
    text += "\n"
    sweep = write_case(Case("ok", text.replace("eval_base_model: true", "eval_base_model: yes"), ""), tmp_path)
    code, out, err, _ = run_cli(["plan", str(sweep)], capsys, monkeypatch)
    assert code == 0, err
    assert "4 trial(s)" in out


def test_nested_sub_grids_from_python_are_refused_without_recursion_error():
    nested: dict = {"technique": "baseline"}
    for _ in range(460):
        nested = {"method": [nested]}
    with pytest.raises(SpecError, match="nest more than"):
        expand({}, nested)


def test_a_grid_is_counted_before_it_is_expanded():
    start = time.monotonic()
    with pytest.raises(SpecError, match="more than"):
        expand({}, {f"a{i}": list(range(10)) for i in range(30)})
    grid = {"seed": list(range(MAX_TRIALS + 1))}
    with pytest.raises(SpecError, match=f"expands to {MAX_TRIALS + 1:,} trials"):
        expand({}, grid)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize(
    "args, text, words",
    [
        (["plna"], None, "Did you mean 'plan'?"),
        (["plan", "{sweep}", "--set"], "name: x\n", "requires an argument"),
        (["plan", "{sweep}"], "name: x\nworkload: evaluate\n" + billion_laughs(), "aliases"),
        (["launch", "{sweep}"], b"name: caf\xe9\nworkload: evaluate\n", "byte 0xe9"),
    ],
)
def test_the_real_executable_exits_2_without_traceback(args, text, words, tmp_path):
    sweep = tmp_path / "sweep.yaml"
    if text is not None:
        sweep.write_bytes(text if isinstance(text, bytes) else text.encode())
    command = [str(Path(sys.executable).parent / "sweeps"), *[a.replace("{sweep}", str(sweep)) for a in args]]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == (["sweep.yaml"] if text is not None else [])
