"""``nas derive`` on a few-shot (GM-NAS) run: the criterion runs on the winning leaf's supernet inside its sub-space.

A few-shot run keeps no supernet at its root: every node is a run directory of its own under ``<run>/tree/<id>/``
(:mod:`.flow`). :func:`leaf_setup` rebuilds the winning leaf's search from the run's ``config.yaml`` (the leaf's
own settings, ``GradientMatchingFlow.node_config``) and its checkpoint, with the leaf's op groups restricted on
its mixer (``Mixer.restrict_edge``; the checkpoint carries them, the tree is the truth), and hands the criterion a
space whose ``discretize`` never picks an op outside a group (:mod:`.restricted`). So ``selection=magnitude``
re-derives exactly the leaf's own arch. The probing criteria (``ostr``, ``perturbation``) probe only the ops a
restricted edge keeps (``edge_candidates`` in nascli/search/selection/probe.py).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nascli.errors import NasError
from nascli.rundir import RunDir
from nascli.search.few_shot.flow import FLOWS, apply_restrictions
from nascli.search.few_shot.restricted import restricted_context
from nascli.search.few_shot.tree import SplitTree


def is_few_shot_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` is the root of a few-shot search (it holds ``tree/state.json``)."""
    return (Path(run_dir) / "tree" / "state.json").exists()


@dataclasses.dataclass
class LeafSetup:
    """What ``nas derive`` reads from a search setup: the space and a selection context (restricted)."""

    setup: Any
    node: str
    epoch: int

    @property
    def space(self):
        return self.setup.space

    def selection_context(self):
        return restricted_context(self.setup)


def winner_id(run_dir: Path, tree: SplitTree) -> str:
    """The winning leaf: the tree's winner record, or (runs from before it was kept there) arch.json's provenance."""
    if tree.winner and tree.winner.get("node"):
        return str(tree.winner["node"])
    arch = Path(run_dir) / "arch.json"
    if arch.exists():
        node = json.loads(arch.read_text()).get("provenance", {}).get("node")
        if node:
            return str(node)
    raise NasError(f"run={run_dir} is a few-shot search that has not picked its winning leaf yet; finish it "
                   f"(rerun the same nas search) before deriving")


def leaf_setup(search_cfg: DictConfig, run_dir: Path, selection_cfg: DictConfig, device) -> LeafSetup:
    """The winning leaf's restored search, ready for ``write_selection`` (module docstring)."""
    from nascli.plain import plain
    from nascli.search.builder import load_supernet
    from nascli.search.composition import check_search_config
    from nascli.search.options import construct

    probe = OmegaConf.create(OmegaConf.to_container(search_cfg, resolve=False))
    probe.selection = selection_cfg
    check_search_config(probe)  # a criterion that cannot respect the groups: the one-line refusal
    tree = SplitTree.load(Path(run_dir) / "tree" / "state.json")
    node = tree.node(winner_id(run_dir, tree))
    opts = dict(plain(search_cfg.method.flow))
    flow = construct(FLOWS.get(opts.pop("name")), opts, "method.flow")
    leaf = RunDir(Path(run_dir) / "tree" / node.id)
    state = leaf.load_checkpoint(map_location=device)
    if state is None:
        raise NasError(f"run={run_dir}: the winning leaf {node.id} has no checkpoint.pt in {leaf.path}")
    setup = load_supernet(flow.node_config(search_cfg, node), state, device)
    apply_restrictions(setup.supernet.mixer, node)
    return LeafSetup(setup, node.id, int(state["epoch"]) + flow.epoch_offset(node))
