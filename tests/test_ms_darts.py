"""MS-DARTS (METHODS.md 8): the mean-shift update on hand-computed 2-D examples, the sampling bounds, the epsilon
ramp, the method's defaults (40 epochs, alpha frozen for 5), the weight step trained at the mean-shifted
probabilities, resume exactness and `nas search`."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from helpers import RESUME, TINY, assert_same_state, compose_cfg, interrupted_and_full_states, nas, result_line
from nascli.commands.run import seed_everything
from nascli.search.builder import build_search
from nascli.search.mixers import MIXERS
from nascli.search.optimizers import SEARCH_OPTIMIZERS
from nascli.search.regularizers.alpha_perturbation import uniform_noise
from nascli.search.regularizers.mean_shift import MeanShiftPerturbation, mean_shift
from nascli.spaces import get_space

CPU = torch.device("cpu")


def _net(seed: int = 0):
    torch.manual_seed(seed)
    space = get_space("nb201")
    return space.build_supernet(MIXERS.get("softmax")(space), 10, 3, (), C=4, N=1)


def _batch(seed: int = 0, n: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def _fixed(offsets: list[list[list[float]]]):
    """A sampler returning centre + the given offsets in turn (cycling), for every cell type."""
    calls = [0]

    def sampler(centre, eps):
        off = offsets[calls[0] % len(offsets)]
        calls[0] += 1
        return {ct: c + torch.tensor(off, dtype=c.dtype) for ct, c in centre.items()}
    return sampler


# ------------------------------------------------------------------------------------------ the update by hand
def test_one_iteration_on_a_2d_example_computed_by_hand():
    """c = (0.5, 0.5); raw samples X = (0.6, 0.4), (0.3, 0.8), (-0.1, 0.7); clipped: (0.6, 0.4),
    (0.3, 0.8)/1.1, (0, 1); loss L(X) = 2 X_0: 1.2, 0.6/1.1, 0; omega = softmax(L); squared distances of the
    clipped samples to c: 0.02, 2 (0.3/1.1 - 0.5)^2, 0.5; k = exp(-d^2 / 2) (h = 1); c' = sum omega k X_raw /
    sum omega k, with the raw (unclipped) samples in the mean (aaron851113/MS-DARTS perturb_ms.py)."""
    raw = [[0.6, 0.4], [0.3, 0.8], [-0.1, 0.7]]
    losses = [1.2, 0.6 / 1.1, 0.0]
    omega = [math.exp(v) / sum(math.exp(u) for u in losses) for v in losses]
    d2 = [0.02, 2 * (0.3 / 1.1 - 0.5) ** 2, 0.5]
    k = [math.exp(-d / 2) / math.sqrt(2 * math.pi) for d in d2]
    wk = [o * kk for o, kk in zip(omega, k)]
    expected = [sum(w * r[j] for w, r in zip(wk, raw)) / sum(wk) for j in range(2)]
    assert expected == pytest.approx([0.418260, 0.555854], abs=1e-6)

    centre = {"cell": torch.tensor([[0.5, 0.5]])}
    offsets = [[[r[0] - 0.5, r[1] - 0.5]] for r in raw]
    out = mean_shift(centre, 0.6, lambda q: 2 * q["cell"][0, 0], samples=3, iterations=1, sampler=_fixed(offsets))
    assert out["cell"].tolist()[0] == pytest.approx(expected, abs=1e-6)
    # the bandwidth enters the kernel: h = 0.5 gives exp(-d^2 / (2 * 0.25))
    k_half = [math.exp(-d / 0.5) for d in d2]
    wk = [o * kk for o, kk in zip(omega, k_half)]
    narrow = mean_shift(centre, 0.6, lambda q: 2 * q["cell"][0, 0], samples=3, iterations=1, bandwidth=0.5,
                        sampler=_fixed(offsets))
    assert narrow["cell"].tolist()[0] == pytest.approx([sum(w * r[j] for w, r in zip(wk, raw)) / sum(wk)
                                                        for j in range(2)], abs=1e-6)


def _by_hand(centre: dict[str, list[float]], offsets: list[list[float]], loss, h: float) -> dict[str, list[float]]:
    """One iteration in plain Python on 1 x 2 cell types (every cell type gets the same offset)."""
    def clip(v):
        c = [min(max(x, 0.0), 1.0) for x in v]
        return [x / sum(c) for x in c]
    samples = [{ct: [a + b for a, b in zip(c, off)] for ct, c in centre.items()} for off in offsets]
    losses = [loss({ct: clip(v) for ct, v in s.items()}) for s in samples]
    omega = [math.exp(v) / sum(math.exp(u) for u in losses) for v in losses]
    out = {}
    for ct, c in centre.items():
        wk = [o * math.exp(-sum((a - b) ** 2 for a, b in zip(clip(s[ct]), c)) / (2 * h * h))
              for o, s in zip(omega, samples)]
        out[ct] = [sum(w * s[ct][j] for w, s in zip(wk, samples)) / sum(wk) for j in range(2)]
    return out


def test_two_iterations_recentre_and_each_cell_type_has_its_own_kernel():
    offsets = [[0.1, -0.1], [-0.2, 0.3], [-0.6, 0.2]]
    loss = lambda q: 2 * q["normal"][0] + q["reduce"][1]  # noqa: E731
    c0 = {"normal": [0.5, 0.5], "reduce": [0.9, 0.1]}
    c1 = _by_hand(c0, offsets, loss, 0.7)
    c2 = _by_hand(c1, offsets, loss, 0.7)
    assert c1["normal"] != pytest.approx(c1["reduce"]) and c2["normal"] != pytest.approx(c1["normal"])
    out = mean_shift({ct: torch.tensor([v], dtype=torch.float64) for ct, v in c0.items()}, 0.6,
                     lambda q: 2 * q["normal"][0, 0] + q["reduce"][0, 1], samples=3, iterations=2, bandwidth=0.7,
                     sampler=_fixed([[o] for o in offsets]))
    for ct in c0:
        assert out[ct].tolist()[0] == pytest.approx(c2[ct], abs=1e-9)


def test_one_sample_one_iteration_is_the_raw_uniform_sample():
    """N = 1, T = 1: the weight is 1, so the result is centre + U itself (unclipped), |U| <= eps."""
    centre = {"cell": torch.softmax(torch.tensor([[0.0, 2.0, -1.0, 0.5, 0.0], [3.0, -3.0, 0.0, 0.0, 1.0]]), -1)}
    out = mean_shift(centre, 0.25, lambda q: q["cell"].sum(), samples=1, iterations=1,
                     generator=torch.Generator().manual_seed(5))["cell"]
    u = uniform_noise(centre, 0.25, torch.Generator().manual_seed(5))["cell"]
    assert torch.allclose(out, centre["cell"] + u)
    assert (out - centre["cell"]).abs().max() <= 0.25 + 1e-7 and out.min() < 0  # raw: may leave [0, 1]


# ------------------------------------------------------------------------------------------ the component
def test_epsilon_ramps_from_a_tenth_of_0_25_to_0_25_over_40_epochs():
    net = _net()
    comp = MeanShiftPerturbation(net, SEARCH_OPTIMIZERS.get("bilevel")(net, device=CPU))
    seen = []
    for epoch in (0, 20, 39):
        comp.on_epoch_start(epoch, 40)
        seen.append(comp.values()["alpha_epsilon"])
    assert seen == pytest.approx([0.025, 0.1375, 0.025 + 0.225 * 39 / 40])


def test_method_defaults_pin_the_reference():
    cfg = compose_cfg("search", ["method=ms_darts"])
    (spec,) = cfg.method.components
    assert dict(spec) == {"name": "mean_shift", "epsilon": 0.25, "epsilon_start": None, "samples": 3,
                          "iterations": 2, "bandwidth": 1.0, "renormalize": True}
    assert cfg.search.epochs == 40 and cfg.optimizer.arch_start_epoch == 5
    assert cfg.optimizer.name == "bilevel" and cfg.optimizer.order == "arch_first"
    assert cfg.method.mixer.name == "softmax"


def test_weights_move_at_mean_shifted_probabilities_while_alpha_is_frozen():
    """Epoch 0 of a warm-up (arch_start_epoch 1): alpha unchanged, the weights differ from plain DARTS's
    (mean-shifted mixing weights); epoch 1: alpha moves."""
    common = [*TINY, "search.epochs=2", "search.max_steps_per_epoch=2", "optimizer.arch_start_epoch=1",
              "optimizer.order=arch_first"]
    runs = {}
    for method in ("ms_darts", "darts"):
        seed_everything(0)
        setup = build_search(compose_cfg("search", [f"method={method}", *common]), CPU)
        alpha0 = setup.supernet.mixer.alphas["cell"].detach().clone()
        setup.engine.start_epoch(0)
        setup.engine.run_epoch()
        runs[method] = (setup, alpha0)
    (ms, a0), (darts, b0) = runs["ms_darts"], runs["darts"]
    assert torch.equal(ms.supernet.mixer.alphas["cell"], a0) and torch.equal(a0, b0)
    w = [torch.cat([p.detach().flatten() for p in s.supernet.weight_parameters()]) for s in (ms, darts)]
    assert not torch.allclose(w[0], w[1])
    ms.engine.step = 0
    ms.engine.start_epoch(1)
    ms.engine.run_epoch()
    assert not torch.equal(ms.supernet.mixer.alphas["cell"], a0)


def test_step_trains_w_at_the_mean_shifted_probabilities():
    nets = [_net(seed=3) for _ in range(2)]
    opts = [SEARCH_OPTIMIZERS.get("bilevel")(n, device=CPU, order="arch_first") for n in nets]
    comp = MeanShiftPerturbation(nets[0], opts[0], seed=11)
    twin = MeanShiftPerturbation(nets[1], opts[1], seed=11)  # same generator state, not attached
    opts[0].attach(comp)
    for opt, c in zip(opts, (comp, twin)):
        opt.on_epoch_start(0, 2)
        c.on_epoch_start(1, 2)
    train, val = _batch(0), _batch(1)
    opts[0].step(train, val)
    opts[1].first_order_arch_step(val)
    p = {ct: torch.softmax(a.detach(), -1) for ct, a in nets[1].mixer.alphas.items()}
    nets[1].eval()
    x = twin.perturb(p, twin.loss_at(train))
    nets[1].train()
    assert not torch.allclose(x["cell"], p["cell"])
    with nets[1].mixer.mixing_override(x):
        opts[1].weight_step(train)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------ runs
def test_resume_restores_the_sampling_generator_exactly(tmp_path):
    full, resumed, at = interrupted_and_full_states(
        tmp_path, ["method=ms_darts", *TINY, *RESUME, "optimizer.arch_start_epoch=1"], crash_at_step=6)
    assert at == (1, 2)
    assert_same_state(full, resumed)
    a, b = full["components"][0], resumed["components"][0]
    assert torch.equal(a["generator"], b["generator"]) and a["epsilon"] == b["epsilon"] == pytest.approx(0.175)


def test_nas_search_runs_a_step(tmp_path):
    res = result_line(nas("search", "method=ms_darts", *TINY, "search.epochs=2", "search.max_steps_per_epoch=1",
                          "optimizer.arch_start_epoch=1", f"out_root={tmp_path}"))
    assert res["status"] == "ok" and res["method"] == "ms_darts"
    metrics = [json.loads(line) for line in (Path(res["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert [round(m["alpha_epsilon"], 6) for m in metrics] == [0.025, 0.1375]
    assert [m["arch_updates"] for m in metrics] == [0.0, 1.0]
