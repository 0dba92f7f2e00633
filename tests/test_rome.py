"""ROME: Gumbel-top-2 edge sampler, none masking, strict fair schedules, K-path gradient accumulation
against a manual loop, selection by beta, CPU search steps and exact resume (METHODS.md 5.2)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from helpers import (RESUME, TINY, TINY_DARTS, assert_same_state, compose_cfg, count_op_calls,
                     interrupted_and_full_states, nas, result_line)
from nascli.device import frozen
from nascli.search.mixers.gumbel import fair_schedule
from nascli.search.mixers.rome import RomeMixer, gumbel_top_k, relaxed_topk
from nascli.search.optimizers import SEARCH_OPTIMIZERS
from nascli.spaces import get_space
from nascli.search.edge_parts import method_parts


def test_gumbel_top2_keeps_exactly_two_edges_per_node_over_many_draws():
    space = get_space("darts")
    mixer = RomeMixer(space)
    groups = mixer.node_edges["normal"]
    assert [len(g) for g in groups] == [2, 3, 4, 5]
    hits = torch.zeros(14)
    for _ in range(1000):
        gates = mixer.sample_edges("normal")
        assert set(gates.tolist()) <= {0.0, 1.0}  # forward values exactly 0/1
        for g in groups:
            assert gates[g].sum().item() == 2.0
        hits += gates.detach()
    assert (hits > 0).all()  # every edge gets sampled
    nb = RomeMixer(get_space("nb201"))
    for _ in range(200):
        gates = nb.sample_edges("cell")
        assert gates[[0]].sum() == 1 and gates[[1, 2]].sum() == 2 and gates[[3, 4, 5]].sum() == 2


def test_gumbel_top2_samples_without_replacement_from_softmax_beta():
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([0.5, 0.3, 0.2]))
    pairs = Counter()
    n = 4000
    for _ in range(n):
        _, chosen = gumbel_top_k(logits, 2, 1.0)
        pairs[tuple(sorted(chosen.tolist()))] += 1
    p = [0.5, 0.3, 0.2]

    def prob(i, j):  # P({i, j}) for sequential sampling without replacement
        return p[i] * p[j] / (1 - p[i]) + p[j] * p[i] / (1 - p[j])

    for (i, j), c in pairs.items():
        assert c / n == pytest.approx(prob(i, j), abs=0.025)


def test_edge_gates_pass_gradients_to_every_beta_of_a_sampled_node():
    beta = torch.randn(5, requires_grad=True)
    gate, chosen = gumbel_top_k(beta, 2, 0.5)
    assert gate.detach().sum() == 2
    (gate * torch.arange(1.0, 6.0)).sum().backward()
    assert (beta.grad != 0).all()
    soft = relaxed_topk(torch.tensor([3.0, 1.0, 0.0, -1.0]), 2, 0.01)
    assert torch.allclose(soft, torch.tensor([1.0, 1.0, 0.0, 0.0]), atol=1e-3)
    assert relaxed_topk(torch.randn(6), 2, 1.0).sum().item() == pytest.approx(2.0, abs=1e-5)


def test_mix_computes_nothing_on_unsampled_edges_and_never_samples_none_on_darts():
    mixer = RomeMixer(get_space("darts"))
    for _ in range(200):
        w = mixer.edge_weights("reduce")
        scale = w.edge_scale.detach()
        for e, ops in enumerate(w.active):
            assert (ops == []) == (scale[e] == 0)
            assert 0 not in ops  # none (index 0) masked
        assert w.passthrough is None  # darts: off
    assert mixer.probabilities()["normal"][:, 0].sum() == 0
    nb = RomeMixer(get_space("nb201"), exclude_none=False)  # the nb201 yaml default (search_defaults)
    sampled = Counter(k for _ in range(300) for k in nb.sample_ops("cell")[1].tolist())
    assert sampled[0] > 0  # nb201 keeps none unless configured
    assert RomeMixer(get_space("nb201"), exclude_none=True).allowed.tolist() == [False, True, True, True, True]


def test_selection_ranks_edges_by_beta_then_argmax_alpha():
    space = get_space("darts")
    mixer = RomeMixer(space)
    with torch.no_grad():
        for a in mixer.alphas.values():
            a.zero_()
            a[:, 3] = 1.0  # skip_connect everywhere ...
            a[:, 0] = 9.0  # ... but none dominates, and must not be picked
        for b in mixer.betas.values():
            b.copy_(torch.arange(14.0))  # later inputs have larger beta
    op_scores, edge_scores = mixer.selection_scores()
    assert torch.equal(edge_scores["normal"], torch.arange(14.0))
    arch = space.discretize(op_scores, edge_scores)
    # node 5 (edges 9..13 from inputs 0..4): the top-2 beta edges come from inputs 4 and 3
    assert [tuple(p) for p in arch.normal[6:]] == [("skip_connect", 4), ("skip_connect", 3)]


@pytest.mark.parametrize("k,n", [(7, 7), (5, 5), (10, 4), (3, 7), (7, 5)])
def test_fair_schedule_balances_ops(k, n):
    allowed = list(range(1, n + 1))
    sched = fair_schedule(k, allowed, num_edges=14, generator=torch.Generator().manual_seed(0))
    assert sched.shape == (14, k)
    for row in sched.tolist():
        counts = Counter(row)
        assert set(counts) <= set(allowed)
        if k >= n:  # every op floor(K/n) or ceil(K/n) times
            assert {counts[o] for o in allowed} <= {k // n, -(-k // n)}
        else:  # fewer paths than ops: K distinct ops
            assert len(counts) == k
        if k % n == 0:
            assert all(counts[o] == k // n for o in allowed)


def test_strict_fair_weight_paths_use_every_op_once_when_k_equals_ops():
    mixer = RomeMixer(get_space("darts"), strict_fair=True)  # 7 ops without none, K = 7
    mixer.begin_paths(7, "weights")
    used = []
    for k in range(7):
        mixer.select_path(k)
        used.append(mixer.sample_ops("normal")[1])
    mixer.end_paths()
    used = torch.stack(used, 1)
    for row in used.tolist():
        assert sorted(row) == [1, 2, 3, 4, 5, 6, 7]
    mixer.begin_paths(7, "arch")  # architecture paths stay ordinary Gumbel samples
    mixer.select_path(0)
    assert mixer._forced is None


# ------------------------------------------------------------------------------------ K-path optimizer
def _tiny_rome(num_paths=3, **mixer_kw):
    space = get_space("nb201")
    mixer = RomeMixer(space, **mixer_kw)
    net = space.build_supernet(mixer, 10, 3, (), C=4, N=1, track_running_stats=False)
    opt = SEARCH_OPTIMIZERS.get("multipath")(net, num_paths=num_paths, lr=0.1, weight_decay=0.0)
    return net, opt


def test_k_path_arch_gradients_are_the_average_of_k_manual_backward_passes():
    torch.manual_seed(0)
    net, opt = _tiny_rome(num_paths=3)
    batch = (torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))
    torch.manual_seed(123)
    opt.accumulate_arch_grads(batch)
    got = [p.grad.clone() for p in opt.arch]
    torch.manual_seed(123)
    manual = [torch.zeros_like(p) for p in opt.arch]
    with frozen(opt.weights):
        for _ in range(3):
            grads = torch.autograd.grad(F.cross_entropy(net(batch[0]), batch[1]), opt.arch, allow_unused=True)
            manual = [m + (g if g is not None else 0) for m, g in zip(manual, grads)]
    assert len(got) == 2  # alpha (6, 5) and beta (6,) of nb201's one cell type
    assert got[1][:3].abs().sum() == 0 and got[1][3:].abs().sum() > 0  # only node 3 (3 edges) samples edges
    for g, m in zip(got, manual):
        assert torch.allclose(g, m / 3, atol=1e-7)
    single = []
    torch.manual_seed(123)
    with frozen(opt.weights):
        single = torch.autograd.grad(F.cross_entropy(net(batch[0]), batch[1]), opt.arch, allow_unused=True)
    assert not all(torch.allclose(g, s) for g, s in zip(got, single) if s is not None)  # really K paths


def test_k_path_weight_gradients_are_the_sum_of_k_manual_backward_passes():
    torch.manual_seed(0)
    net, opt = _tiny_rome(num_paths=4)
    batch = (torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))
    torch.manual_seed(7)
    opt.accumulate_weight_grads(batch)
    got = {id(p): p.grad.clone() for p in opt.weights if p.grad is not None}
    torch.manual_seed(7)
    manual = {id(p): torch.zeros_like(p) for p in opt.weights}
    with frozen(opt.arch):
        for _ in range(4):
            grads = torch.autograd.grad(F.cross_entropy(net(batch[0]), batch[1]), opt.weights, allow_unused=True)
            for p, g in zip(opt.weights, grads):
                if g is not None:
                    manual[id(p)] += g
    assert got
    for p in opt.weights:
        if id(p) in got:
            assert torch.allclose(got[id(p)], manual[id(p)], atol=1e-6)
        else:
            assert (manual[id(p)] == 0).all()


def test_k_path_step_updates_both_and_keeps_memory_per_path():
    torch.manual_seed(0)
    net, opt = _tiny_rome(num_paths=2)
    batch = (torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))
    before = [p.detach().clone() for p in opt.arch]
    w_before = [p.detach().clone() for p in opt.weights]
    opt.step(batch, batch)
    assert all(not torch.equal(a, p) for a, p in zip(before, opt.arch))
    assert any(not torch.equal(a, p) for a, p in zip(w_before, opt.weights))
    stats = opt.stats.summary()
    assert stats["train_loss"] > 0 and stats["val_loss"] > 0


# ------------------------------------------------------------------------------------ config and runs
def test_method_config():
    cfg = compose_cfg("search", ["method=rome"])
    assert cfg.optimizer.name == "multipath" and cfg.optimizer.num_paths == 7
    assert (cfg.optimizer.weight_reduction, cfg.optimizer.arch_reduction) == ("sum", "mean")
    assert cfg.method.mixer.name == "rome" and cfg.method.mixer.in_degree == 2
    assert (cfg.search.epochs, cfg.search.batch_size) == (250, 64)
    assert compose_cfg("search", ["method=rome", "space=darts"]).search.epochs == 50


def test_cpu_search_step_nb201(tmp_path):
    res = result_line(nas("search", "method=rome", *TINY, "optimizer.num_paths=2", "search.epochs=1",
                          "search.max_steps_per_epoch=2", f"out_root={tmp_path}"))
    assert res["optimizer"] == "multipath"
    m = json.loads((Path(res["run_dir"]) / "metrics.jsonl").read_text().splitlines()[0])
    assert m["num_paths"] == 2.0 and m["tau"] == 10.0 and m["peak_memory_mb"] > 0
    state = torch.load(Path(res["run_dir"]) / "checkpoint.pt", weights_only=False)
    assert state["supernet"]["mixer.betas.cell"].shape == (6,)


def test_search_step_nb201_strict_fair_in_process(tmp_path):
    from nascli.commands.search import SearchSession
    s = SearchSession(compose_cfg("search", ["method=rome", *TINY, "optimizer.num_paths=5", "method.mixer.strict_fair=true",
                                             "search.epochs=1", "search.max_steps_per_epoch=1", f"out_root={tmp_path}"]))
    used = []
    mixer = s.supernet.mixer
    sample_ops = mixer.sample_ops

    def record(ct):
        hard, index = sample_ops(ct)
        if mixer._forced is not None:
            assert torch.equal(index, mixer._forced[ct])
            used.append(index.tolist())
        return hard, index

    mixer.sample_ops = record
    assert s.execute()["status"] == "ok"
    assert len(used) == 5  # the 5 weight paths of the one step ran on the fair schedule
    for e in range(6):  # K = 5 = number of ops: every op exactly once per edge
        assert sorted(path[e] for path in used) == [0, 1, 2, 3, 4]


def test_darts_space_forward_computes_ops_on_exactly_two_edges_per_node():
    space = get_space("darts")
    torch.manual_seed(0)
    mixer = RomeMixer(space)
    net = space.build_supernet(mixer, 10, 3, (), C=4, layers=3, impl="reference")
    for _ in range(3):
        calls, seen, cells = count_op_calls(net, mixer, torch.randn(2, 3, 8, 8))
        for c, cell in enumerate(cells):
            w = seen[cell.cell_type]
            edges_run = Counter(e for (cc, e, _o) in calls if cc == c)
            assert all(n == 1 for n in edges_run.values())  # one op per computed edge
            for group in mixer.node_edges[cell.cell_type]:
                assert sum(e in edges_run for e in group) == 2  # none is masked, so every gate-1 edge runs
            assert all(o != 0 for (_c, _e, o) in calls)


def test_cpu_search_step_darts_space(tmp_path):
    res = result_line(nas("search", "method=rome", *TINY_DARTS, "optimizer.num_paths=2", "search.epochs=1",
                          "search.max_steps_per_epoch=1", f"out_root={tmp_path}"))
    arch = json.loads(Path(res["arch_path"]).read_text())
    assert res["space"] == "darts" and "none" not in json.dumps(arch.get("normal", arch))


def test_resume_restores_alphas_betas_and_temperature_exactly(tmp_path):
    full, resumed, at = interrupted_and_full_states(
        tmp_path, ["method=rome", "optimizer.num_paths=2", "method.mixer.strict_fair=true", *TINY, *RESUME],
        crash_at_step=6)
    assert at == (1, 2)
    assert_same_state(full, resumed)
    assert "mixer.betas.cell" in resumed["supernet"]


def test_resume_on_the_darts_space_restores_both_cell_types_exactly(tmp_path):
    full, resumed, at = interrupted_and_full_states(
        tmp_path, ["method=rome", "optimizer.num_paths=2", *TINY_DARTS, "search.epochs=2",
                   "search.max_steps_per_epoch=2", "search.checkpoint_every_steps=1"], crash_at_step=4)
    assert at == (1, 1)
    assert_same_state(full, resumed)
    assert {"mixer.betas.normal", "mixer.betas.reduce"} <= set(resumed["supernet"])
