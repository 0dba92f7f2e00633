"""GDAS (gumbel mixer): temperature schedule, straight-through sampler, single-path forward, passthrough,
per-space rules, CPU search steps and exact resume (METHODS.md 5.1)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from helpers import (RESUME, TINY, TINY_DARTS, assert_same_state, compose_cfg, count_op_calls,
                     interrupted_and_full_states, nas, result_line)
from nascli.search.mixers import MIXERS
from nascli.search.mixers import gumbel as gumbel_mod
from nascli.search.mixers.gumbel import GumbelMixer, hard_gumbel_softmax, temperature
from nascli.spaces import get_space
from nascli.search.edge_parts import method_parts

def nb201_supernet(mixer_name="gumbel", impl="fast", C=4, N=1, **mixer_kw):
    space = get_space("nb201")
    mixer = MIXERS.get(mixer_name)(space, **mixer_kw)
    return space.build_supernet(mixer, 10, 3, (), C=C, N=N, impl=impl)


# ------------------------------------------------------------------------------------ schedule
def test_temperature_schedule_values():
    # tau_e = 10 - 9.9 e / (E - 1) (AutoDL GDAS: tau_max 10, tau_min 0.1, set at epoch start)
    assert temperature(0, 250) == 10.0
    assert temperature(249, 250) == pytest.approx(0.1)
    assert temperature(1, 250) == pytest.approx(10 - 9.9 / 249)
    assert [round(temperature(e, 3), 6) for e in range(3)] == [10.0, 5.05, 0.1]
    assert temperature(0, 1) == 10.0
    mixer = GumbelMixer(get_space("nb201"))
    assert float(mixer.tau) == 10.0
    mixer.on_epoch_start(2, 5)
    assert float(mixer.tau) == pytest.approx(10 - 9.9 * 2 / 4)
    assert mixer.schedule_values() == {"tau": pytest.approx(5.05)}
    assert "tau" in mixer.state_dict()  # a buffer: checkpointed with the supernet


# ------------------------------------------------------------------------------------ sampler
def test_straight_through_forward_is_exactly_one_hot_and_backward_is_the_softmax_jacobian():
    torch.manual_seed(3)
    logits = torch.randn(6, 5, requires_grad=True)
    tau = 0.7
    gen = torch.Generator().manual_seed(11)
    hard, index, h = hard_gumbel_softmax(logits, tau, generator=gen)
    assert torch.equal(hard, F.one_hot(index, 5).float())  # bitwise one-hot values
    assert torch.equal(index, h.argmax(-1))
    upstream = torch.randn(6, 5)
    (grad,) = torch.autograd.grad((hard * upstream).sum(), logits)
    # the same noise, the soft sample as a function of the logits, and its vector-Jacobian product
    g = gumbel_mod.gumbel_noise(logits.shape, logits.device, torch.Generator().manual_seed(11))

    def soft(a):
        return torch.softmax((torch.log_softmax(a, -1) + g) / tau, -1)

    _, expected = torch.autograd.functional.vjp(soft, logits.detach(), upstream)
    assert torch.allclose(grad, expected, atol=1e-6)
    # explicit Jacobian of softmax(z / tau) with z = log_softmax(a) + g:
    # dh/dz = (diag(h) - h h^T) / tau; dz/da = I - softmax(a) 1^T
    p = torch.softmax(logits.detach(), -1)
    for e in range(6):
        he = h.detach()[e]
        jh = (torch.diag(he) - torch.outer(he, he)) / tau
        jz = torch.eye(5) - p[e].unsqueeze(0).expand(5, 5)
        assert torch.allclose(grad[e], jz.T @ (jh.T @ upstream[e]), atol=1e-6)


def test_sampler_resamples_when_the_noise_overflows(monkeypatch):
    calls = []
    real = gumbel_mod.gumbel_noise

    def flaky(shape, device, generator=None):
        calls.append(1)
        g = real(shape, device, generator)
        if len(calls) == 1:
            g[0, 0] = float("inf")
        return g

    monkeypatch.setattr(gumbel_mod, "gumbel_noise", flaky)
    hard, _, h = hard_gumbel_softmax(torch.zeros(3, 4), 1.0)
    assert len(calls) == 2 and torch.isfinite(h).all() and torch.isfinite(hard).all()


def test_masked_ops_are_never_sampled():
    mixer = GumbelMixer(get_space("nb201"), exclude_ops=["none", "skip_connect"])
    counts = Counter()
    for _ in range(300):
        _, index = mixer.sample_ops("cell")
        counts.update(index.tolist())
    assert set(counts) == {2, 3, 4}
    assert mixer.probabilities()["cell"][:, :2].sum() == 0


def test_sampling_follows_softmax_alpha_at_tau_one():
    mixer = GumbelMixer(get_space("nb201"))
    with torch.no_grad():
        mixer.alphas["cell"].copy_(torch.log(torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25])).expand(6, 5))
    mixer.tau.fill_(1.0)
    torch.manual_seed(0)
    counts = torch.zeros(5)
    for _ in range(2000):
        counts += torch.bincount(mixer.sample_ops("cell")[1], minlength=5)
    freq = counts / counts.sum()
    assert torch.allclose(freq, torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25]), atol=0.015)


# ------------------------------------------------------------------------------------ passthrough
def test_passthrough_default_comes_from_the_space_yaml():
    # AutoDL's NB201 cell adds the zero-valued hard weights, its NASNet/DARTS-space model does not (METHODS 11.5)
    assert compose_cfg("search", ["method=gdas", "space=nb201"]).method.mixer.passthrough is True
    assert compose_cfg("search", ["method=gdas", "space=darts"]).method.mixer.passthrough is False
    assert compose_cfg("search", ["method=rome", "space=darts"]).method.mixer.exclude_none is True
    assert compose_cfg("search", ["method=rome", "space=nb201"]).method.mixer.exclude_none is False
    assert GumbelMixer(get_space("nb201")).passthrough is False  # the mixer itself knows no space
    assert GumbelMixer(get_space("darts"), passthrough="true").passthrough is True
    with pytest.raises(ValueError, match="passthrough"):
        GumbelMixer(get_space("nb201"), passthrough="sometimes")


def test_edge_weights_single_op_and_zero_valued_passthrough():
    mixer = GumbelMixer(get_space("nb201"), passthrough=True)
    w = mixer.edge_weights("cell")
    assert [len(a) for a in w.active] == [1] * 6
    assert torch.equal(w.weights, F.one_hot(torch.tensor([a[0] for a in w.active]), 5).float())
    assert torch.equal(w.passthrough, torch.zeros(6))
    (w.passthrough.sum()).backward()  # every non-sampled op gets d passthrough / d hardwts = 1
    assert (mixer.alphas["cell"].grad != 0).all()
    off = GumbelMixer(get_space("nb201"), passthrough=False)
    assert off.edge_weights("cell").passthrough is None


def test_passthrough_gives_every_hard_weight_a_gradient_on_nb201():
    torch.manual_seed(0)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    grads = {}
    for flag in (True, False):
        torch.manual_seed(1)
        net = nb201_supernet(passthrough=flag)
        captured = {}
        mix = net.mixer.mix

        def keep(ct, mix=mix, captured=captured):
            w = mix(ct)
            w.weights.retain_grad()
            captured["w"] = w
            return w

        net.mixer.mix = keep
        torch.manual_seed(2)
        F.cross_entropy(net(x), y).backward()
        grads[flag] = captured["w"]
    on, off = grads[True], grads[False]
    assert [a for a in on.active] == [a for a in off.active]  # same samples
    sampled = F.one_hot(torch.tensor([a[0] for a in on.active]), 5).bool()
    none_edges = torch.tensor([a[0] == 0 for a in on.active])
    # without passthrough only the sampled (non-none) op's hard weight has a gradient
    assert (off.weights.grad[~sampled] == 0).all()
    assert (off.weights.grad[sampled & ~none_edges.unsqueeze(1)] != 0).all()
    # with it, every non-sampled op's hard weight gets one too (the reference NB201 behaviour)
    assert (on.weights.grad[~sampled] != 0).all()


# ------------------------------------------------------------------------------------ single path
def test_forward_computes_only_the_sampled_op_of_each_edge():
    torch.manual_seed(0)
    net = nb201_supernet(impl="reference", C=4, N=2)
    calls = Counter()
    handles = []
    cells = [m for m in net.modules() if m.__class__.__name__ == "ReferenceSearchCell"]
    assert len(cells) == 6
    for c, cell in enumerate(cells):
        for e, ops in enumerate(cell.edges):
            for o, op in enumerate(ops):
                handles.append(op.register_forward_hook(lambda *_, key=(c, e, o): calls.update([key])))
    samples = []
    mix = net.mixer.mix

    def record(ct):
        w = mix(ct)
        samples.append([a[0] for a in w.active])
        return w

    net.mixer.mix = record
    for _ in range(5):
        calls.clear()
        samples.clear()
        net(torch.randn(2, 3, 8, 8))
        assert len(samples) == 1  # one sample per forward, shared by all cells of the type
        k = samples[0]
        expected = Counter({(c, e, k[e]): 1 for c in range(6) for e in range(6) if k[e] != 0})
        assert calls == expected
    for h in handles:
        h.remove()


def test_fast_and_reference_cells_agree_under_the_same_sample():
    from nascli.spaces.nb201.cells import FastSearchCell, ReferenceSearchCell, copy_reference_to_fast
    torch.manual_seed(0)
    ref, fast = ReferenceSearchCell(4), FastSearchCell(4)
    copy_reference_to_fast(ref, fast)
    mixer = GumbelMixer(get_space("nb201"))
    x = torch.randn(2, 4, 6, 6)
    for _ in range(5):
        w = mixer.edge_weights("cell")
        assert torch.allclose(ref(x, w), fast(x, w), atol=1e-5)


# ------------------------------------------------------------------------------------ config
def test_method_config_defaults_per_space():
    cfg = compose_cfg("search", ["method=gdas"])
    assert cfg.method.mixer.name == "gumbel" and cfg.optimizer.name == "bilevel"
    assert cfg.optimizer.order == "weights_first" and cfg.optimizer.nesterov is True
    assert (cfg.optimizer.lr, cfg.optimizer.lr_min, cfg.optimizer.weight_decay) == (0.025, 0.001, 5e-4)
    assert (cfg.optimizer.arch_lr, list(cfg.optimizer.arch_betas), cfg.optimizer.arch_weight_decay) == \
        (3e-4, [0.5, 0.999], 1e-3)
    assert (cfg.search.epochs, cfg.search.batch_size, cfg.method.derive_rule) == (250, 64, "default")
    darts = compose_cfg("search", ["method=gdas", "space=darts"])
    assert (darts.search.batch_size, darts.method.derive_rule) == (256, "pairs")
    assert compose_cfg("search", ["method=gdas", "search.batch_size=16"]).search.batch_size == 16


def test_darts_space_pairs_rule_can_take_both_inputs_from_one_node():
    space = get_space("darts")
    mixer = GumbelMixer(space)
    with torch.no_grad():
        for a in mixer.alphas.values():
            a.zero_()
        mixer.alphas["normal"][0, 4] = 5.0  # edge 0->2: sep_conv_3x3 and sep_conv_5x5 strongest
        mixer.alphas["normal"][0, 5] = 4.0
    arch = space.discretize(*mixer.selection_scores(), rule="pairs")
    assert [tuple(p) for p in arch.normal[:2]] == [("sep_conv_3x3", 0), ("sep_conv_5x5", 0)]


# ------------------------------------------------------------------------------------ search runs
def test_cpu_search_step_nb201_logs_temperature(tmp_path):
    res = result_line(nas("search", "method=gdas", *TINY, "search.epochs=3", "search.max_steps_per_epoch=2",
                          f"out_root={tmp_path}"))
    run = Path(res["run_dir"])
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [round(m["tau"], 5) for m in metrics] == [10.0, 5.05, 0.1]
    assert all(m["peak_memory_mb"] > 0 for m in metrics)
    assert res["method"] == "gdas" and res["optimizer"] == "bilevel"
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert float(state["supernet"]["mixer.tau"]) == pytest.approx(0.1)


def test_cpu_search_step_darts_space(tmp_path):
    res = result_line(nas("search", "method=gdas", *TINY_DARTS, "search.epochs=1", "search.max_steps_per_epoch=1",
                          f"out_root={tmp_path}"))
    assert res["space"] == "darts" and res["status"] == "ok"
    arch = json.loads(Path(res["arch_path"]).read_text())
    assert arch["space"] == "darts"


def test_darts_space_forward_computes_one_op_per_edge():
    space = get_space("darts")
    torch.manual_seed(0)
    mixer = GumbelMixer(space)
    net = space.build_supernet(mixer, 10, 3, (), C=4, layers=3, impl="reference")
    calls, seen, cells = count_op_calls(net, mixer, torch.randn(2, 3, 8, 8))
    assert set(seen) == {"normal", "reduce"} and len(cells) == 3
    assert all(w.passthrough is None for w in seen.values())  # passthrough auto: off on the DARTS space
    expected = Counter()
    for c, cell in enumerate(cells):
        k = [a[0] for a in seen[cell.cell_type].active]
        expected.update({(c, e, k[e]): 1 for e in range(14) if k[e] != 0})
    assert calls == expected


# ------------------------------------------------------------------------------------ resume
def test_resume_restores_alphas_and_temperature_exactly(tmp_path):
    # crash at step 6 = epoch 1, step 3: resumes from the mid-epoch checkpoint after step 2 of epoch 1
    full, resumed, at = interrupted_and_full_states(tmp_path, ["method=gdas", *TINY, *RESUME], crash_at_step=6)
    assert at == (1, 2)
    assert_same_state(full, resumed)
    assert float(resumed["supernet"]["mixer.tau"]) == pytest.approx(0.1)
