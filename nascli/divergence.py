"""Finding the first step whose loss is not finite, without a host sync per step on accelerators.

:class:`NonFiniteWatch` keeps two device tensors: ``all_ok`` (every observed value finite so far) and
``good`` (how many observations happened while ``all_ok`` held). Each observation costs a few tiny
device ops and no synchronisation; :meth:`NonFiniteWatch.check` reads them once (a sync, so call it
where the host waits anyway: log and checkpoint points) and raises
:class:`~nascli.errors.DivergedError` naming the epoch and the step of the first bad observation,
which is ``first_step + good``. On the CPU, where reading a value costs nothing, every observation is
checked at once, so the run stops at the bad step itself.
"""
from __future__ import annotations

import torch

from nascli.errors import DivergedError


class NonFiniteWatch:
    """Watches per-step values (cumulative sums work too: once non-finite they stay so)."""

    def __init__(self, device: torch.device | str, check_every_step: bool | None = None):
        self.device = torch.device(device)
        self.check_every_step = self.device.type == "cpu" if check_every_step is None else check_every_step
        self.start(0, 0)

    def start(self, epoch: int, first_step: int) -> None:
        """Begin watching ``epoch`` from step ``first_step`` (0-based) on."""
        self.epoch, self.first_step = int(epoch), int(first_step)
        self._all_ok = torch.ones((), dtype=torch.bool, device=self.device)
        self._good = torch.zeros((), dtype=torch.int64, device=self.device)

    def observe(self, value: torch.Tensor, what: str = "the loss") -> None:
        """Record one step's value (any shape); on the CPU, raise at once if it is not finite."""
        self._all_ok &= torch.isfinite(value.detach()).all()
        self._good += self._all_ok
        if self.check_every_step:
            self.check(what)

    def check(self, what: str = "the loss") -> None:
        """Raise :class:`DivergedError` (epoch, first bad step) if any observed value was not finite."""
        if not bool(self._all_ok):
            raise DivergedError(self.epoch, self.first_step + int(self._good), what)


def all_finite(tensors) -> bool:
    """Whether every element of every tensor is finite (one device reduction per tensor, one sync)."""
    flags = [torch.isfinite(t.detach()).all() for t in tensors]
    return bool(torch.stack(flags).all()) if flags else True
