"""What a running search or training loop tells the things that watch it (progress bars, loggers).

The loops (:class:`~nascli.search.engine.SearchEngine`, :func:`~nascli.train.loop.train_network`) hold a list of
:class:`RunObserver` and call, in this order for every epoch ``e`` (0-based) they run:

* ``on_epoch_start(e, epochs, steps, done)``: ``steps`` per epoch, ``done`` of them already run (a resumed epoch);
* ``on_step_end(info)`` after every optimizer step (:class:`StepInfo`);
* ``on_epoch_end(e, record)`` with the epoch's record, the dict that goes to ``metrics.jsonl``;
* ``on_rollback(e)`` when a component rolled the search back so that epoch ``e`` and later ones run again
  (DARTS-ADA): what was logged for them is void;

and ``close()`` once when the run ends (finished, failed or interrupted). Observers only read: none may change
the loop's state, so a run computes the same numbers whatever watches it. Reading ``info.losses()`` reads
device values (a host synchronisation), so observers call it only at their own log points.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StepInfo:
    """One finished optimizer step: ``step`` steps of ``steps`` done in epoch ``epoch``, ``images`` examples in
    this step; ``losses()`` returns the epoch's running means so far (``train_loss``, ``val_acc``, ...)."""

    epoch: int
    step: int
    steps: int
    images: int
    losses: Callable[[], dict[str, float]]


class RunObserver:
    """A watcher of a loop (module docstring); every hook does nothing by default."""

    def on_epoch_start(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        """Epoch ``epoch`` of ``epochs`` starts (or resumes after ``done`` of its ``steps`` steps)."""

    def on_step_end(self, info: StepInfo) -> None:
        """An optimizer step finished."""

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        """Epoch ``epoch`` finished; ``record`` is its metrics.jsonl line."""

    def on_rollback(self, epoch: int) -> None:
        """Epochs ``epoch`` and later will run again; their earlier records are void."""

    def close(self) -> None:
        """The run ended; release files and terminals."""


class Observers(RunObserver):
    """Several observers behind one: each hook goes to each observer in order."""

    def __init__(self, observers: Sequence[RunObserver] = ()):
        self.observers = list(observers)

    def on_epoch_start(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        for o in self.observers:
            o.on_epoch_start(epoch, epochs, steps, done)

    def on_step_end(self, info: StepInfo) -> None:
        for o in self.observers:
            o.on_step_end(info)

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        for o in self.observers:
            o.on_epoch_end(epoch, record)

    def on_rollback(self, epoch: int) -> None:
        for o in self.observers:
            o.on_rollback(epoch)

    def close(self) -> None:
        for o in self.observers:
            o.close()

    def __bool__(self) -> bool:
        return bool(self.observers)


@contextmanager
def observing(observers: Sequence[RunObserver]) -> Iterator[Observers]:
    """``observers`` as one :class:`Observers`, closed when the block ends however it ends."""
    group = Observers(observers)
    try:
        yield group
    finally:
        group.close()
