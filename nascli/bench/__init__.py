"""Benchmarks and baselines: the NAS-Bench-201 table (loaded lazily on first use)."""
from nascli.bench.nb201_table import (
    NB201Table,
    load_nb201_table,
    lookup,
    params_m,
    record,
    sample_archs,
    space_stats,
)

__all__ = ["NB201Table", "load_nb201_table", "lookup", "params_m", "record", "sample_archs", "space_stats"]
