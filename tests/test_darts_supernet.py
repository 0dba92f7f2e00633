"""The DARTS search supernet (METHODS.md 0.1): structure, sizes, alphas, a search step, `nas search` end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers import nas, result_line
from nascli.search.mixers import MIXERS
from nascli.search.optimizers import SEARCH_OPTIMIZERS
from nascli.spaces import get_space
from nascli.search.edge_parts import method_parts
from nascli.spaces.darts.search_cells import ReferenceSearchCell, SearchCellBase
from nascli.spaces.darts.search_fast import FastSearchCell
from nascli.spaces.darts.supernet import CELL_IMPLS, DartsSupernet, reduction_layers

IMPLS = ("fast", "reference")
# quark0/darts cnn/model_search.py: for i in range(steps): for j in range(2 + i): edge j -> i + 2
DARTS_EDGE_ORDER = [(0, 2), (1, 2), (0, 3), (1, 3), (2, 3), (0, 4), (1, 4), (2, 4), (3, 4),
                    (0, 5), (1, 5), (2, 5), (3, 5), (4, 5)]


def build(impl="fast", parts=(), mixer="softmax", **cfg) -> DartsSupernet:
    space = get_space("darts")
    cfg = {"C": 4, "layers": 3, **cfg}
    return space.build_supernet(MIXERS.get(mixer)(space), 10, 3, parts, impl=impl, **cfg)


def test_impl_registry_and_bad_impl():
    assert CELL_IMPLS.names() == ["fast", "reference"]
    with pytest.raises(Exception, match="valid"):
        build(impl="turbo")


@pytest.mark.parametrize("impl", IMPLS)
def test_alphas_are_14x8_per_cell_type(impl):
    net = build(impl)
    assert {k: tuple(v.shape) for k, v in net.mixer.alphas.items()} == {"normal": (14, 8), "reduce": (14, 8)}
    assert len(net.arch_parameters()) == 2
    arch_ids = {id(p) for p in net.arch_parameters()}
    assert not arch_ids & {id(p) for p in net.weight_parameters()}


@pytest.mark.parametrize("impl", IMPLS)
def test_edge_order_and_strides(impl):
    net = build(impl)
    for cell in net.cells:
        assert [(e.src, e.dst) for e in cell.edge_list] == DARTS_EDGE_ORDER
        assert [e.index for e in cell.edge_list] == list(range(14))
        expected = [2 if cell.reduction and src < 2 else 1 for src, _ in DARTS_EDGE_ORDER]
        assert [e.stride for e in cell.edge_list] == expected


@pytest.mark.parametrize("layers,reductions", [(8, (2, 5)), (3, (1, 2)), (5, (1, 3)), (20, (6, 13))])
def test_reduction_positions(layers, reductions):
    assert reduction_layers(layers) == reductions


def test_widths_and_preprocessing_of_the_8_cell_network():
    net = build("reference", C=16, layers=8)
    assert [c.reduction for c in net.cells] == [i in (2, 5) for i in range(8)]
    assert [c.C for c in net.cells] == [16, 16, 32, 32, 32, 64, 64, 64]
    assert net.stem[0].out_channels == 48  # stem_multiplier 3
    # preprocess0 is FactorizedReduce right after a reduction cell, else ReLU-Conv1x1-BN
    kinds = [type(c.preprocess0).__name__ for c in net.cells]
    assert kinds == ["ReLUConvBN", "ReLUConvBN", "ReLUConvBN", "FactorizedReduce", "ReLUConvBN",
                     "ReLUConvBN", "FactorizedReduce", "ReLUConvBN"]
    in_p = [c.preprocess1[1].in_channels for c in net.cells]
    assert in_p == [48, 64, 64, 128, 128, 128, 256, 256]
    assert net.classifier.in_features == 256


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("track", [True, False])
def test_every_cell_batchnorm_is_non_affine(impl, track):
    net = build(impl, method_parts(aux_skip=True), track_running_stats=track)
    bns = [m for c in net.cells for m in c.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.affine for m in bns)
    assert all(m.track_running_stats == track for m in bns)
    # pooling ops are followed by a search BN
    for cell in net.cells:
        for edge in cell.edges:
            for k in (1, 2):
                assert isinstance(edge[k][1], torch.nn.BatchNorm2d)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("options", [(), method_parts(2, True)])
def test_output_shape(impl, options):
    net = build(impl, options)
    for size in (16, 10):
        assert net(torch.randn(2, 3, size, size)).shape == (2, 10)
    net.eval()
    assert net(torch.randn(1, 3, 8, 8)).shape == (1, 10)


@pytest.mark.parametrize("options,count", [
    # C=16, layers=8, 10 classes (quark0 Network); quark0's search log prints "param size = 1.930842MB"
    # [MEM, unverified], which would be these 1,930,618 weights plus the 2 x 14 x 8 = 224 alphas.
    ((), 1_930_618),
    # DARTS-: + FactorizedReduce(C, C) aux skips on the 8 stride-2 edges of the reduce cells (C = 32, 64)
    (method_parts(aux_skip=True), 1_930_618 + 8 * (32 * 32 + 64 * 64)),
    (method_parts(4), 299_578),  # PC-DARTS K=4: ops on C/4 channels
])
def test_parameter_count_is_pinned(options, count):
    counts = {}
    for impl in IMPLS:
        net = build(impl, options, C=16, layers=8)
        counts[impl] = sum(p.numel() for p in net.weight_parameters())
        assert sum(p.numel() for p in net.arch_parameters()) == 2 * 14 * 8
    assert counts == {"fast": count, "reference": count}


def test_mixer_asked_once_per_cell_type_per_forward():
    net = build("fast", layers=5)
    calls = []
    original = net.mixer.edge_weights

    def spy(cell_type):
        calls.append(cell_type)
        return original(cell_type)

    net.mixer.edge_weights = spy
    net(torch.randn(2, 3, 8, 8))
    assert sorted(calls) == ["normal", "reduce"]


@pytest.mark.parametrize("impl", IMPLS)
def test_aux_skip_coefficient_is_a_buffer_that_acts(impl):
    net = build(impl, method_parts(aux_skip=True))
    assert "edge_part_specs.0.coef" in dict(net.named_buffers()) and float(net.edge_part("aux_skip").coef) == 1.0
    net.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        a = net(x)
        net.edge_part("aux_skip").coef.fill_(0.0)
        b = net(x)
    assert not torch.allclose(a, b)
    # with beta = 0 the aux path contributes nothing: the same as a supernet without it
    plain = build(impl, ())
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if ".aux." not in k}, strict=False)
    plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(x), b)


def test_cells_share_the_cell_base():
    assert issubclass(FastSearchCell, SearchCellBase) and issubclass(ReferenceSearchCell, SearchCellBase)
    with pytest.raises(ValueError, match="partial_channels"):
        build("fast", method_parts(3))


def _named_weights(net):
    ids = {id(p) for p in net.weight_parameters()}
    named = [(n, p) for n, p in net.named_parameters() if id(p) in ids]
    assert [id(p) for _, p in named] == [id(p) for p in net.weight_parameters()]  # same order
    return named


@pytest.mark.parametrize("impl", IMPLS)
def test_first_order_search_step_changes_weights_and_alphas(impl):
    torch.manual_seed(0)
    net = build(impl)
    opt = SEARCH_OPTIMIZERS.get("bilevel")(net, order="arch_first", nesterov=False, weight_decay=3e-4)
    opt.on_epoch_start(0, 50)
    alphas = [a.detach().clone() for a in net.arch_parameters()]
    weights = [w.detach().clone() for w in net.weight_parameters()]
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g))
    arch_batch = (torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 10, (4,), generator=g))
    opt.step(batch, arch_batch)
    for a0, a in zip(alphas, net.arch_parameters()):
        # Adam's first step moves every entry with a non-zero gradient by ~lr = 3e-4
        assert (a.detach() - a0).abs().max() == pytest.approx(3e-4, rel=0.05)
    # every weight tensor moves: SGD with weight decay steps even where the batch gave a zero gradient
    unchanged = [n for (n, w), w0 in zip(_named_weights(net), weights) if torch.equal(w0, w.detach())]
    assert len(weights) == 548 and unchanged == []


def test_nas_search_darts_end_to_end(tmp_path: Path):
    proc = nas("search", "space=darts", "space.supernet.C=4", "space.supernet.layers=3", "dataset=synthetic",
               "search.epochs=1", "search.max_steps_per_epoch=2", "num_threads=1", f"out_root={tmp_path}")
    res = result_line(proc)
    assert res["status"] == "ok" and res["space"] == "darts"
    arch = json.loads(Path(res["arch_path"]).read_text())
    ops = set(get_space("darts").ops) - {"none"}
    for cell in ("normal", "reduce"):
        pairs = arch[cell]
        assert len(pairs) == 8
        for k, (op, src) in enumerate(pairs):
            assert op in ops and 0 <= src < 2 + k // 2
        assert arch[f"{cell}_concat"] == [2, 3, 4, 5]
