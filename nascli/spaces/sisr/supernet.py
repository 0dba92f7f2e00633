"""The sisr_trilevel supernet: the three levels mixed by one mixer.

The method's mixer owns one weight matrix per level (the space's ``cell_types``), read once per forward:

* ``cell`` (K, O): slot k of every cell computes  o_k(x) = sum_o w_cell[k, o] op_{k,o}(x)  (one genotype
  shared by all cells, as DARTS; edge parts of the method wrap each slot, nascli/spaces/edge.py);
* ``kernel`` (K - 1, W): the feature after inner slot k is multiplied by the soft channel mask
  m_k[c] = sum_j w_kernel[k, j] 1[c < n_j],  n_j = max(1, round(width_j C))  (slimmable widths sharing the
  first channels: the reference's ``ratio``, masking instead of slicing so one pass serves every width);
* ``network`` (1, P): the weight-sharing tree of the reference (TrilevelNAS ``model_search`` ``dfs``): an LR
  chain L_1..L_S shared by every path, one upsampler U_a after a LR cells, and per branch a its own HR chain
  H_{a,1}..H_{a,S-a}. Candidate (a, b) (nascli/spaces/sisr/arch.py) is the feature H_{a,b}(...U_a(L_a(...)));
  the body output is  sum_p w_network[p] feature_p,  then the frame's tail and global residual.

Only what a non-zero weight needs is computed: ops outside the mixer's ``active`` lists and candidates with
no active weight are skipped (a sparse mixer makes the supernet cheaper as r grows). The level matrices of
``kernel`` and ``network`` have their own widths (W = 4 widths, P candidates), so :func:`attach_levels`
replaces the mixer's placeholder rows by parameters of that width; a mixer whose rule assumes O columns
everywhere (per-op masks) is refused in one line.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nascli.errors import IncompatibleError, OptionError
from nascli.spaces.base import Supernet
from nascli.spaces.edge import CellEdges, EdgeParts, EdgeWeights, sum_edge_outputs
from nascli.spaces.sisr.arch import WIDTH_CHOICES, SISRArch, network_candidates, width_channels
from nascli.spaces.sisr.network import SISRNetwork, SRFrame
from nascli.spaces.sisr.ops import MASKED_INNER_OPS, OPS, upsampler

#: std of the level parameters that replace the mixer's placeholders (the DARTS alpha init, 1e-3 N(0, 1))
LEVEL_INIT_SCALE = 1e-3
MIXING_FAILURES = (RuntimeError, IndexError, KeyError, ValueError)


def attach_levels(mixer: nn.Module, widths: dict[str, int]) -> None:
    """Give ``mixer`` a parameter (rows, width) for each level in ``widths`` and check that it mixes them."""
    for level, width in widths.items():
        rows = mixer.alphas[level].shape[0]
        ref = mixer.alphas[level]
        mixer.alphas[level] = nn.Parameter(LEVEL_INIT_SCALE * torch.randn(rows, width, device=ref.device,
                                                                           dtype=ref.dtype))
    for level, width in widths.items():
        try:
            with torch.no_grad():
                w = mixer.edge_weights(level).weights
        except MIXING_FAILURES as exc:
            raise IncompatibleError(f"mixer {type(mixer).__name__} cannot mix the sisr_trilevel {level} level: it "
                                    f"has {width} choices, and the mixer keeps per-op state for the {len(mixer.ops)} "
                                    f"cell ops ({type(exc).__name__}); use method.mixer.name=softmax or "
                                    f"sparsestmax") from None
        if tuple(w.shape) != (mixer.alphas[level].shape[0], width):
            raise IncompatibleError(f"mixer {type(mixer).__name__} returns {tuple(w.shape)} weights for the "
                                    f"sisr_trilevel {level} level, expected {(mixer.alphas[level].shape[0], width)}; "
                                    "use method.mixer.name=softmax or sparsestmax")


class SearchCell(nn.Module):
    """K slots of mixed ops in a chain with a scaled residual (module docstring, ``cell`` and ``kernel``)."""

    def __init__(self, space, channels: int, res_scale: float, edge_parts: Sequence[nn.Module]):
        super().__init__()
        self.edges = space.edges("cell")
        self.none_index = space.ops.index(space.none_op)
        self.inner_masked = [o for o, op in enumerate(space.ops) if op in MASKED_INNER_OPS]
        self.slots = nn.ModuleList(nn.ModuleList(OPS[op](channels, channels) for op in space.ops)
                                   for _ in self.edges)
        self.parts = EdgeParts(edge_parts, CellEdges(tuple(self.edges), channels, lambda c, stride: nn.Identity()))
        if self.parts.narrows:
            raise IncompatibleError("space sisr_trilevel does not support edge parts that narrow the op width "
                                    "(partial channels): its kernel level already chooses the widths")
        self.res_scale = float(res_scale)

    def forward(self, x: torch.Tensor, w: EdgeWeights, masks: list[torch.Tensor]) -> torch.Tensor:
        h = x
        for k, edge in enumerate(self.edges):
            inp = self.parts.op_input(h)
            mask = masks[k] if k < len(masks) else None
            terms = [w.weights[k, o] * self.run_op(k, o, inp, mask) for o in w.ops_of(k, self.none_index)]
            mixed = sum_edge_outputs(terms, h.shape, h) if terms else None
            out = sum_edge_outputs([self.parts.finish(mixed, h, edge, w, tuple(h.shape))], tuple(h.shape), h)
            h = out if mask is None else out * mask
        return x + self.res_scale * h

    def run_op(self, slot: int, op: int, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is not None and op in self.inner_masked:
            return self.slots[slot][op](x, mask=mask)
        return self.slots[slot][op](x)


class SISRSupernet(Supernet):
    """Weight-sharing supernet of all three levels (module docstring)."""

    def __init__(self, space, mixer: nn.Module, scale: int, in_channels: int, edge_parts: Sequence[nn.Module] = (),
                 *, C: int = 16, search_cells: int = 2, res_scale: float = 0.2, global_residual: str = "bicubic"):
        super().__init__()
        self.space = space
        self.frame = SRFrame(scale, in_channels, C, global_residual)
        self.net_options = {"scale": scale, "in_channels": in_channels, "C": C, "res_scale": res_scale,
                            "global_residual": global_residual}
        if isinstance(search_cells, bool) or not isinstance(search_cells, int) or search_cells < 0:
            raise OptionError(f"space sisr_trilevel search_cells={search_cells!r} is not a count >= 0")
        self.candidates = network_candidates(search_cells)
        attach_levels(mixer, {"kernel": len(WIDTH_CHOICES), "network": len(self.candidates)})
        self.mixer = mixer
        self.edge_part_specs = nn.ModuleList(edge_parts)

        def cell() -> SearchCell:
            return SearchCell(space, C, res_scale, edge_parts)

        self.lr_cells = nn.ModuleList(cell() for _ in range(search_cells))
        self.ups = nn.ModuleList(upsampler(C, scale) for _ in range(search_cells + 1))
        self.hr_cells = nn.ModuleList(nn.ModuleList(cell() for _ in range(search_cells - a))
                                      for a in range(search_cells + 1))
        sizes = torch.tensor([width_channels(wd, C) for wd in WIDTH_CHOICES])
        self.register_buffer("width_masks", (torch.arange(C)[None, :] < sizes[:, None]).float(), persistent=False)

    def kernel_masks(self) -> list[torch.Tensor]:
        """The soft channel mask m_k (1, C, 1, 1) after each inner slot."""
        w = self.mixer.edge_weights("kernel").weights
        return [(w[k] @ self.width_masks)[None, :, None, None] for k in range(w.shape[0])]

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        w_cell = self.mixer.edge_weights("cell")
        masks = self.kernel_masks()
        w_net = self.mixer.edge_weights("network")
        active = set(range(len(self.candidates))) if w_net.active is None else set(w_net.active[0])
        need_b: dict[int, int] = {}
        for p in sorted(active):
            a, b = self.candidates[p]
            need_b[a] = max(need_b.get(a, 0), b)
        h = self.frame.head(lr)
        body = None
        for a in range(max(need_b, default=-1) + 1):
            if a > 0:
                h = self.lr_cells[a - 1](h, w_cell, masks)
            if a not in need_b:
                continue
            g = self.ups[a](h)
            for b in range(need_b[a] + 1):
                if b > 0:
                    g = self.hr_cells[a][b - 1](g, w_cell, masks)
                p = self.candidates.index((a, b))
                if p in active:
                    term = w_net.weights[0, p] * g
                    body = term if body is None else body + term
        if body is None:
            body = self.ups[0](h) * 0.0
        return self.frame.finish(body, lr)

    @torch.no_grad()
    def inherited_network(self, arch: SISRArch) -> SISRNetwork:
        """The discrete network of ``arch`` (same sizes) with the supernet's weights of its path: head, tail,
        L_1..L_a, U_a, H_{a,1}..H_{a,b}, each slot's chosen op sliced to the arch's widths (first channels).
        With one-hot weights at all levels the supernet computes exactly this network (one-phase search and
        training: the searched supernet already holds the derived net's weights)."""
        a, b = arch.lr_cells, arch.hr_cells
        if (a, b) not in self.candidates:
            raise IncompatibleError(f"arch {arch} is not a path of this supernet (candidates {self.candidates})")
        net = SISRNetwork(arch, **self.net_options)
        copy_sliced(self.frame, net.frame)
        copy_sliced(self.ups[a], net.up)
        sources = list(self.lr_cells[:a]) + list(self.hr_cells[a][:b])
        for source, cell in zip(sources, list(net.lr_cells) + list(net.hr_cells)):
            for k, op in enumerate(arch.ops):
                copy_sliced(source.slots[k][self.space.ops.index(op)], cell.ops[k])
        return net


def copy_sliced(source: nn.Module, target: nn.Module) -> None:
    """Copy every parameter of ``target`` from the same-named one of ``source``, cut to the target's shape
    (the leading channels of every dimension)."""
    params = dict(source.named_parameters())
    for name, p in target.named_parameters():
        p.copy_(params[name][tuple(slice(0, n) for n in p.shape)])
