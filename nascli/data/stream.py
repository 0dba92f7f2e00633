"""Device-resident minibatch streams: an endless resumable training stream and ordered evaluation."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from nascli.data.augment import augment_batch, normalize
from nascli.data.base import DatasetInfo, ImageSplit
from nascli.errors import NasError

MODES = ("shuffle", "random")


class BatchStream:
    """Endless minibatches over one :class:`ImageSplit` on its own device.

    ``mode='shuffle'``: passes over a fresh permutation each, ``drop_last=True``; ``mode='random'``:
    every batch drawn uniformly with replacement (NB201's random valid pairing, quark0's
    ``next(iter(valid_queue))``). One ``torch.Generator(seed)`` on the split's device drives the order
    and the augmentation, so :meth:`state_dict` / :meth:`load_state_dict` resume bit-identically.
    """

    def __init__(
        self,
        split: ImageSplit,
        info: DatasetInfo,
        batch_size: int,
        *,
        seed: int,
        train_aug: bool,
        cutout: int = 0,
        mode: str = "shuffle",
    ):
        if mode not in MODES:
            raise NasError(f"unknown batch stream mode {mode!r}; valid choices: {', '.join(MODES)}")
        if batch_size < 1 or batch_size > len(split):
            raise NasError(f"batch size {batch_size} does not fit a split of {len(split)} images")
        self.split, self.info, self.batch_size = split, info, int(batch_size)
        self.train_aug, self.cutout, self.mode, self.seed = train_aug, int(cutout), mode, int(seed)
        self.generator = torch.Generator(device=split.device).manual_seed(self.seed)
        self._perm: torch.Tensor | None = None
        self._pos = 0
        self.passes_done = 0  # completed permutation passes (shuffle mode)
        self.batches_drawn = 0

    def batches_per_pass(self) -> int:
        """Full batches in one pass over the split (the last partial batch is dropped)."""
        return len(self.split) // self.batch_size

    def _indices(self) -> torch.Tensor:
        n, bs = len(self.split), self.batch_size
        if self.mode == "random":
            return torch.randint(0, n, (bs,), generator=self.generator, device=self.split.device)
        if self._perm is None or self._pos + bs > n:
            if self._perm is not None:
                self.passes_done += 1
            self._perm = self._new_permutation(n)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + bs]
        self._pos += bs
        return idx

    def _new_permutation(self, n: int) -> torch.Tensor:
        """The order of the next pass (shuffle mode): a uniform permutation of the ``n`` examples, drawn from the
        stream's generator; consecutive ``batch_size`` slices are the pass's batches."""
        return torch.randperm(n, generator=self.generator, device=self.split.device)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised, augmented float32 images, int64 labels), both on the split's device."""
        idx = self._indices()
        images = self.split.images.index_select(0, idx)
        labels = self.split.labels.index_select(0, idx)
        self.batches_drawn += 1
        x = augment_batch(images, self.info, train=self.train_aug, cutout=self.cutout, generator=self.generator)
        return x, labels

    __next__ = next

    def __iter__(self) -> "BatchStream":
        return self

    def state_dict(self) -> dict[str, Any]:
        """Generator state, current permutation (CPU) and position; enough to resume exactly."""
        return {
            "generator": self.generator.get_state(),
            "perm": None if self._perm is None else self._perm.cpu(),
            "pos": self._pos,
            "passes_done": self.passes_done,
            "batches_drawn": self.batches_drawn,
            "mode": self.mode,
            "batch_size": self.batch_size,
            "num_samples": len(self.split),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` taken from a stream over the same split and batch size."""
        for key, mine in (("mode", self.mode), ("batch_size", self.batch_size), ("num_samples", len(self.split))):
            if state[key] != mine:
                raise NasError(f"batch stream state has {key}={state[key]!r}, this stream has {mine!r}")
        self.generator.set_state(state["generator"].cpu())
        perm = state["perm"]
        self._perm = None if perm is None else perm.to(self.split.device)
        self._pos = int(state["pos"])
        self.passes_done = int(state["passes_done"])
        self.batches_drawn = int(state["batches_drawn"])


def iterate_eval(split: ImageSplit, info: DatasetInfo, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(normalised images, labels) in split order, no augmentation, the last partial batch included."""
    for start in range(0, len(split), batch_size):
        end = start + batch_size
        yield normalize(split.images[start:end], info), split.labels[start:end]
