"""Perturbation-based selection (DARTS-PT, Wang et al., ICLR'21; ruocwang/darts-pt@4ec3149
``nasbench201/projection.py``, ``sota/cnn/projection.py``; METHODS.md 4), the removal-based counterpart
of :mod:`.ostr`.

Edges are visited in a random order (``random.Random(seed)``). On each edge, every candidate op o is
removed from the current mixture (weight 0, the other weights unchanged: ``Mixer.mask_op``) and the
damage is measured on ``num_batches`` fixed validation batches:

    D(e, o) = acc(supernet) - acc(supernet without o on e)        (``crit='acc'``, DARTS-PT default)
    D(e, o) = L(supernet without o on e) - L(supernet)            (``crit='loss'``)

The op whose removal hurts most is kept (ties: lower op index, as ``np.argmin`` of the accuracies) and
the edge is fixed to it (one-hot) before the next edge; DARTS-PT fine-tunes the supernet between
decisions (``finetune_steps``, 0 by default here). Then the topology: every edge, fixed to its op, is
removed as a whole (all ops masked) and its damage D(e) recorded; on the DARTS space each node keeps the
2 incoming edges whose removal hurts most (``edge_scores`` = D(e)). NB201 keeps every edge, so there
D(e) is informational only.
"""
from __future__ import annotations

import random
from typing import Any

import torch

from nascli.search.selection.base import SELECTIONS, SelectionContext, SelectionResult
from nascli.search.selection.probe import (SupernetProbe, as_json_matrix, candidate_ops, edge_candidates, first_best,
                                           probe_batches)

CRITERIA = ("acc", "loss")


def _damage(base: tuple[float, float], after: tuple[float, float], crit: str) -> float:
    return base[1] - after[1] if crit == "acc" else after[0] - base[0]


def edge_order(space, seed: int) -> list[tuple[str, int]]:
    """The seeded random visiting order of all (cell type, edge) pairs."""
    order = [(ct, e) for ct in space.cell_types for e in range(space.num_edges(ct))]
    random.Random(int(seed)).shuffle(order)
    return order


@SELECTIONS.register("perturbation")
def select_by_perturbation(ctx: SelectionContext, num_batches: int = 4, crit: str = "acc", bn: str = "batch",
                           seed: int = 0, finetune_steps: int = 0, finetune_lr: float = 0.0025) -> SelectionResult:
    """Keep, edge by edge, the op whose removal hurts most (module docstring)."""
    if crit not in CRITERIA:
        raise ValueError(f"unknown perturbation crit {crit!r}; valid choices: {', '.join(CRITERIA)}")
    space, net = ctx.space, ctx.supernet
    batches, ft_batches = probe_batches(ctx, num_batches, finetune_steps)
    cands = {ct: candidate_ops(space, ct, ctx.rule) for ct in space.cell_types}
    num_ops = len(space.ops)
    damage = {ct: torch.full((space.num_edges(ct), num_ops), float("nan"), dtype=torch.float64)
              for ct in space.cell_types}
    edge_damage = {ct: torch.zeros(space.num_edges(ct), dtype=torch.float64) for ct in space.cell_types}
    order = edge_order(space, seed)
    decisions: list[dict[str, Any]] = []
    with SupernetProbe(net, batches, bn=bn, finetune_batches=ft_batches, finetune_lr=finetune_lr,
                       criterion=ctx.criterion) as probe:
        for k, (ct, e) in enumerate(order):
            base = probe.evaluate()
            d = {o: _damage(base, probe.evaluate(mask=[(ct, e, o)]), crit)
                 for o in edge_candidates(net.mixer, ct, e, cands[ct])}
            op = first_best(d.items())
            for o, v in d.items():
                damage[ct][e, o] = v
            probe.decide(ct, e, op)
            decisions.append({"cell_type": ct, "edge": e, "op": space.ops[op], "damage": d[op],
                              "base_loss": base[0], "base_acc": base[1]})
            if k + 1 < len(order):
                probe.finetune(int(finetune_steps))
        # topology: remove each (fixed) edge as a whole
        base = probe.evaluate()
        for ct in space.cell_types:
            for e in range(space.num_edges(ct)):
                op = probe.fixed.pop((ct, e))
                edge_damage[ct][e] = _damage(base, probe.evaluate(mask=[(ct, e, o) for o in range(num_ops)]), crit)
                probe.decide(ct, e, op)
        evaluations = probe.evaluations
    op_scores = {}
    for ct in space.cell_types:
        scores = damage[ct].clone()
        scores[:, [o for o in range(num_ops) if o not in cands[ct]]] = float("-inf")
        op_scores[ct] = scores
    arch = space.discretize(op_scores, edge_scores=edge_damage, rule=ctx.rule)
    return SelectionResult(arch, {
        "crit": crit,
        "damage": {ct: as_json_matrix(damage[ct]) for ct in space.cell_types},
        "edge_damage": {ct: edge_damage[ct].tolist() for ct in space.cell_types},
        "decisions": decisions,
        "order": [[ct, e] for ct, e in order],
        "ops": list(space.ops),
        "evaluations": evaluations,
    })
