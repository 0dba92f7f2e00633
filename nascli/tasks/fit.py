"""Which spaces and datasets serve a task: the one-line reasons a combination is refused.

A space lists the tasks its networks solve (``SearchSpace.tasks``; classification by default) and a task
reads the datasets of its own registry (:meth:`~nascli.tasks.base.Task.dataset_names`). ``nas search`` (a
composition rule, nascli/search/composition.py) and ``nas evaluate`` / ``nas benchmark`` refuse any other
pairing before anything is built or written.
"""
from __future__ import annotations

from typing import Any

from nascli.errors import IncompatibleError
from nascli.tasks.base import Task


def spaces_for(task: str) -> list[str]:
    """The registered spaces whose networks solve ``task``."""
    from nascli.spaces import get_space, space_names

    return [n for n in space_names() if task in getattr(get_space(n), "tasks", ("classification",))]


def space_problem(task: Task, space: Any) -> str | None:
    """Why ``space`` cannot run ``task`` (one line naming the spaces that can), or None."""
    tasks = tuple(getattr(space, "tasks", ("classification",)))
    wanted = getattr(task, "space_task", task.name)  # a task using another task's networks (RL: classification)
    if wanted in tasks:
        return None
    return (f"space={space.name} builds networks for task={'/'.join(tasks)}, not task={task.name}; "
            f"spaces for task={task.name}: {', '.join(spaces_for(wanted)) or 'none registered'}")


def dataset_problem(task: Task, dataset: str) -> str | None:
    """Why ``dataset`` is not one of ``task``'s datasets (one line naming them), or None."""
    names = task.dataset_names()
    if dataset in names:
        return None
    return f"dataset={dataset} is not a task={task.name} dataset; valid choices: {', '.join(names)}"


def check_fit(task: Task, space: Any, dataset: str) -> None:
    """Raise :class:`IncompatibleError` (one line) when ``space`` or ``dataset`` does not serve ``task``."""
    for problem in (space_problem(task, space), dataset_problem(task, dataset)):
        if problem:
            raise IncompatibleError(problem)
