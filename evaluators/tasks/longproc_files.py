"""What the LongProc tasks share: their data folder layout and prompt files.

LongProc (princeton-pli/LongProc) keeps one folder per task under its ``data/`` folder, each
with the task's records (``<task>_<length>.json``, a JSON list) and a ``prompts.yaml`` whose
``USER_PROMPT`` is a ``str.format`` template. Tasks take that ``data/`` folder as ``data_dir``.
The length in a file name is the length of the expected *output*, so these tasks are not sized
to a ``context_length``; their generation budget follows the length, as LongProc's configs set it.

A prompt is split at the paragraph holding its long input (the web page, the pseudocode, the
worked examples): that part and everything before it is the compressible context, the rest is
the question. The renderer joins the two with a blank line, which gives back the template's text.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from evaluators.tasks.datafiles import require_file

#: generation budget per output length, as in LongProc's HELMET configs
OUTPUT_TOKENS = {"0.5k": 1024, "2k": 3072, "8k": 10240}


def load_prompt(folder: Path) -> str:
    """The ``USER_PROMPT`` template of a LongProc task folder."""
    path = require_file(folder / "prompts.yaml", "LongProc prompt file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("USER_PROMPT"), str):
        raise ValueError(f"{path}: missing field 'USER_PROMPT' (the prompt template)")
    return data["USER_PROMPT"]


def split_prompt(template: str, long_field: str, where: str) -> tuple[str, str]:
    """The template's (context, question) halves: the split is the first blank line after ``{long_field}``."""
    at = template.find("{" + long_field + "}")
    if at < 0:
        raise ValueError(f"{where}: USER_PROMPT has no {{{long_field}}} placeholder")
    end = template.find("\n\n", at)
    if end < 0:
        return template, ""
    return template[:end], template[end + 2 :]


def fill(template: str, fields: dict[str, object], where: str) -> str:
    try:
        return template.format(**fields)
    except KeyError as exc:
        raise ValueError(f"{where}: USER_PROMPT uses {{{exc.args[0]}}}, which the task does not provide") from None
