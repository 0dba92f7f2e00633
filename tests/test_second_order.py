"""DARTS second-order architecture gradient vs an exact autograd computation (METHODS.md 1.1)."""
import torch
import torch.nn.functional as F
from torch.func import functional_call

from nascli.search.mixers import MIXERS
from nascli.search.optimizers import SEARCH_OPTIMIZERS
from nascli.spaces import get_space
from nascli.search.edge_parts import method_parts


def _tiny(seed=0):
    torch.manual_seed(seed)
    space = get_space("nb201")
    net = space.build_supernet(MIXERS.get("softmax")(space, init_scale=0.5), 3, 3, (), C=4, N=1).double()
    batch = lambda: (torch.randn(6, 3, 8, 8, dtype=torch.float64), torch.randint(0, 3, (6,)))  # noqa: E731
    return net, batch


def test_unrolled_gradient_matches_exact_hessian_vector_product():
    net, batch = _tiny()
    # DARTS uses eps = 0.01 / ||v||; on a net this tiny the loss is not smooth at that scale (BN over
    # 2x2 maps, ReLU kinks), so the check uses a much smaller radius (float64): it tests the implementation, not the
    # accuracy of the finite difference itself.
    opt = SEARCH_OPTIMIZERS.get("bilevel_2nd")(net, lr=0.1, momentum=0.9, weight_decay=3e-4, fd_radius=1e-7)
    opt.on_epoch_start(0, 10)
    opt.weight_step(batch())  # creates momentum buffers, so the mu * m term is exercised
    train, val = batch(), batch()

    xi, mu, wd = opt.current_lr, opt.momentum, opt.weight_decay
    names = [n for n, _ in net.named_weight_parameters()]
    w = {n: p.detach().clone().requires_grad_(True) for n, p in net.named_weight_parameters()}
    m = {n: opt.w_opt.state[p]["momentum_buffer"] for n, p in net.named_weight_parameters()}
    alpha = net.mixer.alphas["cell"].detach().clone().requires_grad_(True)
    buffers = {n: b.clone() for n, b in net.named_buffers()}

    def loss(params, data):
        out = functional_call(net, {**params, **{k: v.clone() for k, v in buffers.items()},
                                    "mixer.alphas.cell": alpha}, (data[0],))
        return F.cross_entropy(out, data[1])

    g = torch.autograd.grad(loss(w, train), [w[n] for n in names], create_graph=True)
    w_unrolled = {n: w[n] - xi * (mu * m[n] + gn + wd * w[n]) for n, gn in zip(names, g)}
    exact = torch.autograd.grad(loss(w_unrolled, val), alpha)[0]

    before = [p.detach().clone() for p in net.weight_parameters()]
    approx = opt.unrolled_arch_grad(train, val)[0]
    torch.testing.assert_close(approx, exact, rtol=1e-5, atol=1e-8)
    # the weights are left exactly as they were
    for p, b in zip(net.weight_parameters(), before):
        assert torch.equal(p, b)
    # and the first-order gradient alone is measurably different (the test can fail)
    first = torch.autograd.grad(loss(w, val), alpha)[0]
    assert not torch.allclose(first, exact, rtol=1e-3)


def test_update_orders():
    net, batch = _tiny()
    calls = []
    opt = SEARCH_OPTIMIZERS.get("bilevel")(net, order="weights_first")
    opt.weight_step = lambda b: calls.append("w")
    opt.arch_step = lambda t, v: calls.append("a")
    opt.on_epoch_start(0, 1)
    opt.step(batch(), batch())
    opt.order = "arch_first"
    opt.step(batch(), batch())
    assert calls == ["w", "a", "a", "w"]


def test_cosine_schedule_is_set_per_epoch():
    net, _ = _tiny()
    opt = SEARCH_OPTIMIZERS.get("bilevel")(net, lr=0.025, lr_min=0.001)
    got = []
    for e in (0, 25, 49):
        opt.on_epoch_start(e, 50)
        got.append(opt.current_lr)
    assert got[0] == 0.025
    assert abs(got[1] - (0.001 + 0.024 * 0.5)) < 1e-12
    assert abs(got[2] - (0.001 + 0.024 * (1 + torch.cos(torch.tensor(torch.pi * 49 / 50)).item()) / 2)) < 1e-9
