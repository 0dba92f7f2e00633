"""The task seam: what a search or an evaluation learns, and how it is scored.

A :class:`Task` owns everything that differs between learning problems (image classification,
super-resolution, ...): the training loss and the per-batch score the search logs (its
:class:`Criterion`), the metrics of a trained network and which one is primary, the dataset registry it
reads, the search streams and the evaluation batches, and the keyword arguments that size a space's
head (``num_classes=`` for classification, ``scale=`` for super-resolution). The commands and the search
layer ask the task through this interface; none of them names a task.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import nn

from nascli.registry import Registry
from nascli.train.hooks import TrainingHooks

TASKS: Registry[type["Task"]] = Registry("task")
#: the task of a config without a ``task`` node (runs written before the task axis existed)
DEFAULT_TASK = "classification"


class Criterion(ABC):
    """The per-batch objective of a search: ``loss`` (float32 scalar, mean over the batch) and a batch
    score kept as a device sum (no host sync), reported as ``<prefix>_<score_name>`` =
    ``score_scale * sum / examples``."""

    score_name: ClassVar[str]
    #: the key under which the score's running sum is kept in a checkpoint (``<prefix>_<sum_key>``)
    sum_key: ClassVar[str]
    score_scale: ClassVar[float] = 1.0

    @abstractmethod
    def loss(self, output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """The training loss of ``output`` against ``target`` (``reduction``: ``mean`` or ``sum`` over the
        batch's examples)."""

    @abstractmethod
    def score_sum(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The batch's score summed over its examples, as a device tensor."""


class Task(ABC):
    """One learning problem (module docstring). ``cfg`` is the composed ``task`` node (or None)."""

    name: ClassVar[str]
    #: the result key of the primary metric of a trained network, and whether higher is better
    metric: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    #: the metric's name in a report's heading
    metric_title: ClassVar[str]
    #: the selection criteria that can derive this task's searches (None: every registered one), and why
    selections: ClassVar[tuple[str, ...] | None] = None
    selections_why: ClassVar[str] = ""

    def __init__(self, cfg: Any = None):
        self.cfg = cfg

    # ------------------------------------------------------------------ datasets
    @abstractmethod
    def dataset_names(self) -> list[str]:
        """The names of the datasets this task reads (its dataset registry)."""

    @abstractmethod
    def dataset_info(self, dataset_cfg: Any) -> Any:
        """The dataset's static facts, without reading a file (``name`` and ``channels`` at least)."""

    @abstractmethod
    def head_kwargs(self, info: Any) -> dict[str, Any]:
        """Keyword arguments that size a space's head for this task (``build_supernet``/``build_network``)."""

    @property
    @abstractmethod
    def criterion(self) -> Criterion:
        """The search's per-batch loss and score."""

    # ------------------------------------------------------------------ search data
    @abstractmethod
    def search_data(self, dataset_cfg: Any) -> tuple[Any, Any, Any]:
        """(weights split, architecture split, info) of a search."""

    def concat(self, a: Any, b: Any) -> Any:
        """Both splits as one (``optimizer.data=all``)."""
        raise NotImplementedError(f"task {self.name} cannot join its splits")

    @abstractmethod
    def search_stream(self, split: Any, info: Any, batch_size: int, *, seed: int, mode: str = "shuffle",
                      cutout: int = 0) -> Any:
        """An endless resumable training stream (``next()``, ``batches_per_pass()``, ``state_dict()``)."""

    @abstractmethod
    def eval_batches(self, split: Any, info: Any, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Fixed, unaugmented batches of ``split`` in order (selection criteria, evaluation)."""

    def input_size(self, info: Any) -> int:
        """The side of the square inputs a network trains on (``SearchSpace.input_size_problem`` checks it)."""
        return int(info.image_size)

    def input_shape(self, info: Any) -> tuple[int, ...]:
        """The input at which a network's multiply-adds are counted."""
        return (1, info.channels, info.image_size, info.image_size)

    def flops_input(self, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> Any:
        """The network input of ``shape`` at which multiply-adds are counted (zeros images by default)."""
        return torch.zeros(shape, device=device, dtype=dtype)

    def cost_fields(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """Fields that say at which size ``flops`` was counted (none for classification: the dataset's size)."""
        return {}

    # ------------------------------------------------------------------ training a discrete network
    @abstractmethod
    def eval_data(self, dataset_cfg: Any) -> tuple[Any, Any, Any]:
        """(train split, test split, info) for training a discrete network from scratch."""

    @abstractmethod
    def training(self, protocol: Any, make_stream: Any = None) -> TrainingHooks:
        """What the plain training loop needs from the task under ``protocol``; ``make_stream`` replaces the
        task's training stream factory where the task allows it (DAAS policy augmentation)."""

    def artifacts(self, info: Any) -> dict[str, Any]:
        """JSON files a run of this task writes beside its arch.json (file name -> object): what a later command
        needs to read the run's outputs (speech: the vocabulary). None for classification."""
        return {}

    def result_fields(self, model: nn.Module, test_split: Any, info: Any, device: torch.device) -> dict[str, Any]:
        """Extra fields of an evaluation's result (e.g. a baseline on the same test images)."""
        return {}

    # ------------------------------------------------------------------ a task with loops of its own
    def driver(self) -> Any:
        """None (the supervised search engine and training loop serve the task), or an object that runs the
        task's own loops: ``search(cfg, run, composition) -> result``, ``evaluate(cfg) -> result`` and
        ``load_search(search_cfg, state, device) -> (setup with .space and .selection_context(), epoch)`` for
        ``nas derive`` (reinforcement learning: an agent learns from an environment, not from batches)."""
        return None


class ReaderTask(Task):
    """A task whose datasets are reader objects from one registry (super-resolution, speech): a reader is built
    from the dataset node and the task's options, and answers ``info()`` and ``search_splits()`` (weights
    split, architecture split)."""

    @abstractmethod
    def readers(self) -> Registry:
        """The registry of this task's dataset readers (name -> reader class)."""

    @abstractmethod
    def reader(self, dataset_cfg: Any) -> Any:
        """The reader of ``dataset_cfg`` under this task's options (``readers().get(name)(dataset_cfg, ...)``)."""

    def dataset_names(self) -> list[str]:
        return self.readers().names()

    def dataset_info(self, dataset_cfg: Any) -> Any:
        return self.reader(dataset_cfg).info()

    def search_data(self, dataset_cfg: Any) -> tuple[Any, Any, Any]:
        reader = self.reader(dataset_cfg)
        weights, arch = reader.search_splits()
        return weights, arch, reader.info()


def task_of(cfg: Any) -> Task:
    """The task of a composed config (its ``task`` node; classification when the config has none)."""
    from nascli.tasks import load_all

    load_all()
    node = cfg.get("task") if hasattr(cfg, "get") else None
    name = str(node.get("name", DEFAULT_TASK)) if node is not None else DEFAULT_TASK
    return TASKS.get(name)(node)


def task_names() -> list[str]:
    from nascli.tasks import load_all

    load_all()
    return TASKS.names()

