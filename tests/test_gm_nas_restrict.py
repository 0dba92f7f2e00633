"""``Mixer.restrict_edge`` (nascli/search/mixers/base.py), the intervention GM-NAS's sub-supernets use: on hand-made
alphas the cells receive the softmax over the allowed ops (the whole supernet's output equals one computed at
those probabilities), a Gumbel sampler draws among the allowed ops only (with the group's softmax frequencies),
a Dirichlet sample is renormalised over the group, and the restriction travels with the mixer's state_dict."""
from __future__ import annotations

import io

import pytest
import torch

from helpers import compose_cfg
from nascli.commands.run import seed_everything
from nascli.search.builder import build_search
from nascli.search.mixers import MIXERS
from nascli.spaces import get_space

SPACE = get_space("nb201")
TINY = ["method=gm_nas", "space.supernet.C=4", "space.supernet.N=1", "dataset.num_train=32", "dataset.num_test=16",
        "dataset.image_size=8", "search.batch_size=8", "num_threads=1"]
# 6 edges x 5 ops (none, skip, conv1x1, conv3x3, pool); edge 2 keeps {skip, conv3x3}, edge 4 keeps {none, pool}
ALPHA = torch.tensor([[0.3, -0.2, 0.5, 0.1, 0.0],
                      [1.0, 2.0, -1.0, 0.5, 0.2],
                      [0.7, 0.4, -0.3, 1.1, 2.5],
                      [0.0, 0.0, 0.0, 0.0, 0.0],
                      [-0.5, 1.5, 0.8, 0.2, 0.9],
                      [0.1, 0.2, 0.3, 0.4, 0.5]])
GROUPS = {2: [1, 3], 4: [0, 4]}


def _mixer(name: str = "softmax", **kw):
    m = MIXERS.get(name)(SPACE, **kw)
    with torch.no_grad():
        m.alphas["cell"].copy_(ALPHA)
    for e, ops in GROUPS.items():
        m.restrict_edge("cell", e, ops)
    return m


def _group_softmax(alpha: torch.Tensor) -> torch.Tensor:
    """By hand: exp(alpha_o) / sum_{k in G} exp(alpha_k) on the restricted edges, the full softmax elsewhere."""
    p = torch.softmax(alpha, -1).clone()
    for e, ops in GROUPS.items():
        z = sum(torch.exp(alpha[e, k]) for k in ops)
        p[e] = 0.0
        for k in ops:
            p[e, k] = torch.exp(alpha[e, k]) / z
    return p


def test_softmax_weights_are_the_softmax_over_the_group_with_its_gradient():
    m = _mixer()
    w = m.edge_weights("cell")
    assert torch.allclose(w.weights, _group_softmax(ALPHA), atol=1e-7)
    assert w.weights[2].tolist()[1] == pytest.approx(1 / (1 + torch.exp(torch.tensor(0.7)).item()))  # e^.4/(e^.4+e^1.1)
    assert w.active[2] == [1, 3] and w.active[4] == [0, 4] and w.active[0] == [0, 1, 2, 3, 4]
    coeff = torch.arange(30, dtype=torch.float32).reshape(6, 5)
    (w.weights * coeff).sum().backward()
    ref = ALPHA.clone().requires_grad_(True)
    (_group_softmax(ref) * coeff).sum().backward()
    assert torch.allclose(m.alphas["cell"].grad, ref.grad, atol=1e-6)
    assert m.alphas["cell"].grad[2, [0, 2, 4]].abs().max() < 1e-7  # the excluded alphas: 0 up to rounding


def test_the_cells_receive_the_group_softmax():
    """The supernet's output under the restriction equals its output at the group-softmax probabilities given
    explicitly (``mixing_override``, no restriction), and differs from the unrestricted output."""
    cfg = compose_cfg("search", TINY)
    seed_everything(0)
    setup = build_search(cfg, torch.device("cpu"))
    net, mixer = setup.supernet, setup.supernet.mixer
    with torch.no_grad():
        mixer.alphas["cell"].copy_(ALPHA)
    net.eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        free = net(x)
        for e, ops in GROUPS.items():
            mixer.restrict_edge("cell", e, ops)
        restricted = net(x)
        mixer.clear_interventions()  # fixes and masks only: the restriction stays
        assert torch.equal(net(x), restricted)
        mixer.clear_restrictions()
        with mixer.mixing_override({"cell": _group_softmax(ALPHA)}):
            given = net(x)
    assert torch.allclose(restricted, given, atol=1e-6) and not torch.allclose(restricted, free, atol=1e-4)


def test_gumbel_samples_only_the_allowed_ops_with_the_group_softmax_frequencies():
    m = _mixer("gumbel", tau_max=1.0, tau_min=1.0)
    torch.manual_seed(0)
    picks = torch.stack([m.edge_weights("cell").weights.argmax(-1) for _ in range(2000)])
    assert set(picks[:, 2].tolist()) == {1, 3} and set(picks[:, 4].tolist()) == {0, 4}
    p = _group_softmax(ALPHA)
    assert (picks[:, 2] == 3).float().mean().item() == pytest.approx(p[2, 3].item(), abs=0.04)  # 0.668
    assert (picks[:, 4] == 4).float().mean().item() == pytest.approx(p[4, 4].item(), abs=0.04)  # 0.802
    assert set(picks[:, 0].tolist()) == {0, 1, 2, 3, 4}  # unrestricted edges still draw among all ops
    with m.held_path():  # a probe's argmax path stays inside the group too (edge 2's best op overall is 4)
        assert m.edge_weights("cell").weights.argmax(-1)[[2, 4]].tolist() == [3, 4]
    assert "alphas" not in m.__dict__ and isinstance(m.alphas, torch.nn.ParameterDict)


def test_dirichlet_sample_is_renormalised_over_the_group():
    m = _mixer("dirichlet")
    torch.manual_seed(0)
    w = m.edge_weights("cell").weights
    assert torch.allclose(w.sum(-1), torch.ones(6), atol=1e-6)
    assert w[2, [0, 2, 4]].abs().max() == 0 and w[4, [1, 2, 3]].abs().max() == 0 and (w[2, [1, 3]] > 0).all()


def _roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_restrictions_are_checkpointed_and_restored():
    m = _mixer()
    state = _roundtrip(m.state_dict())
    assert state["restricted_ops"].tolist() == [[0, 2, 1], [0, 2, 3], [0, 4, 0], [0, 4, 4]]
    fresh = MIXERS.get("softmax")(SPACE)
    fresh.load_state_dict(state)
    assert fresh.restrictions() == {("cell", 2): (1, 3), ("cell", 4): (0, 4)}
    assert torch.equal(fresh.edge_weights("cell").weights, m.edge_weights("cell").weights)
    plain = MIXERS.get("softmax")(SPACE).state_dict()
    assert "restricted_ops" not in plain  # an unrestricted mixer's state is unchanged
    m.load_state_dict(plain)  # a state without restrictions is an unrestricted mixer
    assert m.restrictions() == {} and m.allowed_ops("cell") is None


@pytest.mark.parametrize("edge,ops,words", [(6, [0], "no edge 6"), (1, [], "empty"), (1, [5], "not among the 5")])
def test_bad_restrictions_are_refused(edge, ops, words):
    with pytest.raises(ValueError) as exc:
        MIXERS.get("softmax")(SPACE).restrict_edge("cell", edge, ops)
    assert words in str(exc.value)
