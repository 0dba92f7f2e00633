"""conformer as a :class:`SearchSpace` (see the package docstring for what comes from where)."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from nascli.errors import IncompatibleError, OptionError
from nascli.spaces import SPACES
from nascli.spaces.base import Edge, SearchSpace
from nascli.spaces.conformer.arch import (EDGES, NAME, NONE, NUM_NODES, ConformerArch, arch_from_json, derive,
                                          parse_conformer)
from nascli.spaces.conformer.ops import CONFORMER_OPS, PARAMETER_FREE_OPS

#: the space has one supernet implementation: one module per op per edge
IMPLS = ("reference",)


@SPACES.register(NAME)
class ConformerSpace(SearchSpace):
    """Darts-Conformer: DARTS edges inside a Conformer block, for CTC speech recognition."""

    name = NAME
    tasks = ("speech_recognition",)
    ops = CONFORMER_OPS
    cell_types = ("cell",)
    parameter_free_ops = PARAMETER_FREE_OPS

    def edges(self, cell_type: str = "cell") -> list[Edge]:
        if cell_type != "cell":
            raise KeyError(f"space conformer has no cell type {cell_type!r}; valid: cell")
        return [Edge("cell", k, s, d, 1) for k, (s, d) in enumerate(EDGES)]

    def build_supernet(self, mixer, vocab_size: int, in_features: int, edge_parts=(), *, in_channels: int = 1,
                       d_model: int = 16, heads: int = 2, blocks: int = 2, dropout: float = 0.0,
                       max_relative: int = 16, impl: str = "reference", track_running_stats: bool = True):
        """The supernet (nascli/spaces/conformer/supernet.py) with the ``space.supernet`` sizes. ``in_channels``
        (the builder's image channels) is accepted and unused: the features' width is ``in_features``."""
        from nascli.spaces.conformer.supernet import ConformerSupernet
        if impl not in IMPLS:
            raise OptionError(f"space conformer impl={impl!r}; valid choices: {', '.join(IMPLS)}")
        return ConformerSupernet(self, mixer, vocab_size, in_features, edge_parts, d_model=d_model, heads=heads,
                                 blocks=blocks, dropout=dropout, max_relative=max_relative,
                                 track_running_stats=track_running_stats)

    def build_network(self, arch: ConformerArch, vocab_size: int, in_features: int, in_channels: int = 1,
                      d_model: int = 16, heads: int = 2, blocks: int = 2, dropout: float = 0.1,
                      max_relative: int = 16, **_: Any):
        """The discrete encoder (nascli/spaces/conformer/network.py) with the ``space.network`` sizes."""
        from nascli.spaces.conformer.network import ConformerNetwork
        if not isinstance(arch, ConformerArch):
            raise IncompatibleError(f"space conformer cannot build a {type(arch).__name__} ({arch})")
        return ConformerNetwork(arch, vocab_size, in_features, d_model=d_model, heads=heads, blocks=blocks,
                                dropout=dropout, max_relative=max_relative)

    def parse_arch(self, text: str) -> ConformerArch:
        return parse_conformer(text)

    def arch_from_json(self, data: dict[str, Any]) -> ConformerArch:
        return arch_from_json(data)

    def random_arch(self, rng: random.Random) -> ConformerArch:
        """Uniform over what the default rule derives: per node 2 distinct inputs (node 1: its one input),
        each with a non-``none`` op."""
        ops = [o for o in CONFORMER_OPS if o != NONE]
        chosen = [NONE] * len(EDGES)
        for i in range(1, NUM_NODES):
            rows = [k for k, (_, d) in enumerate(EDGES) if d == i]
            for k in rng.sample(rows, min(2, len(rows))):
                chosen[k] = rng.choice(ops)
        return ConformerArch(chosen)

    def discretize(self, op_scores: dict[str, torch.Tensor], edge_scores=None, rule: str = "default") -> ConformerArch:
        """The rule of nascli/spaces/conformer/arch.py (``default``: DARTS top-2 inputs per node)."""
        scores = op_scores.get("cell")
        if scores is None or tuple(scores.shape) != (len(EDGES), len(CONFORMER_OPS)):
            raise IncompatibleError(f"conformer derives from cell scores of shape {(len(EDGES), len(CONFORMER_OPS))}, "
                                    f"got {None if scores is None else tuple(scores.shape)}")
        return derive(scores, None if edge_scores is None else edge_scores.get("cell"), rule)

    def skip_count(self, arch: ConformerArch) -> int:
        return sum(op == self.skip_op for op in arch.ops)

    def cell_ops(self, arch: ConformerArch) -> dict[str, list[str]]:
        """The ops of the kept (non-``none``) edges (all ten when every edge is ``none``)."""
        return {"cell": [op for op in arch.ops if op != NONE] or list(arch.ops)}

    def draw(self, arch: ConformerArch, directory: Path) -> list[Path]:
        """``cell.png``: nodes 0..4 (0 the block input, 4 its output before the LayerNorm), ``none`` omitted."""
        from nascli.viz import draw_cell

        nodes = [str(i) for i in range(NUM_NODES)]
        edges = [(str(s), str(d), op) for s, d, op in arch.edges() if op != NONE]
        path = Path(directory) / "cell.png"
        draw_cell(path, title="Conformer block", nodes=nodes, edges=edges, inputs=[nodes[0]], outputs=[nodes[-1]],
                  rank={n: i for i, n in enumerate(nodes)})
        return [path]
