"""Checkpoints in the trial's folder in storage, and finding the one to resume from.

The Hugging Face trainer writes ``checkpoints/checkpoint-<step>/`` every ``save_steps``:
the adapter, optimizer and scheduler state, RNG states and, under DeepSpeed, every rank's
shards in ``global_step<step>/``. A checkpoint counts only once every rank has finished
writing it: after a barrier, rank 0 adds a ``complete.json`` marker. A trial killed in the
middle of a save resumes from the previous complete checkpoint, never from half of one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from transformers import TrainerCallback

CHECKPOINTS = "checkpoints"
MARKER = "complete.json"
STATE = "trainer_state.json"
#: the adapter's files in a checkpoint (what ``save_model`` writes for a PEFT model)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
_STEP = re.compile(r"^checkpoint-(\d+)$")


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``folder``, or None."""
    if not folder.is_dir():
        return None
    found = []
    for path in folder.iterdir():
        match = _STEP.match(path.name)
        if match and (path / MARKER).is_file():
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def checkpoint_step(path: Path) -> int:
    match = _STEP.match(path.name)
    if not match:
        raise ValueError(f"{path} is not a checkpoint folder")
    return int(match.group(1))


class CompleteMarker(TrainerCallback):
    """Marks each checkpoint complete once every rank has written its part."""

    def __init__(self, world_size: int):
        self.world_size = world_size

    def on_save(self, args, state, control, **kwargs):
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            marker = {"step": state.global_step, "world_size": self.world_size}
            (folder / MARKER).write_text(json.dumps(marker) + "\n")
        return control


def discard_incomplete(folder: Path) -> list[Path]:
    """Remove checkpoint folders a killed save left without their marker; returns what was removed."""
    import shutil

    removed = []
    if folder.is_dir():
        for path in folder.iterdir():
            if _STEP.match(path.name) and not (path / MARKER).is_file():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def training_finished(path: Path) -> bool:
    """Whether the checkpoint was saved at the end of training (its step reached the run's max_steps).

    A trial killed after its last save (during the evaluation) must not train again: the
    Hugging Face trainer, resumed from such a checkpoint, would take one step past the end.
    """
    state = json.loads((path / STATE).read_text())
    return 0 < state.get("max_steps", 0) <= state.get("global_step", 0)


def last_logs(path: Path) -> dict[str, float]:
    """The checkpoint's latest logged values of each metric (its trainer's log history)."""
    state = json.loads((path / STATE).read_text())
    merged: dict[str, float] = {}
    for entry in state.get("log_history", []):
        merged.update(entry)
    return merged


def copy_adapter(checkpoint: Path, destination: Path) -> Path:
    """The checkpoint's adapter, as ``save_model`` would have written it at the end of training."""
    import shutil

    destination.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        shutil.copy2(checkpoint / name, destination / name)
    return destination
