"""NB201 search cells: the fast node-batched cell and the plain reference cell.

Both compute, for edge e = (j -> i), the mixer's EdgeWeights w and the method's edge parts (the formula of
nascli/spaces/edge.py),

    out_e = scale_e * parts.combine(sum_o w[e,o] * op_o(parts.op_input(x_j))) + passthrough_e + parts.extra(x_j)
    node_i = sum_{j<i} out_e

``none`` is never computed. The fast cell batches, per source node j, the 1x1 convs of all edges
leaving j into one conv (and likewise the 3x3 convs), shares the ReLU those convs read, and computes
the average pool once per node (it has no parameters, and every edge leaving j reads the same x_j), as the
depthwise sum of nascli/spaces/pooling.py on CPU.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nascli.spaces.base import Edge
from nascli.spaces.batch_norm import count_batch
from nascli.spaces.edge import CellEdges, EdgeParts, EdgePartSpec, EdgeWeights, sum_edge_outputs
from nascli.spaces.nb201.arch import NB201_EDGES, NB201_OPS, NUM_NODES
from nascli.spaces.nb201.ops import op_module
from nascli.spaces import pooling
from nascli.spaces.layout import stored_channels_last

OP_INDEX = {name: k for k, name in enumerate(NB201_OPS)}
NONE = OP_INDEX["none"]
CONV_OPS = ("nor_conv_1x1", "nor_conv_3x3")
WEIGHTED_BY_BN = frozenset(OP_INDEX[k] for k in CONV_OPS)  # ops whose mixing weight the fast cell folds into the BN


def _outgoing(src: int) -> list[int]:
    """Alpha rows of the edges leaving node ``src``, in destination order."""
    return [k for k, (s, _) in enumerate(NB201_EDGES) if s == src]


EDGES = tuple(Edge("cell", k, src, dst, 1) for k, (src, dst) in enumerate(NB201_EDGES))


def _skip(channels: int, stride: int) -> nn.Module:
    """NB201's skip op for the edge parts (every cell edge has stride 1)."""
    return nn.Identity()


class _SearchCellBase(nn.Module):
    def __init__(self, C: int, edge_parts: Sequence[EdgePartSpec], track_running_stats: bool):
        super().__init__()
        self.C = C
        self.parts = EdgeParts(edge_parts, CellEdges(EDGES, C, _skip, track_running_stats))
        self.c_op = self.parts.width

    @staticmethod
    def _sum(terms, like: torch.Tensor) -> torch.Tensor:
        return sum_edge_outputs(terms, like.shape, like)


class FastSearchCell(_SearchCellBase):
    """Node-batched NB201 search cell (see module docstring)."""

    #: the layout the supernet gives this cell's input (and so every tensor of the network): NHWC, where
    #: oneDNN's CPU conv backward is several times faster than NCHW (docs/SPEED.md)
    memory_format = torch.channels_last
    #: runs under torch.func.vmap (a seed-stacked group, nascli/search/stacked.py): there the layout queries
    #: answer NCHW (nascli/spaces/layout.py), so the wide conv, the pooling kernel and the plain shuffle run
    runs_under_vmap = True

    def __init__(self, C: int, edge_parts: Sequence[EdgePartSpec] = (), track_running_stats: bool = True):
        super().__init__(C, edge_parts, track_running_stats)
        c = self.c_op
        self.conv1 = nn.ModuleList()
        self.conv3 = nn.ModuleList()
        self.bn1 = nn.ModuleList()
        self.bn3 = nn.ModuleList()
        for src in range(NUM_NODES - 1):
            n = len(_outgoing(src))
            self.conv1.append(nn.Conv2d(c, n * c, 1, bias=True))
            self.conv3.append(nn.Conv2d(c, n * c, 3, padding=1, bias=True))
            self.bn1.append(nn.BatchNorm2d(n * c, affine=False, track_running_stats=track_running_stats))
            self.bn3.append(nn.BatchNorm2d(n * c, affine=False, track_running_stats=track_running_stats))

    def _conv(self, src: int, kind: str, xr: torch.Tensor, locals_: list[int], n_out: int,
              scale: torch.Tensor) -> dict[int, torch.Tensor]:
        """w[e, o] * BN(conv_o(relu(x_src))) for the edges ``locals_`` (indices among the ``n_out`` edges leaving
        ``src``; ``scale[k]`` is edge k's mixing weight of this op). The mixing weight is the BN's per-channel
        weight (the BN is not affine), so the BN and the multiply are one kernel and dL/dw comes out of the BN
        backward; it is a contiguous vector (torch 2.13's channels-last BN backward misreads an expanded one).

        NCHW with every edge needed: one conv with ``n_out * C`` output channels and one BN, sliced per edge.
        Otherwise (a sampled subset, or a channels-last input, where oneDNN's wide conv followed by
        channel slices is slower than separate convs): one conv per edge on its slice of the weights and one
        BN on its slice of the statistics (updated in place). Running statistics follow nn.BatchNorm2d's rule
        (momentum, or the cumulative average when momentum is None), counted once per forward."""
        conv = (self.conv1 if kind == "nor_conv_1x1" else self.conv3)[src]
        norm = (self.bn1 if kind == "nor_conv_1x1" else self.bn3)[src]
        c = self.c_op
        use_batch, factor = count_batch(norm)  # once per forward, as the wide nn.BatchNorm2d counts
        if len(locals_) == n_out and not stored_channels_last(xr):  # (inside vmap: the wide conv)
            y = F.batch_norm(conv(xr), norm.running_mean, norm.running_var, scale.repeat_interleave(c), None,
                             use_batch, factor, norm.eps)
            return {k: y[:, k * c:(k + 1) * c] for k in locals_}
        out = {}
        for k in locals_:
            sl = slice(k * c, (k + 1) * c)
            y = F.conv2d(xr, conv.weight[sl], conv.bias[sl], padding=conv.padding)
            rm = norm.running_mean[sl] if norm.running_mean is not None else None
            rv = norm.running_var[sl] if norm.running_var is not None else None
            out[k] = F.batch_norm(y, rm, rv, scale[k].repeat(c), None, use_batch, factor, norm.eps)
        return out

    def _node_outputs(self, src: int, x: torch.Tensor, w: EdgeWeights) -> dict[int, dict[int, torch.Tensor]]:
        """Op outputs (op index -> tensor) for every edge leaving ``src`` (keyed by alpha row); the conv ops'
        outputs already carry their mixing weight (:meth:`_conv`), the others do not."""
        rows = _outgoing(src)
        xo = self.parts.op_input(x)
        need = {e: w.ops_of(e, NONE) for e in rows}
        outs: dict[int, dict[int, torch.Tensor]] = {e: {} for e in rows}
        if any(OP_INDEX[k] in ops for ops in need.values() for k in CONV_OPS):
            xr = F.relu(xo)
            for kind in CONV_OPS:
                o = OP_INDEX[kind]
                locals_ = [k for k, e in enumerate(rows) if o in need[e]]
                if locals_:
                    scale = w.weights[rows, o]
                    for k, y in self._conv(src, kind, xr, locals_, len(rows), scale).items():
                        outs[rows[k]][o] = y
        if any(OP_INDEX["avg_pool_3x3"] in ops for ops in need.values()):
            pooled = pooling.avg_pool_3x3(xo)
            for e in rows:
                if OP_INDEX["avg_pool_3x3"] in need[e]:
                    outs[e][OP_INDEX["avg_pool_3x3"]] = pooled
        for e in rows:
            if OP_INDEX["skip_connect"] in need[e]:
                outs[e][OP_INDEX["skip_connect"]] = xo
        return outs

    def forward(self, x: torch.Tensor, w: EdgeWeights) -> torch.Tensor:
        """Each edge's mixture: the weighted conv outputs summed, then ``mixed + w[e, o] * y`` for pooling and
        skip as one ``addcmul`` each."""
        nodes = [x]
        incoming: dict[int, list] = {i: [] for i in range(1, NUM_NODES)}
        for src in range(NUM_NODES - 1):
            xs = nodes[src]
            for e, ops in self._node_outputs(src, xs, w).items():
                mixed = None
                for o, y in ops.items():
                    if o in WEIGHTED_BY_BN:
                        mixed = y if mixed is None else mixed + y
                    else:
                        mixed = w.weights[e, o] * y if mixed is None else torch.addcmul(mixed, y, w.weights[e, o])
                incoming[NB201_EDGES[e][1]].append(self.parts.finish(mixed, xs, EDGES[e], w, x.shape))
            nodes.append(self._sum(incoming[src + 1], x))
        return nodes[-1]


class ReferenceSearchCell(_SearchCellBase):
    """Plain NB201 search cell: one module per op per edge, summed with the mixer's weights."""

    memory_format = None  # the input's own (NCHW, like the official code; channels-last on CUDA: to_device)
    #: plain torch ops: the forward runs under torch.func.vmap (a seed-stacked group, nascli/search/stacked.py)
    runs_under_vmap = True

    def __init__(self, C: int, edge_parts: Sequence[EdgePartSpec] = (), track_running_stats: bool = True):
        super().__init__(C, edge_parts, track_running_stats)
        self.edges = nn.ModuleList(
            nn.ModuleList(op_module(name, self.c_op, False, track_running_stats) or nn.Identity()
                          for name in NB201_OPS)
            for _ in NB201_EDGES)

    def forward(self, x: torch.Tensor, w: EdgeWeights) -> torch.Tensor:
        nodes = [x]
        for i in range(1, NUM_NODES):
            terms = []
            for e, (src, dst) in enumerate(NB201_EDGES):
                if dst != i:
                    continue
                xs = nodes[src]
                xo = self.parts.op_input(xs)
                mixed = None
                for o in w.ops_of(e, NONE):
                    t = w.weights[e, o] * self.edges[e][o](xo)
                    mixed = t if mixed is None else mixed + t
                terms.append(self.parts.finish(mixed, xs, EDGES[e], w, x.shape))
            nodes.append(self._sum(terms, x))
        return nodes[-1]


@torch.no_grad()
def copy_reference_to_fast(ref: ReferenceSearchCell, fast: FastSearchCell) -> None:
    """Load a reference cell's weights (and BN statistics) into a fast cell, edge by edge."""
    c = fast.c_op
    for src in range(NUM_NODES - 1):
        for k, e in enumerate(_outgoing(src)):
            sl = slice(k * c, (k + 1) * c)
            for kind, convs, norms in (("nor_conv_1x1", fast.conv1, fast.bn1), ("nor_conv_3x3", fast.conv3, fast.bn3)):
                _, conv, norm = ref.edges[e][OP_INDEX[kind]]
                convs[src].weight[sl] = conv.weight
                convs[src].bias[sl] = conv.bias
                if norm.running_mean is not None:
                    norms[src].running_mean[sl] = norm.running_mean
                    norms[src].running_var[sl] = norm.running_var
