"""The task's part of the plain training loop: the objective, the training stream and the test metrics.

:func:`~nascli.train.loop.train_network` trains any network through a :class:`TrainingHooks`; the
classification hooks (:class:`ClassificationHooks`) are the loop's default, so a caller that passes none
gets today's image classification (``nascli/tasks`` hands other tasks' hooks in).
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from nascli import distributed


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def move_to(t: Any, device: torch.device) -> Any:
    """A tensor copied without blocking, or a batch object (e.g. speech's ``PaddedFeatures``) by its ``to``."""
    return t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t.to(device)


def prepare_input(x: Any, device: torch.device) -> Any:
    """``x`` on ``device``; an image batch (4-D tensor) channels_last on CUDA."""
    x = move_to(x, device)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" and _is_image(x) else x


def _is_image(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.dim() == 4


def compute_loss(
    output: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    target: torch.Tensor,
    auxiliary_weight: float = 0.0,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training objective and the main logits.

    ``output`` is ``logits`` or ``(logits, aux_logits)``. The loss is
    ``CE_s(logits, y) + auxiliary_weight * CE_s(aux_logits, y)`` where ``CE_s`` is cross-entropy with
    label smoothing ``s`` (both heads use the same criterion, as DARTS's ImageNet script does,
    METHODS.md 0.2/0.3); the auxiliary term is dropped when the weight is 0 or there is no aux output.
    The loss is computed in float32 whatever the autocast dtype of the logits.
    """
    logits, aux = (output[0], output[1]) if isinstance(output, (tuple, list)) else (output, None)
    loss = F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
    if aux is not None and auxiliary_weight > 0:
        loss = loss + auxiliary_weight * F.cross_entropy(aux.float(), target, label_smoothing=label_smoothing)
    return loss, logits


@torch.no_grad()
def count_correct(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                  device: torch.device) -> torch.Tensor:
    """int64 ``[correct top-1 predictions, examples]`` over ``batches`` in eval mode, on ``device``."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    for x, y in batches:
        y = move_to(y, device)
        with autocast_for(device):
            output = model(prepare_input(x, device))
        logits = output[0] if isinstance(output, (tuple, list)) else output
        correct += (logits.argmax(dim=1) == y).sum()
        total += int(y.shape[0])
    return torch.stack([correct, torch.tensor(total, dtype=torch.int64, device=device)])


def accuracy_of(counts: torch.Tensor) -> float:
    """100 * correct / total of ``[correct, total]`` (NaN when empty)."""
    correct, total = (int(v) for v in counts.tolist())
    return 100.0 * correct / total if total else float("nan")


class TrainingHooks(ABC):
    """What the plain training loop asks the task (module docstring)."""

    #: the metric key of the training score (``train_acc``), or None when the task logs none
    train_score: ClassVar[str | None] = None

    @abstractmethod
    def loss(self, output: Any, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(training loss in float32, main output) of a model's forward ``output``."""

    def train_score_sum(self, main: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
        """The batch's training score summed over its examples (a device tensor), or None."""
        return None

    @abstractmethod
    def make_stream(self, split: Any, info: Any, batch_size: int, *, seed: int, cutout: int = 0) -> Any:
        """The endless, resumable training stream."""

    @abstractmethod
    def test_metrics(self, model: nn.Module, split: Any, info: Any, batch_size: int,
                     device: torch.device) -> dict[str, float]:
        """The test metrics of ``model`` (eval mode) on ``split``, the same on every rank."""

    def shard_test(self, split: Any, rank: int, world_size: int) -> Any:
        """This rank's part of the test split under torchrun."""
        return distributed.shard_split(split, rank, world_size)


class ClassificationHooks(TrainingHooks):
    """Image classification: ``CE_s(logits) + w_aux * CE_s(aux)`` (:func:`compute_loss`), top-1 accuracy in
    percent on the training batches (``train_acc``) and the whole test split (``test_acc``, summed over the
    ranks). ``make_stream`` / ``iterate_test`` default to ``nascli.data.BatchStream`` / ``iterate_eval``."""

    train_score = "train_acc"

    def __init__(self, auxiliary_weight: float = 0.0, label_smoothing: float = 0.0,
                 make_stream: Callable[..., Any] | None = None,
                 iterate_test: Callable[..., Iterable[tuple[torch.Tensor, torch.Tensor]]] | None = None):
        self.auxiliary_weight, self.label_smoothing = float(auxiliary_weight), float(label_smoothing)
        self._make_stream, self._iterate_test = make_stream, iterate_test

    def loss(self, output: Any, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return compute_loss(output, target, self.auxiliary_weight, self.label_smoothing)

    def train_score_sum(self, main: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (main.detach().argmax(dim=1) == target).sum()

    def make_stream(self, split: Any, info: Any, batch_size: int, *, seed: int, cutout: int = 0) -> Any:
        make = self._make_stream
        if make is None:
            from nascli.data import BatchStream

            ctx = distributed.current()
            make = distributed.sharded_stream_factory(ctx) if ctx.distributed else BatchStream
        return make(split, info, batch_size, seed=seed, train_aug=True, cutout=cutout)

    def test_metrics(self, model: nn.Module, split: Any, info: Any, batch_size: int,
                     device: torch.device) -> dict[str, float]:
        iterate = self._iterate_test
        if iterate is None:
            from nascli.data import iterate_eval as iterate
        counts = count_correct(model, iterate(split, info, batch_size), device)
        return {"test_acc": accuracy_of(distributed.all_reduce_sum(counts))}
