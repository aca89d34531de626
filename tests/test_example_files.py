"""The example sweep files work as their comments and the README print them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
HELMET = ROOT / "examples" / "helmet_kv.yaml"


def test_the_helmet_study_plans_as_printed():
    printed = re.findall(r"^#\s+(sweeps plan examples/helmet_kv\.yaml)\s", HELMET.read_text(), flags=re.MULTILINE)
    assert printed == ["sweeps plan examples/helmet_kv.yaml"]
    assert printed[0] in (ROOT / "README.md").read_text()
    args = printed[0].split()[1:]
    done = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1360 trial(s)" in done.stdout and "Traceback" not in done.stderr
