"""sharpDARTS (METHODS.md 8): the SharpSepConv spaces, published genotypes, the Max-W mixing rule and Cosine
Power Annealing.

Parameter counts are counted by hand (depthwise, pointwise and BatchNorm parameters written out); the
evaluation-network counts of the published genotypes are pinned at the CIFAR protocol size (C=36, 20 cells);
the Max-W weights and the Cosine Power Annealing rates are compared with hand computations; the learning rate
of a resumed search equals the uninterrupted one.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from helpers import compose_cfg, interrupted_and_full_states, nas, result_line
from nascli.errors import BadArchError, OptionError
from nascli.paths import CONF_DIR
from nascli.profile import count_parameters
from nascli.search.mixers import MIXERS
from nascli.search.mixers.softmax import max_w_weights
from nascli.search.optimizers import SEARCH_OPTIMIZERS
from nascli.search.optimizers.base import cos_power_lr, cosine_lr
from nascli.spaces import get_space
from nascli.spaces.darts.ops import PRIMITIVES
from nascli.spaces.darts.sharp import CHOKE_C_MID, FLOOD_MULT, OP_LISTS, SHARP_OPS, SHARP_PUBLISHED, SharpSepConv

SPACES = sorted(OP_LISTS)
TINY = ["space.supernet.C=4", "space.supernet.layers=3", "dataset=synthetic", "dataset.num_train=32",
        "dataset.num_test=16", "dataset.image_size=8", "search.batch_size=8", "search.max_steps_per_epoch=1",
        "num_threads=1"]


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------ ops
def test_sharpsepconv_c16_k3_counted_by_hand():
    """C=16, k=3, C_mid=16: DW 16*3*3, PW 16*16, BN 2*16, DW 16*3*3, PW 16*16, BN 2*16."""
    dw1, pw1, bn1, dw2, pw2, bn2 = 16 * 9, 16 * 16, 2 * 16, 16 * 9, 16 * 16, 2 * 16
    assert n_params(SHARP_OPS["sep_conv_3x3"](16, 1, True)) == dw1 + pw1 + bn1 + dw2 + pw2 + bn2 == 864
    assert n_params(SHARP_OPS["sep_conv_3x3"](16, 1, False)) == dw1 + pw1 + dw2 + pw2 == 800  # search: no BN affine
    # flood: C_mid = 64: DW 16*9, PW 16*64, BN 2*64, DW 64*9, PW 64*16, BN 2*16
    assert n_params(SHARP_OPS["flood_conv_3x3"](16, 1, True)) == 144 + 1024 + 128 + 576 + 1024 + 32
    # choke: C_mid = 32: DW 16*9, PW 16*32, BN 2*32, DW 32*9, PW 32*16, BN 2*16
    assert n_params(SHARP_OPS["choke_conv_3x3"](16, 1, True)) == 144 + 512 + 64 + 288 + 512 + 32
    # dil_conv_5x5 is a full SharpSepConv (two separable convs), unlike DARTS's single DilConv
    assert n_params(SHARP_OPS["dil_conv_5x5"](16, 2, True)) == 400 + 256 + 32 + 400 + 256 + 32


KERNELS = {"sep_conv_3x3": (3, 1, 1), "sep_conv_5x5": (5, 1, 1), "sep_conv_7x7": (7, 1, 1),
           "dil_conv_3x3": (3, 2, 1), "dil_conv_5x5": (5, 2, 1), "flood_conv_3x3": (3, 1, FLOOD_MULT),
           "flood_conv_5x5": (5, 1, FLOOD_MULT), "dil_flood_conv_3x3": (3, 2, FLOOD_MULT),
           "choke_conv_3x3": (3, 1, None), "dil_choke_conv_3x3": (3, 2, None)}


@pytest.mark.parametrize("name", [n for n in SHARP_OPS if "conv" in n])
@pytest.mark.parametrize("affine", [True, False])
def test_every_sharp_conv_op_count_and_shape(name, affine):
    """Every registered conv op: C k^2 + C M + 2M + M k^2 + M C + 2C (no BN terms in search), the dilation of
    its first depthwise conv, and the DARTS shape rule (C -> C; stride 2 halves 8x8)."""
    k, dilation, mult = KERNELS[name]
    C = 8
    M = CHOKE_C_MID if mult is None else mult * C
    op = SHARP_OPS[name](C, 2, affine)
    assert isinstance(op, SharpSepConv) and op.C_mid == M and op[1].dilation == (dilation, dilation)
    bn = 2 * M + 2 * C if affine else 0
    assert n_params(op) == C * k * k + C * M + M * k * k + M * C + bn
    assert op(torch.randn(2, C, 8, 8)).shape == (2, C, 4, 4)
    assert SHARP_OPS[name](C, 1, affine)(torch.randn(2, C, 8, 8)).shape == (2, C, 8, 8)


def test_non_conv_ops_are_the_darts_modules():
    from nascli.spaces.darts.ops import CELL_OPS
    for name in ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"):
        assert SHARP_OPS[name] is CELL_OPS[name]


# ------------------------------------------------------------------ spaces
def test_spaces_and_their_op_lists():
    """ahundt/sharpDARTS cnn/genotypes.py: DARTS_PRIMITIVES, PRIMITIVES (9), SHARPER_PRIMITIVES (12)."""
    assert get_space("sharp_darts").ops == PRIMITIVES
    assert len(get_space("sharp_darts_choke").ops) == 9 and "choke_conv_3x3" in get_space("sharp_darts_choke").ops
    sharper = get_space("sharper_darts").ops
    assert len(sharper) == 12 and {"sep_conv_7x7", "flood_conv_5x5", "dil_flood_conv_3x3"} <= set(sharper)
    assert not any("choke" in op for op in sharper)
    for name in SPACES:
        space = get_space(name)
        assert space.op_set.factories is SHARP_OPS
        assert all(space.edge_ops(ct) == [space.ops] * 14 for ct in space.cell_types)


@pytest.mark.parametrize("name", SPACES)
def test_supernet_builds_with_sharp_ops(name):
    space = get_space(name)
    net = space.build_supernet(MIXERS.get("softmax")(space), 10, 3, (), C=4, layers=3, impl="reference")
    cell = net.cells[0]
    for o, op_name in enumerate(space.ops):
        if "conv" in op_name:
            assert isinstance(cell.edges[0][o], SharpSepConv)
            assert all(not bn.affine for bn in cell.edges[0][o].modules() if isinstance(bn, torch.nn.BatchNorm2d))
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_fast_cell_equals_reference_on_every_sharp_kernel():
    """The fast cell's SharpSepConv kernel (stride 1/2, dilation 1/2, C_mid = C / 4C / 32) computes the reference
    cell's function: outputs and gradients equal in float64 (one reduction cell, odd sizes 5 -> 3)."""
    from nascli.spaces.darts.search_cells import ReferenceSearchCell
    from nascli.spaces.darts.search_fast import FastSearchCell
    from nascli.spaces.edge import EdgeWeights
    ops = tuple(dict.fromkeys([*OP_LISTS["sharper_darts"], *OP_LISTS["sharp_darts_choke"]]))
    space = get_space("sharper_darts")
    table = [ops] * 14
    torch.manual_seed(0)
    ref = ReferenceSearchCell(8, 8, 4, True, False, edge_ops=table, op_set=space.op_set).double()
    fast = FastSearchCell(8, 8, 4, True, False, edge_ops=table, op_set=space.op_set).double()
    fast.load_state_dict(ref.state_dict())
    w = torch.softmax(torch.randn(14, len(ops), dtype=torch.float64), -1)
    x0, x1 = torch.randn(2, 8, 5, 5, dtype=torch.float64), torch.randn(2, 8, 5, 5, dtype=torch.float64)
    outs = []
    for cell in (ref, fast):
        a, b = x0.clone().requires_grad_(), x1.clone().requires_grad_()
        out = cell(a, b, EdgeWeights(w))
        out.square().sum().backward()
        outs.append((out.detach(), a.grad, b.grad, {n: p.grad for n, p in cell.named_parameters()}))
    torch.testing.assert_close(outs[1][0], outs[0][0], atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(outs[1][1], outs[0][1], atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(outs[1][2], outs[0][2], atol=1e-10, rtol=1e-8)
    for n, g in outs[0][3].items():
        torch.testing.assert_close(outs[1][3][n], g, atol=1e-10, rtol=1e-8, msg=n)


def test_derivation_names_the_space_ops():
    """DARTS rule on hand-made scores: column 10 (flood_conv_5x5) wins everywhere, none never chosen; per node the
    two inputs with the highest best score (here the two lowest inputs, rows scored by input)."""
    space = get_space("sharper_darts")
    scores = {}
    for ct in space.cell_types:
        w = torch.zeros(14, 12)
        w[:, 0] = 5.0  # none: ignored
        for e in space.edges(ct):
            w[e.index, 10] = 1.0 - 0.1 * e.src
        scores[ct] = w
    arch = space.discretize(scores)
    assert arch.normal == tuple(("flood_conv_5x5", src) for _ in range(4) for src in (0, 1))
    assert type(arch).space == "sharper_darts"


# ------------------------------------------------------------------ published genotypes
# (space, name) -> NetworkCIFAR(C=36, 20 cells) parameters without the auxiliary head (count_parameters_in_MB)
PUBLISHED_COUNTS = {
    ("sharp_darts", "sharpsepconv_darts"): 3_555_622,  # published 3.6M (METHODS.md 8)
    ("sharp_darts", "sharpsepconv_darts_max_w"): 3_546_550,  # not published for CIFAR-10
    ("sharp_darts_choke", "sharp_darts"): 1_974_934,  # published 1.98M: 0.25 % above this count (choke C_mid = 32)
}


@pytest.mark.parametrize("space_name, arch_name", sorted(PUBLISHED_COUNTS))
def test_published_genotype_parameter_count(space_name, arch_name):
    space = get_space(space_name)
    net = space.build_network(space.parse_arch(arch_name), 10, 3, C=36, layers=20, auxiliary=True)
    assert count_parameters(net) == PUBLISHED_COUNTS[(space_name, arch_name)]


def test_sharp_sep_conv_is_darts_sep_conv_but_dil_conv_is_not():
    """With C_mid = C a SharpSepConv has the modules of DARTS's SepConv, so sharpsepconv_darts (sep_conv and
    skip/pool only) has the same count with DARTS ops; dil_conv differs (DARTS: one DilConv, sharpDARTS: a dilated
    SharpSepConv), so sharpsepconv_darts_max_w does not (METHODS.md 9 note)."""
    darts = get_space("darts")
    counts = {}
    for name in ("sharpsepconv_darts", "sharpsepconv_darts_max_w"):
        arch = get_space("sharp_darts").parse_arch(name)
        as_darts = darts.arch_from_json({**arch.to_json(), "space": "darts"})
        counts[name] = count_parameters(darts.build_network(as_darts, 10, 3, C=36, layers=20))
    assert counts["sharpsepconv_darts"] == PUBLISHED_COUNTS[("sharp_darts", "sharpsepconv_darts")]
    assert counts["sharpsepconv_darts_max_w"] < PUBLISHED_COUNTS[("sharp_darts", "sharpsepconv_darts_max_w")]


def test_published_genotype_forward_small():
    space = get_space("sharp_darts")
    net = space.build_network(space.parse_arch("sharpsepconv_darts_max_w"), 10, 3, C=4, layers=5,
                              auxiliary=True).train()
    logits, aux = net(torch.randn(2, 3, 32, 32))  # the auxiliary head needs 8x8 maps after the second reduction
    assert logits.shape == aux.shape == (2, 10)


def test_published_names_one_line_errors():
    with pytest.raises(BadArchError, match="choke_conv_3x3.*not in the sharp_darts space"):
        get_space("sharp_darts").parse_arch("sharp_darts")
    with pytest.raises(BadArchError, match="unknown sharp_darts arch 'darts_v2'.*sharpsepconv_darts_max_w"):
        get_space("sharp_darts").parse_arch("darts_v2")
    assert get_space("sharper_darts").parse_arch("SHARPSEPCONV_DARTS").normal == SHARP_PUBLISHED[
        "sharpsepconv_darts"].normal


def test_evaluate_dry_run_finds_the_space_by_name(tmp_path):
    out = result_line(nas("evaluate", "arch=sharp_darts", "protocol=darts_600e", "dataset=cifar10",
                          "dry_run=true", f"out_root={tmp_path}"))
    assert (out["space"], out["params"]) == ("sharp_darts_choke", 1_974_934)


# ------------------------------------------------------------------ Max-W
def test_max_w_on_hand_made_alphas():
    """alpha = log([1, 2, 5]) -> w = [1/8, 2/8, 5/8] -> 1 - 5/8 + w = [4/8, 5/8, 1]."""
    alpha = torch.log(torch.tensor([[1.0, 2.0, 5.0], [1.0, 1.0, 2.0]], dtype=torch.float64))
    got = max_w_weights(torch.softmax(alpha, -1))
    want = torch.tensor([[0.5, 0.625, 1.0], [0.75, 0.75, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-15)


def test_max_w_mixer_weights_and_gradient_through_max():
    space = get_space("sharp_darts")
    mixer = MIXERS.get("softmax")(space, weighting="max_w")
    with torch.no_grad():
        mixer.alphas["normal"].normal_()
    w = mixer.edge_weights("normal").weights
    p = torch.softmax(mixer.alphas["normal"], -1)
    torch.testing.assert_close(w, 1 - p.max(-1, keepdim=True).values + p)
    assert torch.allclose(w.max(-1).values, torch.ones(14))
    # sum_o w_o = 1 - O p_k + O (k = argmax): d/dalpha_j = -O p_k (delta_kj - p_j), nonzero through the max
    w.sum().backward()
    g = mixer.alphas["normal"].grad
    k = p.argmax(-1)
    pk = p.gather(1, k[:, None])
    expected = -len(space.ops) * pk * (torch.nn.functional.one_hot(k, len(space.ops)) - p)
    torch.testing.assert_close(g, expected.detach())
    # derivation and reported probabilities stay softmax(alpha)
    torch.testing.assert_close(mixer.selection_scores()[0]["normal"], p.detach())


def test_max_w_search_step_uses_max_w_weights():
    """A supernet with the Max-W mixer computes the softmax mixer's supernet at the Max-W weights, and one
    bi-level step moves alpha."""
    space = get_space("sharp_darts")
    torch.manual_seed(0)
    net = space.build_supernet(MIXERS.get("softmax")(space, weighting="max_w"), 10, 3, (), C=4, layers=3,
                               impl="reference")
    with torch.no_grad():
        for a in net.mixer.alphas.values():
            a.normal_()
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    net.eval()
    out = net(x)
    probs = {ct: max_w_weights(torch.softmax(a, -1)) for ct, a in net.mixer.alphas.items()}
    net.mixer.weighting = "softmax"
    assert not torch.allclose(net(x), out)
    with net.mixer.mixing_override(probs):
        torch.testing.assert_close(net(x), out)
    net.mixer.weighting = "max_w"
    net.train()
    opt = SEARCH_OPTIMIZERS.get("bilevel")(net)
    opt.on_epoch_start(0, 1)
    before = {ct: a.detach().clone() for ct, a in net.mixer.alphas.items()}
    opt.step((x, y), (x, y))
    assert all(not torch.equal(before[ct], a) for ct, a in net.mixer.alphas.items())


def test_unknown_weighting_is_one_line():
    with pytest.raises(OptionError, match="unknown method.mixer.weighting 'maxw'; valid choices: softmax, max_w"):
        MIXERS.get("softmax")(get_space("sharp_darts"), weighting="maxw")


# ------------------------------------------------------------------ Cosine Power Annealing
def test_cos_power_hand_computed_with_warmup():
    """E=12, W=5, p=2, 0.025 -> 1e-4. Warm-up t = 1..6: q = t/6. Then c(t) = (1 + cos(pi (t-5)/7))/2,
    g = 2^(c+1) with max 4 (t = 5, c = 1) and min 2 (t = 12, c = 0), q = (g - 2)/2."""
    lr, lr_min = 0.025, 1e-4
    for epoch in range(6):
        assert cos_power_lr(lr, lr_min, epoch, 12, 2, 5) == pytest.approx(lr_min + (lr - lr_min) * (epoch + 1) / 6,
                                                                            rel=1e-12)
    for t in (7, 9, 11):
        c = (1 + math.cos(math.pi * (t - 5) / 7)) / 2
        q = (2 ** (c + 1) - 2) / 2
        assert cos_power_lr(lr, lr_min, t - 1, 12, 2, 5) == pytest.approx(lr_min + (lr - lr_min) * q, rel=1e-12)
    assert cos_power_lr(lr, lr_min, 11, 12, 2, 5) == lr_min  # the last epoch trains at lr_min


# the reference's cosine_power_annealing(epochs=E, ...) array (ahundt/sharpDARTS@8fd6575), transcribed
PINNED = {
    (10, 0.025, 1e-4, 2, 0): [0.025, 0.022566215240479984, 0.019006264063518775, 0.014892174947182398,
                              0.010772944130786161, 0.007072068969775538, 0.004057039880483278,
                              0.0018632028907303267, 0.0005407972088722607, 0.0001],
    (8, 0.1, 1e-3, 10, 2): [0.034, 0.067, 0.1, 0.0518575457709384, 0.024785054261852173, 0.009561073510428151,
                            0.00283453040826162, 0.001],
    (8, 0.1, 0.0, 1, 0): [0.1, 0.08873251949191535, 0.0718695432327948, 0.05197830649482901, 0.0320870697568632,
                          0.015224093497742654, 0.003956612989658005, 0.0],
}


@pytest.mark.parametrize("key", sorted(PINNED))
def test_cos_power_pinned_curves(key):
    E, lr, lr_min, power, W = key
    got = [cos_power_lr(lr, lr_min, e, E, power, W) for e in range(E)]
    assert got == pytest.approx(PINNED[key], rel=1e-12, abs=1e-15)


def test_sharp_darts_search_schedule_120_epochs():
    """method=sharp_darts: 0.025 -> 1e-4, order 2, 5 warm-up epochs over 120 epochs."""
    cfg = compose_cfg("search", ["method=sharp_darts", "space=sharp_darts"])
    o = cfg.optimizer
    assert (o.schedule, o.power, o.warmup_epochs, o.lr, o.lr_min) == ("cos_power", 2, 5, 0.025, 1e-4)
    assert (cfg.search.epochs, cfg.search.batch_size, cfg.search.cutout) == (120, 48, 16)
    values = [cos_power_lr(0.025, 1e-4, e, 120, 2, 5) for e in range(120)]
    assert values[5] == 0.025 and values[6] == pytest.approx(0.02497425229432575, rel=1e-12)
    assert values[-1] == 1e-4 and all(a >= b for a, b in zip(values[5:], values[6:]))


def test_power_one_is_cosine_rescaled():
    """Order 1: the cosine curve rescaled so that epoch 1 has lr and epoch E lr_min (no warm-up)."""
    E = 9
    c = [(1 + math.cos(math.pi * t / E)) / 2 for t in range(1, E + 1)]
    for e in range(E):
        assert cos_power_lr(0.1, 0.0, e, E, 1, 0) == pytest.approx(0.1 * (c[e] - c[-1]) / (c[0] - c[-1]), rel=1e-12)
    assert cosine_lr(0.1, 0.0, 0, E) == 0.1  # the default schedule is unchanged


@pytest.mark.parametrize("name", SEARCH_OPTIMIZERS.names())
def test_every_optimizer_uses_the_schedule(name):
    space = get_space("nb201")
    net = space.build_supernet(MIXERS.get("softmax")(space), 10, 3, (), C=4, N=1)
    opt = SEARCH_OPTIMIZERS.get(name)(net, schedule="cos_power", power=2, warmup_epochs=2, lr=0.1, lr_min=0.0)
    for e in range(6):
        opt.on_epoch_start(e, 6)
        assert opt.current_lr == cos_power_lr(0.1, 0.0, e, 6, 2, 2)
        assert opt.schedule_values()["lr"] == opt.current_lr


@pytest.mark.parametrize("kwargs, message", [
    (dict(schedule="step"), "unknown optimizer.schedule 'step'; valid choices: cosine, cos_power"),
    (dict(schedule="cos_power", power=0.5), "optimizer.power must be >= 1"),
    (dict(schedule="cos_power", warmup_epochs=-1), "optimizer.warmup_epochs must be >= 0"),
])
def test_bad_schedule_options(kwargs, message):
    space = get_space("nb201")
    net = space.build_supernet(MIXERS.get("softmax")(space), 10, 3, (), C=4, N=1)
    with pytest.raises(OptionError, match=message):
        SEARCH_OPTIMIZERS.get("bilevel")(net, **kwargs)


def test_warmup_not_shorter_than_the_run_is_refused_before_anything_is_written(tmp_path):
    proc = nas("search", "method=sharp_darts", "space=sharp_darts", *TINY, "search.epochs=5",
               f"out_root={tmp_path}", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and not any(tmp_path.iterdir())
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "optimizer.warmup_epochs=5 is not below search.epochs=5: Cosine Power Annealing needs at least one epoch "
        "after the warm-up; lower optimizer.warmup_epochs or raise search.epochs")


# ------------------------------------------------------------------ a search end to end, and its resume
def test_sharp_search_runs_and_records_the_schedule(tmp_path):
    out = result_line(nas("search", "method=sharp_darts", "space=sharper_darts", *TINY, "search.epochs=3",
                          "optimizer.warmup_epochs=1", "method.mixer.weighting=max_w", f"out_root={tmp_path}"))
    assert out["space"] == "sharper_darts"
    arch = json.loads(open(out["arch_path"]).read())
    assert arch["space"] == "sharper_darts"
    get_space("sharper_darts").arch_from_json(arch)
    lrs = [json.loads(line)["lr"] for line in open(f"{out['run_dir']}/metrics.jsonl") if '"lr"' in line]
    assert lrs == pytest.approx([0.0125500, 0.025, 1e-4], rel=1e-12)  # warm-up 1/2, 2/2, then the last epoch
    assert lrs == pytest.approx([cos_power_lr(0.025, 1e-4, e, 3, 2, 1) for e in range(3)], rel=1e-12)


@pytest.mark.slow
def test_resumed_search_has_the_uninterrupted_learning_rates(tmp_path):
    """Interrupted mid-epoch 2 of a cos_power search and resumed: the final states are bitwise equal and every
    epoch's recorded learning rate is the uninterrupted run's."""
    overrides = ["method=sharp_darts", "space=sharp_darts", "search.epochs=4", "optimizer.warmup_epochs=1",
                 "search.max_steps_per_epoch=2", "search.checkpoint_every_steps=1", "method.mixer.weighting=max_w",
                 *[o for o in TINY if not o.startswith("search.max_steps")]]
    full, resumed, at = interrupted_and_full_states(tmp_path, overrides, crash_at_step=4)
    assert at[0] >= 1
    for k in full["supernet"]:
        assert torch.equal(full["supernet"][k], resumed["supernet"][k]), k
    lr = {}
    for run in ("full", "cut"):
        path = next((tmp_path / run).rglob("metrics.jsonl"))
        lr[run] = [json.loads(line)["lr"] for line in path.read_text().splitlines() if '"lr"' in line]
    assert lr["full"] == lr["cut"] == [cos_power_lr(0.025, 1e-4, e, 4, 2, 1) for e in range(4)]


# ------------------------------------------------------------------ every method on the sharpDARTS spaces
NO_LR_WARMUP = "++optimizer.warmup_epochs=0"  # the helper's runs have 2 epochs (method=sharp_darts warms up for 5)

def test_every_method_composes_on_every_sharp_space():
    """Each method's config (DrNAS's per-space defaults included) composes and passes the composition rules, or is
    refused in the one line the DARTS space gives (a sharpDARTS space adds no refusal of its own)."""
    from nascli.errors import IncompatibleError
    from nascli.search.composition import check_search_config
    from test_rdarts_spaces import METHODS, _cfg
    refused = set()
    for method in METHODS:
        for space in SPACES:
            try:
                check_search_config(_cfg(method, space, None, NO_LR_WARMUP))
            except IncompatibleError as exc:
                with pytest.raises(IncompatibleError) as on_darts:
                    check_search_config(_cfg(method, "darts", None, NO_LR_WARMUP, "space.supernet.C=12"))
                assert str(exc) == str(on_darts.value)
                refused.add(method)
    assert refused == {"gm_nas"}  # its splits at epochs 2, 4, 6 do not fit the helper's 2-epoch run


@pytest.mark.slow
@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("method", sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml")))
def test_every_method_steps_and_derives_on_every_sharp_space(method, space):
    """One step moves the architecture and the magnitude derivation gives an arch of the space (R-DARTS helper)."""
    from test_rdarts_spaces import _step_and_derive_or_refused
    _step_and_derive_or_refused(method, space)
