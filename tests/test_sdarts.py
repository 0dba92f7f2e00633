"""SDARTS-RS / SDARTS-ADV (METHODS.md 8): the clip, the perturbation bounds, the epsilon ramp, the PGD rule on
hand-made losses, the weight-step hooks and the mixing override, alpha untouched, the weight step trained at the
perturbed probabilities, resume exactness and `nas search`."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from helpers import RESUME, TINY, assert_same_state, interrupted_and_full_states, nas, result_line
from nascli.errors import IncompatibleError
from nascli.search.mixers import MIXERS
from nascli.search.optimizers import SEARCH_OPTIMIZERS
from nascli.search.optimizers.base import StepHooks
from nascli.search.options import accepted_options
from nascli.search.regularizers.alpha_perturbation import (AlphaPerturbation, epsilon_ramp, pgd, random_smoothing,
                                                           simplex_clip, uniform_noise)
from nascli.spaces import get_space

CPU = torch.device("cpu")


def _net(mixer: str = "softmax", seed: int = 0):
    torch.manual_seed(seed)
    space = get_space("nb201")
    return space.build_supernet(MIXERS.get(mixer)(space), 10, 3, (), C=4, N=1)


def _batch(seed: int = 0, n: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def _probs(rows: list[list[float]]) -> dict[str, torch.Tensor]:
    """softmax of hand-made alpha rows, one cell type."""
    return {"cell": torch.softmax(torch.tensor(rows), dim=-1)}


ALPHA = [[0.0, 2.0, -1.0, 0.5, 0.0], [3.0, -3.0, 0.0, 0.0, 1.0], [0.1, 0.2, 0.3, 0.4, 0.5]]


# ------------------------------------------------------------------------------------------ clip and bounds
def test_clip_clamps_renormalises_and_revives_an_all_negative_row():
    x = torch.tensor([[0.5, -0.2, 0.9], [-1.0, -2.0, -0.5], [0.2, 0.2, 0.1]])
    out = simplex_clip(x)
    assert torch.allclose(out[0], torch.tensor([0.5, 0.0, 0.9]) / 1.4)
    assert torch.equal(out[1], torch.tensor([0.0, 0.0, 1.0]))  # argmax of the raw row (-0.5) gets 1
    assert torch.allclose(out[2], torch.tensor([0.4, 0.4, 0.2]))
    assert torch.equal(simplex_clip(x, renormalize=False), x.clamp(0, 1))


def test_uniform_noise_fills_the_eps_interval():
    u = uniform_noise({"a": torch.zeros(200, 50)}, 0.3, torch.Generator().manual_seed(1))["a"]
    assert u.abs().max() <= 0.3 and u.max() > 0.29 and u.min() < -0.29


@pytest.mark.parametrize("eps", [0.03, 0.3])
def test_random_smoothing_stays_in_the_eps_ball_and_the_unit_box(eps):
    p = _probs(ALPHA)
    x = random_smoothing(p, eps, generator=torch.Generator().manual_seed(0), renormalize=False)["cell"]
    assert (x - p["cell"]).abs().max() <= eps + 1e-7 and x.min() >= 0 and x.max() <= 1
    assert not torch.allclose(x, p["cell"])
    # the default clip renormalises: every row is a probability vector, and it is clip(P + U) of the same draw
    y = random_smoothing(p, eps, generator=torch.Generator().manual_seed(0))["cell"]
    u = uniform_noise(p, eps, torch.Generator().manual_seed(0))["cell"]
    assert torch.equal(y, simplex_clip(p["cell"] + u))
    assert y.min() >= 0 and y.max() <= 1 and torch.allclose(y.sum(-1), torch.ones(3))


def test_epsilon_ramps_linearly_from_0_03_to_0_3_over_the_epochs():
    comp = AlphaPerturbation(_net(), SEARCH_OPTIMIZERS.get("bilevel")(_net(), device=CPU))
    seen = []
    for epoch in (0, 25, 49):
        comp.on_epoch_start(epoch, 50)
        seen.append(comp.values()["alpha_epsilon"])
    assert seen == pytest.approx([0.03, 0.165, 0.03 + 0.27 * 49 / 50])  # 0.2946: the ramp never reaches 0.3
    assert epsilon_ramp(0.03, 0.3, 50, 50) == pytest.approx(0.3)


# ------------------------------------------------------------------------------------------ PGD
def test_pgd_without_random_start_walks_to_the_corner_of_the_eps_ball_on_a_linear_loss():
    """L(X) = sum c * X: each of the 7 steps moves 2 eps / 7 along sign(c); the projection stops at eps."""
    p = _probs(ALPHA)
    c = torch.tensor([[1.0, -1.0, 2.0, -0.5, 3.0]] * 3)
    x = pgd(p, 0.05, lambda q: (c * q["cell"]).sum(), random_start=False, renormalize=False)["cell"]
    assert torch.allclose(x, (p["cell"] + 0.05 * c.sign()).clamp(0, 1))


def test_pgd_raises_the_loss_above_no_attack_and_random_smoothing():
    p = _probs(ALPHA)
    c = torch.tensor([[0.3, -1.0, 2.0, 0.1, -0.2], [1.0, 0.0, -2.0, 0.5, 0.3], [-0.4, 0.6, 0.2, 0.9, -1.0]])
    loss = lambda q: (c * q["cell"]).sum() + (q["cell"] ** 2).sum()  # noqa: E731
    x = pgd(p, 0.1, loss, generator=torch.Generator().manual_seed(0))
    rs = random_smoothing(p, 0.1, generator=torch.Generator().manual_seed(0))
    assert float(loss(x)) > float(loss(rs)) > 0 and float(loss(x)) > float(loss(p))
    assert torch.allclose(x["cell"].sum(-1), torch.ones(3)) and x["cell"].min() >= 0


def test_pgd_returns_the_unperturbed_probabilities_when_the_attack_lowers_the_loss():
    """At a strict maximum of the loss every attack lowers it: the reference restores P (loss_before > after)."""
    p = _probs(ALPHA)
    x = pgd(p, 0.2, lambda q: -((q["cell"] - p["cell"]) ** 2).sum(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(x["cell"], p["cell"])


def test_pgd_raises_the_training_loss_of_a_supernet():
    net = _net()
    opt = SEARCH_OPTIMIZERS.get("bilevel")(net, device=CPU)
    comp = AlphaPerturbation(net, opt, kind="pgd")
    comp.on_epoch_start(49, 50)
    net.eval()
    loss_at = comp.loss_at(_batch(0))
    p = {ct: torch.softmax(a.detach(), -1) for ct, a in net.mixer.alphas.items()}
    x = pgd(p, comp.epsilon, loss_at, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean, attacked = float(loss_at(p)), float(loss_at(x))
        noisy = float(loss_at(random_smoothing(p, comp.epsilon, generator=torch.Generator().manual_seed(0))))
    assert attacked > clean and attacked > noisy


# ------------------------------------------------------------------------------------------ seams
def test_mixing_override_gives_the_probabilities_as_they_are_then_softmax_again():
    net = _net()
    mixer = net.mixer
    x = {"cell": torch.full_like(mixer.alphas["cell"], 0.5)}
    with mixer.mixing_override(x):
        assert mixer.edge_weights("cell").weights is x["cell"]
    assert torch.allclose(mixer.edge_weights("cell").weights, torch.softmax(mixer.alphas["cell"], -1))
    with pytest.raises(ValueError, match="one tensor per cell type"):
        with mixer.mixing_override({"cell": torch.zeros(2, 2)}):
            pass


@pytest.mark.parametrize("mixer", [n for n in MIXERS.names() if not MIXERS.get(n).supports_mixing_override])
def test_a_sampling_mixer_refuses_the_override(mixer):
    """Every mixer that samples its weights (paths or a Dirichlet draw) refuses given probabilities."""
    assert mixer not in ("softmax", "pc_softmax")
    net = _net(mixer)
    with pytest.raises(IncompatibleError, match="cannot train at given probabilities"):
        with net.mixer.mixing_override({ct: torch.softmax(a, -1) for ct, a in net.mixer.alphas.items()}):
            pass


class _Order(StepHooks):
    def __init__(self):
        self.calls: list[str] = []

    def on_loss(self, prefix, loss):
        self.calls.append(prefix)

    def before_weight_step(self, batch):
        self.calls.append("before_weight")

    def after_weight_step(self):
        self.calls.append("after_weight")


@pytest.mark.parametrize("name", [n for n in SEARCH_OPTIMIZERS.names() if SEARCH_OPTIMIZERS.get(n).weight_step_hooks])
def test_optimizers_with_a_weight_step_wrap_every_weight_update_in_the_hooks(name):
    """Once per step, around the training losses of the weight update only (no val loss inside)."""
    cls = SEARCH_OPTIMIZERS.get(name)
    order = {"order": "arch_first"} if "order" in accepted_options(cls) else {}
    opt = cls(_net("gumbel" if cls.multi_path else "softmax"), device=CPU, **order)
    rec = _Order()
    opt.attach(rec)
    opt.on_epoch_start(0, 2)
    opt.step(_batch(0), _batch(1))
    assert rec.calls.count("before_weight") == rec.calls.count("after_weight") == 1
    inner = rec.calls[rec.calls.index("before_weight") + 1:rec.calls.index("after_weight")]
    assert set(inner) == {"train"} and "val" in rec.calls


def test_a_component_on_an_optimizer_without_weight_step_hooks_fails_loudly():
    net = _net()
    opt = SEARCH_OPTIMIZERS.get("single_level")(net, device=CPU)
    opt.attach(AlphaPerturbation(net, opt))
    opt.on_epoch_start(0, 1)
    with pytest.raises(IncompatibleError, match="without the weight-step hooks"):
        opt.step(_batch(0), None)


# ------------------------------------------------------------------------------------------ the step
@pytest.mark.parametrize("kind", ["random_smoothing", "pgd"])
def test_step_trains_w_at_the_perturbed_probabilities_and_leaves_alpha_as_darts_does(kind):
    """One arch-first step with the component = the plain DARTS alpha step + a weight step at X, where X is the
    rule's output from the same generator state; alpha ends bit-for-bit where plain DARTS puts it."""
    nets = [_net(seed=3) for _ in range(3)]
    opts = [SEARCH_OPTIMIZERS.get("bilevel")(n, device=CPU, order="arch_first") for n in nets]
    comp = AlphaPerturbation(nets[0], opts[0], kind=kind, seed=11)
    opts[0].attach(comp)
    for opt in opts:
        opt.on_epoch_start(0, 2)
    comp.on_epoch_start(1, 2)
    train, val = _batch(0), _batch(1)

    opts[0].step(train, val)             # SDARTS
    opts[1].step(train, val)             # plain DARTS
    opts[2].first_order_arch_step(val)   # by hand: alpha step, then the weight step at X
    net = nets[2]
    twin = AlphaPerturbation(net, opts[2], kind=kind, seed=11)  # same rule, same generator state, not attached
    twin.on_epoch_start(1, 2)
    p = {ct: torch.softmax(a.detach(), -1) for ct, a in net.mixer.alphas.items()}
    net.eval()
    x = twin.perturb(p, twin.loss_at(train))
    net.train()
    assert not torch.allclose(x["cell"], p["cell"])
    with net.mixer.mixing_override(x):
        opts[2].weight_step(train)

    alphas = [list(n.mixer.alphas.values())[0].detach() for n in nets]
    assert torch.equal(alphas[0], alphas[1]) and torch.equal(alphas[0], alphas[2])
    w = [torch.cat([q.detach().flatten() for q in n.weight_parameters()]) for n in nets]
    assert torch.equal(w[0], w[2])
    assert not torch.allclose(w[0], w[1])  # the perturbation changed the weight update
    assert net.mixer._override is None and nets[0].mixer._override is None


# ------------------------------------------------------------------------------------------ runs
def test_resume_restores_the_perturbation_generator_exactly(tmp_path):
    full, resumed, at = interrupted_and_full_states(tmp_path, ["method=sdarts_adv", *TINY, *RESUME], crash_at_step=6)
    assert at == (1, 2)
    assert_same_state(full, resumed)
    a, b = full["components"][0], resumed["components"][0]
    assert torch.equal(a["generator"], b["generator"]) and a["epsilon"] == b["epsilon"] == pytest.approx(0.21)


@pytest.mark.parametrize("method", ["sdarts_rs", "sdarts_adv"])
def test_nas_search_runs_a_step(tmp_path, method):
    res = result_line(nas("search", f"method={method}", *TINY, "search.epochs=2", "search.max_steps_per_epoch=1",
                          f"out_root={tmp_path}"))
    assert res["status"] == "ok" and res["method"] == method
    metrics = [json.loads(line) for line in (Path(res["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert [round(m["alpha_epsilon"], 6) for m in metrics] == [0.03, 0.165]
    assert all(math.isfinite(m["train_loss"]) for m in metrics)
