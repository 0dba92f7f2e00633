"""Where a study writes: ``<out_root>/benchmark/<space>-<dataset>/<hash>/``.

The hash covers what the study computes: its whole config except :data:`STUDY_ONLY_KEYS` (and the
run-level keys that never change a result: device, paths, threads; see
:func:`nascli.rundir.config_hash`). An aggregation is defined by its sweep and the run directories
found there instead of methods, seeds, variants, search overrides, space and dataset.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nascli.bench.plan import Plan
from nascli.rundir import config_hash

STUDY_ONLY_KEYS = ("jobs", "progress", "plots")   # do not change what a study computes (left out of its hash)
AGGREGATE_FREE_KEYS = ("methods", "seeds", "variants", "search_overrides", "space", "dataset")


def study_dir(cfg: DictConfig, plan: Plan) -> tuple[str, Path]:
    """``(hash, directory)`` of the study (module docstring)."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in STUDY_ONLY_KEYS:
        data.pop(key, None)
    if plan.mode == "aggregate":  # the runs define space, dataset, methods and seeds
        for key in AGGREGATE_FREE_KEYS:
            data.pop(key, None)
        data["_aggregate"] = plan.hash_extra
    digest = config_hash(OmegaConf.create(data))
    return digest, Path(str(cfg.out_root)).resolve() / "benchmark" / f"{plan.space}-{plan.dataset}" / digest
