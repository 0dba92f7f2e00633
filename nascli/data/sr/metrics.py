"""PSNR and SSIM on the luma (Y) channel with a border crop, the convention of EDSR-PyTorch's
``calc_psnr`` and of the MATLAB scripts SR papers report with, computed by scikit-image.

Rule, for SR output ``sr`` and ground truth ``hr`` (1, C, H, W) in [0, 1]:

1. ``sr`` is clamped to [0, 1] and rounded to the 1/255 grid (what saving it as 8-bit would keep), in
   float64; ``hr`` goes through the same step, which leaves uint8 data divided by 255 unchanged (it only
   removes float32 noise, so equal 8-bit images give exactly ``inf``).
2. RGB -> ITU-R BT.601 luma on [0, 1]: Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255; a one-channel
   image is its own Y.
3. ``scale`` pixels are cropped at every border.
4. PSNR = 10 log10(1 / MSE(Y_sr, Y_hr)) dB (``inf`` when equal), via
   ``skimage.metrics.peak_signal_noise_ratio(data_range=1)``; SSIM via ``skimage.metrics.structural_similarity``
   with Wang et al.'s settings (Gaussian window sigma = 1.5 truncated at 11 taps, K1 = 0.01, K2 = 0.03,
   population covariances, mean over the 'valid' part of the SSIM map), as their reference ``ssim.m``.

scikit-image rather than torchmetrics: torchmetrics' SSIM reflect-pads the image and averages the map over
every pixel, not over the valid part, so its values differ from the reference (measured 0.98518 vs 0.98506
on a 64x80 test pair).
"""
from __future__ import annotations

import numpy as np
import torch

from nascli.data.sr.deps import require
from nascli.errors import NasError

# ITU-R BT.601 studio-swing luma of [0, 1] RGB, in [0, 1] units (EDSR-PyTorch utility.calc_psnr).
Y_OFFSET = 16.0 / 255.0
Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
SSIM_SIGMA = 1.5  # Wang et al. 2004, ssim.m: fspecial('gaussian', 11, 1.5)
SSIM_MIN_SIDE = 11  # scikit-image's Gaussian window: 2 * round(3.5 * sigma) + 1 taps


def luma(image: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) in [0, 1] -> float64 (H, W) Y channel (rule 2)."""
    if image.dim() != 4 or image.shape[0] != 1 or image.shape[1] not in (1, 3):
        raise NasError(f"expected one image (1, 1 or 3, H, W), got {tuple(image.shape)}")
    x = image[0].detach().to("cpu", torch.float64)
    if x.shape[0] == 1:
        return x[0]
    r, g, b = x
    return Y_OFFSET + Y_WEIGHTS[0] * r + Y_WEIGHTS[1] * g + Y_WEIGHTS[2] * b


def quantize(image: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the nearest multiple of 1/255 (rule 1)."""
    return image.detach().to(torch.float64).clamp(0, 1).mul(255).round().div(255)


def _cropped_y(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> tuple[np.ndarray, np.ndarray]:
    if sr.shape != hr.shape:
        raise NasError(f"SR output {tuple(sr.shape)} and HR {tuple(hr.shape)} differ in shape")
    h, w = hr.shape[-2:]
    if h <= 2 * scale or w <= 2 * scale:
        raise NasError(f"a {w}x{h} image leaves nothing after cropping {scale} border pixels")
    ys, yh = luma(quantize(sr)), luma(quantize(hr))
    window = (slice(scale, h - scale), slice(scale, w - scale))
    return ys[window].numpy(), yh[window].numpy()


def psnr_y(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> float:
    """PSNR in dB on Y with ``scale`` border pixels cropped (module doc); ``inf`` for equal images."""
    metrics = require("skimage.metrics", "PSNR/SSIM")
    ys, yh = _cropped_y(sr, hr, scale)
    with np.errstate(divide="ignore"):
        return float(metrics.peak_signal_noise_ratio(yh, ys, data_range=1.0))


def ssim_y(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> float:
    """SSIM on Y with ``scale`` border pixels cropped (module doc); 1.0 for equal images."""
    metrics = require("skimage.metrics", "PSNR/SSIM")
    ys, yh = _cropped_y(sr, hr, scale)
    if min(ys.shape) < SSIM_MIN_SIDE:
        raise NasError(f"SSIM needs at least {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} pixels after the border crop, "
                       f"got {ys.shape[1]}x{ys.shape[0]}")
    return float(metrics.structural_similarity(yh, ys, data_range=1.0, gaussian_weights=True, sigma=SSIM_SIGMA,
                                               use_sample_covariance=False))
