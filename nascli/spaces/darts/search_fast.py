"""The fast DARTS search cell: the reference cell's modules and function, computed with less work.

Same parameters and buffers as :class:`~nascli.spaces.darts.search_cells.ReferenceSearchCell` (so
:func:`copy_reference_cell_to_fast` is a state-dict copy and the parameter counts agree), and the same
edge formula (module docstring of ``search_cells.py``). What is done differently (measured in
docs/SPEED.md):

* channels-last tensors throughout (the supernet converts its input): oneDNN's depthwise and 1x1
  kernels are several times faster in NHWC on CPU;
* the depthwise convs use :mod:`nascli.spaces.darts.search_conv` (a CPU backward built from fast
  forward kernels);
* per source node, work that every outgoing edge repeats is done once: ReLU(x) (read by sep/dil convs
  and FactorizedReduce), its even/odd subsamples (stride-2 dil convs and FactorizedReduce), max/avg
  pooling and -- in training mode, where the BatchNorm after a pool only uses the
  batch statistics of that same pooled tensor -- the pool's BN normalisation (each edge's running
  statistics still get their own update);
* the mixing coefficient w[e, o] (times edge_scale) of an op that ends in a non-affine BatchNorm is
  passed as that BN's ``weight``: BN(z) * w in one kernel, and dL/dw comes out of the BN backward;
* ``none`` is never computed; ops outside ``EdgeWeights.active`` are not computed (single-path
  methods); the coefficients are unbound once per forward pass and cell type, not per cell.

Ops are dispatched by name through the cell's op table (``op_names[e][k]``, the space's ``edge_ops``), so the
R-DARTS variants with 2-3 ops per edge (and ``noise``: a fresh N(0, 1) tensor per edge and call) run here too.
"""
from __future__ import annotations

from functools import cached_property

import torch
import torch.nn.functional as F
from torch import nn

from collections.abc import Sequence

from nascli.spaces.base import Edge
from nascli.spaces import pooling
from nascli.spaces.batch_norm import count_batch
from nascli.spaces.layout import relayout
from nascli.spaces.darts.ops import DARTS_OP_SET, OpSet
from nascli.spaces.darts.search_cells import SearchCellBase, build_edge_ops
from nascli.spaces.edge import EdgePartSpec, EdgeWeights
from nascli.spaces.darts.search_conv import depthwise_conv, use_fast_backward

CL = torch.channels_last
# parameter-free pooling ops: op name -> fn(x, stride) (PRIMITIVES max/avg_pool_3x3, pad 1)
POOLS = {
    "max_pool_3x3": lambda x, s: F.max_pool2d(x, 3, s, 1),
    "avg_pool_3x3": lambda x, s: pooling.avg_pool_3x3(x, s),  # count_include_pad=False; a depthwise sum where it pays
}


class PreparedWeights:
    """One cell type's EdgeWeights as per-(edge, op) scalars / channel vectors, built once per forward.

    coef[e, o] = weights[e, o] * edge_scale[e] (edge_scale folded into the ops of the mixed part);
    ``none_cols[e]``: the column of ``none`` on edge e (None: no ``none``), never computed."""

    def __init__(self, w: EdgeWeights, none_cols: Sequence[int | None] | None = None):
        self.w = w
        coef = w.weights if w.edge_scale is None else w.weights * w.edge_scale[:, None]
        self.coef = coef
        self.scalars = [row.unbind(0) for row in coef.unbind(0)]
        cols = [None] * coef.shape[0] if none_cols is None else list(none_cols)
        self.ops = [w.ops_of(e, cols[e]) for e in range(coef.shape[0])]
        self.scale = None if w.edge_scale is None else w.edge_scale.unbind(0)
        pt = w.passthrough
        self.passthrough = None if pt is None else (pt.unbind(0) if torch.is_tensor(pt) and pt.dim() else
                                                    [pt] * coef.shape[0])
        self._vectors: dict[int, list] = {}

    def vector(self, e: int, o: int, channels: int) -> torch.Tensor:
        """coef[e, o] expanded to ``channels`` (a BatchNorm weight)."""
        if channels not in self._vectors:
            # contiguous: the CPU channels-last BatchNorm backward misreads a stride-0 weight (torch 2.13)
            expanded = self.coef[:, :, None].expand(-1, -1, channels).contiguous()
            self._vectors[channels] = [row.unbind(0) for row in expanded.unbind(0)]
        return self._vectors[channels][e][o]


#: channels-last CPU tensors with at most this many channels are normalised in NCHW (copied there and back):
#: oneDNN's NHWC BatchNorm is slow at so few channels (the PC-DARTS K=4 ops see 4 at the first stage):
#: `scripts/bn_layout_accuracy.py --speed`, docs/SPEED.md
FEW_CHANNELS = 4


def batch_norm(h: torch.Tensor, bn: nn.BatchNorm2d, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``bn(h) * weight`` (bn is non-affine) exactly as nn.BatchNorm2d.forward, incl. running statistics.
    A channels-last CPU ``h`` with at most :data:`FEW_CHANNELS` channels is normalised in NCHW (the result is
    channels-last again; both copies are :func:`relayout`, so the BN backward gets an NCHW gradient and ``h`` a
    channels-last one)."""
    use_batch, factor = count_batch(bn)
    keep = not bn.training or bn.track_running_stats
    few = h.shape[1] <= FEW_CHANNELS and h.device.type == "cpu" and h.is_contiguous(memory_format=CL)
    out = F.batch_norm(relayout(h, torch.contiguous_format) if few else h, bn.running_mean if keep else None,
                       bn.running_var if keep else None, weight, None, use_batch, factor, bn.eps)
    return relayout(out, CL) if few else out


@torch.no_grad()
def _repeat_running_update(first: nn.BatchNorm2d, before: tuple[torch.Tensor, torch.Tensor],
                           others: list[nn.BatchNorm2d]) -> None:
    """Apply the batch statistics that just updated ``first`` to the running statistics of ``others``."""
    f1 = 1.0 / float(first.num_batches_tracked) if first.momentum is None else first.momentum
    mean = (first.running_mean - (1 - f1) * before[0]) / f1
    var = (first.running_var - (1 - f1) * before[1]) / f1
    for bn in others:
        bn.num_batches_tracked.add_(1)
        f = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        bn.running_mean.mul_(1 - f).add_(f * mean)
        bn.running_var.mul_(1 - f).add_(f * var)


class _NodeFeatures:
    """What the edges leaving one node share, computed on first use."""

    def __init__(self, cell: "FastSearchCell", x: torch.Tensor, stride: int):
        self.cell, self.x, self.stride = cell, x, stride

    @cached_property
    def xo(self) -> torch.Tensor:
        """The channels the ops see (the edge parts' op input, e.g. the first C/K under partial channels)."""
        if not self.cell.parts.narrows:
            return self.cell.parts.op_input(self.x)
        return self.cell.parts.op_input(self.x).contiguous(memory_format=CL)

    @cached_property
    def relu(self) -> torch.Tensor:
        return F.relu(self.xo)

    @cached_property
    def even(self) -> torch.Tensor:
        return self.relu[:, :, ::2, ::2].contiguous(memory_format=CL)

    @cached_property
    def odd(self) -> torch.Tensor:
        """relu(x)[1::2, 1::2], padded at the end for odd sizes (FactorizedReduce's shifted conv input)."""
        r = self.relu
        out = r[:, :, 1::2, 1::2]
        if r.shape[2] % 2 or r.shape[3] % 2:
            out = F.pad(out, (0, r.shape[3] % 2, 0, r.shape[2] % 2))
        return out.contiguous(memory_format=CL)

    def pooled(self, name: str) -> torch.Tensor:
        """max/avg pool (op ``name``) of the op channels, once per node."""
        key = f"_pool_{name}"
        if key not in self.__dict__:
            self.__dict__[key] = POOLS[name](self.xo, self.stride)
        return self.__dict__[key]


class FastSearchCell(SearchCellBase):
    """Fast DARTS search cell (module docstring); parameters identical to the reference cell."""

    memory_format = CL

    def __init__(self, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool,
                 edge_parts: Sequence[EdgePartSpec] = (), track_running_stats: bool = True, steps: int = 4,
                 multiplier: int = 4, edge_ops: Sequence[Sequence[str]] | None = None,
                 op_set: OpSet = DARTS_OP_SET):
        super().__init__(C_prev_prev, C_prev, C, reduction, reduction_prev, edge_parts, track_running_stats,
                         steps, multiplier, edge_ops, op_set)
        self.edges = build_edge_ops(self.edge_list, self.c_op, self.track, self.op_names, op_set)
        self.outgoing: list[list[Edge]] = [[e for e in self.edge_list if e.src == j]
                                           for j in range(2 + steps - 1)]
        kernels = {"pool": self._pool, "skip": self._skip, "sep": self._sep, "dil": self._dil,
                   "noise": self._noise, "sharp": self._sharp}
        op_fns = {name: kernels[kind] for name, kind in op_set.kernels.items()}
        # per edge and column the function computing that op (None for none, which is never called)
        self._op_fns = [[op_fns.get(name) for name in names] for names in self.op_names]
        missing = sorted({n for names in self.op_names for n in names if n != "none" and n not in op_fns})
        if missing:
            raise ValueError(f"the fast DARTS search cell has no implementation of {missing}; use impl=reference")

    @staticmethod
    def prepare(w: EdgeWeights, none_cols: Sequence[int | None] | None = None) -> PreparedWeights:
        """Done once per forward pass and cell type by the supernet (shared by all cells of the type)."""
        return PreparedWeights(w, none_cols)

    # ----- ops: each returns its weighted output coef[e, o] * op_o(x) -------------------------------
    def _sep(self, e: Edge, o: int, f: _NodeFeatures, p: PreparedWeights, shared: dict):
        _, dw1, pw1, bn1, _, dw2, pw2, bn2 = self.edges[e.index][o]
        h = depthwise_conv(f.relu, dw1.weight, e.stride)
        h = F.relu(batch_norm(F.conv2d(h, pw1.weight), bn1))
        h = F.conv2d(depthwise_conv(h, dw2.weight), pw2.weight)
        return batch_norm(h, bn2, p.vector(e.index, o, self.c_op))

    def _sharp(self, e: Edge, o: int, f: _NodeFeatures, p: PreparedWeights, shared: dict):
        """sharpDARTS SharpSepConv (nascli/spaces/darts/sharp.py): DW k x k (stride s, dilation d) -> 1x1 to
        C_mid -> BN -> ReLU -> DW k x k (C_mid) -> 1x1 to C -> BN, as ``_sep`` with the first conv's dilation."""
        _, dw1, pw1, bn1, _, dw2, pw2, bn2 = self.edges[e.index][o]
        d = dw1.dilation[0]
        if d == 2 and e.stride == 2 and use_fast_backward(f.relu):  # dilation 2 + stride 2 reads the even pixels
            h = depthwise_conv(f.even, dw1.weight)
        else:
            h = depthwise_conv(f.relu, dw1.weight, e.stride, d)
        h = F.relu(batch_norm(F.conv2d(h, pw1.weight), bn1))
        h = F.conv2d(depthwise_conv(h, dw2.weight), pw2.weight)
        return batch_norm(h, bn2, p.vector(e.index, o, self.c_op))

    def _dil(self, e: Edge, o: int, f: _NodeFeatures, p: PreparedWeights, shared: dict):
        _, dw, pw, bn = self.edges[e.index][o]
        if e.stride == 2 and use_fast_backward(f.relu):  # dilation 2 + stride 2 reads the even pixels only
            h = depthwise_conv(f.even, dw.weight)
        else:
            h = depthwise_conv(f.relu, dw.weight, e.stride, 2)
        return batch_norm(F.conv2d(h, pw.weight), bn, p.vector(e.index, o, self.c_op))

    def _factorized_reduce(self, fr: nn.Module, f: _NodeFeatures, weight: torch.Tensor) -> torch.Tensor:
        h = torch.cat([F.conv2d(f.even, fr.conv_1.weight), F.conv2d(f.odd, fr.conv_2.weight)], dim=1)
        return batch_norm(h, fr.bn, weight)

    def _skip(self, e: Edge, o: int, f: _NodeFeatures, p: PreparedWeights, shared: dict):
        if e.stride == 1:
            return p.scalars[e.index][o] * f.xo
        return self._factorized_reduce(self.edges[e.index][o], f, p.vector(e.index, o, self.c_op))

    def _noise(self, e: Edge, o: int, f: _NodeFeatures, p: PreparedWeights, shared: dict):
        """coef * N(0, 1) noise of the (strided) op input's shape, fresh per edge (ops.Noise)."""
        return p.scalars[e.index][o] * self.edges[e.index][o](f.xo)

    def _pool(self, e: Edge, o: int, f: _NodeFeatures, p: PreparedWeights, shared: dict):
        """Pool once per node; in batch-statistics mode also normalise once (see module docstring). Edges
        share by op name: the same pool may sit in different columns of different edges."""
        name = self.op_names[e.index][o]
        bn = self.edges[e.index][o][1]
        if not (bn.training or bn.running_mean is None):  # eval with running statistics: per edge
            return batch_norm(f.pooled(name), bn, p.vector(e.index, o, self.c_op))
        key = ("pool", name)
        if key not in shared:
            users = [bn]
            for d in shared["edges"]:
                names = self.op_names[d.index]
                if d.index != e.index and name in names and names.index(name) in p.ops[d.index]:
                    users.append(self.edges[d.index][names.index(name)][1])
            track = bn.training and bn.track_running_stats
            before = (bn.running_mean.clone(), bn.running_var.clone()) if track and len(users) > 1 else None
            shared[key] = batch_norm(f.pooled(name), bn)
            if before is not None:
                _repeat_running_update(bn, before, users[1:])
        return p.scalars[e.index][o] * shared[key]

    # ----- edges and nodes --------------------------------------------------------------------------------
    def _edge(self, e: Edge, f: _NodeFeatures, p: PreparedWeights, shared: dict, shape) -> torch.Tensor | None:
        """The edge formula of nascli/spaces/edge.py with edge_scale folded into the op coefficients, so the
        parts scale only what they add themselves (``bypass_scale``); the passthrough is added per node."""
        terms = [self._op_fns[e.index][o](e, o, f, p, shared) for o in p.ops[e.index]]
        out = _sum(terms) if terms else None
        out = self.parts.combine(out, f.x, e, shape, None if p.scale is None else p.scale[e.index])
        a = self.parts.extra(f.x, e)
        if a is not None:
            out = a if out is None else out + a
        return out

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, w: EdgeWeights | PreparedWeights) -> torch.Tensor:
        p = w if isinstance(w, PreparedWeights) else PreparedWeights(w, self.none_cols)
        s0, s1 = self.preprocess(s0.contiguous(memory_format=CL), s1.contiguous(memory_format=CL))
        shape = self.out_shape(s1)
        states = [s0, s1]
        terms: dict[int, list] = {2 + i: [] for i in range(self.steps)}
        scalars: dict[int, list] = {2 + i: [] for i in range(self.steps)}
        for src, edges in enumerate(self.outgoing):
            if src >= 2:
                states.append(self._node(terms[src], scalars[src], shape, s1))
            f = _NodeFeatures(self, states[src], edges[0].stride)
            shared: dict = {"edges": edges}
            for e in edges:
                out = self._edge(e, f, p, shared, shape)
                if out is not None:
                    terms[e.dst].append(out)
                if p.passthrough is not None:
                    scalars[e.dst].append(p.passthrough[e.index])
        last = 1 + self.steps
        states.append(self._node(terms[last], scalars[last], shape, s1))
        return torch.cat(states[2:], dim=1)

    @staticmethod
    def _node(terms: list, scalars: list, shape, like: torch.Tensor) -> torch.Tensor:
        if terms:
            total = _sum(terms)
        else:
            total = _zeros(shape, like)
        return total + _sum(scalars) if scalars else total


def _zeros(shape, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros(shape, dtype=like.dtype, device=like.device).contiguous(memory_format=CL)


def _sum(terms: list):
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


@torch.no_grad()
def copy_reference_cell_to_fast(reference: nn.Module, fast: FastSearchCell) -> None:
    """Load a reference cell's weights and BN statistics into a fast cell (identical module layout)."""
    fast.load_state_dict(reference.state_dict())
