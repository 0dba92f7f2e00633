"""The interface every search space implements. A space never knows which method searches it.

A space describes cells as directed acyclic graphs whose edges carry one candidate operation each.
Methods reach a space only through :class:`SearchSpace`: list the edges, build a supernet whose edges
are mixed by a given :class:`~nascli.search.mixers.base.Mixer`, turn per-edge scores into a discrete
:class:`Arch` with the space's own rule, and build the discrete network of an Arch.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class SupernetOptions:
    """Method-level switches of a supernet that are orthogonal to the mixer (see DESIGN.md).

    partial_channels: K of PC-DARTS (1 = all channels go through the ops).
    aux_skip: DARTS- auxiliary skip connection outside the softmax on every edge.
    track_running_stats: BatchNorm running statistics in the supernet (NB201 'BN=1').
    """

    partial_channels: int = 1
    aux_skip: bool = False
    track_running_stats: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


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
                       options: SupernetOptions, **space_cfg: Any) -> "Supernet":
        """The weight-sharing supernet; ``space_cfg`` holds the space's own sizes (C, N, layers, ...)."""

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


class Supernet(nn.Module):
    """Base class of weight-sharing supernets: one mixer (owning the arch parameters) + the weights."""

    mixer: nn.Module
    space: SearchSpace

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.mixer.arch_parameters())

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def named_weight_parameters(self) -> list[tuple[str, nn.Parameter]]:
        arch = {id(p) for p in self.arch_parameters()}
        return [(n, p) for n, p in self.named_parameters() if id(p) not in arch]
