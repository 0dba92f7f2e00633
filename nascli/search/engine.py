"""The search loop: epochs of optimizer steps with schedule hooks, resumable at any step.

The engine knows nothing about methods: it calls the mixer's and the components' epoch hooks, the
optimizer's step, and checkpoints all of their states together with the data streams and RNGs.

Divergence: the optimizer's step statistics (device-side loss sums) are watched after every step
(:class:`~nascli.divergence.NonFiniteWatch`: checked at once on the CPU, read only at checkpoint points
and at the end of the epoch elsewhere), and the weights and buffers are checked before every checkpoint, so a
non-finite loss raises :class:`~nascli.errors.DivergedError` (epoch, first bad step) before a bad
state is ever handed to ``checkpoint()``.

Epoch ends: :meth:`end_epoch` gives every component an :class:`~nascli.search.components.EpochEnd` (the
dominant Hessian eigenvalue on the epoch's last validation batch, computed at most once, by
``hessian_probe``) and returns the next epoch to run: ``epoch + 1``, or an earlier one when a component
rolled the search back (DARTS-ADA). :meth:`stopped_early` says whether a component ended the search (DARTS-ES);
:meth:`end_search` runs the components' ``on_search_end`` once the loop is over.

Watchers: ``observers`` (a :class:`~nascli.logger.observer.RunObserver`, e.g. the progress bar and the logger)
hear ``on_epoch_start`` from :meth:`start_epoch`, ``on_step_end`` after every step of :meth:`run_epoch` (with
the optimizer's running step statistics, read only when an observer asks) and ``on_epoch_end`` from
:meth:`publish_epoch`, which the command calls with the epoch's metrics record (and ``on_rollback`` from
:meth:`publish_rollback` when a component rolled the search back). They only read.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from nascli.checkpoint import SEARCH_FORMAT
from nascli.divergence import NonFiniteWatch, all_finite
from nascli.errors import CheckpointError, DivergedError
from nascli.logger.observer import Observers, StepInfo
from nascli.rng import capture_rng_state, restore_rng_state
from nascli.search.components import EpochEnd
from nascli.search.diagnostics import HessianProbe


class SearchEngine:
    def __init__(self, supernet, optimizer, components: list, train_stream, arch_stream,
                 epochs: int, steps_per_epoch: int, hessian_method: str = "auto"):
        self.net = supernet
        self.opt = optimizer
        self.components = components
        self.train_stream = train_stream
        self.arch_stream = arch_stream
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.epoch = 0  # the epoch in progress (or next to run)
        self.step = 0  # steps done in that epoch
        self.watch = NonFiniteWatch(next(supernet.parameters()).device)
        self.hessian_probe = HessianProbe(hessian_method)  # (supernet, batch, arch wd) -> lambda_max
        self.last_val_batch = None  # the epoch's last validation batch (last training batch without one)
        self.observers = Observers()  # watchers of the loop (module docstring); none by default
        self._began, self._images = 0.0, 0  # the clock and the image count of the steps in progress

    # ------------------------------------------------------------------ hooks
    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.net.mixer.on_epoch_start(epoch, self.epochs)
        self.opt.on_epoch_start(epoch, self.epochs)
        for c in self.components:
            c.on_epoch_start(epoch, self.epochs)
        self.observers.on_epoch_start(epoch, self.epochs, self.steps_per_epoch, self.step)

    def publish_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """Hand epoch ``epoch``'s metrics record to the observers."""
        self.observers.on_epoch_end(epoch, record)

    def publish_rollback(self, epoch: int) -> None:
        """Tell the observers that epochs ``epoch`` and later run again (a component rolled the search back)."""
        self.observers.on_rollback(epoch)

    def schedule_values(self) -> dict[str, float]:
        values = dict(self.opt.schedule_values())
        values.update(self.net.mixer.schedule_values())
        for c in self.components:
            values.update(c.values())
        return values

    # ------------------------------------------------------------------ loop
    def run_epoch(self, checkpoint: Callable[[], None] | None = None, checkpoint_every: int = 0) -> dict[str, Any]:
        """Run the rest of ``self.epoch`` from ``self.step``; returns timing figures. With
        ``checkpoint_every`` > 0, ``checkpoint()`` is called every that many steps inside the epoch.
        Raises :class:`DivergedError` when a loss or the weights stop being finite (module docstring).

        The epoch is :meth:`open_steps`, then per step :meth:`next_batches`, the optimizer's step and
        :meth:`close_step`, then :meth:`close_steps`; a seed-stacked group (nascli/commands/seed_group.py) runs
        the same pieces for every seed with one stacked optimizer step in the middle."""
        self.open_steps()
        while self.step < self.steps_per_epoch:
            train_batch, arch_batch = self.next_batches()
            self.opt.step(train_batch, arch_batch)
            self.close_step(train_batch, arch_batch, checkpoint, checkpoint_every)
        return self.close_steps()

    def open_steps(self) -> None:
        """Before the epoch's (remaining) steps: train mode, fresh step statistics at step 0, the loss watch
        armed, the clock started."""
        self.net.train()
        if self.step == 0:
            self.opt.stats = type(self.opt.stats)()
        self.watch.start(self.epoch, self.step)
        self._began = time.perf_counter()
        self._images = 0

    def next_batches(self) -> tuple[Any, Any]:
        """The next step's training batch and architecture batch (None when the optimizer takes none)."""
        train_batch = self.train_stream.next()
        arch_batch = self.arch_stream.next() if self.opt.uses_arch_batches and self.arch_stream else None
        return train_batch, arch_batch

    def close_step(self, train_batch: Any, arch_batch: Any, checkpoint: Callable[[], None] | None = None,
                   checkpoint_every: int = 0) -> None:
        """After a step's updates: watch its losses, count it, the components' ``on_step_end``, the observers,
        and a checkpoint every ``checkpoint_every`` steps inside the epoch."""
        self.last_val_batch = arch_batch if arch_batch is not None else train_batch
        self._images += train_batch[0].shape[0]
        sums = self.opt.stats.sums
        if sums:
            self.watch.observe(torch.stack(list(sums.values())))
        self.step += 1
        for c in self.components:
            c.on_step_end(self.epoch, self.step)
        if self.observers:
            self.observers.on_step_end(StepInfo(self.epoch, self.step, self.steps_per_epoch,
                                                int(train_batch[0].shape[0]), self.opt.stats.summary))
        if checkpoint and checkpoint_every and self.step % checkpoint_every == 0 and self.step < self.steps_per_epoch:
            self.check_finite()
            checkpoint()

    def close_steps(self) -> dict[str, Any]:
        """After the epoch's last step: the finiteness check and the timing figures (wall time since
        :meth:`open_steps`, images per second)."""
        self.check_finite()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - self._began
        return {"epoch_time_s": seconds, "images_per_s": self._images / seconds if seconds > 0 else 0.0}

    def end_epoch(self, epoch: int) -> int:
        """The components' ``on_epoch_end`` after epoch ``epoch``'s last step; the next epoch to run (the
        earliest a component rolled back to, else ``epoch + 1``)."""
        cache: list[float] = []

        def eigenvalue() -> float:
            if not cache:
                cache.append(self.dominant_eigenvalue(epoch))
            return cache[0]

        end = EpochEnd(epoch, self.epochs, eigenvalue)
        nxt = epoch + 1
        for c in self.components:
            back = c.on_epoch_end(end)
            if back is not None:
                nxt = min(nxt, int(back))
        return nxt

    def dominant_eigenvalue(self, epoch: int) -> float:
        """lambda_max of d^2 L_val / d alpha^2 + wd I at the end of ``epoch``, on its last validation batch, in
        train mode (R-DARTS), by ``hessian_probe``; the supernet, its mode and the RNGs are left unchanged."""
        was = self.net.training
        self.net.train()
        try:
            return float(self.hessian_probe(self.net, self.last_val_batch, self.opt.arch_weight_decay))
        finally:
            self.net.train(was)

    def stopped_early(self) -> dict[str, Any] | None:
        """The first component's early-stop record (``{"epoch": ..., ...}``), or None."""
        for c in self.components:
            if (stop := c.stopped()) is not None:
                return stop
        return None

    def end_search(self) -> None:
        for c in self.components:
            c.on_search_end()

    def check_finite(self) -> None:
        """Raise :class:`DivergedError` if a watched loss of this epoch, a weight or a floating-point buffer
        (BatchNorm running statistics) is not finite."""
        self.watch.check()
        state = [t for t in (*self.net.parameters(), *self.net.buffers()) if t.is_floating_point()]
        if not all_finite(state):
            raise DivergedError(self.epoch, max(self.step - 1, 0), "a weight or buffer")

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": SEARCH_FORMAT, "epoch": self.epoch, "step": self.step,
            "supernet": self.net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "components": [c.state_dict() for c in self.components],
            "train_stream": self.train_stream.state_dict(),
            "arch_stream": self.arch_stream.state_dict() if self.arch_stream else None,
            "rng": capture_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; a state of another format raises :class:`CheckpointError`."""
        if state.get("format") != SEARCH_FORMAT:
            raise CheckpointError(f"search state has format {state.get('format')!r}, expected {SEARCH_FORMAT!r}")
        self.net.load_state_dict(state["supernet"])
        self.opt.load_state_dict(state["optimizer"])
        for c, s in zip(self.components, state["components"]):
            c.load_state_dict(s)
        self.train_stream.load_state_dict(state["train_stream"])
        if self.arch_stream is not None and state["arch_stream"] is not None:
            self.arch_stream.load_state_dict(state["arch_stream"])
        restore_rng_state(state["rng"])
        self.epoch, self.step = state["epoch"], state["step"]
