"""The live progress bar inside an epoch, and the one-line epoch summary that never wraps.

On a terminal (``console.is_terminal``) :class:`EpochProgress` shows, while an epoch runs, a rich progress bar
on standard error: ``epoch e/E``, the bar, ``steps done/steps``, examples per second over the epoch so far, the
ETA of the epoch and the epoch's running losses (read from the device at most every
:data:`LOSS_EVERY_S` seconds, so the steps in between stay free of host synchronisation). It is transient: at
the epoch's end it disappears and the command's one line per epoch is printed in its place. Off a terminal (CI,
SLURM logs) nothing of it is built, and the output is that one line per epoch only.

:func:`print_line` prints such a line without inserting line breaks: on a terminal it is cut to the width with
an ellipsis (the full text, e.g. the derived arch, is in ``metrics.jsonl``); elsewhere it is written whole.
"""
from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nascli.logger.observer import RunObserver, StepInfo

LOSS_EVERY_S = 1.0  # seconds between reads of the running losses (each read is a host sync on CUDA)


def print_line(console: Console, text: str) -> None:
    """``text`` on one line of ``console`` (module docstring)."""
    if console.is_terminal:
        console.print(text, no_wrap=True, overflow="ellipsis", crop=True)
    else:
        console.print(text, soft_wrap=True)


def loss_text(losses: dict[str, float]) -> str:
    """``train_loss 2.301  val_acc 11.2``: the running figures, shortest first by name."""
    return "  ".join(f"{k} {v:.4g}" for k, v in sorted(losses.items()))


class EpochProgress(RunObserver):
    """The transient in-epoch bar (module docstring) on ``console``."""

    def __init__(self, console: Console, loss_every_s: float = LOSS_EVERY_S):
        self.console = console
        self.loss_every_s = loss_every_s
        self.progress: Progress | None = None
        self.task = None
        self._began = 0.0
        self._images = 0
        self._last_read = float("-inf")
        self._epochs = 0

    def _make(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
            TextColumn("steps  {task.fields[rate]} img/s"), TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=self.console, transient=True, refresh_per_second=4)

    def on_epoch_start(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        self.close()
        self._epochs = epochs
        self._began, self._images, self._last_read = time.perf_counter(), 0, float("-inf")
        self.progress = self._make()
        self.progress.start()
        self.task = self.progress.add_task(f"epoch {epoch + 1}/{epochs}", total=steps, completed=done,
                                           rate="-", losses="")

    def on_step_end(self, info: StepInfo) -> None:
        if self.progress is None:
            return
        self._images += info.images
        fields: dict[str, Any] = {}
        elapsed = time.perf_counter() - self._began
        if elapsed > 0:
            fields["rate"] = f"{self._images / elapsed:.0f}"
        now = time.perf_counter()
        if now - self._last_read >= self.loss_every_s or info.step == info.steps:
            self._last_read = now
            fields["losses"] = loss_text(info.losses())
        self.progress.update(self.task, completed=info.step, **fields)

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        self.close()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
