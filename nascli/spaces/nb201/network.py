"""The discrete NB201 network of one arch: TinyNetwork(C=16, N=5) with affine BN (METHODS.md 0.5)."""
from __future__ import annotations

import torch
from torch import nn

from nascli.spaces.nb201.arch import NUM_NODES, NB201Arch
from nascli.spaces.nb201.ops import MacroNetwork, op_module


class InferCell(nn.Module):
    """node_i = sum over the non-``none`` incoming edges (a node with none of them is zero)."""

    def __init__(self, arch: NB201Arch, C: int):
        super().__init__()
        self.links = [(s, d) for s, d, op in arch.edges() if op != "none"]
        self.layers = nn.ModuleList(op_module(op, C, True, True) for _, _, op in arch.edges() if op != "none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for i in range(1, NUM_NODES):
            terms = [layer(nodes[s]) for (s, d), layer in zip(self.links, self.layers) if d == i]
            nodes.append(sum(terms[1:], terms[0]) if terms else torch.zeros_like(x))
        return nodes[-1]


class NB201Network(MacroNetwork):
    def __init__(self, arch: NB201Arch, num_classes: int, in_channels: int = 3, C: int = 16, N: int = 5):
        super().__init__(lambda c: InferCell(arch, c), num_classes, in_channels, C, N)
        self.arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.head(x)
