"""The few-shot search flow of GM-NAS (METHODS.md 8; skhu101/GM-NAS@a69837d WS-GM/nasbench201/train_search.py,
WS-GM/sota/cnn/train_search_ws.py): one supernet becomes a tree of sub-supernets.

With split epochs s_1 < ... < s_L and E = ``search.epochs`` in all:

1. the root supernet trains epochs [0, s_1);
2. at s_k every supernet of the level scores each undecided edge by gradient matching
   (:mod:`.gradient_matching`), partitions the best edge's ops into two groups (:mod:`.partition`) and
   becomes two children, each restricted on that edge to one group (``Mixer.restrict_edge``: the mixture is
   renormalised over the group, as the reference's softmax over the group's alphas, or a sampler draws among
   the group only, so any mixer is a possible base) and starting from a copy of its parent's whole state (weights, alphas,
   optimizer and stream states, RNG); the children train epochs [s_k, s_{k+1}) (s_{L+1} = E) one after the other;
3. ``restart_final`` (the reference scripts' ``--restart final``): the children of the last split start from a
   freshly initialised supernet instead (seeded with the run's seed, so all of them start from the same
   weights) and run E - s_L epochs with their own schedule (``--fix_sche 1``);
   ``freeze_arch_until_final_split`` (``--restart final`` sets ``warmup_epoch = split_ckpts[-1]``; the
   DARTS-space script's ``--fix_alpha_equal``): alpha is not updated before the last split;
4. each leaf selects its architecture inside its sub-space (the run's selection criterion, whose space view
   scores the ops outside the leaf's groups -inf, :mod:`.restricted`; magnitude: the space's rule on the mixer's
   scores, as the reference ``genotype()`` masks with ``enc``);
5. ``winner`` (:mod:`.winner`) picks the final architecture among the leaves: ``successive_halving`` (the
   paper's rule: stand-alone training of the leaves' architectures, halved at rung ends) or
   ``supernet_accuracy`` (the leaf whose supernet has the highest accuracy on the architecture split).

Every node is a resumable unit under ``<run>/tree/<id>/`` (checkpoint.pt, metrics.jsonl); the tree's
progress is ``<run>/tree/state.json`` (:mod:`.tree`), the halving's included (each leaf's stand-alone run
under ``<run>/tree/<id>/standalone/``). A split is computed from the node's final checkpoint
in a fresh session, its children's checkpoints are written, and only then does the tree record the split,
so a kill at any point resumes to exactly the uninterrupted result.

Children as separate jobs (``method.flow.children=jobs``): the run trains the root, splits it, and stops with
status ``waiting`` and the ids of the pending nodes instead of training them; ``method.flow.node=<id>`` (one
job per node, e.g. ``nas search -m ... method.flow.node=0.0,0.1`` through any Hydra launcher) trains just that
node, under its own lock (``tree/<id>/.lock``), to its end epoch and writes ``tree/<id>/trained.json``; the
next run without ``node`` finds those nodes trained, splits them, and stops again at the next level's pending
nodes, until the leaves are selected and the winner is chosen. A node job writes only under ``tree/<id>/`` and
never touches ``tree/state.json``, so node jobs run at once without a race; every node is the same resumable
unit as inline (a killed node job reruns from its last checkpoint), and the tree ends bit-identical to the
inline run. Neither option is part of the run's hash.

The command layer hands the flow its session factory and its console (:func:`run_flow`), so this module
imports nothing from ``nascli.commands``.
"""
from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from rich.markup import escape

from nascli.errors import NasError, OptionError
from nascli.logger import observing
from nascli.logger.session import run_observers
from nascli.registry import Registry
from nascli.rundir import RunDir, atomic_write_json
from nascli.search.few_shot.gradient_matching import DISTANCES, edge_distance, shared_parameters
from nascli.search.few_shot.partition import EDGE_CHOICES, PARTITION_RULES, best_partition, choose_edge
from nascli.search.few_shot.restricted import restricted_context, restricted_scores
from nascli.search.few_shot.tree import Node, SplitTree
from nascli.search.few_shot.winner import WINNERS

FLOWS: Registry[type] = Registry("search flow")
#: how a split tree's children are trained: in this process, or as separate jobs (module docstring)
CHILDREN_MODES = ("inline", "jobs")
TRAINED_MARK = "trained.json"


def apply_restrictions(mixer, node: Node) -> None:
    """Restrict the mixer to exactly the node's groups (``Mixer.restrict_edge``: the edge's mixture renormalised
    over its group, a sampler drawing only there)."""
    mixer.clear_restrictions()
    for r in node.restrictions:
        mixer.restrict_edge(r.cell_type, r.edge, r.ops)


def load_node_state(s, state: dict[str, Any], node: Node) -> None:
    """Restore a node's checkpoint into its session; the tree's restrictions stay the truth (a checkpoint written
    before restrictions were part of the mixer's state carries none)."""
    s.engine.load_state_dict(state)
    s.elapsed = float(state.get("elapsed", 0.0))
    apply_restrictions(s.supernet.mixer, node)


@FLOWS.register("few_shot")
class GradientMatchingFlow:
    """GM-NAS few-shot search (module docstring). Options are the method's ``flow`` node."""

    def __init__(self, *, split_epochs: list[int], num_batches: int = 100, distance: str = "cos",
                 partition: str = "pair_rest", edge_choice: str = "max_cross", hard: bool = True,
                 cell_types: list[str] | None = None, restart_final: bool = True,
                 freeze_arch_until_final_split: bool = True, winner: str = "supernet_accuracy",
                 halving: dict[str, Any] | None = None, children: str = "inline", node: Any = None):
        self.split_epochs = [int(s) for s in split_epochs]
        if not self.split_epochs or self.split_epochs != sorted(set(self.split_epochs)) or self.split_epochs[0] < 1:
            raise OptionError(f"method.flow.split_epochs must be increasing epochs >= 1, got {list(split_epochs)}")
        self.num_batches = int(num_batches)
        if self.num_batches < 1:
            raise OptionError(f"method.flow.num_batches must be >= 1, got {num_batches}")
        for registry, name in ((DISTANCES, distance), (PARTITION_RULES, partition), (EDGE_CHOICES, edge_choice)):
            registry.get(name)  # an unknown name: one-line UnknownChoiceError with the valid choices
        self.distance, self.partition, self.edge_choice = distance, partition, edge_choice
        self.hard = bool(hard)
        self.cell_types = None if cell_types is None else [str(c) for c in cell_types]
        self.restart_final = bool(restart_final)
        self.freeze = bool(freeze_arch_until_final_split)
        self.winner = str(winner)
        self.winner_rule = WINNERS.get(self.winner)(halving)  # bad halving options: one line now
        if children not in CHILDREN_MODES:
            raise OptionError(f"method.flow.children={children!r} is not allowed; valid choices: "
                              f"{', '.join(CHILDREN_MODES)}")
        self.children = children
        self.node = node_id(node)

    # ------------------------------------------------------------------ configs of the nodes
    def node_config(self, cfg: DictConfig, node: Node) -> DictConfig:
        """The search config one node's session is built from (module docstring, points 2-3)."""
        out = copy.deepcopy(cfg)
        OmegaConf.set_struct(out, False)
        out.method.flow = None
        last = self.split_epochs[-1]
        if node.restart:
            out.search.epochs = int(cfg.search.epochs) - last
        elif self.freeze:
            out.optimizer.arch_start_epoch = max(int(cfg.optimizer.get("arch_start_epoch", 0) or 0), last)
        return out

    def epoch_offset(self, node: Node) -> int:
        return self.split_epochs[-1] if node.restart else 0

    def session(self, cfg: DictConfig, run: RunDir, node: Node, composition):
        s = self.make_session(self.node_config(cfg, node), RunDir(run.path / "tree" / node.id), composition)
        apply_restrictions(s.supernet.mixer, node)
        return s

    # ------------------------------------------------------------------ the flow
    def run(self, cfg: DictConfig, run: RunDir, composition, make_session: Callable[..., Any],
            say: Callable[[str], None]) -> dict[str, Any]:
        """The whole tree (module docstring); ``make_session(cfg, run_dir, composition)`` builds one node's
        search session (``nascli.commands.search.SearchSession``), ``say`` prints progress."""
        self.make_session, self.say = make_session, say
        state_path = run.path / "tree" / "state.json"
        tree = SplitTree.load(state_path)
        if tree is None:
            run.path.mkdir(parents=True, exist_ok=True)
            run.write_config(cfg)
            tree = SplitTree.root(self.split_epochs[0])
            tree.save(state_path)
            self.say(f"[bold]search[/] (few-shot) {run.path}")
        else:
            self.say(f"[bold]resuming[/] few-shot tree {run.path}")
        while (node := tree.next_open()) is not None:
            if node.status == "pending":
                if self.children == "jobs" and node.depth > 0 and not self.is_trained(run, node):
                    return self.waiting(run, tree)
                self.train(cfg, run, node, composition)
                node.status = "trained"
                tree.save(state_path)
            elif node.depth < len(self.split_epochs):
                self.split(cfg, run, tree, node, composition)
                tree.save(state_path)
            else:
                self.select(cfg, run, node, composition)
                tree.save(state_path)
        winner = self.winner_rule.choose(cfg, run, tree, lambda: tree.save(state_path), self.say)
        tree.save(state_path)
        return self.finish(cfg, run, tree, winner)

    # ------------------------------------------------------------------ children as jobs
    @staticmethod
    def is_trained(run: RunDir, node: Node) -> bool:
        """Whether a node job (or an inline run) left ``node`` trained to its end epoch (``tree/<id>/trained.json``)."""
        mark = run.path / "tree" / node.id / TRAINED_MARK
        return mark.exists() and json.loads(mark.read_text()).get("end_epoch") == node.end_epoch

    def waiting(self, run: RunDir, tree: SplitTree) -> dict[str, Any]:
        """The result of a run that stops at untrained children (``children=jobs``); nothing marks it finished."""
        pending = [n.id for n in tree.nodes if n.status == "pending" and not self.is_trained(run, n)]
        line = job_command(pending)
        self.say(f"[bold]waiting[/] for nodes {', '.join(pending)} of {run.path}: train them as jobs ({escape(line)}), "
                 "then run this command again")
        return {"status": "waiting", "command": "search", "run_dir": str(run.path), "pending_nodes": pending,
                "next": line}

    def run_node(self, cfg: DictConfig, run: RunDir, composition, make_session: Callable[..., Any],
                 say: Callable[[str], None]) -> dict[str, Any]:
        """``method.flow.node=<id>``: train that node of the run's tree as its own job (module docstring)."""
        self.make_session, self.say = make_session, say
        tree = SplitTree.load(run.path / "tree" / "state.json")
        if tree is None:
            raise NasError(f"method.flow.node={self.node}: {run.path} has no split tree yet; run the search without "
                           "method.flow.node first (it trains the root and splits it)")
        pending = [n.id for n in tree.nodes if n.status == "pending"]
        try:
            node = tree.node(self.node)
        except KeyError:
            raise NasError(f"method.flow.node={self.node} is not a node of {run.path}'s split tree; its pending "
                           f"nodes: {', '.join(pending) or 'none'}") from None
        if node.status == "pending" and not self.is_trained(run, node):
            self.train(cfg, run, node, composition)
        else:
            self.say(f"node {node.id} of {run.path} is already trained (not redone)")
        return {"status": "ok", "command": "search", "run_dir": str(run.path), "node": node.id,
                "node_dir": str(run.path / "tree" / node.id), "end_epoch": node.end_epoch}

    def train(self, cfg: DictConfig, run: RunDir, node: Node, composition) -> None:
        """Train ``node`` to its end epoch from its checkpoint (or from scratch), like ``SearchSession.execute``,
        holding the node's own lock (a node job and an inline run never train one node at once), and mark it
        trained."""
        with RunDir(run.path / "tree" / node.id).lock():
            self._train(cfg, run, node, composition)
            atomic_write_json(run.path / "tree" / node.id / TRAINED_MARK, {"node": node.id, "end_epoch": node.end_epoch})

    def _train(self, cfg: DictConfig, run: RunDir, node: Node, composition) -> None:
        s = self.session(cfg, run, node, composition)
        engine, offset = s.engine, self.epoch_offset(node)
        state = s.run.load_checkpoint(map_location=s.device)
        if state is not None:
            load_node_state(s, state, node)
        else:
            s.run.path.mkdir(parents=True, exist_ok=True)
        s.run.truncate_metrics(engine.epoch)
        every = int(cfg.search.get("checkpoint_every_steps", 0) or 0)
        # the logger (logger=) writes each node's own event file under tree/<id>/, node epochs as steps
        with observing(run_observers(cfg, s.run.path, engine.epoch, s.space)) as engine.observers:
            for epoch in range(engine.epoch, node.end_epoch - offset):
                engine.start_epoch(epoch)
                t0 = time.perf_counter()
                timing = engine.run_epoch(checkpoint=s.checkpoint, checkpoint_every=every)
                s.elapsed += time.perf_counter() - t0
                record = s.epoch_record(epoch, timing)
                record["node"], record["tree_epoch"] = node.id, epoch + offset
                s.run.append_metrics(record)
                engine.publish_epoch(epoch, record)
                engine.epoch, engine.step = epoch + 1, 0
                s.checkpoint()
                self.say(f"node {node.id} epoch {epoch + offset + 1}/{cfg.search.epochs} "
                         f"train_acc {record.get('train_acc', 0):.1f} "
                         f"val_acc {record.get('val_acc', float('nan')):.1f}")

    def undecided_edges(self, space, node: Node) -> list[tuple[str, int]]:
        types = self.cell_types or list(space.cell_types)
        done = node.restricted()
        return [(ct, e) for ct in space.cell_types if ct in types for e in range(space.num_edges(ct))
                if (ct, e) not in done]

    def split(self, cfg: DictConfig, run: RunDir, tree: SplitTree, node: Node, composition) -> None:
        """Score every undecided edge of ``node`` from its final checkpoint, split the chosen one, write the
        children's initial checkpoints, then record the split in the tree (module docstring)."""
        s = self.session(cfg, run, node, composition)
        load_node_state(s, s.run.load_checkpoint(map_location=s.device), node)
        t0 = time.perf_counter()
        mixer, net = s.supernet.mixer, s.supernet
        net.train()
        edges = self.undecided_edges(s.space, node)
        scores, partitions = [], []
        for ct, e in edges:
            dist = edge_distance(lambda b: s.optimizer.loss(b), s.engine.train_stream.next, mixer, ct, e,
                                 len(mixer.ops), shared_parameters(net, ct, e), num_batches=self.num_batches,
                                 hard=self.hard, distance=self.distance,
                                 restore=lambda: apply_restrictions(mixer, node))
            p = best_partition(dist, self.partition)
            partitions.append(p)
            scores.append({"cell_type": ct, "edge": e, "groups": [list(g) for g in p.groups],
                           "within": p.within, "cross": p.cross, "distance": dist.tolist()})
        best = choose_edge(partitions, self.edge_choice)
        ct, e = edges[best]
        final = node.depth + 1 == len(self.split_epochs)
        restart = final and self.restart_final
        end = int(cfg.search.epochs) if final else self.split_epochs[node.depth + 1]
        seconds = time.perf_counter() - t0
        s.elapsed += seconds
        kids = tree.add_children(node, [list(g) for g in partitions[best].groups], ct, e, end, restart)
        if not restart:
            for kid in kids:  # the parent's state with the kid's restrictions in its mixer's state
                apply_restrictions(mixer, kid)
                state = s.engine.state_dict()
                state["elapsed"] = 0.0
                RunDir(run.path / "tree" / kid.id).save_checkpoint(state)
            apply_restrictions(mixer, node)
        node.split = {"cell_type": ct, "edge": e, "ops": [[mixer.ops[o] for o in g] for g in partitions[best].groups],
                      "groups": [list(g) for g in partitions[best].groups], "within": partitions[best].within,
                      "cross": partitions[best].cross, "edge_choice": self.edge_choice, "epoch": node.end_epoch,
                      "scoring_time_s": round(seconds, 3), "node_time_s": round(s.elapsed, 3), "edges": scores}
        node.status = "split"
        self.say(f"node {node.id}: split {ct} edge {e} into {node.split['ops']} "
                      f"(cross {partitions[best].cross:.4f}, within {partitions[best].within:.4f})")

    def select(self, cfg: DictConfig, run: RunDir, node: Node, composition) -> None:
        """A leaf's arch (the run's selection criterion inside the leaf's sub-space,
        :func:`.restricted.restricted_context`) and its supernet's accuracy on the architecture split."""
        from nascli.data import iterate_eval
        from nascli.plain import plain
        from nascli.search.options import construct
        from nascli.search.selection import SELECTIONS

        s = self.session(cfg, run, node, composition)
        state = s.run.load_checkpoint(map_location=s.device)
        load_node_state(s, state, node)
        opts = dict(plain(cfg.selection))
        name = opts.pop("name")
        chosen = construct(SELECTIONS.get(name), opts, "selection", restricted_context(s.setup))
        arch = chosen.arch
        op_scores, _ = s.supernet.mixer.selection_scores()
        s.supernet.eval()
        correct = seen = 0
        with torch.no_grad():
            for x, y in iterate_eval(s.setup.arch_split, s.setup.info, int(cfg.search.batch_size)):
                correct += int((s.supernet(x).argmax(-1) == y).sum())
                seen += int(y.shape[0])
        data = arch.to_json()
        data["provenance"] = {"run": str(run.path), "node": node.id, "selection": name,
                              "restrictions": [vars(r) for r in node.restrictions]}
        data["scores"] = {**chosen.scores, "op_weights": {ct: [[None if v == float("-inf") else v for v in row] for row in sc.tolist()]
                                         for ct, sc in restricted_scores(op_scores, s.supernet.mixer).items()}}
        s.run.write_json("arch.json", data)
        node.result = {"arch": arch.to_string(), "val_acc": 100.0 * correct / max(seen, 1),
                       "benchmark": s.space.ground_truth(arch, str(cfg.dataset.name)),
                       "node_time_s": round(float(state.get("elapsed", 0.0)), 3)}
        node.status = "done"
        self.say(f"leaf {node.id}: val_acc {node.result['val_acc']:.2f} {node.result['arch']}")

    # ------------------------------------------------------------------ artifacts
    def finish(self, cfg: DictConfig, run: RunDir, tree: SplitTree, winner: Node) -> dict[str, Any]:
        from nascli.search.few_shot.plot import draw_split_tree
        from nascli.spaces import get_space

        space = get_space(str(cfg.space.name))
        leaves = tree.leaves()
        lineage, cur = [], winner
        while cur.parent is not None:
            parent = tree.node(cur.parent)
            lineage.insert(0, {"node": parent.id, "cell_type": parent.split["cell_type"], "edge": parent.split["edge"],
                               "ops": parent.split["ops"], "cross": parent.split["cross"],
                               "within": parent.split["within"]})
            cur = parent
        arch = space.arch_from_json(json.loads((run.path / "tree" / winner.id / "arch.json").read_text()))
        data = arch.to_json()
        data["provenance"] = {"run": str(run.path), "flow": "few_shot", "selection": str(cfg.selection.name),
                              "node": winner.id, "val_acc": winner.result["val_acc"], "epoch": int(cfg.search.epochs),
                              "splits": lineage, "leaves": {n.id: n.result["val_acc"] for n in leaves},
                              "winner": tree.winner}
        data["scores"] = json.loads((run.path / "tree" / winner.id / "arch.json").read_text()).get("scores", {})
        data["benchmark"] = winner.result["benchmark"]
        arch_path = run.write_json("arch.json", data)
        try:
            space.draw(arch, run.path / "cells" / "arch")
        except ImportError as exc:  # pictures are optional
            self.say(f"[yellow]note:[/] no cell pictures ({exc})")
        tree_path = run.write_json("split_tree.json", {**tree.to_json(), "winner": winner.id,
                                                     "winner_rule": tree.winner})
        picture = draw_split_tree(tree, winner.id, run.path / "split_tree.png")
        metrics = [m for n in tree.nodes for m in RunDir(run.path / "tree" / n.id).read_metrics()]
        split_time = sum(n.split["scoring_time_s"] for n in tree.nodes if n.split)
        train_time = sum(m.get("epoch_time_s", 0.0) for m in metrics)
        halving_time = sum(m.get("wall_s", 0.0) for n in leaves
                           for m in RunDir(run.path / "tree" / n.id / "standalone").read_metrics())
        result = {
            "status": "ok", "command": "search", "run_dir": str(run.path), "arch_path": str(arch_path),
            "arch": arch.to_string(), "space": space.name, "dataset": str(cfg.dataset.name),
            "method": str(cfg.method.name), "optimizer": str(cfg.optimizer.name),
            "selection": str(cfg.selection.name), "seed": int(cfg.seed), "epochs": int(cfg.search.epochs),
            "skip_count": space.skip_count(arch), "benchmark": winner.result["benchmark"],
            "search_time_s": round(train_time + split_time + halving_time, 3), "split_time_s": round(split_time, 3),
            "halving_time_s": round(halving_time, 3),
            "images_per_s": round(sum(m["images_per_s"] for m in metrics) / max(len(metrics), 1), 2),
            "peak_memory_mb": round(max((m["peak_memory_mb"] for m in metrics), default=0.0), 1),
            "tree": {"nodes": len(tree.nodes), "leaves": len(leaves), "winner": winner.id, "winner_rule": self.winner},
            "leaf_archs": {n.id: str(run.path / "tree" / n.id / "arch.json") for n in leaves},
            "artifacts": {"split_tree.json": str(tree_path), "split_tree.png": str(picture) if picture else None},
        }
        run.write_json("result.json", result)
        return result


def node_id(value: Any) -> str | None:
    """A node id from an override: Hydra reads ``method.flow.node=0.1`` as the float 0.1 and ``0`` as an int;
    ids are ``0``, ``0.1``, ``0.1.0``... (children numbered 0 and 1), so ``str`` gives the id back."""
    return None if value is None else str(value)


def job_command(nodes: list[str]) -> str:
    """The command line that trains ``nodes`` as one job each: this run's overrides plus method.flow.node."""
    from hydra.core.hydra_config import HydraConfig

    try:
        given = [o for o in HydraConfig.get().overrides.task if not o.startswith("method.flow.children")]
    except ValueError:  # not under Hydra (the Python API, tests)
        given = ["<this run's overrides>"]
    return " ".join(["nas search -m", *given, f"method.flow.node={','.join(nodes)}"])


def _flow(cfg: DictConfig):
    from nascli.plain import plain
    from nascli.search.options import construct

    opts = dict(plain(cfg.method.flow))
    name = opts.pop("name")
    return construct(FLOWS.get(name), opts, "method.flow")


def flow_node(cfg: DictConfig) -> str | None:
    """The node a ``method.flow.node=<id>`` job trains (None: the whole flow)."""
    flow = cfg.method.get("flow")
    return node_id(flow.get("node")) if flow is not None else None


def run_flow(cfg: DictConfig, run: RunDir, composition, make_session: Callable[..., Any],
             say: Callable[[str], None]) -> dict[str, Any]:
    """Run the flow named by ``method.flow.name`` with the node's other keys as options."""
    return _flow(cfg).run(cfg, run, composition, make_session, say)


def run_flow_node(cfg: DictConfig, run: RunDir, composition, make_session: Callable[..., Any],
                  say: Callable[[str], None]) -> dict[str, Any]:
    """Train the one node of ``method.flow.node`` (a job of ``children=jobs``, module docstring)."""
    return _flow(cfg).run_node(cfg, run, composition, make_session, say)

