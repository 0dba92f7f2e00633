"""Bicubic resampling: the LR images of every reader (``downscale_bicubic``) and the bicubic baseline
(``upscale_bicubic``), plus the mod-crop that makes an HR image divisible by the scale.

Both directions use ``torch.nn.functional.interpolate(mode="bicubic", antialias=True,
align_corners=False)``: Keys' cubic convolution with a = -0.5 (the kernel MATLAB's ``imresize`` and
Pillow's ``BICUBIC`` use; torch's plain ``bicubic`` uses a = -0.75), stretched by the factor when
downscaling so it low-passes like ``imresize``'s antialiasing. Known difference from MATLAB ``imresize``:
at the image border torch (like Pillow) drops the taps that fall outside the image and renormalises the
rest, where MATLAB mirrors the image (symmetric padding); results also differ by uint8 rounding. Measured
against a NumPy transcription of ``imresize``'s documented rule (not MATLAB itself) on four scikit-image
photos at x2/x3/x4: pixels more than 3 px from the border differ by at most 1 grey level (rounding), the
outer pixels by up to 15 levels; 0.5-1.8 % of LR pixels differ at all (docs/SR_DATA.md). So LR images
generated here are close to, not equal to, the official ``_LR_bicubic`` files.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def mod_crop(image: torch.Tensor, scale: int) -> torch.Tensor:
    """The top-left (C, H - H mod s, W - W mod s) part of ``image`` (the SR literature's mod-crop)."""
    h, w = image.shape[-2:]
    return image[..., : h - h % scale, : w - w % scale]


def _bicubic(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)


def downscale_bicubic(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """uint8 (C, H, W) with H, W multiples of ``scale`` -> uint8 (C, H/s, W/s), rounded half to even."""
    c, h, w = hr.shape
    if h % scale or w % scale:
        raise ValueError(f"HR image {h}x{w} is not a multiple of scale {scale}; mod_crop it first")
    lr = _bicubic(hr.float().unsqueeze(0), (h // scale, w // scale))[0]
    return lr.round_().clamp_(0, 255).to(torch.uint8)


def upscale_bicubic(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The bicubic baseline: float (B, C, h, w) -> float32 (B, C, h * s, w * s), same units, not clamped."""
    h, w = lr.shape[-2:]
    return _bicubic(lr.float(), (h * scale, w * scale))
