"""DARTS search cells: the shared cell frame and the plain reference cell (one module per op per edge).

A search cell (quark0/darts@f276dd3 ``cnn/model_search.py`` ``Cell``/``MixedOp``, METHODS.md 0.1)
preprocesses its two inputs to C channels (``preprocess0`` = FactorizedReduce after a reduction cell,
else ReLU-Conv1x1-BN; ``preprocess1`` = ReLU-Conv1x1-BN), computes the 4 intermediate nodes as sums of
their 14 incoming edges (DARTS order, stride 2 on reduce-cell edges leaving nodes 0 and 1) and outputs
``concat(nodes 2..5)``. Every BatchNorm is ``affine=False``; pooling ops are followed by a BN.

Edge e builds only its own candidate ops ``edge_ops[e]`` (the space's op table, ``DartsSpace.edge_ops``, with the
modules of the space's :class:`~nascli.spaces.darts.ops.OpSet`; the
8 PRIMITIVES on every edge by default, 2 or 3 per edge in the R-DARTS variants): module k of edge e is the
op weighted by alpha column k. ``none`` is never built nor computed (an Identity placeholder keeps the
column positions).

For edge e = (j -> i) with stride s, the mixer's :class:`~nascli.spaces.edge.EdgeWeights` w and the
method's edge parts (nascli/spaces/edge.py; e.g. PC-DARTS partial channels narrow the ops to C' = C / K):

    mixed_e = sum_{o in active_e, o != none} w[e, o] * op_{e,o}(parts.op_input(x_j))
    out_e   = edge_scale_e * parts.combine(mixed_e, x_j) + passthrough_e + parts.extra(x_j)

The space gives the parts its skip op per stride (:func:`search_skip`: identity, or a trainable
FactorizedReduce(C, C, affine=False) with the search BN on stride 2), e.g. for the DARTS- auxiliary skip.
"""
from __future__ import annotations

import torch
from torch import nn

from collections.abc import Sequence
from functools import partial

from nascli.spaces.base import Edge
from nascli.spaces.darts.ops import DARTS_OP_SET, PRIMITIVES, FactorizedReduce, OpSet, ReLUConvBN
from nascli.spaces.darts.space import darts_edges
from nascli.spaces.edge import CellEdges, EdgeParts, EdgePartSpec, EdgeWeights, sum_edge_outputs

OP_INDEX: dict[str, int] = {name: k for k, name in enumerate(PRIMITIVES)}
NONE = OP_INDEX["none"]
POOL_OPS = ("max_pool_3x3", "avg_pool_3x3")


def search_bn(channels: int, track_running_stats: bool) -> nn.BatchNorm2d:
    """The search-time BatchNorm: never affine; running statistics per ``track_running_stats``."""
    return nn.BatchNorm2d(channels, affine=False, track_running_stats=track_running_stats)


def as_search_module(module: nn.Module, track_running_stats: bool) -> nn.Module:
    """Replace every BatchNorm2d inside ``module`` by :func:`search_bn` (in place; returns ``module``).

    The ops of ``nascli.spaces.darts.ops`` take ``affine`` but always track running statistics; the
    supernet's ``track_running_stats`` option applies to every search BN.
    """
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, search_bn(child.num_features, track_running_stats))
        else:
            as_search_module(child, track_running_stats)
    return module


def search_op(name: str, C: int, stride: int, track_running_stats: bool,
              op_set: OpSet = DARTS_OP_SET) -> nn.Module | None:
    """One candidate op of a search edge (``None`` for ``none``), built by ``op_set``; pooling gets its search BN."""
    if name == "none":
        return None
    op = op_set.factories[name](C, stride, False)
    if name in POOL_OPS:
        op = nn.Sequential(op, search_bn(C, track_running_stats))
    return as_search_module(op, track_running_stats)


def search_skip(C: int, stride: int, track_running_stats: bool) -> nn.Module:
    """The space's skip path for an edge part: identity (stride 1) or FactorizedReduce (stride 2)."""
    if stride == 1:
        return nn.Identity()
    return as_search_module(FactorizedReduce(C, C, affine=False), track_running_stats)


def build_edge_ops(edges: list[Edge], C: int, track_running_stats: bool,
                   edge_ops: Sequence[Sequence[str]] | None = None, op_set: OpSet = DARTS_OP_SET) -> nn.ModuleList:
    """Per edge a ModuleList of its candidate ops in alpha-column order (``edge_ops[e]``, default the 8
    PRIMITIVES, built by ``op_set``), an empty Identity for ``none``, which is never called."""
    table = edge_op_table(edges, edge_ops, op_set)
    return nn.ModuleList(
        nn.ModuleList(search_op(name, C, e.stride, track_running_stats, op_set) or nn.Identity() for name in names)
        for e, names in zip(edges, table))


def edge_op_table(edges: list[Edge], edge_ops: Sequence[Sequence[str]] | None,
                  op_set: OpSet = DARTS_OP_SET) -> list[tuple[str, ...]]:
    """``edge_ops`` as tuples, one per edge (the 8 PRIMITIVES on every edge when None)."""
    if edge_ops is None:
        return [PRIMITIVES] * len(edges)
    table = [tuple(names) for names in edge_ops]
    if len(table) != len(edges):
        raise ValueError(f"the op table has {len(table)} edges, the cell {len(edges)}")
    unknown = sorted({n for names in table for n in names if n not in op_set.factories})
    if unknown:
        raise ValueError(f"unknown search ops {unknown}; valid: {', '.join(op_set.factories)}")
    return table


def none_columns(table: Sequence[Sequence[str]]) -> list[int | None]:
    """Per edge the column of ``none`` (None where the edge has no ``none``)."""
    return [list(names).index("none") if "none" in names else None for names in table]


class SearchCellBase(nn.Module):
    """Preprocessing, edge list, auxiliary skips and the edge-output formula shared by both cells."""

    #: memory format the supernet gives the cells' input (None: leave the input as it comes)
    memory_format: torch.memory_format | None = None

    def __init__(self, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool,
                 edge_parts: Sequence[EdgePartSpec] = (), track_running_stats: bool = True, steps: int = 4,
                 multiplier: int = 4, edge_ops: Sequence[Sequence[str]] | None = None,
                 op_set: OpSet = DARTS_OP_SET):
        super().__init__()
        self.C = C
        self.reduction = reduction
        self.cell_type = "reduce" if reduction else "normal"
        self.steps, self.multiplier = steps, multiplier
        self.track = track_running_stats
        self.edge_list: list[Edge] = darts_edges(self.cell_type, steps)
        self.op_set = op_set
        self.op_names: list[tuple[str, ...]] = edge_op_table(self.edge_list, edge_ops, op_set)
        self.none_cols: list[int | None] = none_columns(self.op_names)
        if reduction_prev:
            self.preprocess0: nn.Module = as_search_module(FactorizedReduce(C_prev_prev, C, affine=False), self.track)
        else:
            self.preprocess0 = as_search_module(ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False), self.track)
        self.preprocess1 = as_search_module(ReLUConvBN(C_prev, C, 1, 1, 0, affine=False), self.track)
        self.parts = EdgeParts(edge_parts, CellEdges(tuple(self.edge_list), C,
                                                     partial(search_skip, track_running_stats=self.track),
                                                     self.track))
        self.c_op = self.parts.width

    @staticmethod
    def prepare(w: EdgeWeights, none_cols: Sequence[int | None] | None = None) -> EdgeWeights:
        """Per-forward preprocessing of a cell type's EdgeWeights, shared by all cells of that type
        (``none_cols``: per edge the column of ``none``, :func:`none_columns`)."""
        return w

    def preprocess(self, s0: torch.Tensor, s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.preprocess0(s0), self.preprocess1(s1)

    def out_shape(self, s1: torch.Tensor) -> tuple[int, int, int, int]:
        """Shape of every intermediate node (ceil(H/2) in a reduction cell)."""
        b, _, h, w = s1.shape
        if self.reduction:
            h, w = (h + 1) // 2, (w + 1) // 2
        return b, self.C, h, w

    @staticmethod
    def node_sum(terms: list, shape: tuple[int, int, int, int], like: torch.Tensor) -> torch.Tensor:
        return sum_edge_outputs(terms, shape, like)


class ReferenceSearchCell(SearchCellBase):
    """The obviously-correct search cell: a ModuleList of the edge's ops (an unused Identity for ``none``) per
    edge."""

    #: plain torch ops: the forward runs under torch.func.vmap (a seed-stacked group, nascli/search/stacked.py)
    runs_under_vmap = True

    def __init__(self, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool,
                 edge_parts: Sequence[EdgePartSpec] = (), track_running_stats: bool = True, steps: int = 4,
                 multiplier: int = 4, edge_ops: Sequence[Sequence[str]] | None = None,
                 op_set: OpSet = DARTS_OP_SET):
        super().__init__(C_prev_prev, C_prev, C, reduction, reduction_prev, edge_parts, track_running_stats,
                         steps, multiplier, edge_ops, op_set)
        self.edges = build_edge_ops(self.edge_list, self.c_op, self.track, self.op_names, op_set)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, w: EdgeWeights) -> torch.Tensor:
        s0, s1 = self.preprocess(s0, s1)
        shape = self.out_shape(s1)
        states = [s0, s1]
        terms: dict[int, list] = {}
        for e in self.edge_list:
            if e.dst not in terms:  # nodes are finished in order: the previous node is complete here
                if terms:
                    states.append(self.node_sum(terms[e.dst - 1], shape, s1))
                terms[e.dst] = []
            x = states[e.src]
            xo = self.parts.op_input(x)
            mixed = None
            for o in w.ops_of(e.index, self.none_cols[e.index]):
                t = w.weights[e.index, o] * self.edges[e.index][o](xo)
                mixed = t if mixed is None else mixed + t
            terms[e.dst].append(self.parts.finish(mixed, x, e, w, shape))
        states.append(self.node_sum(terms[max(terms)], shape, s1))
        return torch.cat(states[-self.multiplier:], dim=1)
