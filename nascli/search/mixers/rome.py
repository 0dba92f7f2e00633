"""ROME: topology-disentangled single-path sampling (Wang et al., ICCV'23, arXiv 2011.11233; METHODS.md 5.2).

Two kinds of architecture parameters per cell type: op parameters alpha (E, O) and topology parameters
beta (E,), one per edge, both initialised to 1e-3 * N(0, 1). Per forward pass and cell type:

* **edges**: for every node j with more than ``in_degree`` (2) incoming edges, Gumbel-top-2 on beta over
  j's incoming edges: keys_i = log_softmax(beta_in(j))_i + g_i, keep the 2 largest (= sampling 2 edges
  without replacement from softmax(beta)). The gate of edge i is the straight-through relaxed top-k
  (Xie & Ermon, IJCAI'19, "Reparameterizable subset sampling"):
      a^1 = softmax(keys / tau),  a^{t+1} = softmax((keys + log(1 - a^t)) / tau),  s = sum_t a^t
      gate = khot + (s - s.detach())                  (forward value exactly 0/1)
  Nodes with at most 2 incoming edges keep them all (gate 1, no gradient). Gates are passed as
  ``EdgeWeights.edge_scale``; non-sampled edges compute nothing (``active = []``).
* **ops**: GDAS hard Gumbel-softmax on alpha (see gumbel.py), ``none`` excluded with ``exclude_none``
  (its per-space default is the space yaml's ``search_defaults.sampled_exclude_none``: ROME's S0 is the DARTS
  space **without** ``none``, needed for the in-degree constraint; NB201 keeps its 5 ops).
  With passthrough on (nb201 by default), the non-sampled ops' zero hard weights are added times the gate.

The paper's unknowns (tau range, learning rates, epochs, batch; METHODS.md 5.2) default to GDAS's.

Selection (``selection_scores``): op scores = softmax(alpha) over the allowed ops, edge scores = beta, so
the DARTS space's default rule keeps per node the top-2 edges by beta and takes argmax alpha on each
(consistent with the sampler). On NB201 the space's rule keeps every edge of every node, so beta only
shapes training there (node 3 samples 2 of its 3 edges while the derived cell keeps all 3).
"""
from __future__ import annotations

import torch
from torch import nn

from nascli.search.mixers.base import MIXERS, EdgeWeights
from nascli.search.mixers.gumbel import GumbelMixer, as_bool, gumbel_noise


def relaxed_topk(keys: torch.Tensor, k: int, tau: float | torch.Tensor) -> torch.Tensor:
    """Relaxed k-hot vector of ``keys`` (n,) (module docstring; sums to k, -> k-hot as tau -> 0)."""
    s = torch.zeros_like(keys)
    z = keys
    for _ in range(k):
        a = torch.softmax(z / tau, dim=-1)
        s = s + a
        z = z + torch.log((1.0 - a).clamp_min(torch.finfo(a.dtype).tiny))
    return s


def gumbel_top_k(logits: torch.Tensor, k: int, tau: float | torch.Tensor,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(gate (n,), chosen indices (k,)): the top-k of log_softmax(logits) + Gumbel noise, with the
    straight-through relaxed top-k gradient."""
    keys = torch.log_softmax(logits, dim=-1) + gumbel_noise(logits.shape, logits.device, generator)
    chosen = keys.detach().topk(k).indices
    khot = torch.zeros_like(logits).index_fill(0, chosen, 1.0)
    soft = relaxed_topk(keys, k, tau)
    return khot + (soft - soft.detach()), chosen


@MIXERS.register("rome")
class RomeMixer(GumbelMixer):
    """Gumbel-top-2 edges on beta + hard Gumbel ops on alpha (module docstring)."""

    def __init__(self, space, *, in_degree: int = 2, exclude_none: bool = True,
                 beta_init_scale: float = 1e-3, exclude_ops: list[str] | tuple[str, ...] = (), **kw: object):
        excluded = list(exclude_ops)
        if as_bool(exclude_none, "exclude_none") and space.none_op in space.ops \
                and space.none_op not in excluded:
            excluded.append(space.none_op)
        super().__init__(space, exclude_ops=excluded, **kw)
        self.in_degree = int(in_degree)
        self.betas = nn.ParameterDict({
            ct: nn.Parameter(beta_init_scale * torch.randn(space.num_edges(ct))) for ct in space.cell_types
        })
        self.node_edges = {ct: [[e.index for e in edges] for edges in space.incoming(ct).values()]
                           for ct in space.cell_types}

    def sample_edges(self, cell_type: str) -> torch.Tensor:
        """(E,) gates: exactly min(in_degree, n_j) ones among the incoming edges of every node j."""
        beta = self.betas[cell_type]
        gates = torch.ones_like(beta)
        parts = []
        for edges in self.node_edges[cell_type]:
            if len(edges) <= self.in_degree:
                parts.append((edges, None))
                continue
            idx = torch.tensor(edges, device=beta.device)
            gate, _ = gumbel_top_k(beta.index_select(0, idx), self.in_degree, self.tau)
            parts.append((edges, gate))
        for edges, gate in parts:
            if gate is not None:
                gates = gates.index_put((torch.tensor(edges, device=beta.device),), gate)
        return gates

    def mix(self, cell_type: str) -> EdgeWeights:
        hard, index = self.sample_ops(cell_type)
        if self.deterministic:
            gates = self.top_edges(cell_type)
        else:
            gates = self.sample_edges(cell_type)
        on = (gates.detach() > 0.5).tolist()
        active = [[k] if keep else [] for k, keep in zip(index.tolist(), on)]
        pt = self.op_passthrough(hard, index)
        return EdgeWeights(hard, active, None if pt is None else gates * pt, gates)

    def top_edges(self, cell_type: str) -> torch.Tensor:
        """Deterministic gates: the in_degree largest beta per node (eval_mode argmax)."""
        beta = self.betas[cell_type].detach()
        gates = torch.zeros_like(beta)
        for edges in self.node_edges[cell_type]:
            keep = sorted(edges, key=lambda e: -float(beta[e]))[: self.in_degree]
            gates[keep] = 1.0
        return gates

    def fixed_edge_scale(self, scale: torch.Tensor) -> torch.Tensor:
        """An edge fixed to one op is switched on (gate 1), whatever the sampled topology."""
        return torch.ones_like(scale)

    def selection_scores(self):
        return self.probabilities(), {ct: b.detach().clone() for ct, b in self.betas.items()}

    def edge_probabilities(self) -> dict[str, torch.Tensor]:
        """softmax(beta) within each node's incoming edges (for reports)."""
        out = {}
        for ct, beta in self.betas.items():
            p = torch.zeros_like(beta.detach())
            for edges in self.node_edges[ct]:
                p[edges] = torch.softmax(beta.detach()[edges], dim=0)
            out[ct] = p
        return out
