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
