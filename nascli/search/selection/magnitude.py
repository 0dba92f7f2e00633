"""Magnitude selection: the space's derivation rule applied to the mixer's (softmax) weights.

NB201: argmax over all 5 ops per edge, ``none`` included. DARTS space: per node the 2 incoming edges
with the largest non-``none`` weight, argmax over non-``none`` ops (Liu et al., 2019, sec. 2.4).
Mixers define what "weight" means (PC-DARTS: softmax(alpha) * per-node softmax(beta); ROME: beta
ranks edges) through ``Mixer.selection_scores``.
"""
from __future__ import annotations


from nascli.search.selection.base import SELECTIONS, SelectionContext, SelectionResult


@SELECTIONS.register("magnitude")
def select_by_magnitude(ctx: SelectionContext) -> SelectionResult:
    op_scores, edge_scores = ctx.supernet.mixer.selection_scores()
    arch = ctx.space.discretize(op_scores, edge_scores, rule=ctx.rule)
    scores = {ct: s.detach().cpu().tolist() for ct, s in op_scores.items()}
    if edge_scores is not None:
        scores["edges"] = {ct: s.detach().cpu().tolist() for ct, s in edge_scores.items()}
    return SelectionResult(arch, {"op_weights": scores})
