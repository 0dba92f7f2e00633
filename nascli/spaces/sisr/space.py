"""sisr_trilevel as a :class:`SearchSpace` (see the package docstring for what comes from where)."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from nascli.errors import BadArchError, IncompatibleError, OptionError
from nascli.spaces import SPACES
from nascli.spaces.base import Edge, SearchSpace
from nascli.spaces.sisr.arch import (OPS_PER_CELL, SORT_TOLERANCE, WIDTH_CHOICES, SISRArch, arch_from_json,
                                     network_candidates, parse_sisr, search_cells_for, sort_network_candidates)
from nascli.spaces.sisr.ops import PARAMETER_FREE_OPS, SISR_OPS

#: search cells S of ``random_arch`` (the space yaml's CPU default)
DEFAULT_SEARCH_CELLS = 2
#: derivation rule -> weight tolerance of the network-level sorting (nascli/spaces/sisr/arch.py)
DERIVE_RULES = {"default": SORT_TOLERANCE, "argmax": 0.0}
IMPLS = ("reference",)


@SPACES.register("sisr_trilevel")
class SISRTrilevelSpace(SearchSpace):
    """Network, cell and kernel levels for single-image super-resolution (``forward(lr) -> hr``)."""

    name = "sisr_trilevel"
    tasks = ("super_resolution",)
    ops = SISR_OPS
    #: the three levels, each one weight matrix of the mixer: cell (K, O), kernel (K - 1, W), network (1, P)
    cell_types = ("cell", "kernel", "network")
    parameter_free_ops = PARAMETER_FREE_OPS

    def edges(self, cell_type: str = "cell") -> list[Edge]:
        """cell: the K slots of the chain (slot k: node k -> k + 1); kernel: the K - 1 inner features;
        network: one row (the candidate paths are its columns)."""
        rows = {"cell": OPS_PER_CELL, "kernel": OPS_PER_CELL - 1, "network": 1}
        if cell_type not in rows:
            raise KeyError(f"space sisr_trilevel has no cell type {cell_type!r}; valid: {', '.join(rows)}")
        return [Edge(cell_type, k, k, k + 1) for k in range(rows[cell_type])]

    def input_size_problem(self, image_size: int) -> str | None:
        """None for any size >= 1: every op pads to keep the size and the upsampler multiplies it."""
        if image_size < 1:
            return f"space sisr_trilevel needs an input of at least 1x1 pixels, got {image_size}x{image_size}"
        return None

    def build_supernet(self, mixer, scale: int, in_channels: int, edge_parts=(), *, C: int = 16,
                       search_cells: int = 2, res_scale: float = 0.2, global_residual: str = "bicubic",
                       impl: str = "reference", track_running_stats: bool = True):
        """The supernet (nascli/spaces/sisr/supernet.py) with the ``space.supernet`` options. ``impl``: the space
        has one implementation, one module per op per slot (``reference``); ``track_running_stats`` is accepted
        for the methods that set it and has no effect (no BatchNorm in this space)."""
        from nascli.spaces.sisr.supernet import SISRSupernet
        if impl not in IMPLS:
            raise OptionError(f"space sisr_trilevel impl={impl!r}; valid choices: {', '.join(IMPLS)}")
        return SISRSupernet(self, mixer, scale, in_channels, edge_parts, C=C, search_cells=search_cells,
                            res_scale=res_scale, global_residual=global_residual)

    def build_network(self, arch: SISRArch, scale: int, in_channels: int = 3, C: int = 16, res_scale: float = 0.2,
                      global_residual: str = "bicubic", **_: Any):
        """The discrete network (nascli/spaces/sisr/network.py) with the ``space.network`` options."""
        from nascli.spaces.sisr.network import SISRNetwork
        return SISRNetwork(arch, scale, in_channels, C=C, res_scale=res_scale, global_residual=global_residual)

    def parse_arch(self, text: str) -> SISRArch:
        return parse_sisr(text)

    def arch_from_json(self, data: dict[str, Any]) -> SISRArch:
        return arch_from_json(data)

    def random_arch(self, rng: random.Random) -> SISRArch:
        """Uniform over what the default rule can derive with S = 2: non-``none`` ops, any widths, any
        network candidate."""
        ops = [o for o in SISR_OPS if o != self.none_op]
        a, b = rng.choice(network_candidates(DEFAULT_SEARCH_CELLS))
        return SISRArch(tuple(rng.choice(ops) for _ in range(OPS_PER_CELL)),
                        tuple(rng.choice(WIDTH_CHOICES) for _ in range(OPS_PER_CELL - 1)), a, b)

    def discretize(self, op_scores: dict[str, torch.Tensor], edge_scores=None, rule: str = "default") -> SISRArch:
        """cell: best non-``none`` op per slot; kernel: best width per inner feature; network: the sorting rule
        (nascli/spaces/sisr/arch.py) with the rule's tolerance (``default`` 0.05, ``argmax`` 0). Ties go to the
        lower index. ``edge_scores`` is not used (every slot is kept)."""
        if rule not in DERIVE_RULES:
            raise BadArchError(f"unknown sisr_trilevel derivation rule {rule!r}; valid rules: "
                               f"{', '.join(DERIVE_RULES)}")
        expected = {"cell": (OPS_PER_CELL, len(SISR_OPS)), "kernel": (OPS_PER_CELL - 1, len(WIDTH_CHOICES))}
        for level, shape in expected.items():
            got = tuple(op_scores[level].shape) if level in op_scores else None
            if got != shape:
                raise IncompatibleError(f"sisr_trilevel derives from {level} scores of shape {shape}, got {got}")
        net = op_scores.get("network")
        if net is None or net.dim() != 2 or net.shape[0] != 1:
            raise IncompatibleError(f"sisr_trilevel derives from network scores of shape (1, P), got "
                                    f"{None if net is None else tuple(net.shape)}")
        try:
            candidates = network_candidates(search_cells_for(net.shape[1]))
        except ValueError as exc:
            raise IncompatibleError(f"sisr_trilevel network scores: {exc}") from None
        cell = op_scores["cell"].detach().float().clone()
        cell[:, SISR_OPS.index(self.none_op)] = float("-inf")
        ops = tuple(SISR_OPS[int(torch.argmax(row))] for row in cell)
        widths = tuple(WIDTH_CHOICES[int(torch.argmax(row))] for row in op_scores["kernel"].detach().float())
        best = sort_network_candidates(net.detach().float()[0], candidates, DERIVE_RULES[rule])[0]
        return SISRArch(ops, widths, *candidates[best])

    def skip_count(self, arch: SISRArch) -> int:
        return sum(op == self.skip_op for op in arch.ops)

    def cell_ops(self, arch: SISRArch) -> dict[str, list[str]]:
        """The K slot ops of the shared cell genotype."""
        return {"cell": list(arch.ops)}

    def draw(self, arch: SISRArch, directory: Path) -> list[Path]:
        """``cell.png``: the cell chain x -> slot 1 -> ... -> out with each slot's op and output width (the
        residual x + 0.2 chain(x) as a dashed edge); the network level (lr, hr cells) in the title."""
        from nascli.viz import draw_cell

        nodes = ["x"] + [f"{k + 1}" for k in range(OPS_PER_CELL - 1)] + ["out"]
        widths = [f" ({w:g} C)" for w in arch.widths] + [""]
        edges = [(nodes[k], nodes[k + 1], op + widths[k]) for k, op in enumerate(arch.ops)] + [("x", "out", "")]
        path = Path(directory) / "cell.png"
        draw_cell(path, title=f"sisr_trilevel cell; {arch.lr_cells} LR cells, upsampler, {arch.hr_cells} HR cells",
                  nodes=nodes, edges=edges, inputs=["x"], outputs=["out"], rank={n: i for i, n in enumerate(nodes)})
        return [path]
