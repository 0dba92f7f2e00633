"""DrNAS (METHODS.md 8): Dirichlet mixer, KL regulariser, progressive pruning and widening, resume, CLI."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from helpers import assert_same_state, compose_cfg, interrupted_and_full_states, nas, result_line
from nascli.errors import IncompatibleError
from nascli.search.builder import build_search
from nascli.search.components import build_components
from nascli.search.composition import check_search_config
from nascli.search.edge_parts import EDGE_PARTS
from nascli.search.mixers.dirichlet import DirichletMixer, concentration
from nascli.search.optimizers import SEARCH_OPTIMIZERS
from nascli.search.regularizers.dirichlet_kl import dirichlet_kl_to_uniform
from nascli.search.regularizers.drnas_progressive import stage_starts
from nascli.spaces import get_space
from nascli.spaces.nb201.arch import NB201_EDGES

NB201_TINY = ["space.supernet.C=4", "space.supernet.N=1", "dataset.num_train=128", "dataset.num_test=32",
              "dataset.image_size=8", "search.batch_size=8", "num_threads=1"]
DARTS_TINY = ["space=darts", "space.supernet.C=12", "space.supernet.layers=2", "dataset.num_train=64",
              "dataset.num_test=16", "dataset.image_size=8", "search.batch_size=4", "num_threads=1"]


def nb201_mixer(**kw) -> DirichletMixer:
    return DirichletMixer(get_space("nb201"), **kw)


def supernet(space_name: str, k: int, C: int, **size):
    """A reference-cell supernet with the Dirichlet mixer and partial channels K = ``k``."""
    space = get_space(space_name)
    mixer = DirichletMixer(space, exclude_ops=["none"] if space_name == "darts" else [])
    parts = [EDGE_PARTS.get("partial_channels")(k=k)]
    return space.build_supernet(mixer, 10, 3, parts, C=C, impl="reference", **size)


def progressive(net, ks, num_keeps, lr=0.1):
    opt = SEARCH_OPTIMIZERS.get("bilevel")(net, lr=lr, arch_start_epoch=0)
    (comp,) = build_components([{"name": "drnas_progressive", "ks": ks, "num_keeps": num_keeps}], net, opt)
    return opt, comp


# ------------------------------------------------------------------ the distribution
ALPHA = torch.tensor([[0.5, -1.0, 2.0, 0.0, -3.0],
                      [0.0, 0.0, 0.0, 0.0, 0.0],
                      [1.0, -0.5, 0.25, 3.0, -2.0],
                      [-1.0, 1.0, -1.0, 1.0, 0.0],
                      [4.0, 0.1, -0.1, 0.2, 0.3],
                      [-2.0, -2.0, 1.5, 0.5, 0.0]])


def test_concentration_is_elu_plus_one_and_positive_for_very_negative_alpha():
    a = torch.tensor([-1e4, -500.0, -100.0, -50.0, -17.5, -1.0, 0.0, 0.5, 3.0])
    c = concentration(a)
    assert (c > 0).all() and torch.isfinite(c).all()
    assert torch.allclose(c[3:], torch.tensor([math.exp(-50), math.exp(-17.5), math.exp(-1), 1.0, 1.5, 4.0]),
                          rtol=1e-6, atol=0)  # ELU(a) + 1 = exp(a) for a <= 0, a + 1 above
    assert torch.allclose(c[5:], torch.nn.functional.elu(a[5:]) + 1)
    assert float(c[0]) == float(c[2]) == torch.finfo(torch.float32).tiny  # below exp's range: the clamp
    # float32's own ELU + 1 collapses to 0 there (the reason for the two-branch form)
    assert float(torch.nn.functional.elu(torch.tensor(-50.0)) + 1) == 0.0


def test_concentration_gradient_is_elu_gradient():
    a = torch.tensor([-2.0, -0.3, 0.4, 3.0], requires_grad=True)
    (g,) = torch.autograd.grad(concentration(a).sum(), a)
    assert torch.allclose(g, torch.tensor([math.exp(-2.0), math.exp(-0.3), 1.0, 1.0]))


@pytest.mark.parametrize("num_keep", [5, 3])
def test_sample_mean_over_many_rsamples_matches_the_dirichlet_mean(num_keep):
    """E[w] = beta / sum(beta) over the kept ops (aggregation property after pruning), within 5 standard
    errors from the Dirichlet variance beta_i (b0 - beta_i) / (b0^2 (b0 + 1))."""
    torch.manual_seed(0)
    mixer = nb201_mixer()
    with torch.no_grad():
        mixer.alphas["cell"].copy_(ALPHA)
    if num_keep < 5:
        mixer.prune_to_top(num_keep)
    keep = mixer.keep_cell
    beta = concentration(mixer.alphas["cell"].detach()) * keep
    b0 = beta.sum(-1, keepdim=True)
    mean = beta / b0
    var = beta * (b0 - beta) / (b0 ** 2 * (b0 + 1))
    n = 3000
    with torch.no_grad():
        samples = torch.stack([mixer.mix("cell").weights for _ in range(n)])
    assert torch.allclose(samples.sum(-1), torch.ones(n, 6))
    assert (samples[:, ~keep] == 0).all()
    err = (samples.mean(0) - mean).abs()
    assert (err <= 5 * (var / n).sqrt() + 1e-6).all(), (err, (var / n).sqrt())
    # and the samples really vary (not the mean every time)
    assert samples[:, keep].std(0).min() > 0.01


def test_each_forward_draws_a_new_sample_shared_by_the_cells_of_a_type():
    torch.manual_seed(1)
    mixer = nb201_mixer()
    a, b = mixer.mix("cell").weights, mixer.mix("cell").weights
    assert not torch.equal(a, b)
    net = get_space("nb201").build_supernet(mixer, 10, 3, (), C=4, N=2, impl="reference")
    seen = []
    handles = [cell.register_forward_pre_hook(lambda m, args: seen.append(args[1].weights))
               for cell in net.net.cells if hasattr(cell, "edges")]
    net(torch.randn(2, 3, 8, 8))
    for h in handles:
        h.remove()
    assert len(seen) == 6 and all(s is seen[0] for s in seen)  # 3 stages x N=2 search cells, one sample


def test_gradients_reach_alpha_through_rsample_and_match_the_mean_gradient():
    """Pathwise: d/dalpha of w . t, averaged over samples, estimates d/dalpha of E[w] . t = (beta/b0) . t."""
    torch.manual_seed(2)
    mixer = nb201_mixer()
    with torch.no_grad():
        mixer.alphas["cell"].copy_(ALPHA)
    t = torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0])
    alpha = mixer.alphas["cell"]
    (g0,) = torch.autograd.grad((mixer.sample("cell") * t).sum(), alpha)
    assert (g0 != 0).all()
    n = 2000
    grads = torch.stack([torch.autograd.grad((mixer.sample("cell") * t).sum(), alpha)[0] for _ in range(n)])
    (exact,) = torch.autograd.grad((mixer.mean("cell") * t).sum(), alpha)
    se = grads.std(0) / math.sqrt(n)
    assert ((grads.mean(0) - exact).abs() <= 5 * se + 1e-4).all()


def test_excluded_ops_get_no_weight_and_no_gradient():
    torch.manual_seed(3)
    mixer = DirichletMixer(get_space("darts"), exclude_ops=["none"])
    w = mixer.mix("normal")
    none = mixer.ops.index("none")
    assert (w.weights[:, none] == 0).all() and all(none not in a for a in w.active)
    (g,) = torch.autograd.grad((w.weights * torch.arange(8.0)).sum(), mixer.alphas["normal"])
    assert (g[:, none] == 0).all() and (g[:, 1:] != 0).all()


def test_eval_mode_samples_like_the_reference_or_uses_the_mean():
    torch.manual_seed(4)
    for mode, same in (("sample", False), ("mean", True)):
        mixer = nb201_mixer(eval_mode=mode).eval()
        assert torch.equal(mixer.mix("cell").weights, mixer.mix("cell").weights) is same
    mixer = nb201_mixer()
    with mixer.held_path():
        assert torch.equal(mixer.mix("cell").weights, mixer.mean("cell"))


# ------------------------------------------------------------------ the KL regulariser
def test_kl_to_the_uniform_dirichlet_matches_the_lgamma_formula():
    """2 ops: Dir(a1, a2) is Beta(a1, a2) on w1 and Dir(1, 1) the uniform density 1, so the KL is also
    the integral of p log p over [0, 1] (checked by a midpoint rule)."""
    a = torch.tensor([[1.7, 2.5]], dtype=torch.float64)
    a0 = a.sum()
    hand = (torch.lgamma(a0) - torch.lgamma(a).sum() - math.lgamma(2.0)
            + ((a - 1) * (torch.digamma(a) - torch.digamma(a0))).sum())
    assert float(dirichlet_kl_to_uniform(a)) == pytest.approx(float(hand), rel=1e-10)
    n = 200_000
    w = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    log_p = (torch.lgamma(a0) - torch.lgamma(a).sum() + (a[0, 0] - 1) * w.log() + (a[0, 1] - 1) * (1 - w).log())
    assert float((log_p.exp() * log_p).mean()) == pytest.approx(float(hand), abs=1e-6)
    assert float(dirichlet_kl_to_uniform(torch.ones(3, 4))) == pytest.approx(0.0, abs=1e-6)


def _kl_search(scale: float):
    cfg = compose_cfg("search", ["method=drnas", f"method.kl_scale={scale}", "optimizer.arch_weight_decay=0",
                                 "optimizer.arch_start_epoch=0", "search.epochs=2", *NB201_TINY])
    torch.manual_seed(0)
    return build_search(cfg, torch.device("cpu"))


def test_the_kl_term_is_added_to_the_alpha_loss_only():
    setup = _kl_search(0.5)
    comp = [c for c in setup.components if type(c).__name__ == "DirichletKL"][0]
    alpha = setup.supernet.mixer.alphas["cell"]
    with torch.no_grad():
        alpha.copy_(ALPHA)
    conc = concentration(alpha.detach())
    hand = sum(float(dirichlet_kl_to_uniform(row[None])) for row in conc)
    assert float(comp.kl().detach()) == pytest.approx(hand, rel=1e-5)
    batch = (torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]))
    opt = setup.optimizer
    torch.manual_seed(5)
    val = opt.loss(batch, "val")
    torch.manual_seed(5)
    train = opt.loss(batch, "train")
    torch.manual_seed(5)
    plain = opt.loss(batch)
    assert float((val - plain).detach()) == pytest.approx(0.5 * hand, rel=1e-4)
    assert float(train.detach()) == pytest.approx(float(plain.detach()), abs=1e-6)
    # the step statistics report the plain cross-entropy, not the regularised objective
    assert float(opt.stats.sums["val_loss"]) / opt.stats.counts["val"] == pytest.approx(float(plain.detach()), abs=1e-5)
    # its gradient is in the alpha step
    (g,) = torch.autograd.grad(0.5 * comp.kl(), alpha)
    torch.manual_seed(5)
    (g_val,) = torch.autograd.grad(opt.loss(batch, "val"), alpha)
    torch.manual_seed(5)
    (g_plain,) = torch.autograd.grad(opt.loss(batch), alpha)
    assert torch.allclose(g_val - g_plain, g, atol=1e-6)


def test_kl_scale_zero_adds_nothing():
    setup = _kl_search(0.0)
    comp = [c for c in setup.components if type(c).__name__ == "DirichletKL"][0]
    assert comp.arch_loss_term() is None and comp.values() == {}


# ------------------------------------------------------------------ derivation
def test_nb201_derivation_is_the_argmax_of_softmax_alpha_including_none():
    space = get_space("nb201")
    mixer = nb201_mixer()
    with torch.no_grad():
        mixer.alphas["cell"].copy_(ALPHA)
    scores, edges = mixer.selection_scores()
    assert torch.allclose(scores["cell"], torch.softmax(ALPHA, -1))
    arch = space.discretize(scores, edges)
    op = {edge: space.ops[k] for edge, k in zip(NB201_EDGES, ALPHA.argmax(-1).tolist())}
    want = "+".join("|" + "|".join(f"{op[(src, dst)]}~{src}" for src in range(dst)) + "|" for dst in (1, 2, 3))
    assert arch.to_string() == want and "none" in want   # none wins edge (0, 3)-style rows where it is largest


def test_derivation_ignores_pruned_and_excluded_ops():
    space = get_space("darts")
    mixer = DirichletMixer(space, exclude_ops=["none"])
    alpha = torch.full((14, 8), -1.0)
    alpha[:, 0] = 5.0                                   # none: excluded, never chosen
    alpha[:, 1:5] = torch.tensor([-0.2, -0.4, -0.6, -0.8])  # the top-4 of the 7 others
    with torch.no_grad():
        for a in mixer.alphas.values():
            a.copy_(alpha)
    mixer.prune_to_top(4)
    for ct, a in mixer.alphas.items():
        assert mixer.keep(ct)[:, 1:5].all() and mixer.keep(ct).sum() == 14 * 4
        assert (a[:, 5:] == 0).all() and (a[:, 0] == 0).all()   # dropped alphas zeroed (0 > kept ones)
        assert torch.equal(a[:, 1:5], alpha[:, 1:5])            # kept alphas unchanged
    scores, _ = mixer.selection_scores()
    assert (scores["normal"][:, 0] == 0).all() and (scores["normal"][:, 5:] == 0).all()
    arch = space.discretize(scores, None)
    assert "max_pool_3x3" in arch.to_string() and "none" not in arch.to_string()
    for op in ("sep_conv", "dil_conv", "skip_connect", "avg_pool"):
        assert op not in arch.to_string()


# ------------------------------------------------------------------ progressive pruning and widening
def test_stage_starts_split_the_epochs_equally():
    assert stage_starts(50, 2) == [0, 25] and stage_starts(100, 2) == [0, 50]
    assert stage_starts(3, 2) == [0, 2] and stage_starts(1, 2) == [0, 1]


def _ops_with_params(net):
    for cell in net.modules():
        if hasattr(cell, "edges") and hasattr(cell, "parts"):
            for ops in cell.edges:
                for op in ops:
                    if any(True for _ in op.parameters()):
                        yield op


@pytest.mark.parametrize("space_name,C,ks,keeps,size", [
    ("darts", 12, [6, 4], [7, 4], {"layers": 2}),
    ("nb201", 8, [4, 2], [5, 3], {"N": 1}),
])
def test_stage_change_keeps_the_top_ops_and_widens_every_op_by_copying_channels(space_name, C, ks, keeps, size):
    torch.manual_seed(6)
    net = supernet(space_name, ks[0], C, **size)
    opt, comp = progressive(net, ks, keeps)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    comp.on_epoch_start(0, 2)
    for _ in range(2):  # momentum buffers exist before the widening
        opt.step((x, y), (x, y))
    alphas = {ct: a.detach().clone() for ct, a in net.mixer.alphas.items()}
    before = {id(p): (p.detach().clone(), opt.w_opt.state[p]["momentum_buffer"].clone()) for p in opt.weights}
    params = list(net.parameters())
    comp.on_epoch_start(1, 2)
    assert comp.stage == 1 and list(net.parameters()) == params  # same Parameter objects, widened in place
    for ct, a in alphas.items():
        allowed = net.mixer.allowed
        top = a.masked_fill(~allowed, float("-inf")).topk(keeps[1], -1).indices
        want = torch.zeros_like(net.mixer.keep(ct)).scatter_(1, top, True)
        assert torch.equal(net.mixer.keep(ct), want)
        assert torch.equal(net.mixer.alphas[ct][want], a[want]) and (net.mixer.alphas[ct][~want] == 0).all()
        active = net.mixer.mix(ct).active
        assert all(sorted(act) == sorted(torch.nonzero(row).flatten().tolist()) for act, row in zip(active, want))
    widened = 0
    for p in opt.weights:
        old, mom = before[id(p)]
        if p.shape == old.shape:
            assert torch.equal(p, old)
            continue
        widened += 1
        lead = tuple(slice(0, n) for n in old.shape)
        assert torch.equal(p[lead], old)                                   # the old channels are kept
        new_mom = opt.w_opt.state[p]["momentum_buffer"]
        assert new_mom.shape == p.shape and torch.equal(new_mom[lead], mom)
        for j in range(old.shape[0], p.shape[0]):                         # each new output channel is a copy
            row = p[j][tuple(slice(0, n) for n in old.shape[1:])]
            hits = [i for i in range(old.shape[0]) if torch.equal(row, old[i])]
            assert hits, f"new channel {j} copies no old channel"
            assert any(torch.equal(new_mom[j][tuple(slice(0, n) for n in old.shape[1:])], mom[i]) for i in hits)
    assert widened > 0
    for op in _ops_with_params(net):
        for m in op.modules():
            if isinstance(m, nn.Conv2d):
                assert m.weight.shape[0] == m.out_channels and m.weight.shape[1] * m.groups == m.in_channels
    for cell in net.modules():
        if hasattr(cell, "parts") and hasattr(cell, "edges"):
            assert cell.parts.width == cell.C // ks[1]
    assert net(x).shape == (4, 10)
    opt.step((x, y), (x, y))  # and the search goes on


def test_the_pre_hook_widens_a_narrow_supernet_to_a_checkpoint_of_stage_two():
    torch.manual_seed(7)
    net = supernet("nb201", 4, 8, N=1)
    _, comp = progressive(net, [4, 2], [5, 3])
    comp.on_epoch_start(0, 2)
    comp.on_epoch_start(1, 2)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    fresh = supernet("nb201", 4, 8, N=1)
    _, comp2 = progressive(fresh, [4, 2], [5, 3])
    fresh.load_state_dict(state)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, state[k]), k
    x = torch.randn(2, 3, 8, 8)
    net.eval(), fresh.eval()
    net.mixer.eval_mode = fresh.mixer.eval_mode = "mean"
    assert torch.allclose(net(x), fresh(x))


def test_progressive_refusals():
    with pytest.raises(IncompatibleError, match="K=3 does not divide the cell width C=32"):
        progressive(supernet("darts", 4, 16, layers=2), [4, 3], [7, 4])
    space = get_space("nb201")
    fast = space.build_supernet(DirichletMixer(space), 10, 3, [EDGE_PARTS.get("partial_channels")(k=4)], C=8, N=1,
                                impl="fast")
    with pytest.raises(IncompatibleError, match="impl=reference"):
        progressive(fast, [4, 2], [5, 3])
    with pytest.raises(IncompatibleError, match="partial channels K is 4"):
        progressive(supernet("nb201", 4, 8, N=1), [2, 1], [5, 3])


@pytest.mark.parametrize("overrides,words", [
    (["optimizer=multipath"], "samples mixing weights over every op, not a path"),
    (["optimizer=single_level", "method.kl_scale=0.001"], "optimizer single_level computes none"),
    (["search.epochs=18"], "the shortest stage has 9 epochs (search.epochs=18 in 2 stages)"),
    (["space=darts", "space.supernet.C=16"], "K=6 of method drnas does not divide the supernet width "
                                             "space.supernet.C=16; use a C divisible by every K in [6, 4]"),
])
def test_refused_compositions_name_the_reason(overrides, words):
    with pytest.raises(IncompatibleError) as exc:
        check_search_config(compose_cfg("search", ["method=drnas", *overrides]))
    assert words in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("space_name,size", [("darts_s2", {"layers": 2}), ("nb201", {"N": 1})])
def test_one_stage_without_partial_channels_is_the_plain_dirichlet_search(space_name, size):
    """ks [1]: K = 1 computes every channel (nothing bypassed, also on stride-2 edges) and nothing is pruned."""
    torch.manual_seed(8)
    net = supernet(space_name, 1, 8, **size)
    n = len(net.space.ops)
    opt, comp = progressive(net, [1], [n])
    x, y = torch.randn(2, 3, 8, 8), torch.tensor([0, 1])
    for epoch in range(2):
        comp.on_epoch_start(epoch, 2)
        opt.step((x, y), (x, y))
    assert comp.stage == 0 and all(bool(net.mixer.keep(ct).all()) for ct in net.mixer.alphas)


def test_per_space_defaults():
    nb = compose_cfg("search", ["method=drnas"])
    assert (nb.search.epochs, nb.optimizer.lr, nb.optimizer.lr_min, nb.optimizer.arch_lr) == (100, 0.025, 0.001, 3e-4)
    assert nb.method.components[0].ks == [4, 2] and nb.method.components[0].num_keeps == [5, 3]
    assert nb.method.edge_parts[0].k == 4 and list(nb.method.mixer.exclude_ops) == [] and nb.space.supernet.C == 16
    da = compose_cfg("search", ["method=drnas", "space=darts"])
    assert (da.search.epochs, da.optimizer.lr, da.optimizer.lr_min, da.optimizer.arch_lr) == (50, 0.1, 0.0, 6e-4)
    assert da.method.components[0].ks == [6, 4] and da.method.components[0].num_keeps == [7, 4]
    assert list(da.method.mixer.exclude_ops) == ["none"] and da.space.supernet.C == 36
    for cfg in (nb, da):
        assert (cfg.optimizer.arch_start_epoch, cfg.optimizer.arch_weight_decay, cfg.optimizer.nesterov) == (10, 1e-3, False)
        assert cfg.optimizer.order == "arch_first" and cfg.search.batch_size == 64
    check_search_config(nb), check_search_config(da)


# ------------------------------------------------------------------ resume and CLI
RESUME = ["method=drnas", "search.epochs=3", "search.max_steps_per_epoch=3", "search.checkpoint_every_steps=2",
          "optimizer.arch_start_epoch=0", "method.kl_scale=0.01", *NB201_TINY]


@pytest.mark.parametrize("crash_at_step,at", [(9, (2, 2)), (6, (1, 2))])
def test_resume_equals_an_uninterrupted_run_across_the_stage_change(tmp_path, crash_at_step, at):
    """Stages start at epochs 0 and 2: a crash after the widening resumes the wide net from its checkpoint
    (the pre-hook), a crash before it widens at the same epoch start as the uninterrupted run."""
    full, resumed, where = interrupted_and_full_states(tmp_path, RESUME, crash_at_step=crash_at_step)
    assert where == at
    assert_same_state(full, resumed, prefixes=("mixer.keep_cell",))
    assert full["components"] == resumed["components"] and full["components"][0]["stage"] == 1
    sa, sb = full["optimizer"]["w_opt"]["state"], resumed["optimizer"]["w_opt"]["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k]["momentum_buffer"], sb[k]["momentum_buffer"]) for k in sa)
    assert int(full["supernet"]["mixer.keep_cell"].sum()) == 6 * 3


@pytest.mark.parametrize("overrides", [NB201_TINY, DARTS_TINY])
def test_nas_search_method_drnas_runs_on_synthetic_data(tmp_path, overrides):
    proc = nas("search", "method=drnas", "search.epochs=2", "search.max_steps_per_epoch=1",
               "optimizer.arch_start_epoch=0", *overrides, f"out_root={tmp_path}")
    line = result_line(proc)
    assert line["status"] == "ok" and line["method"] == "drnas"
    if "space=darts" in overrides:
        assert "none" not in line["arch"]
