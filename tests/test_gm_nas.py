"""GM-NAS (method=gm_nas, nascli/search/few_shot): the partition rules on hand-made distance matrices, the edge
choice, the gradient-matching distances against a hand computation on a tiny supernet, children restricted
exactly on the split edge, exact resume through a split, and `nas search method=gm_nas` end to end."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from helpers import assert_same_nested, compose_cfg, nas
from nascli.commands.run import seed_everything
from nascli.errors import IncompatibleError, NasError, OptionError, UnknownChoiceError
from nascli.search.builder import build_search
from nascli.search.composition import check_search_config
from nascli.search.few_shot.gradient_matching import edge_distance, shared_parameters
from nascli.search.few_shot.partition import Partition, best_partition, choose_edge
from nascli.search.few_shot.tree import SplitTree
from nascli.rundir import RunDir

# A tiny but complete tree: splits after epochs 1 and 2 (4 leaves), 2 steps per epoch, 1 scoring minibatch.
TINY = ["method=gm_nas", "space.supernet.C=4", "space.supernet.N=1", "dataset.num_train=128",
        "dataset.num_test=32", "dataset.image_size=8", "search.batch_size=8", "search.epochs=4",
        "search.max_steps_per_epoch=2", "method.flow.split_epochs=[1,2]", "method.flow.num_batches=1",
        "num_threads=1"]


def _upper(entries: dict[tuple[int, int], float], n: int) -> torch.Tensor:
    d = torch.zeros(n, n, dtype=torch.float64)
    for (i, j), v in entries.items():
        d[i, j] = d[j, i] = v
    return d


# ---------------------------------------------------------------------------------- partition rules
# 5 ops (NB201). Within-group sums of every {pair, rest} partition, by hand:
# {0,1}: .1 + (.2+.3+.35) = .95   {0,2}: .9 + (.5+.4+.35) = 2.15   {0,3}: .8 + (.6+.4+.3) = 2.1
# {0,4}: .7 + (.6+.5+.2) = 2.0    {1,2}: .6 + (.8+.7+.35) = 2.45   {1,3}: .5 + (.9+.7+.3) = 2.4
# {1,4}: .4 + (.9+.8+.2) = 2.3    {2,3}: .2 + (.1+.7+.4) = 1.4     {2,4}: .3 + (.1+.8+.5) = 1.7
# {3,4}: .35 + (.1+.9+.6) = 1.95.  Total 4.85, so the edge score (cross) is 4.85 - .95 = 3.9.
D5 = _upper({(0, 1): .1, (0, 2): .9, (0, 3): .8, (0, 4): .7, (1, 2): .6, (1, 3): .5, (1, 4): .4,
             (2, 3): .2, (2, 4): .3, (3, 4): .35}, 5)


def test_pair_rest_partition_and_edge_score_by_hand():
    p = best_partition(D5, "pair_rest")
    assert p.groups == ((0, 1), (2, 3, 4))
    assert p.within == pytest.approx(0.95, abs=1e-12) and p.cross == pytest.approx(3.9, abs=1e-12)


def test_ties_keep_the_first_pair_in_lexicographic_order():
    # every within sum is 4 * 1.0: the first pair {0, 1} wins
    p = best_partition(torch.ones(5, 5) - torch.eye(5), "pair_rest")
    assert p.groups == ((0, 1), (2, 3, 4)) and p.within == 4.0 and p.cross == 6.0


def test_balanced_partition_finds_two_triples_that_pair_rest_cannot():
    # clusters {0,2,4} and {1,3,5}: 0.1 inside, 1.0 across
    d = torch.tensor([[0.0 if i == j else (0.1 if i % 2 == j % 2 else 1.0) for j in range(6)] for i in range(6)])
    p = best_partition(d, "balanced")
    assert p.groups == ((0, 2, 4), (1, 3, 5)) and p.within == pytest.approx(0.6) and p.cross == pytest.approx(9.0)
    q = best_partition(d, "pair_rest")  # {0,2} + {1,3,4,5}: .1 + (3 x .1 + 3 x 1.0)
    assert q.groups == ((0, 2), (1, 3, 4, 5)) and q.within == pytest.approx(3.4)


def test_too_few_ops_split_one_op_from_the_rest():
    d = _upper({(0, 1): 0.5, (0, 2): 0.2, (1, 2): 0.9}, 3)
    assert best_partition(d, "balanced").groups == ((1,), (0, 2))  # within .2 beats .9 and .5
    assert best_partition(_upper({(0, 1): 0.3}, 2), "pair_rest").groups == ((0,), (1,))


def test_edge_choice_max_cross_and_min_within():
    parts = [Partition(((0, 1), (2, 3, 4)), 2.0, 3.0), Partition(((0, 1), (2, 3, 4)), 1.0, 2.5),
             Partition(((0, 2), (1, 3, 4)), 4.0, 4.0), Partition(((0, 3), (1, 2, 4)), 1.0, 0.5)]
    assert choose_edge(parts, "max_cross") == 2
    assert choose_edge(parts, "min_within") == 1  # first of the two with within 1.0


# ---------------------------------------------------------------------------------- gradient matching
def _setup(*extra: str):
    cfg = compose_cfg("search", [*TINY, *extra])
    seed_everything(0)
    return build_search(cfg, torch.device("cpu"))


def _other_edges_grad(net, x, y, edge: int) -> torch.Tensor:
    """The training-loss gradient w.r.t. the op parameters of every edge but ``edge``, flattened (float64)."""
    params = [p for n, p in net.named_parameters()
              if (m := re.search(r"\.edges\.(\d+)\.", n)) and int(m.group(1)) != edge]
    g = torch.autograd.grad(F.cross_entropy(net(x), y), params, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if gi is None else gi).reshape(-1).double() for p, gi in zip(params, g)])


def _cosine_distances(grads: list[torch.Tensor]) -> torch.Tensor:
    """D[i, j] = 1 - cos(g_i, g_j) (eps 1e-6 in the norm product), 0 on the diagonal, written out by hand."""
    d = torch.zeros(len(grads), len(grads), dtype=torch.float64)
    for i, a in enumerate(grads):
        for j, b in enumerate(grads):
            if i != j:
                d[i, j] = 1 - a @ b / (a.norm() * b.norm() + 1e-6)
    return d


def test_hard_gradient_matching_equals_a_hand_computation():
    """D[i, j] = mean over batches of 1 - cos(g_i, g_j), g_o the gradient of the training loss w.r.t. the op
    parameters of every other edge with edge 2 one-hot on op o (NB201 code, --hard 1): recomputed with autograd
    on one copy of the supernet per op whose alpha row (-inf except o) makes softmax exactly one-hot."""
    hard = True
    setup = _setup()
    net, mixer, edge = setup.supernet, setup.supernet.mixer, 2
    with torch.no_grad():
        mixer.alphas["cell"].normal_()  # distinct soft weights
    batches = [setup.engine.train_stream.next() for _ in range(2)]
    copies = [copy.deepcopy(net) for _ in range(5)]
    it = iter(batches)
    got = edge_distance(lambda b: F.cross_entropy(net(b[0]), b[1]), lambda: next(it), mixer, "cell", edge, 5,
                        shared_parameters(net, "cell", edge), num_batches=2, hard=hard, distance="cos",
                        restore=lambda: None)
    expected = torch.zeros(5, 5, dtype=torch.float64)
    for x, y in batches:
        grads = []
        for o, c in enumerate(copies):
            with torch.no_grad():  # softmax of [-inf, .., log w, .., -inf] is exactly w at o and 0 elsewhere
                row = torch.full((5,), float("-inf"))
                row[o] = 0.0
                c.mixer.alphas["cell"][edge] = row
            grads.append(_other_edges_grad(c, x, y, edge))
        expected += _cosine_distances(grads) / len(batches)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert got[0, 1] > 0 and torch.equal(got, got.T)
    assert mixer._fixed == {} and mixer._masked == set()  # the interventions were removed


def test_soft_gradient_matching_equals_a_hand_computation():
    """Soft (DARTS-space code): edge 2 keeps only op o, at its softmax weight w_o, the other ops at 0. By hand: on a
    copy per op, alpha's row is -inf except o (weights exactly one-hot) and o's module is wrapped to scale its
    output by w_o."""
    setup = _setup()
    net, mixer, edge = setup.supernet, setup.supernet.mixer, 2
    with torch.no_grad():
        mixer.alphas["cell"].normal_()
    soft = torch.softmax(mixer.alphas["cell"].detach()[edge], -1)
    batches = [setup.engine.train_stream.next() for _ in range(2)]
    copies = [copy.deepcopy(net) for _ in range(5)]
    it = iter(batches)
    got = edge_distance(lambda b: F.cross_entropy(net(b[0]), b[1]), lambda: next(it), mixer, "cell", edge, 5,
                        shared_parameters(net, "cell", edge), num_batches=2, hard=False, distance="cos",
                        restore=lambda: None)

    class Scaled(torch.nn.Module):
        def __init__(self, op, w):
            super().__init__()
            self.op, self.w = op, float(w)

        def forward(self, x):
            return self.w * self.op(x)

    for o, c in enumerate(copies):
        with torch.no_grad():
            row = torch.full((5,), float("-inf"))
            row[o] = 0.0
            c.mixer.alphas["cell"][edge] = row
        for cell in [m for m in c.modules() if hasattr(m, "edges") and isinstance(m.edges, torch.nn.ModuleList)]:
            cell.edges[edge][o] = Scaled(cell.edges[edge][o], soft[o])
    expected = torch.zeros(5, 5, dtype=torch.float64)
    for x, y in batches:
        grads = []
        for c in copies:
            grads.append(_other_edges_grad(c, x, y, edge))
        expected += _cosine_distances(grads) / len(batches)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_shared_weights_are_every_edge_but_the_split_one():
    setup = _setup()
    net = setup.supernet
    cells = [m for m in net.modules() if isinstance(getattr(m, "edges", None), torch.nn.ModuleList)]
    for e in range(6):
        got = {id(p) for p in shared_parameters(net, "cell", e)}
        want = {id(p) for c in cells for k, ops in enumerate(c.edges) if k != e for p in ops.parameters()}
        assert got == want and got


# ---------------------------------------------------------------------------------- the flow
TIMING = ("epoch_time_s", "images_per_s", "wall_time_s", "peak_memory_mb", "scoring_time_s", "node_time_s",
          "search_time_s", "split_time_s")


def _run(out: Path, *extra: str) -> dict:
    from nascli.commands.search import search

    return search(compose_cfg("search", [*TINY, "search.checkpoint_every_steps=1", f"out_root={out}", *extra]))


def _strip(obj):
    """``obj`` without timing figures and run paths (which differ between two runs of the same search)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIMING and k != "run" and k != "run_dir"
                and not k.endswith("_path") and k != "artifacts"}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> dict:
    return _run(tmp_path_factory.mktemp("gm_full"))


# Successive halving, small: one split (2 leaves), stand-alone training of each leaf's arch (tiny network, 2 steps
# per epoch); rung 1 after epoch 0 keeps ceil(0.75 * 2) = 2, rung 2 after epoch 1 keeps the best.
HALVING = ["method.flow.split_epochs=[1]", "search.epochs=2",
           "method.flow.winner=successive_halving", "method.flow.halving.protocol=quick",
           "method.flow.halving.rungs=[1,2]", "method.flow.halving.keep=0.75",
           "method.flow.halving.protocol_overrides={epochs: 3, batch_size: 8, max_steps_per_epoch: 2}",
           "space.network.C=4", "space.network.N=1"]


@pytest.fixture(scope="module")
def halving_run(tmp_path_factory) -> dict:
    return _run(tmp_path_factory.mktemp("gm_halving"), *HALVING)


def test_successive_halving_end_to_end(halving_run):
    """The halving record in the tree, arch.json's provenance and result.json agree; both leaves survive rung 1
    and train on to epoch 2, and the winner is the best of rung 2 by the moving-average score."""
    from nascli.search.few_shot.winner import moving_average

    run = Path(halving_run["run_dir"])
    record = json.loads((run / "tree" / "state.json").read_text())["winner"]
    assert record["rule"] == "successive_halving" and [r["epochs"] for r in record["rungs"]] == [[0, 1], [1, 2]]
    first, second = record["rungs"]
    assert sorted(first["scores"]) == ["0.0", "0.1"] and sorted(first["kept"]) == ["0.0", "0.1"]
    assert sorted(second["scores"]) == sorted(first["kept"]) and second["kept"] == [record["node"]]
    for leaf in first["scores"]:
        curve = [m["test_acc"] for m in RunDir(run / "tree" / leaf / "standalone").read_metrics()]
        assert len(curve) == 2  # continued from its rung-1 checkpoint, not restarted
        assert first["scores"][leaf] == pytest.approx(moving_average(curve[:1]))
        assert second["scores"][leaf] == pytest.approx(moving_average(curve[1:2]))
    assert record["node"] == max(first["kept"], key=lambda i: (second["scores"][i], -first["kept"].index(i)))
    arch = json.loads((run / "arch.json").read_text())
    assert arch["provenance"]["node"] == record["node"] == halving_run["tree"]["winner"]
    assert arch["provenance"]["winner"] == record and halving_run["tree"]["winner_rule"] == "successive_halving"
    assert json.loads((run / "split_tree.json").read_text())["winner"] == record["node"]
    assert halving_run["halving_time_s"] > 0


def test_children_differ_exactly_on_the_split_edge(full_run):
    run = Path(full_run["run_dir"])
    tree = SplitTree.load(run / "tree" / "state.json")
    assert [n.id for n in tree.nodes] == ["0", "0.0", "0.1", "0.0.0", "0.0.1", "0.1.0", "0.1.1"]
    for parent in [n for n in tree.nodes if n.split]:
        kids = tree.children(parent.id)
        assert len(kids) == 2
        a, b = kids[0].restrictions[-1], kids[1].restrictions[-1]
        assert (a.cell_type, a.edge) == (b.cell_type, b.edge) == (parent.split["cell_type"], parent.split["edge"])
        assert sorted(a.ops + b.ops) == list(range(5)) and not set(a.ops) & set(b.ops)
        assert [a.ops, b.ops] == parent.split["groups"]
        assert kids[0].restrictions[:-1] == kids[1].restrictions[:-1] == parent.restrictions
        assert parent.split["edge"] not in {r.edge for r in parent.restrictions}  # an undecided edge
        best = max(parent.split["edges"], key=lambda s: s["cross"])  # NB201: the largest cross distance
        assert (best["cell_type"], best["edge"], best["groups"]) == (a.cell_type, a.edge, [a.ops, b.ops])
    assert not any(n.restart for n in tree.children("0"))  # not the last split: children continue the parent
    for leaf in tree.leaves():  # the last split restarts; every leaf's arch keeps its groups
        assert leaf.restart and leaf.start_epoch == 2 and leaf.end_epoch == 4
        assert arch_text(json.loads((run / "tree" / leaf.id / "arch.json").read_text())) == leaf.result["arch"]
        text = arch_ops(leaf.result["arch"])
        for r in leaf.restrictions:
            assert text[r.edge] in r.ops, (leaf.id, r, leaf.result["arch"])


NB201_ORDER = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def arch_ops(text: str) -> list[int]:
    """Op index per NB201 edge (alpha-row order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2) of an arch string."""
    nodes = [part.strip("|").split("|") for part in text.split("+")]
    by_pair = {}
    for dst, node in enumerate(nodes, start=1):
        for item in node:
            op, src = item.split("~")
            by_pair[(dst, int(src))] = NB201_ORDER.index(op)
    return [by_pair[k] for k in [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]]


def test_children_mix_only_their_group_on_the_split_edge(full_run):
    """A child's mixer gives weight 0 to the ops outside its group on the split edge, and only there."""
    from nascli.commands.search import SearchSession
    from nascli.commands.run import RunDir
    from nascli.search.few_shot.flow import GradientMatchingFlow

    run = Path(full_run["run_dir"])
    tree = SplitTree.load(run / "tree" / "state.json")
    cfg = compose_cfg("search", TINY)
    flow = GradientMatchingFlow(split_epochs=[1, 2], num_batches=1)
    flow.make_session = SearchSession
    for kid in tree.children("0"):
        s = flow.session(cfg, RunDir(run), kid, check_search_config(cfg))
        w = s.supernet.mixer.edge_weights("cell").weights
        r = kid.restrictions[-1]
        for e in range(6):
            for o in range(5):
                assert (w[e, o] == 0) == (e == r.edge and o not in r.ops)


def test_every_checkpoint_carries_its_node_restrictions(full_run):
    """Each node's checkpoint (children: also their initial one, written at the split) holds exactly the node's
    groups in the mixer's state (``restricted_ops`` rows: cell type index, edge, kept op)."""
    run = Path(full_run["run_dir"])
    for node in SplitTree.load(run / "tree" / "state.json").nodes:
        sup = torch.load(run / "tree" / node.id / "checkpoint.pt", weights_only=True)["supernet"]
        rows = sup["mixer.restricted_ops"].tolist() if node.restrictions else []
        assert "mixer.restricted_ops" in sup or not node.restrictions
        assert rows == sorted([0, r.edge, o] for r in node.restrictions for o in r.ops), node.id


def test_end_to_end_artifacts(full_run):
    run = Path(full_run["run_dir"])
    assert full_run["status"] == "ok" and full_run["tree"] == {"nodes": 7, "leaves": 4, "winner_rule": "supernet_accuracy",
                                                                "winner": full_run["tree"]["winner"]}
    tree = json.loads((run / "split_tree.json").read_text())
    assert [n["id"] for n in tree["nodes"] if n["split"]] == ["0", "0.0", "0.1"]
    assert all(len(n["split"]["edges"]) == 6 - n["depth"] for n in tree["nodes"] if n["split"])
    assert (run / "split_tree.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    arch = json.loads((run / "arch.json").read_text())
    prov = arch["provenance"]
    leaves = {n["id"]: n["result"]["val_acc"] for n in tree["nodes"] if n["result"]}
    assert prov["node"] == tree["winner"] and prov["leaves"] == leaves and prov["val_acc"] == max(leaves.values())
    assert [s["node"] for s in prov["splits"]] == ["0", prov["node"].rsplit(".", 1)[0]]
    assert full_run["arch"] == arch_text(arch) and full_run["peak_memory_mb"] > 0
    assert sorted(full_run["leaf_archs"]) == sorted(leaves)
    assert all(Path(p).exists() for p in full_run["leaf_archs"].values())
    weights = arch["scores"]["op_weights"]["cell"]  # the winner's groups: ops outside them have no score
    for split in prov["splits"]:  # every split on the winner's lineage restricted it on that edge
        assert any(w is None for w in weights[split["edge"]])
    assert sum(w is None for row in weights for w in row) == sum(5 - len(r["ops"]) for r in
                                                                  _node(tree, prov["node"])["restrictions"])


def _node(tree: dict, node_id: str) -> dict:
    return next(n for n in tree["nodes"] if n["id"] == node_id)


def arch_text(arch_json: dict) -> str:
    from nascli.spaces import get_space
    return get_space("nb201").arch_from_json(arch_json).to_string()


class Interrupt(Exception):
    pass


def _compare_runs(a: Path, b: Path) -> None:
    ta, tb = (json.loads((r / "tree" / "state.json").read_text()) for r in (a, b))
    assert _strip(ta) == _strip(tb)
    for leaf in [n["id"] for n in ta["nodes"] if (a / "tree" / n["id"] / "standalone").exists()]:
        ca, cb = (torch.load(r / "tree" / leaf / "standalone" / "checkpoint.pt", weights_only=True) for r in (a, b))
        ca.pop("metrics"), cb.pop("metrics")  # its wall time differs
        assert_same_nested(ca, cb, f"stand-alone {leaf}")
        ma, mb = ([m["test_acc"] for m in RunDir(r / "tree" / leaf / "standalone").read_metrics()] for r in (a, b))
        assert ma == mb, leaf
    for node in ta["nodes"]:
        ca, cb = (torch.load(r / "tree" / node["id"] / "checkpoint.pt", weights_only=True) for r in (a, b))
        ca.pop("elapsed"), cb.pop("elapsed")
        assert_same_nested(ca, cb, f"node {node['id']}")
        ma, mb = ([_strip(json.loads(line)) for line in (r / "tree" / node["id"] / "metrics.jsonl").read_text()
                   .splitlines()] for r in (a, b))
        assert ma == mb, node["id"]
    assert _strip(json.loads((a / "arch.json").read_text())) == _strip(json.loads((b / "arch.json").read_text()))


@pytest.mark.parametrize("where,at", [("step", 6), pytest.param("step", 12, marks=pytest.mark.slow),
                                      pytest.param("scoring", 14, marks=pytest.mark.slow), ("halving", 2),
                                      pytest.param("halving", 3, marks=pytest.mark.slow),
                                      pytest.param("halving_save", 3, marks=pytest.mark.slow)])
def test_resume_through_a_split_is_exact(request, tmp_path, monkeypatch, where, at):
    """Interrupted inside node 0.1's training (step 6: after the root split, from a mid-epoch checkpoint), inside
    leaf 0.0.1 (step 12: after the last split, a restarted child), while node 0.1 scores its edges (the 14th
    edge scored), or in successive halving: inside the 2nd leaf's stand-alone epoch of rung 1, inside rung 2's
    first epoch, or while rung 2's first leaf writes its checkpoint (the 3rd stand-alone checkpoint write, after
    its metrics): the resumed tree ends bit-identical to the uninterrupted one."""
    import nascli.search.few_shot.flow as flow_mod
    import nascli.train.loop as loop
    from nascli.search.optimizers import SEARCH_OPTIMIZERS

    halving = where.startswith("halving")
    full_run = request.getfixturevalue("halving_run" if halving else "full_run")
    extra = HALVING if halving else []
    count = [0]
    if halving:
        target, name = (loop, "_train_epoch") if where == "halving" else (RunDir, "save_checkpoint")
        real = getattr(target, name)

        def crashing(*args, **kwargs):
            if where == "halving" or "standalone" in str(args[0].path):
                count[0] += 1
                if count[0] == at:
                    raise Interrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(target, name, crashing)
    elif where == "step":
        cls = SEARCH_OPTIMIZERS.get("bilevel")
        real = cls.step

        def crashing(self, *args):
            count[0] += 1
            if count[0] == at:
                raise Interrupt
            return real(self, *args)

        monkeypatch.setattr(cls, "step", crashing)
    else:
        real = flow_mod.edge_distance

        def crashing(*args, **kwargs):
            count[0] += 1
            if count[0] == at:
                raise Interrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(flow_mod, "edge_distance", crashing)
    with pytest.raises(Interrupt):
        _run(tmp_path, *extra)
    monkeypatch.undo()
    run = next(tmp_path.rglob("state.json")).parent.parent
    assert not (run / "result.json").exists()
    resumed = _run(tmp_path, *extra)
    assert resumed["arch"] == full_run["arch"] and Path(resumed["run_dir"]) == run
    _compare_runs(Path(full_run["run_dir"]), run)
    assert not list(run.rglob("*.tmp"))


# ---------------------------------------------------------------------------------- nas derive
def _derive(run: Path, *extra: str) -> dict:
    from nascli.commands.derive import derive

    return derive(compose_cfg("derive", [f"run='{run}'", "num_threads=1", *extra]))


def test_derive_magnitude_reproduces_the_winning_leaf(full_run, halving_run):
    """`nas derive selection=magnitude` on a GM-NAS run re-derives the winning leaf's arch inside its groups (both
    winner rules), written as arch_magnitude.json beside arch.json, without touching the tree."""
    for res in (full_run, halving_run):
        run = Path(res["run_dir"])
        state = (run / "tree" / "state.json").read_bytes()
        out = _derive(run)
        assert out["status"] == "ok" and out["arch"] == res["arch"]
        written = json.loads((run / "arch_magnitude.json").read_text())
        assert arch_text(written) == res["arch"] and written["provenance"]["epoch"] == res["epochs"]
        assert (run / "tree" / "state.json").read_bytes() == state


def test_derive_stays_inside_the_leaf_groups_where_the_unrestricted_argmax_leaves_them(full_run, monkeypatch):
    """With alphas that favour an op outside the winner's group on its split edge, the derived arch still takes
    the best op of the group there: the criterion sees the leaf's sub-space, not the whole space."""
    from nascli.search.builder import SearchSetup

    run = Path(full_run["run_dir"])
    winner = json.loads((run / "arch.json").read_text())["provenance"]
    tree = SplitTree.load(run / "tree" / "state.json")
    r = tree.node(winner["node"]).restrictions[-1]
    outside = next(o for o in range(5) if o not in r.ops)
    real = SearchSetup.selection_context

    def tilted(self):
        with torch.no_grad():  # op `outside` far ahead, then the group's last op
            self.supernet.mixer.alphas["cell"][r.edge] = 0.0
            self.supernet.mixer.alphas["cell"][r.edge, outside] = 50.0
            self.supernet.mixer.alphas["cell"][r.edge, r.ops[-1]] = 10.0
        return real(self)

    monkeypatch.setattr(SearchSetup, "selection_context", tilted)
    out = _derive(run)
    assert arch_ops(out["arch"])[r.edge] == r.ops[-1]


@pytest.mark.parametrize("selection", ["ostr", "perturbation"])
def test_probing_criteria_derive_a_few_shot_run_inside_the_leafs_groups(full_run, monkeypatch, selection):
    """The probing criteria score only the ops a restricted edge keeps: with an op outside the group far ahead
    in alpha (as in the magnitude test above), every restricted edge still gets an op of its group."""
    from nascli.search.builder import SearchSetup

    run = Path(full_run["run_dir"])
    winner = json.loads((run / "tree" / "state.json").read_text())["winner"]
    tree = SplitTree.load(run / "tree" / "state.json")
    restrictions = tree.node(winner["node"]).restrictions
    real = SearchSetup.selection_context

    def tilted(self):
        with torch.no_grad():
            for r in restrictions:
                outside = next(o for o in range(5) if o not in r.ops)
                self.supernet.mixer.alphas["cell"][r.edge, outside] = 50.0
        return real(self)

    monkeypatch.setattr(SearchSetup, "selection_context", tilted)
    out = _derive(run, f"selection={selection}")
    ops = arch_ops(out["arch"])
    assert restrictions and all(ops[r.edge] in r.ops for r in restrictions)
    assert (run / f"arch_{selection}.json").exists()


def test_derive_on_an_unfinished_few_shot_run_is_one_line(tmp_path):
    """A tree that has not picked its winner yet (here: only its root exists) cannot be derived from."""
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_config(compose_cfg("search", TINY))
    SplitTree.root(1).save(run.path / "tree" / "state.json")
    with pytest.raises(NasError) as exc:
        _derive(run.path)
    assert "\n" not in str(exc.value) and "is a few-shot search that has not picked its winning leaf yet" in str(exc.value)


# ---------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("override,words", [
    ("method.flow.split_epochs=[1,4]", "must all be below search.epochs=4"),
    ("method.supernet.impl=fast", "use method.supernet.impl=reference"),
    ("method.flow.cell_types=[reduce]", "are not cell types of space nb201: cell"),
])
def test_impossible_flows_are_refused_in_one_line(override, words):
    with pytest.raises(IncompatibleError) as exc:
        check_search_config(compose_cfg("search", [*TINY, override]))
    assert "\n" not in str(exc.value) and words in str(exc.value)


@pytest.mark.parametrize("override,error,words", [
    ("method.flow.distance=l1", UnknownChoiceError,
     "unknown gm_nas distance 'l1'; valid choices: cos, mse, per_filter_cos"),
    ("method.flow.partition=mincut", UnknownChoiceError, "valid choices: balanced, pair_rest"),
    ("method.flow.split_epochs=[2,1]", OptionError, "must be increasing epochs >= 1, got [2, 1]"),
    ("+method.flow.repeat=3", OptionError, "unknown key method.flow.repeat"),
])
def test_bad_flow_options_are_one_line(override, error, words):
    with pytest.raises(error) as exc:
        check_search_config(compose_cfg("search", [*TINY, override]))
    assert "\n" not in str(exc.value) and words in str(exc.value)


def test_cli_refuses_a_late_split_without_a_traceback(tmp_path):
    proc = nas("search", *TINY, "method.flow.split_epochs=[4]", f"out_root={tmp_path}", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "split_epochs=[4] must all be below search.epochs=4" in proc.stderr
    assert not list(tmp_path.rglob("*.json"))


def test_default_recipes_per_space():
    nb = compose_cfg("search", ["method=gm_nas"])
    assert (list(nb.method.flow.split_epochs), nb.search.epochs, nb.search.batch_size, nb.method.flow.num_batches,
            nb.method.flow.partition, nb.method.flow.edge_choice, nb.method.flow.hard) == \
        ([15, 30], 60, 48, 100, "pair_rest", "max_cross", True)
    dt = compose_cfg("search", ["method=gm_nas", "space=darts"])
    assert (list(dt.method.flow.split_epochs), dt.search.epochs, list(dt.method.flow.cell_types),
            dt.method.flow.partition, dt.method.flow.edge_choice, dt.method.flow.hard) == \
        ([2, 4, 6], 21, ["normal"], "balanced", "min_within", False)
    assert check_search_config(nb).flow[0] == check_search_config(dt).flow[0] == "few_shot"


@pytest.mark.slow
def test_darts_space_recipe_splits_normal_edges_into_balanced_groups(tmp_path):
    """The DARTS-space recipe (soft op weights, balanced groups of 2..4 of the 8 ops, smallest within-group
    distance, normal-cell edges only, successive halving under the DARTS protocol, here shrunk) end to end on a
    tiny DARTS supernet, and `nas derive` on it keeps the winner's normal-cell groups."""
    from nascli.commands.search import search

    res = search(compose_cfg("search", [
        "method=gm_nas", "space=darts", "space.supernet.C=4", "space.supernet.layers=3", "dataset.num_train=32",
        "dataset.num_test=16", "dataset.image_size=8", "search.batch_size=4", "search.epochs=2",
        "search.max_steps_per_epoch=1", "method.flow.split_epochs=[1]", "method.flow.num_batches=1",
        "method.flow.halving.rungs=[1,2]", "space.network.C=4", "space.network.layers=3",
        "method.flow.halving.protocol_overrides={epochs: 2, batch_size: 4, max_steps_per_epoch: 1, "
        "auxiliary_weight: 0.0, cutout: 0}", "num_threads=1", f"out_root={tmp_path}"]))
    assert res["tree"]["winner_rule"] == "successive_halving" and res["halving_time_s"] > 0
    derived = _derive(Path(res["run_dir"]))
    assert derived["arch"] == res["arch"]
    tree = json.loads((Path(res["run_dir"]) / "split_tree.json").read_text())
    split = tree["nodes"][0]["split"]
    assert split["cell_type"] == "normal" and len(split["edges"]) == 14
    assert all(s["cell_type"] == "normal" for s in split["edges"])
    assert split["within"] == min(s["within"] for s in split["edges"])
    assert 2 <= min(len(g) for g in split["groups"]) and sorted(sum(split["groups"], [])) == list(range(8))
    assert len(tree["nodes"]) == 3 and json.loads((Path(res["run_dir"]) / "arch.json").read_text())["provenance"]


def test_a_component_deciding_the_search_end_is_refused(monkeypatch):
    from nascli.search.components import COMPONENTS, _load_all

    _load_all()
    monkeypatch.setattr(COMPONENTS.get("dirichlet_kl"), "decides_search_end", True, raising=False)
    with pytest.raises(IncompatibleError) as exc:
        check_search_config(compose_cfg("search", [*TINY, "method.components=[{name: dirichlet_kl, scale: 0.0}]"]))
    assert "component dirichlet_kl decides when the search ends" in str(exc.value)


# ---------------------------------------------------------------------------------- children as jobs
def test_children_as_separate_jobs_end_bit_identical_to_the_inline_run(full_run, tmp_path):
    """children=jobs stops at each level's untrained children; one node=<id> job per child trains it (the order
    does not matter, and a second job for a trained node does nothing); the finished tree equals the inline one."""
    first = _run(tmp_path, "method.flow.children=jobs")
    run = Path(first["run_dir"])
    assert first["status"] == "waiting" and first["pending_nodes"] == ["0.0", "0.1"]
    assert "method.flow.node=0.0,0.1" in first["next"] and not (run / "result.json").exists()
    assert run.name == Path(full_run["run_dir"]).name            # children/node are not part of the run hash
    rounds = [["0.1", "0.0"], ["0.1.1", "0.0.0", "0.0.1", "0.1.0"]]
    for expected in rounds:
        for node in expected:
            job = _run(tmp_path, f"method.flow.node={node}")
            assert job["status"] == "ok" and job["node"] == node and Path(job["run_dir"]) == run
            assert (run / "tree" / node / "trained.json").exists()
        again = _run(tmp_path, f"method.flow.node={expected[0]}")   # already trained: nothing redone
        assert again["status"] == "ok"
        out = _run(tmp_path, "method.flow.children=jobs")
        if expected is not rounds[-1]:
            assert out["status"] == "waiting" and sorted(out["pending_nodes"]) == sorted(rounds[1])
    assert out["status"] == "ok" and out["arch"] == full_run["arch"]
    _compare_runs(Path(full_run["run_dir"]), run)


def test_node_jobs_refuse_in_one_line(tmp_path):
    with pytest.raises(NasError, match=r"method.flow.node=0.1: .* has no split tree yet; run the search without"):
        _run(tmp_path, "method.flow.node=0.1")
    _run(tmp_path, "method.flow.children=jobs")
    with pytest.raises(NasError, match=r"method.flow.node=0.7 is not a node of .*; its pending nodes: 0.0, 0.1"):
        _run(tmp_path, "method.flow.node=0.7")
    with pytest.raises(OptionError, match="method.flow.children='later' is not allowed; valid choices: inline, jobs"):
        _run(tmp_path, "method.flow.children=later")


def test_each_node_logs_its_own_tensorboard_events(full_run):
    """logger=auto (TensorBoard installed): one event file per tree node, one loss point per node epoch."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from nascli.logger.tensorboard import event_files

    run = Path(full_run["run_dir"])
    tree = json.loads((run / "tree" / "state.json").read_text())
    for node in tree["nodes"]:
        node_dir = run / "tree" / node["id"]
        assert len(event_files(node_dir)) == 1, node["id"]
        acc = EventAccumulator(str(node_dir), size_guidance={"scalars": 0})
        acc.Reload()
        metrics = RunDir(node_dir).read_metrics()
        points = acc.Scalars("loss/train")
        assert [p.step for p in points] == [m["epoch"] for m in metrics], node["id"]
        assert [p.value for p in points] == pytest.approx([m["train_loss"] for m in metrics], rel=1e-6)
