"""DrNAS progressive learning: prune the op set and widen the partial channels between stages
(xiangning-chen/DrNAS@f2caa4d ``DARTS-space/train_search.py``, ``201-space/train_search_progressive.py``,
``utils.py`` ``prune``, ``net2wider.py``; METHODS.md 8).

The search of E epochs runs in S = len(ks) stages of equal length (the reference: 2 x 25 on the DARTS space,
2 x 50 on NB201); stage i starts at epoch ceil(i * E / S). At the start of stage i >= 1:

1. every edge keeps only its ``num_keeps[i]`` ops with the largest alpha among the ops it still has
   (:meth:`DirichletMixer.prune_to_top`: the alphas of the dropped ops are set to 0, the kept ones stay, the
   dropped ops are never computed again and never derived);
2. partial channels go from K = ks[i-1] to ks[i] (DARTS space 6 -> 4, NB201 4 -> 2): every op of every edge
   is widened from C/ks[i-1] to C/ks[i] channels by copying channels, with its SGD momentum
   (nascli/search/widen.py; the reference's ``wider`` + ``configure_optimizer``). Every op is widened, the
   dropped ones too, as in the reference.

The learning-rate schedule runs on over all E epochs (``configure_scheduler``), the alpha optimizer
(Adam) keeps its state. The architecture warm-up restarts in every stage: alpha is updated only in
stage epochs >= ``optimizer.arch_start_epoch`` (the reference's ``if epoch >= 10`` with the stage-local
epoch), so this component sets ``optimizer.arch_enabled`` after the optimizer's own epoch hook.

Widening needs one module per op per edge (``space.supernet.impl=reference``). On resume the supernet is
first built narrow; a ``load_state_dict`` pre-hook on the supernet widens every cell to the width found in
the checkpoint before the weights are loaded, so a run resumes bit for bit in any stage.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from nascli.errors import IncompatibleError
from nascli.search.components import COMPONENTS, Component
from nascli.search.edge_parts.partial_channels import PartialChannelEdges
from nascli.search.widen import ambiguous_at_width_one, widen_op


def stage_starts(epochs: int, stages: int) -> list[int]:
    """First epoch of each stage: ceil(i * E / S) for i = 0..S-1 (equal stages; a stage may be empty)."""
    return [math.ceil(i * epochs / stages) for i in range(stages)]


def search_cells(supernet: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, cell) of every module with edge parts (``parts``) in the supernet."""
    return [(name, m) for name, m in supernet.named_modules()
            if hasattr(m, "parts") and hasattr(getattr(m, "parts"), "parts")]


def pc_part(cell: nn.Module) -> PartialChannelEdges | None:
    """The cell's partial-channels edge part, or None."""
    for p in cell.parts.parts:
        if isinstance(p, PartialChannelEdges):
            return p
    return None


@COMPONENTS.register("drnas_progressive")
class DrNASProgressive(Component):
    """Stages with op pruning and partial-channel widening (module docstring)."""

    reshapes_supernet = True  # widening changes the weights' shapes (no earlier snapshot fits)

    def __init__(self, supernet, optimizer, *, ks: list[int] | tuple[int, ...] = (6, 4),
                 num_keeps: list[int] | tuple[int, ...] = (7, 4)):
        super().__init__(supernet, optimizer)
        self.ks, self.num_keeps = [int(k) for k in ks], [int(n) for n in num_keeps]
        if not self.ks or len(self.ks) != len(self.num_keeps):
            raise ValueError(f"drnas_progressive needs one K and one op count per stage; got ks={self.ks}, "
                             f"num_keeps={self.num_keeps}")
        if any(b > a for a, b in zip(self.ks, self.ks[1:])) or any(b > a for a, b in zip(self.num_keeps,
                                                                                       self.num_keeps[1:])):
            raise ValueError(f"drnas_progressive: ks {self.ks} and num_keeps {self.num_keeps} must not increase")
        self.stage = 0
        if supernet is not None:
            self._check(supernet)
            supernet.register_load_state_dict_pre_hook(self._widen_to_checkpoint)

    # ------------------------------------------------------------------ checks
    def _check(self, supernet) -> None:
        mixer = supernet.mixer
        if not hasattr(mixer, "prune_to_top"):
            raise IncompatibleError(f"component drnas_progressive prunes ops through the mixer, and mixer "
                                    f"{type(mixer).__name__} cannot prune: use method.mixer.name=dirichlet")
        allowed = int(mixer.allowed.sum())
        if self.num_keeps[0] != allowed:
            raise ValueError(f"drnas_progressive num_keeps[0]={self.num_keeps[0]} must be the number of candidate "
                             f"ops ({allowed})")
        cells = search_cells(supernet)
        for name, cell in cells:
            part = pc_part(cell)
            k0 = part.k if part is not None else 1
            if k0 != self.ks[0]:
                raise IncompatibleError(f"drnas_progressive ks[0]={self.ks[0]} but the supernet's partial channels "
                                        f"K is {k0}: set method.edge_parts partial_channels k={self.ks[0]}")
            if len(self.ks) > 1 and not isinstance(getattr(cell, "edges", None), nn.ModuleList):
                raise IncompatibleError("drnas_progressive widens one module per op per edge: set "
                                        "space.supernet.impl=reference")
            for k in self.ks:
                if cell.C % k:
                    raise IncompatibleError(f"drnas_progressive: K={k} does not divide the cell width C={cell.C} "
                                            f"(cell {name}); use a supernet C divisible by every K in {self.ks}")
            if len(self.ks) > 1 and cell.C // self.ks[0] == 1 and any(ambiguous_at_width_one(op)
                                                                       for ops in cell.edges for op in ops):
                raise IncompatibleError(f"drnas_progressive cannot widen depthwise ops of width 1 (cell {name}, "
                                        f"C={cell.C}, K={self.ks[0]}); use a larger supernet C")

    # ------------------------------------------------------------------ schedule
    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        starts = stage_starts(epochs, len(self.ks))
        target = max(i for i, s in enumerate(starts) if s <= epoch)
        while self.stage < target:
            self.stage += 1
            self.supernet.mixer.prune_to_top(self.num_keeps[self.stage])
            self.widen(self.ks[self.stage])
        if self.optimizer is not None:
            self.optimizer.arch_enabled = epoch - starts[self.stage] >= self.optimizer.arch_start_epoch

    def _state_of(self, p: nn.Parameter) -> dict:
        return self.optimizer.w_opt.state.get(p, {}) if self.optimizer is not None else {}

    @torch.no_grad()
    def widen(self, k: int, with_optimizer_state: bool = True) -> None:
        """Partial channels K -> ``k`` in every cell, widening every op (and its SGD momentum)."""
        for _, cell in search_cells(self.supernet):
            part = pc_part(cell)
            if part is None or part.k == k:
                continue
            old = part.width
            new = part.set_k(k)
            for ops in cell.edges:
                for op in ops:
                    widen_op(op, old, new, self._state_of if with_optimizer_state else None)
            cell.parts.width = cell.c_op = new  # the cell's record of its op width (read by its builders)

    def _widen_to_checkpoint(self, module, state_dict, prefix, *args: Any) -> None:
        """load_state_dict pre-hook: widen each cell to the op width of the incoming state."""
        for name, cell in search_cells(self.supernet):
            part = pc_part(cell)
            if part is None or not isinstance(getattr(cell, "edges", None), nn.ModuleList):
                continue
            for key, t in [*cell.edges.named_parameters(), *cell.edges.named_buffers()]:
                incoming = state_dict.get(f"{prefix}{name}.edges.{key}")
                if incoming is None or t.dim() == 0 or incoming.shape == t.shape:
                    continue
                width = part.width * incoming.shape[0] // t.shape[0]
                old, new = part.width, part.set_k(cell.C // width)
                for ops in cell.edges:
                    for op in ops:
                        widen_op(op, old, new, None)
                cell.parts.width = cell.c_op = new
                break

    def values(self) -> dict[str, float]:
        return {"drnas_stage": float(self.stage), "partial_channels_k": float(self.ks[self.stage]),
                "ops_kept": float(self.num_keeps[self.stage])}

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stage = int(state["stage"])
