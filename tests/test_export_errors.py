"""`sweeps export -o PATH` to a path that cannot be written: exit 2 naming the path and why, no traceback."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

import sweeps
from sweeps import cli
from sweeps.store import SweepStore


@pytest.fixture
def stored_sweep(sweep_file):
    """A planned sweep in storage (nothing ran: every trial is pending)."""
    path = sweep_file(
        name="exp",
        fixed={"model": "smollm2-135m-instruct", "task": "passkey", "context_length": 256, "samples": 1},
        grid={"method": [{"technique": "baseline"}, {"technique": "streamingllm", "cache_size": 64}]},
    )
    plan, raw = sweeps.plan_file(path, [])
    store = SweepStore(plan.spec.sweep_dir)
    store.save_spec(raw)
    store.save_plan(plan.records())
    return plan.spec.storage_path


def _export(monkeypatch, capsys, storage, output) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["sweeps", "export", "exp", "-o", str(output), "--storage", str(storage)])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out + captured.err


def test_export_still_writes_a_writable_path(monkeypatch, capsys, stored_sweep, tmp_path):
    code, text = _export(monkeypatch, capsys, stored_sweep, tmp_path / "exp.csv")
    assert code == 0 and "Wrote 2 row(s)" in text
    assert [r["status"] for r in csv.DictReader((tmp_path / "exp.csv").open())] == ["pending", "pending"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial file left


def test_a_missing_folder_is_named(monkeypatch, capsys, stored_sweep, tmp_path):
    target = tmp_path / "no" / "such" / "exp.csv"
    code, text = _export(monkeypatch, capsys, stored_sweep, target)
    assert code == 2 and "Traceback" not in text
    assert f"the folder {target.parent} does not exist" in text and "--output" in text
    assert not (tmp_path / "no").exists()


def test_a_folder_as_output_is_named(monkeypatch, capsys, stored_sweep, tmp_path):
    code, text = _export(monkeypatch, capsys, stored_sweep, tmp_path)
    assert code == 2 and "Traceback" not in text and f"{tmp_path} is a folder" in text


def test_a_place_that_cannot_be_written_is_named(monkeypatch, capsys, stored_sweep):
    code, text = _export(monkeypatch, capsys, stored_sweep, "/proc/exp.csv")
    assert code == 2 and "Traceback" not in text and "/proc/exp.csv" in text


@pytest.fixture
def read_only_folder(tmp_path):
    """A real read-only file system (root may write anywhere else, whatever the permissions say)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], check=False)
    if mounted.returncode != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_file_system_is_named(monkeypatch, capsys, stored_sweep, read_only_folder):
    code, text = _export(monkeypatch, capsys, stored_sweep, read_only_folder / "exp.csv")
    assert code == 2 and "Traceback" not in text
    assert str(read_only_folder / "exp.csv") in text or f"the folder {read_only_folder} is not writable" in text
