"""The DARTS CNN search space (METHODS.md §0.1): 8 ops, 14 edges per cell, normal and reduce cells.

The op table: edge e of a cell type offers the ops ``edge_ops(cell_type)[e]``, and alpha column k of edge e
weights that edge's k-th op. In the DARTS space every edge offers the 8 PRIMITIVES; the R-DARTS variants
(``rdarts.py``) subclass :class:`DartsSpace` with per-edge op lists. Everything below reads the table, never
PRIMITIVES directly, so the variants share parsing, sampling, derivation, supernet and networks.

Edge (alpha-row) order, quark0/darts@f276dd3 ``cnn/model_search.py``: ``for i in 0..3: for j in 0..i+1``
gives edge ``j -> i+2``, i.e. (0->2, 1->2, 0->3, 1->3, 2->3, 0->4, ..., 4->5). In the reduce cell the
edges leaving the input nodes 0 and 1 have stride 2.

Derivation rules (:meth:`DartsSpace.discretize`):

* ``default``, the DARTS rule (quark0 ``Network.genotype()``): per intermediate node, rank the incoming
  edges by their edge score (given, e.g. PC-DARTS's beta, or else the best non-``none`` op score of the
  edge) and keep the top 2; on each kept edge take the argmax over the non-``none`` ops. The two pairs
  of a node are listed best edge first, as in the reference. Ties go to the lower index (the reference
  uses a stable sort and a strict ``>``).
* ``pairs``, the GDAS rule on the NASNet/DARTS space (D-X-Y/AutoDL-Projects@f46486e
  ``xautodl/models/cell_searchs/search_model_gdas_nasnet.py`` ``genotype()``): per node, rank every
  (non-``none`` op, input) pair over all incoming edges by its op score and keep the top 2; both may come
  from the same input. Ties go to the lower input, then the lower op index (stable sort over inputs x
  ops). ``edge_scores`` are not used by this rule.

Both rules name a chosen column by the edge's own op (``edge_ops(ct)[e][k]``); ``none`` is the column whose op
is ``none`` (never chosen; absent in most R-DARTS variants).
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nascli.errors import BadArchError, UnknownChoiceError
from nascli.spaces import SPACES
from nascli.spaces.base import Arch, Edge, SearchSpace
from nascli.spaces.darts.genotype import CELL_TYPES, NUM_INPUTS, DartsArch, arch_from_json, parse_genotype
from nascli.spaces.darts.genotypes_published import get_published, is_published, published_names
from nascli.spaces.darts.networks import NetworkCIFAR, NetworkImageNet
from nascli.spaces.darts.ops import DARTS_OP_SET, PRIMITIVES, OpSet

STEPS = 4  # intermediate nodes per cell


def cell_graph(arch: DartsArch, cell_type: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    """(nodes, (src, dst, op) edges) of one cell for drawing; concat edges into c_{k} have no op."""
    pairs = list(getattr(arch, cell_type))
    concat = list(getattr(arch, f"{cell_type}_concat"))
    steps = len(pairs) // 2

    def label(i: int) -> str:
        return {0: "c_{k-2}", 1: "c_{k-1}"}.get(i, str(i - 2))

    nodes = [label(i) for i in range(2 + steps)] + ["c_{k}"]
    edges = [(label(src), label(2 + k // 2), op) for k, (op, src) in enumerate(pairs)]
    edges += [(label(i), "c_{k}", "") for i in concat]
    return nodes, edges
RULES: tuple[str, ...] = ("default", "pairs")


def darts_edges(cell_type: str, steps: int = STEPS) -> list[Edge]:
    """The edges of one DARTS cell in alpha-row order (stride 2 on reduce edges from nodes 0 and 1)."""
    if cell_type not in CELL_TYPES:
        raise ValueError(f"unknown DARTS cell type {cell_type!r}; valid: {', '.join(CELL_TYPES)}")
    out: list[Edge] = []
    for i in range(steps):
        for j in range(NUM_INPUTS + i):
            stride = 2 if cell_type == "reduce" and j < NUM_INPUTS else 1
            out.append(Edge(cell_type, len(out), j, NUM_INPUTS + i, stride))
    return out


@SPACES.register("darts")
class DartsSpace(SearchSpace):
    """The DARTS CNN space: discrete side (parsing, sampling, derivation, networks)."""

    name = "darts"
    ops: tuple[str, ...] = PRIMITIVES
    cell_types: tuple[str, ...] = CELL_TYPES
    none_op = "none"
    skip_op = "skip_connect"
    #: ops without parameters (nascli/spaces/param_free.py); stride-2 skip_connect is counted too although its
    #: FactorizedReduce has weights (the name-level rule of R-DARTS's collapse reading)
    parameter_free_ops = frozenset({"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "noise"})
    #: the arch class of this space (its ``space`` name and the ops a genotype may name)
    arch_cls: type[DartsArch] = DartsArch
    #: the modules behind the op names (search cells and discrete networks); sharpDARTS variants bring their own
    op_set: OpSet = DARTS_OP_SET
    #: published genotypes usable by name: None = the DARTS table (genotypes_published.py), else the space's own
    #: lowercase name -> genotype table
    published: dict[str, DartsArch] | None = None

    def __init__(self) -> None:
        self._edges = {ct: darts_edges(ct) for ct in CELL_TYPES}
        self._edge_at = {ct: {(e.src, e.dst): e.index for e in self._edges[ct]} for ct in CELL_TYPES}

    def edge_ops(self, cell_type: str) -> list[tuple[str, ...]]:
        """Per edge (alpha-row order) its candidate op names in alpha-column order; the DARTS space offers
        the 8 PRIMITIVES on every edge."""
        return [tuple(self.ops)] * len(self.edges(cell_type))

    @property
    def none_index(self) -> int | None:
        """The alpha column of ``none`` (the same on every edge), or None when the space has no ``none``."""
        return self.ops.index(self.none_op) if self.none_op in self.ops else None

    def _own(self, arch: DartsArch) -> DartsArch:
        """``arch`` as this space's arch class, after checking every pair against its edge's ops."""
        for ct in CELL_TYPES:
            table = self.edge_ops(ct)
            for k, (op, src) in enumerate(arch.cell(ct)):
                node = NUM_INPUTS + k // 2
                e = self._edge_at[ct].get((src, node))
                if e is not None:
                    allowed = table[e]
                elif len(set(table)) == 1:  # a cell with more nodes than the search cell: the common ops apply
                    allowed = table[0]
                else:
                    raise BadArchError(f"{ct} node {node} is not a node of the {self.name} space, whose edges "
                                       f"offer different ops ({STEPS} nodes)")
                if op not in allowed:
                    where = f"edge {e} ({src} -> {node})" if e is not None else f"node {node}"
                    raise BadArchError(f"op {op!r} on {ct} {where} is not in the {self.name} space; valid "
                                       f"ops there: {', '.join(o for o in allowed)}")
        if type(arch) is self.arch_cls:
            return arch
        return self.arch_cls(**{f: getattr(arch, f) for f in ("normal", "normal_concat", "reduce", "reduce_concat")})

    # ----- structure -------------------------------------------------------------------------------
    def edges(self, cell_type: str) -> list[Edge]:
        if cell_type not in self._edges:
            raise ValueError(f"unknown DARTS cell type {cell_type!r}; valid: {', '.join(CELL_TYPES)}")
        return list(self._edges[cell_type])

    # ----- architectures ---------------------------------------------------------------------------
    def parse_arch(self, text: str) -> DartsArch:
        """A published genotype name (``darts_v2``, ``pc_darts``, ...), ``Genotype(...)`` text, or the
        JSON object of :meth:`DartsArch.to_json`."""
        s = text.strip()
        if self.published is not None:
            if s.lower() in self.published:
                return self._own(self.published[s.lower()])
        elif is_published(s):
            return self._own(get_published(s))
        if s.startswith("{"):
            try:
                data = json.loads(s)
            except json.JSONDecodeError as e:
                raise BadArchError(f"bad DARTS arch JSON: {e}") from None
            return self.arch_from_json(data)
        if "Genotype" not in s:
            names = published_names() if self.published is None else sorted(self.published)
            raise BadArchError(f"unknown {self.name} arch {text!r}: expected a published name "
                               f"({', '.join(names)}) or Genotype(normal=[...], ...) text")
        return self._own(parse_genotype(s, steps=STEPS, arch_cls=self.arch_cls))

    def arch_from_json(self, data: dict[str, Any]) -> DartsArch:
        return self._own(arch_from_json(data, steps=STEPS, arch_cls=self.arch_cls))

    def random_arch(self, rng: random.Random) -> DartsArch:
        """A uniform sample of the discrete space the DARTS rule can produce, i.e. the random baseline of
        DARTS (§3.3) and of Yang et al., "NAS evaluation is frustratingly hard" (ICLR'20), which sample
        architectures from the search space itself: per intermediate node two distinct inputs uniformly
        among the earlier nodes (``rng.sample``), and for each an op uniformly among the non-``none`` ops
        of that edge (``rng.choice``; the 7 non-``none`` PRIMITIVES in the DARTS space); concat = all
        intermediate nodes. Draw order: normal then reduce, node by node. (The exact draw order of their
        samplers was not checked against their code.)"""
        cells: dict[str, Any] = {}
        for ct in CELL_TYPES:
            table = self.edge_ops(ct)
            pairs: list[tuple[str, int]] = []
            for i in range(STEPS):
                for src in rng.sample(range(NUM_INPUTS + i), 2):
                    ops = [o for o in table[self._edge_at[ct][(src, NUM_INPUTS + i)]] if o != self.none_op]
                    pairs.append((rng.choice(ops), src))
            cells[ct] = pairs
            cells[f"{ct}_concat"] = list(range(NUM_INPUTS, NUM_INPUTS + STEPS))
        return self.arch_cls(**cells)

    # ----- derivation ------------------------------------------------------------------------------
    def _scores(self, op_scores: dict[str, torch.Tensor], ct: str) -> torch.Tensor:
        if ct not in op_scores:
            raise ValueError(f"op_scores lacks cell type {ct!r}; need {', '.join(CELL_TYPES)}")
        w = torch.as_tensor(op_scores[ct]).detach().to("cpu", torch.float64)
        shape = (len(self._edges[ct]), len(self.ops))
        if tuple(w.shape) != shape:
            raise ValueError(f"op_scores[{ct!r}] has shape {tuple(w.shape)}, expected {shape} (edges x ops)")
        return w

    def discretize(self, op_scores: dict[str, torch.Tensor],
                   edge_scores: dict[str, torch.Tensor] | None = None, rule: str = "default") -> DartsArch:
        """Scores (higher is better, (14, K) per cell type with K = ops per edge, 8 in the DARTS space;
        ``edge_scores`` (14,)) -> DartsArch by the DARTS rule (``default``) or the GDAS pair rule
        (``pairs``); see the module docstring."""
        if rule not in RULES:
            raise UnknownChoiceError("DARTS derivation rule", rule, RULES)
        none = self.none_index
        candidates = [k for k in range(len(self.ops)) if k != none]
        cells: dict[str, Any] = {}
        for ct in CELL_TYPES:
            w = self._scores(op_scores, ct).tolist()
            table = self.edge_ops(ct)
            es: list[float] | None = None
            if rule == "default" and edge_scores is not None and edge_scores.get(ct) is not None:
                es = torch.as_tensor(edge_scores[ct]).detach().to("cpu", torch.float64).flatten().tolist()
                if len(es) != len(w):
                    raise ValueError(f"edge_scores[{ct!r}] has {len(es)} entries, expected {len(w)}")
            pairs: list[tuple[str, int]] = []
            for dst, edges in self.incoming(ct).items():
                if rule == "default":
                    pairs.extend(self._darts_node(w, es, edges, candidates, table))
                else:
                    pairs.extend(self._pairs_node(w, edges, candidates, table))
            cells[ct] = pairs
            cells[f"{ct}_concat"] = list(range(NUM_INPUTS, NUM_INPUTS + STEPS))
        return self.arch_cls(**cells)

    @staticmethod
    def _darts_node(w: list[list[float]], es: list[float] | None, edges: list[Edge],
                    candidates: list[int], table: list[tuple[str, ...]]) -> list[tuple[str, int]]:
        def best_op(e: Edge) -> int:
            k_best = candidates[0]
            for k in candidates[1:]:
                if w[e.index][k] > w[e.index][k_best]:  # strict: ties keep the lower index
                    k_best = k
            return k_best

        def score(e: Edge) -> float:
            return es[e.index] if es is not None else w[e.index][best_op(e)]

        kept = sorted(edges, key=lambda e: -score(e))[:2]  # stable: ties keep the lower input
        return [(table[e.index][best_op(e)], e.src) for e in kept]

    @staticmethod
    def _pairs_node(w: list[list[float]], edges: list[Edge], candidates: list[int],
                    table: list[tuple[str, ...]]) -> list[tuple[str, int]]:
        cands = [(table[e.index][k], e.src, w[e.index][k]) for e in edges for k in candidates]
        kept = sorted(cands, key=lambda c: -c[2])[:2]  # stable: ties keep lower input, then lower op
        return [(op, src) for op, src, _ in kept]

    def skip_count(self, arch: Arch) -> int:
        """Number of ``skip_connect`` ops in the normal cell (the DARTS collapse indicator)."""
        return sum(op == self.skip_op for op, _ in self._check(arch).normal)

    def cell_ops(self, arch: Arch) -> dict[str, list[str]]:
        """The ops of the derived cells: normal and reduce, in genotype order."""
        arch = self._check(arch)
        return {ct: [op for op, _ in arch.cell(ct)] for ct in CELL_TYPES}

    # ----- what the commands ask ---------------------------------------------------------------------
    def surrogate_estimate(self, arch: Arch) -> dict[str, Any]:
        """``{"nb301": <predicted CIFAR-10 accuracy>}`` from the NAS-Bench-301 surrogate, or ``nb301: None``
        with a note saying why (onnxruntime missing, or a cell the surrogate cannot encode)."""
        from nascli.spaces.darts.nb301 import nb301_unavailable_note, predict_nb301
        try:
            pred = predict_nb301(self._check(arch))
        except BadArchError as exc:  # e.g. a GDAS pair-rule cell with both inputs from one node
            return {"nb301": None, "nb301_note": f"NB301 surrogate cannot score this cell: {exc}"}
        return {"nb301": pred} if pred is not None else {"nb301": None, "nb301_note": nb301_unavailable_note()}

    def draw(self, arch: Arch, directory: Path) -> list[Path]:
        """``normal.png`` and ``reduce.png``: inputs c_{k-2}, c_{k-1}, intermediate nodes 0..3, output c_{k}
        (the concat edges unlabelled)."""
        from nascli.viz import draw_cell

        written = []
        for ct in CELL_TYPES:
            nodes, edges = cell_graph(self._check(arch), ct)
            path = Path(directory) / f"{ct}.png"
            draw_cell(path, title=f"{ct} cell", nodes=nodes, edges=edges, inputs=["c_{k-2}", "c_{k-1}"],
                      outputs=["c_{k}"])
            written.append(path)
        return written

    def network_config(self, net_cfg: dict[str, Any], dataset: str, variants: dict[str, Any]) -> dict[str, Any]:
        """On ImageNet the mobile-setting NetworkImageNet (``variants['imagenet_network']``), else ``net_cfg``."""
        out = dict(net_cfg)
        if dataset == "imagenet":
            out.update(variants.get("imagenet_network") or {}, imagenet=True)
        return out

    # ----- networks --------------------------------------------------------------------------------
    def build_supernet(self, mixer: nn.Module, num_classes: int, in_channels: int, edge_parts=(), *,
                       C: int = 16, layers: int = 8, steps: int = 4, multiplier: int = 4, stem_multiplier: int = 3,
                       impl: str = "fast", track_running_stats: bool = True):
        """The DARTS search network; see :mod:`nascli.spaces.darts.supernet`."""
        from nascli.spaces.darts.supernet import build_darts_supernet
        return build_darts_supernet(self, mixer, num_classes, in_channels, edge_parts, C=C, layers=layers,
                                    steps=steps, multiplier=multiplier, stem_multiplier=stem_multiplier, impl=impl,
                                    track_running_stats=track_running_stats)

    def build_network(self, arch: Arch, num_classes: int, in_channels: int = 3, *,
                      C: int | None = None, layers: int | None = None, auxiliary: bool = True,
                      imagenet: bool = False, drop_path_prob: float = 0.0) -> nn.Module:
        """NetworkCIFAR (defaults C=36, layers=20) or, with ``imagenet=True``, NetworkImageNet (defaults
        C=48, layers=14), with the auxiliary head when ``auxiliary``."""
        genotype = self._check(arch)
        if imagenet:
            return NetworkImageNet(48 if C is None else C, num_classes, 14 if layers is None else layers,
                                   auxiliary, genotype, in_channels=in_channels, drop_path_prob=drop_path_prob,
                                   op_set=self.op_set)
        return NetworkCIFAR(36 if C is None else C, num_classes, 20 if layers is None else layers,
                            auxiliary, genotype, in_channels=in_channels, drop_path_prob=drop_path_prob,
                            op_set=self.op_set)

    def _check(self, arch: Arch) -> DartsArch:
        """``arch`` as a genotype of this space (a DARTS-family genotype whose ops fit this space's edges)."""
        if not isinstance(arch, DartsArch):
            raise BadArchError(f"the {self.name} space needs a DARTS genotype, got a {getattr(arch, 'space', '?')} "
                               f"arch ({type(arch).__name__})")
        return self._own(arch)
