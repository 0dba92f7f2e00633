"""The R-DARTS reduced search spaces S1-S4 (Zela et al., ICLR'20; METHODS.md 8) as DARTS space variants.

Each space keeps the DARTS cell (14 edges per cell type in the DARTS edge order, normal and reduce cells,
the same supernet, derivation rule and evaluation networks) but offers on edge e of a cell type only the ops
of its op table ``EDGE_OPS[space][cell_type][e]`` (automl/RobustDARTS src/spaces.py ``primitives_1..4``):

* S1 (``darts_s1``): a different pair of ops per edge (the per-edge table below);
* S2 (``darts_s2``): {skip_connect, sep_conv_3x3} on every edge;
* S3 (``darts_s3``): {none, skip_connect, sep_conv_3x3} on every edge;
* S4 (``darts_s4``): {noise, sep_conv_3x3} on every edge (``noise``: N(0, 1) of the input's strided shape).

The alpha of a cell type is (14, K), K = 2 (S1, S2, S4) or 3 (S3); column k of edge e weights that edge's
k-th op. ``SearchSpace.ops`` names the columns: the common op list where every edge has the same one (S2-S4),
``op0, op1`` in S1, whose columns mean different ops on different edges. The space's ``edge_ops`` gives the
real names, and derived genotypes use them, so NetworkCIFAR trains an S1-S4 cell as any DARTS cell.

A variant has no ground-truth table; NAS-Bench-301 scores cells made of the 8 DARTS ops (S1-S3 cells are
DARTS-space cells) and answers n/a with a note for cells holding ``noise``.
"""
from __future__ import annotations

from typing import Any

from nascli.spaces import SPACES
from nascli.spaces.base import Arch
from nascli.spaces.darts.genotype import CELL_TYPES, DartsArch
from nascli.spaces.darts.ops import PRIMITIVES
from nascli.spaces.darts.space import DartsSpace

Table = dict[str, tuple[tuple[str, ...], ...]]

_SKIP, _SEP3, _NONE, _NOISE = "skip_connect", "sep_conv_3x3", "none", "noise"
_MAX, _AVG, _DIL3, _DIL5 = "max_pool_3x3", "avg_pool_3x3", "dil_conv_3x3", "dil_conv_5x5"
_NUM_EDGES = 14

# automl/RobustDARTS src/spaces.py primitives_1 (S1), in the DARTS edge order 0->2, 1->2, 0->3, 1->3, 2->3, ...
_S1: Table = {
    "normal": (
        (_SKIP, _DIL3), (_SKIP, _DIL5), (_SKIP, _DIL5), (_SKIP, _SEP3), (_SKIP, _DIL3), (_MAX, _SKIP),
        (_SKIP, _SEP3), (_SKIP, _SEP3), (_SKIP, _DIL3), (_SKIP, _SEP3), (_MAX, _SKIP), (_SKIP, _DIL3),
        (_DIL3, _DIL5), (_DIL3, _DIL5),
    ),
    "reduce": (
        (_MAX, _AVG), (_MAX, _DIL3), (_MAX, _AVG), (_MAX, _AVG), (_SKIP, _DIL5), (_MAX, _AVG),
        (_MAX, _SEP3), (_SKIP, _DIL3), (_SKIP, _DIL5), (_MAX, _AVG), (_MAX, _AVG), (_SKIP, _DIL5),
        (_SKIP, _DIL5), (_SKIP, _DIL5),
    ),
}


def _uniform(ops: tuple[str, ...]) -> Table:
    """The same op list on every edge of both cell types (S2-S4)."""
    return {ct: (ops,) * _NUM_EDGES for ct in CELL_TYPES}


# space name -> op table; automl/RobustDARTS src/spaces.py spaces_dict s1..s4 (METHODS.md 8)
EDGE_OPS: dict[str, Table] = {
    "darts_s1": _S1,
    "darts_s2": _uniform((_SKIP, _SEP3)),
    "darts_s3": _uniform((_NONE, _SKIP, _SEP3)),
    "darts_s4": _uniform((_NOISE, _SEP3)),
}


def column_names(table: Table) -> tuple[str, ...]:
    """The names of the alpha columns: the common op list when every edge has the same one, else op0, op1, ..."""
    lists = {ops for ct in CELL_TYPES for ops in table[ct]}
    if len(lists) == 1:
        return next(iter(lists))
    widths = {len(ops) for ops in lists}
    if len(widths) != 1:
        raise ValueError(f"edges of one space need the same number of ops, got {sorted(widths)}")
    return tuple(f"op{k}" for k in range(widths.pop()))


class ReducedDartsSpace(DartsSpace):
    """A DARTS space variant with a per-edge op table (module docstring); subclasses set ``name`` and ``table``."""

    table: Table

    def __init__(self) -> None:
        super().__init__()
        for ct in CELL_TYPES:
            if len(self.table[ct]) != len(self.edges(ct)):
                raise ValueError(f"{self.name}: the {ct} op table has {len(self.table[ct])} edges, the cell "
                                 f"{len(self.edges(ct))}")
            for ops in self.table[ct]:  # none must keep one column, as the mixers read it from self.ops
                if any((op == self.none_op) != (col == self.none_op) for op, col in zip(ops, self.ops)):
                    raise ValueError(f"{self.name}: 'none' must sit in the same alpha column on every edge")

    def edge_ops(self, cell_type: str) -> list[tuple[str, ...]]:
        """Per edge (alpha-row order) its candidate ops in alpha-column order (``EDGE_OPS``)."""
        self.edges(cell_type)  # one-line error for an unknown cell type
        return list(self.table[cell_type])

    def ground_truth(self, arch: Arch, dataset: str) -> dict[str, Any] | None:
        """None: no tabular benchmark covers the R-DARTS spaces."""
        return None

    def surrogate_estimate(self, arch: Arch) -> dict[str, Any]:
        """NB301's estimate for a cell of the 8 DARTS ops; ``nb301: None`` with a note for ``noise`` cells."""
        genotype = self._check(arch)
        foreign = sorted({op for ct in CELL_TYPES for op, _ in genotype.cell(ct) if op not in PRIMITIVES})
        if foreign:
            return {"nb301": None, "nb301_note": f"n/a: NB301 only knows the 8 DARTS ops, this {self.name} cell "
                                                 f"holds {', '.join(foreign)}"}
        return super().surrogate_estimate(arch)


def _register(name: str, table: Table) -> type[ReducedDartsSpace]:
    """A registered ReducedDartsSpace subclass (and its arch class) for ``name``."""
    valid = tuple(dict.fromkeys([*PRIMITIVES, *(op for ct in CELL_TYPES for ops in table[ct] for op in ops)]))
    arch_cls = type(f"{name.title().replace('_', '')}Arch", (DartsArch,),
                    {"space": name, "valid_ops": valid, "__module__": __name__,
                     "__doc__": f"A genotype of the {name} space (``DartsArch`` with space={name!r})."})
    cls = type(f"{name.title().replace('_', '')}Space", (ReducedDartsSpace,),
               {"name": name, "table": table, "ops": column_names(table), "arch_cls": arch_cls,
                "__module__": __name__, "__doc__": f"The R-DARTS space {name[-2:].upper()} (module docstring)."})
    return SPACES.register(name)(cls)


RDARTS_SPACES: dict[str, type[ReducedDartsSpace]] = {name: _register(name, table) for name, table in EDGE_OPS.items()}
