"""The super-resolution reader interface, its registry and its split rules.

``search_splits``: the training pairs are cut into (weights part, architecture part) by a permutation of
the pair indices from ``torch.Generator().manual_seed(dataset.seed)``; the first
``round(dataset.train_portion * N)`` permuted indices (sorted) form ``search-weights``, the rest
``search-arch``. Splitting is by pair, so no image (or tile) is in both parts. ``eval_splits``: the
whole training pairs and the reader's test pairs.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from nascli.data.base import cfg_get
from nascli.data.sr.images import SRImages, SRInfo
from nascli.errors import NasError
from nascli.registry import Registry

SCALES = (2, 3, 4)
DEFAULT_SPLIT_SEED = 0


def check_scale(scale: Any) -> int:
    """``scale`` as an int in :data:`SCALES`, else one line naming it and the valid choices."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in SCALES:
        raise NasError(f"unknown super-resolution scale {scale!r}; valid choices: {', '.join(map(str, SCALES))}")
    return int(scale)


def split_indices(n: int, portion: float, seed: int) -> tuple[list[int], list[int]]:
    """(first, second) index lists of ``0..n-1`` by the rule of the module doc, each ascending."""
    if not 0.0 < portion < 1.0:
        raise NasError(f"dataset.train_portion must lie strictly between 0 and 1, got {portion}")
    n_first = int(round(portion * n))
    if n_first == 0 or n_first == n:
        raise NasError(f"dataset.train_portion={portion} leaves an empty search split of {n} training images")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return sorted(perm[:n_first].tolist()), sorted(perm[n_first:].tolist())


class SRDatasetReader(ABC):
    """Reads LR/HR pairs for one upscaling factor. Registered in :data:`SR_DATASETS` under ``name``.

    ``info`` touches no file; ``train``/``test`` return CPU pairs (cached in-process); missing files are a
    one-line :class:`~nascli.errors.DataMissingError` naming what to place where.
    """

    name: ClassVar[str]
    channels: ClassVar[int] = 3

    def __init__(self, cfg: Any, scale: int):
        self.cfg = cfg
        self.scale = check_scale(scale)

    def info(self) -> SRInfo:
        return SRInfo(self.name, self.channels, self.scale)

    @abstractmethod
    def train(self) -> SRImages:
        """The training pairs."""

    @abstractmethod
    def test(self) -> SRImages:
        """The pairs the test PSNR/SSIM are reported on."""

    def search_splits(self) -> tuple[SRImages, SRImages]:
        """(weights part, architecture part) of :meth:`train` (module doc)."""
        train = self.train()
        portion = float(cfg_get(self.cfg, "train_portion", 0.5))
        first, second = split_indices(len(train), portion, int(cfg_get(self.cfg, "seed", DEFAULT_SPLIT_SEED)))
        return train.subset(first, "search-weights"), train.subset(second, "search-arch")

    def eval_splits(self) -> tuple[SRImages, SRImages]:
        """(train, test) for training a discrete network from scratch."""
        return self.train(), self.test()


SR_DATASETS: Registry[type[SRDatasetReader]] = Registry("super-resolution dataset")
