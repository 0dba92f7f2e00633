"""conformer (nascli/spaces/conformer): output lengths, padding invariance, a hand-counted baseline, arch
text/JSON round trips, the derivation rules on hand-made scores, every mixer and edge part, and one search
step through the builder on a fake speech batch."""
from __future__ import annotations

import json
import random

import pytest
import torch
import torch.nn.functional as F

from nascli.data.speech.batch import CTCOutput, CTCTargets, PaddedFeatures
from nascli.errors import BadArchError, IncompatibleError, OptionError
from nascli.search.edge_parts import EDGE_PARTS, _load_all as load_edge_parts
from nascli.search.mixers import MIXERS
from nascli.spaces import get_space, space_names
from nascli.spaces.conformer.arch import EDGES, NAMED_ARCHS, ConformerArch
from nascli.spaces.conformer.network import subsampled_length
from nascli.spaces.conformer.ops import CONFORMER_OPS
from nascli.spaces.lookup import load_arch
from nascli.spaces.param_free import parameter_free_share
from nascli.tasks.base import Criterion
from helpers import compose_cfg

SPACE = get_space("conformer")
load_edge_parts()
TINY = {"d_model": 8, "heads": 2, "blocks": 1, "max_relative": 2}
VOCAB, FEATS = 5, 10
BASELINE = "|ffn_half~0|+|none~0|mhsa~1|+|none~0|none~1|conv_15~2|+|none~0|none~1|none~2|ffn_half~3|"


def supernet(mixer: str = "softmax", edge_parts=(), **opts):
    return SPACE.build_supernet(MIXERS.get(mixer)(SPACE), vocab_size=VOCAB, in_features=FEATS,
                                edge_parts=edge_parts, **{**TINY, **opts})


def network(arch="conformer_baseline", **opts):
    return SPACE.build_network(SPACE.parse_arch(arch), vocab_size=VOCAB, in_features=FEATS,
                               **{**TINY, "dropout": 0.0, **opts})


def batch(lengths=(29, 20, 9), feats=FEATS) -> PaddedFeatures:
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), int(lengths.max()), feats)
    x[torch.arange(x.shape[1])[None, :] >= lengths[:, None]] = 0.0
    return PaddedFeatures(x, lengths)


def ctc_loss(out: CTCOutput, y: CTCTargets, reduction: str = "mean") -> torch.Tensor:
    return F.ctc_loss(out.log_probs.transpose(0, 1), y.labels, out.lengths, y.lengths, reduction=reduction,
                      zero_infinity=True)


def targets(b: int = 3) -> CTCTargets:
    return CTCTargets(torch.tensor([[1, 2], [3, 0], [4, 0]])[:b], torch.tensor([2, 1, 1])[:b])


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_registered_for_speech_recognition():
    assert "conformer" in space_names()
    assert SPACE.tasks == ("speech_recognition",) and SPACE.cell_types == ("cell",)
    assert SPACE.ops[0] == "none" and "skip_connect" in SPACE.ops and len(SPACE.ops) == 9
    assert [(e.src, e.dst) for e in SPACE.edges("cell")] == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3),
                                                             (0, 4), (1, 4), (2, 4), (3, 4)]


@pytest.mark.parametrize("length", [7, 8, 9, 10, 13, 30, 31])
def test_output_lengths_are_exact(length):
    # two unpadded stride-2 convs of kernel 3: L -> floor((L - 3) / 2) + 1, twice
    by_hand = ((length - 3) // 2 + 1 - 3) // 2 + 1
    assert int(subsampled_length(torch.tensor(length))) == by_hand
    net = network().eval()  # one frame cannot give BatchNorm batch statistics
    alone = net(batch((length,)))
    assert alone.log_probs.shape == (1, by_hand, VOCAB) and alone.lengths.tolist() == [by_hand]
    padded = net(batch((31, length)))
    assert padded.lengths.tolist() == [7, by_hand]
    assert torch.allclose(alone.log_probs.exp().sum(-1), torch.ones(1, by_hand))  # log-softmax


def test_short_inputs_give_zero_frames():
    assert subsampled_length(torch.tensor([0, 1, 2, 3, 6, 7])).tolist() == [0, 0, 0, 0, 0, 1]


@pytest.mark.parametrize("build", [lambda: network(), lambda: supernet(), lambda: supernet("gumbel")])
def test_padded_frames_change_no_valid_output(build):
    torch.manual_seed(0)
    net = build()
    x = batch((29, 20, 9))
    noisy = x.features.clone()
    noisy[x.padding_mask()] = 100.0 * torch.randn(int(x.padding_mask().sum()), FEATS)
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(1)  # gumbel: the same sample
    b = net(PaddedFeatures(noisy, x.lengths))
    assert torch.equal(a.lengths, b.lengths) and a.lengths.tolist() == [6, 4, 1]
    for k, n in enumerate(a.lengths.tolist()):
        assert torch.allclose(a.log_probs[k, :n], b.log_probs[k, :n], atol=1e-5)


def test_an_utterance_alone_equals_it_in_a_padded_batch():
    net = network("|conv_31~0|+|mhsa~0|dil_conv_7~1|+|none~0|ffn_half~1|conv_3~2|+|mhsa~0|none~1|none~2|conv_7~3|")
    net.eval()  # BatchNorm on running statistics: no batch statistic couples the utterances
    x = batch((29, 20, 9))
    together = net(x)
    for k, n in enumerate(x.lengths.tolist()):
        alone = net(PaddedFeatures(x.features[k:k + 1, :n], x.lengths[k:k + 1]))
        m = int(alone.lengths)
        assert torch.allclose(alone.log_probs[0], together.log_probs[k, :m], atol=1e-5)


def test_baseline_parameter_count_by_hand():
    # D = 8, 2 heads, R = 2, 1 block, F = 10 (-> 4 -> 1 bins after the front end), V = 5
    front = (1 * 8 * 9 + 8) + (8 * 8 * 9 + 8) + (8 * 1 * 8 + 8)  # conv1, conv2, projection: 80 + 584 + 72
    head = 8 * 5 + 5
    ffn = 2 * 8 + (8 * 32 + 32) + (32 * 8 + 8)  # LN, Linear(8, 32), Linear(32, 8): 568
    mhsa = 2 * 8 + (8 * 24 + 24) + (8 * 8 + 8) + 5 * 2  # LN, QKV, output, bias table (2R + 1) x heads: 314
    conv = 2 * 8 + (8 * 16 + 16) + (8 * 15 + 8) + 2 * 8 + (8 * 8 + 8)  # LN, pw 8->16, dw k15, BN, pw: 376
    block = 2 * ffn + mhsa + conv + 2 * 8  # + the block's final LN
    assert n_params(network()) == front + head + block == 2623
    assert n_params(network(blocks=3)) == front + head + 3 * block


def test_baseline_is_the_plain_conformer_block():
    arch = NAMED_ARCHS["conformer_baseline"]
    assert arch.to_string() == BASELINE
    space, loaded = load_arch("conformer_baseline", "nb201")
    assert space.name == "conformer" and loaded == arch
    block = network().blocks[0]
    assert [type(m).__name__ for m in block.layers] == ["FeedForward", "RelativeSelfAttention",
                                                        "ConvolutionModule", "FeedForward"]
    assert block.layers[2].depthwise.kernel_size == (15,) and block.layers[0].scale == 0.5


def test_arch_json_and_text_round_trip(tmp_path):
    arch = SPACE.random_arch(random.Random(3))
    data = json.loads(json.dumps(arch.to_json()))
    assert data["space"] == "conformer" and len(data["edges"]) == 10
    assert SPACE.arch_from_json(data) == arch and SPACE.parse_arch(arch.to_string()) == arch
    assert SPACE.parse_arch(json.dumps(data)) == arch
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(data))
    space, loaded = load_arch(str(path), "nb201")
    assert space.name == "conformer" and loaded == arch
    assert load_arch(arch.to_string(), "nb201")[0].name == "conformer"


@pytest.mark.parametrize("text, words", [
    ("|ffn_half~0|+|none~0|mhsa~1|+|none~0|none~1|conv_15~2|", "4 '+'-separated node groups"),
    ("|ffn_half~0|+|none~0|mhsa~1|+|none~0|none~1|conv_15~2|+|none~0|none~1|none~2|", "must list its 4"),
    ("|ffn_half~0|+|none~0|mhsa~0|+|none~0|none~1|conv_15~2|+|none~0|none~1|none~2|ffn_half~3|", "once"),
    ("|ffn_half~0|+|none~0|conv_5~1|+|none~0|none~1|conv_15~2|+|none~0|none~1|none~2|ffn_half~3|",
     "valid ops: none, skip_connect"),
    ('{"space": "nb201", "arch": "x"}', "not a conformer arch.json"),
])
def test_bad_arch_text_is_one_line(text, words):
    with pytest.raises(BadArchError) as exc:
        SPACE.parse_arch(text)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def scores(entries: dict[tuple[int, str], float]) -> torch.Tensor:
    """(10, 9) zeros with the given (edge, op) entries."""
    s = torch.zeros(len(EDGES), len(CONFORMER_OPS))
    for (e, op), v in entries.items():
        s[e, CONFORMER_OPS.index(op)] = v
    return s


def test_discretize_rules_on_hand_made_scores():
    # edges: 0 (0->1); 1 (0->2), 2 (1->2); 3 (0->3), 4 (1->3), 5 (2->3); 6 (0->4), 7, 8, 9 (3->4)
    s = scores({(0, "none"): 9, (0, "mhsa"): 2, (1, "conv_3"): 1, (2, "ffn_half"): 3, (3, "conv_31"): 5,
                (4, "skip_connect"): 4, (5, "dil_conv_7"): 0.5, (6, "none"): 9, (7, "conv_7"): 0.2,
                (8, "mhsa"): 0.7, (9, "ffn_half"): 0.6})
    top2 = SPACE.discretize({"cell": s})
    assert top2.ops == ("mhsa", "conv_3", "ffn_half", "conv_31", "skip_connect", "none", "none", "none", "mhsa",
                        "ffn_half")
    assert SPACE.discretize({"cell": s}, rule="top1").ops == (
        "mhsa", "none", "ffn_half", "conv_31", "none", "none", "none", "none", "mhsa", "none")
    assert SPACE.discretize({"cell": s}, rule="all_edges").ops == (
        "none", "conv_3", "ffn_half", "conv_31", "skip_connect", "dil_conv_7", "none", "conv_7", "mhsa", "ffn_half")
    # edge scores rank the edges instead of the best op score; ties go to the earlier edge and op
    edge = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0])
    ranked = SPACE.discretize({"cell": s}, {"cell": edge})
    assert ranked.ops[3:6] == ("none", "skip_connect", "dil_conv_7")
    assert ranked.ops[6:] == ("skip_connect", "conv_7", "none", "none")  # 6: its non-none ops tie -> skip; 7-9 tie
    assert SPACE.skip_count(ranked) == 2
    with pytest.raises(BadArchError, match="valid rules: default, top1, all_edges"):
        SPACE.discretize({"cell": s}, rule="top3")
    with pytest.raises(IncompatibleError, match=r"shape \(10, 9\)"):
        SPACE.discretize({"cell": torch.zeros(6, 5)})


def test_random_arch_cell_ops_and_param_free_share():
    for seed in range(5):
        arch = SPACE.random_arch(random.Random(seed))
        assert SPACE.parse_arch(arch.to_string()) == arch
        assert sum(op != "none" for op in arch.ops) == 7  # 1 + 2 + 2 + 2 inputs
    base = NAMED_ARCHS["conformer_baseline"]
    assert SPACE.cell_ops(base) == {"cell": ["ffn_half", "mhsa", "conv_15", "ffn_half"]}
    assert parameter_free_share(SPACE, base) == {"cell": 0.0}
    skips = ConformerArch(["skip_connect", "none", "skip_connect", "none", "none", "mhsa", "none", "none", "none",
                           "skip_connect"])
    assert parameter_free_share(SPACE, skips) == {"cell": 0.75} and SPACE.skip_count(skips) == 3


def one_step(net) -> None:
    """One SGD step on weights and arch parameters with the CTC loss; both must move."""
    arch = [p.detach().clone() for p in net.arch_parameters()]
    weights = [p.detach().clone() for p in net.weight_parameters()]
    loss = ctc_loss(net(batch()), targets())
    assert torch.isfinite(loss)
    loss.backward()
    with torch.no_grad():  # plain SGD by hand (torch.optim's first use imports torch._dynamo: seconds)
        for p in net.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    assert any(not torch.equal(a, p) for a, p in zip(arch, net.arch_parameters()))
    assert any(not torch.equal(a, p) for a, p in zip(weights, net.weight_parameters()))


@pytest.mark.parametrize("mixer", MIXERS.names())
def test_every_mixer_builds_and_steps(mixer):
    one_step(supernet(mixer))


@pytest.mark.parametrize("part, opts, mixer", [("partial_channels", {"k": 2}, "pc_softmax"),
                                               ("partial_channels", {"k": 4}, "softmax"),
                                               ("aux_skip", {}, "softmax")])
def test_edge_parts_build_and_step(part, opts, mixer):
    net = supernet(mixer, edge_parts=[EDGE_PARTS.get(part)(**opts)])
    if part == "partial_channels":  # the ops see D / K channels; attention heads shrink to divide them
        assert net.blocks[0].parts.width == 8 // opts["k"]
        assert net.blocks[0].ops[0][CONFORMER_OPS.index("mhsa")].heads == 2
    one_step(net)


def test_fixed_edges_give_the_hand_computed_block():
    net = supernet(blocks=1)
    net.eval()
    x = batch()
    chain = {0, 2, 5, 9}  # 0->1, 1->2, 2->3, 3->4
    for e in range(len(EDGES)):
        net.mixer.fix_edge("cell", e, CONFORMER_OPS.index("skip_connect" if e in chain else "none"))
    h, lengths, pad = net.frame.start(x)
    block = net.blocks[0].norm(h).masked_fill(pad[:, :, None], 0.0)  # skips only: the block is LN(x)
    expected = torch.log_softmax(net.frame.head(block), dim=-1)
    assert torch.allclose(net(x).log_probs, expected, atol=1e-6)
    net.mixer.fix_edge("cell", 9, CONFORMER_OPS.index("none"))  # node 4 gets nothing: zero, LN(0) = its bias 0
    assert torch.allclose(net(x).log_probs, torch.log_softmax(net.frame.head.bias, -1).expand(3, 6, VOCAB))


@pytest.mark.parametrize("opts, words", [({"heads": 3}, "heads dividing d_model"), ({"blocks": 0}, "blocks >= 1"),
                                         ({"impl": "fast"}, "valid choices: reference")])
def test_bad_sizes_are_one_line(opts, words):
    with pytest.raises(OptionError, match=words):
        supernet(**opts)
    with pytest.raises(OptionError, match="at least 7 feature bins"):
        SPACE.build_network(NAMED_ARCHS["conformer_baseline"], vocab_size=VOCAB, in_features=6)


def test_draw(tmp_path):
    paths = SPACE.draw(NAMED_ARCHS["conformer_baseline"], tmp_path)
    assert [p.name for p in paths] == ["cell.png"] and paths[0].stat().st_size > 0


class FakeCTC(Criterion):
    """A stand-in for the speech task's criterion: mean CTC loss, score = - summed loss."""

    score_name = "neg_ctc"
    sum_key = "neg_ctc_sum"

    def loss(self, output, target, reduction="mean"):
        return ctc_loss(output, target, reduction)

    def score_sum(self, output, target):
        return -ctc_loss(output, target, "sum").detach()


@pytest.mark.parametrize("method", ["darts", "pc_darts", "gdas"])
def test_one_search_step_through_the_builder(method):
    from nascli.search.builder import build_optimizer, build_supernet

    cfg = compose_cfg("search", [f"method={method}", "space=conformer", "space.supernet.d_model=8",
                                 "space.supernet.blocks=1", "optimizer.arch_start_epoch=0", "num_threads=1"])
    net = build_supernet(cfg, SPACE, {"vocab_size": VOCAB, "in_features": FEATS}, 1)
    opt = build_optimizer(cfg, net, torch.device("cpu"))
    opt.use_criterion(FakeCTC())
    arch = [p.detach().clone() for p in net.arch_parameters()]
    weights = [p.detach().clone() for p in net.weight_parameters()]
    b = (batch(), targets())
    opt.step(b, b)
    assert any(not torch.equal(a, p) for a, p in zip(arch, net.arch_parameters()))
    assert any(not torch.equal(a, p) for a, p in zip(weights, net.weight_parameters()))
