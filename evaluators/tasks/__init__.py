"""Evaluation tasks, one module each, registered by name in ``TASKS``."""

from evaluators.tasks import (  # noqa: F401  (registration)
    extractive_qa,
    html_to_tsv,
    icl,
    json_kv,
    json_output,
    math_boxed,
    multiple_choice,
    niah,
    passkey,
    pseudo_to_code,
    rag,
    rerank,
    travel_planning,
    variable_tracking,
)
from evaluators.tasks.base import TASKS, Sample, Scored, Task

__all__ = ["TASKS", "Sample", "Scored", "Task"]
