"""The DARTS search supernet (quark0/darts@f276dd3 ``cnn/model_search.py`` ``Network``; METHODS.md 0.1).

    stem: Conv3x3(in -> stem_multiplier*C) + BN
    cells 0..layers-1, reduction cells at layers//3 and 2*layers//3 (C doubles there); cell k reads the
        outputs of cells k-2 and k-1 (the stem output for both at k = 0)
    global average pooling + Linear

All normal cells share one alpha (14 x K; K = 8 ops per edge in the DARTS space, 2-3 in the R-DARTS
variants, whose cells build only each edge's own ops) and all reduction cells the other; the mixer is asked for
each cell type's :class:`~nascli.search.mixers.base.EdgeWeights` once per forward pass (and the cell class
may ``prepare`` them once for all its cells). ``impl`` picks the cell implementation: ``fast``
(channels-last, per-node shared work, :mod:`nascli.spaces.darts.search_fast`; docs/SPEED.md) or
``reference`` (one module per op per edge, :mod:`nascli.spaces.darts.search_cells`). Both compute the same
function with the same parameters; :func:`copy_reference_to_fast` gives a fast supernet a reference's weights.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nascli.registry import Registry
from nascli.spaces.base import Supernet
from nascli.spaces.edge import EdgePartSpec
from nascli.spaces.darts.search_cells import ReferenceSearchCell, SearchCellBase, none_columns
from nascli.spaces.darts.search_fast import FastSearchCell, copy_reference_cell_to_fast

CELL_IMPLS: Registry[type[SearchCellBase]] = Registry("DARTS supernet impl")
CELL_IMPLS.register("fast")(FastSearchCell)
CELL_IMPLS.register("reference")(ReferenceSearchCell)


def reduction_layers(layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells (quark0: ``i in [layers//3, 2*layers//3]``)."""
    return layers // 3, 2 * layers // 3


class DartsSupernet(Supernet):
    """Weight-sharing DARTS search network (module docstring)."""

    def __init__(self, space, mixer: nn.Module, num_classes: int, in_channels: int,
                 edge_parts: Sequence[EdgePartSpec] = (), C: int = 16, layers: int = 8, steps: int = 4,
                 multiplier: int = 4, stem_multiplier: int = 3, impl: str = "fast", track_running_stats: bool = True):
        super().__init__()
        if steps != 4 or multiplier != 4:
            raise ValueError(f"the DARTS space has 4 intermediate nodes, all concatenated; got steps={steps}, "
                             f"multiplier={multiplier} (valid: 4, 4)")
        cell_cls = CELL_IMPLS.get(impl)
        self.cell_cls = cell_cls
        self.space, self.mixer, self.impl = space, mixer, impl
        self.edge_part_specs = nn.ModuleList(edge_parts)
        self.C, self.layers = C, layers
        self.none_cols = {ct: none_columns(space.edge_ops(ct)) for ct in space.cell_types}
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, C
        cells = []
        reduction_prev = False
        reductions = reduction_layers(layers)
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c_curr *= 2
            cells.append(cell_cls(c_pp, c_p, c_curr, reduction, reduction_prev, edge_parts, track_running_stats,
                                  steps, multiplier, edge_ops=space.edge_ops("reduce" if reduction else "normal"),
                                  op_set=space.op_set))
            reduction_prev = reduction
            c_pp, c_p = c_p, multiplier * c_curr
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = {ct: self.cell_cls.prepare(self.mixer.edge_weights(ct), self.none_cols[ct])
                   for ct in self.space.cell_types}
        if self.cell_cls.memory_format is not None:
            x = x.contiguous(memory_format=self.cell_cls.memory_format)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, weights[cell.cell_type])
        return self.classifier(self.global_pooling(s1).flatten(1))


def build_darts_supernet(space, mixer: nn.Module, num_classes: int, in_channels: int,
                         edge_parts: Sequence[EdgePartSpec] = (), **space_cfg: Any) -> DartsSupernet:
    """What ``DartsSpace.build_supernet`` returns: ``space_cfg`` = C, layers, steps, multiplier,
    stem_multiplier, impl (``fast`` | ``reference``), track_running_stats."""
    return DartsSupernet(space, mixer, num_classes, in_channels, edge_parts, **space_cfg)


@torch.no_grad()
def copy_reference_to_fast(reference: DartsSupernet, fast: DartsSupernet) -> None:
    """Give ``fast`` exactly the weights and BN statistics of ``reference`` (and its alphas)."""
    if len(reference.cells) != len(fast.cells):
        raise ValueError("supernets of different depth")
    fast.mixer.load_state_dict(reference.mixer.state_dict())
    fast.stem.load_state_dict(reference.stem.state_dict())
    fast.classifier.load_state_dict(reference.classifier.state_dict())
    fast.edge_part_specs.load_state_dict(reference.edge_part_specs.state_dict())
    for ref_cell, fast_cell in zip(reference.cells, fast.cells):
        copy_reference_cell_to_fast(ref_cell, fast_cell)
