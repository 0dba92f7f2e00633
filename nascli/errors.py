"""User-facing errors: one clear line, non-zero exit, no traceback."""
from __future__ import annotations

from collections.abc import Iterable


class NasError(Exception):
    """An error caused by the user's input or environment; printed as one line by the CLI."""

    exit_code = 2


class UnknownChoiceError(NasError):
    """A name that is not registered for an axis (space, dataset, mixer, ...)."""

    def __init__(self, kind: str, name: object, choices: Iterable[str]):
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        super().__init__(f"unknown {kind} {name!r}; valid choices: {', '.join(self.choices)}")


class DataMissingError(NasError):
    """Dataset files are absent and cannot be downloaded."""


class BadArchError(NasError):
    """An architecture string or file that does not parse for the space."""


class CheckpointError(NasError):
    """A checkpoint that cannot be read."""


class OptionError(NasError):
    """An option key or value that the component it configures does not accept."""


class IncompatibleError(NasError):
    """A combination of axes (method, optimizer, selection, space) that cannot work together."""


class RunLockedError(NasError):
    """Another process owns the run directory (see nascli.runlock)."""


class DivergedError(NasError):
    """A loss (or the weights) stopped being finite: the run stops, its last good checkpoint is kept.

    ``epoch`` and ``step`` are 0-based (``epoch`` as in metrics.jsonl, ``step`` the index of the step
    within that epoch). Exit code 3, so scripts can tell a diverged run from bad input.
    """

    exit_code = 3

    def __init__(self, epoch: int, step: int, what: str = "the loss"):
        self.epoch, self.step, self.what = int(epoch), int(step), what
        super().__init__(f"diverged: {what} is not finite at epoch {self.epoch} step {self.step} (0-based); "
                         "the run stopped without checkpointing it; lower the learning rate or change the config")
