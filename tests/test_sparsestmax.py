"""SparsestMax (nascli/search/mixers/sparsestmax.py): hand-computed projections, simplex and radius properties,
gradients, the radius schedule, option checks and state save/restore."""
from __future__ import annotations

import math

import pytest
import torch

from nascli.errors import OptionError
from nascli.search.mixers import MIXERS
from nascli.search.mixers.sparsestmax import SparsestmaxMixer, linear_radius, max_radius, sparsemax, sparsestmax
from nascli.spaces import get_space


def close(a, b, tol=1e-5):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32), atol=tol)


# ----------------------------------------------------------------------------- sparsemax (r = 0)
def test_sparsemax_by_hand():
    # [0.5, 0.2, 0.1]: all three in the support, tau = (0.8 - 1) / 3 = -1/15
    assert close(sparsemax(torch.tensor([0.5, 0.2, 0.1])), [0.5 + 1 / 15, 0.2 + 1 / 15, 0.1 + 1 / 15])
    # [1, 0.5, -1]: k* = 2 (1 + 2 * 0.5 > 1.5, 1 + 3 * -1 < 0.5), tau = (1.5 - 1) / 2 = 0.25
    assert close(sparsemax(torch.tensor([1.0, 0.5, -1.0])), [0.75, 0.25, 0.0])
    # a clear winner: one-hot
    assert close(sparsemax(torch.tensor([2.0, 0.0, 0.5])), [1.0, 0.0, 0.0])
    # equal inputs: uniform
    assert close(sparsemax(torch.zeros(4)), [0.25] * 4)


def test_radius_zero_is_sparsemax():
    v = torch.randn(6, 5)
    assert close(sparsestmax(v, 0.0), sparsemax(v), 1e-7)


# ----------------------------------------------------------------------------- the sphere constraint
def test_sphere_step_inside_the_face_by_hand():
    # w = sparsemax([0.5, 0.2, 0.1]) = [17, 8, 5] / 30, u = 1/3, w - u = [7, -2, -5] / 30, |w - u| = sqrt(78)/30
    # = 0.294 < r = 0.5, so p = u + 0.5 [7, -2, -5] / sqrt(78); every entry stays positive
    r = 0.5
    d = torch.tensor([7.0, -2.0, -5.0]) / math.sqrt(78.0)
    p = sparsestmax(torch.tensor([0.5, 0.2, 0.1]), r)
    assert close(p, 1 / 3 + r * d)
    assert close(p, [0.729630, 0.220106, 0.050264])
    assert close((p - 1 / 3).norm(), r)


def test_sphere_step_leaving_the_simplex_by_hand():
    # r = 0.7: the first push gives p_3 = 1/3 - 0.7 * 5 / sqrt(78) < 0, sparsemax(p) drops op 3 and leaves
    # [0.856667, 0.143333, 0] at distance 0.649 < 0.7; on the face {1, 2}, u_S = [1/2, 1/2, 0] and
    # r_S^2 = r^2 - (1/2 - 1/3), so p = u_S + r_S [1, -1, 0] / sqrt(2). SSN's closed form for n = 3
    # (ssn_utils.regulated_sparsemax): (1 +- sqrt(2) r sin(acos(1 / (sqrt(6) r)))) / 2.
    r = 0.7
    r_s = math.sqrt(r * r - (1 / 2 - 1 / 3))
    expected = [0.5 + r_s / math.sqrt(2), 0.5 - r_s / math.sqrt(2), 0.0]
    p = sparsestmax(torch.tensor([0.5, 0.2, 0.1]), r)
    assert close(p, expected)
    ssn = math.sqrt(2) * r * math.sin(math.acos(1 / (math.sqrt(6) * r))) / 2
    assert close(p, [0.5 + ssn, 0.5 - ssn, 0.0])
    assert close(p, [0.902077, 0.097923, 0.0])


def test_inactive_constraint_returns_sparsemax():
    v = torch.tensor([1.0, 0.5, -1.0])  # sparsemax [0.75, 0.25, 0]: |w - u| = sqrt(0.1736 + 0.0069 + 0.1111) = 0.54
    assert close(sparsestmax(v, 0.5), [0.75, 0.25, 0.0])


def test_one_hot_limit():
    n = 4
    v = torch.tensor([0.3, 0.2, 0.1, 0.0])
    assert close(sparsestmax(v, max_radius(n)), [1.0, 0.0, 0.0, 0.0])
    assert close(sparsestmax(v, 1.0), [1.0, 0.0, 0.0, 0.0])  # r beyond sqrt(1 - 1/n) is clipped
    assert max_radius(n) == pytest.approx(math.sqrt(0.75))


def test_equal_inputs_push_towards_the_first_entry():
    # w = u exactly: the direction is towards the first largest entry, e_1 - u
    p = sparsestmax(torch.zeros(3), 0.3)
    d = torch.tensor([2.0, -1.0, -1.0]) / math.sqrt(6.0)
    assert close(p, 1 / 3 + 0.3 * d)


@pytest.mark.parametrize("r", [0.1, 0.4, 0.7, 0.9])
def test_simplex_and_radius_on_random_rows(r):
    g = torch.Generator().manual_seed(0)
    v = torch.randn(200, 6, generator=g)
    p = sparsestmax(v, r)
    assert (p >= 0).all()
    assert close(p.sum(-1), torch.ones(200))
    dist = (p - 1 / 6).norm(dim=-1)
    assert (dist >= min(r, max_radius(6)) - 1e-5).all()
    # the projection never swaps the order of two entries
    i, j = torch.triu_indices(6, 6, 1)
    assert ((v[:, i] > v[:, j]) <= (p[:, i] >= p[:, j])).all()


def test_projection_is_nearest_among_feasible_points():
    # brute force on a grid of the 3-simplex: no feasible grid point is nearer to v than the projection
    v = torch.tensor([0.4, 0.35, 0.1])
    r = 0.45
    p = sparsestmax(v, r)
    steps = 400
    a, b = torch.meshgrid(torch.arange(steps + 1), torch.arange(steps + 1), indexing="ij")
    keep = a + b <= steps
    q = torch.stack([a[keep], b[keep], steps - a[keep] - b[keep]], -1).float() / steps
    feasible = q[(q - 1 / 3).norm(dim=-1) >= r]
    best = float((feasible - v).norm(dim=-1).min())
    assert float((p - v).norm()) <= best + 1e-4


def test_gradient_flows_through_the_projection():
    alpha = torch.tensor([[0.5, 0.2, 0.1], [0.1, 0.2, 0.5]], requires_grad=True)
    p = sparsestmax(alpha, 0.5)
    (p * torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])).sum().backward()
    assert alpha.grad is not None and torch.isfinite(alpha.grad).all()
    assert alpha.grad.abs().sum() > 0
    # numerical check of one entry
    eps = 1e-3
    plus, minus = alpha.detach().clone(), alpha.detach().clone()
    plus[0, 0] += eps
    minus[0, 0] -= eps
    num = (sparsestmax(plus, 0.5)[0, 0] - sparsestmax(minus, 0.5)[0, 0]) / (2 * eps)
    assert float(alpha.grad[0, 0]) == pytest.approx(float(num), rel=1e-2)


# ----------------------------------------------------------------------------- the mixer
def test_registered_and_schedule():
    assert MIXERS.get("sparsestmax") is SparsestmaxMixer
    m = SparsestmaxMixer(get_space("nb201"), radius_start=0.0, radius_end=1.0)
    radii = []
    for e in range(5):
        m.on_epoch_start(e, 5)
        radii.append(m.schedule_values()["sparsestmax_radius"])
    assert radii == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert linear_radius(0, 1, 0.2, 1.0) == 0.2
    c = SparsestmaxMixer(get_space("nb201"), radius_start=0.3, schedule="constant")
    c.on_epoch_start(7, 10)
    assert c.schedule_values() == {"sparsestmax_radius": pytest.approx(0.3)}


def test_mixer_weights_and_active_ops():
    torch.manual_seed(0)
    m = SparsestmaxMixer(get_space("nb201"))
    with torch.no_grad():
        m.alphas["cell"].copy_(torch.tensor([[1.0, 0.5, -1.0, -1.0, -1.0]] * 6))
    w = m.edge_weights("cell")
    assert close(w.weights[0], [0.75, 0.25, 0.0, 0.0, 0.0])
    assert w.active[0] == [0, 1]  # ops with weight 0 are not computed
    m.on_epoch_start(1, 2)  # r = 1: one-hot
    assert close(m.edge_weights("cell").weights[0], [1.0, 0, 0, 0, 0])
    scores, edge = m.selection_scores()
    assert edge is None and close(scores["cell"][0], [1.0, 0, 0, 0, 0])


@pytest.mark.parametrize("opts, text", [({"schedule": "cosine"}, "unknown method.mixer.schedule 'cosine'"),
                                        ({"radius_end": 1.5}, "radius_end=1.5 is not a radius"),
                                        ({"radius_start": -0.1}, "radius_start=-0.1 is not a radius")])
def test_bad_options(opts, text):
    with pytest.raises(OptionError, match=text):
        SparsestmaxMixer(get_space("nb201"), **opts)


def test_state_save_restore():
    m = SparsestmaxMixer(get_space("nb201"))
    m.on_epoch_start(3, 5)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    assert float(state["radius"]) == pytest.approx(0.75)
    fresh = SparsestmaxMixer(get_space("nb201"))
    fresh.load_state_dict(state)
    assert fresh.schedule_values() == m.schedule_values()
    assert torch.equal(fresh.edge_weights("cell").weights, m.edge_weights("cell").weights)


def test_one_hot_limit_is_exact_and_keeps_the_graph():
    alpha = torch.tensor([[0.2, 0.5, 0.1], [0.3, 0.3, 0.0]], requires_grad=True)
    p = sparsestmax(alpha, 1.0)
    assert torch.equal(p, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))  # ties: the first index
    p.sum().backward()
    assert torch.equal(alpha.grad, torch.zeros(2, 3))


def test_mixing_override_computes_every_op():
    # SDARTS-style perturbed probabilities may be non-zero where sparsestmax is 0: every op must run then
    m = SparsestmaxMixer(get_space("nb201"))
    with torch.no_grad():
        m.alphas["cell"].copy_(torch.tensor([[1.0, 0.5, -1.0, -1.0, -1.0]] * 6))
    assert m.edge_weights("cell").active[0] == [0, 1]
    probs = {"cell": torch.full((6, 5), 0.2)}
    with m.mixing_override(probs):
        w = m.edge_weights("cell")
        assert torch.equal(w.weights, probs["cell"])
        assert w.ops_of(0, m.none_index) == [1, 2, 3, 4]  # all but none (index 0 on NB201)


def test_a_search_step_with_sparsestmax_on_nb201(tmp_path):
    # the mixer axis composes with any method: darts with the mixer swapped, one epoch of one step
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from helpers import compose_cfg

    from nascli.search.builder import build_search
    from nascli.rng import seed_everything

    cfg = compose_cfg("search", ["method=darts", "method.mixer.name=sparsestmax", "+method.mixer.radius_end=0.5",
                                 "space=nb201", "space.supernet.C=4", "space.supernet.N=1", "dataset=synthetic",
                                 "dataset.num_train=32", "dataset.num_test=16", "dataset.image_size=8",
                                 "search.batch_size=8", "search.epochs=2", "search.max_steps_per_epoch=1",
                                 "num_threads=1", f"out_root={tmp_path}"])
    seed_everything(0)
    setup = build_search(cfg, torch.device("cpu"))
    before = setup.supernet.mixer.alphas["cell"].detach().clone()
    setup.engine.start_epoch(1)
    setup.engine.run_epoch()
    assert setup.engine.schedule_values()["sparsestmax_radius"] == pytest.approx(0.5)
    assert not torch.equal(before, setup.supernet.mixer.alphas["cell"])
    w = setup.supernet.mixer.edge_weights("cell").weights
    assert close(w.sum(-1), torch.ones(6)) and ((w - 0.2).norm(dim=-1) >= 0.5 - 1e-5).all()


def test_nearly_equal_alphas_stay_on_the_simplex():
    # alphas at the DARTS init scale (1e-3): w is within 1e-3 of u, the push to r = 0.5 must not amplify the
    # rounding of sum(w) (the direction is v - mean(v) on the support, not w - u)
    g = torch.Generator().manual_seed(1)
    v = 1e-3 * torch.randn(500, 5, generator=g)
    p = sparsestmax(v, 0.5)
    assert (p.sum(-1) - 1).abs().max() < 1e-6
    assert ((p - 0.2).norm(dim=-1) - 0.5).abs().max() < 1e-5
