"""Search optimizers: how weights w and architecture parameters alpha are updated each step.

Shared pieces: SGD on w with a per-epoch learning-rate schedule set at the start of each epoch
(``schedule``: ``cosine``, METHODS.md 11.9, or sharpDARTS's ``cos_power``, :func:`cos_power_lr`; both in
:data:`LR_SCHEDULES`), gradient-norm clipping of w, and Adam on alpha
(lr 3e-4, betas (0.5, 0.999), wd 1e-3 by default, METHODS.md 1.1). Architecture updates start at
``arch_start_epoch`` (PC-DARTS warm-up: 15).
"""
from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from typing import Any

import torch

from nascli.device import autocast, frozen
from nascli.errors import OptionError
from nascli.search.composition import COMPOSITION_RULES
from nascli.registry import Registry
from nascli.tasks.base import Criterion
from nascli.tasks.classification import CROSS_ENTROPY

SEARCH_OPTIMIZERS: Registry[type["SearchOptimizer"]] = Registry("optimizer")

Batch = tuple[torch.Tensor, torch.Tensor]


def upcast(t: Any) -> Any:
    """Reduced-precision (autocast) outputs to float32 for the loss; float32/64 unchanged; an output that is
    not a tensor (speech's ``CTCOutput``) is left to the task's criterion, which casts it itself."""
    if not isinstance(t, torch.Tensor):
        return t
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def cosine_lr(lr: float, lr_min: float, epoch: int, epochs: int) -> float:
    """Epoch-wise cosine annealing (CosineAnnealingLR stepped at epoch start):
    lr_e = lr_min + (lr - lr_min) * (1 + cos(pi * e / E)) / 2, e = 0..E-1."""
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2


def cos_power_lr(lr: float, lr_min: float, epoch: int, epochs: int, power: float = 2.0,
                 warmup_epochs: int = 0) -> float:
    """Cosine Power Annealing (sharpDARTS, Hundt et al. 2019; ahundt/sharpDARTS@8fd6575
    cnn/cosine_power_annealing.py, as train_search.py calls it with ``epochs=E``). With t = epoch + 1 (1..E),
    W = ``warmup_epochs``, p = ``power`` (the reference's ``exponent_order``):

        c(t) = (1 + cos(pi * (t - W) / (E - W))) / 2
        g(t) = p ** (c(t) + 1)                      (g = c when p = 1: plain cosine)
        q(t) = (g(t) - min_s g(s)) / (max_s g(s) - min_s g(s)),   s = 1..E
        q(t) = t / (W + 1)                          for t <= W + 1 when W > 0 (linear warm-up; the reference
                                                    counts W + 1 warm-up epochs, the last one at q = 1)
        lr(t) = lr_min + (lr - lr_min) * q(t)

    The last epoch (t = E) has c = 0, so q = 0 and lr = lr_min. Needs p >= 1 and W < E (the reference
    divides by E - W)."""
    if power < 1:
        raise OptionError(f"optimizer.power must be >= 1 (Cosine Power Annealing's exponent order), got {power}")
    if not 0 <= warmup_epochs < epochs:
        raise OptionError(f"optimizer.warmup_epochs must be in [0, search.epochs) = [0, {epochs}), "
                          f"got {warmup_epochs}")
    W, span = int(warmup_epochs), epochs - int(warmup_epochs)

    def g(t: int) -> float:
        c = (1 + math.cos(math.pi * (t - W) / span)) / 2
        return c if power == 1 else power ** (c + 1)

    t = epoch + 1
    if W > 0 and t <= W + 1:
        q = t / (W + 1)
    else:
        values = [g(s) for s in range(1, epochs + 1)]
        low, high = min(values), max(values)
        q = (g(t) - low) / (high - low) if high > low else 1.0
    return lr_min + (lr - lr_min) * q


@COMPOSITION_RULES.register("lr_warm_up")
def _lr_warm_up_shorter_than_the_run(c) -> str | None:
    """A Cosine Power Annealing warm-up must end before the run does (the schedule divides by E - W)."""
    if c.optimizer_options.get("schedule", "cosine") != "cos_power":
        return None
    warmup = int(c.optimizer_options.get("warmup_epochs", 0) or 0)
    if warmup >= c.epochs:
        return (f"optimizer.warmup_epochs={warmup} is not below search.epochs={c.epochs}: Cosine Power Annealing "
                f"needs at least one epoch after the warm-up; lower optimizer.warmup_epochs or raise search.epochs")
    return None


#: ``optimizer.schedule`` name -> lr(optimizer, epoch, epochs)
LR_SCHEDULES = {
    "cosine": lambda o, epoch, epochs: cosine_lr(o.lr, o.lr_min, epoch, epochs),
    "cos_power": lambda o, epoch, epochs: cos_power_lr(o.lr, o.lr_min, epoch, epochs, o.power, o.warmup_epochs),
}


class StepStats:
    """Running sums of loss and the task's batch score (accuracy for classification) kept on the device
    (no host sync inside a step); counts are host integers. Read only at log points."""

    def __init__(self, criterion: Criterion = CROSS_ENTROPY):
        self.criterion = criterion
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, prefix: str, logits: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> None:
        n = y.shape[0]
        for key, val in ((f"{prefix}_loss", loss.detach().float() * n),
                         (f"{prefix}_{self.criterion.sum_key}", self.criterion.score_sum(logits, y))):
            self.sums[key] = self.sums[key] + val if key in self.sums else val
        self.counts[prefix] = self.counts.get(prefix, 0) + n

    def summary(self) -> dict[str, float]:
        out = {}
        for prefix, n in sorted(self.counts.items()):
            out[f"{prefix}_loss"] = float(self.sums[f"{prefix}_loss"]) / n
            c = self.criterion
            out[f"{prefix}_{c.score_name}"] = c.score_scale * float(self.sums[f"{prefix}_{c.sum_key}"]) / n
        return out

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        self.sums, self.counts = dict(state["sums"]), dict(state["counts"])


class StepHooks:
    """Named hooks a component attaches to a search optimizer (:meth:`SearchOptimizer.attach`). Every
    optimizer calls them, whatever its update rule, because :meth:`SearchOptimizer.step` does:

    ``before_step(train_batch) -> train_batch``: may transform the step's training batch (DAAS augmentation);
    ``on_loss(prefix, loss)``: sees every reported loss of the step (prefix ``train`` or ``val``, detached);
    ``after_step()``: after all updates of the step;
    ``before_weight_step(train_batch)`` / ``after_weight_step()``: right before and after the update of w
    (after the architecture step when alpha is updated first), from optimizers whose
    :attr:`SearchOptimizer.weight_step_hooks` is true; ``after_weight_step`` runs even when the update
    raised. A component uses them to train w at other mixing weights (SDARTS, MS-DARTS).
    """

    def before_step(self, batch: "Batch") -> "Batch":
        return batch

    def on_loss(self, prefix: str, loss: torch.Tensor) -> None:
        """Called with each reported loss."""

    def after_step(self) -> None:
        """Called once the step's updates are done."""

    def arch_loss_term(self) -> torch.Tensor | None:
        """A term added to the architecture objective: :meth:`SearchOptimizer.loss` adds it to every
        ``val`` loss it returns (after reporting the plain loss), so every optimizer's alpha gradient
        includes it (DrNAS KL regulariser). ``None``: nothing to add."""
        return None

    def before_weight_step(self, batch: "Batch") -> None:
        """Called with the step's training batch right before w is updated."""

    def after_weight_step(self) -> None:
        """Called right after w is updated (undo what :meth:`before_weight_step` set)."""


class SearchOptimizer(ABC):
    """Owns the weight optimizer (SGD) and the architecture optimizer (Adam) of one search.

    Subclasses implement :meth:`update` (the update rule of one step); :meth:`step` wraps it with the
    attached components' hooks (:class:`StepHooks`). The config keys an optimizer accepts are exactly its
    constructor's keyword arguments (nascli/search/options.py)."""

    #: whether the step consumes a batch from the architecture (validation) split
    uses_arch_batches: bool = True
    #: whether each update averages K sampled paths (needs a mixer that samples paths to mean anything)
    multi_path: bool = False
    #: whether :meth:`update` trains w in a weight update of its own wrapped by :meth:`weight_hooks` (the
    #: ``before_weight_step`` / ``after_weight_step`` hooks); false for a joint w/alpha step (single level)
    weight_step_hooks: bool = False
    #: whether the optimizer keeps tensors shaped like the weights outside ``w_opt``'s state (RARTS's twin
    #: network y): a component that reshapes the weights in place (DrNAS widening) cannot reach them
    weight_copies: bool = False

    def __init__(self, supernet, *, lr: float = 0.025, lr_min: float = 0.001, momentum: float = 0.9,
                 nesterov: bool = False, weight_decay: float = 3e-4, grad_clip: float = 5.0,
                 arch_lr: float = 3e-4, arch_betas: tuple[float, float] = (0.5, 0.999),
                 arch_weight_decay: float = 1e-3, arch_start_epoch: int = 0, schedule: str = "cosine",
                 power: float = 2.0, warmup_epochs: int = 0, device=None):
        if schedule not in LR_SCHEDULES:
            raise OptionError(f"unknown optimizer.schedule {schedule!r}; valid choices: {', '.join(LR_SCHEDULES)}")
        if float(power) < 1:
            raise OptionError(f"optimizer.power must be >= 1 (Cosine Power Annealing's exponent order), got {power}")
        if int(warmup_epochs) < 0:
            raise OptionError(f"optimizer.warmup_epochs must be >= 0, got {warmup_epochs}")
        self.schedule, self.power, self.warmup_epochs = schedule, float(power), int(warmup_epochs)
        self.net = supernet
        self.weights = supernet.weight_parameters()
        self.arch = supernet.arch_parameters()
        self.lr, self.lr_min = lr, lr_min
        self.momentum, self.weight_decay, self.grad_clip = momentum, weight_decay, grad_clip
        self.arch_weight_decay = arch_weight_decay
        self.arch_start_epoch = arch_start_epoch
        self.device = device or next(supernet.parameters()).device
        self.w_opt = torch.optim.SGD(self.weights, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                                     weight_decay=weight_decay)
        self.a_opt = torch.optim.Adam(self.arch, lr=arch_lr, betas=tuple(arch_betas), weight_decay=arch_weight_decay)
        self.arch_enabled = True
        #: the task's per-batch loss and score (nascli/tasks); the search builder sets it, see :meth:`use_criterion`
        self.criterion: Criterion = CROSS_ENTROPY
        self.stats = StepStats(self.criterion)
        self.hooks: list[StepHooks] = []

    def use_criterion(self, criterion: Criterion) -> None:
        """Train and score with the task's ``criterion`` (set once by the builder, before the first step)."""
        self.criterion = criterion
        self.stats = StepStats(criterion)

    @property
    def stats(self) -> StepStats:
        """The step statistics; a fresh :class:`StepStats` assigned here (the engine's per-epoch reset) scores
        with this optimizer's :attr:`criterion`."""
        return self._stats

    @stats.setter
    def stats(self, value: StepStats) -> None:
        value.criterion = self.criterion
        self._stats = value

    def attach(self, hooks: StepHooks) -> None:
        """Register a component's step hooks (called in attachment order)."""
        self.hooks.append(hooks)

    # ------------------------------------------------------------------ schedule
    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Set w's learning rate of epoch ``epoch`` (0-based) by ``schedule`` (a function of the epoch only, so
        a resumed run gets the uninterrupted run's rate) and enable alpha updates from ``arch_start_epoch``."""
        lr = LR_SCHEDULES[self.schedule](self, epoch, epochs)
        for g in self.w_opt.param_groups:
            g["lr"] = lr
        self.arch_enabled = epoch >= self.arch_start_epoch

    @property
    def current_lr(self) -> float:
        return self.w_opt.param_groups[0]["lr"]

    # ------------------------------------------------------------------ pieces
    def loss(self, batch: Batch, prefix: str | None = None, *, full_precision: bool = False) -> torch.Tensor:
        """The task's loss (:attr:`criterion`; cross-entropy for classification) of the supernet on ``batch``;
        a ``prefix`` (``train``/``val``) reports it to the step statistics and the ``on_loss`` hooks.
        ``full_precision`` runs without autocast (fp32). A ``val`` loss (the architecture objective) also
        carries the hooks' ``arch_loss_term()`` (not in the statistics)."""
        x, y = batch
        with contextlib.nullcontext() if full_precision else autocast(self.device):
            logits = self.net(x)
            loss = self.criterion.loss(upcast(logits), y)
        return self.report(prefix, logits, y, loss)

    def report(self, prefix: str | None, logits: torch.Tensor, y: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        """The reporting half of :meth:`loss`: a ``prefix`` adds ``loss`` to the step statistics and hands it to
        the ``on_loss`` hooks; a ``val`` loss comes back with the hooks' ``arch_loss_term()`` added. A seed-stacked
        step (nascli/search/stacked.py) computes the logits of every seed at once and reports each seed's here."""
        if prefix:
            self.stats.add(prefix, logits, y, loss)
            for h in self.hooks:
                h.on_loss(prefix, loss.detach())
        if prefix == "val":
            for h in self.hooks:
                term = h.arch_loss_term()
                if term is not None:
                    loss = loss + term
        return loss

    @contextlib.contextmanager
    def weight_hooks(self, batch: Batch):
        """The attached hooks' ``before_weight_step(batch)``, the block (one update of w), then
        ``after_weight_step()`` in reverse attachment order, also when the block raised."""
        for h in self.hooks:
            h.before_weight_step(batch)
        try:
            yield
        finally:
            for h in reversed(self.hooks):
                h.after_weight_step()

    def weight_step(self, batch: Batch) -> None:
        """SGD on w with L_train (alpha frozen), gradient norm clipped; inside :meth:`weight_hooks`."""
        with self.weight_hooks(batch):
            self.w_opt.zero_grad(set_to_none=True)
            with frozen(self.arch):
                self.loss(batch, "train").backward()
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.weights, self.grad_clip)
            self.w_opt.step()

    def first_order_arch_step(self, batch: Batch) -> None:
        """Adam on alpha with g = dL_val/dalpha at the current w (w frozen)."""
        self.a_opt.zero_grad(set_to_none=True)
        with frozen(self.weights):
            self.loss(batch, "val").backward()
        self.a_opt.step()

    def step(self, train_batch: Batch, arch_batch: Batch | None) -> None:
        """One search step: :meth:`open_step` (the hooks' ``before_step`` on the training batch), :meth:`update`,
        :meth:`close_step` (``after_step``)."""
        train_batch = self.open_step(train_batch)
        self.update(train_batch, arch_batch)
        self.close_step()

    def open_step(self, train_batch: Batch) -> Batch:
        """The attached hooks' ``before_step``, in attachment order: the step's training batch."""
        for h in self.hooks:
            train_batch = h.before_step(train_batch)
        return train_batch

    def close_step(self) -> None:
        """The attached hooks' ``after_step``, in attachment order."""
        for h in self.hooks:
            h.after_step()

    @abstractmethod
    def update(self, train_batch: Batch, arch_batch: Batch | None) -> None:
        """The optimizer's update rule for one step."""

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(),
                "arch_enabled": self.arch_enabled, "stats": self.stats.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.arch_enabled = state["arch_enabled"]
        self.stats.load_state_dict(state["stats"])

    def schedule_values(self) -> dict[str, float]:
        return {"lr": self.current_lr, "arch_updates": float(self.arch_enabled)}
