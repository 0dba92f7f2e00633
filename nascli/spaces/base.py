"""The interface every search space implements. A space never knows which method searches it.

A space describes cells as directed acyclic graphs whose edges carry one candidate operation each.
Methods reach a space only through :class:`SearchSpace`: list the edges, build a supernet whose edges
are mixed by a given :class:`~nascli.search.mixers.base.Mixer`, turn per-edge scores into a discrete
:class:`Arch` with the space's own rule, and build the discrete network of an Arch.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Edge:
    """One searchable edge ``src -> dst`` of a cell type; ``index`` is its row in the alpha matrix."""

    cell_type: str
    index: int
    src: int
    dst: int
    stride: int = 1


class Arch(ABC):
    """A discrete architecture of one space. Serialised as data (JSON), never as Python code."""

    space: str

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """The cells as plain data (schema documented per space)."""

    @abstractmethod
    def to_string(self) -> str:
        """Canonical one-line text form (NB201 arch string, DARTS Genotype text)."""

    def __str__(self) -> str:
        return self.to_string()


class SearchSpace(ABC):
    """A cell-based search space: its ops, edges, supernet, discrete networks and derivation rule."""

    name: str
    ops: tuple[str, ...]  # candidate op names; the order of the alpha columns
    cell_types: tuple[str, ...]  # ("cell",) for NB201, ("normal", "reduce") for DARTS
    none_op: str = "none"
    skip_op: str = "skip_connect"
    #: names of the ops without parameters (skip, none, pooling, ...): the collapse reading of
    #: nascli/spaces/param_free.py counts them in a derived arch
    parameter_free_ops: frozenset[str] = frozenset()
    #: the tasks (nascli/tasks, ``task=``) whose networks the space builds; its heads take that task's
    #: ``head_kwargs`` (classification: ``num_classes=``)
    tasks: tuple[str, ...] = ("classification",)

    @abstractmethod
    def edges(self, cell_type: str) -> list[Edge]:
        """Edges of one cell type in alpha-row order."""

    def num_edges(self, cell_type: str) -> int:
        return len(self.edges(cell_type))

    def incoming(self, cell_type: str) -> dict[int, list[Edge]]:
        """Edges grouped by destination node, in alpha-row order."""
        groups: dict[int, list[Edge]] = {}
        for e in self.edges(cell_type):
            groups.setdefault(e.dst, []).append(e)
        return groups

    @abstractmethod
    def build_supernet(self, mixer: nn.Module, num_classes: int, in_channels: int,
                       edge_parts: Sequence[nn.Module] = (), **space_cfg: Any) -> "Supernet":
        """The weight-sharing supernet whose edges are mixed by ``mixer`` and carry the method's
        ``edge_parts`` (:class:`~nascli.spaces.edge.EdgePartSpec`, nascli/spaces/edge.py); ``space_cfg`` holds
        the space's own options (sizes C, N, layers, ..., ``impl``, ``track_running_stats``)."""

    @abstractmethod
    def build_network(self, arch: Arch, num_classes: int, in_channels: int, **net_cfg: Any) -> nn.Module:
        """The discrete network of ``arch`` for training from scratch."""

    @abstractmethod
    def parse_arch(self, text: str) -> Arch:
        """Parse the canonical text form; raises BadArchError with the reason."""

    @abstractmethod
    def arch_from_json(self, data: dict[str, Any]) -> Arch:
        """Inverse of Arch.to_json."""

    @abstractmethod
    def random_arch(self, rng: random.Random) -> Arch:
        """A uniformly sampled architecture of the space (random baseline)."""

    @abstractmethod
    def discretize(self, op_scores: dict[str, torch.Tensor],
                   edge_scores: dict[str, torch.Tensor] | None = None, rule: str = "default") -> Arch:
        """Turn per-(edge, op) scores (higher is better, shape (E, O) per cell type) into an Arch by the
        space's derivation rule. ``edge_scores`` (E,) rank edges where the rule keeps a subset of edges
        (DARTS top-2 per node); when absent, an edge's score is its best non-``none`` op score.
        ``rule`` names a space-specific variant (e.g. ``pairs`` for GDAS on the DARTS space)."""

    @abstractmethod
    def skip_count(self, arch: Arch) -> int:
        """Number of skip connections in the arch (the collapse indicator)."""

    def cell_ops(self, arch: Arch) -> dict[str, list[str]]:
        """The op of every chosen edge of ``arch``, per cell type (for :mod:`nascli.spaces.param_free`)."""
        raise NotImplementedError(f"space {self.name} does not list the ops of its archs")

    # ----- what the commands ask a space (defaults: the space has none of it) ----------------------
    def input_size_problem(self, image_size: int) -> str | None:
        """Why the space's networks cannot take ``image_size`` x ``image_size`` inputs (one line), or None."""
        return None

    def ground_truth(self, arch: Arch, dataset: str) -> dict[str, Any] | None:
        """Tabulated accuracies of ``arch`` on ``dataset`` (a tabular benchmark such as NB201), or None."""
        return None

    def surrogate_estimate(self, arch: Arch) -> dict[str, Any]:
        """Keys added to arch.json by a surrogate benchmark (e.g. NB301 for the DARTS space), or {}."""
        return {}

    def draw(self, arch: Arch, directory: Path) -> list[Path]:
        """Cell pictures of ``arch`` written into ``directory`` (PNG); [] when the space draws nothing."""
        return []

    def network_config(self, net_cfg: dict[str, Any], dataset: str, variants: dict[str, Any]) -> dict[str, Any]:
        """Options for :meth:`build_network` on ``dataset``: ``net_cfg`` (the space yaml's ``network``) updated
        by the space's own per-dataset variant from ``variants`` (e.g. the DARTS ImageNet network)."""
        return dict(net_cfg)


class Supernet(nn.Module):
    """Base class of weight-sharing supernets: one mixer (owning the arch parameters), the method's edge-part
    specs (``edge_part_specs``; state shared by all cells) and the weights."""

    mixer: nn.Module
    space: SearchSpace
    edge_part_specs: nn.ModuleList

    def edge_part(self, name: str) -> nn.Module | None:
        """The edge-part spec registered as ``name`` (e.g. ``aux_skip``), or None."""
        for spec in getattr(self, "edge_part_specs", ()):
            if spec.name == name:
                return spec
        return None

    def runs_under_vmap(self) -> bool:
        """Whether the forward can run under ``torch.func.vmap`` over a stack of supernets (a seed-stacked
        group, nascli/search/stacked.py): the cell implementation's ``runs_under_vmap`` flag (``cell_cls``),
        false without one."""
        return bool(getattr(getattr(self, "cell_cls", None), "runs_under_vmap", False))

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.mixer.arch_parameters())

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def named_weight_parameters(self) -> list[tuple[str, nn.Parameter]]:
        arch = {id(p) for p in self.arch_parameters()}
        return [(n, p) for n, p in self.named_parameters() if id(p) not in arch]
