"""Selection criteria: functions of (supernet, its arch parameters, data) that return an Arch.

They live apart from the methods, so ``nas derive`` can apply any criterion to any saved search.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nascli.registry import Registry
from nascli.spaces.base import Arch


@dataclass
class SelectionContext:
    """What a criterion may use. ``batches`` yields (x, y) validation batches on the device; ``criterion`` is
    the task's loss and score (nascli/tasks; None: classification's cross-entropy)."""

    supernet: Any
    space: Any
    batches: Callable[[int], list] | None = None  # n -> list of n fixed validation batches
    device: Any = None
    rule: str = "default"
    criterion: Any = None


@dataclass
class SelectionResult:
    arch: Arch
    scores: dict[str, Any] = field(default_factory=dict)


SELECTIONS: Registry[Callable[..., SelectionResult]] = Registry("selection")
