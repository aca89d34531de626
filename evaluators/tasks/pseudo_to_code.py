"""LongProc's pseudocode to code: translate SPoC pseudocode to C++, checked by running test cases.

Reads ``pseudo_to_code/pseudo_to_code_<length>.json`` under ``data_dir`` (records with
``problem_id``, ``pseudocode_lines``, ``code_lines`` and ``testcases``, each a pair of input
lines and expected output lines). As LongProc evaluates it, the code is taken from the
```` ```cpp ```` (or ```` ```c++ ````) block, compiled with ``g++ -std=c++11 -O`` after the
standard headers the prompt promises, and run on the first 10 test cases (3 s each); the
sample is correct when every output matches exactly. ``accuracy`` is 1 or 0; an answer
without a code block scores 0 and is not ``format_ok``. A worker without ``g++`` cannot run
the check: ``accuracy`` is then missing with that reason, never 0.

The generated program runs on the worker, in a temporary folder, with a time limit — the same
trust LongProc's own evaluation gives it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from evaluators.tasks.base import TASKS, PromptLength, Sample, Scored, Task
from evaluators.tasks.checks import file_problems
from evaluators.tasks.datafiles import Row, pick, read_json_list
from evaluators.tasks.longproc_files import OUTPUT_TOKENS, fill, load_prompt, split_prompt

#: the prompt says the standard headers are included and ``using namespace std`` is in effect
PRELUDE = "#include <bits/stdc++.h>\nusing namespace std;\n"
MAX_TESTCASES = 10
RUN_SECONDS = 3
COMPILE_SECONDS = 120


def extract_code(answer: str) -> str | None:
    """The code inside the answer's ```` ```cpp ```` block (up to its last fence), or None."""
    fenced = re.search(r"```(?:cpp|c\+\+)([\s\S]*)```", answer)
    return fenced.group(1).strip("\n") if fenced else None


def _testcases(row: Row) -> list[tuple[list[str], list[str]]]:
    cases = row.get("testcases", list)
    out = []
    for index, case in enumerate(cases):
        if not (
            isinstance(case, list)
            and len(case) == 2
            and all(isinstance(part, list) and all(isinstance(x, str) for x in part) for part in case)
        ):
            raise row.error(f"testcases[{index}] must be [input lines, output lines] (two lists of strings)")
        out.append((case[0], case[1]))
    if not out:
        raise row.error("field 'testcases' is empty")
    return out


def run_testcases(code: str, testcases: list[tuple[list[str], list[str]]]) -> tuple[bool, dict[str, object]]:
    """Compile ``code`` and run it on the test cases: (all passed, what went wrong)."""
    with tempfile.TemporaryDirectory(prefix="pseudo_to_code-") as folder:
        source, program = Path(folder) / "main.cpp", Path(folder) / "main"
        source.write_text(PRELUDE + code, encoding="utf-8")
        try:
            built = subprocess.run(
                ["g++", "-std=c++11", "-O", "-o", str(program), str(source)],
                capture_output=True,
                text=True,
                timeout=COMPILE_SECONDS,
            )
        except subprocess.TimeoutExpired:
            return False, {"error": "compilation timed out"}
        if built.returncode != 0:
            return False, {"error": "compilation error", "compiler": built.stderr[-2000:]}
        for index, (inputs, outputs) in enumerate(testcases[:MAX_TESTCASES]):
            try:
                ran = subprocess.run(
                    [str(program)], input="\n".join(inputs) + "\n", capture_output=True, text=True, timeout=RUN_SECONDS
                )
            except subprocess.TimeoutExpired:
                return False, {"error": "timeout", "testcase": index}
            except UnicodeDecodeError:
                return False, {"error": "output is not text", "testcase": index}
            if ran.stdout != "\n".join(outputs) + "\n":
                return False, {"error": "wrong output", "testcase": index, "output": ran.stdout[-500:]}
    return True, {}


@TASKS.register
@dataclass
class PseudoToCode(Task):
    """LongProc pseudocode to C++: the translation must pass the problem's test cases."""

    name = "pseudo_to_code"
    label_fields = ("length",)
    metrics = ("accuracy",)

    #: LongProc's data folder (the one holding pseudo_to_code/)
    data_dir: str
    #: the expected output's length, as LongProc names its files; it sets the generation budget
    length: Literal["0.5k", "2k"] = "0.5k"

    @property
    def max_new_tokens(self) -> int:  # type: ignore[override]
        return OUTPUT_TOKENS[self.length]

    @property
    def folder(self) -> Path:
        return Path(self.data_dir) / "pseudo_to_code"

    @property
    def data_file(self) -> Path:
        return self.folder / f"pseudo_to_code_{self.length}.json"

    def check(self) -> list[tuple[str, str]]:
        return file_problems("data_dir", self.data_file, self.folder / "prompts.yaml")

    def samples(self, count: int, seed: int, prompt_length: PromptLength) -> list[Sample]:
        rows = read_json_list(self.data_file, "LongProc pseudo_to_code file")
        head, tail = split_prompt(load_prompt(self.folder), "pseudocode", str(self.folder / "prompts.yaml"))
        return [self._sample(row, head, tail) for row in pick(rows, count, seed, f"pseudo_to_code:{self.length}")]

    def _sample(self, row: Row, head: str, tail: str) -> Sample:
        lines = row.get("pseudocode_lines", list)
        code = row.get("code_lines", list)
        fields = {"pseudocode": "\n".join(map(str, lines))}
        return Sample(
            id=str(row.get("problem_id", (str, int))),
            context=fill(head, fields, row.where),
            question=fill(tail, fields, row.where),
            gold=["\n".join(map(str, code))],
            meta={"testcases": _testcases(row)[:MAX_TESTCASES], "record": row.line},
        )

    def score(self, answer: str, sample: Sample) -> Scored:
        code = extract_code(answer)
        if code is None:
            return Scored(scores={"accuracy": 0.0}, format_ok=False, details={"error": "no ```cpp code block"})
        if shutil.which("g++") is None:
            return Scored(
                scores={},
                format_ok=True,
                extracted=code,
                missing={"accuracy": "g++ is not installed on this worker, so the code cannot be compiled and run"},
            )
        passed, details = run_testcases(code, sample.meta["testcases"])  # type: ignore[arg-type]
        return Scored(scores={"accuracy": float(passed)}, format_ok=True, extracted=code, details=details)
