"""The edge-level interface between a search space and the method that searches it.

A space's search cells compute, for every searchable edge e = (j -> i) with input x = node j,

    mixed_e = sum_{o in active_e, o != none} w[e, o] * op_o(parts.op_input(x))
    out_e   = edge_scale_e * parts.combine(mixed_e, x, e) + passthrough_e + parts.extra(x, e)
    node_i  = sum_{j < i} out_e

where ``w``, ``active``, ``edge_scale`` and ``passthrough`` come from the mixer (:class:`EdgeWeights`, one per
forward pass and cell type) and ``parts`` are the method's edge parts (:class:`EdgePart`, e.g. PC-DARTS partial
channels or the DARTS- auxiliary skip), built once per cell through :class:`EdgePartSpec`. The space only
knows this interface: adding a method feature on edges touches no file under ``spaces/``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from nascli.spaces.base import Edge


@dataclass
class EdgeWeights:
    """Per-forward mixing instructions for the E edges of one cell type (O candidate ops).

    weights: (E, O) coefficient of each op output.
    active: per edge the op indices to compute; ``None`` means every op except ``none``.
        An empty list means the edge computes no op (its output is ``passthrough`` only).
    passthrough: (E,) scalars added to the edge output (GDAS: the zero-valued straight-through
        weights of the ops that were not sampled, so that every alpha receives a gradient).
    edge_scale: (E,) factor on the whole edge output incl. what the edge parts add in ``combine``
        (PC-DARTS edge normalisation, ROME edge gates).
    """

    weights: torch.Tensor
    active: list[list[int]] | None = None
    passthrough: torch.Tensor | None = None
    edge_scale: torch.Tensor | None = None

    def ops_of(self, edge: int, none_index: int | None) -> list[int]:
        """Op indices to compute on ``edge`` (never ``none``)."""
        if self.active is None:
            ops = range(self.weights.shape[1])
        else:
            ops = self.active[edge]
        return [o for o in ops if o != none_index]


def sum_edge_outputs(terms: list, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A node's value: the sum of its incoming edge outputs. ``None`` terms (edges that computed
    nothing) are zeros (in ``like``'s memory format when it has ``shape``); when only scalar passthroughs
    remain they broadcast to ``shape``."""
    total = None
    for t in terms:
        if t is None:
            continue
        total = t if total is None else total + t
    zeros = (lambda: torch.zeros_like(like)) if tuple(like.shape) == tuple(shape) else (lambda: like.new_zeros(shape))
    if total is None:
        return zeros()
    if not torch.is_tensor(total) or total.dim() == 0:
        return zeros() + total
    return total


@dataclass(frozen=True)
class CellEdges:
    """What a space tells an edge-part spec about one cell: its searchable edges, the node width C, and
    how the space builds its own skip op for a stride (identity for 1; e.g. FactorizedReduce for 2)."""

    edges: tuple[Edge, ...]
    channels: int
    make_skip: Callable[[int, int], nn.Module]
    track_running_stats: bool = True


class EdgePart(nn.Module):
    """One method feature on every edge of one cell (defaults: no effect).

    ``op_width(C)``: channels the candidate ops see (C unless the part narrows them).
    ``op_input(x)``: the ops' input taken from the node value ``x``.
    ``combine(mixed, x, edge, shape, bypass_scale)``: the edge output before ``edge_scale`` from the op sum
        ``mixed`` (``None`` when no op ran); ``bypass_scale`` multiplies what the part adds when the caller
        has already folded ``edge_scale`` into ``mixed`` (fast cells).
    ``extra(x, edge)``: a term added after ``edge_scale`` and the passthrough, or ``None``.
    """

    def op_width(self, channels: int) -> int:
        return channels

    def op_input(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def combine(self, mixed: torch.Tensor | None, x: torch.Tensor, edge: Edge, shape: tuple[int, ...],
                bypass_scale: torch.Tensor | None = None) -> torch.Tensor | None:
        return mixed

    def extra(self, x: torch.Tensor, edge: Edge) -> torch.Tensor | None:
        return None


class EdgePartSpec(nn.Module):
    """What a method contributes to a supernet: ``build(cell)`` makes the per-cell :class:`EdgePart`.

    The spec itself is a submodule of the supernet, so state shared by all cells (e.g. the DARTS- skip
    coefficient) lives in its buffers and is checkpointed once."""

    name: str = "edge_part"

    def build(self, cell: CellEdges) -> EdgePart:
        raise NotImplementedError


class EdgeParts(nn.Module):
    """The edge parts of one cell, applied in order (at most one part may narrow the op width)."""

    def __init__(self, specs: Sequence[EdgePartSpec], cell: CellEdges):
        super().__init__()
        self.parts = nn.ModuleList(spec.build(cell) for spec in specs)
        narrowing = [spec.name for spec, p in zip(specs, self.parts) if p.op_width(cell.channels) != cell.channels]
        if len(narrowing) > 1:
            raise ValueError(f"edge parts {narrowing} both change the op width; at most one may")
        self.width = cell.channels
        for p in self.parts:
            self.width = p.op_width(self.width)
        self.narrows = self.width != cell.channels

    def op_input(self, x: torch.Tensor) -> torch.Tensor:
        for p in self.parts:
            x = p.op_input(x)
        return x

    def combine(self, mixed: torch.Tensor | None, x: torch.Tensor, edge: Edge, shape: tuple[int, ...],
                bypass_scale: torch.Tensor | None = None) -> torch.Tensor | None:
        for p in self.parts:
            mixed = p.combine(mixed, x, edge, shape, bypass_scale)
        return mixed

    def extra(self, x: torch.Tensor, edge: Edge) -> torch.Tensor | None:
        total = None
        for p in self.parts:
            t = p.extra(x, edge)
            if t is not None:
                total = t if total is None else total + t
        return total

    def finish(self, mixed: torch.Tensor | None, x: torch.Tensor, edge: Edge, w: EdgeWeights,
               shape: tuple[int, ...]) -> torch.Tensor | None:
        """The whole edge formula of the module docstring after the op sum; ``None`` if nothing is added."""
        out = self.combine(mixed, x, edge, shape)
        if w.edge_scale is not None and out is not None:
            out = out * w.edge_scale[edge.index]
        if w.passthrough is not None:
            out = w.passthrough[edge.index] if out is None else out + w.passthrough[edge.index]
        a = self.extra(x, edge)
        if a is not None:
            out = a if out is None else out + a
        return out
