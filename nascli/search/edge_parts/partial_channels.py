"""PC-DARTS partial channel connections (Xu et al., ICLR'20, eq. 2; METHODS.md 6).

On every edge only the first C/K channels of the input go through the candidate ops; the other channels
bypass them (max-pooled 2x2 on stride-2 edges, yuhuixu1993/PC-DARTS@b74702f ``MixedOp.mp``) and the two are
interleaved by the channel shuffle:

    out_e = shuffle_K(cat[mixed_e, bypass_s(x[:, C/K:])])

shuffle_K views the C channels as (K, C/K), transposes to (C/K, K) and flattens: output channel j*K + g is
channel j of group g (group 0 = the op output).
"""
from __future__ import annotations

import torch
from torch import nn

from nascli.search.edge_parts import EDGE_PARTS
from nascli.spaces.base import Edge
from nascli.spaces.edge import CellEdges, EdgePart, EdgePartSpec
from nascli.spaces.layout import is_channels_last


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """PC-DARTS shuffle: view (B, g, C/g, H, W) -> transpose(1, 2) -> flatten."""
    if groups == 1:
        return x
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def shuffle_copy(mixed: torch.Tensor, rest: torch.Tensor, groups: int) -> torch.Tensor:
    """channel_shuffle(cat[mixed, rest], groups) in one channels-last copy (one ``stack`` on the NHWC layout);
    differentiated by autograd, it hands its inputs strided gradients (:class:`_ShuffleInto`)."""
    b, c, h, w = mixed.shape
    chunks = [mixed, *rest.split(c, dim=1)]
    stacked = torch.stack([t.permute(0, 2, 3, 1) for t in chunks], dim=-1)
    return stacked.reshape(b, h, w, c * groups).permute(0, 3, 1, 2)


def shuffle_into(mixed: torch.Tensor, rest: torch.Tensor, groups: int) -> torch.Tensor:
    """:func:`shuffle_copy` (the fast cells' layout), with channels-last contiguous gradients for ``mixed`` and
    ``rest`` (:class:`_ShuffleInto`)."""
    return _ShuffleInto.apply(mixed, rest, groups)


class _ShuffleInto(torch.autograd.Function):
    """Forward: output channel j*K + g is channel j of chunk g of cat[mixed, rest] (chunks of C/K channels), one
    NHWC copy. Backward: the inverse gather, also one copy per input. Autograd's own backward of that copy hands
    ``mixed`` a gradient whose channels lie K apart in memory, on which oneDNN's BatchNorm backward (the last op
    of every candidate op) is slower than on a contiguous one (the A/B in docs/SPEED.md). Built from
    differentiable ops, so double backward works."""

    @staticmethod
    def forward(ctx, mixed: torch.Tensor, rest: torch.Tensor, groups: int) -> torch.Tensor:
        ctx.groups = groups
        return shuffle_copy(mixed, rest, groups)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        k = ctx.groups
        b, ck, h, w = grad.shape
        g5 = grad.permute(0, 2, 3, 1).reshape(b, h, w, ck // k, k)  # [..., j, g]: output channel j*K + g
        g_mixed = g5[..., 0].contiguous().permute(0, 3, 1, 2)
        g_rest = g5[..., 1:].transpose(-1, -2).contiguous().reshape(b, h, w, (k - 1) * (ck // k))
        return g_mixed, g_rest.permute(0, 3, 1, 2), None


class PartialChannelEdges(EdgePart):
    """Per-cell part: narrows the ops to C/K channels and shuffles the bypassed channels back in."""

    def __init__(self, k: int, channels: int):
        super().__init__()
        if k < 1 or channels % k:
            raise ValueError(f"partial_channels k={k} must be a positive divisor of the cell width C={channels}")
        self.k, self.width = k, channels // k
        # ceil_mode only differs on odd sizes, where the reference's floor mode fails to concatenate
        self.bypass_pool = nn.MaxPool2d(2, 2, ceil_mode=True)

    def set_k(self, k: int) -> int:
        """Switch to K = ``k`` (DrNAS progressive learning: 6 -> 4); returns the new op width C/k. The caller
        widens the ops themselves (nascli/search/widen.py)."""
        channels = self.width * self.k
        if k < 1 or channels % k:
            raise ValueError(f"partial_channels k={k} must be a positive divisor of the cell width C={channels}")
        self.k, self.width = k, channels // k
        return self.width

    def op_width(self, channels: int) -> int:
        return channels // self.k

    def op_input(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, : self.width]

    def combine(self, mixed: torch.Tensor | None, x: torch.Tensor, edge: Edge, shape: tuple[int, ...],
                bypass_scale: torch.Tensor | None = None) -> torch.Tensor | None:
        if self.k == 1:  # every channel goes through the ops: nothing to bypass (DrNAS MixedOp with k = 1)
            return mixed
        rest = x[:, self.width:]
        if edge.stride == 2:
            rest = self.bypass_pool(rest)
        if bypass_scale is not None:
            rest = rest * bypass_scale
        if mixed is None:
            mixed = rest.new_zeros((shape[0], self.width, shape[2], shape[3]))
        if is_channels_last(x):
            return shuffle_into(mixed, rest, self.k)
        return channel_shuffle(torch.cat([mixed, rest], dim=1), self.k)


@EDGE_PARTS.register("partial_channels")
class PartialChannels(EdgePartSpec):
    """``{name: partial_channels, k: 4}`` (PC-DARTS CIFAR: K = 4)."""

    name = "partial_channels"

    def __init__(self, k: int = 4):
        super().__init__()
        self.k = int(k)
        if self.k < 1:
            raise ValueError(f"partial_channels k must be >= 1, got {k}")

    def build(self, cell: CellEdges) -> EdgePart:
        return PartialChannelEdges(self.k, cell.channels)
