"""Depthwise convolutions for the fast DARTS search cell, with CPU backward passes built from fast kernels.

On CPU, oneDNN runs every depthwise forward used by the DARTS ops quickly, but its backward kernels for
5x5 and dilated depthwise convs are 5-30x slower than the forward (docs/SPEED.md). This module keeps the
same functions and only changes how they are computed:

* stride 1, no dilation (:func:`depthwise_conv`): a custom autograd function whose input gradient is the
  forward conv of the output gradient with the spatially flipped kernel (for a 'same'-padded stride-1
  correlation y = w * x, dL/dx = flip(w) * dL/dy with the same padding), and whose k x k weight gradient
  (k > 3) is assembled from 3x3 weight gradients of shifted crops of the padded input,
  dW[a+i, b+j] = sum_{n,h,w} g[n,h,w] xpad[n, h+a+i, w+b+j] for the 3x3 blocks at (a, b) in {0, 3, ...}^2.
* dilation 2, stride 1: the input gradient is again the flipped-kernel forward conv (same dilation).
  A dilated conv only ever mixes pixels of the same parity, so its weight gradient is the undilated
  one on the four polyphase components x[a::2, b::2] and g[a::2, b::2] stacked along the batch
  (:func:`phase_split`), with padding k//2.
* dilation 2, stride 2: only the even pixels are read, so it is the undilated stride-1 conv of
  x[::2, ::2] with padding k//2.

Double backward (the exact Hessian diagnostic) works: the backward is made of differentiable ops.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_conv_backward = torch.ops.aten.convolution_backward


def _weight_grad_3x3(x: torch.Tensor, g: torch.Tensor, w3: torch.Tensor, padding: int) -> torch.Tensor:
    """dL/dW of the stride-1 3x3 depthwise conv (oneDNN's kernel is fast for this case)."""
    return _conv_backward(g, x, w3, None, [1, 1], [padding, padding], [1, 1], False, [0, 0], w3.shape[0],
                          [False, True, False])[1]


def depthwise_weight_grad(x: torch.Tensor, g: torch.Tensor, k: int, padding: int) -> torch.Tensor:
    """dL/dW (C, 1, k, k) of y = depthwise_conv(x, W) (stride 1, 'same' padding) from 3x3 blocks."""
    C = x.shape[1]
    w3 = x.new_empty(C, 1, 3, 3)
    if k == 3:
        return _weight_grad_3x3(x, g, w3, padding)
    nb = -(-k // 3)
    extra = 3 * nb - k
    H, W = g.shape[2], g.shape[3]
    xp = F.pad(x, (padding, padding + extra, padding, padding + extra))
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    rows = []
    for a in range(0, 3 * nb, 3):
        cols = [_weight_grad_3x3(xp[:, :, a:a + H + 2, b:b + W + 2].contiguous(memory_format=fmt), g, w3, 0)
                for b in range(0, 3 * nb, 3)]
        rows.append(torch.cat(cols, dim=3))
    return torch.cat(rows, dim=2)[:, :, :k, :k]


class _DepthwiseConv(torch.autograd.Function):
    """y = conv2d(x, w, padding=d*(k//2), dilation=d, groups=C) with the fast CPU backward of the module
    docstring (stride 1)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, dilation: int) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.dilation = dilation
        return F.conv2d(x, w, None, 1, dilation * (w.shape[-1] // 2), dilation, w.shape[0])

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, w = ctx.saved_tensors
        d, k = ctx.dilation, w.shape[-1]
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        g = g.contiguous(memory_format=fmt)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = F.conv2d(g, w.flip(2, 3), None, 1, d * (k // 2), d, w.shape[0])
        if ctx.needs_input_grad[1]:
            if d == 1:
                gw = depthwise_weight_grad(x, g, k, k // 2)
            elif d == 2 and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0:
                gw = depthwise_weight_grad(phase_split(x), phase_split(g), k, k // 2)
            else:
                gw = _conv_backward(g, x, w, None, [1, 1], [d * (k // 2)] * 2, [d, d], False, [0, 0], w.shape[0],
                                    [False, True, False])[1]
        return gx, gw, None


def use_fast_backward(x: torch.Tensor) -> bool:
    """The custom backward pays on CPU; CUDA (cuDNN) runs the plain convs."""
    return x.device.type == "cpu"


def depthwise_conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, dilation: int = 1) -> torch.Tensor:
    """Depthwise conv with 'same' padding dilation*(k//2) (the DARTS sep/dil convs), any stride.

    A dilation-2, stride-2 conv only reads the even pixels: it is computed as the undilated stride-1
    conv of x[::2, ::2] (callers that share that subsample pass it with ``stride=1, dilation=1``)."""
    k = w.shape[-1]
    if stride == 1 and k % 2 == 1 and use_fast_backward(x):
        return _DepthwiseConv.apply(x, w, dilation)
    return F.conv2d(x, w, None, stride, dilation * (k // 2), dilation, w.shape[0])


def phase_split(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) with even H, W -> (4B, C, H/2, W/2): batch block 2a+b holds x[:, :, a::2, b::2]."""
    B, C, H, W = x.shape
    cl = x.permute(0, 2, 3, 1).reshape(B, H // 2, 2, W // 2, 2, C)
    y = cl.permute(2, 4, 0, 1, 3, 5).reshape(4 * B, H // 2, W // 2, C)
    return y.permute(0, 3, 1, 2)
