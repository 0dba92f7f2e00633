"""Batched, device-side training augmentation: random crop with zero padding, horizontal flip,
normalisation and cutout, with randomness drawn only from an explicit generator."""
from __future__ import annotations

from functools import lru_cache

import torch

from nascli.data.base import DatasetInfo


@lru_cache(maxsize=32)
def _affine(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with ``(x/255 - mean)/std == x*scale - shift``, shaped (1, C, 1, 1), cached per device."""
    m = torch.tensor(mean, dtype=torch.float64)
    s = torch.tensor(std, dtype=torch.float64)
    scale = (1.0 / (255.0 * s)).float().view(1, -1, 1, 1).to(device)
    shift = (m / s).float().view(1, -1, 1, 1).to(device)
    return scale, shift


def normalize(images_uint8: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 ``(x/255 - mean) / std`` per channel."""
    scale, shift = _affine(info.mean, info.std, images_uint8.device)
    return images_uint8.float().mul_(scale).sub_(shift)


def random_crop(images: torch.Tensor, padding: int, offsets: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Crop (H, W) windows from the images zero-padded by ``padding``; ``offsets`` = (top, left) per
    image in ``[0, 2*padding]`` (``padding`` = no shift). Equivalent to RandomCrop(size, padding, fill=0)."""
    b, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    top, left = offsets
    rows = top.view(b, 1) + torch.arange(h, device=images.device)
    cols = left.view(b, 1) + torch.arange(w, device=images.device)
    padded = padded.gather(2, rows.view(b, 1, h, 1).expand(b, c, h, w + 2 * padding))
    return padded.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))


def cutout_mask(centers: tuple[torch.Tensor, torch.Tensor], length: int, height: int, width: int) -> torch.Tensor:
    """bool (B, H, W), True inside each hole: rows ``[cy - L//2, cy + L//2)`` and the same for columns,
    clipped at the border (DARTS cnn/utils.py ``Cutout``: ``y1 = clip(y - L//2)``, ``y2 = clip(y + L//2)``)."""
    cy, cx = centers
    half = length // 2
    r = torch.arange(height, device=cy.device)
    c = torch.arange(width, device=cx.device)
    in_rows = (r >= (cy.view(-1, 1) - half)) & (r < (cy.view(-1, 1) + half))
    in_cols = (c >= (cx.view(-1, 1) - half)) & (c < (cx.view(-1, 1) + half))
    return in_rows[:, :, None] & in_cols[:, None, :]


def augment_batch(
    images_uint8: torch.Tensor,
    info: DatasetInfo,
    *,
    train: bool,
    cutout: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """uint8 (B, C, H, W) on any device -> normalised float32 (B, C, H, W) on the same device.

    ``train=True``: random crop with zero padding ``info.crop_padding`` (per-image offsets), horizontal
    flip with p=0.5, normalise, then (``cutout > 0``) one ``cutout x cutout`` hole per image centred on a
    uniform random pixel, clipped at the border and set to 0 after normalisation (the DARTS convention).
    ``train=False``: normalise only. Random numbers come only from ``generator`` (same device as the
    images; the global RNG when None), drawn in a fixed order: crop offsets, flips, cutout centres.
    """
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4:
        raise ValueError(f"expected uint8 (B, C, H, W), got {images_uint8.dtype} {tuple(images_uint8.shape)}")
    if not train:
        return normalize(images_uint8, info)
    x = images_uint8
    b, _, h, w = x.shape
    dev = x.device
    p = info.crop_padding
    if p > 0:
        top = torch.randint(0, 2 * p + 1, (b,), generator=generator, device=dev)
        left = torch.randint(0, 2 * p + 1, (b,), generator=generator, device=dev)
        x = random_crop(x, p, (top, left))
    flip = torch.rand(b, generator=generator, device=dev) < 0.5
    x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
    out = normalize(x, info)
    if cutout > 0:
        cy = torch.randint(0, h, (b,), generator=generator, device=dev)
        cx = torch.randint(0, w, (b,), generator=generator, device=dev)
        out = out.masked_fill(cutout_mask((cy, cx), cutout, h, w).unsqueeze(1), 0.0)
    return out
