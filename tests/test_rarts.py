"""RARTS (nascli/search/optimizers/rarts.py): the three Gauss-Seidel updates against hand computations, the
proximity pull, y's own BatchNorm statistics, checkpoints holding both networks, exact resume, the CLI."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import RESUME, TINY, compose_cfg, interrupted_and_full_states, nas, result_line
from nascli.errors import IncompatibleError, OptionError
from nascli.search.builder import build_optimizer, build_supernet
from nascli.search.composition import check_search_config
from nascli.search.optimizers import SEARCH_OPTIMIZERS
from nascli.search.optimizers.base import StepHooks
from nascli.search.options import accepted_options
from nascli.search.optimizers.rarts import RartsOptimizer
from nascli.spaces import get_space
from nascli.spaces.base import Supernet

LR, LAM, BETA, ARCH_LR = 0.1, 0.7, 0.5, 0.05
EXACT = dict(momentum=0.0, weight_decay=0.0, grad_clip=0.0, arch_weight_decay=0.0)


# ------------------------------------------------------------------ a hand-made two-op "supernet"
class ToyMixer(nn.Module):
    def __init__(self):
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor([[0.3, -0.2]]))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]


class ToySupernet(Supernet):
    """logits = BN(softmax(alpha)_0 * (W1 x + b1) + softmax(alpha)_1 * W2 x), BN non-affine."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.mixer = ToyMixer()
        self.op1 = nn.Linear(3, 4)
        self.op2 = nn.Linear(3, 4, bias=False)
        self.bn = nn.BatchNorm1d(4, affine=False)

    def forward(self, x):
        a = torch.softmax(self.mixer.alpha, -1)[0]
        return self.bn(a[0] * self.op1(x) + a[1] * self.op2(x))


def toy_features(params: dict[str, torch.Tensor], alpha: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The toy's mixed edge before BN, by hand."""
    a = torch.softmax(alpha, -1)[0]
    return a[0] * (x @ params["op1.weight"].T + params["op1.bias"]) + a[1] * (x @ params["op2.weight"].T)


def toy_loss(params: dict[str, torch.Tensor], alpha: torch.Tensor, batch) -> torch.Tensor:
    """The toy's loss written out by hand (batch statistics, as in training mode)."""
    x, t = batch
    return F.cross_entropy(F.batch_norm(toy_features(params, alpha, x), None, None, training=True), t)


def toy_batches():
    g = torch.Generator().manual_seed(1)
    train = (torch.randn(6, 3, generator=g), torch.randint(0, 4, (6,), generator=g))
    val = (torch.randn(6, 3, generator=g), torch.randint(0, 4, (6,), generator=g))
    return train, val


def toy_optimizer(**kw) -> RartsOptimizer:
    opt = RartsOptimizer(ToySupernet(), lr=LR, lr_min=LR, beta=BETA, proximity=LAM, arch_lr=ARCH_LR,
                         **{**EXACT, **kw})
    with torch.no_grad():  # y != w, so the proximity term is not zero in the first step
        for y in opt.y:
            y.add_(0.3 * torch.randn(y.shape, generator=torch.Generator().manual_seed(y.numel())))
    opt.on_epoch_start(0, 1)
    return opt


def grads(loss: torch.Tensor, params) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(params)))


def hand_step(w0: dict, y0: dict, alpha0: torch.Tensor, train, val, *, y_sees_new_w: bool = True):
    """The three RARTS updates computed by hand: (w1, y1, g_alpha) with g_alpha at (w1, y1) (Gauss-Seidel)."""
    names = list(w0)
    w = {n: t.clone().requires_grad_() for n, t in w0.items()}
    gw = grads(toy_loss(w, alpha0, train), w.values())
    w1 = {n: w0[n] - LR * (g + LAM * (w0[n] - y0[n])) for n, g in zip(names, gw)}
    y = {n: t.clone().requires_grad_() for n, t in y0.items()}
    gy = grads(BETA * toy_loss(y, alpha0, val), y.values())
    anchor = w1 if y_sees_new_w else w0
    y1 = {n: y0[n] - LR * (g + LAM * (y0[n] - anchor[n])) for n, g in zip(names, gy)}
    a = alpha0.clone().requires_grad_()
    g_alpha = grads(toy_loss(w1, a, train) + BETA * toy_loss(y1, a, val), [a])[0]
    return w1, y1, g_alpha


def _state(opt: RartsOptimizer):
    w = {n: p.detach().clone() for n, p in opt.net.named_weight_parameters()}
    y = {n: t.detach().clone() for n, t in zip(opt.y_names, opt.y)}
    return w, y, opt.arch[0].detach().clone()


def test_the_three_updates_match_a_hand_computation():
    opt = toy_optimizer()
    train, val = toy_batches()
    w0, y0, alpha0 = _state(opt)
    w1, y1, g_alpha = hand_step(w0, y0, alpha0, train, val)
    opt.step(train, val)
    w, y, alpha = _state(opt)
    for n in w0:
        torch.testing.assert_close(w[n], w1[n], rtol=0, atol=1e-6)
        torch.testing.assert_close(y[n], y1[n], rtol=0, atol=1e-6)
    torch.testing.assert_close(opt.arch[0].grad, g_alpha, rtol=1e-5, atol=1e-7)
    # one Adam step from zero moments (no weight decay): alpha - lr * g / (|g| + eps)
    torch.testing.assert_close(alpha, alpha0 - ARCH_LR * g_alpha / (g_alpha.abs() + 1e-8), rtol=0, atol=1e-7)
    # the order matters: a y update anchored at the old w (Jacobi) is measurably different
    _, y_jacobi, _ = hand_step(w0, y0, alpha0, train, val, y_sees_new_w=False)
    assert max((y_jacobi[n] - y1[n]).abs().max() for n in w0) > 1e-3


def test_reuse_takes_alphas_gradient_from_the_w_and_y_passes():
    """arch_grad=reuse: the same w and y updates; g_alpha at the step's starting w and y (two passes)."""
    opt = toy_optimizer(arch_grad="reuse")
    train, val = toy_batches()
    w0, y0, alpha0 = _state(opt)
    w1, y1, g_new = hand_step(w0, y0, alpha0, train, val)
    a = alpha0.clone().requires_grad_()
    g_start = grads(toy_loss(w0, a, train) + BETA * toy_loss(y0, a, val), [a])[0]
    opt.step(train, val)
    w, y, _ = _state(opt)
    for n in w0:
        torch.testing.assert_close(w[n], w1[n], rtol=0, atol=1e-6)
        torch.testing.assert_close(y[n], y1[n], rtol=0, atol=1e-6)
    torch.testing.assert_close(opt.arch[0].grad, g_start, rtol=1e-5, atol=1e-7)
    assert (g_start - g_new).abs().max() > 1e-4


@pytest.mark.parametrize("arch_grad, passes", [("gauss_seidel", 2), ("reuse", 1)])
def test_y_keeps_its_own_batchnorm_statistics(arch_grad, passes):
    """The supernet's running statistics see only w's training-split forwards, y's only the validation ones:
    running_mean <- 0.9 running_mean + 0.1 batch_mean per pass (the first at the step's start values, the
    second, gauss_seidel's alpha pass, at the updated ones; alpha is updated after both)."""
    opt = toy_optimizer(arch_grad=arch_grad)
    train, val = toy_batches()
    w0, y0, alpha0 = _state(opt)
    opt.step(train, val)
    w1, y1, _ = _state(opt)
    for running, count, values, x in ((opt.net.bn.running_mean, opt.net.bn.num_batches_tracked, (w0, w1), train[0]),
                                      (opt.y_buffers["bn.running_mean"], opt.y_buffers["bn.num_batches_tracked"],
                                       (y0, y1), val[0])):
        expected = torch.zeros(4)
        for params in values[:passes]:
            expected = 0.9 * expected + 0.1 * toy_features(params, alpha0, x).mean(0)
        assert int(count) == passes
        torch.testing.assert_close(running, expected)


def test_gradient_clipping_applies_to_loss_plus_proximity():
    """With grad_clip c, each network's step is at most lr * c long (momentum and weight decay off)."""
    opt = toy_optimizer(grad_clip=1e-3)
    train, val = toy_batches()
    w0, y0, _ = _state(opt)
    opt.step(train, val)
    w, y, _ = _state(opt)
    for before, after in ((w0, w), (y0, y)):
        step = torch.sqrt(sum(((after[n] - before[n]) ** 2).sum() for n in before))
        assert step == pytest.approx(LR * 1e-3, rel=1e-2)  # float32 differences of O(1) weights


def test_the_proximity_term_pulls_y_toward_w():
    """||w - y|| after ten steps: large lambda shrinks it more than twentyfold (to the gap the two splits keep open), lambda 0 does not."""
    train, val = toy_batches()
    distances = {}
    for lam in (0.0, 4.0):
        opt = RartsOptimizer(ToySupernet(), lr=0.1, lr_min=0.1, proximity=lam, **EXACT)
        with torch.no_grad():
            for y in opt.y:
                y.add_(1.0)
        opt.on_epoch_start(0, 1)
        d0 = opt.distance()
        for _ in range(10):
            opt.step(train, val)
        distances[lam] = opt.distance() / d0
    assert distances[4.0] < 0.05 < 0.5 < distances[0.0]


def test_y_starts_as_a_copy_of_w_and_the_config_keys_are_the_constructor_keys():
    opt = RartsOptimizer(ToySupernet())
    assert opt.distance() == 0.0
    assert all(y is not p and torch.equal(y, p) for y, p in zip(opt.y, opt.weights))
    cfg = compose_cfg("search", ["optimizer=rarts"])
    keys = set(cfg.optimizer) - {"name"}
    assert keys == set(accepted_options(SEARCH_OPTIMIZERS.get("rarts")))
    assert (cfg.optimizer.beta, cfg.optimizer.proximity, cfg.optimizer.arch_grad) == (1.0, 1.0, "gauss_seidel")


@pytest.mark.parametrize("key, value, words", [
    ("arch_grad", "jacobi", "unknown optimizer.arch_grad 'jacobi'; valid choices: gauss_seidel, reuse"),
    ("proximity", -1.0, "optimizer.proximity must be a number >= 0, got -1.0"),
    ("beta", "abc", "optimizer.beta must be a number >= 0, got 'abc'"),
])
def test_bad_options_are_one_line_errors(key, value, words):
    with pytest.raises(OptionError) as err:
        RartsOptimizer(ToySupernet(), **{key: value})
    assert str(err.value) == words


# ------------------------------------------------------------------ the real NB201 supernet
def test_one_step_on_a_tiny_nb201_supernet_equals_two_separate_networks():
    """The twin evaluated through the supernet (functional_call) is a second network: w, y and alpha's
    gradient after one step equal a hand computation with torch.autograd on two deep copies."""
    cfg = compose_cfg("search", ["optimizer=rarts", "space.supernet.C=4", "space.supernet.N=1",
                                 *[f"optimizer.{k}={v}" for k, v in EXACT.items()], f"optimizer.lr={LR}",
                                 f"optimizer.proximity={LAM}", f"optimizer.beta={BETA}"])
    torch.manual_seed(0)
    net = build_supernet(cfg, get_space("nb201"), 10, 3)
    opt = build_optimizer(cfg, net, torch.device("cpu"))
    opt.on_epoch_start(0, 2)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for y in opt.y:
            y.add_(0.05 * torch.randn(y.shape, generator=g))
    train = (torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g))
    val = (torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g))
    net_w, net_y = copy.deepcopy(net), copy.deepcopy(net)
    with torch.no_grad():
        for p, y in zip(net_y.weight_parameters(), opt.y):
            p.copy_(y)
    w0 = [p.detach().clone() for p in net_w.weight_parameters()]
    y0 = [p.detach().clone() for p in net_y.weight_parameters()]
    gw = grads(F.cross_entropy(net_w(train[0]), train[1]), net_w.weight_parameters())
    with torch.no_grad():
        for p, a, b, gr in zip(net_w.weight_parameters(), w0, y0, gw):
            p.copy_(a - LR * (gr + LAM * (a - b)))
    gy = grads(BETA * F.cross_entropy(net_y(val[0]), val[1]), net_y.weight_parameters())
    with torch.no_grad():
        for p, b, w1, gr in zip(net_y.weight_parameters(), y0, net_w.weight_parameters(), gy):
            p.copy_(b - LR * (gr + LAM * (b - w1)))
    g_alpha = [ga + gb for ga, gb in zip(
        grads(F.cross_entropy(net_w(train[0]), train[1]), net_w.arch_parameters()),
        grads(BETA * F.cross_entropy(net_y(val[0]), val[1]), net_y.arch_parameters()))]

    opt.step(train, val)
    for p, q in zip(opt.weights, net_w.weight_parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
    for p, q in zip(opt.y, net_y.weight_parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
    for p, ga in zip(opt.arch, g_alpha):
        torch.testing.assert_close(p.grad, ga, rtol=1e-4, atol=1e-7)
    for (name, b), (_, b_ref) in zip(sorted(opt.y_buffers.items()),
                                     sorted((n, b) for n, b in net_y.named_buffers() if n in opt.y_buffers)):
        torch.testing.assert_close(b, b_ref, msg=name)


# ------------------------------------------------------------------ checkpoints and the CLI
def test_the_checkpoint_holds_both_networks_and_resume_equals_an_uninterrupted_run(tmp_path):
    full, resumed, at = interrupted_and_full_states(tmp_path, ["optimizer=rarts", *TINY, *RESUME], crash_at_step=6)
    assert at == (1, 2)  # resumed mid-epoch from the step-2 checkpoint of epoch 1
    for state in (full, resumed):
        torch.save(state, tmp_path / "state.pt")
        torch.load(tmp_path / "state.pt", weights_only=True)  # plain tensors and containers only
    opt_full, opt_res = full["optimizer"], resumed["optimizer"]
    assert set(opt_full["y"]) == {k for k in full["supernet"] if not k.startswith("mixer.")} - set(opt_full["y_buffers"])
    assert any(not torch.equal(opt_full["y"][n], full["supernet"][n]) for n in opt_full["y"])  # two networks
    for k in full["supernet"]:
        assert torch.equal(full["supernet"][k], resumed["supernet"][k]), k
    for part in ("y", "y_buffers"):
        for n in opt_full[part]:
            assert torch.equal(opt_full[part][n], opt_res[part][n]), (part, n)
    for i, s in opt_full["y_opt"]["state"].items():
        assert torch.equal(s["momentum_buffer"], opt_res["y_opt"]["state"][i]["momentum_buffer"])


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_nas_search_with_rarts_derives_an_architecture(tmp_path, space):
    sizes = {"nb201": ["space.supernet.C=4", "space.supernet.N=1"],
             "darts": ["space=darts", "space.supernet.C=4", "space.supernet.layers=3"]}[space]
    res = result_line(nas("search", "optimizer=rarts", *sizes, "dataset=synthetic", "dataset.num_train=64",
                          "dataset.num_test=32", "dataset.image_size=8", "search.batch_size=8", "search.epochs=1",
                          "search.max_steps_per_epoch=1", "num_threads=1", f"out_root={tmp_path}"))
    assert res["status"] == "ok" and res["optimizer"] == "rarts" and res["space"] == space
    arch = Path(res["arch_path"])
    assert arch.exists() and res["arch"]
    metrics = (arch.parent / "metrics.jsonl").read_text()
    assert '"w_y_distance"' in metrics and '"val_loss"' in metrics


@pytest.mark.parametrize("method", ["sdarts_rs", "ms_darts"])
def test_perturbed_weight_steps_compose_with_gauss_seidel_and_refuse_reuse(method):
    """SDARTS / MS-DARTS perturb w's update through the weight-step hooks: fine with alpha's gradient
    recomputed (gauss_seidel); with reuse the perturbed pass would leave alpha's L_t gradient at zero."""
    check_search_config(compose_cfg("search", [f"method={method}", "optimizer=rarts"]))
    with pytest.raises(IncompatibleError) as err:
        check_search_config(compose_cfg("search", [f"method={method}", "optimizer=rarts", "optimizer.arch_grad=reuse"]))
    assert str(err.value).startswith("cannot compose this search: optimizer.arch_grad=reuse takes alpha's")
    assert "\n" not in str(err.value) and "use optimizer.arch_grad=gauss_seidel" in str(err.value)


def test_weight_step_hooks_wrap_the_update_of_w_only():
    """A component's before/after_weight_step bracket w's update: y and alpha are updated outside it."""
    opt = toy_optimizer()
    train, val = toy_batches()
    events = []

    class Recorder(StepHooks):
        def before_weight_step(self, batch):
            events.append(("before", batch[0] is train[0], _state(opt)))

        def after_weight_step(self):
            events.append(("after", None, _state(opt)))

    opt.attach(Recorder())
    w0, y0, a0 = _state(opt)
    opt.step(train, val)
    (b, is_train, (wb, yb, ab)), (a, _, (wa, ya, aa)) = events
    assert (b, a, is_train) == ("before", "after", True)
    assert all(torch.equal(wb[n], w0[n]) and torch.equal(yb[n], y0[n]) for n in w0)
    assert any(not torch.equal(wa[n], w0[n]) for n in w0)  # w moved inside the bracket
    assert all(torch.equal(ya[n], y0[n]) for n in y0) and torch.equal(aa, a0)  # y and alpha after it


@pytest.mark.parametrize("arch_grad", ["gauss_seidel", "reuse"])
@pytest.mark.parametrize("arch_enabled", [True, False])
def test_each_step_reports_one_train_and_one_val_loss(arch_grad, arch_enabled):
    """train = L_t(w) of the w pass; val = L_v(y) once: where alpha's gradient comes from, or the y pass
    while alpha is frozen (warm-up), so the loss hooks see exactly one of each per step."""
    opt = toy_optimizer(arch_grad=arch_grad)
    opt.arch_enabled = arch_enabled
    train, val = toy_batches()
    seen = []

    class Losses(StepHooks):
        def on_loss(self, prefix, loss):
            seen.append((prefix, float(loss)))

    opt.attach(Losses())
    w0, y0, alpha0 = _state(opt)
    w1, y1, _ = hand_step(w0, y0, alpha0, train, val)
    opt.step(train, val)
    assert [p for p, _ in seen] == ["train", "val"] and opt.stats.counts == {"train": 6, "val": 6}
    assert seen[0][1] == pytest.approx(float(toy_loss(w0, alpha0, train)), rel=1e-6)
    y_at = y1 if (arch_enabled and arch_grad == "gauss_seidel") else y0
    assert seen[1][1] == pytest.approx(float(toy_loss(y_at, alpha0, val)), rel=1e-6)
    assert torch.equal(opt.arch[0].detach(), alpha0) != arch_enabled


@pytest.mark.skipif(not hasattr(StepHooks, "arch_loss_term"), reason="no architecture-loss hook in this tree")
def test_an_architecture_loss_term_reaches_alpha_weighted_by_beta():
    """A hook's arch_loss_term rides on the reported validation loss (SearchOptimizer.loss), which RARTS
    scales by beta: g_alpha gains beta * dR/dalpha."""
    train, val = toy_batches()
    g = {}
    for with_term in (False, True):
        opt = toy_optimizer()

        class Term(StepHooks):
            def arch_loss_term(self):
                return (opt.arch[0] ** 2).sum() if with_term else None

        opt.attach(Term())
        alpha0 = opt.arch[0].detach().clone()
        opt.step(train, val)
        g[with_term] = opt.arch[0].grad.clone()
    torch.testing.assert_close(g[True] - g[False], BETA * 2 * alpha0, rtol=1e-5, atol=1e-7)
