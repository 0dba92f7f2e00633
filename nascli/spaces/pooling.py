"""3x3 average pooling (padding 1, ``count_include_pad=False``) computed as a depthwise sum, for CPU channels-last
tensors.

    avg(x)[n, c, h, w] = (1 / count[h, w]) * sum_{|dh|,|dw| <= 1} x[n, c, s*h + dh, s*w + dw]

with x zero outside the image and count[h, w] the number of window pixels inside it (9 inside, 6 on an edge, 4
in a corner for stride 1). The sum is a depthwise 3x3 conv with an all-ones kernel and the division a multiply
by the map 1 / count. On CPU, for NHWC tensors at stride 1 and at least 16x16 pixels, oneDNN's depthwise conv
(forward and input gradient) was 1.3x to 3.3x faster than its average-pooling kernels; below that size, and at
stride 2 in all but one of the shapes timed, the conv's fixed cost (about 0.5 ms forward and backward) made it
slower
(``python scripts/bench_speed.py --pool-kernels`` times both; docs/SPEED.md). There, and on CUDA or NCHW
tensors, :func:`torch.nn.functional.avg_pool2d` runs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nascli.spaces.layout import stored_channels_last


def inverse_window_count(height: int, width: int, stride: int, like: torch.Tensor) -> torch.Tensor:
    """1 / count of the 3x3, padding-1 windows of a ``height`` x ``width`` image at ``stride``, shape (1, 1, H', W')."""
    ones = like.new_ones(1, 1, height, width)
    count = F.conv2d(ones, like.new_ones(1, 1, 3, 3), None, stride, 1)
    return count.reciprocal_()


#: the fewest pixels per image (H x W) at which the depthwise sum pays (module docstring)
MIN_PIXELS = 16 * 16


def uses_depthwise_sum(x: torch.Tensor, stride: int) -> bool:
    """Whether :func:`avg_pool_3x3` computes ``x`` as a depthwise sum: a 4-d channels-last CPU tensor of at least
    :data:`MIN_PIXELS` pixels per image, at stride 1."""
    return (x.device.type == "cpu" and x.dim() == 4 and stride == 1 and x.shape[2] * x.shape[3] >= MIN_PIXELS
            and stored_channels_last(x))  # (False inside vmap: a seed-stacked supernet pools with avg_pool2d)


def depthwise_sum_avg_pool_3x3(x: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """``F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)`` of a 4-d tensor as the depthwise 3x3 sum times
    the inverse window count (module docstring), at any size and stride."""
    channels = x.shape[1]
    total = F.conv2d(x, x.new_ones(channels, 1, 3, 3), None, stride, 1, 1, channels)
    return total * inverse_window_count(x.shape[2], x.shape[3], stride, x)


def avg_pool_3x3(x: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """``F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)``, computed by
    :func:`depthwise_sum_avg_pool_3x3` where :func:`uses_depthwise_sum`."""
    if uses_depthwise_sum(x, stride):
        return depthwise_sum_avg_pool_3x3(x, stride)
    return F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)
