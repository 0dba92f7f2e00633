"""K-path gradient accumulation for single-path samplers (ROME Algorithm 1; METHODS.md 5.2).

Every step samples K architectures (one per forward of a stochastic mixer) for each update:

    weights:  theta <- SGD(theta, sum_k dL_train(theta, z_k)/dtheta)          (accumulated, clipped once)
    arch:     (alpha, beta) <- Adam(., (1/K) sum_k dL_val(theta, z_k)/d(alpha, beta))     (averaged)

Each path is one forward + backward, so memory is that of a single path. The update order, the
per-epoch cosine learning rate, the Adam arch optimizer and ``arch_start_epoch`` are those of the
first-order ``bilevel`` optimizer. ``weight_reduction: mean`` / ``arch_reduction: sum`` switch the
reductions. Mixers that define ``begin_paths(K, phase)`` / ``select_path(k)`` / ``end_paths()`` (the
Gumbel and ROME mixers) are told which path runs, which is how strict fair sampling works.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from nascli.device import frozen
from nascli.search.optimizers.base import SEARCH_OPTIMIZERS, Batch
from nascli.search.optimizers.bilevel import BilevelOptimizer

REDUCTIONS = ("sum", "mean")


@SEARCH_OPTIMIZERS.register("multipath")
class MultiPathOptimizer(BilevelOptimizer):
    multi_path = True
    def __init__(self, supernet, *, num_paths: int = 7, weight_reduction: str = "sum",
                 arch_reduction: str = "mean", **kw: Any):
        super().__init__(supernet, **kw)
        if int(num_paths) < 1:
            raise ValueError(f"num_paths must be >= 1, got {num_paths}")
        for name, value in (("weight_reduction", weight_reduction), ("arch_reduction", arch_reduction)):
            if value not in REDUCTIONS:
                raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(REDUCTIONS)}")
        self.num_paths = int(num_paths)
        self.weight_reduction, self.arch_reduction = weight_reduction, arch_reduction

    @contextlib.contextmanager
    def paths(self, phase: str) -> Iterator["_SelectingRange"]:
        """Tell the mixer (when it listens) that K paths of ``phase`` start; yields the path indices."""
        mixer = self.net.mixer
        begin, select, end = (getattr(mixer, n, None) for n in ("begin_paths", "select_path", "end_paths"))
        if begin is not None:
            begin(self.num_paths, phase)
        try:
            yield _SelectingRange(self.num_paths, select)
        finally:
            if end is not None:
                end()

    @staticmethod
    def _scale(params: list[torch.nn.Parameter], factor: float) -> None:
        for p in params:
            if p.grad is not None:
                p.grad.mul_(factor)

    def accumulate_weight_grads(self, batch: Batch) -> None:
        """p.grad = sum (or mean) over K sampled paths of dL_train/dtheta; alpha frozen."""
        self.w_opt.zero_grad(set_to_none=True)
        with frozen(self.arch), self.paths("weights") as ks:
            for _ in ks:
                self.loss(batch, "train").backward()
        if self.weight_reduction == "mean":
            self._scale(self.weights, 1.0 / self.num_paths)

    def accumulate_arch_grads(self, batch: Batch) -> None:
        """p.grad = mean (or sum) over K sampled paths of dL_val/d(alpha, beta); weights frozen."""
        self.a_opt.zero_grad(set_to_none=True)
        with frozen(self.weights), self.paths("arch") as ks:
            for _ in ks:
                self.loss(batch, "val").backward()
        if self.arch_reduction == "mean":
            self._scale(self.arch, 1.0 / self.num_paths)

    def weight_step(self, batch: Batch) -> None:
        with self.weight_hooks(batch):
            self.accumulate_weight_grads(batch)
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.weights, self.grad_clip)
            self.w_opt.step()

    def first_order_arch_step(self, batch: Batch) -> None:
        self.accumulate_arch_grads(batch)
        self.a_opt.step()

    def schedule_values(self) -> dict[str, float]:
        return {**super().schedule_values(), "num_paths": float(self.num_paths)}


class _SelectingRange:
    """range(K) that calls ``select(k)`` before yielding path k."""

    def __init__(self, n: int, select):
        self.n, self.select = n, select

    def __iter__(self):
        for k in range(self.n):
            if self.select is not None:
                self.select(k)
            yield k
