"""A storage that fills up: one message and exit 1 mid-sweep, a refusal before launch, robust reading.

The storage is a real small file system (a tmpfs mounted for the test, as root); a thread fills it
up once the first trial has finished, as another job sharing the disk would.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sweep_helpers import child_runs

import sweeps
from sweeps import cli, storage_full
from sweeps.store import SweepStore, write_json

TRIALS = 3


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of its own, unmounted at the end."""

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk-{size}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=False)
        if done.returncode != 0:
            pytest.skip("mounting a tmpfs needs root")
        mounted.append(folder)
        return folder

    mounted: list[Path] = []
    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Take every free byte of ``folder``'s file system."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["sweeps", *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out + captured.err


def test_storage_full_mid_sweep_stops_with_one_message_then_resume_finishes(
    ray_session, sweep_file, small_disk, monkeypatch, capfd
):
    storage = small_disk("24m")
    # One trial at a time, each a few seconds long: the storage fills while the second one runs.
    # (Tiny-model trials finish in 0.1 s once the model is loaded, so the last one could write its
    # result before the filler was done: CI saw all three kept.)
    path = sweep_file(
        name="full",
        experiment="full",
        storage=str(storage),
        workload="noop",
        max_concurrent=1,
        fixed={"seconds": 4},
        grid={"x": list(range(TRIALS))},
    )
    store = SweepStore(storage / "full")
    filled: list[Path] = []

    def fill_after_first_result() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not any(store.is_done(k) for k in store.result_keys()):
            time.sleep(0.05)
        filled.append(fill(storage))

    filler = threading.Thread(target=fill_after_first_result, daemon=True)
    filler.start()
    code, text = run_cli(monkeypatch, capfd, "launch", str(path))  # capfd: whatever reaches the terminal
    filler.join(timeout=60)
    assert filled, "the storage was never filled"
    done_before = [k for k in store.result_keys() if store.is_done(k)]
    assert 1 <= len(done_before) < TRIALS, text
    assert code == 1, text
    assert "Traceback" not in text and "sqlalchemy" not in text.lower() and "[SQL:" not in text
    assert "Trial task failed" not in text
    errors = [line for line in text.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, text
    assert f"the storage {storage} is full" in errors[0]
    assert f"{len(done_before)} of {TRIALS} trial result(s) are kept" in text
    assert f"sweeps resume full --storage {storage}" in text

    filled[0].unlink()
    code, text = run_cli(monkeypatch, capfd, "resume", "full", "--storage", str(storage))
    assert code == 0, text
    assert all(store.is_done(row["key"]) for row in store.plan()) and len(store.plan()) == TRIALS
    runs = child_runs(storage, "full")
    assert Counter(r.data.tags["sweeps.trial_key"] for r in runs) == Counter(r["key"] for r in store.plan())


def test_a_storage_too_small_for_the_tracking_database_is_refused_before_launch(
    sweep_file, tiny_model, small_disk, monkeypatch, capsys
):
    storage = small_disk("1280k")
    path = sweep_file(
        name="tiny-disk",
        storage=str(storage),
        fixed={"model": str(tiny_model), "task": "passkey", "context_length": 200, "samples": 1},
    )
    code, text = run_cli(monkeypatch, capsys, "launch", str(path))
    assert code == 2 and "Traceback" not in text, text
    assert "storage:" in text and "free; a sweep needs at least" in text
    assert list(storage.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    "content",
    ['{"status": "completed", "metrics": {"sco', "[1, 2]", '"completed"', "\xff\xfe not utf-8", None],
    ids=["cut off", "a list", "a string", "not UTF-8", "a folder"],
)
def test_a_result_that_is_not_a_whole_record_means_not_finished(tmp_path, content, caplog):
    store = SweepStore(tmp_path / "sweep")
    folder = store.trial_dir("k")
    folder.mkdir(parents=True)
    if content is None:
        (folder / "result.json").mkdir()
    else:
        (folder / "result.json").write_bytes(content.encode("utf-8", "surrogateescape"))
    assert not store.is_done("k") and store.result("k") is None
    assert store.state("k", launcher_alive=False).status == "pending"
    assert any("result.json is unreadable" in r.getMessage() for r in caplog.records)


def test_a_sweep_with_broken_files_in_storage_still_shows_its_status(tmp_path, sweep_file, monkeypatch, capsys):
    path = sweep_file(name="broken", fixed={"model": "smollm2-135m-instruct", "task": "passkey", "samples": 1})
    plan, raw = sweeps.plan_file(path, [])
    store = SweepStore(plan.spec.sweep_dir)
    store.save_spec(raw)
    store.save_plan(plan.records())
    key = plan.trials[0].key
    store.trial_dir(key).mkdir(parents=True)
    (store.trial_dir(key) / "result.json").write_text(json.dumps(["completed"]))
    (store.trial_dir(key) / "started.json").mkdir()
    for command in ("status", "export"):
        extra = ["-o", str(tmp_path / "out.csv")] if command == "export" else []
        code, text = run_cli(monkeypatch, capsys, command, "broken", "--storage", str(plan.spec.storage_path), *extra)
        assert code == 0 and "Traceback" not in text, text
    assert "pending" in (tmp_path / "out.csv").read_text()


def test_a_write_that_finds_no_space_is_remembered_and_leaves_nothing_half_written(small_disk):
    storage_full.reset()
    disk = small_disk("256k")
    fill(disk)
    with pytest.raises(storage_full.StorageFull):
        write_json(disk / "k" / "result.json", {"status": "completed", "metrics": {"x": 1.0}})
    event = storage_full.first()
    assert event is not None and event.reason == "no space left" and "result.json" in event.where
    assert not (disk / "k" / "result.json").exists() and not [p for p in disk.rglob(".result.json.*")]
    storage_full.reset()


def test_a_storage_without_room_for_the_report_still_gets_the_sweeps_summary(
    ray_session, sweep_file, tiny_model, small_disk
):
    from mlflow import MlflowClient
    from sweep_helpers import run_file

    from sweeps.tracking import embedded_uri

    storage = small_disk("12m")  # room for the results and MLflow's database, not for a 5 MB report page
    path = sweep_file(
        name="tight",
        experiment="tight",
        storage=str(storage),
        fixed={"model": str(tiny_model), "task": "passkey", "context_length": 200, "samples": 1},
    )
    plan, summary, out = run_file(path)
    assert summary.counts["done"] == 1 and storage_full.first() is None, out
    assert out.count("The sweep's report was not drawn") == 1, out
    assert not (storage / "tight" / "report").exists()
    client = MlflowClient(embedded_uri(storage))
    experiment = client.get_experiment_by_name("tight").experiment_id
    (parent,) = client.search_runs([experiment], "tags.`sweeps.role` = 'parent'")
    assert "## How to read this sweep" in parent.data.tags["mlflow.note.content"]
    assert "report" not in {a.path for a in client.list_artifacts(parent.info.run_id)}
