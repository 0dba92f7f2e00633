"""Core data types: dataset metadata, a device-resident image split, and the reader interface."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from nascli.data.official_splits import Nb201Split
from nascli.registry import Registry


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset, known without reading any file.

    ``mean``/``std`` are per-channel statistics in [0, 1] units used for normalisation;
    ``crop_padding`` is the zero padding of the training random crop.
    """

    name: str
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int

    def __post_init__(self) -> None:
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"{self.name}: mean/std need {self.channels} entries, got {self.mean}, {self.std}")


@dataclass
class ImageSplit:
    """A whole split held as tensors: ``images`` uint8 (N, C, H, W) contiguous, ``labels`` int64 (N,).

    ``name`` says which images these are (``train``, ``test``, NB201's ``xvalid``/``xtest``/``nb201-train``/
    ``nb201-valid``, or ``balanced-train``/``balanced-valid``; see :mod:`nascli.data.splits`); run results
    report it. Splits returned by readers may share memory with the in-process cache: treat them as read-only.
    """

    images: torch.Tensor
    labels: torch.Tensor
    name: str = ""

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise ValueError(f"labels must be int64 (N,), got {self.labels.dtype} {tuple(self.labels.shape)}")
        if self.images.shape[0] != self.labels.shape[0]:
            raise ValueError(f"{self.images.shape[0]} images but {self.labels.shape[0]} labels")
        if self.images.device != self.labels.device:
            raise ValueError("images and labels must be on the same device")
        if not self.images.is_contiguous():
            self.images = self.images.contiguous()

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> "ImageSplit":
        """The same split as whole uint8/int64 tensors on ``device`` (no copy when already there)."""
        return ImageSplit(self.images.to(device), self.labels.to(device), self.name)

    def subset(self, indices: torch.Tensor, name: str | None = None) -> "ImageSplit":
        """A new split holding the rows ``indices`` (a copy, in the given order), called ``name``."""
        indices = indices.to(self.images.device)
        return ImageSplit(self.images.index_select(0, indices), self.labels.index_select(0, indices),
                          self.name if name is None else name)


def cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    """``cfg[key]`` for an omegaconf node or a plain mapping, ``default`` when absent or null."""
    value = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
    return default if value is None else value


class DatasetReader(ABC):
    """Reads one dataset from its on-disk format and applies its split conventions.

    Subclasses are registered in :data:`DATASETS` under their config name. ``info`` must not touch
    files; ``train``/``test`` load (cached in-process) whole splits on the CPU. ``official_sizes`` is the
    (train, test) image count of the full release (None: no official size); ``nb201_split`` names
    NB201's index file for the dataset and how the search uses it (None: NB201 has none).
    """

    name: ClassVar[str]
    official_sizes: ClassVar[tuple[int, int] | None] = None
    nb201_split: ClassVar[Nb201Split | None] = None

    def __init__(self, cfg: Any):
        self.cfg = cfg

    @abstractmethod
    def info(self) -> DatasetInfo:
        """Static metadata (no file access)."""

    @abstractmethod
    def train(self) -> ImageSplit:
        """The official training split."""

    @abstractmethod
    def test(self) -> ImageSplit:
        """The official test (or validation) split."""

    def search_splits(self) -> tuple[ImageSplit, ImageSplit]:
        """(weights split, architecture split) by the rule of ``dataset.split`` (:mod:`nascli.data.splits`)."""
        from nascli.data.splits import search_rule

        return search_rule(self)

    def eval_splits(self) -> tuple[ImageSplit, ImageSplit]:
        """(train, test) for training a discrete network from scratch (:mod:`nascli.data.splits`)."""
        from nascli.data.splits import eval_rule

        return eval_rule(self)


DATASETS: Registry[type[DatasetReader]] = Registry("dataset")
