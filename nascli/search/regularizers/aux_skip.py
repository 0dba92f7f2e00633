"""DARTS- auxiliary skip coefficient beta (Chu et al., ICLR'21; METHODS.md 2).

Every mixed edge of a DARTS- supernet computes
    o_bar(x) = sum_o softmax(alpha)_o * o(x) + beta_t * aux(x)
with aux = Identity (FactorizedReduce on stride-2 edges) outside the softmax: the ``aux_skip`` edge part
(nascli/search/edge_parts/aux_skip.py) adds the term, scaled by its buffer ``coef``.
This component owns beta_t and writes it into that buffer at the start of every epoch e (0-indexed),
following Meituan-AutoML/DARTS-@adb81a8 ``src/utils.py`` ``DecayScheduler.step(epoch)``:

    e <  T_start:              beta = beta0
    T_start <= e <= T_stop:    linear:      beta0 * (T_max - e) / (T_max - T_start)
                               cosine:      beta0 * (1 + cos(pi * e / (T_max - T_start))) / 2
                               slow_cosine: beta0 * cos((pi / 2) * e / (T_max - T_start))
                               constant:    beta0
    e >  T_stop:               beta frozen at its last value

With the reference defaults (beta0 1, T_start 0, T_max = T_stop = 50 epochs) the linear schedule gives
1.0, 0.98, ..., 0.02 in the last epoch. beta is not learnable and the aux path is never a candidate op.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from nascli.errors import IncompatibleError
from nascli.registry import Registry
from nascli.search.components import COMPONENTS, Component

DECAYS: Registry[Callable[[float, int, int, int], float]] = Registry("aux skip decay schedule")


@DECAYS.register("linear")
def linear_decay(beta0: float, epoch: int, t_start: int, t_max: int) -> float:
    return beta0 * (t_max - epoch) / (t_max - t_start)


@DECAYS.register("cosine")
def cosine_decay(beta0: float, epoch: int, t_start: int, t_max: int) -> float:
    return beta0 * (1 + math.cos(math.pi * epoch / (t_max - t_start))) / 2.0


@DECAYS.register("slow_cosine")
def slow_cosine_decay(beta0: float, epoch: int, t_start: int, t_max: int) -> float:
    return beta0 * math.cos((math.pi / 2) * epoch / (t_max - t_start))


@DECAYS.register("constant")
def constant(beta0: float, epoch: int, t_start: int, t_max: int) -> float:
    return beta0


def beta_schedule(epochs: int, schedule: str = "linear", beta0: float = 1.0, T_start: int = 0,
                  T_max: int | None = None, T_stop: int | None = None) -> list[float]:
    """beta_e for e = 0..epochs-1 (the values the component sets at each epoch start)."""
    decay = AuxSkipDecay(None, None, schedule=schedule, beta0=beta0, T_start=T_start, T_max=T_max, T_stop=T_stop)
    out = []
    for e in range(epochs):
        decay.on_epoch_start(e, epochs)
        out.append(decay.beta)
    return out


@COMPONENTS.register("aux_skip_decay")
class AuxSkipDecay(Component):
    """Schedules the DARTS- auxiliary skip coefficient (module docstring) and writes it to the supernet."""

    def __init__(self, supernet, optimizer, *, schedule: str = "linear", beta0: float = 1.0, T_start: int = 0,
                 T_max: int | None = None, T_stop: int | None = None):
        super().__init__(supernet, optimizer)
        self.decay = DECAYS.get(schedule)
        self.schedule = schedule
        self.beta0 = float(beta0)
        self.t_start = int(T_start)
        self.t_max = None if T_max is None else int(T_max)
        self.t_stop = None if T_stop is None else int(T_stop)
        self.part = None
        if supernet is not None:
            self.part = supernet.edge_part("aux_skip")
            if self.part is None:
                raise IncompatibleError("component aux_skip_decay schedules the auxiliary skip, but the supernet "
                                        "has no aux_skip edge part: add {name: aux_skip} to method.edge_parts")
        self.beta = self.beta0
        self._write()

    def _bounds(self, epochs: int) -> tuple[int, int]:
        t_max = self.t_max if self.t_max is not None else epochs
        t_stop = self.t_stop if self.t_stop is not None else t_max
        if t_max <= self.t_start:
            raise ValueError(f"aux_skip_decay needs T_max > T_start; got T_max={t_max}, T_start={self.t_start}")
        return t_max, t_stop

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        t_max, t_stop = self._bounds(epochs)
        if epoch < self.t_start:
            self.beta = self.beta0
        elif epoch <= t_stop:
            self.beta = float(self.decay(self.beta0, epoch, self.t_start, t_max))
        # epoch > T_stop: frozen at the last value (restored from the checkpoint on resume)
        self._write()

    def _write(self) -> None:
        if self.part is not None:
            with torch.no_grad():
                self.part.coef.fill_(self.beta)

    def values(self) -> dict[str, float]:
        return {"aux_skip_beta": self.beta}

    def state_dict(self) -> dict[str, Any]:
        return {"beta": self.beta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.beta = float(state["beta"])
        self._write()
