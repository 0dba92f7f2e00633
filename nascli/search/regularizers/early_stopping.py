"""DARTS-ES and DARTS-ADA (R-DARTS, Zela et al., ICLR'20; METHODS.md 8): watch the dominant eigenvalue of
the validation-loss Hessian w.r.t. alpha, and stop (ES) or roll back with stronger regularisation (ADA)
when its local average rises.

The rule, as automl/RobustDARTS implements it (``src/utils.py`` ``EVLocalAvg.update`` / ``early_stop``,
``src/search/train_search.py``; defaults from ``src/search/args.py``):

* lambda_max is computed at the end of every epoch e (0-based) with ``e % every == 0`` (``every`` =
  ``report_freq_hessian``, 2 in the scripts) and at the last epoch: evaluation points i = 0, 1, ... at
  epochs E_i (0, 2, 4, ...).
* Local average (window w odd, default 5; h = w // 2): once n >= h + 1 points exist, and not at the last
  epoch, the mean of the last min(n, w) values is the average centred on point c = n - 1 - h (a centred
  window, truncated at the first point): A_c = mean(lambda_max(c-h, 0) .. lambda_c+h).
* Check (not at the last epoch): when point c - k exists (k = ``delta`` = 4 points, 8 epochs) and its epoch
  E_{c-k} >= ``start_epoch`` (``es_start_epoch`` = 10), the rule fires if A_c / A_{c-k} > ``ratio`` (1.3).
  The rise began at epoch E_{c-k}: DARTS-ES returns the architecture of the end of that epoch.
  With every = 2 the first check is at epoch 22, comparing the averages centred on epochs 18 and 10.
* Snapshots: DARTS-ES keeps alpha of every evaluation point that a later check can still name as the rise
  (the last h + k + 1, none before ``start_epoch``); DARTS-ADA keeps the supernet and optimizer state of
  every point that a later check can name after the roll-backs still allowed (h + k more points back per
  roll-back left): with the defaults that is every evaluation point from epoch 10 on, about 15 MB each on
  the DARTS space (C=16, 8 layers) and 13 MB on NB201 (C=16, N=5), in memory and in checkpoint.pt.
* DARTS-ADA (``early_stop=3``): on a firing, the supernet (weights, alpha, buffers) and the search
  optimizer (momentum, Adam moments) go back to their state at the end of epoch E_{c-k}, as does the
  eigenvalue history; the weights' L2 weight decay becomes min(wd * ``factor``, ``max_weight_decay``)
  (``--mul_factor`` 3, ``--max_weight_decay`` 243e-4; the published script uses 10 and 0.03), and the search
  continues with epoch E_{c-k} + 1 (the learning rate follows the epoch). Once the weight decay has reached
  the maximum, firings are ignored and the search runs to its last epoch. Data streams and RNG states are
  not rolled back (R-DARTS re-creates its loaders). R-DARTS also offers drop-path as the regularisation;
  nascli's search supernets have no drop-path, so ADA raises the weight decay.

Deviations: the window must be odd (R-DARTS's index arithmetic only centres odd windows); a previous average
of 0 never fires (R-DARTS would divide by zero).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from nascli.errors import OptionError
from nascli.search.components import COMPONENTS, Component, EpochEnd


@dataclass(frozen=True)
class Check:
    """One application of the rule: A_c / A_{c-k} and the epoch E_{c-k} the rise would have begun at."""

    ratio: float
    rise_epoch: int
    fired: bool


class EigenvalueTrend:
    """R-DARTS's local-average tracker over the evaluation points (module docstring); plain-data state."""

    def __init__(self, window: int = 5, ratio: float = 1.3, k: int = 4, start_epoch: int = 10):
        if int(window) < 1 or int(window) % 2 == 0:
            raise OptionError(f"window={window} is not allowed; expected an odd integer >= 1 (R-DARTS: 5)")
        if int(k) < 1:
            raise OptionError(f"k={k} is not allowed; expected an integer >= 1 (R-DARTS delta: 4)")
        if not float(ratio) > 0:
            raise OptionError(f"ratio={ratio} is not allowed; expected a number > 0 (R-DARTS factor: 1.3)")
        self.window, self.ratio, self.k, self.start_epoch = int(window), float(ratio), int(k), int(start_epoch)
        self.epochs: list[int] = []   # E_i
        self.values: list[float] = []  # lambda_max at E_i
        self.averages: list[float] = []  # A_c for c = 0, 1, ... (appended one per point once n >= h + 1)

    @property
    def half(self) -> int:
        return self.window // 2

    def add(self, epoch: int, value: float, last: bool) -> Check | None:
        """Record lambda_max of ``epoch``; at a non-last epoch, update the local average and apply the rule
        when it applies (module docstring)."""
        self.epochs.append(int(epoch))
        self.values.append(float(value))
        n = len(self.values)
        if last or n < self.half + 1:
            return None
        self.averages.append(sum(self.values[-self.window:]) / min(n, self.window))
        c = n - 1 - self.half
        if c - self.k < 0 or self.epochs[c - self.k] < self.start_epoch:
            return None
        current, previous = self.averages[c], self.averages[c - self.k]
        ratio = current / previous if previous != 0 else math.nan
        return Check(ratio, self.epochs[c - self.k], bool(previous != 0 and ratio > self.ratio))

    def earliest_rise_epoch(self, rollbacks: int = 0) -> int:
        """No later check can name an epoch before this one as the rise, even after ``rollbacks`` more
        roll-backs (each brings the history back by at most h + k points); never before ``start_epoch``."""
        first = len(self.values) - 1 - (self.half + self.k) * (1 + rollbacks)
        epoch = self.epochs[first] if first >= 0 and self.epochs else (self.epochs[0] if self.epochs else 0)
        return max(epoch, self.start_epoch)

    def latest_average(self) -> tuple[int, float] | None:
        """(epoch the latest local average is centred on, its value)."""
        if not self.averages:
            return None
        return self.epochs[len(self.averages) - 1], self.averages[-1]

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": list(self.epochs), "values": list(self.values), "averages": list(self.averages)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs = [int(e) for e in state["epochs"]]
        self.values = [float(v) for v in state["values"]]
        self.averages = [float(a) for a in state["averages"]]


def _cpu_clone(obj: Any) -> Any:
    """A deep copy of a (nested) state dict with every tensor cloned to the CPU."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_clone(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_clone(v) for v in obj)
    return obj


class _EigenvalueWatch(Component):
    """Shared part of DARTS-ES / DARTS-ADA: the R-DARTS cadence, the tracker, the logged values."""

    decides_search_end = True  # composition rule search_end_decisions: at most one such component

    def __init__(self, supernet, optimizer, *, every: int = 2, window: int = 5, ratio: float = 1.3, k: int = 4,
                 start_epoch: int = 10):
        super().__init__(supernet, optimizer)
        if int(every) < 1:
            raise OptionError(f"every={every} is not allowed; expected an integer >= 1 (R-DARTS "
                              f"report_freq_hessian: 2)")
        self.every = int(every)
        self.trend = EigenvalueTrend(window, ratio, k, start_epoch)
        self._values: dict[str, float] = {}

    def evaluates(self, epoch: int, epochs: int) -> bool:
        """R-DARTS computes lambda_max when ``epoch % every == 0`` and at the last epoch."""
        return epoch % self.every == 0 or epoch == epochs - 1

    def observe(self, end: EpochEnd) -> Check | None:
        """lambda_max of this epoch into the tracker (when it is an evaluation epoch); the rule's check."""
        self._values = {}
        if not self.evaluates(end.epoch, end.epochs):
            return None
        value = end.dominant_eigenvalue()
        check = self.trend.add(end.epoch, value, last=end.epoch == end.epochs - 1)
        self._values["es_eigenvalue"] = value
        if (latest := self.trend.latest_average()) is not None:
            self._values["es_local_avg"], self._values["es_local_avg_epoch"] = latest[1], latest[0]
        if check is not None:
            self._values["es_ratio"] = check.ratio
        return check

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self._values = {}

    def values(self) -> dict[str, float]:
        return dict(self._values)

    def rule(self) -> dict[str, Any]:
        t = self.trend
        return {"every": self.every, "window": t.window, "ratio": t.ratio, "k": t.k, "start_epoch": t.start_epoch}


@COMPONENTS.register("darts_es")
class DartsES(_EigenvalueWatch):
    """DARTS-ES: stop when the local average of lambda_max rises by more than ``ratio`` over ``k``
    evaluation points; the search returns the architecture (alpha) of the end of the epoch the rise began at
    (module docstring). Keeps alpha at every evaluation point that can still be named as the rise."""

    def __init__(self, supernet, optimizer, *, every: int = 2, window: int = 5, ratio: float = 1.3, k: int = 4,
                 start_epoch: int = 10):
        super().__init__(supernet, optimizer, every=every, window=window, ratio=ratio, k=k, start_epoch=start_epoch)
        self.snapshots: dict[int, list[torch.Tensor]] = {}  # epoch -> alpha (CPU copies)
        self.stop: dict[str, int] | None = None

    def on_epoch_end(self, end: EpochEnd) -> int | None:
        check = self.observe(end)
        if not self.evaluates(end.epoch, end.epochs):
            return None
        self.snapshots[end.epoch] = [p.detach().to("cpu", copy=True) for p in self.supernet.arch_parameters()]
        if check is not None and check.fired:
            self.stop = {"epoch": end.epoch, "arch_epoch": check.rise_epoch}
            self._values.update(stopped_early=True, es_arch_epoch=check.rise_epoch)
        keep = self.stop["arch_epoch"] if self.stop else self.trend.earliest_rise_epoch()
        self.snapshots = {e: s for e, s in self.snapshots.items() if e >= keep}
        return None

    def stopped(self) -> dict[str, int] | None:
        return dict(self.stop) if self.stop else None

    def on_search_end(self) -> None:
        """Load alpha of the rise epoch back into the supernet (idempotent)."""
        if self.stop is None:
            return
        with torch.no_grad():
            for p, s in zip(self.supernet.arch_parameters(), self.snapshots[self.stop["arch_epoch"]]):
                p.copy_(s.to(p.device))

    def artifacts(self) -> dict[str, Any]:
        return {"darts_es.json": {"rule": self.rule(), "stopped_early": self.stop, **self.trend.state_dict()}}

    def state_dict(self) -> dict[str, Any]:
        return {"trend": self.trend.state_dict(), "snapshots": {int(e): list(s) for e, s in self.snapshots.items()},
                "stop": dict(self.stop) if self.stop else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.trend.load_state_dict(state["trend"])
        self.snapshots = {int(e): list(s) for e, s in state["snapshots"].items()}
        self.stop = dict(state["stop"]) if state["stop"] else None


@COMPONENTS.register("darts_ada")
class DartsADA(_EigenvalueWatch):
    """DARTS-ADA: on a firing of the DARTS-ES rule, roll the supernet and the search optimizer back to the
    end of the epoch the rise began at and multiply the weights' L2 weight decay by ``factor`` (capped at
    ``max_weight_decay``); firings after the cap is reached are ignored (module docstring)."""

    rolls_back_supernet = True  # composition rule rollback_snapshots

    def __init__(self, supernet, optimizer, *, every: int = 2, window: int = 5, ratio: float = 1.3, k: int = 4,
                 start_epoch: int = 10, factor: float = 3.0, max_weight_decay: float = 243e-4):
        super().__init__(supernet, optimizer, every=every, window=window, ratio=ratio, k=k, start_epoch=start_epoch)
        if not float(factor) > 1:
            raise OptionError(f"factor={factor} is not allowed; expected a number > 1 (R-DARTS mul_factor: 3)")
        self.factor, self.max_weight_decay = float(factor), float(max_weight_decay)
        self.weight_decay = float(optimizer.weight_decay)
        if not self.max_weight_decay >= self.weight_decay:
            raise OptionError(f"max_weight_decay={max_weight_decay} is not allowed; expected a number >= the "
                              f"optimizer's weight_decay {self.weight_decay:g}")
        self.snapshots: dict[int, dict[str, Any]] = {}  # epoch -> supernet, optimizer, trend (CPU copies)
        self.adaptations: list[dict[str, Any]] = []

    def schedule(self, weight_decay: float) -> float:
        """The weight decay after one adaptation: min(wd * factor, max_weight_decay)."""
        return min(weight_decay * self.factor, self.max_weight_decay)

    def adaptations_left(self) -> int:
        """How many more firings can raise the weight decay before it reaches the maximum."""
        wd, left = self.weight_decay, 0
        while wd < self.max_weight_decay * (1 - 1e-9) and wd > 0:
            wd, left = self.schedule(wd), left + 1
        return left

    def _set_weight_decay(self, wd: float) -> None:
        self.weight_decay = float(wd)
        self.optimizer.weight_decay = self.weight_decay  # read by the unrolled (second-order) step
        for group in self.optimizer.w_opt.param_groups:
            group["weight_decay"] = self.weight_decay

    def on_epoch_end(self, end: EpochEnd) -> int | None:
        check = self.observe(end)
        if not self.evaluates(end.epoch, end.epochs):
            return self._summary(None)
        left = self.adaptations_left()
        if left:
            self.snapshots[end.epoch] = {"supernet": _cpu_clone(self.supernet.state_dict()),
                                         "optimizer": _cpu_clone(self.optimizer.state_dict()),
                                         "trend": self.trend.state_dict()}
        if check is None or not check.fired or not left:
            keep = self.trend.earliest_rise_epoch(rollbacks=max(left - 1, 0)) if left else math.inf
            self.snapshots = {e: s for e, s in self.snapshots.items() if e >= keep}
            return self._summary(None)
        rise = check.rise_epoch
        snap = self.snapshots[rise]
        self.supernet.load_state_dict(snap["supernet"])
        self.optimizer.load_state_dict(snap["optimizer"])
        self.trend.load_state_dict(snap["trend"])
        before = self.weight_decay
        self._set_weight_decay(self.schedule(before))
        self.adaptations.append({"epoch": end.epoch, "rollback_epoch": rise, "ratio": check.ratio,
                                 "weight_decay_before": before, "weight_decay": self.weight_decay})
        self.snapshots = {e: s for e, s in self.snapshots.items() if e <= rise}  # the rest was abandoned
        return self._summary(rise + 1)

    def _summary(self, back: int | None) -> int | None:
        self._values.update(ada_weight_decay=self.weight_decay, ada_adaptations=len(self.adaptations))
        return back

    def artifacts(self) -> dict[str, Any]:
        return {"darts_ada.json": {"rule": {**self.rule(), "factor": self.factor,
                                            "max_weight_decay": self.max_weight_decay},
                                   "weight_decay": self.weight_decay, "adaptations": list(self.adaptations),
                                   **self.trend.state_dict()}}

    def state_dict(self) -> dict[str, Any]:
        return {"trend": self.trend.state_dict(), "snapshots": {int(e): s for e, s in self.snapshots.items()},
                "weight_decay": self.weight_decay, "adaptations": [dict(a) for a in self.adaptations]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.trend.load_state_dict(state["trend"])
        self.snapshots = {int(e): s for e, s in state["snapshots"].items()}
        self.adaptations = [dict(a) for a in state["adaptations"]]
        self._set_weight_decay(float(state["weight_decay"]))
