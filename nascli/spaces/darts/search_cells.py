"""DARTS search cells: the shared cell frame and the plain reference cell (one module per op per edge).

A search cell (quark0/darts@f276dd3 ``cnn/model_search.py`` ``Cell``/``MixedOp``, METHODS.md 0.1)
preprocesses its two inputs to C channels (``preprocess0`` = FactorizedReduce after a reduction cell,
else ReLU-Conv1x1-BN; ``preprocess1`` = ReLU-Conv1x1-BN), computes the 4 intermediate nodes as sums of
their 14 incoming edges (DARTS order, stride 2 on reduce-cell edges leaving nodes 0 and 1) and outputs
``concat(nodes 2..5)``. Every BatchNorm is ``affine=False``; pooling ops are followed by a BN.

For edge e = (j -> i) with stride s and the mixer's :class:`~nascli.search.mixers.base.EdgeWeights` w
(K = partial channels, C' = C / K, PC-DARTS, Xu et al. 2020, eq. 2):

    mixed_e = sum_{o in active_e, o != none} w[e, o] * op_{e,o}(x_j[:, :C'])
    out_e   = edge_scale_e * shuffle_K(cat[mixed_e, bypass_s(x_j[:, C':])]) + passthrough_e
              + aux_coef * aux_e(x_j)                         (DARTS-, only with ``aux_skip``)

where bypass_1 = identity, bypass_2 = MaxPool2d(2, 2) (PC-DARTS ``MixedOp.mp``), shuffle_K is the
PC-DARTS channel shuffle (identity for K = 1) and aux_e = Identity (stride 1) or a trainable
FactorizedReduce(C, C, affine=False) (stride 2) (Meituan-AutoML/DARTS- ``model_search.py``).
"""
from __future__ import annotations

import torch
from torch import nn

from nascli.search.mixers.base import EdgeWeights, sum_edge_outputs
from nascli.spaces.base import Edge, SupernetOptions
from nascli.spaces.darts.ops import OPS, PRIMITIVES, FactorizedReduce, ReLUConvBN
from nascli.spaces.darts.space import darts_edges
from nascli.spaces.nb201.ops import channel_shuffle

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


def search_op(name: str, C: int, stride: int, track_running_stats: bool) -> nn.Module | None:
    """One candidate op of a search edge (``None`` for ``none``); pooling gets its search BN."""
    if name == "none":
        return None
    op = OPS[name](C, stride, False)
    if name in POOL_OPS:
        op = nn.Sequential(op, search_bn(C, track_running_stats))
    return as_search_module(op, track_running_stats)


def build_edge_ops(edges: list[Edge], C: int, track_running_stats: bool) -> nn.ModuleList:
    """Per edge a ModuleList of the 8 candidate ops in PRIMITIVES order (an empty Identity for ``none``,
    which is never called)."""
    return nn.ModuleList(
        nn.ModuleList(search_op(name, C, e.stride, track_running_stats) or nn.Identity() for name in PRIMITIVES)
        for e in edges)


class SearchCellBase(nn.Module):
    """Preprocessing, edge list, auxiliary skips and the edge-output formula shared by both cells."""

    #: memory format the supernet gives the cells' input (None: leave the input as it comes)
    memory_format: torch.memory_format | None = None

    def __init__(self, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool,
                 options: SupernetOptions, steps: int = 4, multiplier: int = 4):
        super().__init__()
        K = int(options.partial_channels)
        if K < 1 or C % K:
            raise ValueError(f"partial_channels={K} must be a positive divisor of the cell width C={C}")
        self.C, self.K, self.c_op = C, K, C // K
        self.reduction = reduction
        self.cell_type = "reduce" if reduction else "normal"
        self.steps, self.multiplier = steps, multiplier
        self.track = options.track_running_stats
        self.edge_list: list[Edge] = darts_edges(self.cell_type, steps)
        if reduction_prev:
            self.preprocess0: nn.Module = as_search_module(FactorizedReduce(C_prev_prev, C, affine=False), self.track)
        else:
            self.preprocess0 = as_search_module(ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False), self.track)
        self.preprocess1 = as_search_module(ReLUConvBN(C_prev, C, 1, 1, 0, affine=False), self.track)
        # PC-DARTS MixedOp.mp = MaxPool2d(2, 2); ceil_mode only differs on odd sizes, where the reference fails
        self.bypass_pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.aux_skip = bool(options.aux_skip)
        if self.aux_skip:
            self.aux = nn.ModuleList(
                nn.Identity() if e.stride == 1
                else as_search_module(FactorizedReduce(C, C, affine=False), self.track)
                for e in self.edge_list)

    @staticmethod
    def prepare(w: EdgeWeights) -> EdgeWeights:
        """Per-forward preprocessing of a cell type's EdgeWeights, shared by all cells of that type."""
        return w

    def preprocess(self, s0: torch.Tensor, s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.preprocess0(s0), self.preprocess1(s1)

    def out_shape(self, s1: torch.Tensor) -> tuple[int, int, int, int]:
        """Shape of every intermediate node (ceil(H/2) in a reduction cell)."""
        b, _, h, w = s1.shape
        if self.reduction:
            h, w = (h + 1) // 2, (w + 1) // 2
        return b, self.C, h, w

    def finish_edge(self, mixed: torch.Tensor | None, x: torch.Tensor, e: Edge, w: EdgeWeights,
                    aux_coef: torch.Tensor | None, shape: tuple[int, int, int, int]) -> torch.Tensor | None:
        """Partial-channel bypass + shuffle, edge scale, passthrough and the auxiliary skip of edge ``e``.

        ``mixed`` is the weighted op sum on the first C/K channels (``None`` when no op ran); returns
        ``None`` when the edge contributes nothing but zeros."""
        out = mixed
        if self.K > 1:
            if out is None:
                out = x.new_zeros((shape[0], self.c_op, shape[2], shape[3]))
            rest = x[:, self.c_op:]
            if e.stride == 2:
                rest = self.bypass_pool(rest)
            out = channel_shuffle(torch.cat([out, rest], dim=1), self.K)
        if w.edge_scale is not None and out is not None:
            out = out * w.edge_scale[e.index]
        if w.passthrough is not None:
            out = w.passthrough[e.index] if out is None else out + w.passthrough[e.index]
        if self.aux_skip and aux_coef is not None:
            a = aux_coef * self.aux[e.index](x)
            out = a if out is None else out + a
        return out

    @staticmethod
    def node_sum(terms: list, shape: tuple[int, int, int, int], like: torch.Tensor) -> torch.Tensor:
        return sum_edge_outputs(terms, shape, like)


class ReferenceSearchCell(SearchCellBase):
    """The obviously-correct search cell: a ModuleList of the 8 ops (``None`` for ``none``) per edge."""

    def __init__(self, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool,
                 options: SupernetOptions, steps: int = 4, multiplier: int = 4):
        super().__init__(C_prev_prev, C_prev, C, reduction, reduction_prev, options, steps, multiplier)
        self.edges = build_edge_ops(self.edge_list, self.c_op, self.track)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, w: EdgeWeights,
                aux_coef: torch.Tensor | None = None) -> torch.Tensor:
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
            xo = x[:, : self.c_op] if self.K > 1 else x
            mixed = None
            for o in w.ops_of(e.index, NONE):
                t = w.weights[e.index, o] * self.edges[e.index][o](xo)
                mixed = t if mixed is None else mixed + t
            terms[e.dst].append(self.finish_edge(mixed, x, e, w, aux_coef, shape))
        states.append(self.node_sum(terms[max(terms)], shape, s1))
        return torch.cat(states[-self.multiplier:], dim=1)
