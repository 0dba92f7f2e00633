"""PC-DARTS mixing with edge normalisation (Xu et al., ICLR'20, eq. 4; METHODS.md 6).

Besides alpha (E, O), every cell type has edge parameters beta (E,), initialised to 1e-3 * N(0, 1)
(yuhuixu1993/PC-DARTS@b74702f ``model_search.py`` ``betas_normal`` / ``betas_reduce``). For node j

    x_j = sum_{i<j} softmax_{i' -> j}(beta)_i * sum_o softmax(alpha_{i,j})_o * o(x_i)

i.e. beta is normalised over the incoming edges of each node (segments of 2, 3, 4, 5 edges in the
DARTS cell, 1, 2, 3 in NB201), not per edge. The partial-channel part (K, channel shuffle, bypass) is
the ``partial_channels`` edge part (nascli/search/edge_parts/partial_channels.py); the cells apply
``edge_scale`` to the whole edge output including the bypassed channels, as the reference does. An edge
fixed to one op by a selection probe keeps its normalised share (``Mixer.fixed_edge_scale``).

Derivation uses W[e, o] = softmax(alpha_e)_o * softmax_node(beta)_e with the space's default rule
(DARTS: top-2 edges per node by max non-``none`` W, argmax non-``none`` op).
"""
from __future__ import annotations

import torch
from torch import nn

from nascli.search.mixers.base import MIXERS, EdgeWeights, Mixer


def group_mask(groups: list[list[int]], num_edges: int) -> torch.Tensor:
    """(G, E) boolean membership of each edge in its node's group; the groups must partition the edges."""
    if sorted(e for g in groups for e in g) != list(range(num_edges)):
        raise ValueError(f"edge groups {groups} do not partition {num_edges} edges")
    mask = torch.zeros(len(groups), num_edges, dtype=torch.bool)
    for k, g in enumerate(groups):
        mask[k, g] = True
    return mask


def node_softmax(beta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax of ``beta`` (E,) within each group of ``mask`` (G, E) (the incoming edges of one node)."""
    logits = beta.unsqueeze(0).masked_fill(~mask, float("-inf"))
    return torch.softmax(logits, dim=1).sum(0)


@MIXERS.register("pc_softmax")
class PartialChannelMixer(Mixer):
    """softmax(alpha) per edge, scaled by the per-node softmax of the edge betas (module docstring)."""

    supports_mixing_override = True  # the given probabilities replace softmax(alpha); the beta scale stays

    def __init__(self, space, init_scale: float = 1e-3, beta_init_scale: float = 1e-3, **kw: object):
        super().__init__(space, init_scale=init_scale, **kw)
        self.betas = nn.ParameterDict({
            ct: nn.Parameter(beta_init_scale * torch.randn(space.num_edges(ct)))
            for ct in space.cell_types
        })
        for ct in space.cell_types:  # non-persistent: follows .to(device), not part of the checkpoint
            groups = [[e.index for e in edges] for edges in space.incoming(ct).values()]
            self.register_buffer(f"_incoming_{ct}", group_mask(groups, space.num_edges(ct)), persistent=False)

    def edge_normalisation(self, cell_type: str) -> torch.Tensor:
        """softmax of beta over the incoming edges of each node, (E,)."""
        return node_softmax(self.betas[cell_type], getattr(self, f"_incoming_{cell_type}"))

    def mix(self, cell_type: str) -> EdgeWeights:
        return EdgeWeights(torch.softmax(self.alphas[cell_type], dim=-1),
                           edge_scale=self.edge_normalisation(cell_type))

    def selection_scores(self):
        with torch.no_grad():
            scores = {ct: torch.softmax(a, dim=-1) * self.edge_normalisation(ct)[:, None]
                      for ct, a in self.alphas.items()}
        return scores, None
