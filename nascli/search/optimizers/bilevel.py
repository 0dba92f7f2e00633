"""Bi-level DARTS optimizers (Liu et al., 2019; METHODS.md 1.1, 1.2).

``bilevel``: first order, g_alpha = dL_val(w, alpha)/dalpha. Update order is configurable:
``weights_first`` (AutoDL DARTS-V1 on NB201) or ``arch_first`` (quark0).

``bilevel_2nd``: the unrolled step (DARTS-V2)
    w' = w - xi * (mu * m + dL_train(w, alpha)/dw + lambda * w)
    g_alpha = dL_val(w', alpha)/dalpha - xi * [dL_train(w+, alpha)/dalpha - dL_train(w-, alpha)/dalpha] / (2 eps)
    w+- = w +- eps * v,  v = dL_val(w', alpha)/dw',  eps = 0.01 / ||v||_2
with xi = the current weight learning rate, m the SGD momentum buffer, mu the momentum and lambda
the weight decay. BatchNorm running statistics touched by the extra forwards are restored. The whole
unrolled gradient runs in fp32, never under autocast: the finite-difference perturbation eps * v (about
1e-5 per weight) is below bf16 resolution. Architecture parameters that a sampled path does not use
(GDAS, ROME) get a zero gradient from that term.
"""
from __future__ import annotations

from typing import Any

import torch

from nascli.device import frozen
from nascli.search.optimizers.base import SEARCH_OPTIMIZERS, Batch, SearchOptimizer

ORDERS = ("weights_first", "arch_first")


@SEARCH_OPTIMIZERS.register("bilevel")
class BilevelOptimizer(SearchOptimizer):
    weight_step_hooks = True  # w is trained in weight_step (the hooks run after the alpha step with arch_first)

    def __init__(self, supernet, *, order: str = "weights_first", **kw: Any):
        super().__init__(supernet, **kw)
        if order not in ORDERS:
            raise ValueError(f"unknown update order {order!r}; valid choices: {', '.join(ORDERS)}")
        self.order = order

    def arch_step(self, train_batch: Batch, arch_batch: Batch) -> None:
        self.first_order_arch_step(arch_batch)

    def update(self, train_batch: Batch, arch_batch: Batch | None) -> None:
        do_arch = self.arch_enabled and arch_batch is not None and self.arch
        if self.order == "arch_first" and do_arch:
            self.arch_step(train_batch, arch_batch)
        self.weight_step(train_batch)
        if self.order == "weights_first" and do_arch:
            self.arch_step(train_batch, arch_batch)


@SEARCH_OPTIMIZERS.register("bilevel_2nd")
class UnrolledBilevelOptimizer(BilevelOptimizer):
    def __init__(self, supernet, *, order: str = "arch_first", fd_radius: float = 0.01, **kw: Any):
        super().__init__(supernet, order=order, **kw)
        self.fd_radius = fd_radius

    def _buffers(self) -> list[torch.Tensor]:
        return [b for b in self.net.buffers()]

    def unrolled_arch_grad(self, train_batch: Batch, arch_batch: Batch) -> list[torch.Tensor]:
        """The DARTS second-order architecture gradient (module docstring); w is left unchanged."""
        xi = self.current_lr
        w0 = [p.detach().clone() for p in self.weights]
        buffers = self._buffers()
        saved_buffers = [b.detach().clone() for b in buffers]
        with frozen(self.arch):
            g_train = torch.autograd.grad(self.loss(train_batch, full_precision=True), self.weights,
                                          allow_unused=True)
        with torch.no_grad():
            for p, g in zip(self.weights, g_train):
                buf = self.w_opt.state.get(p, {}).get("momentum_buffer")
                step = self.weight_decay * p if g is None else g + self.weight_decay * p
                if buf is not None:
                    step = step + self.momentum * buf
                p.sub_(xi * step)
        grads = _zeros_for_unused(torch.autograd.grad(self.loss(arch_batch, "val", full_precision=True),
                                                      self.arch + self.weights, allow_unused=True),
                                  self.arch + self.weights)
        g_alpha, v = list(grads[: len(self.arch)]), grads[len(self.arch):]
        eps = self.fd_radius / torch.sqrt(sum((g ** 2).sum() for g in v)).clamp_min(1e-12)
        diffs = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for p, p0, g in zip(self.weights, w0, v):
                    p.copy_(p0 + sign * eps * g)
            with frozen(self.weights):
                diffs.append(_zeros_for_unused(
                    torch.autograd.grad(self.loss(train_batch, full_precision=True), self.arch, allow_unused=True),
                    self.arch))
        with torch.no_grad():
            for p, p0 in zip(self.weights, w0):
                p.copy_(p0)
            for b, s in zip(buffers, saved_buffers):
                b.copy_(s)
        return [ga - xi * (gp - gm) / (2 * eps) for ga, gp, gm in zip(g_alpha, *diffs)]

    def arch_step(self, train_batch: Batch, arch_batch: Batch) -> None:
        grads = self.unrolled_arch_grad(train_batch, arch_batch)
        self.a_opt.zero_grad(set_to_none=True)
        for p, g in zip(self.arch, grads):
            p.grad = g.detach()
        self.a_opt.step()


def _zeros_for_unused(grads: tuple, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """``torch.autograd.grad(..., allow_unused=True)`` results with ``None`` replaced by zeros."""
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]
