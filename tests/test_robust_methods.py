"""Robust DARTS methods as composable parts: DARTS- (aux skip decay), Single-DARTS (single level),
PC-DARTS (partial channels, edge normalisation, warm-up) on NB201 and the DARTS space (METHODS.md 2, 3, 6)."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from helpers import TINY_SEARCH, compose_cfg
from nascli.commands.common import plain
from nascli.commands.search import SearchSession, search
from nascli.errors import IncompatibleError, UnknownChoiceError
from nascli.search.components import build_components
from nascli.search.engine import SearchEngine
from nascli.search.mixers import MIXERS
from nascli.search.mixers.base import EdgeWeights
from nascli.search.mixers.partial import group_mask, node_softmax
from nascli.search.optimizers import SEARCH_OPTIMIZERS
from nascli.search.builder import build_supernet
from nascli.search.edge_parts.partial_channels import channel_shuffle
from nascli.search.regularizers.aux_skip import AuxSkipDecay, beta_schedule
from nascli.spaces import get_space
from nascli.search.edge_parts import method_parts
from nascli.spaces.nb201.cells import FastSearchCell, ReferenceSearchCell

METHODS = ("darts_minus", "single_darts", "pc_darts")
TINY_DARTS = ["space=darts", "space.supernet.C=4", "space.supernet.layers=3"]


def _cfg(*overrides: str):
    return compose_cfg("search", ["device=cpu", *overrides])


# ----------------------------------------------------------------------------------------- DARTS- beta
def test_darts_minus_linear_beta_sequence_over_50_epochs():
    # Meituan-AutoML/DARTS- DecayScheduler, linear, beta0 1.0, T_start 0, T_max = T_stop = 50
    betas = beta_schedule(50, "linear", beta0=1.0, T_start=0, T_max=50, T_stop=50)
    assert len(betas) == 50
    assert betas[:4] == [1.0, 0.98, 0.96, 0.94]
    assert betas[25] == 0.5
    assert betas[-1] == pytest.approx(0.02, abs=1e-15) and betas[-2] == pytest.approx(0.04, abs=1e-15)
    assert all(b == pytest.approx((50 - e) / 50, abs=1e-15) for e, b in enumerate(betas))
    assert min(betas) > 0  # never exactly 0 during training
    # T_max null = the run's epochs
    assert beta_schedule(50) == betas
    assert beta_schedule(10) == pytest.approx([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1], abs=1e-15)


def test_darts_minus_cosine_and_slow_cosine_values():
    cos = beta_schedule(50, "cosine")
    assert cos[0] == 1.0 and cos[25] == pytest.approx(0.5, abs=1e-15)
    assert cos[49] == pytest.approx(9.866357858642e-4, rel=1e-9)  # (1 + cos(0.98 pi)) / 2
    assert cos[10] == pytest.approx((1 + math.cos(math.pi * 0.2)) / 2, abs=1e-15)
    slow = beta_schedule(50, "slow_cosine", beta0=2.0)
    assert slow[0] == 2.0
    assert slow[25] == pytest.approx(2.0 * math.sqrt(0.5), abs=1e-12)  # 2 cos(pi/4)
    assert slow[49] == pytest.approx(2.0 * 0.031410759078128, rel=1e-9)  # 2 cos(0.49 pi)
    assert beta_schedule(3, "constant", beta0=0.3) == [0.3, 0.3, 0.3]
    with pytest.raises(UnknownChoiceError, match="valid choices: constant, cosine, linear, slow_cosine"):
        beta_schedule(3, "exponential")


def test_darts_minus_t_start_and_t_stop():
    betas = beta_schedule(50, "linear", T_start=10, T_max=50)
    assert betas[:10] == [1.0] * 10  # beta0 before T_start
    assert betas[10] == 1.0 and betas[30] == 0.5  # (50 - e) / (50 - 10)
    frozen = beta_schedule(50, "linear", T_stop=20)
    assert frozen[20] == pytest.approx(0.6) and frozen[21:] == [frozen[20]] * 29


def _tiny_nb201(mixer="softmax", options=(), seed=0, **kw):
    torch.manual_seed(seed)
    space = get_space("nb201")
    return space.build_supernet(MIXERS.get(mixer)(space, **kw), 5, 3, options, C=4, N=1)


def test_aux_skip_component_writes_the_supernet_buffer_and_restores_a_frozen_beta():
    net = _tiny_nb201(options=method_parts(aux_skip=True))
    comp = AuxSkipDecay(net, None, schedule="linear", T_stop=1)
    comp.on_epoch_start(1, 4)
    assert float(net.edge_part("aux_skip").coef) == 0.75 and comp.values() == {"aux_skip_beta": 0.75}
    comp.on_epoch_start(3, 4)  # after T_stop: frozen
    assert comp.beta == 0.75
    state = comp.state_dict()
    fresh = AuxSkipDecay(net, None, schedule="linear", T_stop=1)
    assert float(net.edge_part("aux_skip").coef) == 1.0
    fresh.load_state_dict(state)  # a resume past T_stop must keep the frozen value, not beta0
    fresh.on_epoch_start(3, 4)
    assert fresh.beta == 0.75 and float(net.edge_part("aux_skip").coef) == 0.75
    with pytest.raises(IncompatibleError, match=r"no aux_skip edge part: add \{name: aux_skip\} to method.edge_parts"):
        AuxSkipDecay(_tiny_nb201(), None)


def test_aux_skip_is_outside_the_softmax_and_never_selectable():
    plain_net = _tiny_nb201(seed=3)
    aux_net = _tiny_nb201(seed=3, options=method_parts(aux_skip=True))
    assert [p.shape for p in aux_net.arch_parameters()] == [torch.Size([6, 5])]  # no extra candidate
    aux_net.load_state_dict(plain_net.state_dict(), strict=False)
    x = torch.randn(4, 3, 8, 8)
    plain_net.eval(), aux_net.eval()
    with torch.no_grad():
        aux_net.edge_part("aux_skip").coef.fill_(0.0)
        assert torch.equal(aux_net(x), plain_net(x))
        aux_net.edge_part("aux_skip").coef.fill_(0.5)
        assert not torch.allclose(aux_net(x), plain_net(x))
        aux_net.train()  # it also applies in train mode
        assert not torch.allclose(aux_net(x), plain_net.train()(x))


# ------------------------------------------------------------------------------------ configuration
def test_method_yamls_compose():
    dm = _cfg("method=darts_minus")
    assert dm.method.name == "darts_minus" and dm.method.mixer.name == "softmax"
    assert plain(dm.method.edge_parts) == [{"name": "aux_skip"}]
    assert plain(dm.method.components) == [{"name": "aux_skip_decay", "schedule": "linear", "beta0": 1.0,
                                            "T_start": 0, "T_max": None, "T_stop": None}]
    assert dm.optimizer.name == "bilevel" and dm.selection.name == "magnitude"

    sd = _cfg("method=single_darts")
    assert sd.optimizer.name == "single_level" and sd.optimizer.data == "train"
    assert sd.method.mixer.name == "softmax" and sd.selection.name == "magnitude"
    assert sd.optimizer.arch_lr == 3e-4 and plain(sd.method.components) == []

    pc = _cfg("method=pc_darts")
    assert pc.method.mixer.name == "pc_softmax" and plain(pc.method.edge_parts) == [{"name": "partial_channels", "k": 4}]
    assert pc.optimizer.name == "bilevel" and pc.optimizer.arch_start_epoch == 15
    assert pc.search.batch_size == 256
    assert pc.optimizer.lr == 0.1 and pc.optimizer.lr_min == 0.0 and pc.optimizer.weight_decay == 3e-4
    assert pc.optimizer.arch_lr == 6e-4 and list(pc.optimizer.arch_betas) == [0.5, 0.999]
    assert pc.optimizer.arch_weight_decay == 1e-3


def test_command_line_axes_override_the_method_bundle():
    # Hydra: a command-line group choice beats the method file's `override /optimizer: single_level`
    for ov in (["method=single_darts", "optimizer=bilevel"], ["optimizer=bilevel", "method=single_darts"]):
        cfg = _cfg(*ov)
        assert cfg.optimizer.name == "bilevel" and "data" not in cfg.optimizer and cfg.method.name == "single_darts"
    cfg = _cfg("method=darts_minus", "optimizer=single_level", "selection=ostr")
    assert (cfg.optimizer.name, cfg.selection.name, cfg.method.name) == ("single_level", "ostr", "darts_minus")
    cfg = _cfg("method=pc_darts", "optimizer.arch_start_epoch=0", "search.batch_size=32")
    assert cfg.optimizer.arch_start_epoch == 0 and cfg.search.batch_size == 32


# ------------------------------------------------------------------------- one CPU step per method x space
def _one_step(cfg, space):
    torch.manual_seed(0)
    net = build_supernet(cfg, space, 10, 3)
    opt_cfg = dict(plain(cfg.optimizer))
    opt = SEARCH_OPTIMIZERS.get(opt_cfg.pop("name"))(net, device=torch.device("cpu"), **opt_cfg)
    comps = build_components(plain(cfg.method.components), net, opt)
    opt.on_epoch_start(opt.arch_start_epoch, 50)  # past any warm-up, so alpha moves too
    for c in comps:
        c.on_epoch_start(opt.arch_start_epoch, 50)
    alphas = [p.detach().clone() for p in net.arch_parameters()]
    weights = [p.detach().clone() for p in net.weight_parameters()]
    batch = lambda: (torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)))  # noqa: E731
    opt.step(batch(), batch() if opt.uses_arch_batches else None)
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(alphas, net.arch_parameters()))
    assert sum(not torch.equal(w, p) for w, p in zip(weights, net.weight_parameters())) > 0
    return net, comps


@pytest.mark.parametrize("method", METHODS)
def test_one_search_step_nb201(method):
    cfg = _cfg(f"method={method}", "space.supernet.C=8", "space.supernet.N=1")
    net, comps = _one_step(cfg, get_space("nb201"))
    assert (net.edge_part("aux_skip") is not None) == (method == "darts_minus")
    if method == "darts_minus":
        assert float(net.edge_part("aux_skip").coef) == pytest.approx(1.0)


@pytest.mark.parametrize("method", METHODS)
def test_one_search_step_darts_space(method):
    cfg = _cfg(f"method={method}", *TINY_DARTS)
    net, _ = _one_step(cfg, get_space("darts"))
    assert {tuple(p.shape) for p in net.arch_parameters()} >= {(14, 8)}
    if method == "pc_darts":
        assert sorted(tuple(p.shape) for p in net.mixer.betas.values()) == [(14,), (14,)]


# --------------------------------------------------------------------------------------- single level
def test_single_level_one_backward_and_both_updates_from_the_same_batch(monkeypatch):
    net = _tiny_nb201(init_scale=0.5)
    opt = SEARCH_OPTIMIZERS.get("single_level")(net, lr=0.1, momentum=0.9, weight_decay=3e-4, grad_clip=0.0,
                                                arch_lr=3e-4, arch_weight_decay=1e-3)
    opt.on_epoch_start(0, 10)
    batch = (torch.randn(6, 3, 8, 8), torch.randint(0, 5, (6,)))
    # the expected gradients of L_train(w, alpha) on THIS batch, from an untouched copy
    ref = copy.deepcopy(net)
    ref.train()
    loss = F.cross_entropy(ref(batch[0]), batch[1])
    g_all = torch.autograd.grad(loss, ref.arch_parameters() + ref.weight_parameters())
    g_alpha, g_w = g_all[0], g_all[1:]

    calls = {"backward": 0, "grad": 0}
    real_backward, real_grad = torch.autograd.backward, torch.autograd.grad

    def counting_backward(*a, **k):
        calls["backward"] += 1
        return real_backward(*a, **k)

    def counting_grad(*a, **k):
        calls["grad"] += 1
        return real_grad(*a, **k)

    monkeypatch.setattr(torch.autograd, "backward", counting_backward)
    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    alpha0 = net.mixer.alphas["cell"].detach().clone()
    w0 = [p.detach().clone() for p in net.weight_parameters()]
    opt.step(batch, None)
    assert calls == {"backward": 1, "grad": 0}
    monkeypatch.undo()

    # Adam's first step: alpha -= lr * g' / (|g'| + eps), g' = g + wd * alpha
    gp = g_alpha + 1e-3 * alpha0
    torch.testing.assert_close(net.mixer.alphas["cell"].detach(), alpha0 - 3e-4 * gp / (gp.abs() + 1e-8))
    # SGD (nesterov off) first step: w -= lr * (g + wd * w)
    for p, p0, g in zip(net.weight_parameters(), w0, g_w):
        torch.testing.assert_close(p.detach(), p0 - 0.1 * (g + 3e-4 * p0), rtol=1e-5, atol=1e-7)
    assert not torch.equal(net.mixer.alphas["cell"], alpha0)


def test_single_level_data_all_streams_both_splits(tmp_path):
    base = ["method=single_darts", *TINY_SEARCH, "search.epochs=1", f"out_root={tmp_path}"]
    train_only = SearchSession(_cfg(*base))
    both = SearchSession(_cfg(*base, "optimizer.data=all"))
    train_only, both = train_only.setup, both.setup
    n_w, n_a = len(train_only.weights_split), len(train_only.arch_split)
    assert n_w == n_a == 128 and train_only.engine.arch_stream is None
    assert len(both.weights_split) == n_w + n_a
    assert torch.equal(both.weights_split.images, torch.cat([train_only.weights_split.images,
                                                             train_only.arch_split.images]))
    # one pass of the weights stream visits every image of both splits exactly once
    stream = both.engine.train_stream
    seen = torch.cat([stream._indices() for _ in range(stream.batches_per_pass())])
    assert sorted(seen.tolist()) == list(range(n_w + n_a))
    assert both.engine.steps_per_epoch == 2 * train_only.engine.steps_per_epoch


# ---------------------------------------------------------------------------------------------- PC-DARTS
def test_channel_shuffle_permutation():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert channel_shuffle(x, 1).flatten().tolist() == list(range(8))


@pytest.mark.parametrize("cell_cls", [FastSearchCell, ReferenceSearchCell])
def test_partial_channel_cells_build_ops_on_c_over_k(cell_cls):
    full, pc = cell_cls(8), cell_cls(8, method_parts(4))
    assert pc.c_op == 2
    convs = [m for m in pc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.in_channels == 2 for m in convs)
    # 6 edges x (1x1 conv c*c + c bias, 3x3 conv 9c*c + c bias) = 6 (10 c^2 + 2 c)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(full) == 6 * (10 * 64 + 16) == 3936
    assert count(pc) == 6 * (10 * 4 + 4) == 264


@pytest.mark.parametrize("cell_cls", [FastSearchCell, ReferenceSearchCell])
def test_partial_channel_cell_bypass_and_shuffle(cell_cls):
    """skip_connect alone on every edge (weight 1, scale 1): each edge output is shuffle(cat[x[:C/K], x[C/K:]])
    = x[:, perm], so node1 = s(x), node2 = s(x) + s(node1), node3 = s(x) + s(node1) + s(node2)."""
    cell = cell_cls(8, method_parts(4))
    weights = torch.zeros(6, 5)
    weights[:, 1] = 1.0
    x = torch.randn(2, 8, 4, 4)
    out = cell(x, EdgeWeights(weights, edge_scale=torch.ones(6)))
    perm = [0, 2, 4, 6, 1, 3, 5, 7]
    node1 = x[:, perm]
    node2 = x[:, perm] + node1[:, perm]
    torch.testing.assert_close(out, x[:, perm] + node1[:, perm] + node2[:, perm])


def test_edge_normalisation_is_a_softmax_over_each_nodes_incoming_edges():
    space = get_space("nb201")
    mixer = MIXERS.get("pc_softmax")(space)
    beta = [0.0, 1.0, 2.0, 0.5, -1.0, 3.0]  # edges 1<-0 | 2<-0, 2<-1 | 3<-0, 3<-1, 3<-2
    alpha = torch.randn(6, 5)
    with torch.no_grad():
        mixer.betas["cell"].copy_(torch.tensor(beta))
        mixer.alphas["cell"].copy_(alpha)
    e = math.e
    z3 = math.exp(0.5) + math.exp(-1.0) + math.exp(3.0)
    expected = [1.0, 1 / (1 + e), e / (1 + e), math.exp(0.5) / z3, math.exp(-1.0) / z3, math.exp(3.0) / z3]
    w = mixer.edge_weights("cell")
    torch.testing.assert_close(w.edge_scale, torch.tensor(expected), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(w.weights, torch.softmax(alpha, -1))
    op_scores, edge_scores = mixer.selection_scores()
    assert edge_scores is None
    torch.testing.assert_close(op_scores["cell"], torch.softmax(alpha, -1) * torch.tensor(expected)[:, None])
    # gradients reach both alpha and beta; the single-edge node's beta gets exactly zero
    (w.edge_scale * torch.arange(6.0)).sum().backward()
    g = mixer.betas["cell"].grad
    assert g[0] == 0 and (g[1:] != 0).all()
    assert [p.shape for p in mixer.arch_parameters()] == [torch.Size([6, 5]), torch.Size([6])]


def test_node_softmax_on_darts_segments():
    space = get_space("darts")
    groups = [[e.index for e in edges] for edges in space.incoming("normal").values()]
    assert [len(g) for g in groups] == [2, 3, 4, 5]
    beta = torch.randn(14)
    got = node_softmax(beta, group_mask(groups, 14))
    expected = torch.cat([torch.softmax(beta[g], 0) for g in groups])  # groups are contiguous in DARTS order
    torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="partition"):
        group_mask([[0, 1], [1, 2]], 3)


def test_pc_darts_magnitude_uses_alpha_times_beta_on_the_darts_rule():
    space = get_space("darts")
    mixer = MIXERS.get("pc_softmax")(space)
    with torch.no_grad():
        for ct in space.cell_types:
            mixer.alphas[ct].zero_()
            mixer.alphas[ct][:, 4] = 2.0  # sep_conv_3x3 favoured everywhere
            mixer.betas[ct].zero_()
            mixer.betas[ct][[2, 4]] = 5.0  # node 3: edges 0->3 and 2->3 strongly preferred over 1->3
    op_scores, edge_scores = mixer.selection_scores()
    assert edge_scores is None  # the space's default rule ranks edges by max non-none W
    arch = space.discretize(op_scores, edge_scores)
    assert arch.normal[2:4] == (("sep_conv_3x3", 0), ("sep_conv_3x3", 2))  # ties: lower input first
    assert arch.reduce[2:4] == (("sep_conv_3x3", 0), ("sep_conv_3x3", 2))


def _session(tmp_path, *overrides):
    return SearchSession(_cfg(*TINY_SEARCH, "search.max_steps_per_epoch=2", f"out_root={tmp_path}", *overrides))


def test_pc_darts_warm_up_freezes_alpha_and_beta_while_weights_train(tmp_path):
    s = _session(tmp_path, "method=pc_darts", "optimizer.arch_start_epoch=2")
    eng = s.engine
    arch0 = [p.detach().clone() for p in s.supernet.arch_parameters()]
    assert len(arch0) == 2  # alpha and the edge betas
    for epoch in range(3):
        w_before = [p.detach().clone() for p in s.supernet.weight_parameters()]
        eng.start_epoch(epoch)
        eng.run_epoch()
        eng.step = 0
        changed_w = sum(not torch.equal(a, p) for a, p in zip(w_before, s.supernet.weight_parameters()))
        assert changed_w > 0, epoch
        same_arch = all(torch.equal(a, p) for a, p in zip(arch0, s.supernet.arch_parameters()))
        assert s.optimizer.schedule_values()["arch_updates"] == float(epoch >= 2)
        assert same_arch == (epoch < 2), epoch
    assert s.optimizer.a_opt.state  # Adam state only exists once alpha steps began


# --------------------------------------------------------------------------------- resume reproduces runs
class _Stop(Exception):
    pass


def _checkpoint(res):
    return torch.load(Path(res["run_dir"]) / "checkpoint.pt", weights_only=False)


@pytest.mark.parametrize("method,extra", [
    ("darts_minus", []),
    ("pc_darts", ["optimizer.arch_start_epoch=1"]),
    ("darts", ["space=darts", "space.supernet.C=4", "space.supernet.layers=3"]),
])
def test_stop_and_resume_equals_uninterrupted(tmp_path, monkeypatch, method, extra):
    tiny = [o for o in TINY_SEARCH if not ("space=darts" in extra and o.startswith("space.supernet."))]  # DARTS space: own sizes
    overrides = [*tiny, "search.max_steps_per_epoch=3", f"method={method}", *extra]
    ref = search(_cfg(*overrides, f"out_root={tmp_path / 'ref'}"))

    real_start = SearchEngine.start_epoch

    def stop_at_2(self, epoch):
        if epoch == 2:
            raise _Stop
        real_start(self, epoch)

    monkeypatch.setattr(SearchEngine, "start_epoch", stop_at_2)
    with pytest.raises(_Stop):
        search(_cfg(*overrides, f"out_root={tmp_path / 'cut'}"))
    monkeypatch.setattr(SearchEngine, "start_epoch", real_start)
    # scramble the global RNG state: the resume must restore it from the checkpoint
    torch.manual_seed(12345)
    resumed = search(_cfg(*overrides, f"out_root={tmp_path / 'cut'}"))

    a, b = _checkpoint(ref), _checkpoint(resumed)
    for key, value in a["supernet"].items():
        assert torch.equal(value, b["supernet"][key]), key
    assert a["components"] == b["components"]
    for k in ("exp_avg", "exp_avg_sq"):
        for s_ref, s_res in zip(a["optimizer"]["a_opt"]["state"].values(), b["optimizer"]["a_opt"]["state"].values()):
            assert torch.equal(s_ref[k], s_res[k])
    assert resumed["arch"] == ref["arch"]
    metrics_file = next((tmp_path / "cut").rglob("metrics.jsonl"))
    metrics = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [0, 1, 2]
    if method == "darts":
        assert {"mixer.alphas.normal", "mixer.alphas.reduce"} <= set(b["supernet"])
    elif method == "darts_minus":
        assert [m["aux_skip_beta"] for m in metrics] == pytest.approx([1.0, 2 / 3, 1 / 3])
        assert float(b["supernet"]["edge_part_specs.0.coef"]) == pytest.approx(1 / 3)
    else:
        assert [m["arch_updates"] for m in metrics] == [0.0, 1.0, 1.0]


# ------------------------------------------------------------------------- the DARTS space end to end
TINY_DARTS_SEARCH = [*TINY_DARTS, "dataset.num_train=256", "dataset.num_test=64", "dataset.image_size=8",
                     "search.batch_size=16", "search.epochs=2", "search.max_steps_per_epoch=2", "num_threads=1"]


def _darts_search(tmp_path, *overrides):
    res = search(_cfg(*TINY_DARTS_SEARCH, f"out_root={tmp_path}", *overrides))
    metrics = [json.loads(line) for line in (Path(res["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    return res, metrics


@pytest.mark.parametrize("method", METHODS)
def test_search_end_to_end_on_the_darts_space(tmp_path, method):
    res, metrics = _darts_search(tmp_path, f"method={method}", "optimizer.arch_start_epoch=1")
    assert res["status"] == "ok" and res["space"] == "darts" and res["method"] == method
    arch = get_space("darts").parse_arch(res["arch"])
    for ct in ("normal", "reduce"):
        pairs = arch.cell(ct)
        assert len(pairs) == 8 and all(op != "none" for op, _ in pairs)
    for m in metrics:
        assert set(m["alpha_entropy"]) == {"normal", "reduce"} and isinstance(m["skip_count"], int)
    assert [m["arch_updates"] for m in metrics] == [0.0, 1.0]
    state = _checkpoint(res)
    alphas = {k: tuple(v.shape) for k, v in state["supernet"].items() if k.startswith("mixer.alphas.")}
    assert alphas == {"mixer.alphas.normal": (14, 8), "mixer.alphas.reduce": (14, 8)}
    if method == "darts_minus":
        assert [m["aux_skip_beta"] for m in metrics] == [1.0, 0.5]
        assert float(state["supernet"]["edge_part_specs.0.coef"]) == 0.5 and state["components"] == [{"beta": 0.5}]
    else:
        assert state["components"] == []


@pytest.mark.slow  # the DARTS-space Hessian has 252 rows (alpha + PC betas): ~30 s on a CPU
def test_darts_space_hessian_and_ostr_derive(tmp_path):
    from nascli.commands.derive import derive

    res, metrics = _darts_search(tmp_path, "method=pc_darts", "optimizer.arch_start_epoch=1",
                                 "diagnostics.hessian_every=2")
    assert "hessian_eigenvalue" not in metrics[0] and math.isfinite(metrics[1]["hessian_eigenvalue"])
    out = derive(_cfg_derive(f"run='{res['run_dir']}'", "selection=ostr", "selection.num_batches=1"))
    data = json.loads(Path(out["arch_path"]).read_text())
    for ct in ("normal", "reduce"):
        assert len(data["scores"]["strength"][ct]) == 14
        assert all(row[0] is None and None not in row[1:] for row in data["scores"]["strength"][ct])


def _cfg_derive(*overrides: str):
    return compose_cfg("derive", ["device=cpu", "num_threads=1", *overrides])
