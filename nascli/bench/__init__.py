"""Benchmarks, baselines and studies (``nas benchmark``), one concept per module.

Ground truth and figures: ``nb201_table`` (the NAS-Bench-201 table, loaded lazily on first use), ``truth``
(tables by space), ``published`` (published numbers), ``stats`` (mean/std, relative improvement), ``report``
and ``plots``. A study: ``plan`` (what runs, checked up front) over ``compose`` (Hydra's compose API) and
``study`` (search runs as data); ``graph`` (the jobs, with their ``nas`` arguments from ``args``); ``jobs``
(running them); ``ledger`` (which need no process; ``derivations``: finished ``nas derive`` results);
``rows`` (report rows); ``baseline``, ``study_dir``, ``study_plots``, ``slots`` (a GPU per parallel slot),
``progress`` and ``summary``.
"""
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
