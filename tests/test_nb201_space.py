"""NB201 space: arch strings, edge order, discrete network parameter counts, magnitude rule."""
import random

import pytest
import torch

from nascli.bench.nb201_table import load_nb201_table
from nascli.errors import BadArchError
from nascli.spaces import get_space
from nascli.spaces.nb201 import NB201_EDGES, NB201_OPS, NB201Arch, parse_nb201

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_edge_order_matches_autodl_sorted_keys():
    keys = sorted(["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"])
    assert [f"{d}<-{s}" for s, d in NB201_EDGES] == keys
    assert NB201_OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def test_every_table_arch_round_trips():
    table = load_nb201_table()
    strings = table.arch_strings()
    assert len(strings) == 15625
    for s in strings:
        assert parse_nb201(s).to_string() == s


def test_parse_tolerates_quotes_and_spaces():
    assert parse_nb201(f"  '{BEST}' ").to_string() == BEST


@pytest.mark.parametrize("bad, fragment", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|", "3 '+'-separated"),
    ("|conv_9x9~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|", "conv_9x9"),
    ("|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|", "node 1"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|", "node 2 needs 2"),
])
def test_bad_strings_name_the_problem(bad, fragment):
    with pytest.raises(BadArchError, match=None) as err:
        parse_nb201(bad)
    assert fragment in str(err.value)


def _trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("dataset, classes", [("cifar10", 10), ("cifar100", 100), ("imagenet16", 120)])
def test_parameter_counts_equal_the_benchmark(dataset, classes):
    """Every distinct (#conv3x3, #conv1x1) combination plus a random sample of archs, per head size."""
    table = load_nb201_table()
    space = get_space("nb201")
    strings = table.arch_strings()
    by_counts = {}
    for s in strings:
        a = parse_nb201(s)
        by_counts.setdefault((a.ops.count("nor_conv_3x3"), a.ops.count("nor_conv_1x1")), s)
    chosen = set(by_counts.values()) | set(random.Random(0).sample(strings, 20))
    for s in sorted(chosen):
        net = space.build_network(parse_nb201(s), classes)
        assert _trainable(net) == round(table.record(s)[f"params_M_{dataset}"] * 1e6), s


def test_discrete_network_forward_and_all_none_cell():
    space = get_space("nb201")
    net = space.build_network(parse_nb201(BEST), 10, in_channels=1, C=4, N=1)
    assert net(torch.randn(2, 1, 16, 16)).shape == (2, 10)
    dead = space.build_network(NB201Arch(["none"] * 6), 10, C=4, N=1)
    for mode in (dead.train, dead.eval):  # an all-none cell cuts the input off: the same logits for any image
        mode()
        out = dead(torch.randn(3, 3, 8, 8))
        assert out.shape == (3, 10) and torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])
        assert torch.equal(dead(torch.randn(3, 3, 8, 8)), out)
    alive = space.build_network(parse_nb201(BEST), 10, C=4, N=1).eval()
    out = alive(torch.randn(2, 3, 8, 8))
    assert not torch.equal(out[0], out[1])


def test_magnitude_rule_includes_none_and_breaks_ties_low():
    space = get_space("nb201")
    scores = torch.zeros(6, 5)
    scores[0, 0] = 1.0  # none wins edge 0
    scores[1, 3] = 0.5
    scores[2, 1] = 0.2
    scores[3] = torch.tensor([0.1, 0.1, 0.1, 0.1, 0.1])  # tie -> lowest index (none)
    scores[4, 4] = 2.0
    scores[5, 2] = 0.3
    arch = space.discretize({"cell": scores})
    assert arch.ops == ("none", "nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1")
    assert space.skip_count(arch) == 1


def test_random_arch_is_seeded():
    space = get_space("nb201")
    a = [space.random_arch(random.Random(3)).to_string() for _ in range(2)]
    assert a[0] == a[1] == \
        "|skip_connect~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
    assert space.random_arch(random.Random(4)).to_string() == \
        "|skip_connect~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|nor_conv_3x3~1|skip_connect~2|"
