"""Memory-layout copies whose gradient keeps the layout of the tensor it flows back to."""
from __future__ import annotations

import torch


def stored_channels_last(x: torch.Tensor) -> bool:
    """``x.is_contiguous(memory_format=torch.channels_last)``; False inside ``torch.func.vmap`` (a seed-stacked
    supernet, nascli/search/stacked.py), where torch 2.13 cannot answer that query: there a tensor is a view of
    a stacked one, whose layout vmap chooses."""
    try:
        return x.is_contiguous(memory_format=torch.channels_last)
    except RuntimeError:  # "NYI: querying is_contiguous inside of vmap for memory_format other than ..."
        return False


def is_channels_last(x: torch.Tensor) -> bool:
    """A 4-d tensor stored channels-last (and not also NCHW-contiguous, as 1-channel or 1x1 ones are); False
    inside ``torch.func.vmap`` (:func:`stored_channels_last`)."""
    return x.dim() == 4 and not x.is_contiguous() and stored_channels_last(x)


def in_memory_format(x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """``x.contiguous(memory_format=memory_format)``; ``x`` itself inside ``torch.func.vmap``, where torch 2.13
    cannot change a layout (the stacked tensor's layout is vmap's)."""
    try:
        return x.contiguous(memory_format=memory_format)
    except RuntimeError:  # the same NYI as in stored_channels_last
        return x


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
