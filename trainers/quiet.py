"""Silence training-library chatter that tells the user nothing, at its source.

On top of the evaluators' settings (DeepSpeed told which accelerator to use, no weight-
loading bars): every worker draws a progress bar per dataset preprocessing pass and, with
progress bars off, the trainer prints each log line; in a sweep's logs both are noise
next to the platform's own per-step metrics (``trainers.reporting``).
"""

from __future__ import annotations

import os
import warnings

from evaluators.quiet import quiet_libraries


def quiet_training_libraries() -> None:
    """Configure libraries once per process, before DeepSpeed or the trainers are imported."""
    quiet_libraries()
    import datasets

    datasets.disable_progress_bars()
    # Tokenizers' Rust thread pool cannot survive the fork of a dataloader worker, and says so
    # on every fork; the trainers' data loading runs in the worker process itself.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # PEFT still reads transformers' renamed `is_gradient_checkpointing` property; the rename is
    # between the two libraries, nothing a sweep can act on.
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    # DeepSpeed's ZeRO-3 still calls torch's renamed collectives (every step, every rank); a
    # note to DeepSpeed's developers, not to someone running a sweep.
    warnings.filterwarnings(
        "ignore",
        message=r"`torch\.distributed\.(all_gather_into_tensor|reduce_scatter_tensor)` is deprecated",
        category=FutureWarning,
    )
