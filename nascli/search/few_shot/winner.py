"""How the few-shot flow picks its final architecture among the leaves (``method.flow.winner``).

* ``supernet_accuracy``: the leaf whose supernet has the highest accuracy on the architecture split (first leaf
  on ties). Costs one pass over that split per leaf.
* ``successive_halving`` (the paper's rule; skhu101/GM-NAS@a69837d ``WS-GM/successive_halving.py`` with the
  ``eval.sh`` runs it reads): every leaf's architecture is trained stand-alone (:mod:`.standalone`); at each rung
  end r_k the survivors are ranked by a score of their per-epoch held-out accuracies over the window
  [r_{k-1}, r_k) (r_0 = 0), and the best ceil(keep * n) survive; at the last rung (or as soon as one survivor is
  left) the best one wins (first leaf on ties).

Pinned from the reference: rungs at 30 and 100 epochs of the DARTS evaluation protocol (``eval.sh``:
``train.py --auxiliary --cutout``, i.e. ``protocol=darts_600e``), keep 1/2 per rung (8 -> 4 -> 2 leaves), the
score ``moving_avg`` below. Assumed (stated in ``conf/method/gm_nas.yaml``): the reference's second window starts
at epoch 31 (``acc[31:100]``) where nascli starts it at 30, so the windows tile the epochs; the reference stops
with 2 survivors and nascli keeps the best of them; the reference reads the accuracies of the evaluation runs
(CIFAR-10's test set), nascli trains on the search's weight split and tests on its architecture split; on NB201,
where the reference selects no other way it documents, the rule is available but not the default.

Window scores of a list of per-epoch accuracies v_0..v_{n-1} (``WINDOW_SCORES``):

* ``moving_avg`` (the reference's ``moving_avg_of_list``): a_0 = 0, a_i = (0.1 * i * a_{i-1} + 0.9 * v_i) / (i + 1)
  for i = 0..n-1; the score is a_{n-1};
* ``mean``, ``max``, ``last``: as named.

The halving's progress lives in the tree's ``winner`` record (``tree/state.json``), written after every rung;
each leaf's stand-alone run resumes from its own checkpoint, so a kill at any point resumes to the same winner.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from nascli.errors import OptionError
from nascli.registry import Registry
from nascli.rundir import RunDir
from nascli.search.few_shot.tree import Node, SplitTree

WINDOW_SCORES: Registry[Callable[[list[float]], float]] = Registry("successive halving score")
WINNERS: Registry[type] = Registry("gm_nas winner rule")


@WINDOW_SCORES.register("moving_avg")
def moving_average(values: list[float]) -> float:
    """a_i = (0.1 * i * a_{i-1} + 0.9 * v_i) / (i + 1), a_{-1} = 0 (GM-NAS successive_halving.py)."""
    avg = 0.0
    for i, v in enumerate(values):
        avg = (avg * i * 0.1 + float(v) * 0.9) / (i + 1)
    return avg


@WINDOW_SCORES.register("mean")
def mean(values: list[float]) -> float:
    return sum(float(v) for v in values) / len(values)


@WINDOW_SCORES.register("max")
def maximum(values: list[float]) -> float:
    return max(float(v) for v in values)


@WINDOW_SCORES.register("last")
def last(values: list[float]) -> float:
    return float(values[-1])


@WINNERS.register("supernet_accuracy")
class SupernetAccuracy:
    """The leaf whose supernet scores best on the architecture split (``node.result['val_acc']``)."""

    def __init__(self, halving: dict[str, Any] | None = None):
        pass  # takes no options; the halving settings are another rule's

    def choose(self, cfg: DictConfig, run: RunDir, tree: SplitTree, save: Callable[[], None],
               say: Callable[[str], None]) -> Node:
        leaves = tree.leaves()
        best = max(leaves, key=lambda n: n.result["val_acc"])  # max keeps the first leaf on ties
        tree.winner = {"rule": "supernet_accuracy", "node": best.id}
        return best


@WINNERS.register("successive_halving")
class SuccessiveHalving:
    """Successive halving over stand-alone training of the leaves' architectures (module docstring)."""

    def __init__(self, halving: dict[str, Any] | None = None):
        from nascli.search.few_shot.standalone import halving_protocol
        from nascli.search.options import check_options

        opts = dict(halving or {})
        check_options(opts, ["protocol", "protocol_overrides", "rungs", "keep", "score", "metric"],
                      "method.flow.halving")
        self.protocol = halving_protocol(str(opts.get("protocol", "darts_600e")), opts.get("protocol_overrides"))
        self.rungs = [int(r) for r in opts.get("rungs", [30, 100])]
        if not self.rungs or self.rungs != sorted(set(self.rungs)) or self.rungs[0] < 1 \
                or self.rungs[-1] > self.protocol.epochs:
            raise OptionError(f"method.flow.halving.rungs must be increasing epochs in 1..{self.protocol.epochs} "
                              f"(protocol {self.protocol.name}), got {list(self.rungs)}")
        self.keep = float(opts.get("keep", 0.5))
        if not 0.0 < self.keep < 1.0:
            raise OptionError(f"method.flow.halving.keep must be in (0, 1), got {self.keep}")
        self.score = str(opts.get("score", "moving_avg"))
        WINDOW_SCORES.get(self.score)  # an unknown name: one line with the valid choices
        self.metric = str(opts.get("metric", "test_acc"))

    def survivors_after(self, n: int, last: bool) -> int:
        """ceil(keep * n) survivors after a rung of n leaves (at least 1); 1 after the last rung."""
        return 1 if last else max(1, math.ceil(self.keep * n))

    def choose(self, cfg: DictConfig, run: RunDir, tree: SplitTree, save: Callable[[], None],
               say: Callable[[str], None]) -> Node:
        from nascli.search.few_shot.standalone import train_leaf

        state = tree.winner if tree.winner and tree.winner.get("rule") == "successive_halving" else \
            {"rule": "successive_halving", "protocol": self.protocol.as_dict(), "rungs": []}
        survivors = state["rungs"][-1]["kept"] if state["rungs"] else [n.id for n in tree.leaves()]
        while len(survivors) > 1 and len(state["rungs"]) < len(self.rungs):
            k = len(state["rungs"])
            start, end = (self.rungs[k - 1] if k else 0), self.rungs[k]
            scores = {}
            for leaf in survivors:
                curve = train_leaf(cfg, run.path / "tree" / leaf, self.protocol, end, say)
                scores[leaf] = WINDOW_SCORES.get(self.score)([m[self.metric] for m in curve[start:end]])
            ranked = sorted(survivors, key=lambda i: -scores[i])  # stable: ties keep the leaf order
            kept = ranked[:self.survivors_after(len(survivors), k + 1 == len(self.rungs))]
            state["rungs"].append({"epochs": [start, end], "scores": scores, "kept": kept})
            tree.winner = state
            save()
            say(f"successive halving rung {k + 1}/{len(self.rungs)} (epochs {start}..{end - 1}, {self.score}): "
                + ", ".join(f"{i} {scores[i]:.2f}" for i in ranked) + f"; kept {kept}")
            survivors = kept
        state["node"] = survivors[0]
        tree.winner = state
        return tree.node(survivors[0])
