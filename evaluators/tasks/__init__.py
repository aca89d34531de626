"""Evaluation tasks, one module each, registered by name in ``TASKS``."""

from evaluators.tasks import passkey  # noqa: F401  (registration)
from evaluators.tasks.base import TASKS, Sample, Scored, Task, register

__all__ = ["TASKS", "Sample", "Scored", "Task", "register"]
