"""sisr_trilevel (nascli/spaces/sisr): shapes, hand-counted parameters, arch JSON/text round trips, derivation
of all three levels, the network-level sorting rule, arch parameters and their gradients, mixers."""
from __future__ import annotations

import json
import random

import pytest
import torch

from nascli.errors import BadArchError, IncompatibleError, OptionError
from nascli.search.mixers import MIXERS
from nascli.spaces import get_space, space_names
from nascli.spaces.lookup import load_arch
from nascli.spaces.sisr.arch import (SISRArch, candidate_cost, network_candidates, search_cells_for,
                                     sort_network_candidates)
from nascli.spaces.sisr.ops import SISR_OPS

SPACE = get_space("sisr_trilevel")
#: mixers whose rule works on rows of any width (the kernel and network levels are not one column per op)
LEVEL_MIXERS = ("softmax", "sparsestmax", "pc_softmax")


def supernet(mixer_name: str = "softmax", scale: int = 2, **opts):
    mixer = MIXERS.get(mixer_name)(SPACE)
    return SPACE.build_supernet(mixer, scale=scale, in_channels=3, **{"C": 4, "search_cells": 1, **opts})


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_registered_for_super_resolution():
    assert "sisr_trilevel" in space_names()
    assert SPACE.tasks == ("super_resolution",)
    assert SPACE.cell_types == ("cell", "kernel", "network")
    assert SPACE.ops == SISR_OPS and "none" in SISR_OPS and "skip_connect" in SISR_OPS


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shapes(scale):
    torch.manual_seed(0)
    lr = torch.rand(2, 3, 6, 5)
    assert supernet(scale=scale)(lr).shape == (2, 3, 6 * scale, 5 * scale)
    net = SPACE.build_network(SPACE.parse_arch("ops=conv_3x3,skip_connect,res_block_3x3;widths=0.5,1;lr=1;hr=1"),
                              scale=scale, in_channels=3, C=4)
    assert net(lr).shape == (2, 3, 6 * scale, 5 * scale)


def test_parameter_counts_by_hand():
    # C = 4, in 3: head 3x3 conv 3 -> 4: 3*4*9 + 4 = 112; tail 4 -> 3: 4*3*9 + 3 = 111
    # x2 upsampler: conv 4 -> 16: 4*16*9 + 16 = 592; x3: conv 4 -> 36: 4*36*9 + 36 = 1332
    # cell A: widths [0.5, 1] -> channels 4 -> 2 -> 4 -> 4: conv_3x3 4 -> 2: 4*2*9 + 2 = 74; skip, none: 0
    arch = SPACE.parse_arch("ops=conv_3x3,skip_connect,none;widths=0.5,1;lr=1;hr=0")
    assert n_params(SPACE.build_network(arch, scale=2, in_channels=3, C=4)) == 112 + 74 + 592 + 111
    # cell B: widths [0.25, 0.75] -> 4 -> 1 -> 3 -> 4: sep_conv 4 -> 1: 4*9 (depthwise, no bias) + (4*1 + 1) = 41;
    # res_block 1 -> 3: (1*3*9 + 3) + (3*3*9 + 3) = 114; conv_5x5 3 -> 4: 3*4*25 + 4 = 304 -> 459
    arch = SPACE.parse_arch("ops=sep_conv_3x3,res_block_3x3,conv_5x5;widths=0.25,0.75;lr=0;hr=1")
    assert n_params(SPACE.build_network(arch, scale=3, in_channels=3, C=4)) == 112 + 1332 + 459 + 111
    # x4: two x2 stages; no cells
    arch = SPACE.parse_arch("ops=conv_3x3,conv_3x3,conv_3x3;widths=1,1;lr=0;hr=0")
    assert n_params(SPACE.build_network(arch, scale=4, in_channels=3, C=4)) == 112 + 2 * 592 + 111


def keys_cubic(t: float, a: float = -0.5) -> float:
    """Keys' cubic convolution kernel."""
    t = abs(t)
    if t <= 1:
        return (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1
    return a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a if t < 2 else 0.0


def test_global_residual_is_bicubic_and_fresh_networks_start_near_it():
    # with a zero tail the output is bicubic(x) with Keys' a = -0.5 (MATLAB imresize's kernel)
    torch.manual_seed(0)
    lr = torch.rand(1, 3, 6, 6)
    for scale in (2, 3):
        net = SPACE.build_network(SPACE.parse_arch("sisr_baseline"), scale=scale, in_channels=3, C=4)
        fresh = net(lr).detach()
        torch.nn.init.zeros_(net.frame.tail.weight)
        y = net(lr).detach()
        assert 0 < (fresh - y).abs().max() < 2 / 255  # a fresh net is within 2 grey levels of bicubic
        # an interior HR pixel by hand: row/column i of the HR grid sits at (i + 0.5) / s - 0.5 on the LR grid
        i = 2 * scale + 1
        pos = (i + 0.5) / scale - 0.5
        base = int(pos // 1)
        taps = [(base + d, keys_cubic(pos - (base + d))) for d in (-1, 0, 1, 2)]
        value = sum(wr * wc * lr[0, 0, r, c] for r, wr in taps for c, wc in taps)
        assert float(y[0, 0, i, i]) == pytest.approx(float(value), abs=1e-5)
    plain = SPACE.build_network(SPACE.parse_arch("sisr_baseline"), scale=2, in_channels=3, C=4,
                                global_residual="none")
    assert plain.frame.tail.weight.abs().sum() > 0  # without the residual the tail is not zeroed
    torch.nn.init.zeros_(plain.frame.tail.weight)
    torch.nn.init.zeros_(plain.frame.tail.bias)
    assert torch.equal(plain(lr), torch.zeros(1, 3, 12, 12))


def test_arch_json_and_text_round_trip(tmp_path):
    arch = SPACE.parse_arch("ops=dil_conv_3x3,sep_conv_3x3,skip_connect;widths=0.75,0.25;lr=2;hr=1")
    data = json.loads(json.dumps(arch.to_json()))
    assert data["space"] == "sisr_trilevel" and data["lr_cells"] == 2 and data["hr_cells"] == 1
    assert SPACE.arch_from_json(data) == arch
    assert SPACE.parse_arch(arch.to_string()) == arch
    assert SPACE.parse_arch(json.dumps(data)) == arch
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(data))
    space, loaded = load_arch(str(path), "nb201")
    assert space.name == "sisr_trilevel" and loaded == arch


def test_named_baseline_is_reachable():
    space, arch = load_arch("sisr_baseline", "nb201")
    assert space.name == "sisr_trilevel"
    assert arch == SISRArch(("conv_3x3",) * 3, (1.0, 1.0), 2, 0)
    # C = 16 (the yaml's network): head 448 + 2 cells * 3 * (16*16*9 + 16) + x2 up 9232 + tail 435
    net = SPACE.build_network(arch, scale=2, in_channels=3, C=16)
    assert n_params(net) == 448 + 2 * 3 * 2320 + (16 * 64 * 9 + 64) + 435


@pytest.mark.parametrize("text, message", [
    ("ops=conv_3x3,conv_3x3;widths=1,1;lr=1;hr=0", "needs 3 ops"),
    ("ops=conv_3x3,conv_3x3,max_pool;widths=1,1;lr=1;hr=0", "needs 3 ops"),
    ("ops=conv_3x3,conv_3x3,conv_3x3;widths=1,0.3;lr=1;hr=0", "needs 2 widths"),
    ("ops=conv_3x3,conv_3x3,conv_3x3;widths=1,1;lr=x;hr=0", "lr='x' is not a whole number"),
    ("ops=conv_3x3,conv_3x3,conv_3x3;widths=1,1;lr=-1;hr=0", "lr_cells=-1 is not a count"),
    ("resnet", "not a sisr_trilevel arch"),
])
def test_bad_archs(text, message):
    with pytest.raises(BadArchError, match=message):
        SPACE.parse_arch(text)


def test_input_sizes():
    assert SPACE.input_size_problem(1) is None and SPACE.input_size_problem(7) is None
    assert "at least 1x1" in SPACE.input_size_problem(0)
    assert supernet(scale=3)(torch.rand(1, 3, 1, 1)).shape == (1, 3, 3, 3)


def test_bad_network_options():
    arch = SPACE.parse_arch("sisr_baseline")
    with pytest.raises(OptionError, match="scale 5 is not supported by space sisr_trilevel; valid scales: 2, 3, 4"):
        SPACE.build_network(arch, scale=5, in_channels=3)
    with pytest.raises(OptionError, match="unknown sisr_trilevel global_residual 'nearest'"):
        supernet(global_residual="nearest")
    with pytest.raises(OptionError, match="impl='fast'; valid choices: reference"):
        supernet(impl="fast")


# ----------------------------------------------------------------------------- the network level
def test_network_candidates():
    assert network_candidates(2) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0)]
    assert [search_cells_for(len(network_candidates(s))) for s in range(6)] == list(range(6))
    with pytest.raises(ValueError, match="not \\(S\\+1\\)\\(S\\+2\\)/2"):
        search_cells_for(4)
    assert candidate_cost(2, 1) == 6


def test_sorting_rule_by_hand():
    cands = network_candidates(2)  # costs 0, 4, 8, 1, 5, 2
    w = torch.tensor([0.20, 0.25, 0.10, 0.22, 0.0, 0.23])
    # within 0.05 of 0.25: indices 0, 1, 3, 5 -> by cost (0, 4, 1, 2): 0, 3, 5, 1; then 2 (0.1), 4 (0.0)
    assert sort_network_candidates(w, cands, 0.05) == [0, 3, 5, 1, 2, 4]
    # tolerance 0: the argmax first, the rest by weight
    assert sort_network_candidates(w, cands, 0.0) == [1, 5, 3, 0, 2, 4]
    # equal cost (4 LR cells vs 1 HR cell, S = 4): fewer HR cells first
    c4 = network_candidates(4)
    w4 = torch.zeros(len(c4))
    w4[c4.index((0, 1))] = 1.0
    w4[c4.index((4, 0))] = 1.0
    assert sort_network_candidates(w4, c4, 0.0)[:2] == [c4.index((4, 0)), c4.index((0, 1))]


def hand_scores(network: list[float]) -> dict[str, torch.Tensor]:
    cell = torch.zeros(3, len(SISR_OPS))
    cell[0, SISR_OPS.index("none")] = 9.0  # none is never derived: the next best op wins
    cell[0, SISR_OPS.index("conv_5x5")] = 2.0
    cell[1, SISR_OPS.index("skip_connect")] = 1.0
    cell[2, SISR_OPS.index("res_block_3x3")] = 0.5
    kernel = torch.tensor([[0.1, 0.6, 0.2, 0.1], [0.0, 0.0, 0.0, 1.0]])
    return {"cell": cell, "kernel": kernel, "network": torch.tensor([network])}


def test_discretize_all_levels_by_hand():
    arch = SPACE.discretize(hand_scores([0.30, 0.0, 0.0, 0.34, 0.0, 0.38]))
    # default rule: 0 (0.30) is not within 0.05 of 0.38; 3 (0.34) and 5 (0.38) are -> cheaper (1, 0)
    assert arch == SISRArch(("conv_5x5", "skip_connect", "res_block_3x3"), (0.5, 1.0), 1, 0)
    assert SPACE.discretize(hand_scores([0.30, 0.0, 0.0, 0.34, 0.0, 0.38]), rule="argmax").lr_cells == 2
    assert SPACE.skip_count(arch) == 1
    assert SPACE.cell_ops(arch) == {"cell": ["conv_5x5", "skip_connect", "res_block_3x3"]}
    with pytest.raises(BadArchError, match="unknown sisr_trilevel derivation rule 'pairs'"):
        SPACE.discretize(hand_scores([1, 0, 0, 0, 0, 0]), rule="pairs")
    bad = hand_scores([1, 0, 0, 0])  # 4 is not (S+1)(S+2)/2
    with pytest.raises(IncompatibleError, match="network scores: 4 network-level scores"):
        SPACE.discretize(bad)
    with pytest.raises(IncompatibleError, match="kernel scores of shape \\(2, 4\\), got None"):
        SPACE.discretize({"cell": bad["cell"], "network": bad["network"]})


def test_random_arch_builds():
    rng = random.Random(3)
    for _ in range(5):
        arch = SPACE.random_arch(rng)
        assert "none" not in arch.ops and arch.lr_cells + arch.hr_cells <= 2
        assert SPACE.parse_arch(arch.to_string()) == arch


# ----------------------------------------------------------------------------- the supernet
@pytest.mark.parametrize("mixer", ["softmax", "sparsestmax"])
def test_arch_parameters_cover_every_level_with_gradients(mixer):
    torch.manual_seed(0)
    net = supernet(mixer, search_cells=1)
    alphas = net.mixer.alphas
    shapes = {ct: tuple(alphas[ct].shape) for ct in alphas}
    assert shapes == {"cell": (3, 7), "kernel": (2, 4), "network": (1, 3)}
    ids = {id(p) for p in net.arch_parameters()}
    assert all(id(alphas[ct]) in ids for ct in SPACE.cell_types)
    assert not ids & {id(p) for p in net.weight_parameters()}
    net(torch.rand(2, 3, 6, 6)).square().mean().backward()
    for ct in SPACE.cell_types:
        assert alphas[ct].grad is not None and alphas[ct].grad.abs().sum() > 0, ct


@pytest.mark.parametrize("name", sorted(MIXERS.names()))
def test_every_mixer_builds_or_is_refused(name):
    torch.manual_seed(0)
    if name not in LEVEL_MIXERS:
        refusal = "cannot mix the sisr_trilevel kernel level: it has 4 choices, .* use method.mixer.name=softmax"
        with pytest.raises(IncompatibleError, match=refusal):
            supernet(name)
        return
    net = supernet(name)
    y = net(torch.rand(1, 3, 5, 5))
    assert y.shape == (1, 3, 10, 10) and torch.isfinite(y).all()
    scores, _ = net.mixer.selection_scores()
    assert isinstance(SPACE.discretize(scores), SISRArch)


def test_one_hot_weights_compute_one_path_only():
    # sparsestmax at r = 1: every level one-hot; only the chosen candidate's modules run
    torch.manual_seed(0)
    net = supernet("sparsestmax", search_cells=2)
    net.mixer.on_epoch_start(1, 2)
    with torch.no_grad():
        net.mixer.alphas["network"].copy_(torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 0.0]]))  # (1, 1)
    ran = []
    for name, mod in net.named_modules():
        if name.count(".") == 1 and name.split(".")[0] in ("lr_cells", "ups"):
            mod.register_forward_hook(lambda *_, n=name: ran.append(n))
        if name.count(".") == 2 and name.startswith("hr_cells"):
            mod.register_forward_hook(lambda *_, n=name: ran.append(n))
    net(torch.rand(1, 3, 4, 4))
    assert ran == ["lr_cells.0", "ups.1", "hr_cells.1.0"]
    arch = SPACE.discretize(net.mixer.selection_scores()[0])
    assert (arch.lr_cells, arch.hr_cells) == (1, 1)


def test_edge_parts():
    from nascli.search.edge_parts import method_parts
    mixer = MIXERS.get("softmax")(SPACE)
    with pytest.raises(IncompatibleError, match="narrow the op width"):
        SPACE.build_supernet(mixer, scale=2, in_channels=3, edge_parts=method_parts(partial_channels=2), C=4,
                             search_cells=1)
    # the DARTS- auxiliary skip adds beta * x on every slot: with every op weight 0 each slot is beta * x
    torch.manual_seed(0)
    mixer = MIXERS.get("softmax")(SPACE)
    net = SPACE.build_supernet(mixer, scale=2, in_channels=3, edge_parts=method_parts(aux_skip=True), C=4,
                               search_cells=1)
    assert net.edge_part("aux_skip") is not None
    cell = net.lr_cells[0]
    x = torch.rand(1, 4, 5, 5)
    w = mixer.edge_weights("cell")
    w.weights = torch.zeros_like(w.weights)
    ones = [torch.ones(1, 4, 1, 1)] * 2
    assert torch.allclose(cell(x, w, ones), x + 0.2 * x)


def one_hot_alphas(net, arch: SISRArch) -> None:
    """Alphas whose sparsestmax at r = 1 is one-hot on ``arch`` at every level."""
    from nascli.spaces.sisr.arch import WIDTH_CHOICES
    alphas = net.mixer.alphas
    with torch.no_grad():
        for ct in alphas:
            alphas[ct].zero_()
        for k, op in enumerate(arch.ops):
            alphas["cell"][k, SISR_OPS.index(op)] = 1.0
        for k, w in enumerate(arch.widths):
            alphas["kernel"][k, WIDTH_CHOICES.index(w)] = 1.0
        alphas["network"][0, net.candidates.index((arch.lr_cells, arch.hr_cells))] = 1.0


@pytest.mark.parametrize("text", ["ops=sep_conv_3x3,res_block_3x3,conv_5x5;widths=0.25,0.75;lr=1;hr=1",
                                  "ops=dil_conv_3x3,skip_connect,res_block_3x3;widths=0.5,0.25;lr=2;hr=0",
                                  "ops=res_block_3x3,none,conv_3x3;widths=0.75,0.5;lr=0;hr=2"])
def test_one_hot_supernet_is_its_inherited_discrete_network(text):
    # sparsestmax at r = 1 makes every level one-hot: the supernet then computes exactly the derived network
    # with the supernet's weights cut to the arch's widths (search and training in one phase)
    torch.manual_seed(0)
    arch = SPACE.parse_arch(text)
    net = supernet("sparsestmax", scale=2, C=8, search_cells=2)
    net.mixer.on_epoch_start(1, 2)
    one_hot_alphas(net, arch)
    if "none" not in arch.ops:  # none is never derived, but a none slot still runs as the discrete net's
        assert SPACE.discretize(net.mixer.selection_scores()[0]) == arch
    for p in net.parameters():  # non-zero biases everywhere, so masked channels would show
        if p.dim() == 1:
            torch.nn.init.uniform_(p, -0.2, 0.2)
    lr = torch.rand(2, 3, 6, 6)
    derived = net.inherited_network(arch)
    assert n_params(derived) == n_params(SPACE.build_network(arch, scale=2, in_channels=3, C=8))
    assert torch.allclose(net(lr), derived(lr), atol=1e-5)


def test_draw(tmp_path):
    paths = SPACE.draw(SPACE.parse_arch("ops=conv_3x3,none,skip_connect;widths=0.5,1;lr=1;hr=1"), tmp_path)
    assert [p.name for p in paths] == ["cell.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
