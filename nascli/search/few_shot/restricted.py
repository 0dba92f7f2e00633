"""Selecting inside a sub-supernet: scores and a space view that never leave the mixer's op groups.

A restricted supernet (``Mixer.restrict_edge``) keeps an op group G_e on some edges. A selection criterion turns
per-op scores into an Arch through ``space.discretize``; :class:`RestrictedSpace` hands it the space with every
score outside the groups replaced by -inf (:func:`restricted_scores`), so the arch stays in the sub-space, as the
GM-NAS reference's ``genotype()`` masks its alphas with the sub-supernet's encoding (skhu101/GM-NAS@a69837d).
Entries a criterion never scored (NaN) are outside the groups too and become -inf the same way.
"""
from __future__ import annotations

from typing import Any

import torch


def restricted_scores(op_scores: dict[str, torch.Tensor], mixer) -> dict[str, torch.Tensor]:
    """``op_scores`` with the ops outside the mixer's restrictions (``Mixer.allowed_ops``) set to -inf."""
    out = {ct: s.detach().clone().float() for ct, s in op_scores.items()}
    for ct in out:
        allowed = mixer.allowed_ops(ct)
        if allowed is not None:
            out[ct][~allowed.to(out[ct].device)] = float("-inf")
    return out


class RestrictedSpace:
    """The space as a criterion sees it on a restricted supernet: ``discretize`` applies :func:`restricted_scores`;
    everything else is the space's own."""

    def __init__(self, space, mixer):
        self._space, self._mixer = space, mixer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._space, name)

    def discretize(self, op_scores, edge_scores=None, rule: str = "default"):
        return self._space.discretize(restricted_scores(op_scores, self._mixer), edge_scores, rule=rule)


def restricted_context(setup):
    """``setup.selection_context()`` with its space replaced by the :class:`RestrictedSpace` of the supernet's mixer."""
    ctx = setup.selection_context()
    ctx.space = RestrictedSpace(ctx.space, setup.supernet.mixer)
    return ctx
