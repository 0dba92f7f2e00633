"""Conformer-space architectures: one op per edge of the block DAG, written as text or JSON (data only).

The block has an input node 0 and ``NUM_NODES - 1`` = 4 computed nodes; node i reads every node j < i, so
the edges in alpha-row order are (0->1), (0->2), (1->2), (0->3), (1->3), (2->3), (0->4), ..., (3->4)
(10 edges). Text form: one ``|op~src|...|`` group per node, groups joined by ``+``, every input listed
(``none`` for a dropped edge), e.g. the plain Conformer block

    |ffn_half~0|+|none~0|mhsa~1|+|none~0|none~1|conv_15~2|+|none~0|none~1|none~2|ffn_half~3|

Derivation rules (:data:`DERIVE_RULES`), ``k`` the inputs kept per node:
* ``default`` (k = 2): the DARTS rule, as NNI's DARTS mutator exports a cell (the package docstring says why):
  per node the k incoming edges with the largest score (an edge's score: ``edge_scores`` when given, else its
  best non-``none`` op score), each with its best non-``none`` op; the other edges get ``none``;
* ``top1`` (k = 1): the same keeping one input per node (a chain of sub-layers, like the Conformer block);
* ``all_edges``: every edge keeps its argmax op, ``none`` included (the NB201 rule).
Ties go to the lower index (earlier edge, earlier op).
"""
from __future__ import annotations

import json
import re
from typing import Any

import torch

from nascli.errors import BadArchError
from nascli.spaces.base import Arch
from nascli.spaces.conformer.ops import CONFORMER_OPS

NAME = "conformer"
NUM_NODES = 5
#: (src, dst) of each edge in alpha-row order
EDGES: tuple[tuple[int, int], ...] = tuple((j, i) for i in range(1, NUM_NODES) for j in range(i))
NONE = "none"
#: derivation rule -> inputs kept per node (None: every edge, none allowed)
DERIVE_RULES: dict[str, int | None] = {"default": 2, "top1": 1, "all_edges": None}
_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d+)$")


class ConformerArch(Arch):
    """``ops[k]`` is the op of edge ``EDGES[k]``."""

    space = NAME

    def __init__(self, ops: tuple[str, ...] | list[str]):
        ops = tuple(ops)
        if len(ops) != len(EDGES):
            raise BadArchError(f"a conformer arch needs {len(EDGES)} edge ops, got {len(ops)}")
        bad = [op for op in ops if op not in CONFORMER_OPS]
        if bad:
            raise BadArchError(f"unknown conformer op {bad[0]!r}; valid ops: {', '.join(CONFORMER_OPS)}")
        self.ops = ops

    def edges(self) -> list[tuple[int, int, str]]:
        """(src, dst, op) of every edge."""
        return [(s, d, op) for (s, d), op in zip(EDGES, self.ops)]

    def to_string(self) -> str:
        return "+".join("|" + "|".join(f"{op}~{s}" for s, d, op in self.edges() if d == i) + "|"
                        for i in range(1, NUM_NODES))

    def to_json(self) -> dict[str, Any]:
        return {"schema": 1, "space": NAME, "arch": self.to_string(), "edges": [list(e) for e in self.edges()]}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConformerArch) and other.ops == self.ops

    def __hash__(self) -> int:
        return hash(self.ops)

    def __repr__(self) -> str:
        return f"ConformerArch({self.to_string()!r})"


def chain(ops: list[str]) -> ConformerArch:
    """The arch whose node i reads only node i - 1 through ``ops[i - 1]``."""
    return ConformerArch([ops[d - 1] if s == d - 1 else NONE for s, d in EDGES])


#: hand-picked archs by name: the plain Conformer block FFN/2 -> MHSA -> conv (kernel 15) -> FFN/2
NAMED_ARCHS: dict[str, ConformerArch] = {
    "conformer_baseline": chain(["ffn_half", "mhsa", "conv_15", "ffn_half"]),
}


def parse_conformer(text: str) -> ConformerArch:
    """A named arch, the text form of the module docstring, or arch.json text."""
    s = str(text).strip().strip("'\"").strip()
    if s in NAMED_ARCHS:
        return NAMED_ARCHS[s]
    if s.startswith("{"):
        try:
            return arch_from_json(json.loads(s))
        except json.JSONDecodeError as exc:
            raise BadArchError(f"conformer arch JSON text is not valid JSON ({exc})") from None
    groups = s.split("+")
    example = NAMED_ARCHS["conformer_baseline"].to_string()
    if len(groups) != NUM_NODES - 1:
        raise BadArchError(f"not a conformer arch {text!r}: expected a name ({', '.join(NAMED_ARCHS)}) or "
                           f"{NUM_NODES - 1} '+'-separated node groups like {example!r}")
    ops: dict[tuple[int, int], str] = {}
    for i, group in enumerate(groups, start=1):
        tokens = group[1:-1].split("|") if len(group) > 1 and group[0] == group[-1] == "|" else []
        if len(tokens) != i:
            raise BadArchError(f"not a conformer arch {text!r}: node group {i} {group!r} must list its {i} "
                               f"inputs as |op~src|")
        for tok in tokens:
            m = _TOKEN.match(tok)
            if not m or int(m.group(2)) >= i or (int(m.group(2)), i) in ops:
                raise BadArchError(f"bad conformer token {tok!r} in node group {i}: expected op~src with each "
                                   f"src in 0..{i - 1} once")
            ops[(int(m.group(2)), i)] = m.group(1)
    return ConformerArch([ops[e] for e in EDGES])


def arch_from_json(data: Any) -> ConformerArch:
    """Inverse of :meth:`ConformerArch.to_json` (reads ``arch``; other keys ignored)."""
    if not isinstance(data, dict) or data.get("space") != NAME or not isinstance(data.get("arch"), str):
        found = data.get("space") if isinstance(data, dict) else type(data).__name__
        raise BadArchError(f"not a conformer arch.json (space={found!r}); expected \"space\": \"{NAME}\" and "
                           "\"arch\": a conformer arch string")
    return parse_conformer(data["arch"])


def derive(op_scores: torch.Tensor, edge_scores: torch.Tensor | None, rule: str) -> ConformerArch:
    """The arch of ``op_scores`` (E, O) under ``rule`` (module docstring)."""
    if rule not in DERIVE_RULES:
        raise BadArchError(f"unknown conformer derivation rule {rule!r}; valid rules: {', '.join(DERIVE_RULES)}")
    scores = op_scores.detach().float()
    keep = DERIVE_RULES[rule]
    if keep is None:
        return ConformerArch([CONFORMER_OPS[int(torch.argmax(row))] for row in scores])
    real = scores.clone()
    real[:, CONFORMER_OPS.index(NONE)] = float("-inf")
    strength = real.max(dim=1).values if edge_scores is None else edge_scores.detach().float()
    ops = [NONE] * len(EDGES)
    for i in range(1, NUM_NODES):
        rows = [k for k, (_, d) in enumerate(EDGES) if d == i]
        ranked = sorted(rows, key=lambda k: (-float(strength[k]), k))[:keep]
        for k in ranked:
            ops[k] = CONFORMER_OPS[int(torch.argmax(real[k]))]
    return ConformerArch(ops)
