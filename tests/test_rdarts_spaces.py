"""The R-DARTS spaces S1-S4 (``darts_s1`` .. ``darts_s4``; METHODS.md 8) and the parameter-free share.

Op tables against automl/RobustDARTS src/spaces.py (edges spelled out by hand), supernet parameter counts,
the noise op, derivation on hand-made alphas, sampling, parsing, the parameter-free share of hand-made
cells, the fast cell against the reference cell, evaluation of a derived S4 cell, and every registered
method on every variant (one step + derive, or a one-line refusal).
"""
from __future__ import annotations

import json
import random
from collections import Counter

import pytest
import torch

from helpers import compose_cfg, nas, result_line
from nascli.commands.run import seed_everything
from nascli.errors import BadArchError, IncompatibleError
from nascli.paths import CONF_DIR
from nascli.search.builder import build_search
from nascli.search.composition import check_search_config
from nascli.search.mixers import MIXERS
from nascli.search.optimizers import SEARCH_OPTIMIZERS
from nascli.search.selection import SELECTIONS
from nascli.spaces import get_space, space_names
from nascli.spaces.darts.genotypes_published import get_published
from nascli.spaces.darts.ops import Noise
from nascli.spaces.darts.supernet import copy_reference_to_fast, reduction_layers
from nascli.spaces.lookup import load_arch
from nascli.spaces.param_free import parameter_free_share

VARIANTS = ["darts_s1", "darts_s2", "darts_s3", "darts_s4"]
SKIP, SEP3, NONE, NOISE = "skip_connect", "sep_conv_3x3", "none", "noise"
MAX, AVG, DIL3, DIL5 = "max_pool_3x3", "avg_pool_3x3", "dil_conv_3x3", "dil_conv_5x5"
CONCAT = "normal_concat=[2, 3, 4, 5], reduce_concat=[2, 3, 4, 5]"


def genotype(normal: list[tuple[str, int]], reduce: list[tuple[str, int]]) -> str:
    return f"Genotype(normal={normal!r}, reduce={reduce!r}, {CONCAT})"


# ---------------------------------------------------------------------------------------------- op tables
def test_variants_are_registered_with_their_yaml():
    assert set(VARIANTS) <= set(space_names())
    for name in VARIANTS:
        cfg = compose_cfg("search", [f"space={name}"])
        assert cfg.space.name == name
        assert cfg.space.supernet.layers == 8 and cfg.space.network.C == 36  # the DARTS yaml underneath


def test_s1_edges_as_in_robust_darts():
    """automl/RobustDARTS src/spaces.py primitives_1, a few edges by hand (DARTS edge order 0->2, 1->2, 0->3, ...)."""
    s1 = get_space("darts_s1")
    normal, reduce = s1.edge_ops("normal"), s1.edge_ops("reduce")
    assert len(normal) == len(reduce) == 14
    assert normal[0] == (SKIP, DIL3)
    assert normal[1] == normal[2] == (SKIP, DIL5)
    assert normal[3] == (SKIP, SEP3)
    assert normal[5] == normal[10] == (MAX, SKIP)
    assert normal[12] == normal[13] == (DIL3, DIL5)
    assert reduce[0] == reduce[2] == reduce[3] == (MAX, AVG)
    assert reduce[1] == (MAX, DIL3)
    assert reduce[4] == (SKIP, DIL5)
    assert reduce[6] == (MAX, SEP3)
    assert reduce[7] == (SKIP, DIL3)
    assert reduce[13] == (SKIP, DIL5)
    assert sum(SKIP in ops for ops in normal) == 12  # every normal edge but the last two offers skip
    assert Counter(ops[0] for ops in reduce) == {MAX: 8, SKIP: 6}
    assert s1.ops == ("op0", "op1")  # columns mean different ops on different edges
    assert s1.none_index is None


@pytest.mark.parametrize("name, ops", [("darts_s2", (SKIP, SEP3)), ("darts_s3", (NONE, SKIP, SEP3)),
                                       ("darts_s4", (NOISE, SEP3))])
def test_uniform_spaces_offer_the_same_ops_on_every_edge(name, ops):
    space = get_space(name)
    assert space.ops == ops
    for ct in ("normal", "reduce"):
        assert space.edge_ops(ct) == [ops] * 14
    assert space.none_index == (0 if NONE in ops else None)


@pytest.mark.parametrize("name, k", [("darts_s1", 2), ("darts_s2", 2), ("darts_s3", 3), ("darts_s4", 2)])
def test_alpha_is_edges_by_ops_per_edge(name, k):
    space = get_space(name)
    mixer = MIXERS.get("softmax")(space)
    assert {ct: tuple(a.shape) for ct, a in mixer.alphas.items()} == {"normal": (14, k), "reduce": (14, k)}


# ------------------------------------------------------------------------------------------------ supernet
def _supernet(name: str, impl: str = "reference", C: int = 8, layers: int = 5, in_channels: int = 1):
    space = get_space(name)
    return space.build_supernet(MIXERS.get("softmax")(space), 10, in_channels, C=C, layers=layers, impl=impl)


def _weights(net) -> int:
    return sum(p.numel() for p in net.weight_parameters())


def test_supernet_builds_only_each_edges_ops():
    net = _supernet("darts_s1")
    for cell in net.cells:
        table = get_space("darts_s1").edge_ops(cell.cell_type)
        assert [len(ops) for ops in cell.edges] == [2] * 14
        for e, ops in enumerate(cell.edges):
            for name, module in zip(table[e], ops):
                if name in (MAX, AVG):  # pooling + the search BN (affine=False)
                    assert isinstance(module[1], torch.nn.BatchNorm2d) and not module[1].affine
                if name == DIL5:
                    assert module[1].kernel_size == (5, 5) and module[1].dilation == (2, 2)


def test_parameter_counts():
    """S3 adds only ``none`` to S2 (no parameters); S4 replaces skip by parameter-free noise, so it lacks the
    stride-2 skips' FactorizedReduce: 8 strided edges per reduce cell, each two 1x1 convs C x C/2."""
    s2, s3, s4 = (_weights(_supernet(n)) for n in ("darts_s2", "darts_s3", "darts_s4"))
    assert s2 == s3
    assert reduction_layers(5) == (1, 3)  # C = 8 doubles to 16 in cell 1 and to 32 in cell 3
    assert s2 - s4 == 8 * 16 * 16 + 8 * 32 * 32 == 10240
    assert sum(p.numel() for p in Noise(2).parameters()) == 0
    net4 = _supernet("darts_s4")
    noise_ops = [op for cell in net4.cells for ops in cell.edges for op in ops if isinstance(op, Noise)]
    assert len(noise_ops) == 5 * 14 and all(not list(op.parameters()) for op in noise_ops)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_supernet_runs_on_one_channel_28x28(name, impl):
    torch.manual_seed(0)
    net = _supernet(name, impl)
    logits = net(torch.randn(2, 1, 28, 28))
    assert logits.shape == (2, 10)
    logits.sum().backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in net.arch_parameters())


@pytest.mark.parametrize("name", ["darts_s1", "darts_s3"])
def test_fast_cell_equals_reference_cell(name):
    """Same function, gradients and BN running statistics (float64); S1 has pools and skips in different
    columns on different edges, S3 has ``none``."""
    torch.manual_seed(0)
    ref = _supernet(name, "reference", C=4, layers=3, in_channels=3).double()
    fast = _supernet(name, "fast", C=4, layers=3, in_channels=3).double()
    with torch.no_grad():
        for a in ref.arch_parameters():
            a.normal_()
    copy_reference_to_fast(ref, fast)
    x = torch.randn(3, 3, 10, 10, dtype=torch.float64)
    y_ref, y_fast = ref(x), fast(x)
    torch.testing.assert_close(y_fast, y_ref)
    y_ref.square().sum().backward()
    y_fast.square().sum().backward()
    for a, b in zip(fast.arch_parameters(), ref.arch_parameters()):
        torch.testing.assert_close(a.grad, b.grad)
    ref_state, fast_state = ref.state_dict(), fast.state_dict()
    for key in ref_state:
        if "running" in key:
            torch.testing.assert_close(fast_state[key], ref_state[key])


def test_s4_supernet_output_is_random_through_the_noise_edges():
    net = _supernet("darts_s4").eval()
    x = torch.randn(2, 1, 28, 28)
    assert not torch.equal(net(x), net(x))


# -------------------------------------------------------------------------------------------------- noise
def test_noise_statistics_and_shape():
    x = torch.full((8, 16, 33, 33), 7.0, requires_grad=True)
    out = Noise(2)(x)
    assert out.shape == (8, 16, 17, 17)  # x[:, :, ::2, ::2]
    assert abs(out.mean().item()) < 0.02 and abs(out.std().item() - 1.0) < 0.02  # 36992 samples: se 0.005
    assert Noise(1)(x).shape == x.shape
    assert not torch.equal(Noise(1)(x), Noise(1)(x))  # fresh samples on every call
    assert not out.requires_grad  # no path back to x
    cl = torch.randn(2, 4, 6, 6).contiguous(memory_format=torch.channels_last)
    assert Noise(1)(cl).is_contiguous(memory_format=torch.channels_last)


# ---------------------------------------------------------------------------------------------- derivation
def _alphas(rows: dict[int, list[float]], k: int, default: list[float] | None = None) -> torch.Tensor:
    a = torch.tensor([default or [0.0] * k] * 14)
    for e, row in rows.items():
        a[e] = torch.tensor(row)
    return a


def test_s3_derivation_never_picks_none_even_when_none_dominates():
    """none (column 0) is the largest on every edge; edges rank by their best non-none op, ops by argmax of
    skip/sep. Node 2: edges 0, 1; node 3: edges 2, 3, 4; node 4: 5..8; node 5: 9..13."""
    space = get_space("darts_s3")
    rows = {0: [9.0, 1.0, 2.0], 1: [9.0, 3.0, 0.0],            # node 2: 1 (skip 3.0) then 0 (sep 2.0)
            2: [9.0, 0.5, 0.1], 3: [9.0, 0.2, 0.9], 4: [9.0, 0.4, 0.3],  # node 3: 3 (0.9) then 2 (0.5)
            5: [9.0, 2.0, 1.0], 8: [9.0, 1.0, 3.0],            # node 4: 8 (3.0) then 5 (2.0)
            13: [9.0, 5.0, 4.0], 9: [9.0, 0.0, 4.5]}           # node 5: 13 (5.0) then 9 (4.5)
    normal = _alphas(rows, 3, [9.0, 0.0, 0.0])
    arch = space.discretize({"normal": normal, "reduce": normal})
    assert arch.normal == ((SKIP, 1), (SEP3, 0), (SEP3, 1), (SKIP, 0), (SEP3, 3), (SKIP, 0), (SKIP, 4), (SEP3, 0))
    assert NONE not in {op for ct in ("normal", "reduce") for op, _ in arch.cell(ct)}


def test_ties_keep_the_lower_input_and_the_lower_column():
    """All-equal alphas: every node keeps inputs in order (stable sort) and column 0 of each edge."""
    zero = {ct: torch.zeros(14, 2) for ct in ("normal", "reduce")}
    s2 = get_space("darts_s2").discretize(zero)
    assert s2.normal == s2.reduce == ((SKIP, 0), (SKIP, 1)) * 4
    s1 = get_space("darts_s1").discretize(zero)
    # column 0 of the kept edges 0, 1 (node 2), 2, 3 (node 3), 5, 6 (node 4), 9, 10 (node 5)
    assert s1.normal == ((SKIP, 0), (SKIP, 1), (SKIP, 0), (SKIP, 1), (MAX, 0), (SKIP, 1), (SKIP, 0), (MAX, 1))
    assert s1.reduce == ((MAX, 0), (MAX, 1), (MAX, 0), (MAX, 1), (MAX, 0), (MAX, 1), (MAX, 0), (MAX, 1))


def test_s1_columns_name_each_edges_own_ops():
    """Column 1 favoured everywhere: each kept edge gets its own second op; edge scores pick the edges."""
    space = get_space("darts_s1")
    second = {ct: torch.tensor([[0.0, 1.0]] * 14) for ct in ("normal", "reduce")}
    scores = torch.zeros(14)
    scores[[1, 4, 5, 7, 12, 13]] = 1.0  # kept: node 2 edges 1, 0; node 3: 4, 2; node 4: 5, 7; node 5: 12, 13
    arch = space.discretize(second, {"normal": scores, "reduce": scores})
    assert arch.normal == ((DIL5, 1), (DIL3, 0), (DIL3, 2), (DIL5, 0), (SKIP, 0), (SEP3, 2), (DIL5, 3), (DIL5, 4))
    pairs = space.discretize(second, rule="pairs")  # GDAS pair rule: top-2 (op, input) pairs of the node
    assert pairs.reduce[:2] == ((AVG, 0), (DIL3, 1))


def test_wrong_score_shape_is_refused():
    with pytest.raises(ValueError, match=r"expected \(14, 3\)"):
        get_space("darts_s3").discretize({ct: torch.zeros(14, 8) for ct in ("normal", "reduce")})


# ----------------------------------------------------------------------------------- sampling and parsing
@pytest.mark.parametrize("name", VARIANTS)
def test_random_arch_is_uniform_over_what_the_rule_can_produce(name):
    space, rng = get_space(name), random.Random(0)
    counts: Counter = Counter()
    for _ in range(300):
        arch = space.random_arch(rng)
        assert space.parse_arch(arch.to_string()) == arch and arch.space == name
        for ct in ("normal", "reduce"):
            table = space.edge_ops(ct)
            for k, (op, src) in enumerate(arch.cell(ct)):
                e = [x.index for x in space.edges(ct) if (x.src, x.dst) == (src, 2 + k // 2)][0]
                assert op in table[e] and op != NONE
                counts[(ct, e, op)] += 1
            assert len({src for _, src in arch.cell(ct)[0:2]}) == 2  # two distinct inputs per node
    # edge 0 (0 -> 2) is always kept: each of its two non-none ops about half of 300 times
    for ct in ("normal", "reduce"):
        ops = [o for o in space.edge_ops(ct)[0] if o != NONE]
        assert all(110 < counts[(ct, 0, o)] < 190 for o in ops), counts


def test_parsing_checks_each_edges_ops():
    s1, s2 = get_space("darts_s1"), get_space("darts_s2")
    with pytest.raises(BadArchError) as exc:
        s2.parse_arch("darts_v2")  # a published cell with ops S2 does not offer
    msg = str(exc.value)
    assert "\n" not in msg and "darts_s2" in msg and "skip_connect, sep_conv_3x3" in msg
    reduce = [(AVG, 0), (DIL3, 1), (MAX, 0), (MAX, 1), (AVG, 0), (SEP3, 1), (MAX, 0), (DIL5, 4)]
    normal = [(SKIP, 0), (DIL5, 1), (DIL5, 0), (SEP3, 1), (MAX, 0), (SEP3, 1), (DIL3, 3), (DIL5, 4)]
    assert s1.parse_arch(genotype(normal, reduce)).normal == tuple(normal)
    bad = genotype([(SEP3, 0), *normal[1:]], reduce)  # normal edge 0 offers {skip, dil3}
    with pytest.raises(BadArchError, match=r"op 'sep_conv_3x3' on normal edge 0 \(0 -> 2\).*skip_connect, dil_conv_3x3"):
        s1.parse_arch(bad)


def test_arch_json_names_the_variant_and_lookup_finds_it(tmp_path):
    s4 = get_space("darts_s4")
    arch = s4.random_arch(random.Random(1))
    data = arch.to_json()
    assert data["space"] == "darts_s4"
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(data))
    space, loaded = load_arch(str(path), "nb201")
    assert space.name == "darts_s4" and loaded == arch
    noisy = genotype([(NOISE, 0), (SEP3, 1)] * 4, [(SEP3, 0), (NOISE, 1)] * 4)
    assert load_arch(noisy, "nb201")[0].name == "darts_s4"  # only S4 has noise
    with pytest.raises(BadArchError, match="not 'darts_s3'"):
        get_space("darts_s3").arch_from_json(data)


def test_no_ground_truth_and_surrogate_says_why():
    s4 = get_space("darts_s4")
    arch = s4.random_arch(random.Random(0))
    assert s4.ground_truth(arch, "cifar10") is None
    assert s4.surrogate_estimate(arch) == {
        "nb301": None, "nb301_note": "n/a: NB301 only knows the 8 DARTS ops, this darts_s4 cell holds noise"}
    s2 = get_space("darts_s2")
    est = s2.surrogate_estimate(s2.random_arch(random.Random(0)))  # an S2 cell is a DARTS-space cell
    assert "nb301" in est and "n/a" not in est.get("nb301_note", "")


# ------------------------------------------------------------------------------------ parameter-free share
def test_param_free_share_of_hand_made_cells():
    s2 = get_space("darts_s2")
    all_skip = s2.parse_arch(genotype([(SKIP, 0), (SKIP, 1)] * 4, [(SKIP, 0), (SKIP, 1)] * 4))
    assert parameter_free_share(s2, all_skip) == {"normal": 1.0, "reduce": 1.0}
    mixed = s2.parse_arch(genotype([(SKIP, 0), (SEP3, 1)] * 3 + [(SEP3, 0), (SEP3, 1)],
                                   [(SEP3, 0), (SEP3, 1)] * 4))
    assert parameter_free_share(s2, mixed) == {"normal": 3 / 8, "reduce": 0.0}
    s4 = get_space("darts_s4")
    noisy = s4.parse_arch(genotype([(NOISE, 0), (SEP3, 1)] * 4, [(NOISE, 0), (NOISE, 1)] * 4))
    assert parameter_free_share(s4, noisy) == {"normal": 0.5, "reduce": 1.0}
    darts = get_space("darts")  # darts_v2: normal 2 skips of 8; reduce only max pools and skips
    assert parameter_free_share(darts, get_published("darts_v2")) == {"normal": 0.25, "reduce": 1.0}
    nb201 = get_space("nb201")
    cell = nb201.parse_arch("|skip_connect~0|+|none~0|avg_pool_3x3~1|+|nor_conv_3x3~0|nor_conv_1x1~1|skip_connect~2|")
    assert parameter_free_share(nb201, cell) == {"cell": 4 / 6}


@pytest.mark.parametrize("name", space_names())
def test_every_space_gives_a_param_free_share(name):
    space = get_space(name)
    assert space.parameter_free_ops
    arch = space.random_arch(random.Random(0))
    share = parameter_free_share(space, arch)
    # one share per cell type that carries ops (sisr_trilevel's network and kernel levels carry none)
    assert share and set(share) == set(space.cell_ops(arch)) <= set(space.cell_types)
    assert all(0.0 <= v <= 1.0 for v in share.values())


@pytest.mark.parametrize("space, sizes", [("darts_s2", ["space.supernet.C=4", "space.supernet.layers=3"]),
                                          ("nb201", ["space.supernet.C=4", "space.supernet.N=1"])])
def test_search_logs_param_free_share_per_epoch(tmp_path, space, sizes):
    from nascli.commands.search import SearchSession

    cfg = compose_cfg("search", [f"space={space}", *sizes, "dataset=synthetic", "dataset.num_train=32",
                                 "dataset.num_test=16", "dataset.image_size=8", "search.batch_size=8",
                                 "search.epochs=2", "search.max_steps_per_epoch=1", "num_threads=1",
                                 f"out_root={tmp_path}"])
    session = SearchSession(cfg)
    session.execute()
    metrics = session.run.read_metrics()
    assert len(metrics) == 2
    for record in metrics:
        arch = session.space.parse_arch(record["arch"])
        assert record["param_free_share"] == parameter_free_share(session.space, arch)
        assert set(record["param_free_share"]) == set(session.space.cell_types)


# ------------------------------------------------------------------------------------------------- evaluate
def test_derived_s4_cell_trains_with_nas_evaluate(tmp_path):
    """A noise cell on 1-channel 28x28 images: one quick training step and a test pass through NetworkCIFAR."""
    s4 = get_space("darts_s4")
    arch = s4.discretize({ct: torch.tensor([[1.0, 0.0]] * 14) for ct in ("normal", "reduce")})  # all noise
    assert {op for op, _ in arch.normal} == {NOISE}
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(arch.to_json()))
    res = result_line(nas("evaluate", f"arch={path}", "space.network.C=4", "space.network.layers=3",
                          "dataset.channels=1", "dataset.image_size=28", "dataset.num_train=16",
                          "dataset.num_test=8", "protocol.epochs=1", "protocol.max_steps_per_epoch=1",
                          "protocol.batch_size=8", "num_threads=1", f"out_root={tmp_path}"))
    assert res["status"] == "ok" and res["space"] == "darts_s4" and "noise" in res["arch"]


# --------------------------------------------------------------------------------- methods on the variants
METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
TINY = ["space.supernet.C=4", "space.supernet.layers=3", "dataset=synthetic", "dataset.num_train=32",
        "dataset.num_test=16", "dataset.image_size=8", "search.batch_size=8", "search.epochs=2",
        "search.max_steps_per_epoch=1", "num_threads=1", "optimizer.arch_start_epoch=0"]


def _cfg(method: str, space: str, optimizer: str | None = None, *extra: str):
    return compose_cfg("search", [f"method={method}", f"space={space}", *TINY,
                                  *([f"optimizer={optimizer}"] if optimizer else []), *extra])


def _step_and_derive_or_refused(method: str, space: str, optimizer: str | None = None) -> None:
    """One search step (the architecture moves) and a magnitude derivation; or a one-line refusal that the same
    method and optimizer also get on the DARTS space (a variant adds no refusal of its own; it may run where the
    DARTS space refuses, e.g. DrNAS's one-stage recipe on the variants widens nothing)."""
    cfg = _cfg(method, space, optimizer)
    try:
        check_search_config(cfg)
    except IncompatibleError as exc:
        assert "\n" not in str(exc)
        with pytest.raises(IncompatibleError) as on_darts:
            # C=12: every partial-channel K of the DARTS-space recipes divides it (drnas: 6, 4)
            check_search_config(_cfg(method, "darts", optimizer, "space.supernet.C=12"))
        assert str(exc) == str(on_darts.value)
        return
    seed_everything(0)
    setup = build_search(cfg, torch.device("cpu"))
    arch_before = [p.detach().clone() for p in setup.supernet.arch_parameters()]
    setup.engine.start_epoch(0)
    setup.engine.run_epoch()
    assert any(not torch.equal(a, b) for a, b in zip(arch_before, setup.supernet.arch_parameters()))
    arch = SELECTIONS.get("magnitude")(setup.selection_context()).arch
    assert arch.space == space and setup.space.parse_arch(arch.to_string()) == arch


@pytest.mark.parametrize("space", VARIANTS)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_steps_and_derives_on_every_variant(method, space):
    """Each registered method with its own optimizer."""
    _step_and_derive_or_refused(method, space)


@pytest.mark.slow
@pytest.mark.parametrize("space", ["darts_s2", "darts_s3"])
@pytest.mark.parametrize("optimizer", SEARCH_OPTIMIZERS.names())
@pytest.mark.parametrize("method", METHODS)
def test_every_method_and_optimizer_on_s2_s3(method, optimizer, space):
    _step_and_derive_or_refused(method, space, optimizer)
