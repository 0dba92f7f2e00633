"""Super-resolution data types: static facts about a dataset and a device-resident list of LR/HR pairs."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SRInfo:
    """What a super-resolution dataset is, known without reading a file: its name, the colour channels of
    its images and the upscaling factor ``scale`` (HR side = ``scale`` x LR side)."""

    name: str
    channels: int
    scale: int


@dataclass
class SRImages:
    """Pairs of whole images held as uint8 tensors on one device.

    ``lr[i]`` is (C, h, w) and ``hr[i]`` is (C, h * s, w * s) for one factor ``s`` shared by every pair;
    sizes may differ between pairs. ``name`` says which images these are (``train``, ``valid``, ``Set5``,
    ``search-weights``, ...). Readers may return cached instances: treat the tensors as read-only.
    """

    lr: list[torch.Tensor]
    hr: list[torch.Tensor]
    name: str = ""

    def __post_init__(self) -> None:
        self.lr, self.hr = list(self.lr), list(self.hr)
        if len(self.lr) != len(self.hr):
            raise ValueError(f"{self.name}: {len(self.lr)} LR images but {len(self.hr)} HR images")
        factors = set()
        for i, (lr, hr) in enumerate(zip(self.lr, self.hr)):
            if lr.dtype != torch.uint8 or hr.dtype != torch.uint8 or lr.dim() != 3 or hr.dim() != 3:
                raise ValueError(f"{self.name}[{i}]: LR/HR must be uint8 (C, H, W), got {lr.dtype} "
                                 f"{tuple(lr.shape)} / {hr.dtype} {tuple(hr.shape)}")
            if lr.device != hr.device or lr.device != self.lr[0].device:
                raise ValueError(f"{self.name}[{i}]: all images must be on one device")
            c, h, w = lr.shape
            s = hr.shape[1] // h if h else 0
            if s < 1 or tuple(hr.shape) != (c, h * s, w * s):
                raise ValueError(f"{self.name}[{i}]: HR {tuple(hr.shape)} is not an integer upscaling of "
                                 f"LR {tuple(lr.shape)}")
            factors.add(s)
        if len(factors) > 1:
            raise ValueError(f"{self.name}: pairs mix upscaling factors {sorted(factors)}")

    def __len__(self) -> int:
        return len(self.lr)

    @property
    def scale(self) -> int:
        """The upscaling factor of every pair (HR side / LR side)."""
        return self.hr[0].shape[1] // self.lr[0].shape[1]

    @property
    def channels(self) -> int:
        return int(self.lr[0].shape[0])

    @property
    def device(self) -> torch.device:
        return self.lr[0].device if self.lr else torch.device("cpu")

    def to(self, device: torch.device | str) -> "SRImages":
        """The same pairs on ``device`` (no copy of a tensor already there)."""
        return SRImages([t.to(device) for t in self.lr], [t.to(device) for t in self.hr], self.name)

    def subset(self, indices: Sequence[int] | torch.Tensor, name: str | None = None) -> "SRImages":
        """The pairs ``indices`` (in that order, sharing the tensors), called ``name``."""
        idx = [int(i) for i in (indices.tolist() if isinstance(indices, torch.Tensor) else indices)]
        return SRImages([self.lr[i] for i in idx], [self.hr[i] for i in idx], self.name if name is None else name)
