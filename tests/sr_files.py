"""Tiny real PNG files in the on-disk layouts the super-resolution readers read (nascli.data.sr): DIV2K
as it unzips and EDSR-PyTorch's benchmark folders. LR files, when written, are the bicubic downscaling
of the mod-cropped HR (nascli.data.sr.resample), so a reader that reads them and one that generates them
see the same pairs."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from nascli.data.sr.png import write_png
from nascli.data.sr.resample import downscale_bicubic, mod_crop


def smooth_image(size: tuple[int, int], seed: int) -> torch.Tensor:
    """A deterministic uint8 (3, H, W) picture: coarse random colour blobs bilinearly enlarged plus fine
    noise (so both bicubic and a network have something to recover)."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    coarse = torch.rand((1, 3, max(2, h // 8), max(2, w // 8)), generator=g)
    base = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
    noise = 0.08 * torch.randn((3, h, w), generator=g)
    return (base + noise).clamp(0, 1).mul(255).round().to(torch.uint8)


def _write_pairs(hr_dir: Path, lr_dir: str | None, names: Sequence[str], scales: Sequence[int],
                 size: tuple[int, int], seed: int) -> None:
    for k, name in enumerate(names):
        hr = smooth_image(size, seed + k)
        write_png(hr_dir / f"{name}.png", hr)
        for s in scales if lr_dir is not None else ():
            write_png(hr_dir.parent / lr_dir.format(scale=s) / f"{name}x{s}.png",
                      downscale_bicubic(mod_crop(hr, s).contiguous(), s))


def write_div2k_layout(root: Path, n_train: int = 4, n_valid: int = 2, scales: Sequence[int] = (2,),
                       size: tuple[int, int] = (48, 60), *, lr: bool = True, seed: int = 0) -> Path:
    """``root/DIV2K_train_HR/0001.png ...`` and ``root/DIV2K_valid_HR/0801.png ...`` (HR ``size`` = (H, W)),
    plus ``DIV2K_{train,valid}_LR_bicubic/X{s}/<name>x{s}.png`` for each of ``scales`` when ``lr``."""
    root = Path(root)
    for part, first, n in (("train", 1, n_train), ("valid", 801, n_valid)):
        names = [f"{i:04d}" for i in range(first, first + n)]
        hr_dir = root / f"DIV2K_{part}_HR"
        hr_dir.mkdir(parents=True, exist_ok=True)
        _write_pairs(hr_dir, f"DIV2K_{part}_LR_bicubic/X{{scale}}" if lr else None, names, scales, size,
                     seed + first)
    return root


def write_benchmark_layout(root: Path, name: str = "Set5", names: Sequence[str] = ("baby", "bird", "butterfly"),
                           scales: Sequence[int] = (2,), size: tuple[int, int] = (50, 62), *, lr: bool = True,
                           seed: int = 100) -> Path:
    """``root/benchmark/<name>/HR/<n>.png`` and, when ``lr``, ``root/benchmark/<name>/LR_bicubic/X{s}/<n>x{s}.png``
    (EDSR-PyTorch's layout). The default HR size (50, 62) is not a multiple of 3 or 4, to exercise mod-crop.
    For ``dataset=sr_benchmark`` training data, also write ``write_div2k_layout(root / "DIV2K")``."""
    hr_dir = Path(root) / "benchmark" / name / "HR"
    hr_dir.mkdir(parents=True, exist_ok=True)
    _write_pairs(hr_dir, "LR_bicubic/X{scale}" if lr else None, names, scales, size, seed)
    return Path(root)
