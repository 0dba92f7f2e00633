"""RARTS, the relaxed first-order architecture search (Xue, Qi, Xin, arXiv 2008.03901, IEEE Access 2022;
METHODS.md 8).

Two networks of the same supernet share the architecture parameters alpha: the supernet's own weights w
train on the training split, a twin copy y of them on the validation (architecture) split, and a
proximity penalty couples the two:

    min_{alpha, w, y}  L_t(w, alpha) + beta * L_v(y, alpha) + (lambda / 2) * ||w - y||^2

One step is three Gauss-Seidel updates, each seeing the values the previous ones produced:

    w <- w - eta_w * (dL_t(w, alpha)/dw + lambda * (w - y))                      (SGD, train batch)
    y <- y - eta_y * (beta * dL_v(y, alpha)/dy + lambda * (y - w))              (SGD, val batch, new w)
    alpha <- Adam(alpha, dL_t(w, alpha)/dalpha + beta * dL_v(y, alpha)/dalpha)  (new w and y)

No second derivatives and no unrolled step are involved.

The reading taken (the formulas are [MEM] in METHODS.md 8 and no public code was found; the paper's
abstract confirms "variable splitting and Gauss-Seidel iterations", nothing more):

* the three updates above, literally; ``arch_grad: gauss_seidel`` (default) recomputes both losses at
  the updated w and y for alpha (two more forward/backward passes, four per step). ``arch_grad: reuse``
  takes alpha's gradient from the w and y passes themselves (alpha sees the step's starting w and y;
  two passes per step, the cost of first-order DARTS): a cheaper reading, offered because the paper's
  "60 % lower cost than second-order DARTS" fits two passes per step better than four. Neither is
  confirmed.
* beta = 1 and lambda = 1 are assumptions (the paper's values were not recovered).
* y starts as a copy of w (the penalty starts at zero), is trained by its own SGD with w's momentum,
  Nesterov flag and weight decay, and its learning rate is ``y_lr_scale`` times w's at every epoch
  (the same cosine schedule; 1 by default: assumed, the paper's eta_y was not recovered). alpha uses
  the usual Adam (arch defaults, METHODS.md 1.1).
* gradient clipping (``grad_clip``) applies to each network's whole gradient, loss plus proximity term,
  as the other optimizers clip w's gradient. A weight without a loss gradient this step (an op a sampling
  mixer did not pick) still has the proximity gradient, so it is updated (and decayed) toward the other
  network's copy.
* The step reports L_t(w) of the w pass as ``train`` and, once, L_v(y) (unscaled by beta) as ``val``: the
  one alpha's gradient comes from (the alpha pass, at the new y; the y pass with ``reuse`` or while alpha
  is frozen). A component's architecture-loss term, which rides on the reported validation loss, is
  therefore weighted by beta with it.

BatchNorm: y keeps its own BatchNorm running statistics (running mean/var, batch count), so the
supernet's statistics, which evaluation and derivation read, come from w's training-split forwards
only. Every other buffer (Gumbel temperature, DARTS- aux-skip coefficient, masks) is method state and is
shared. The search space never knows about y: y is evaluated by ``torch.func.functional_call`` on the
supernet itself, with y's tensors in place of the weights and its BatchNorm buffers, through the same
:meth:`SearchOptimizer.loss` as w (``evaluating_y``).

Components: the step hooks run as in every optimizer (:meth:`SearchOptimizer.step`); w's update, and only
w's, is wrapped in the weight-step hooks, so SDARTS / MS-DARTS train w (not y) at their perturbed mixing
weights, taken from the previous step's alpha (alpha is updated last). Their perturbed weights are detached,
so ``arch_grad: reuse`` would get no L_t gradient for alpha from that pass: that pairing is refused when the
search is composed, as is DAAS, whose reward must be a held-out validation loss while L_v here is y's, a
network trained on the validation split (nascli/search/composition.py).

The derived architecture comes from alpha (the supernet, i.e. w, for probing selections). The
checkpoint holds both networks: y, y's BatchNorm statistics and y's SGD state are in
:meth:`state_dict`.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from nascli.device import frozen
from nascli.errors import OptionError
from nascli.search.optimizers.base import SEARCH_OPTIMIZERS, Batch, SearchOptimizer

ARCH_GRADS = ("gauss_seidel", "reuse")
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def batchnorm_buffers(net: nn.Module) -> dict[str, torch.Tensor]:
    """The BatchNorm running statistics of ``net`` by their state-dict name."""
    out = {}
    for module_name, module in net.named_modules():
        if isinstance(module, _BATCHNORMS):
            for name, buf in module.named_buffers(recurse=False):
                out[f"{module_name}.{name}" if module_name else name] = buf
    return out


class TwinView:
    """Callable as the supernet, evaluated with ``state`` (parameter and buffer tensors by name) in place of
    the supernet's own (``torch.func.functional_call``); the supernet itself is not changed."""

    def __init__(self, supernet: nn.Module, state: dict[str, torch.Tensor]):
        self.supernet, self.state = supernet, state

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.supernet, self.state, (x,))


def _non_negative(name: str, value: Any) -> float:
    """``value`` as a float >= 0, or a one-line :class:`OptionError` naming ``optimizer.<name>``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= 0:
        raise OptionError(f"optimizer.{name} must be a number >= 0, got {value!r}")
    return number


@SEARCH_OPTIMIZERS.register("rarts")
class RartsOptimizer(SearchOptimizer):
    """The RARTS step (module docstring) on the supernet's weights w and a twin network y."""

    #: the validation loss it reports is that of y, which trains on the validation split (not held out):
    #: a component reading it as a held-out signal (DAAS's reward) is refused (nascli/search/composition.py)
    trains_on_validation = True
    #: w's update runs inside :meth:`weight_hooks` (SDARTS / MS-DARTS perturb it; y's update is not)
    weight_step_hooks = True
    weight_copies = True  # y mirrors w (read by the DrNAS widening's composition rule)

    def __init__(self, supernet, *, beta: float = 1.0, proximity: float = 1.0, y_lr_scale: float = 1.0,
                 arch_grad: str = "gauss_seidel", **kw: Any):
        super().__init__(supernet, **kw)
        if arch_grad not in ARCH_GRADS:
            raise OptionError(f"unknown optimizer.arch_grad {arch_grad!r}; valid choices: {', '.join(ARCH_GRADS)}")
        self.beta, self.proximity = _non_negative("beta", beta), _non_negative("proximity", proximity)
        self.y_lr_scale, self.arch_grad = _non_negative("y_lr_scale", y_lr_scale), arch_grad
        named = supernet.named_weight_parameters()
        self.y_names = [n for n, _ in named]
        self.y = [p.detach().clone().requires_grad_(p.requires_grad) for _, p in named]
        self.y_buffers = {n: b.detach().clone() for n, b in batchnorm_buffers(supernet).items()}
        self._y_state = {**dict(zip(self.y_names, self.y)), **self.y_buffers}
        group = self.w_opt.param_groups[0]
        self.y_opt = torch.optim.SGD(self.y, lr=group["lr"] * self.y_lr_scale, momentum=group["momentum"],
                                     nesterov=group["nesterov"], weight_decay=group["weight_decay"])

    # ------------------------------------------------------------------ schedule
    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """w's cosine learning rate (base class); y's is ``y_lr_scale`` times it."""
        super().on_epoch_start(epoch, epochs)
        for g in self.y_opt.param_groups:
            g["lr"] = self.current_lr * self.y_lr_scale

    # ------------------------------------------------------------------ the twin network
    @contextlib.contextmanager
    def evaluating_y(self) -> Iterator[None]:
        """For the block, ``self.net`` is y: the supernet evaluated with y's tensors and y's BatchNorm
        statistics in place of w's (:class:`TwinView`), so :meth:`SearchOptimizer.loss` (autocast,
        statistics, ``on_loss`` and any other loss hook) serves both networks alike."""
        net, self.net = self.net, TwinView(self.net, self._y_state)
        try:
            yield
        finally:
            self.net = net

    def y_loss(self, batch: Batch, prefix: str | None = None) -> torch.Tensor:
        """:meth:`SearchOptimizer.loss` of network y on ``batch``."""
        with self.evaluating_y():
            return self.loss(batch, prefix)

    def _add_proximity(self, params: list[torch.Tensor], anchors: list[torch.Tensor]) -> None:
        """p.grad += lambda * (p - anchor): the gradient of (lambda / 2) ||p - anchor||^2."""
        with torch.no_grad():
            for p, a in zip(params, anchors):
                if not p.requires_grad:
                    continue
                prox = self.proximity * (p - a)
                p.grad = prox if p.grad is None else p.grad.add_(prox)

    def _sgd_step(self, opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        opt.step()

    # ------------------------------------------------------------------ the step
    def w_step(self, batch: Batch, *, arch_grads: bool = False) -> None:
        """w <- SGD(w, dL_t(w, alpha)/dw + lambda (w - y)) inside the components' weight-step hooks;
        ``arch_grads`` also accumulates dL_t/dalpha into alpha.grad (the ``reuse`` reading)."""
        with self.weight_hooks(batch):
            self.w_opt.zero_grad(set_to_none=True)
            with frozen([] if arch_grads else self.arch):
                self.loss(batch, "train").backward()
            self._add_proximity(self.weights, self.y)
            self._sgd_step(self.w_opt, self.weights)

    def y_step(self, batch: Batch, *, arch_grads: bool = False, report: bool = False) -> None:
        """y <- SGD(y, beta dL_v(y, alpha)/dy + lambda (y - w)) at the current (new) w; ``arch_grads`` also
        accumulates beta dL_v/dalpha into alpha.grad; ``report`` reports L_v(y) as the step's ``val`` loss."""
        self.y_opt.zero_grad(set_to_none=True)
        with frozen([] if arch_grads else self.arch):
            (self.beta * self.y_loss(batch, "val" if report else None)).backward()
        self._add_proximity(self.y, self.weights)
        self._sgd_step(self.y_opt, self.y)

    def arch_step(self, train_batch: Batch, arch_batch: Batch) -> None:
        """alpha <- Adam(alpha, dL_t(w, alpha)/dalpha + beta dL_v(y, alpha)/dalpha) at the current w and y;
        L_v(y) is the step's reported ``val`` loss."""
        self.a_opt.zero_grad(set_to_none=True)
        with frozen(self.weights):
            self.loss(train_batch).backward()
        with frozen(self.y):
            (self.beta * self.y_loss(arch_batch, "val")).backward()
        self.a_opt.step()

    def update(self, train_batch: Batch, arch_batch: Batch | None) -> None:
        """w, then y (seeing the new w), then alpha (seeing both), in Gauss-Seidel order. One ``val`` loss is
        reported per step: the one alpha's gradient comes from (the y pass with ``reuse`` or when alpha is
        not updated, e.g. during a warm-up)."""
        if arch_batch is None:
            raise ValueError("optimizer rarts needs a batch of the architecture (validation) split every step")
        do_arch = self.arch_enabled and bool(self.arch)
        reuse = do_arch and self.arch_grad == "reuse"
        if reuse:
            self.a_opt.zero_grad(set_to_none=True)
        self.w_step(train_batch, arch_grads=reuse)
        self.y_step(arch_batch, arch_grads=reuse, report=reuse or not do_arch)
        if reuse:
            self.a_opt.step()
        elif do_arch:
            self.arch_step(train_batch, arch_batch)

    # ------------------------------------------------------------------ state
    def distance(self) -> float:
        """||w - y||_2 over all weights."""
        with torch.no_grad():
            return float(torch.sqrt(sum(((p - q).float() ** 2).sum() for p, q in zip(self.weights, self.y))))

    def state_dict(self) -> dict[str, Any]:
        """The base state plus the second network: y, y's BatchNorm statistics and y's SGD state."""
        return {**super().state_dict(),
                "y": {n: t.detach().clone() for n, t in zip(self.y_names, self.y)},
                "y_buffers": {n: b.clone() for n, b in self.y_buffers.items()},
                "y_opt": self.y_opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            for n, t in zip(self.y_names, self.y):
                t.copy_(state["y"][n])
            for n, b in self.y_buffers.items():
                b.copy_(state["y_buffers"][n])
        self.y_opt.load_state_dict(state["y_opt"])

    def schedule_values(self) -> dict[str, float]:
        return {**super().schedule_values(), "y_lr": self.y_opt.param_groups[0]["lr"],
                "w_y_distance": self.distance()}
