"""Supernet-probing selection criteria: operation strength (``ostr``, METHODS.md 4) and the DARTS-PT
removal counterpart (``perturbation``), on NB201 supernets and on the DARTS space's derivation rule."""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import TINY_SEARCH, compose_cfg
from nascli.commands.derive import derive
from nascli.commands.search import search
from nascli.search.mixers import MIXERS
from nascli.search.selection import SELECTIONS, SelectionContext
from nascli.search.selection.perturbation import edge_order
from nascli.search.selection.probe import candidate_ops
from nascli.spaces import get_space
from nascli.spaces.base import Supernet

NONE, SKIP, CONV1, CONV3, POOL = range(5)  # NB201 op order


def _batches(n=4, bs=8, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(bs, 3, 8, 8, generator=g), torch.randint(0, classes, (bs,), generator=g)) for _ in range(n)]


def _ctx(net, batches, calls=None):
    def fetch(n):
        if calls is not None:
            calls.append(n)
        return batches[:n]
    return SelectionContext(net, net.space, fetch, torch.device("cpu"))


def _loss(net, batches):
    with torch.no_grad():
        total = sum(float(F.cross_entropy(net(x), y, reduction="sum")) for x, y in batches)
    return total / sum(len(y) for _, y in batches)


def _with_alpha_row(net, edge, row, fn):
    """Evaluate ``fn()`` with alpha row ``edge`` replaced (softmax(row) is the edge's exact mixture)."""
    alpha = net.mixer.alphas["cell"]
    saved = alpha.detach().clone()
    with torch.no_grad():
        alpha[edge] = row
    try:
        return fn()
    finally:
        with torch.no_grad():
            alpha.copy_(saved)


def _one_hot_row(op):
    row = torch.full((5,), -1e4)  # exp(-1e4) == 0 in float32: softmax is exactly one-hot
    row[op] = 0.0
    return row


@pytest.fixture(scope="module")
def conv_trained():
    """A tiny NB201 supernet whose weights were trained with edge 0 := nor_conv_3x3 alone, and whose
    alphas then favour avg_pool_3x3 on edge 0 (all other alpha rows uniform)."""
    torch.manual_seed(0)
    space = get_space("nb201")
    net = space.build_supernet(MIXERS.get("softmax")(space), 4, 3, (), C=4, N=1)
    batches = _batches()
    net.mixer.fix_edge("cell", 0, CONV3)
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.05, momentum=0.9)
    net.train()
    for step in range(60):
        x, y = batches[step % len(batches)]
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    net.mixer.clear_interventions()
    with torch.no_grad():
        net.mixer.alphas["cell"].zero_()
        net.mixer.alphas["cell"][0, POOL] = 3.0
    return net, batches


def _manual_strengths_edge0(net, batches):
    net.train()  # bn: batch (the fixture net only ever sees train mode, so running stats are irrelevant)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    base = _loss(net, batches)
    s = [base - _with_alpha_row(net, 0, _one_hot_row(o), lambda: _loss(net, batches)) for o in range(5)]
    net.load_state_dict(state)
    return s


def test_ostr_prefers_the_op_that_lowers_the_loss_over_the_largest_alpha(conv_trained):
    net, batches = conv_trained
    # verify the construction: alpha favours avg_pool on edge 0, but conv3x3 alone lowers the loss most
    probs = torch.softmax(net.mixer.alphas["cell"][0].detach(), -1)
    assert int(probs.argmax()) == POOL
    strength = _manual_strengths_edge0(net, batches)
    assert max(range(5), key=lambda o: strength[o]) == CONV3
    assert strength[CONV3] > strength[POOL] + 0.1

    magnitude = SELECTIONS.get("magnitude")(_ctx(net, batches)).arch
    assert magnitude.ops[0] == "avg_pool_3x3"
    calls = []
    result = SELECTIONS.get("ostr")(_ctx(net, batches, calls), num_batches=4)
    assert result.arch.ops[0] == "nor_conv_3x3"
    # every S(e, o) is recorded; edge 0 (decided first, nothing fixed yet) equals the direct computation
    recorded = result.scores["strength"]["cell"]
    assert len(recorded) == 6 and all(len(row) == 5 and None not in row for row in recorded)
    assert recorded[0] == pytest.approx(strength, abs=1e-5)
    assert [d["edge"] for d in result.scores["decisions"]] == [0, 1, 2, 3, 4, 5]  # sequential order
    # one call for the batches, so every candidate is scored on the same data; 6 edges x (base + 5 ops)
    assert calls == [4] and result.scores["evaluations"] == 36
    # the arch is the space's rule on the strengths: per edge the largest S (none allowed on NB201)
    assert list(result.arch.ops) == [get_space("nb201").ops[max(range(5), key=lambda o: row[o])] for row in recorded]


def test_ostr_later_edges_are_scored_with_earlier_edges_fixed(conv_trained):
    net, batches = conv_trained
    result = SELECTIONS.get("ostr")(_ctx(net, batches), num_batches=2)
    first = result.scores["decisions"][0]
    assert first["op"] == "nor_conv_3x3"
    # edge 1 is scored with edge 0 fixed to conv3x3: base = L(edge 0 := conv3)
    net.train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    fixed0 = _with_alpha_row(net, 0, _one_hot_row(CONV3), lambda: _loss(net, batches[:2]))
    assert result.scores["decisions"][1]["base_loss"] == pytest.approx(fixed0, abs=1e-5)

    def edge1(o):
        def inner():
            return _with_alpha_row(net, 1, _one_hot_row(o), lambda: _loss(net, batches[:2]))
        return fixed0 - _with_alpha_row(net, 0, _one_hot_row(CONV3), inner)

    assert result.scores["strength"]["cell"][1] == pytest.approx([edge1(o) for o in range(5)], abs=1e-5)
    net.load_state_dict(state)


def test_ostr_leaves_the_supernet_untouched(conv_trained):
    net, batches = conv_trained
    net.eval()
    net.net.cells[1].train()  # an odd mix of modes, restored exactly
    modes = {name: m.training for name, m in net.named_modules()}
    state = {k: v.clone() for k, v in net.state_dict().items()}
    bn = next(m for m in net.modules() if isinstance(m, nn.BatchNorm2d) and m.track_running_stats)
    for kw in ({"bn": "batch"}, {"bn": "running"}, {"order": "greedy", "num_batches": 1},
               {"finetune_steps": 2, "num_batches": 1}):
        SELECTIONS.get("ostr")(_ctx(net, batches), **kw)
        assert {name: m.training for name, m in net.named_modules()} == modes
        for k, v in net.state_dict().items():
            assert torch.equal(v, state[k]), (kw, k)
        assert not net.mixer._fixed and not net.mixer._masked
        assert torch.is_grad_enabled()
    assert bn.running_mean is not None


def test_ostr_finetunes_the_weights_between_decisions(conv_trained):
    net, batches = conv_trained
    plain = SELECTIONS.get("ostr")(_ctx(net, batches), num_batches=2)
    calls = []
    tuned = SELECTIONS.get("ostr")(_ctx(net, batches, calls), num_batches=2, finetune_steps=2, finetune_lr=0.05)
    assert calls == [4]  # 2 scoring batches + 2 further batches for tuning
    d0, d1 = plain.scores["decisions"], tuned.scores["decisions"]
    assert d0[0]["base_loss"] == d1[0]["base_loss"]  # nothing tuned before the first decision
    assert d0[1]["base_loss"] != d1[1]["base_loss"]  # the weights moved between decisions


def test_ostr_bn_modes(conv_trained):
    net, batches = conv_trained
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():  # give every BN running statistics far from the batch statistics
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d) and m.track_running_stats:
                m.running_mean.fill_(0.5)
                m.running_var.fill_(4.0)
    try:
        running = SELECTIONS.get("ostr")(_ctx(net, batches), num_batches=2, bn="running")
        batch = SELECTIONS.get("ostr")(_ctx(net, batches), num_batches=2, bn="batch")
        net.eval()
        assert running.scores["decisions"][0]["base_loss"] == pytest.approx(_loss(net, batches[:2]), abs=1e-5)
        net.train()
        assert batch.scores["decisions"][0]["base_loss"] == pytest.approx(_loss(net, batches[:2]), abs=1e-5)
        assert abs(running.scores["decisions"][0]["base_loss"] - batch.scores["decisions"][0]["base_loss"]) > 1e-3
    finally:
        net.load_state_dict(state)
    with pytest.raises(ValueError, match="valid choices: batch, running"):
        SELECTIONS.get("ostr")(_ctx(net, batches), bn="frozen")
    with pytest.raises(ValueError, match="valid choices: sequential, greedy"):
        SELECTIONS.get("ostr")(_ctx(net, batches), order="random")


def test_ostr_greedy_fixes_the_strongest_pair_first(conv_trained):
    net, batches = conv_trained
    net.train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    base = _loss(net, batches[:1])
    pairs = {(e, o): base - _with_alpha_row(net, e, _one_hot_row(o), lambda: _loss(net, batches[:1]))
             for e in range(6) for o in range(5)}
    net.load_state_dict(state)
    best = max(pairs, key=lambda k: pairs[k])
    result = SELECTIONS.get("ostr")(_ctx(net, batches), num_batches=1, order="greedy")
    first = result.scores["decisions"][0]
    assert (first["edge"], first["op"]) == (best[0], get_space("nb201").ops[best[1]])
    assert first["strength"] == pytest.approx(pairs[best], abs=1e-5)
    assert sorted(d["edge"] for d in result.scores["decisions"]) == list(range(6))
    # rounds: 6 + 5 + ... + 1 undecided edges x 5 ops, plus one base loss per round
    assert result.scores["evaluations"] == 5 * 21 + 6


# ----------------------------------------------------------------------------------------- perturbation
def test_perturbation_keeps_the_op_whose_removal_hurts_most(conv_trained):
    net, batches = conv_trained
    space = get_space("nb201")
    order = edge_order(space, seed=3)
    expected_order = [("cell", e) for e in range(6)]
    random.Random(3).shuffle(expected_order)
    assert order == expected_order
    result = SELECTIONS.get("perturbation")(_ctx(net, batches), num_batches=4, crit="loss", seed=3)
    assert [tuple(x) for x in result.scores["order"]] == order
    first_edge = order[0][1]
    # manual damage on the first edge: mask op o (weight 0, the others unchanged) by hand
    net.train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    base = _loss(net, batches)
    real_mix = net.mixer.mix

    def masked_loss(o):
        def mix(ct):
            w = real_mix(ct)
            w.weights = w.weights.clone()
            w.weights[first_edge, o] = 0.0
            return w
        net.mixer.mix = mix
        try:
            return _loss(net, batches)
        finally:
            del net.mixer.mix
    damage = [masked_loss(o) - base for o in range(5)]
    net.load_state_dict(state)
    assert result.scores["damage"]["cell"][first_edge] == pytest.approx(damage, abs=1e-5)
    assert damage[NONE] == pytest.approx(0.0, abs=1e-6)  # none contributes nothing: removing it is free
    best = max(range(5), key=lambda o: damage[o])
    assert result.arch.ops[first_edge] == space.ops[best]


def test_perturbation_accuracy_criterion_and_ties(conv_trained):
    net, batches = conv_trained
    result = SELECTIONS.get("perturbation")(_ctx(net, batches), num_batches=4, seed=0)
    assert result.scores["crit"] == "acc"
    for d in result.scores["decisions"]:
        row = result.scores["damage"]["cell"][d["edge"]]
        assert d["op"] == get_space("nb201").ops[row.index(max(row))]  # first maximum (np.argmin of acc)
        assert all(abs(v * 32 / 100 - round(v * 32 / 100)) < 1e-9 for v in row)  # multiples of 1/32 images
    with pytest.raises(ValueError, match="valid choices: acc, loss"):
        SELECTIONS.get("perturbation")(_ctx(net, batches), crit="f1")


# ------------------------------------------------------------------------------ the DARTS-space rule
class _LinearSupernet(Supernet):
    """A supernet whose logit margin is z = sum_ct sum_{e,o} W_ct[e, o] * V_ct[e, o] (W = the mixer's edge
    weights incl. interventions), so with target 0 the loss softplus(-z) is known in closed form."""

    def __init__(self, space, values: dict[str, torch.Tensor]):
        super().__init__()
        self.space = space
        self.mixer = MIXERS.get("softmax")(space)
        self.values = values
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        z = sum((self.mixer.edge_weights(ct).weights * self.values[ct]).sum() for ct in self.space.cell_types)
        z = z + 0 * self.dummy
        return torch.stack([z, torch.zeros_like(z)]).expand(x.shape[0], 2)


def _linear_net(seed=0):
    g = torch.Generator().manual_seed(seed)
    space = get_space("darts")
    values = {ct: 0.1 * torch.randn(14, 8, generator=g) for ct in space.cell_types}  # keeps softplus(-z) unsaturated
    for v in values.values():
        v[:, 0] = 0.5  # `none` would be the strongest op everywhere: the DARTS rule must never pick it
    net = _LinearSupernet(space, values)
    with torch.no_grad():
        for ct in space.cell_types:
            net.mixer.alphas[ct].copy_(torch.randn(14, 8, generator=g))
    return net, [(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long))]


def _softplus(z):
    return math.log1p(math.exp(-abs(z))) + max(-z, 0.0)


def test_candidate_ops_follow_the_space_rule():
    assert candidate_ops(get_space("nb201"), "cell") == [0, 1, 2, 3, 4]
    assert candidate_ops(get_space("darts"), "normal") == [1, 2, 3, 4, 5, 6, 7]
    assert candidate_ops(get_space("darts"), "reduce", rule="pairs") == [1, 2, 3, 4, 5, 6, 7]


def test_ostr_on_the_darts_rule_excludes_none_and_keeps_two_strongest_edges_per_node():
    net, batches = _linear_net()
    space = net.space
    result = SELECTIONS.get("ostr")(_ctx(net, batches), num_batches=1)
    # closed form, sequential over normal then reduce edges
    w = {ct: torch.softmax(net.mixer.alphas[ct].detach(), -1).double() for ct in space.cell_types}
    v = {ct: net.values[ct].double() for ct in space.cell_types}
    contrib = {ct: (w[ct] * v[ct]).sum(-1) for ct in space.cell_types}  # per-edge term of z
    chosen, strength = {}, {}
    for ct in space.cell_types:
        for e in range(14):
            z = float(sum(c.sum() for c in contrib.values()))
            s = {o: _softplus(z) - _softplus(z - float(contrib[ct][e]) + float(v[ct][e, o])) for o in range(1, 8)}
            o_best = max(s, key=s.get)
            chosen[(ct, e)], strength[(ct, e)] = o_best, s
            contrib[ct][e] = v[ct][e, o_best]
    for ct in space.cell_types:
        rec = result.scores["strength"][ct]
        assert all(row[0] is None for row in rec)  # none is never scored on the DARTS space
        for e in range(14):
            assert rec[e][1:] == pytest.approx([strength[(ct, e)][o] for o in range(1, 8)], abs=1e-5)
        pairs = []
        for dst, edges in space.incoming(ct).items():
            kept = sorted(edges, key=lambda ed: -strength[(ct, ed.index)][chosen[(ct, ed.index)]])[:2]
            pairs += [(space.ops[chosen[(ct, ed.index)]], ed.src) for ed in kept]
        assert result.arch.cell(ct) == tuple(pairs)
        assert all(op != "none" for op, _ in result.arch.cell(ct))


def test_perturbation_on_the_darts_rule_keeps_edges_whose_removal_hurts_most():
    net, batches = _linear_net(seed=1)
    space = net.space
    result = SELECTIONS.get("perturbation")(_ctx(net, batches), num_batches=1, crit="loss")
    w = {ct: torch.softmax(net.mixer.alphas[ct].detach(), -1).double() for ct in space.cell_types}
    v = {ct: net.values[ct].double() for ct in space.cell_types}
    for ct in space.cell_types:
        # removing op o lowers z by w[e,o] * v[e,o]: the op with the largest weighted value is kept
        chosen = [1 + int(torch.argmax((w[ct] * v[ct])[e, 1:])) for e in range(14)]
        # removing a fixed edge lowers z by v[e, chosen]: per node keep the 2 largest
        pairs = []
        for dst, edges in space.incoming(ct).items():
            kept = sorted(edges, key=lambda ed: -float(v[ct][ed.index, chosen[ed.index]]))[:2]
            pairs += [(space.ops[chosen[ed.index]], ed.src) for ed in kept]
        assert result.arch.cell(ct) == tuple(pairs)
        assert all(row[0] is None for row in result.scores["damage"][ct])


@pytest.mark.slow  # 224 supernet evaluations: ~10-40 s on a shared 2-core CPU
def test_ostr_on_a_darts_supernet():
    space = get_space("darts")
    torch.manual_seed(0)
    net = space.build_supernet(MIXERS.get("softmax")(space), 4, 3, (), C=4, layers=3)
    batches = _batches(n=1, bs=2)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    result = SELECTIONS.get("ostr")(_ctx(net, batches), num_batches=1)
    for ct in space.cell_types:
        assert len(result.arch.cell(ct)) == 8 and all(op != "none" for op, _ in result.arch.cell(ct))
        assert all(row[0] is None and None not in row[1:] for row in result.scores["strength"][ct])
    assert result.scores["evaluations"] == 28 * 8  # 28 edges x (base + 7 ops)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k


# ------------------------------------------------------------------------------------- nas derive
def test_derive_with_ostr_and_perturbation_on_a_saved_search(tmp_path):
    res = search(compose_cfg("search", [*TINY_SEARCH, "search.epochs=1", "search.max_steps_per_epoch=2",
                                        "device=cpu", f"out_root={tmp_path}"]))
    run = Path(res["run_dir"])
    for name in ("ostr", "perturbation"):
        out = derive(compose_cfg("derive", [f"run='{run}'", f"selection={name}", "selection.num_batches=1",
                                            "device=cpu", "num_threads=1"]))
        data = json.loads((run / f"arch_{name}.json").read_text())
        assert out["arch"] == data["arch"] and data["provenance"]["selection"] == name
        assert data["provenance"]["options"]["num_batches"] == 1
        key = "strength" if name == "ostr" else "damage"
        assert len(data["scores"][key]["cell"]) == 6 and all(None not in r for r in data["scores"][key]["cell"])
