"""NB201 table: packaged data, lookup conventions and the published sanity values.

Pinned numbers: shared data README "Sanity values" and METHODS.md 0.6 (NB201 paper, ICLR'20: the
DARTS-V1/V2 all-skip rows and the "Optimal" row; DrNAS README for the best cell).
"""
import hashlib
import random
from importlib import resources

import numpy as np
import pytest

from nascli.bench import nb201_table as nb
from nascli.bench.nb201_table import load_nb201_table

ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
C10_TEST_MAX = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
DATASETS = ("cifar10", "cifar100", "imagenet16_120")


def _row(arch: str) -> list[float]:
    return [round(nb.lookup(arch, ds)[split], 2) for ds in DATASETS for split in ("valid", "test")]


def test_packaged_file_checksum():
    data = resources.files("nascli.bench").joinpath("data", "nb201.json.gz").read_bytes()
    assert hashlib.sha256(data).hexdigest() == "2bf90705501d8828e37412f70676e893972914b95d6725f3ebe548b3efc38b32"


def test_count_and_cached_once():
    table = load_nb201_table()
    assert table is load_nb201_table()
    assert len(table) == 15625 == len(set(table.arch_strings()))
    assert table.record(table.arch_strings()[0])["index"] == 0


def test_all_skip_is_the_darts_failure_row():
    assert _row(ALL_SKIP) == [39.77, 54.30, 15.03, 15.61, 16.43, 16.32]
    assert nb.record(ALL_SKIP)["index"] == 1835


def test_best_cell_matches_drnas():
    assert _row(BEST) == [91.55, 94.36, 73.49, 73.51, 46.37, 46.34]
    assert nb.record(BEST)["index"] == 9930
    assert nb.lookup(BEST, "cifar10")["test"] == pytest.approx(94.363333)
    assert nb.lookup(C10_TEST_MAX, "cifar10")["test"] == pytest.approx(94.373333)


def test_space_stats_optimal_row_and_moments():
    optimal = []
    for ds in DATASETS:
        stats = nb.space_stats(ds)
        optimal += [round(stats["optimal"]["valid"], 2), round(stats["optimal"]["test"], 2)]
        for split in ("valid", "test"):
            mean, std = stats[split]
            assert 0 < std < mean < stats["optimal"][split]
    assert optimal == [91.61, 94.37, 73.49, 73.51, 46.77, 47.31]
    mean, std = nb.space_stats("cifar10")["test"]  # exact over all 15,625 archs, population std
    assert mean == pytest.approx(87.0424, abs=1e-4) and std == pytest.approx(12.9369, abs=1e-4)


def test_unknown_arch_and_dataset_without_table():
    assert nb.lookup("|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|", "cifar10") is None
    assert nb.record("not an arch") is None
    for ds in ("fashion_mnist", "synthetic"):
        assert nb.lookup(BEST, ds) is None
        assert nb.space_stats(ds) is None
        assert nb.params_m(BEST, ds) is None
    assert nb.lookup(BEST, "ImageNet16-120") == nb.lookup(BEST, "imagenet16_120")


def test_params_m_exact_counts():
    # TinyNetwork(C=16, N=5): base + 0.24304 * n_conv3x3 + 0.028 * n_conv1x1 (data README)
    assert nb.params_m(ALL_SKIP, "cifar10") == pytest.approx(0.073306)
    assert nb.params_m(BEST, "cifar10") == pytest.approx(0.073306 + 5 * 0.24304)
    assert nb.params_m(BEST, "cifar100") == pytest.approx(0.079156 + 5 * 0.24304)


def test_sample_archs_uniform_and_reproducible():
    a = nb.sample_archs(50, random.Random(3))
    assert a == nb.sample_archs(50, random.Random(3))
    assert all(nb.lookup(x, "cifar10") is not None for x in a)
    distinct = nb.sample_archs(100, random.Random(0), replace=False)
    assert len(set(distinct)) == 100
    everything = nb.sample_archs(15625, random.Random(1), replace=False)  # without replacement: a permutation
    assert sorted(everything) == sorted(load_nb201_table().arch_strings())
    with pytest.raises(ValueError, match="cannot draw 15626 archs from 15625"):
        nb.sample_archs(15626, random.Random(1), replace=False)
    # draws are over the archs in NB201 index order: a seeded rng pins the archs
    assert [nb.record(x)["index"] for x in a[:5]] == [3898, 9709, 8916, 2136, 6061]
    from_numpy = nb.sample_archs(7, np.random.default_rng(0))  # a numpy Generator works too
    assert [nb.record(x)["index"] for x in from_numpy] == [13291, 9952, 7986, 4215, 4809, 640, 1175]
