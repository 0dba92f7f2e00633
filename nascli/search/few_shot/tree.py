"""The split tree of a few-shot search: its nodes (sub-supernets), their restrictions and progress, as JSON.

A node is one supernet: the root is the whole supernet; a child is its parent with one more edge restricted
to an op group. Its state moves ``pending`` -> ``trained`` -> ``split`` (it has children) or ``done`` (a leaf
whose architecture was selected). The tree is written atomically after every change
(:func:`nascli.rundir.atomic_write_json`), and every change is made only after the files it refers to (the
children's initial checkpoints) are written, so a run killed at any point resumes from a consistent tree.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nascli.errors import CheckpointError
from nascli.rundir import atomic_write_json

TREE_FORMAT = "nascli-gm-tree-1"
STATUSES = ("pending", "trained", "split", "done")


@dataclass
class Restriction:
    """Edge ``edge`` of ``cell_type`` keeps only ``ops`` (op indices)."""

    cell_type: str
    edge: int
    ops: list[int]


@dataclass
class Node:
    id: str
    parent: str | None
    depth: int
    start_epoch: int
    end_epoch: int
    restrictions: list[Restriction] = field(default_factory=list)
    restart: bool = False  # starts from a freshly initialised supernet instead of its parent's state
    status: str = "pending"
    split: dict[str, Any] | None = None  # the edge split here, its groups and every edge's scores
    result: dict[str, Any] | None = None  # a leaf's selected arch and its figures

    def restricted(self) -> set[tuple[str, int]]:
        return {(r.cell_type, r.edge) for r in self.restrictions}


@dataclass
class SplitTree:
    nodes: list[Node] = field(default_factory=list)
    winner: dict[str, Any] | None = None  # the winner rule's record (successive halving: its rungs so far)

    @classmethod
    def root(cls, end_epoch: int) -> "SplitTree":
        return cls([Node("0", None, 0, 0, end_epoch)])

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def children(self, node_id: str) -> list[Node]:
        return [n for n in self.nodes if n.parent == node_id]

    def leaves(self) -> list[Node]:
        return [n for n in self.nodes if n.status == "done"]

    def next_open(self) -> Node | None:
        """The first node (creation order: breadth first) that is neither split nor done."""
        return next((n for n in self.nodes if n.status in ("pending", "trained")), None)

    def add_children(self, parent: Node, groups: list[list[int]], cell_type: str, edge: int, end_epoch: int,
                     restart: bool) -> list[Node]:
        kids = []
        for k, ops in enumerate(groups):
            kids.append(Node(f"{parent.id}.{k}", parent.id, parent.depth + 1, parent.end_epoch, end_epoch,
                             [*parent.restrictions, Restriction(cell_type, edge, sorted(int(o) for o in ops))],
                             restart))
        self.nodes.extend(kids)
        return kids

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        return {"format": TREE_FORMAT, "nodes": [asdict(n) for n in self.nodes], "winner": self.winner}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SplitTree":
        if data.get("format") != TREE_FORMAT:
            raise CheckpointError(f"split tree has format {data.get('format')!r}, expected {TREE_FORMAT!r}")
        nodes = []
        for d in data["nodes"]:
            d = dict(d)
            d["restrictions"] = [Restriction(**r) for r in d["restrictions"]]
            nodes.append(Node(**d))
        return cls(nodes, data.get("winner"))

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> "SplitTree | None":
        if not path.exists():
            return None
        return cls.from_json(json.loads(path.read_text()))
