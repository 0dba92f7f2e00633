"""Collapse indicators (METHODS.md 8, R-DARTS): the exact Hessian of L_val w.r.t. the architecture
parameters against torch.autograd.functional.hessian, its dominant eigenvalue, alpha entropy, and the
indicators every method logs in metrics.jsonl."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from helpers import TINY_SEARCH, compose_cfg
from nascli.commands.search import search
from nascli.search.diagnostics import (AUTO_EXACT_MAX, HessianProbe, alpha_entropy, arch_hessian,
                                       dominant_eigenvalue, hvp_operator, lanczos, largest_eigenvalue_power,
                                       power_iteration, resolve_method)
from nascli.search.mixers import MIXERS
from nascli.spaces import get_space
from nascli.search.edge_parts import method_parts


def _tiny(mixer: str, seed: int = 0, aux_skip: bool = False):
    torch.manual_seed(seed)
    space = get_space("nb201")
    net = space.build_supernet(MIXERS.get(mixer)(space, init_scale=0.7), 3, 3,
                               method_parts(aux_skip=aux_skip), C=4, N=1).double()
    g = torch.Generator().manual_seed(seed)
    batch = (torch.randn(6, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 3, (6,), generator=g))
    return net, batch


def _direct_hessian(net, batch) -> torch.Tensor:
    """torch.autograd.functional.hessian of L_val as a function of the flattened arch parameters."""
    names = [n for n, p in net.named_parameters() if any(p is q for q in net.arch_parameters())]
    params = dict(net.named_parameters())
    shapes = [params[n].shape for n in names]
    flat0 = torch.cat([params[n].detach().reshape(-1) for n in names])
    buffers = {n: b.clone() for n, b in net.named_buffers()}

    def loss(flat):
        arch, k = {}, 0
        for n, s in zip(names, shapes):
            arch[n] = flat[k:k + s.numel()].view(s)
            k += s.numel()
        out = functional_call(net, {**params, **{n: b.clone() for n, b in buffers.items()}, **arch}, (batch[0],))
        return F.cross_entropy(out, batch[1])

    return torch.autograd.functional.hessian(loss, flat0)


@pytest.mark.parametrize("mixer", ["softmax", "pc_softmax"])
def test_exact_hessian_matches_autograd_functional_hessian(mixer):
    net, batch = _tiny(mixer, aux_skip=mixer == "softmax")
    net.train()  # batch-statistics BN, as the search command evaluates it
    if net.edge_part("aux_skip") is not None:
        with torch.no_grad():
            net.edge_part("aux_skip").coef.fill_(0.3)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    direct = _direct_hessian(net, batch)
    for k, v in net.state_dict().items():  # the direct computation worked on copies
        assert torch.equal(v, state[k]), k
    h = arch_hessian(net, batch)
    n = 30 if mixer == "softmax" else 36  # alpha (6 x 5) [+ the 6 edge betas]
    assert h.shape == direct.shape == (n, n) and h.dtype == torch.float64
    torch.testing.assert_close(h, direct, rtol=1e-7, atol=1e-9)
    assert direct.abs().max() > 1e-3 and (direct - torch.diag(torch.diag(direct))).abs().max() > 1e-4
    # arch_hessian leaves the supernet (BN running statistics included) as it found it
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k
    # weight decay: + wd * I, and lambda_max is the largest eigenvalue of that matrix
    wd = 1e-3
    torch.testing.assert_close(arch_hessian(net, batch, wd) - h, wd * torch.eye(n, dtype=torch.float64))
    expected = float(torch.linalg.eigvalsh((direct + direct.T) / 2 + wd * torch.eye(n, dtype=torch.float64)).max())
    assert dominant_eigenvalue(net, batch, wd) == pytest.approx(expected, rel=1e-7, abs=1e-10)


def test_hessian_in_eval_mode_uses_running_statistics():
    net, batch = _tiny("softmax", seed=1)
    net.train()
    with torch.no_grad():
        net(batch[0])  # move the running statistics away from their init
    net.eval()
    torch.testing.assert_close(arch_hessian(net, batch), _direct_hessian(net, batch), rtol=1e-7, atol=1e-9)
    net.train()
    assert not torch.allclose(arch_hessian(net, batch), _direct_hessian(net.eval(), batch), rtol=1e-3)


def test_alpha_entropy_hand_values():
    probs = {"cell": torch.tensor([[0.2] * 5, [1.0, 0, 0, 0, 0]]),
             "reduce": torch.tensor([[0.5, 0.5, 0, 0]])}
    ent = alpha_entropy(probs)
    assert ent["cell"] == pytest.approx(math.log(5) / 2, rel=1e-6)
    assert ent["reduce"] == pytest.approx(math.log(2), rel=1e-6)


@pytest.mark.parametrize("method", ["darts", "darts_minus", "single_darts", "pc_darts"])
def test_collapse_indicators_in_metrics(tmp_path, method):
    warm_up = ["optimizer.arch_start_epoch=1"] if method == "pc_darts" else []  # a warm-up shorter than the run
    res = search(compose_cfg("search", [*TINY_SEARCH, f"method={method}", "search.max_steps_per_epoch=2", *warm_up,
                                        "diagnostics.hessian_every=2", "device=cpu", f"out_root={tmp_path}"]))
    metrics = [json.loads(line) for line in (Path(res["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [0, 1, 2]
    for m in metrics:  # skip_count counts the skip edges of the arch derived at that epoch
        assert m["skip_count"] == m["arch"].count("skip_connect~")
        assert set(m["alpha_entropy"]) == {"cell"}
    # the last epoch's entropy is that of the final alphas (alphas start near uniform: close to log 5)
    alpha = torch.load(Path(res["run_dir"]) / "checkpoint.pt", weights_only=False)["supernet"]["mixer.alphas.cell"]
    assert metrics[-1]["alpha_entropy"]["cell"] == pytest.approx(alpha_entropy({"cell": alpha.softmax(-1)})["cell"])
    assert metrics[-1]["alpha_entropy"]["cell"] == pytest.approx(math.log(5), abs=0.01)
    assert metrics[-1]["arch"] == res["arch"]
    # every 2 epochs ((epoch + 1) % 2 == 0) and at the last epoch
    assert "hessian_eigenvalue" not in metrics[0]
    assert all(math.isfinite(m["hessian_eigenvalue"]) for m in metrics[1:])
    if method == "darts_minus":
        assert [m["aux_skip_beta"] for m in metrics] == pytest.approx([1.0, 2 / 3, 1 / 3])


# ------------------------------------------------------------------ Hessian-vector products (power, Lanczos)
def _quadratic_hvp(eigenvalues, wd: float = 0.0, seed: int = 0):
    """A hand-made loss L(a) = 1/2 a^T A a + b^T a with A = Q diag(eigenvalues) Q^T (Q random orthogonal):
    its Hessian is A; the products come from autograd exactly as for a supernet (hvp_operator)."""
    g = torch.Generator().manual_seed(seed)
    n = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    a_mat = q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T
    alpha = torch.randn(n, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    loss = 0.5 * alpha @ a_mat @ alpha + b @ alpha
    (grad,) = torch.autograd.grad(loss, [alpha], create_graph=True)
    return hvp_operator([alpha], grad, wd), a_mat


def test_hvp_is_the_hessian_times_v_plus_weight_decay():
    matvec, a_mat = _quadratic_hvp([3.0, -1.0, 0.5, 2.0], wd=0.01)
    v = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    torch.testing.assert_close(matvec(v), a_mat @ v + 0.01 * v)


def test_a_dominant_negative_eigenvalue_is_not_lambda_max():
    """max(eig) (R-DARTS) is 2 + wd although the eigenvalue of largest magnitude is -5: plain power iteration
    finds -5; the shifted power iteration and Lanczos find 2 + wd."""
    eig, wd = [-5.0, 2.0, 1.0, 0.5, -1.0, 0.1, -4.0, 1.5], 1e-3
    matvec, _ = _quadratic_hvp(eig, wd)
    dominant, _ = power_iteration(matvec, len(eig), tol=1e-8, max_iter=2000)
    assert dominant == pytest.approx(-5.0 + wd, rel=1e-6)
    power, _ = largest_eigenvalue_power(matvec, len(eig), tol=1e-8, max_iter=2000)
    assert power == pytest.approx(2.0 + wd, rel=1e-6)
    value, used = lanczos(matvec, len(eig), tol=1e-10)
    assert value == pytest.approx(2.0 + wd, rel=1e-9) and used <= len(eig)
    # all eigenvalues negative: lambda_max is the one closest to 0
    matvec, _ = _quadratic_hvp([-3.0, -0.5, -2.0], seed=1)
    assert largest_eigenvalue_power(matvec, 3, tol=1e-9, max_iter=5000)[0] == pytest.approx(-0.5, rel=1e-6)
    assert lanczos(matvec, 3)[0] == pytest.approx(-0.5, rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_power_and_lanczos_match_the_exact_eigenvalue_on_nb201(seed):
    """Stated tolerances (float64 supernet, default tol 1e-4 on the relative residual): Lanczos within 1e-7
    relative, power iteration within 1e-5 (seeds 0 and 2 have a dominant negative eigenvalue)."""
    net, batch = _tiny("softmax", seed=seed)
    net.train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    eig = torch.linalg.eigvalsh(arch_hessian(net, batch, 1e-3))
    exact = float(eig.max())
    if seed in (0, 2):
        assert abs(float(eig.min())) > exact  # the case that needs the shift
    rng = torch.get_rng_state()
    assert dominant_eigenvalue(net, batch, 1e-3, "lanczos") == pytest.approx(exact, rel=1e-7)
    assert dominant_eigenvalue(net, batch, 1e-3, "power") == pytest.approx(exact, rel=1e-5)
    assert dominant_eigenvalue(net, batch, 1e-3, "auto") == exact  # 30 alphas: exact
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_auto_picks_exact_for_nb201_and_lanczos_for_the_darts_space():
    assert resolve_method("auto", 30) == "exact" and resolve_method("auto", AUTO_EXACT_MAX) == "exact"
    assert resolve_method("auto", 224) == "lanczos" and resolve_method("power", 30) == "power"
    with pytest.raises(ValueError, match="unknown Hessian eigenvalue method 'qr'; choose one of exact, power"):
        HessianProbe("qr")


@pytest.mark.slow
def test_lanczos_and_power_match_the_exact_eigenvalue_on_the_darts_space():
    """224 alphas (C=4, 3 layers, float32): exact takes 224 backward passes, Lanczos about 20."""
    space = get_space("darts")
    torch.manual_seed(0)
    net = space.build_supernet(MIXERS.get("softmax")(space), 3, 3, method_parts(), C=4, layers=3)
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 3, (4,), generator=g))
    net.train()
    assert sum(p.numel() for p in net.arch_parameters()) == 224
    exact = dominant_eigenvalue(net, batch, 1e-3, "exact")
    assert dominant_eigenvalue(net, batch, 1e-3, "lanczos") == pytest.approx(exact, rel=1e-5)
    assert dominant_eigenvalue(net, batch, 1e-3, "power") == pytest.approx(exact, rel=1e-4)
    assert dominant_eigenvalue(net, batch, 1e-3, "auto") == dominant_eigenvalue(net, batch, 1e-3, "lanczos")
