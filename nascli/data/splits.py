"""Split rules (``dataset.split``) and the public entry points that apply them.

``nb201`` (the default on cifar10, cifar100 and imagenet16_120, for every space) uses NAS-Bench-201's
own index files (:mod:`nascli.data.official_splits`), so a search sees exactly the images NB201's did:

- cifar10: search weights on the 25,000 ``train`` and the architecture on the 25,000 ``valid`` images
  of ``cifar-split.txt`` (``nb201-train`` / ``nb201-valid``); ``nas evaluate``: 50k train / 10k test.
- cifar100 / imagenet16_120: search weights on the whole train set, the architecture on ``xvalid``
  (5,000 / 3,000 images, half of the test / val set). ``nas evaluate`` trains on the whole train set and
  reports test accuracy on ``xtest`` (the other half), never on an image the search used.

``balanced`` (the only rule for fashion_mnist and synthetic; on cifar100 the DARTS-/R-DARTS protocol,
search on a split of the training set): the train set is cut class-balanced by ``dataset.train_portion``
with a FIXED seed (:data:`SPLIT_SEED`, independent of the run seed) into ``balanced-train`` (weights) and
``balanced-valid`` (architecture); ``nas evaluate`` reports on the whole test set.

A split whose size is not the official one (a partial CIFAR-10) is reported in one warning line on
stderr; an index file cannot apply to it, so ``nb201`` then falls back to the ``balanced`` rule (said in
the same line). Results name the splits they used (:attr:`ImageSplit.name`) and count their images.
"""
from __future__ import annotations

import sys
from typing import Any

import torch

from nascli.data.base import DATASETS, DatasetInfo, DatasetReader, ImageSplit, cfg_get
from nascli.data.official_splits import load_index_file
from nascli.data.resize import resize_info, resize_split
from nascli.errors import NasError

SPLIT_SEED = 20200225  # any fixed constant; never derived from the run seed
SPLIT_RULES = ("balanced", "nb201")


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


def warn(message: str) -> None:
    """One warning line on stderr (the data layer's only output)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def split_rule(reader: DatasetReader) -> str:
    """``dataset.split`` of ``reader.cfg``: ``nb201`` where NB201 has an index file for the dataset
    (and by default there), else ``balanced``; anything else is a one-line error."""
    rule = str(cfg_get(reader.cfg, "split", "nb201" if reader.nb201_split else "balanced"))
    if rule not in SPLIT_RULES:
        raise NasError(f"unknown dataset.split {rule!r}; valid choices: {', '.join(SPLIT_RULES)}")
    if rule == "nb201" and reader.nb201_split is None:
        raise NasError(f"dataset.split=nb201: NAS-Bench-201 has no split file for {reader.name}; "
                       "use dataset.split=balanced")
    return rule


def _named(split: ImageSplit, name: str) -> ImageSplit:
    return ImageSplit(split.images, split.labels, name)


def _sizes(reader: DatasetReader, train: ImageSplit, test: ImageSplit | None = None) -> str | None:
    """``"has 40 train images, not the official 50,000"`` when a loaded split is not its official size."""
    if reader.official_sizes is None:
        return None
    pairs = [("train", len(train), reader.official_sizes[0])]
    if test is not None:
        pairs.append(("test", len(test), reader.official_sizes[1]))
    if all(n == official for _, n, official in pairs):
        return None
    have = " and ".join(f"{n:,} {what}" for what, n, _ in pairs)
    official = " and ".join(f"{official:,}" for _, _, official in pairs)
    return f"{reader.name} has {have} images, not the official {official}"


def _warn_partial(reader: DatasetReader, train: ImageSplit, test: ImageSplit | None = None, then: str = "") -> None:
    problem = _sizes(reader, train, test)
    if problem:
        warn(f"{problem} (a partial dataset){then}")


def _balanced(reader: DatasetReader, train: ImageSplit) -> tuple[ImageSplit, ImageSplit]:
    portion = float(cfg_get(reader.cfg, "train_portion", 0.5))
    first, second = balanced_partition(train.labels, portion, seed=SPLIT_SEED)
    return train.subset(first, "balanced-train"), train.subset(second, "balanced-valid")


def _part_name(indexes: str, part: str) -> str:
    """NB201's names: ``xvalid``/``xtest`` for halves of the test set, ``nb201-<part>`` for train halves."""
    return part if indexes == "test" else f"nb201-{part}"


def search_rule(reader: DatasetReader) -> tuple[ImageSplit, ImageSplit]:
    """(weights split, architecture split) of ``reader`` by its ``dataset.split`` (module doc)."""
    rule = split_rule(reader)
    train = _named(reader.train(), "train")
    spec = reader.nb201_split
    if rule == "balanced" or spec is None:
        _warn_partial(reader, train)
        return _balanced(reader, train)
    portion = float(cfg_get(reader.cfg, "train_portion", 0.5))
    if portion != 0.5:
        raise NasError(f"dataset.train_portion={portion:g} applies to dataset.split=balanced only; NB201's "
                       f"{reader.name} search split is fixed by {spec.file} (pass dataset.split=balanced)")
    index = load_index_file(spec.file)
    test = _named(reader.test(), "test") if spec.indexes == "test" else None
    indexed = test if test is not None else train
    if len(indexed) != index.total:
        _warn_partial(reader, train, test, then=f": NB201's {spec.file} cannot apply, searching on "
                      "dataset.split=balanced (class-balanced halves of the train images) instead")
        return _balanced(reader, train)
    _warn_partial(reader, train, test)
    weights = train if spec.weights is None else train.subset(index.part(spec.weights),
                                                              _part_name(spec.indexes, spec.weights))
    return weights, indexed.subset(index.part(spec.arch), _part_name(spec.indexes, spec.arch))


def eval_rule(reader: DatasetReader) -> tuple[ImageSplit, ImageSplit]:
    """(train, test) of ``reader`` by its ``dataset.split``: under ``nb201``, a dataset whose search used
    ``xvalid`` reports on ``xtest``; otherwise the whole official test split (module doc)."""
    rule = split_rule(reader)
    train, test = _named(reader.train(), "train"), _named(reader.test(), "test")
    spec = reader.nb201_split
    if rule == "balanced" or spec is None or spec.held_out is None:
        _warn_partial(reader, train, test)
        return train, test
    index = load_index_file(spec.file)
    if len(test) != index.total:
        _warn_partial(reader, train, test, then=f": NB201's {spec.file} cannot apply, reporting on all "
                      "test images as dataset.split=balanced does")
        return train, test
    _warn_partial(reader, train, test)
    return train, test.subset(index.part(spec.held_out), _part_name(spec.indexes, spec.held_out))


def _reader(cfg: Any) -> DatasetReader:
    return DATASETS.get(str(cfg.name))(cfg)


def _resize(cfg: Any) -> int | None:
    """``dataset.resize``: the side length every image is resampled to (:mod:`nascli.data.resize`), or None."""
    size = cfg_get(cfg, "resize", None)
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise NasError(f"dataset.resize must be a positive integer (pixels) or null, got {size!r}")
    return int(size)


def dataset_info(cfg: Any) -> DatasetInfo:
    """Metadata for ``cfg.name`` without reading any data file (``image_size`` after ``dataset.resize``)."""
    return resize_info(_reader(cfg).info(), _resize(cfg))


def search_splits(cfg: Any) -> tuple[ImageSplit, ImageSplit, DatasetInfo]:
    """(weights split, architecture split, info) by the rule of ``cfg.split`` (module doc), resampled to
    ``dataset.resize`` pixels when set."""
    reader, size = _reader(cfg), _resize(cfg)
    weights, arch = reader.search_splits()
    return resize_split(weights, size), resize_split(arch, size), resize_info(reader.info(), size)


def eval_splits(cfg: Any) -> tuple[ImageSplit, ImageSplit, DatasetInfo]:
    """(train, test, info) for training a discrete network from scratch; ``test.name`` says which test
    images (``test`` or ``xtest``, module doc). Resampled to ``dataset.resize`` pixels when set."""
    reader, size = _reader(cfg), _resize(cfg)
    train, test = reader.eval_splits()
    return resize_split(train, size), resize_split(test, size), resize_info(reader.info(), size)
