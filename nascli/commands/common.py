"""Pieces shared by the commands: console, plain config values, threads, the result line."""
from __future__ import annotations

import json
import sys
from typing import Any

import torch
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException
from rich.console import Console

from nascli.plain import plain  # noqa: F401  (re-exported: the commands' config values)
from nascli.threads import available_cpus, threads_per_job

console = Console(stderr=True, highlight=False)


def launcher_parallelism() -> int:
    """How many jobs of this Hydra multirun run at once on this machine: the joblib launcher's ``n_jobs``
    (-1: one per available core), 1 outside a multirun or for launchers that run one job per allocation."""
    from hydra.core.hydra_config import HydraConfig

    try:
        launcher = HydraConfig.get().launcher
        n_jobs = int(launcher.get("n_jobs") or 1) if launcher is not None else 1
    except (ValueError, TypeError, AttributeError, OmegaConfBaseException):  # no Hydra run (Python API), no key
        return 1
    return available_cpus() if n_jobs < 0 else max(1, n_jobs)


def set_threads(cfg: DictConfig) -> None:
    """torch's CPU threads: ``num_threads`` when set, else the job's share of the cores it may use
    (:func:`nascli.threads.threads_per_job` over the launcher's parallel jobs), never more than torch's default."""
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
        return
    share = threads_per_job(launcher_parallelism())
    if share < torch.get_num_threads():
        torch.set_num_threads(share)


def emit_result(result: dict[str, Any]) -> None:
    """The one JSON line on stdout that shell pipelines consume."""
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
