"""GM-NAS's winner rules (nascli/search/few_shot/winner.py, standalone.py): the reference's moving-average score by
hand, the halving schedule on hand-made accuracy curves, stand-alone training stopped at a rung and continued
equal to one uninterrupted run, the per-space defaults and one-line errors for bad options."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from helpers import assert_same_nested, compose_cfg
from nascli.errors import NasError, OptionError, UnknownChoiceError
from nascli.rundir import RunDir
from nascli.search.composition import check_search_config
from nascli.search.few_shot.tree import Node, SplitTree
from nascli.search.few_shot.winner import WINDOW_SCORES, WINNERS, SuccessiveHalving

TINY = ["method=gm_nas", "space.supernet.C=4", "space.supernet.N=1", "dataset.num_train=128",
        "dataset.num_test=32", "dataset.image_size=8", "search.batch_size=8", "search.epochs=4",
        "search.max_steps_per_epoch=2", "method.flow.split_epochs=[1,2]", "method.flow.num_batches=1",
        "num_threads=1", "space.network.C=4", "space.network.N=1"]


def test_moving_average_by_hand():
    # a0 = .9*10 = 9; a1 = (.1*1*9 + .9*20)/2 = 9.45; a2 = (.1*2*9.45 + .9*30)/3 = 9.63
    assert WINDOW_SCORES.get("moving_avg")([10, 20, 30]) == pytest.approx(9.63, abs=1e-12)
    assert WINDOW_SCORES.get("mean")([10, 20, 30]) == 20 and WINDOW_SCORES.get("max")([10, 30, 20]) == 30
    assert WINDOW_SCORES.get("last")([10, 30, 20]) == 20


def _tree(n: int) -> SplitTree:
    nodes = [Node(f"0.{k}", "0", 1, 0, 1, status="done", result={"val_acc": 50.0 + (k % 3)}) for k in range(n)]
    return SplitTree([Node("0", None, 0, 0, 1, status="split"), *nodes])


def test_halving_schedule_on_hand_made_curves(monkeypatch, tmp_path):
    """8 leaves, rungs at 3 and 10 of a 10-epoch protocol: 8 -> 4 (best moving average over epochs 0..2) -> 1
    (best over epochs 3..9); only the survivors are trained on, each only as far as its rung."""
    import nascli.search.few_shot.standalone as standalone

    # leaf k: accuracy k at epochs 0..2, then (7 - k) * 10 (the early leaders fall behind later)
    curves = {f"0.{k}": [float(k)] * 3 + [float(7 - k) * 10] * 7 for k in range(8)}
    trained: list[tuple[str, int]] = []

    def fake_train(cfg, leaf_dir, protocol, end, say=print):
        trained.append((leaf_dir.name, end))
        return [{"epoch": e, "test_acc": curves[leaf_dir.name][e]} for e in range(end)]

    monkeypatch.setattr(standalone, "train_leaf", fake_train)
    rule = SuccessiveHalving({"protocol": "quick", "protocol_overrides": {"epochs": 10}, "rungs": [3, 10]})
    tree, saves = _tree(8), []
    best = rule.choose(None, RunDir(tmp_path), tree, lambda: saves.append(json.dumps(tree.winner)), lambda s: None)
    assert [r["kept"] for r in tree.winner["rungs"]] == [["0.7", "0.6", "0.5", "0.4"], ["0.4"]]
    assert best.id == "0.4" and tree.winner["node"] == "0.4" and len(saves) == 2
    assert trained == [(f"0.{k}", 3) for k in range(8)] + [(f"0.{k}", 10) for k in (7, 6, 5, 4)]
    ma = WINDOW_SCORES.get("moving_avg")
    assert tree.winner["rungs"][0]["scores"]["0.5"] == pytest.approx(ma([5.0] * 3))
    assert tree.winner["rungs"][1]["scores"]["0.4"] == pytest.approx(ma([30.0] * 7))
    assert tree.winner["rungs"][1]["epochs"] == [3, 10]
    # resuming from the saved record after rung 1: only rung 2 is trained, to the same winner
    trained.clear()
    tree2 = _tree(8)
    tree2.winner = json.loads(saves[0])
    assert rule.choose(None, RunDir(tmp_path), tree2, lambda: None, lambda s: None).id == "0.4"
    assert trained == [(f"0.{k}", 10) for k in (7, 6, 5, 4)] and tree2.winner == tree.winner


def test_ties_keep_the_leaf_order_and_one_leaf_needs_no_training(monkeypatch, tmp_path):
    import nascli.search.few_shot.standalone as standalone

    monkeypatch.setattr(standalone, "train_leaf", lambda cfg, d, p, end, say=print:
                        [{"epoch": e, "test_acc": 1.0} for e in range(end)])
    rule = SuccessiveHalving({"protocol": "quick", "rungs": [1, 2]})
    tree = _tree(3)
    assert rule.choose(None, RunDir(tmp_path), tree, lambda: None, lambda s: None).id == "0.0"
    assert [r["kept"] for r in tree.winner["rungs"]] == [["0.0", "0.1"], ["0.0"]]  # ceil(3 / 2) = 2 survive
    monkeypatch.setattr(standalone, "train_leaf", None)  # a single leaf wins without any training
    assert rule.choose(None, RunDir(tmp_path), _tree(1), lambda: None, lambda s: None).id == "0.0"


def test_supernet_accuracy_rule_keeps_the_first_best_leaf(tmp_path):
    tree = _tree(6)  # val_acc 50, 51, 52, 50, 51, 52
    assert WINNERS.get("supernet_accuracy")(None).choose(None, RunDir(tmp_path), tree, None, None).id == "0.2"
    assert tree.winner == {"rule": "supernet_accuracy", "node": "0.2"}


def test_default_winner_per_space():
    nb = compose_cfg("search", ["method=gm_nas"]).method.flow
    dt = compose_cfg("search", ["method=gm_nas", "space=darts"]).method.flow
    assert nb.winner == "supernet_accuracy" and nb.halving.protocol == "nb201_200e"
    assert (dt.winner, dt.halving.protocol, list(dt.halving.rungs), dt.halving.keep, dt.halving.score) == \
        ("successive_halving", "darts_600e", [30, 100], 0.5, "moving_avg")


@pytest.mark.parametrize("override,error,words", [
    ("method.flow.winner=best", UnknownChoiceError, "valid choices: successive_halving, supernet_accuracy"),
    ("method.flow.halving.rungs=[30,300]", OptionError, "rungs must be increasing epochs in 1..200 (protocol "
                                                         "nb201_200e), got [30, 300]"),
    ("method.flow.halving.score=median", UnknownChoiceError, "valid choices: last, max, mean, moving_avg"),
    ("method.flow.halving.protocol=fast", NasError, "unknown protocol 'fast' for method.flow.halving.protocol"),
    ("method.flow.halving.keep=1.0", OptionError, "keep must be in (0, 1), got 1.0"),
    ("+method.flow.halving.eta=3", OptionError, "unknown key method.flow.halving.eta"),
    ("method.flow.halving.protocol_overrides={lr_max: 1}", NasError, "unknown protocol keys ['lr_max']"),
])
def test_bad_halving_options_are_one_line(override, error, words):
    cfg = compose_cfg("search", [*TINY, "method.flow.winner=successive_halving", override])
    with pytest.raises(error) as exc:
        check_search_config(cfg)
    assert "\n" not in str(exc.value) and words in str(exc.value)


def test_a_rung_stop_and_continue_equals_one_uninterrupted_run(tmp_path):
    """Stand-alone training stopped after epoch 1 and continued to 3 ends with the state of a run trained to 3
    at once (weights, optimizer, stream, RNG), and both log the same 3 epochs."""
    from nascli.search.few_shot.standalone import halving_protocol, train_leaf

    cfg = compose_cfg("search", TINY)
    arch = {"space": "nb201", "arch": "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|"
                                     "nor_conv_3x3~2|"}
    from nascli.spaces import get_space
    data = get_space("nb201").parse_arch(arch["arch"]).to_json()
    protocol = halving_protocol("quick", {"epochs": 4, "batch_size": 8, "max_steps_per_epoch": 2})
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "arch.json").write_text(json.dumps(data))
    first = train_leaf(cfg, a, protocol, 1, say=lambda s: None)
    assert [m["epoch"] for m in first] == [0]
    split = train_leaf(cfg, a, protocol, 3, say=lambda s: None)
    whole = train_leaf(cfg, b, protocol, 3, say=lambda s: None)
    strip = [{k: v for k, v in m.items() if k not in ("wall_s", "peak_memory_bytes")} for m in split]
    assert strip == [{k: v for k, v in m.items() if k not in ("wall_s", "peak_memory_bytes")} for m in whole]
    assert [m["epoch"] for m in split] == [0, 1, 2] and split[0]["lr"] == pytest.approx(0.05)
    ca, cb = (torch.load(d / "standalone" / "checkpoint.pt", weights_only=True) for d in (a, b))
    assert ca["epochs_done"] == cb["epochs_done"] == 3
    ca["metrics"].pop("wall_s"), cb["metrics"].pop("wall_s")
    ca["metrics"].pop("peak_memory_bytes"), cb["metrics"].pop("peak_memory_bytes")
    assert_same_nested(ca, cb, "stand-alone state")
    assert train_leaf(cfg, a, protocol, 2, say=lambda s: None) == split[:2]  # already trained: read back only
