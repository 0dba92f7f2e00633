"""The NB201 search supernet (TinyNetwork with search cells, METHODS.md 0.4).

One alpha (6 x 5) is shared by all 15 cells; the mixer is asked for the edge weights once per forward.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nascli.spaces.base import Supernet
from nascli.spaces.edge import EdgePartSpec
from nascli.spaces.layout import in_memory_format
from nascli.spaces.nb201.cells import FastSearchCell, ReferenceSearchCell
from nascli.spaces.nb201.ops import MacroNetwork

CELL_IMPLS = {"fast": FastSearchCell, "reference": ReferenceSearchCell}


class NB201Supernet(Supernet):
    def __init__(self, space, mixer: nn.Module, num_classes: int, in_channels: int,
                 edge_parts: Sequence[EdgePartSpec] = (), C: int = 16, N: int = 5, impl: str = "fast",
                 track_running_stats: bool = True):
        super().__init__()
        if impl not in CELL_IMPLS:
            raise ValueError(f"unknown nb201 supernet impl {impl!r}; valid choices: {', '.join(CELL_IMPLS)}")
        self.space = space
        self.mixer = mixer
        self.edge_part_specs = nn.ModuleList(edge_parts)
        cell_cls = self.cell_cls = CELL_IMPLS[impl]
        self.net = MacroNetwork(lambda c: cell_cls(c, edge_parts, track_running_stats), num_classes, in_channels, C, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.mixer.edge_weights("cell")
        if self.cell_cls.memory_format is not None:
            x = in_memory_format(x, self.cell_cls.memory_format)  # the input as it is inside vmap (stacked seeds)
        x = self.net.stem(x)
        for cell in self.net.cells:
            x = cell(x, w) if isinstance(cell, (FastSearchCell, ReferenceSearchCell)) else cell(x)
        return self.net.head(x)
