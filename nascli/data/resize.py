"""``dataset.resize``: every image of a dataset resampled to ``size x size`` pixels at load time.

A run-time knob for CPU-sized studies (e.g. Fashion-MNIST 28x28 -> 16x16 makes an NB201 supernet step
about 2.5x faster; docs/COLLAPSE.md). The rule is area resampling (adaptive average pooling): output
pixel (i, j) of an H x W image is the mean of the input pixels in rows floor(i H / s) .. ceil((i+1) H / s) - 1
and the matching columns, so an integer factor averages disjoint blocks; the mean is rounded half to even
back to uint8. The random-crop padding of the training
augmentation scales with the image: ``round(crop_padding * size / image_size)``. Results say the size
(``config.yaml``: ``dataset.resize``; the data info's ``image_size``).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from nascli.data.base import DatasetInfo, ImageSplit


def resize_images(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size) by area resampling (module doc), in chunks."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8, device=images.device)
    for start in range(0, images.shape[0], chunk):
        part = images[start:start + chunk].float()
        scaled = F.adaptive_avg_pool2d(part, (size, size))
        out[start:start + chunk] = scaled.round_().clamp_(0, 255).to(torch.uint8)
    return out


def resize_split(split: ImageSplit, size: int | None) -> ImageSplit:
    """``split`` with every image resampled to ``size`` (unchanged when ``size`` is None)."""
    if size is None:
        return split
    return ImageSplit(resize_images(split.images, size), split.labels, split.name)


def resize_info(info: DatasetInfo, size: int | None) -> DatasetInfo:
    """``info`` with ``image_size = size`` and the crop padding scaled alike (unchanged when None)."""
    if size is None or size == info.image_size:
        return info
    padding = int(round(info.crop_padding * size / info.image_size))
    return dataclasses.replace(info, image_size=size, crop_padding=padding)
