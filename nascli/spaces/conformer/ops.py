"""The candidate operations of the conformer space: Conformer sub-layers, each with its own residual.

Every op maps a sequence x (B, T, D) and its padding mask (B, T) (True at padded frames) to (B, T, D):

* ``ffn_half``:  x + 1/2 FFN(x),  FFN = LN -> Linear(D, 4D) -> Swish -> Dropout -> Linear(4D, D) -> Dropout
  (Gulati et al. 2020, sec. 2.3: the macaron half-step feed-forward, expansion 4);
* ``mhsa``:      x + Dropout(MHSA(LN(x))), scaled dot-product attention whose logits get a learned bias per
  head and clipped relative distance, b_h[clip(j - i, -R, R)], and whose padded keys are masked out;
* ``conv_<k>`` / ``dil_conv_<k>``:  x + ConvModule_k(x), ConvModule = LN -> pointwise Conv(D, 2D) -> GLU ->
  depthwise Conv(k, dilation 1 or 2, 'same' padding) -> BatchNorm -> Swish -> pointwise Conv(D, D) -> Dropout
  (Gulati et al. 2020, sec. 2.2, Fig. 2); padded frames are zeroed before the depthwise conv, so they never
  reach a valid frame;
* ``skip_connect``: x;  ``none``: zero (never computed; it has no module).

Nothing here reads padded frames' content: the LN, linear and pointwise layers work frame by frame, the
depthwise conv sees zeros there, and attention masks the padded keys.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

#: FFN hidden width / D (Gulati et al. 2020, sec. 2.3; Vaswani et al. 2017)
FFN_EXPANSION = 4
#: the depthwise kernels offered (the paper's Conformer uses 32; 15 and 31 are the common odd choices)
CONV_KERNELS = (3, 7, 15, 31)
#: the dilated variant: kernel 7 at dilation 2 (receptive field 13), a choice of this space
DILATED = ((7, 2),)


def zero_padded(x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """``x`` (B, T, D) with the frames at ``pad_mask`` (B, T) set to 0 (a select, so no NaN leaks through)."""
    return x.masked_fill(pad_mask[:, :, None], 0.0)


class FeedForward(nn.Module):
    """x + scale * FFN(x) (module docstring)."""

    def __init__(self, d: int, dropout: float, scale: float = 0.5):
        super().__init__()
        self.scale = scale
        self.net = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, FFN_EXPANSION * d), nn.SiLU(), nn.Dropout(dropout),
                                 nn.Linear(FFN_EXPANSION * d, d), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.net(x)


class RelativeSelfAttention(nn.Module):
    """x + Dropout(W_o softmax(Q K^T / sqrt(d_h) + B_rel + M) V) with Q, K, V = LN(x) W_{q,k,v}.

    B_rel[h, i, j] = table[clip(j - i, -R, R) + R, h] (learned, zero-initialised); M is -inf at padded keys
    (an utterance with no valid frame attends everywhere instead, so no row is all -inf). ``heads`` must
    divide d; when it does not (a narrowed op), the largest common divisor of the two is used."""

    def __init__(self, d: int, heads: int, dropout: float, max_relative: int):
        super().__init__()
        self.heads = math.gcd(int(heads), d)
        self.max_relative = int(max_relative)
        self.norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.relative = nn.Parameter(torch.zeros(2 * self.max_relative + 1, self.heads))
        self.dropout = nn.Dropout(dropout)
        self.attention_dropout = float(dropout)

    def relative_bias(self, t: int, device: torch.device) -> torch.Tensor:
        """(H, T, T) bias of the clipped relative distance j - i."""
        pos = torch.arange(t, device=device)
        rel = (pos[None, :] - pos[:, None]).clamp(-self.max_relative, self.max_relative) + self.max_relative
        return self.relative[rel].permute(2, 0, 1)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        keys_masked = pad_mask & ~pad_mask.all(dim=1, keepdim=True)  # (B, T); empty utterances mask nothing
        bias = self.relative_bias(t, x.device).to(q.dtype)[None]
        bias = bias.masked_fill(keys_masked[:, None, None, :], float("-inf"))
        p = self.attention_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)
        return x + self.dropout(self.out(y.transpose(1, 2).reshape(b, t, d)))


class ConvolutionModule(nn.Module):
    """x + ConvModule(x) (module docstring), depthwise kernel ``kernel`` at ``dilation``."""

    def __init__(self, d: int, kernel: int, dilation: int, dropout: float, track_running_stats: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.pointwise_in = nn.Conv1d(d, 2 * d, 1)
        self.depthwise = nn.Conv1d(d, d, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation, groups=d)
        self.bn = nn.BatchNorm1d(d, track_running_stats=track_running_stats)
        self.pointwise_out = nn.Conv1d(d, d, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        h = F.glu(self.pointwise_in(self.norm(x).transpose(1, 2)), dim=1)
        h = h.masked_fill(pad_mask[:, None, :], 0.0)
        h = self.pointwise_out(F.silu(self.bn(self.depthwise(h))))
        return x + self.dropout(h.transpose(1, 2))


class Identity(nn.Module):
    """skip_connect: the input unchanged."""

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        return x


OpBuilder = Callable[[int, int, float, int, bool], nn.Module]
#: op name -> builder(d, heads, dropout, max_relative, track_running_stats); ``none`` has none
OPS: dict[str, OpBuilder] = {
    "skip_connect": lambda d, h, p, r, track: Identity(),
    "ffn_half": lambda d, h, p, r, track: FeedForward(d, p),
    "mhsa": lambda d, h, p, r, track: RelativeSelfAttention(d, h, p, r),
    **{f"conv_{k}": (lambda k: lambda d, h, p, r, track: ConvolutionModule(d, k, 1, p, track))(k)
       for k in CONV_KERNELS},
    **{f"dil_conv_{k}": (lambda k, dl: lambda d, h, p, r, track: ConvolutionModule(d, k, dl, p, track))(k, dl)
       for k, dl in DILATED},
}
#: the alpha columns, in order
CONFORMER_OPS: tuple[str, ...] = ("none", *OPS)
PARAMETER_FREE_OPS = frozenset({"none", "skip_connect"})


def op_module(name: str, d: int, heads: int, dropout: float, max_relative: int,
              track_running_stats: bool = True) -> nn.Module:
    """The module of op ``name`` at width ``d`` (``none`` has no module: the caller never computes it)."""
    return OPS[name](d, heads, dropout, max_relative, track_running_stats)
