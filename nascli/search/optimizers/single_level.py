"""Single-level optimisation (Single-DARTS, Hou et al. 2021; METHODS.md 3):
(w, alpha) <- (w, alpha) - xi * d L_train(w, alpha) / d(w, alpha), from the SAME batch, with one
forward and one backward per step; then both optimizers step. No architecture split is used."""
from __future__ import annotations

from typing import Any

import torch

from nascli.device import frozen
from nascli.search.optimizers.base import SEARCH_OPTIMIZERS, Batch, SearchOptimizer

DATA_CHOICES = ("train", "all")


@SEARCH_OPTIMIZERS.register("single_level")
class SingleLevelOptimizer(SearchOptimizer):
    uses_arch_batches = False

    def __init__(self, supernet, *, data: str = "train", **kw: Any):
        super().__init__(supernet, **kw)
        if data not in DATA_CHOICES:
            raise ValueError(f"unknown single_level.data {data!r}; valid choices: {', '.join(DATA_CHOICES)}")
        self.data = data

    def update(self, train_batch: Batch, arch_batch: Batch | None = None) -> None:
        self.w_opt.zero_grad(set_to_none=True)
        self.a_opt.zero_grad(set_to_none=True)
        if self.arch_enabled:
            self.loss(train_batch, "train").backward()
        else:
            with frozen(self.arch):
                self.loss(train_batch, "train").backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.weights, self.grad_clip)
        self.w_opt.step()
        if self.arch_enabled:
            self.a_opt.step()
