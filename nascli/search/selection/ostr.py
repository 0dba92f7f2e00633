"""Operation-strength selection (OStr-DARTS, Yang et al., arXiv 2409.14433; METHODS.md 4).

The importance of op o on edge e is its effect on the final loss when it replaces the mixed op:

    S(e, o) = L_val(supernet) - L_val(supernet with edge e := o alone)

averaged over ``num_batches`` fixed validation batches (the same batches for every candidate), without
gradients, BatchNorm on batch statistics by default (see :mod:`.probe`). Edges are decided one at a
time and a decided edge stays fixed to its op (one-hot) while later edges are scored:

* ``order='sequential'``: edges in index order (cell types in the space's order); on each, the op with
  the largest S wins (ties: lower op index), even when its alpha is not the largest;
* ``order='greedy'``: each round scores every undecided (edge, op) pair and fixes the strongest one.

Candidate ops are the ones the space's rule can keep: on NB201 all 5 ops (``none`` included), on the
DARTS space the non-``none`` ops. The space's rule then turns the strengths into an Arch: on the DARTS
space each node keeps the 2 incoming edges whose chosen ops have the largest strength (``edge_scores``
= S(e, chosen op)). Every computed S(e, o) is returned in ``scores['strength']`` (null = not scored).
"""
from __future__ import annotations

from typing import Any

import torch

from nascli.search.selection.base import SELECTIONS, SelectionContext, SelectionResult
from nascli.search.selection.probe import (SupernetProbe, as_json_matrix, candidate_ops, edge_candidates, first_best,
                                           probe_batches)

ORDERS = ("sequential", "greedy")


def _score_edge(probe: SupernetProbe, base: float, ct: str, e: int, ops: list[int]) -> dict[int, float]:
    return {o: base - probe.evaluate(fix={(ct, e): o})[0] for o in ops}


@SELECTIONS.register("ostr")
def select_by_strength(ctx: SelectionContext, num_batches: int = 4, bn: str = "batch", order: str = "sequential",
                       finetune_steps: int = 0, finetune_lr: float = 0.0025) -> SelectionResult:
    """Choose every edge's op by operation strength (module docstring)."""
    if order not in ORDERS:
        raise ValueError(f"unknown ostr order {order!r}; valid choices: {', '.join(ORDERS)}")
    space, net = ctx.space, ctx.supernet
    batches, ft_batches = probe_batches(ctx, num_batches, finetune_steps)
    cands = {ct: candidate_ops(space, ct, ctx.rule) for ct in space.cell_types}
    num_ops = len(space.ops)
    strength = {ct: torch.full((space.num_edges(ct), num_ops), float("nan"), dtype=torch.float64)
                for ct in space.cell_types}
    undecided = [(ct, e) for ct in space.cell_types for e in range(space.num_edges(ct))]
    decisions: list[dict[str, Any]] = []
    with SupernetProbe(net, batches, bn=bn, finetune_batches=ft_batches, finetune_lr=finetune_lr,
                       criterion=ctx.criterion) as probe:
        while undecided:
            base = probe.evaluate()[0]
            if order == "sequential":
                ct, e = undecided[0]
                s = _score_edge(probe, base, ct, e, edge_candidates(net.mixer, ct, e, cands[ct]))
                op = first_best(s.items())
            else:
                round_scores = {(ct, e): _score_edge(probe, base, ct, e, edge_candidates(net.mixer, ct, e, cands[ct]))
                                for ct, e in undecided}
                (ct, e, op) = first_best(((ct, e, o), v) for (ct, e), s in round_scores.items() for o, v in s.items())
                s = round_scores[(ct, e)]
            for o, v in s.items():
                strength[ct][e, o] = v
            probe.decide(ct, e, op)
            undecided.remove((ct, e))
            decisions.append({"cell_type": ct, "edge": e, "op": space.ops[op], "strength": s[op], "base_loss": base})
            if undecided:
                probe.finetune(int(finetune_steps))
        evaluations = probe.evaluations
    op_scores, edge_scores = {}, {}
    for ct in space.cell_types:
        scores = strength[ct].clone()
        banned = [o for o in range(num_ops) if o not in cands[ct]]
        scores[:, banned] = float("-inf")
        op_scores[ct] = scores
        chosen = {d["edge"]: space.ops.index(d["op"]) for d in decisions if d["cell_type"] == ct}
        edge_scores[ct] = torch.tensor([float(strength[ct][e, chosen[e]]) for e in range(space.num_edges(ct))],
                                       dtype=torch.float64)
    arch = space.discretize(op_scores, edge_scores, rule=ctx.rule)
    return SelectionResult(arch, {
        "strength": {ct: as_json_matrix(strength[ct]) for ct in space.cell_types},
        "edge_strength": {ct: edge_scores[ct].tolist() for ct in space.cell_types},
        "decisions": decisions,
        "ops": list(space.ops),
        "evaluations": evaluations,
    })
