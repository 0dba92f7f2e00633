"""Image classification (``task=classification``, the default): cross-entropy, top-1 accuracy.

* search loss: ``CE(logits, y)`` in float32 (the DARTS family's objective, METHODS.md 1.1), the logged
  score top-1 accuracy in percent (``train_acc`` / ``val_acc``);
* a trained network: ``CE_s(logits) + w_aux * CE_s(aux)`` with the protocol's label smoothing and auxiliary
  weight (:func:`nascli.train.hooks.compute_loss`), primary metric ``test_acc`` (top-1 %, higher is better);
* data: the classification readers of ``nascli.data`` (``DATASETS``), their search and evaluation splits,
  :class:`~nascli.data.BatchStream` (random crop + flip, optional cutout) and ``iterate_eval``;
* a space's head: ``num_classes=<the dataset's classes>``.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from nascli.tasks.base import TASKS, Criterion, Task
from nascli.train.hooks import ClassificationHooks, TrainingHooks


class CrossEntropy(Criterion):
    """``CE(logits, y)`` (float32) and the count of correct top-1 predictions (reported x 100 / n)."""

    score_name = "acc"
    sum_key = "correct"
    score_scale = 100.0

    def loss(self, output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return F.cross_entropy(output, target, reduction=reduction)

    def score_sum(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (output.detach().argmax(1) == target).sum().float()


CROSS_ENTROPY = CrossEntropy()


@TASKS.register("classification")
class ClassificationTask(Task):
    """Module docstring."""

    name = "classification"
    metric = "test_acc"
    metric_title = "test accuracy (%)"

    def dataset_names(self) -> list[str]:
        from nascli.data import DATASETS

        return DATASETS.names()

    def dataset_info(self, dataset_cfg: Any) -> Any:
        from nascli.data import dataset_info

        return dataset_info(dataset_cfg)

    def head_kwargs(self, info: Any) -> dict[str, Any]:
        return {"num_classes": int(info.num_classes)}

    @property
    def criterion(self) -> Criterion:
        return CROSS_ENTROPY

    def search_data(self, dataset_cfg: Any) -> tuple[Any, Any, Any]:
        from nascli.data import search_splits

        return search_splits(dataset_cfg)

    def concat(self, a: Any, b: Any) -> Any:
        from nascli.data import ImageSplit

        return ImageSplit(torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels]), f"{a.name}+{b.name}")

    def search_stream(self, split: Any, info: Any, batch_size: int, *, seed: int, mode: str = "shuffle",
                      cutout: int = 0) -> Any:
        from nascli.data import BatchStream

        return BatchStream(split, info, batch_size, seed=seed, train_aug=True, cutout=cutout, mode=mode)

    def eval_batches(self, split: Any, info: Any, batch_size: int):
        from nascli.data import iterate_eval

        return iterate_eval(split, info, batch_size)

    def eval_data(self, dataset_cfg: Any) -> tuple[Any, Any, Any]:
        from nascli.data import eval_splits

        return eval_splits(dataset_cfg)

    def training(self, protocol: Any, make_stream=None) -> TrainingHooks:
        return ClassificationHooks(protocol.auxiliary_weight, protocol.label_smoothing, make_stream)
