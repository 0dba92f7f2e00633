"""Mixers own the architecture parameters and decide how the ops of each edge are combined.

A mixer never builds ops; the space's cells ask it, once per forward pass and cell type, for an
:class:`EdgeWeights` and compute, for every edge e,

    out_e = edge_scale_e * parts.combine(sum_{o in active_e} weights[e, o] * op_o(x)) + passthrough_e
            + parts.extra(x)

(``parts``: the method's edge parts, nascli/spaces/edge.py).
``none`` is never computed (its output is zero). Interventions (fixing an edge to one op, masking
an op) are applied here, on top of any mixer, so selection criteria work for every method.
:meth:`Mixer.mixing_override` replaces the op weights by given probabilities for a block (SDARTS,
MS-DARTS train w at perturbed softmax(alpha)); only deterministic relaxations support it.
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch
from torch import nn

from nascli.errors import IncompatibleError
from nascli.registry import Registry
from nascli.spaces.edge import EdgeWeights, sum_edge_outputs

__all__ = ["MIXERS", "EdgeWeights", "Mixer", "sum_edge_outputs"]


MIXERS: Registry[type["Mixer"]] = Registry("mixer")


class Mixer(nn.Module, ABC):
    """Base mixer: one alpha matrix (E, O) per cell type, initialised to 1e-3 * N(0, 1) (DARTS)."""

    #: whether each forward pass samples a path (single-path methods) instead of mixing deterministically
    samples_paths: bool = False
    #: whether :meth:`mixing_override` may set the op weights (deterministic relaxations; a sampler cannot)
    supports_mixing_override: bool = False
    _override: dict[str, torch.Tensor] | None = None

    def __init__(self, space, init_scale: float = 1e-3):
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
        self._held = False

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
        if self._override is not None:
            w = EdgeWeights(self._override[cell_type], w.active, w.passthrough, w.edge_scale)
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
                    scale[e] = self.fixed_edge_scale(scale[e])
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
    def fixed_edge_scale(self, scale: torch.Tensor) -> torch.Tensor:
        """The edge scale of an edge fixed to one op. Default: unchanged, so a mixture weight on the edge
        (PC-DARTS's normalised share) keeps its value; gating mixers (ROME) switch the edge on (1)."""
        return scale

    def masked_ops(self, cell_type: str) -> torch.Tensor | None:
        """(E, O) bool: ops removed by ``mask_op`` on ``cell_type`` (``None`` when there are none)."""
        hits = [(e, o) for (ct, e, o) in self._masked if ct == cell_type]
        if not hits:
            return None
        alpha = self.alphas[cell_type]
        mask = torch.zeros(alpha.shape, dtype=torch.bool, device=alpha.device)
        for e, o in hits:
            mask[e, o] = True
        return mask

    @property
    def held(self) -> bool:
        """Whether a probe holds the path fixed (see :meth:`held_path`)."""
        return self._held

    @contextlib.contextmanager
    def held_path(self) -> Iterator[None]:
        """Deterministic mixing for the whole block (selection probes): stochastic mixers use their most
        likely path (argmax of the op and edge parameters, skipping masked ops) instead of a fresh sample
        per forward, so differences of losses measure interventions, not sampling noise. Deterministic
        mixers are unaffected."""
        before, self._held = self._held, True
        try:
            yield
        finally:
            self._held = before

    @contextlib.contextmanager
    def mixing_override(self, probs: dict[str, torch.Tensor]) -> Iterator[None]:
        """For the block, :meth:`edge_weights` uses ``probs[cell_type]`` (E, O) as the op weights as they are
        (no softmax, not detached: a gradient reaches them); the mixer's edge scale and passthrough and the
        interventions still apply, and alpha is untouched. Every cell type needs its tensor of alpha's shape.
        Raises :class:`~nascli.errors.IncompatibleError` on a mixer that samples its weights."""
        if not self.supports_mixing_override:
            raise IncompatibleError(f"mixer {type(self).__name__} samples its mixing weights and cannot train at "
                                    f"given probabilities")
        if set(probs) != set(self.alphas) or any(probs[ct].shape != a.shape for ct, a in self.alphas.items()):
            raise ValueError(f"mixing_override needs one tensor per cell type shaped like alpha "
                             f"{ {ct: tuple(a.shape) for ct, a in self.alphas.items()} }")
        before, self._override = self._override, dict(probs)
        try:
            yield
        finally:
            self._override = before

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
