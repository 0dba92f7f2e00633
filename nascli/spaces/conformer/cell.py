"""The conformer search block: every edge of the block DAG (nascli/spaces/conformer/arch.py) mixes all ops.

For edge e = (j -> i), the mixer's EdgeWeights w and the method's edge parts (nascli/spaces/edge.py):

    out_e  = scale_e * parts.combine(sum_{o != none} w[e, o] op_{e,o}(parts.op_input(x_j))) + passthrough_e
             + parts.extra(x_j)
    node_i = mask(sum_{j < i} out_e),   block output = mask(LN(node_4))

``mask`` zeroes the padded frames. ``none`` is never computed and ops outside ``w.active`` are skipped. The
edge parts see a node as (B, D, T, 1), channels first, so channel-wise parts (PC-DARTS partial channels:
the ops read the first D/K channels, the rest bypass them through the channel shuffle) work on sequences
as on images; the ops themselves read (B, T, D').
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nascli.spaces.base import Edge
from nascli.spaces.conformer.arch import NONE, NUM_NODES
from nascli.spaces.conformer.ops import CONFORMER_OPS, op_module, zero_padded
from nascli.spaces.edge import CellEdges, EdgeParts, EdgePartSpec, EdgeWeights, sum_edge_outputs


def as_channels(x: torch.Tensor) -> torch.Tensor:
    """(B, T, D) -> the (B, D, T, 1) view the edge parts read."""
    return x.transpose(1, 2).unsqueeze(-1)


def as_sequence(x: torch.Tensor) -> torch.Tensor:
    """(B, D, T, 1) -> (B, T, D)."""
    return x.squeeze(-1).transpose(1, 2)


def _skip(channels: int, stride: int) -> nn.Module:
    """The space's skip op for the edge parts (every edge keeps the length)."""
    return nn.Identity()


class SearchBlock(nn.Module):
    """One block of mixed edges (module docstring); one op module per op per edge."""

    def __init__(self, edges: Sequence[Edge], d_model: int, heads: int, dropout: float, max_relative: int,
                 edge_parts: Sequence[EdgePartSpec] = (), track_running_stats: bool = True):
        super().__init__()
        self.edges = tuple(edges)
        self.parts = EdgeParts(edge_parts, CellEdges(self.edges, d_model, _skip, track_running_stats))
        width = self.parts.width
        self.none_index = CONFORMER_OPS.index(NONE)
        self.ops = nn.ModuleList(
            nn.ModuleList(nn.Identity() if op == NONE else
                          op_module(op, width, heads, dropout, max_relative, track_running_stats)
                          for op in CONFORMER_OPS)
            for _ in self.edges)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor, w: EdgeWeights) -> torch.Tensor:
        nodes = [as_channels(x)]
        shape = tuple(nodes[0].shape)
        for i in range(1, NUM_NODES):
            terms = []
            for edge in self.edges:
                if edge.dst != i:
                    continue
                xs = nodes[edge.src]
                xo = as_sequence(self.parts.op_input(xs))
                mixed = None
                for o in w.ops_of(edge.index, self.none_index):
                    t = w.weights[edge.index, o] * self.ops[edge.index][o](xo, pad_mask)
                    mixed = t if mixed is None else mixed + t
                terms.append(self.parts.finish(None if mixed is None else as_channels(mixed), xs, edge, w, shape))
            node = as_sequence(sum_edge_outputs(terms, shape, nodes[0]))
            nodes.append(as_channels(zero_padded(node, pad_mask)))
        return zero_padded(self.norm(as_sequence(nodes[-1])), pad_mask)
