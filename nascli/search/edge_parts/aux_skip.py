"""DARTS- auxiliary skip connection (Chu et al., ICLR'21; METHODS.md 2).

Every mixed edge gets a skip path outside the softmax, scaled by a coefficient beta shared by the whole
supernet:

    out_e += beta * aux_e(x)

aux_e is the space's own skip op for the edge's stride (identity; FactorizedReduce on stride-2 DARTS edges,
Meituan-AutoML/DARTS- ``model_search.py``); beta lives in this spec's buffer ``coef`` (1.0 at build) and is
scheduled by the ``aux_skip_decay`` component. The aux path is never a candidate op.
"""
from __future__ import annotations

import torch
from torch import nn

from nascli.search.edge_parts import EDGE_PARTS
from nascli.spaces.base import Edge
from nascli.spaces.edge import CellEdges, EdgePart, EdgePartSpec


class AuxiliarySkipEdges(EdgePart):
    """Per-cell part: one skip module per edge, scaled by the spec's shared coefficient."""

    def __init__(self, spec: "AuxiliarySkip", cell: CellEdges):
        super().__init__()
        self._spec = (spec,)  # a tuple, so the shared spec is not registered once per cell
        self.aux = nn.ModuleList(cell.make_skip(cell.channels, e.stride) for e in cell.edges)

    def extra(self, x: torch.Tensor, edge: Edge) -> torch.Tensor | None:
        return self._spec[0].coef * self.aux[edge.index](x)


@EDGE_PARTS.register("aux_skip")
class AuxiliarySkip(EdgePartSpec):
    """``{name: aux_skip}``; ``beta0`` is only the value before a schedule writes ``coef``."""

    name = "aux_skip"

    def __init__(self, beta0: float = 1.0):
        super().__init__()
        self.register_buffer("coef", torch.tensor(float(beta0)))

    def build(self, cell: CellEdges) -> EdgePart:
        return AuxiliarySkipEdges(self, cell)
