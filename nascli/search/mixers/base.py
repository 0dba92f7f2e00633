"""Mixers own the architecture parameters and decide how the ops of each edge are combined.

A mixer never builds ops; the space's cells ask it, once per forward pass and cell type, for an
:class:`EdgeWeights` and compute, for every edge e,

    out_e = edge_scale_e * parts.combine(sum_{o in active_e} weights[e, o] * op_o(x)) + passthrough_e
            + parts.extra(x)

(``parts``: the method's edge parts, nascli/spaces/edge.py).
``none`` is never computed (its output is zero). Interventions (fixing an edge to one op, masking
an op) are applied here, on top of any mixer, so selection criteria work for every method.

Restricting an edge to an op group G (:meth:`Mixer.restrict_edge`; GM-NAS's sub-supernets) is an intervention
that the mixer's own rule sees, so the edge still carries a normalised mixture over G:

* a deterministic relaxation (``samples_paths`` False) has its weights renormalised over G,
  w'_o = w_o / sum_{k in G} w_k for o in G, 0 outside: for softmax(alpha) that is exactly the softmax over G
  (exp(alpha_o) / sum_{k in G} exp(alpha_k), value and gradient); for a Dirichlet sample it is a sample of the
  Dirichlet over G (the aggregation property); a group whose weights are all 0 stays 0;
* a sampling mixer (``samples_paths`` True) draws its sample among G only: while it mixes a restricted cell
  type, ``self.alphas`` reads as alpha with -inf outside the groups (differentiable; no gradient reaches the
  excluded entries), so its sampling rule (Gumbel-softmax: softmax over G) never picks an excluded op.

Restrictions persist through :meth:`Mixer.clear_interventions` (probes clear only their own fixes and masks)
and are part of the mixer's ``state_dict`` (key ``restricted_ops``, written only while there are any).
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
RESTRICTED_KEY = "restricted_ops"  # the state_dict entry of the edge restrictions


def _renormalised(w: EdgeWeights, allowed: torch.Tensor) -> EdgeWeights:
    """``w`` with its op weights renormalised over ``allowed`` (E, O) per edge and the other ops dropped from
    ``active``; an edge whose allowed weights sum to 0 keeps weight 0 everywhere."""
    kept = w.weights * allowed.to(w.weights.dtype)
    total = kept.sum(-1, keepdim=True)
    weights = kept / torch.where(total == 0, torch.ones_like(total), total)
    rows = allowed.tolist()
    active = None if w.active is None else [[o for o in a if rows[e][o]] for e, a in enumerate(w.active)]
    if active is None and not all(all(r) for r in rows):
        active = [[o for o, ok in enumerate(r) if ok] for r in rows]
    return EdgeWeights(weights, active, w.passthrough, w.edge_scale)


class Mixer(nn.Module, ABC):
    """Base mixer: one alpha matrix (E, O) per cell type, initialised to 1e-3 * N(0, 1) (DARTS)."""

    #: whether each forward pass samples a path (single-path methods) instead of mixing deterministically
    samples_paths: bool = False
    #: whether :meth:`mixing_override` may set the op weights (deterministic relaxations; a sampler cannot)
    supports_mixing_override: bool = False
    _override: dict[str, torch.Tensor] | None = None
    #: why :meth:`edge_weights` cannot run under ``torch.func.vmap`` (a seed-stacked forward,
    #: nascli/search/stacked.py), or None when it can
    vmap_problem: str | None = None

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
        self._restricted: dict[tuple[str, int], tuple[int, ...]] = {}
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
        allowed = self.allowed_ops(cell_type)
        if allowed is not None and self.samples_paths:
            with self._restricted_logits(cell_type, allowed):
                w = self.mix(cell_type)
        else:
            w = self.mix(cell_type)
        if self._override is not None:
            w = EdgeWeights(self._override[cell_type], w.active, w.passthrough, w.edge_scale)
        if allowed is not None and not self.samples_paths:
            w = _renormalised(w, allowed)
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

    @property
    def override(self) -> dict[str, torch.Tensor] | None:
        """The op weights a :meth:`mixing_override` block has set (None outside one)."""
        return self._override

    def interventions(self) -> tuple:
        """The fixes, masks, restrictions and held flag, as comparable values (a seed-stacked forward,
        nascli/search/stacked.py, runs one mixer's modules for every seed and needs them equal)."""
        return (dict(self._fixed), set(self._masked), dict(self._restricted), self._held)

    def fix_edge(self, cell_type: str, edge: int, op: int) -> None:
        """Replace the mixture on ``edge`` by ``op`` alone (weight 1)."""
        self._fixed[(cell_type, edge)] = op

    def mask_op(self, cell_type: str, edge: int, op: int) -> None:
        """Remove ``op`` from the mixture on ``edge`` (weight 0, the others unchanged)."""
        self._masked.add((cell_type, edge, op))

    def clear_interventions(self) -> None:
        """Drop the fixes and masks (not the restrictions: see :meth:`clear_restrictions`)."""
        self._fixed.clear()
        self._masked.clear()

    # ----- restriction to op groups (module docstring) -----------------------------------------
    def restrict_edge(self, cell_type: str, edge: int, ops: list[int] | tuple[int, ...]) -> None:
        """Keep only ``ops`` on ``edge`` of ``cell_type``, with the mixture renormalised over them."""
        group = tuple(sorted({int(o) for o in ops}))
        if cell_type not in self.alphas or not 0 <= int(edge) < self.alphas[cell_type].shape[0]:
            raise ValueError(f"no edge {edge} of cell type {cell_type!r} to restrict")
        if not group or group[0] < 0 or group[-1] >= len(self.ops):
            raise ValueError(f"op group {list(ops)} is empty or not among the {len(self.ops)} ops")
        self._restricted[(cell_type, int(edge))] = group

    def restrictions(self) -> dict[tuple[str, int], tuple[int, ...]]:
        """(cell type, edge) -> the op indices kept there."""
        return dict(self._restricted)

    def clear_restrictions(self) -> None:
        self._restricted.clear()

    def allowed_ops(self, cell_type: str) -> torch.Tensor | None:
        """(E, O) bool: the ops each edge of ``cell_type`` may use (``None`` when none is restricted)."""
        hits = [(e, ops) for (ct, e), ops in self._restricted.items() if ct == cell_type]
        if not hits:
            return None
        alpha = self.alphas[cell_type]
        mask = torch.ones(alpha.shape, dtype=torch.bool, device=alpha.device)
        for e, ops in hits:
            mask[e] = False
            mask[e, list(ops)] = True
        return mask

    @contextlib.contextmanager
    def _restricted_logits(self, cell_type: str, allowed: torch.Tensor) -> Iterator[None]:
        """For the block, ``self.alphas[cell_type]`` is alpha with -inf outside ``allowed`` (module docstring)."""
        view = {ct: a for ct, a in self.alphas.items()}
        view[cell_type] = self.alphas[cell_type].masked_fill(~allowed, float("-inf"))
        self.__dict__["alphas"] = view  # an instance attribute shadows the registered ParameterDict
        try:
            yield
        finally:
            del self.__dict__["alphas"]

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self._restricted:  # rows (cell type index, edge, op) of every op kept on a restricted edge
            types = list(self.alphas)
            destination[prefix + RESTRICTED_KEY] = torch.tensor(
                [[types.index(ct), e, o] for (ct, e), ops in sorted(self._restricted.items()) for o in ops],
                dtype=torch.long)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        key = prefix + RESTRICTED_KEY
        if key in unexpected_keys:
            unexpected_keys.remove(key)
        self._restricted.clear()  # the state's restrictions replace the current ones (none: unrestricted)
        if key in state_dict:
            types = list(self.alphas)
            groups: dict[tuple[str, int], list[int]] = {}
            for t, e, o in state_dict[key].tolist():
                groups.setdefault((types[t], e), []).append(o)
            for (ct, e), ops in groups.items():
                self.restrict_edge(ct, e, ops)

    # ----- schedules ---------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        """Hook for schedules owned by the mixer (e.g. the Gumbel temperature)."""

    def schedule_values(self) -> dict[str, float]:
        """Current values of the mixer's schedules for metrics.jsonl."""
        return {}
