"""Candidate operations of the sisr_trilevel cell slots, and the sub-pixel upsampler.

Every op maps C_in -> C_out channels at stride 1 and keeps the spatial size. No BatchNorm (SR networks drop it,
EDSR, Lim et al. 2017) and no pooling. Conv ops are pre-activation (ReLU then conv, the DARTS op order without
BN); convs carry a bias (EDSR). With C_in != C_out the parameter-free ops act on the first min(C_in, C_out)
channels and zero-fill the rest (:class:`ChannelSkip`): that is what the supernet computes when channels past a
slot's width are masked to zero (nascli/spaces/sisr/supernet.py), so a derived net matches its supernet path.

Parameters per op (k the kernel size, bias included):
    conv_3x3, conv_5x5, dil_conv_3x3:   C_in C_out k^2 + C_out
    sep_conv_3x3:                       C_in 9 (depthwise, no bias) + C_in C_out + C_out (pointwise)
    res_block_3x3:                      (C_in C_out 9 + C_out) + (C_out C_out 9 + C_out), plus the skip
    skip_connect, none:                 0
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
import torch.nn.functional as F


class ChannelSkip(nn.Module):
    """Identity on the first min(C_in, C_out) channels; zeros (C_out > C_in) or dropped channels otherwise."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.c_in, self.c_out = c_in, c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.c_out <= self.c_in:
            return x[:, : self.c_out]
        return F.pad(x, (0, 0, 0, 0, 0, self.c_out - self.c_in))


class Zero(nn.Module):
    """The ``none`` op: C_out zero channels."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.c_out = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(x.shape[0], self.c_out, *x.shape[2:])


def relu_conv(c_in: int, c_out: int, k: int, dilation: int = 1) -> nn.Sequential:
    """ReLU, then a k x k conv (same padding) with bias."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, k, padding=dilation * (k - 1) // 2, dilation=dilation))


def sep_conv(c_in: int, c_out: int) -> nn.Sequential:
    """ReLU, depthwise 3x3 conv (no bias, so channels that are zero stay zero), pointwise 1x1 conv (one
    separable block; DARTS stacks two with BN)."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1))


class ResBlock(nn.Module):
    """EDSR residual block without BN: conv2(ReLU(conv1(x)) * m) + skip(x), m the slot's output channel mask
    (the supernet passes it so the inner feature has the slot's width, as in the discrete op; m = 1 there)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = ChannelSkip(c_in, c_out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        inner = torch.relu(self.conv1(x))
        if mask is not None:
            inner = inner * mask
        return self.conv2(inner) + self.skip(x)


#: op name -> factory (C_in, C_out) -> module; the order is the alpha column order
OPS: dict[str, Callable[[int, int], nn.Module]] = {
    "conv_3x3": lambda ci, co: relu_conv(ci, co, 3),
    "conv_5x5": lambda ci, co: relu_conv(ci, co, 5),
    "dil_conv_3x3": lambda ci, co: relu_conv(ci, co, 3, dilation=2),
    "sep_conv_3x3": sep_conv,
    "res_block_3x3": ResBlock,
    "skip_connect": ChannelSkip,
    "none": Zero,
}
SISR_OPS: tuple[str, ...] = tuple(OPS)
PARAMETER_FREE_OPS = frozenset({"skip_connect", "none"})
#: ops whose inner feature takes the slot's output channel mask (``op(x, mask=m)``)
MASKED_INNER_OPS = frozenset({"res_block_3x3"})


def upsampler(channels: int, scale: int) -> nn.Sequential:
    """Sub-pixel upsampling (Shi et al. 2016) as EDSR builds it: x2 and x3 one conv C -> s^2 C + PixelShuffle(s);
    x4 two x2 stages. Parameters: x2 (9 C 4C + 4C), x3 (9 C 9C + 9C), x4 twice the x2 count."""
    steps = {2: [2], 3: [3], 4: [2, 2]}[scale]
    layers: list[nn.Module] = []
    for s in steps:
        layers += [nn.Conv2d(channels, s * s * channels, 3, padding=1), nn.PixelShuffle(s)]
    return nn.Sequential(*layers)


SCALES = (2, 3, 4)
