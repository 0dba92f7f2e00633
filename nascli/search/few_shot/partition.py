"""Partition one edge's ops into two groups from their gradient-distance matrix, and pick the edge to split.

``D`` (O, O) is the symmetric matrix of averaged pairwise gradient distances of an edge's ops
(:mod:`nascli.search.few_shot.gradient_matching`). For a partition {A, B} of the ops,

    within(A, B) = sum_{i<j, i,j in A} D[i, j] + sum_{i<j, i,j in B} D[i, j]
    cross(A, B)  = sum_{i<j} D[i, j] - within(A, B)          (the distance cut between the groups)

A rule enumerates candidate partitions and keeps the one with the smallest ``within`` (the first one in
its enumeration order on ties). GM-NAS (skhu101/GM-NAS@a69837d) has two rules:

* ``pair_rest`` (WS-GM/nasbench201/utils.py ``mincut_split_201``): A = {i, j} for every pair i < j in
  lexicographic order, B = the other ops;
* ``balanced`` (WS-GM/sota/cnn/train_search_ws.py ``mincut_split_darts``): A = every subset of size
  2 .. O // 2 (itertools.combinations order, sizes ascending), B = its complement.

Spaces with fewer ops than a rule's groups need (the R-DARTS variants: 2 or 3 ops per edge; nascli's
extension) split one op from the rest instead (A = {i}).

Edge choice (:data:`EDGE_CHOICES`) between the undecided edges, each with its best partition:
``max_cross`` (NB201 code: the largest cross = total - within, the first on ties) or ``min_within``
(DARTS-space code: the smallest within, the first on ties).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from nascli.registry import Registry


@dataclass(frozen=True)
class Partition:
    """Two op groups (sorted op indices) of one edge with their within-group and cross-group distance."""

    groups: tuple[tuple[int, ...], tuple[int, ...]]
    within: float
    cross: float


PartitionRule = Callable[[int], Iterator[tuple[int, ...]]]
PARTITION_RULES: Registry[PartitionRule] = Registry("gm_nas partition rule")


@PARTITION_RULES.register("pair_rest")
def pair_rest(num_ops: int) -> Iterator[tuple[int, ...]]:
    """Group A = {i, j} for i < j (lexicographic); B is the rest."""
    yield from itertools.combinations(range(num_ops), 2)


@PARTITION_RULES.register("balanced")
def balanced(num_ops: int) -> Iterator[tuple[int, ...]]:
    """Group A = every subset of size 2 .. num_ops // 2 (sizes ascending, combinations order); B the rest."""
    for size in range(2, num_ops // 2 + 1):
        yield from itertools.combinations(range(num_ops), size)


def within_distance(dist: torch.Tensor, group: Sequence[int]) -> float:
    """sum_{i<j in group} dist[i, j]."""
    return float(sum(float(dist[i, j]) for i, j in itertools.combinations(sorted(group), 2)))


def best_partition(dist: torch.Tensor, rule: str = "pair_rest") -> Partition:
    """The partition of ``rule`` with the smallest within-group distance (module docstring)."""
    dist = torch.as_tensor(dist, dtype=torch.float64)
    n = dist.shape[0]
    if dist.shape != (n, n) or n < 2:
        raise ValueError(f"a square distance matrix of at least 2 ops is needed, got shape {tuple(dist.shape)}")
    total = within_distance(dist, range(n))
    best: Partition | None = None
    groups = [g for g in PARTITION_RULES.get(rule)(n) if len(g) < n]
    if not groups:  # fewer ops than the rule's smallest group needs: singletons against the rest
        groups = [(i,) for i in range(n)]
    for group in groups:
        rest = tuple(k for k in range(n) if k not in group)
        within = within_distance(dist, group) + within_distance(dist, rest)
        if best is None or within < best.within:
            best = Partition((tuple(group), rest), within, total - within)
    assert best is not None
    return best


EDGE_CHOICES: Registry[Callable[[Partition], float]] = Registry("gm_nas edge choice")
EDGE_CHOICES.register("max_cross")(lambda p: p.cross)
EDGE_CHOICES.register("min_within")(lambda p: -p.within)


def choose_edge(partitions: Sequence[Partition], criterion: str = "max_cross") -> int:
    """Index of the edge to split: the highest key of ``criterion`` (max cross, or min within); first on ties."""
    key = EDGE_CHOICES.get(criterion)
    best = 0
    for i, p in enumerate(partitions):
        if key(p) > key(partitions[best]):
            best = i
    return best
