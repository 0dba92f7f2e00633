"""Tasks (``task=``): what a search or an evaluation learns and how it is scored (nascli/tasks/base.py)."""
from __future__ import annotations

from nascli.tasks.base import DEFAULT_TASK, TASKS, Criterion, Task, task_names, task_of


def load_all() -> None:
    """Import every task module (each registers itself in :data:`TASKS`)."""
    import nascli.tasks.classification  # noqa: F401
    import nascli.tasks.reinforcement_learning  # noqa: F401
    import nascli.tasks.speech_recognition  # noqa: F401
    import nascli.tasks.super_resolution  # noqa: F401


__all__ = ["DEFAULT_TASK", "TASKS", "Criterion", "Task", "load_all", "task_names", "task_of"]
