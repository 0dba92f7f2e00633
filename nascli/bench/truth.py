"""Ground-truth tables by search space: where an arch's accuracy is looked up instead of trained.

A space with a tabular benchmark registers an accessor in :data:`TABLES`; a study evaluates a derived
arch by lookup when ``space in TABLES`` and the table covers the dataset, and by training otherwise.
Only NB201 has one (all 15,625 cells, ``nascli/bench/data/nb201.json.gz``).
"""
from __future__ import annotations

from typing import Any, Protocol

from nascli.registry import Registry


class GroundTruth(Protocol):
    """What a study needs from a tabular benchmark."""

    def has_dataset(self, dataset: str) -> bool: ...

    def lookup(self, arch: str, dataset: str) -> dict[str, float] | None: ...

    def space_stats(self, dataset: str) -> dict[str, Any] | None: ...

    def describe(self, dataset: str) -> str: ...


TABLES: Registry[GroundTruth] = Registry("ground-truth table")


class NB201Truth:
    """NB201 table (METHODS.md 0.5 table convention): ``test`` is the primary accuracy of a study."""

    num_archs = 15625

    def has_dataset(self, dataset: str) -> bool:
        from nascli.bench.nb201_table import NB201Table
        return NB201Table.has_dataset(dataset)

    def lookup(self, arch: str, dataset: str) -> dict[str, float] | None:
        from nascli.bench.nb201_table import lookup
        return lookup(arch, dataset)

    def space_stats(self, dataset: str) -> dict[str, Any] | None:
        from nascli.bench.nb201_table import space_stats
        return space_stats(dataset)

    def describe(self, dataset: str) -> str:
        return (f"NAS-Bench-201 table lookup ({dataset}: 'test' = mean over the benchmark's seeds of the 200-epoch "
                f"TinyNetwork C=16 N=5 test accuracy, 'valid' = its validation accuracy; METHODS.md 0.5)")


TABLES.register("nb201")(NB201Truth())


def table_for(space: str, dataset: str) -> GroundTruth | None:
    """The table of ``space`` when it covers ``dataset``, else ``None`` (evaluate by training)."""
    if space not in TABLES:
        return None
    table = TABLES.get(space)
    return table if table.has_dataset(dataset) else None
