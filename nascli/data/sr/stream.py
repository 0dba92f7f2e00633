"""Device-resident SR minibatches: an endless resumable stream of random LR/HR patch pairs, and whole
images in order for evaluation.

Patch rule (EDSR-PyTorch's ``get_patch``/``augment``): for pair i with LR (C, h, w), a top-left corner
(y, x) is uniform over 0..h-p, 0..w-p; the LR patch is ``lr[:, y:y+p, x:x+p]`` and the HR patch the same
region at scale s, ``hr[:, s*y:s*(y+p), s*x:s*(x+p)]``. With ``augment``, both are flipped left-right with
probability 1/2 and then rotated by k*90 degrees, k uniform in 0..3 (the 8 symmetries of the square,
each with probability 1/8). Image order: ``shuffle`` walks an endless chain of random permutations of the
pairs (a batch may cross from one permutation into the next, so a batch larger than the split repeats
pairs with other crops); ``random`` draws every pair uniformly with replacement.

Every random number comes from one CPU ``torch.Generator(seed)`` (no host-device sync per step), and the
crops and flips run on the images' device; :meth:`SRPatchStream.state_dict` holds that generator, the
current permutation and the position, so a resumed stream continues bit-identically.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from nascli.data.sr.images import SRImages
from nascli.data.stream import MODES
from nascli.errors import NasError


class SRPatchStream:
    """Endless (LR, HR) patch batches over one :class:`SRImages` on its own device (module doc)."""

    def __init__(self, images: SRImages, scale: int, patch_size: int, batch_size: int, *, seed: int,
                 augment: bool = True, mode: str = "shuffle"):
        if mode not in MODES:
            raise NasError(f"unknown patch stream mode {mode!r}; valid choices: {', '.join(MODES)}")
        if len(images) == 0:
            raise NasError(f"{images.name or 'SR'} split has no images to draw patches from")
        if images.scale != scale:
            raise NasError(f"{images.name} pairs are x{images.scale}, the stream was asked for x{scale}")
        if patch_size < 1 or batch_size < 1:
            raise NasError(f"patch size {patch_size} and batch size {batch_size} must be positive")
        smallest = min(images.lr, key=lambda t: min(t.shape[1:]))
        if min(smallest.shape[1:]) < patch_size:
            raise NasError(f"LR patch size {patch_size} does not fit the smallest {images.name} LR image "
                           f"({smallest.shape[2]}x{smallest.shape[1]} pixels); lower the patch size (task.patch_size)")
        self.images, self.scale, self.patch_size, self.batch_size = images, int(scale), int(patch_size), int(batch_size)
        self.augment, self.mode, self.seed = bool(augment), mode, int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self._room = torch.tensor([[t.shape[1] - patch_size + 1, t.shape[2] - patch_size + 1] for t in images.lr])
        self._perm: torch.Tensor | None = None
        self._pos = 0
        self.passes_done = 0
        self.batches_drawn = 0

    def batches_per_pass(self) -> int:
        """Batches in one pass over the pairs: ``max(1, N // batch_size)`` (one patch per pair per pass)."""
        return max(1, len(self.images) // self.batch_size)

    def _indices(self) -> torch.Tensor:
        n, bs = len(self.images), self.batch_size
        if self.mode == "random":
            return torch.randint(0, n, (bs,), generator=self.generator)
        parts, need = [], bs
        while need:
            if self._perm is None or self._pos == n:
                if self._perm is not None:
                    self.passes_done += 1
                self._perm = torch.randperm(n, generator=self.generator)
                self._pos = 0
            take = min(need, n - self._pos)
            parts.append(self._perm[self._pos:self._pos + take])
            self._pos += take
            need -= take
        return torch.cat(parts)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR float32 (B, C, p, p), HR float32 (B, C, p*s, p*s)), both in [0, 1] on the images' device."""
        idx = self._indices()
        corner = (torch.rand((len(idx), 2), generator=self.generator) * self._room[idx]).long()
        flips = torch.randint(0, 2, (len(idx),), generator=self.generator)
        turns = torch.randint(0, 4, (len(idx),), generator=self.generator)
        p, s = self.patch_size, self.scale
        lrs, hrs = [], []
        for i, (y, x), flip, k in zip(idx.tolist(), corner.tolist(), flips.tolist(), turns.tolist()):
            lr = self.images.lr[i][:, y:y + p, x:x + p]
            hr = self.images.hr[i][:, s * y:s * (y + p), s * x:s * (x + p)]
            if self.augment:
                lr, hr = _dihedral(lr, flip, k), _dihedral(hr, flip, k)
            lrs.append(lr)
            hrs.append(hr)
        self.batches_drawn += 1
        return torch.stack(lrs).float().div_(255), torch.stack(hrs).float().div_(255)

    __next__ = next

    def __iter__(self) -> "SRPatchStream":
        return self

    def state_dict(self) -> dict[str, Any]:
        """Generator state, current permutation and position (tensors and plain types only)."""
        return {
            "generator": self.generator.get_state(),
            "perm": None if self._perm is None else self._perm.clone(),
            "pos": self._pos,
            "passes_done": self.passes_done,
            "batches_drawn": self.batches_drawn,
            "mode": self.mode,
            "batch_size": self.batch_size,
            "patch_size": self.patch_size,
            "num_samples": len(self.images),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` of a stream over the same pairs, batch and patch size."""
        for key, mine in (("mode", self.mode), ("batch_size", self.batch_size), ("patch_size", self.patch_size),
                          ("num_samples", len(self.images))):
            if state[key] != mine:
                raise NasError(f"patch stream state has {key}={state[key]!r}, this stream has {mine!r}")
        self.generator.set_state(state["generator"].cpu())
        self._perm = None if state["perm"] is None else state["perm"].cpu().clone()
        self._pos = int(state["pos"])
        self.passes_done = int(state["passes_done"])
        self.batches_drawn = int(state["batches_drawn"])


def _dihedral(patch: torch.Tensor, flip: int, turns: int) -> torch.Tensor:
    """``patch`` (C, H, W) flipped left-right when ``flip``, then rotated by ``turns`` x 90 degrees."""
    if flip:
        patch = patch.flip(-1)
    return torch.rot90(patch, turns, dims=(-2, -1)) if turns else patch


def iterate_sr_eval(images: SRImages, max_images: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Whole pairs in order, batch of one: (LR float32 (1, C, h, w), HR float32 (1, C, h*s, w*s)) in [0, 1]
    on the images' device; only the first ``max_images`` when given."""
    count = len(images) if max_images is None else min(len(images), int(max_images))
    for i in range(count):
        yield images.lr[i].unsqueeze(0).float().div_(255), images.hr[i].unsqueeze(0).float().div_(255)
