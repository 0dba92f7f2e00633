"""Split conventions (NB201 search, METHODS.md 0.4) and the public entry points that apply them.

NB201 ships its CIFAR-10 25k/25k split as ``cifar-split.txt`` and its CIFAR-100 / ImageNet16-120
xvalid halves as ``cifar100-test-split.txt`` / ``imagenet-16-120-test-split.txt``. Those files are not
available here, so every split is rebuilt as a deterministic, class-balanced partition drawn from a
FIXED seed (:data:`SPLIT_SEED`) that is independent of the run seed: all runs and seeds see the same
split, but it is not index-for-index NB201's.
"""
from __future__ import annotations

from typing import Any

import torch

from nascli.data.base import DATASETS, DatasetInfo, DatasetReader, ImageSplit
from nascli.errors import NasError

SPLIT_SEED = 20200225  # any fixed constant; never derived from the run seed


def balanced_partition(labels: torch.Tensor, portion: float, *, seed: int = SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut indices ``0..N-1`` into (first, second) with ``round(portion * N)`` in ``first``.

    Each class contributes to ``first`` as close to ``portion`` of its members as the total allows
    (exactly ``portion`` when every class count times ``portion`` is whole). Members are picked by a
    permutation from ``seed``; both index tensors are returned sorted ascending (int64, CPU).
    """
    if not 0.0 < portion < 1.0:
        raise NasError(f"dataset.train_portion must lie strictly between 0 and 1, got {portion}")
    labels = labels.detach().cpu().to(torch.int64)
    n = labels.numel()
    n_first = int(round(portion * n))
    if n_first == 0 or n_first == n:
        raise NasError(f"dataset.train_portion={portion} leaves an empty split of {n} images")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    shuffled = labels[perm]
    counts = torch.bincount(shuffled)
    starts = torch.cumsum(counts, 0) - counts
    by_class = torch.argsort(shuffled, stable=True)  # grouped by class, permutation order inside
    rank = torch.empty(n, dtype=torch.int64)
    rank[by_class] = torch.arange(n) - starts[shuffled[by_class]]
    key = (rank.double() + 0.5) / counts[shuffled].double()  # position of each member inside its class, in (0, 1)
    order = torch.argsort(key, stable=True)
    first = perm[order[:n_first]].sort().values
    second = perm[order[n_first:]].sort().values
    return first, second


def xvalid_half(split: ImageSplit) -> ImageSplit:
    """The fixed class-balanced half of a test/val split that NB201 calls ``xvalid``."""
    first, _ = balanced_partition(split.labels, 0.5, seed=SPLIT_SEED)
    return split.subset(first)


def _reader(cfg: Any) -> DatasetReader:
    return DATASETS.get(str(cfg.name))(cfg)


def dataset_info(cfg: Any) -> DatasetInfo:
    """Metadata for ``cfg.name`` without reading any data file."""
    return _reader(cfg).info()


def search_splits(cfg: Any) -> tuple[ImageSplit, ImageSplit, DatasetInfo]:
    """(weights split, architecture split, info) following the NB201 search conventions:

    cifar10 / fashion_mnist / synthetic: the train split cut class-balanced by ``cfg.train_portion``
    (0.5 gives NB201's 25k/25k for CIFAR-10); cifar100: all 50k train / xvalid = fixed 5k half of test;
    imagenet16_120: full train / xvalid = fixed 3k half of the 6k val set.
    """
    reader = _reader(cfg)
    weights, arch = reader.search_splits()
    return weights, arch, reader.info()


def eval_splits(cfg: Any) -> tuple[ImageSplit, ImageSplit, DatasetInfo]:
    """(train, test, info) for training a discrete network from scratch on the official splits."""
    reader = _reader(cfg)
    train, test = reader.eval_splits()
    return train, test, reader.info()
