"""The NB201 search supernet (TinyNetwork with search cells, METHODS.md 0.4).

One alpha (6 x 5) is shared by all 15 cells; the mixer is asked for the edge weights once per forward.
"""
from __future__ import annotations

import torch
from torch import nn

from nascli.spaces.base import SupernetOptions, Supernet
from nascli.spaces.nb201.cells import FastSearchCell, ReferenceSearchCell
from nascli.spaces.nb201.ops import MacroNetwork

CELL_IMPLS = {"fast": FastSearchCell, "reference": ReferenceSearchCell}


class NB201Supernet(Supernet):
    def __init__(self, space, mixer: nn.Module, num_classes: int, in_channels: int,
                 options: SupernetOptions, C: int = 16, N: int = 5, impl: str = "fast"):
        super().__init__()
        self.space = space
        self.mixer = mixer
        cell_cls = CELL_IMPLS[impl]
        self.net = MacroNetwork(
            lambda c: cell_cls(c, options.track_running_stats, options.partial_channels, options.aux_skip),
            num_classes, in_channels, C, N)
        # DARTS- coefficient of the auxiliary skip; a schedule component writes it every epoch
        self.register_buffer("aux_skip_coef", torch.tensor(1.0 if options.aux_skip else 0.0))
        self.aux_skip = options.aux_skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.mixer.edge_weights("cell")
        coef = self.aux_skip_coef if self.aux_skip else None
        x = self.net.stem(x)
        for cell in self.net.cells:
            x = cell(x, w, coef) if isinstance(cell, (FastSearchCell, ReferenceSearchCell)) else cell(x)
        return self.net.head(x)
