"""Memory-layout copies whose gradient keeps the layout of the tensor it flows back to."""
from __future__ import annotations

import torch


def is_channels_last(x: torch.Tensor) -> bool:
    """A 4-d tensor stored channels-last (and not also NCHW-contiguous, as 1-channel or 1x1 ones are).
    False inside ``torch.func.vmap`` (a seed-stacked supernet, nascli/search/stacked.py): there a tensor is a
    view of a stacked one, whose layout vmap chooses, and torch 2.13 cannot answer the channels-last query."""
    if x.dim() != 4 or x.is_contiguous():
        return False
    try:
        return x.is_contiguous(memory_format=torch.channels_last)
    except RuntimeError:  # "NYI: querying is_contiguous inside of vmap for memory_format other than ..."
        return False


class _Relayout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
        ctx.source_format = torch.channels_last if is_channels_last(x) else torch.contiguous_format
        return x.contiguous(memory_format=memory_format)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return relayout(grad, ctx.source_format), None


def relayout(x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """``x.contiguous(memory_format=memory_format)``, whose backward hands x the gradient in x's own layout
    (NCHW-contiguous or channels-last). Autograd's backward of ``contiguous`` passes the gradient on in the
    layout it arrived in, so a layout round trip (NHWC -> NCHW -> op -> NHWC) would give the op's backward a
    gradient in the other layout than its input, a slow mixed-layout kernel in oneDNN (docs/SPEED.md)."""
    return _Relayout.apply(x, memory_format)
