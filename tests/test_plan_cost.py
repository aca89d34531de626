"""`sweeps plan` on a study of a thousand trials does only the work planning needs.

No timing assertions (the machine is shared): what made planning slow is checked directly.
Planning validates every trial against the techniques' dataclasses; importing torch (seconds)
for that, or measuring every cell of the plan table, is what it must not do.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from sweeps.tables import plan_table

ROOT = Path(__file__).parent.parent
#: modules that cost seconds to import and that no plan of the evaluate workload needs
HEAVY = ("torch", "transformers", "jsonschema")

PLAN_IN_A_FRESH_PROCESS = """
import json, sys
from sweeps import spec
from sweeps.plan import make_plan
plan = make_plan(spec.load("examples/helmet_kv.yaml")[0])
records = plan.records()
print(json.dumps({"trials": len(plan.trials), "names": len({r["name"] for r in records}),
                  "loaded": [m for m in sys.argv[1:] if m in sys.modules]}))
"""


def test_planning_the_helmet_study_imports_no_torch():
    done = subprocess.run(
        [sys.executable, "-c", PLAN_IN_A_FRESH_PROCESS, *HEAVY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["trials"] == found["names"] == 1360  # every trial validated, keyed and named
    assert found["loaded"] == []


def test_the_kv_techniques_compute_once_torch_is_used():
    """The techniques import torch on first use and then compute as before (same process)."""
    import torch

    from evaluators.kvcache import TECHNIQUES
    from evaluators.kvcache.base import LayerView

    torch.manual_seed(0)
    queries, keys = torch.randn(1, 4, 64, 8), torch.randn(1, 2, 64, 8)
    view = LayerView(0, 1, queries, keys, torch.randn(1, 2, 64, 8), scaling=8**-0.5)
    kept = TECHNIQUES["snapkv"](window_size=8, cache_size=16).keep(view)
    assert isinstance(kept, torch.Tensor) and kept.shape == (1, 2, 16)
    assert kept[0, 0, -8:].tolist() == list(range(56, 64))  # the observation window is always kept


def test_the_plan_table_prints_as_if_every_cell_were_measured():
    """The number and key columns get fixed widths (no measuring): the output must not change."""
    rows = [
        {"key": f"{i:010x}", "name": "snapkv w32 c2048 maxpool · niah variant=multivalue " * (1 + i % 3)}
        for i in range(120)
    ]
    for width in (40, 80, 200):
        fixed = plan_table("study · evaluate", rows)
        measured = plan_table("study · evaluate", rows)
        for column in measured.columns:
            column.width = None
        outputs = []
        for table in (fixed, measured):
            console = Console(file=io.StringIO(), width=width, force_terminal=True)
            console.print(table)
            outputs.append(console.file.getvalue())
        assert outputs[0] == outputs[1]
        assert all(row["key"] in outputs[0] for row in rows)
