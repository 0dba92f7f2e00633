"""Mixers own the architecture parameters and decide how the ops of each edge are combined.

A mixer never builds ops; the space's cells ask it, once per forward pass and cell type, for an
:class:`EdgeWeights` and compute, for every edge e,

    out_e = edge_scale_e * sum_{o in active_e} weights[e, o] * op_o(x)   (+ partial-channel bypass)
            + passthrough_e  (+ aux_coef * aux_e(x) when the supernet has DARTS- auxiliary skips)

``none`` is never computed (its output is zero). Interventions (fixing an edge to one op, masking
an op) are applied here, on top of any mixer, so selection criteria work for every method.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import nn

from nascli.registry import Registry


@dataclass
class EdgeWeights:
    """Per-forward mixing instructions for the E edges of one cell type (O candidate ops).

    weights: (E, O) coefficient of each op output.
    active: per edge the op indices to compute; ``None`` means every op except ``none``.
        An empty list means the edge computes no op (its output is ``passthrough`` only).
    passthrough: (E,) scalars added to the edge output (GDAS: the zero-valued straight-through
        weights of the ops that were not sampled, so that every alpha receives a gradient).
    edge_scale: (E,) factor on the whole edge output incl. the partial-channel bypass
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
    nothing) are zeros; when only scalar passthroughs remain they broadcast to ``shape``."""
    total = None
    for t in terms:
        if t is None:
            continue
        total = t if total is None else total + t
    if total is None:
        return like.new_zeros(shape)
    if not torch.is_tensor(total) or total.dim() == 0:
        return like.new_zeros(shape) + total
    return total


MIXERS: Registry[type["Mixer"]] = Registry("mixer")


class Mixer(nn.Module, ABC):
    """Base mixer: one alpha matrix (E, O) per cell type, initialised to 1e-3 * N(0, 1) (DARTS)."""

    def __init__(self, space, init_scale: float = 1e-3, **_: object):
        super().__init__()
        self.space = space
        self.ops = tuple(space.ops)
        self.none_index = self.ops.index(space.none_op) if space.none_op in self.ops else None
        self.alphas = nn.ParameterDict({
            ct: nn.Parameter(init_scale * torch.randn(space.num_edges(ct), len(self.ops)))
            for ct in space.cell_types
        })
        self._fixed: dict[tuple[str, int], int] = {}
        self._masked: set[tuple[str, int, int]] = set()

    # ----- parameters -------------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """Every parameter the architecture optimizer updates (subclasses may add e.g. edge betas)."""
        return list(self.parameters())

    # ----- per-forward weights ----------------------------------------------------------------
    @abstractmethod
    def mix(self, cell_type: str) -> EdgeWeights:
        """The method's own mixing rule (softmax, Gumbel sample, ...)."""

    def edge_weights(self, cell_type: str) -> EdgeWeights:
        """What the cells call: the method's weights with the current interventions applied."""
        w = self.mix(cell_type)
        if not self._fixed and not self._masked:
            return w
        weights = w.weights.clone()
        active = [list(range(len(self.ops))) for _ in range(weights.shape[0])] if w.active is None \
            else [list(a) for a in w.active]
        scale = w.edge_scale.clone() if w.edge_scale is not None else None
        for (ct, e, o) in self._masked:
            if ct == cell_type:
                weights[e, o] = 0.0
                active[e] = [k for k in active[e] if k != o]
        for (ct, e), o in self._fixed.items():
            if ct == cell_type:
                weights[e] = 0.0
                weights[e, o] = 1.0
                active[e] = [o]
                if scale is not None:
                    scale[e] = 1.0
        passthrough = w.passthrough
        if passthrough is not None:
            passthrough = passthrough.clone()
            for (ct, e) in self._fixed:
                if ct == cell_type:
                    passthrough[e] = 0.0
        return EdgeWeights(weights, active, passthrough, scale)

    @abstractmethod
    def selection_scores(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
        """Deterministic (op_scores (E, O), edge_scores (E,) or None) per cell type for magnitude selection."""

    def probabilities(self) -> dict[str, torch.Tensor]:
        """softmax(alpha) per cell type: what entropy and trajectories are reported on."""
        return {ct: torch.softmax(a.detach(), dim=-1) for ct, a in self.alphas.items()}

    # ----- interventions used by selection criteria ------------------------------------------
    def fix_edge(self, cell_type: str, edge: int, op: int) -> None:
        """Replace the mixture on ``edge`` by ``op`` alone (weight 1)."""
        self._fixed[(cell_type, edge)] = op

    def mask_op(self, cell_type: str, edge: int, op: int) -> None:
        """Remove ``op`` from the mixture on ``edge`` (weight 0, the others unchanged)."""
        self._masked.add((cell_type, edge, op))

    def clear_interventions(self) -> None:
        self._fixed.clear()
        self._masked.clear()

    # ----- schedules ---------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Hook for schedules owned by the mixer (e.g. the Gumbel temperature)."""

    def schedule_values(self) -> dict[str, float]:
        """Current values of the mixer's schedules for metrics.jsonl."""
        return {}
