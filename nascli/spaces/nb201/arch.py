"""NAS-Bench-201 architecture strings: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.

Group k lists the inputs of node k+1; ``op~j`` means the edge from node j. Edge (alpha-row) order is
``sorted(['1<-0','2<-0','2<-1','3<-0','3<-1','3<-2'])`` (AutoDL search_cells.py), which coincides with
the order in which the string lists the edges.
"""
from __future__ import annotations

import re
from typing import Any

from nascli.errors import BadArchError
from nascli.spaces.base import Arch

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4
# (src, dst) of each edge in alpha-row order
NB201_EDGES: tuple[tuple[int, int], ...] = tuple((j, i) for i in range(1, NUM_NODES) for j in range(i))

_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d+)$")


class NB201Arch(Arch):
    """One op per edge, ``ops[k]`` on edge ``NB201_EDGES[k]``."""

    space = "nb201"

    def __init__(self, ops: tuple[str, ...] | list[str]):
        ops = tuple(ops)
        if len(ops) != len(NB201_EDGES):
            raise BadArchError(f"NB201 arch needs {len(NB201_EDGES)} ops, got {len(ops)}")
        for op in ops:
            if op not in NB201_OPS:
                raise BadArchError(f"unknown NB201 op {op!r}; valid ops: {', '.join(NB201_OPS)}")
        self.ops = ops

    def edges(self) -> list[tuple[int, int, str]]:
        """(src, dst, op) per edge."""
        return [(s, d, op) for (s, d), op in zip(NB201_EDGES, self.ops)]

    def to_string(self) -> str:
        groups = []
        for i in range(1, NUM_NODES):
            groups.append("|" + "|".join(f"{op}~{s}" for (s, d), op in zip(NB201_EDGES, self.ops) if d == i) + "|")
        return "+".join(groups)

    def to_json(self) -> dict[str, Any]:
        return {"schema": 1, "space": "nb201", "arch": self.to_string(),
                "edges": [[s, d, op] for s, d, op in self.edges()]}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NB201Arch) and other.ops == self.ops

    def __hash__(self) -> int:
        return hash(self.ops)

    def __repr__(self) -> str:
        return f"NB201Arch({self.to_string()!r})"


def parse_nb201(text: str) -> NB201Arch:
    """Parse a canonical NB201 string (surrounding quotes and whitespace tolerated)."""
    s = text.strip().strip("'\"").strip()
    groups = s.split("+")
    if len(groups) != NUM_NODES - 1:
        raise BadArchError(f"bad NB201 arch string {text!r}: expected 3 '+'-separated node groups like "
                           "'|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|...~0|...~1|...~2|'")
    ops: dict[tuple[int, int], str] = {}
    for i, group in enumerate(groups, start=1):
        if not (group.startswith("|") and group.endswith("|")):
            raise BadArchError(f"bad NB201 arch string {text!r}: node group {group!r} must be wrapped in '|'")
        tokens = [t for t in group[1:-1].split("|")]
        if len(tokens) != i:
            raise BadArchError(f"bad NB201 arch string {text!r}: node {i} needs {i} inputs, got {len(tokens)}")
        for tok in tokens:
            m = _TOKEN.match(tok)
            if not m:
                raise BadArchError(f"bad NB201 token {tok!r} in {text!r}; expected op~input")
            op, src = m.group(1), int(m.group(2))
            if op not in NB201_OPS:
                raise BadArchError(f"unknown NB201 op {op!r}; valid ops: {', '.join(NB201_OPS)}")
            if src >= i or (src, i) in ops:
                raise BadArchError(f"bad NB201 token {tok!r}: node {i} takes each input 0..{i - 1} once")
            ops[(src, i)] = op
    return NB201Arch([ops[e] for e in NB201_EDGES])
