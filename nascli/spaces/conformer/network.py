"""The discrete Conformer-space encoder for CTC: subsampling front end, stacked blocks of one arch, CTC head.

    (B, T, F) log-Mel --Conv2d(1, D, 3, stride 2) -> ReLU -> Conv2d(D, D, 3, stride 2) -> ReLU--> (B, D, T'', F'')
              --flatten D x F'' -> Linear(D F'', D)--> x_0 (B, T'', D)
    x_n = Block_arch(x_{n-1}),  n = 1..N;   log_probs = log_softmax(Linear(D, V)(x_N))

The front end is the 4x convolutional subsampling of Gulati et al. 2020 (Fig. 1, as in ESPnet's
Conv2dSubsampling); without padding each stride-2 conv gives floor((L - 3) / 2) + 1 frames, so the output
lengths are exact and a valid output frame reads valid input frames only. Padded frames are kept at zero
after the front end and after every node. A block (:class:`DiscreteBlock`) computes its DAG
(nascli/spaces/conformer/arch.py): node_i = sum over the kept edges j -> i of op(node_j), then LayerNorm of
the last node (the Conformer block's final LN).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nascli.data.speech.batch import CTCOutput, PaddedFeatures
from nascli.errors import OptionError
from nascli.spaces.conformer.arch import NONE, NUM_NODES, ConformerArch
from nascli.spaces.conformer.ops import op_module, zero_padded

#: the front end's time and frequency reduction: two stride-2 convs of kernel 3
SUBSAMPLING_CONVS = 2
KERNEL, STRIDE = 3, 2


def conv_length(lengths: torch.Tensor) -> torch.Tensor:
    """Frames after one unpadded stride-2 conv of kernel 3: floor((L - 3) / 2) + 1, at least 0."""
    return (torch.div(lengths - KERNEL, STRIDE, rounding_mode="floor") + 1).clamp_min(0)


def subsampled_length(lengths: torch.Tensor) -> torch.Tensor:
    """Valid output frames of the front end for input lengths ``lengths``."""
    for _ in range(SUBSAMPLING_CONVS):
        lengths = conv_length(lengths)
    return lengths


class CTCFrame(nn.Module):
    """The front end and the CTC head around the blocks (module docstring)."""

    def __init__(self, vocab_size: int, in_features: int, d_model: int):
        super().__init__()
        freq = int(subsampled_length(torch.tensor(int(in_features))))
        if freq < 1:
            raise OptionError(f"space conformer needs at least 7 feature bins (two stride-2 convs of kernel 3), "
                              f"got in_features={in_features}")
        if int(vocab_size) < 2:
            raise OptionError(f"space conformer needs a vocabulary of the blank and at least one symbol, got "
                              f"vocab_size={vocab_size}")
        self.subsample = nn.Sequential(nn.Conv2d(1, d_model, KERNEL, STRIDE), nn.ReLU(),
                                       nn.Conv2d(d_model, d_model, KERNEL, STRIDE), nn.ReLU())
        self.project = nn.Linear(d_model * freq, d_model)
        self.head = nn.Linear(d_model, int(vocab_size))

    def start(self, x: PaddedFeatures) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_0 (B, T'', D) with zeros at padded frames, lengths (B,), padding mask (B, T''))."""
        h = self.subsample(x.features.unsqueeze(1))  # (B, D, T'', F'')
        b, d, t, f = h.shape
        h = self.project(h.permute(0, 2, 1, 3).reshape(b, t, d * f))
        lengths = subsampled_length(x.lengths).clamp_max(t)
        pad_mask = torch.arange(t, device=h.device)[None, :] >= lengths[:, None]
        return zero_padded(h, pad_mask), lengths, pad_mask

    def finish(self, x: torch.Tensor, lengths: torch.Tensor) -> CTCOutput:
        return CTCOutput(F.log_softmax(self.head(x).float(), dim=-1), lengths)


class DiscreteBlock(nn.Module):
    """One block of ``arch`` (module docstring); a node without kept inputs is zero."""

    def __init__(self, arch: ConformerArch, d_model: int, heads: int, dropout: float, max_relative: int):
        super().__init__()
        self.links = [(s, d) for s, d, op in arch.edges() if op != NONE]
        self.layers = nn.ModuleList(op_module(op, d_model, heads, dropout, max_relative)
                                    for _, _, op in arch.edges() if op != NONE)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for i in range(1, NUM_NODES):
            terms = [layer(nodes[s], pad_mask) for (s, d), layer in zip(self.links, self.layers) if d == i]
            node = torch.stack(terms).sum(0) if terms else torch.zeros_like(x)
            nodes.append(zero_padded(node, pad_mask))
        return zero_padded(self.norm(nodes[-1]), pad_mask)


class ConformerNetwork(nn.Module):
    """``forward(PaddedFeatures) -> CTCOutput`` with N blocks of one arch."""

    def __init__(self, arch: ConformerArch, vocab_size: int, in_features: int, d_model: int = 144,
                 heads: int = 4, blocks: int = 16, dropout: float = 0.1, max_relative: int = 64):
        super().__init__()
        check_sizes(d_model, heads, blocks)
        self.arch = arch
        self.frame = CTCFrame(vocab_size, in_features, d_model)
        self.blocks = nn.ModuleList(DiscreteBlock(arch, d_model, heads, dropout, max_relative)
                                    for _ in range(blocks))

    def forward(self, x: PaddedFeatures) -> CTCOutput:
        h, lengths, pad_mask = self.frame.start(x)
        for block in self.blocks:
            h = block(h, pad_mask)
        return self.frame.finish(h, lengths)


def check_sizes(d_model: int, heads: int, blocks: int) -> None:
    """One-line OptionError unless D >= 1, heads divides D, and N >= 1."""
    if int(d_model) < 1 or int(heads) < 1 or int(d_model) % int(heads):
        raise OptionError(f"space conformer needs heads dividing d_model, got d_model={d_model} heads={heads}")
    if int(blocks) < 1:
        raise OptionError(f"space conformer needs blocks >= 1, got blocks={blocks}")
