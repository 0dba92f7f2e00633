"""The plain training loop for discrete networks (``nas evaluate``): no search logic.

One epoch ``e`` (0-based) of :func:`train_network`:

1. ``lr_e`` = :func:`~nascli.train.protocol.lr_at_epoch` is written into the optimizer, and
   ``model.drop_path_prob = p * e / E`` when the model has that attribute (METHODS.md 0.2, 11.9);
2. ``steps`` SGD steps on batches of the persistent training stream (random crop + flip, optional
   cutout): ``loss = CE_s(logits, y) + w_aux * CE_s(aux_logits, y)`` (:func:`compute_loss`), backward,
   gradient-norm clip, step;
3. top-1 accuracy (percent) on the whole test split in eval mode;
4. ``on_epoch_end(e, metrics, state)`` with a state that :func:`train_network` accepts to resume.

Watchers (``observers``, :class:`~nascli.logger.observer.RunObserver`: the progress bar, the logger) hear
``on_epoch_start`` before step 1, ``on_step_end`` after every step (the running training loss, read from the
device only when an observer asks) and ``on_epoch_end`` with the epoch's metrics before ``on_epoch_end``.

Divergence: a training loss that is not finite raises :class:`~nascli.errors.DivergedError` naming the
epoch and the step (both 0-based) of the first bad step, before ``on_epoch_end`` sees that epoch, so
the caller's last checkpoint stays the last good one (weights and buffers are checked too, once per
epoch before the callback). The loss is watched on the device
(:class:`~nascli.divergence.NonFiniteWatch`) and read at the end of the epoch; on the CPU in one
process every step is checked at once.

On CUDA the forward runs under bf16 autocast with channels_last tensors and a fused SGD; losses and
accuracies accumulate on the device and are read back once per epoch. ``cudnn.benchmark`` is left as
it is (off by default) so runs stay reproducible.

Under torchrun (a joined process group with world size W > 1, :mod:`nascli.distributed`) the same
loop runs data-parallel: the network is wrapped in DistributedDataParallel, each rank trains on its
``batch_size / W`` slice of every global batch (:class:`~nascli.distributed.ShardedStream`), the test
split is evaluated in shards, and the epoch's loss/accuracy sums are all-reduced, so every rank
reports the global figures. ``protocol.batch_size`` stays the global batch. The state handed to
``on_epoch_end`` holds the unwrapped model and is identical on all ranks.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from nascli import distributed
from nascli.checkpoint import TRAIN_FORMAT
from nascli.divergence import NonFiniteWatch, all_finite
from nascli.errors import CheckpointError, DivergedError
from nascli.logger.observer import Observers, RunObserver, StepInfo
from nascli.profile import peak_memory_bytes, reset_peak_memory
from nascli.rng import capture_rng_state, restore_rng_state, seed_everything
from nascli.train.hooks import (ClassificationHooks, TrainingHooks, accuracy_of, autocast_for, compute_loss,
                                count_correct, move_to, prepare_input)
from nascli.train.protocol import Protocol, drop_path_at_epoch, lr_at_epoch

STATE_FORMAT = TRAIN_FORMAT

EpochCallback = Callable[[int, dict[str, Any], dict[str, Any]], None]


def evaluate_accuracy(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                      device: torch.device | str) -> float:
    """Top-1 accuracy in percent over ``batches`` in eval mode (NaN for an empty iterable)."""
    return accuracy_of(count_correct(model, batches, torch.device(device)))


def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, stream: Any, steps: int,
                 protocol: Protocol, device: torch.device, epoch: int = 0,
                 hooks: TrainingHooks | None = None, observers: Observers | None = None) -> tuple[float, float]:
    """``steps`` optimizer steps; returns (mean training loss, the task's training score: top-1 train
    accuracy in percent for classification, NaN for a task without one).
    Raises :class:`DivergedError` (``epoch``, first bad step) when a loss is not finite."""
    ctx = distributed.current()
    # Under DDP a rank must not stop alone mid-epoch (the others would wait in the gradient all-reduce).
    watch = NonFiniteWatch(device, check_every_step=device.type == "cpu" and not ctx.distributed)
    watch.start(epoch, 0)
    hooks = hooks or ClassificationHooks(protocol.auxiliary_weight, protocol.label_smoothing)
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    params = [p for p in model.parameters() if p.requires_grad]
    observers = observers or Observers()
    for step in range(steps):
        x, y = stream.next()
        y = move_to(y, device)
        with autocast_for(device):
            output = model(prepare_input(x, device))
        loss, main = hooks.loss(output, y)
        watch.observe(loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if protocol.grad_clip:
            nn.utils.clip_grad_norm_(params, protocol.grad_clip)
        optimizer.step()
        n = int(y.shape[0])
        loss_sum += loss.detach().double() * n
        score = hooks.train_score_sum(main, y)
        if score is not None:
            correct += score
        seen += n
        if observers:
            observers.on_step_end(StepInfo(epoch, step + 1, steps, n, lambda: _running(hooks, loss_sum, correct, seen)))
    # Sums over all ranks (a no-op in one process); one host sync per epoch.
    totals = torch.stack([loss_sum, correct.double(), torch.tensor(float(seen), dtype=torch.float64, device=device)])
    loss_total, correct_total, seen_total = distributed.all_reduce_sum(totals).tolist()
    if not math.isfinite(loss_total):  # the same on every rank: all stop here together
        _raise_first_bad_step(watch, steps, device, ctx)
    if hooks.train_score is None:
        return loss_total / max(seen_total, 1), float("nan")
    return loss_total / max(seen_total, 1), 100.0 * correct_total / max(seen_total, 1)


def _running(hooks: TrainingHooks, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int) -> dict[str, float]:
    """This rank's running mean training loss (and score) of the epoch so far (a host sync)."""
    out = {"train_loss": float(loss_sum) / max(seen, 1)}
    if hooks.train_score is not None:
        out[hooks.train_score] = 100.0 * float(correct) / max(seen, 1)
    return out


def _raise_first_bad_step(watch: NonFiniteWatch, steps: int, device: torch.device,
                          ctx: distributed.DistContext) -> None:
    """Raise the :class:`DivergedError` of the earliest bad step over all ranks (a MIN all-reduce)."""
    try:
        watch.check()
        first = steps  # this rank's losses were finite; another rank's were not
    except DivergedError as exc:
        first = exc.step
    if ctx.distributed:
        import torch.distributed as dist

        t = torch.tensor([first], dtype=torch.int64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        first = int(t.item())
    raise DivergedError(watch.epoch, min(first, steps - 1))


#: ``protocol.optimizer`` -> torch optimizer over (params, protocol, fused)
_OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda params, p, fused: torch.optim.SGD(params, lr=p.lr, momentum=p.momentum, nesterov=p.nesterov,
                                                    weight_decay=p.weight_decay, fused=fused),
    "adam": lambda params, p, fused: torch.optim.Adam(params, lr=p.lr, betas=(p.beta1, p.beta2), eps=1e-8,
                                                      weight_decay=p.weight_decay, fused=fused),
}


def _make_optimizer(model: nn.Module, protocol: Protocol, device: torch.device) -> torch.optim.Optimizer:
    """``protocol.optimizer``: SGD (momentum, Nesterov, weight decay) or Adam (betas, eps 1e-8, weight
    decay), fused kernels on CUDA; the lr is overwritten at every epoch start."""
    params = [p for p in model.parameters() if p.requires_grad]
    return _OPTIMIZERS[protocol.optimizer](params, protocol, True if device.type == "cuda" else None)


def _on_device(split: Any, device: torch.device) -> Any:
    return split.to(device) if hasattr(split, "to") else split


def _data_parallel(model: nn.Module, device: torch.device, ctx: distributed.DistContext) -> nn.Module:
    """``model`` itself in one process; DistributedDataParallel (gradient all-reduce) under torchrun."""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    # static_graph: the set of parameters that get gradients is the same at every step, but need not be
    # all of them (an NB201 cell whose node feeds only `none` edges leaves that node's convolution unused).
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   static_graph=True)


_NOT_FINAL = ("epoch", "lr", "drop_path_prob", "train_loss", "steps", "wall_s", "peak_memory_bytes")


def _final(metrics: dict[str, Any], protocol: Protocol, hooks: TrainingHooks) -> dict[str, Any]:
    """The last epoch's test metrics, training loss and training score, and the epoch count."""
    test = {k: v for k, v in metrics.items() if k not in _NOT_FINAL and k != hooks.train_score}
    score = {hooks.train_score: metrics[hooks.train_score]} if hooks.train_score else {}
    return {**test, "train_loss": metrics["train_loss"], **score, "epochs": protocol.epochs}


def train_network(
    model: nn.Module,
    protocol: Protocol,
    train_split: Any,
    test_split: Any,
    info: Any,
    *,
    device: torch.device | str,
    seed: int,
    state: dict[str, Any] | None = None,
    on_epoch_end: EpochCallback | None = None,
    make_stream: Callable[..., Any] | None = None,
    iterate_test: Callable[..., Iterable[tuple[torch.Tensor, torch.Tensor]]] | None = None,
    hooks: TrainingHooks | None = None,
    observers: list[RunObserver] | tuple[RunObserver, ...] = (),
) -> dict[str, Any]:
    """Train ``model`` from scratch (or from ``state``) under ``protocol``; see the module docstring.

    Args:
        model: a discrete network; its forward returns logits, or ``(logits, aux_logits)`` in train
            mode. Build it (and seed its initialisation) before calling; it is moved to ``device``.
        train_split, test_split, info: from ``nascli.data.eval_splits``.
        seed: seeds the global RNGs (fresh runs only) and the training batch stream.
        state: a dict previously passed to ``on_epoch_end``; training continues after its epoch and
            ends with the same weights as an uninterrupted run. Its protocol must equal ``protocol``.
        on_epoch_end: ``(epoch, metrics, state)`` after every epoch; ``epoch`` is 0-based,
            ``metrics`` holds epoch, lr, drop_path_prob, train_loss, train_acc, test_acc, steps,
            wall_s and peak_memory_bytes, and ``state`` holds format, epoch (the 0-based index of the
            epoch just finished, as passed to the callback), epochs_done (= epoch + 1), protocol, seed,
            model, optimizer, stream, rng and metrics. The state's tensors are the live
            ones: save it (e.g. ``torch.save`` to a temp file + rename) before returning.
        make_stream, iterate_test: data hooks, defaulting to ``nascli.data.BatchStream`` and
            ``nascli.data.iterate_eval`` (same signatures); tests pass tiny stand-ins. Used by the
            default (classification) hooks only.
        hooks: the task's objective, stream and test metrics (:mod:`nascli.train.hooks`); default:
            :class:`~nascli.train.hooks.ClassificationHooks` under ``protocol``'s auxiliary weight and label
            smoothing.
        observers: watchers of the loop (module docstring); they only read.

    Returns:
        ``{'test_acc', 'train_loss', 'train_acc', 'epochs'}`` of the last epoch.
    """
    ctx = distributed.current()
    hooks = hooks or ClassificationHooks(protocol.auxiliary_weight, protocol.label_smoothing, make_stream,
                                         iterate_test)
    device = torch.device(device)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    train_split, test_split = _on_device(train_split, device), _on_device(test_split, device)
    if ctx.distributed:
        test_split = hooks.shard_test(test_split, ctx.rank, ctx.world_size)
    optimizer = _make_optimizer(model, protocol, device)
    if state is None:
        seed_everything(seed)
    stream = hooks.make_stream(train_split, info, protocol.batch_size, seed=seed, cutout=protocol.cutout)

    start, metrics = 0, None
    if state is not None:
        if state.get("format") != STATE_FORMAT:
            raise CheckpointError(f"training state has format {state.get('format')!r}, expected {STATE_FORMAT!r}")
        if state["protocol"] != protocol.as_dict():
            diff = sorted(k for k, v in protocol.as_dict().items() if state["protocol"].get(k) != v)
            raise CheckpointError(f"cannot resume: the checkpoint's protocol differs in {diff}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        stream.load_state_dict(state["stream"])
        restore_rng_state(state["rng"])
        start, metrics = int(state["epoch"]) + 1, state.get("metrics")
    net = _data_parallel(model, device, ctx)  # after loading: DDP starts from rank 0's (identical) weights

    steps = int(stream.batches_per_pass())
    if protocol.max_steps_per_epoch is not None:
        steps = min(steps, protocol.max_steps_per_epoch)
    reset_peak_memory(device)
    watchers = Observers(observers)

    for epoch in range(start, protocol.epochs):
        began = time.perf_counter()
        lr = lr_at_epoch(protocol, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        drop_path = drop_path_at_epoch(protocol, epoch)
        if hasattr(model, "drop_path_prob"):
            model.drop_path_prob = drop_path
        watchers.on_epoch_start(epoch, protocol.epochs, steps, 0)
        train_loss, train_score = _train_epoch(net, optimizer, stream, steps, protocol, device, epoch, hooks, watchers)
        distributed.broadcast_buffers(model)  # evaluate (and save) rank 0's BatchNorm statistics everywhere
        test = hooks.test_metrics(model, test_split, info, protocol.batch_size, device)
        metrics = {
            "epoch": epoch,
            "lr": lr,
            "drop_path_prob": drop_path,
            "train_loss": train_loss,
            **({hooks.train_score: train_score} if hooks.train_score else {}),
            **test,
            "steps": steps,
            "wall_s": time.perf_counter() - began,
            "peak_memory_bytes": peak_memory_bytes(device),
        }
        if not all_finite([t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]):
            raise DivergedError(epoch, steps - 1, "a weight or buffer")  # never hand a bad state to the callback
        watchers.on_epoch_end(epoch, dict(metrics))
        if on_epoch_end is not None:
            on_epoch_end(epoch, dict(metrics), {
                "format": STATE_FORMAT,
                "epoch": epoch,
                "epochs_done": epoch + 1,
                "protocol": protocol.as_dict(),
                "seed": seed,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "stream": stream.state_dict(),
                "rng": capture_rng_state(),
                "metrics": dict(metrics),
            })

    if metrics is None:
        raise CheckpointError("training state holds no metrics for its finished epochs")
    return _final(metrics, protocol, hooks)
