"""The ``nas`` command lines of a study's jobs (the CLI is the contract between a study and its jobs).

Every job gets the study's ``device`` and ``num_threads`` (or its share of the cores, ``jobs=N``). An evaluation gets the study's space and
dataset with the same group changes as the searches, the protocol with its changes, then
``evaluate_overrides``; a derivation gets ``derive_overrides.<selection>``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from nascli.bench.compose import group_overrides
from nascli.overrides import path_value
from nascli.threads import threads_per_job

if TYPE_CHECKING:
    from nascli.bench.plan import Plan


def common_args(cfg: DictConfig) -> list[str]:
    """``device=`` and ``num_threads=``: what every job of the study shares. ``num_threads`` is the study's when
    set; with ``jobs=N > 1`` and none set, each job gets its share of the cores this process may use
    (:func:`nascli.threads.threads_per_job`), so N concurrent jobs do not oversubscribe them."""
    args = [f"device={cfg.device}"]
    if cfg.get("num_threads"):
        args.append(f"num_threads={int(cfg.num_threads)}")
    elif int(cfg.get("jobs", 1)) > 1:
        args.append(f"num_threads={threads_per_job(int(cfg.jobs))}")
    return args


def logger_args(cfg: DictConfig) -> list[str]:
    """``logger=<name>`` and its changed options: each search and evaluate job writes its own event file in its
    own run directory (nothing without a ``logger`` node)."""
    node = cfg.get("logger")
    if node is None:
        return []
    return [f"logger={node.name}", *group_overrides("logger", node)]


def out_root_arg(cfg: DictConfig) -> str:
    """``out_root=<absolute path>``: jobs write where the study reads, whatever their working directory."""
    return f"out_root={path_value(Path(str(cfg.out_root)).resolve())}"


def derive_overrides(cfg: DictConfig, selection: str) -> list[str]:
    """``derive_overrides.<selection>``: the overrides of that selection's ``nas derive`` jobs."""
    node = cfg.get("derive_overrides")
    table = OmegaConf.to_container(node, resolve=True) if node is not None else {}
    return [str(o) for o in (table or {}).get(selection, [])]


def derive_args(cfg: DictConfig, run_dir: Path, selection: str) -> list[str]:
    """``nas derive`` arguments of one (search run, selection)."""
    return ["derive", f"run={run_dir}", f"selection={selection}", *derive_overrides(cfg, selection),
            *common_args(cfg)]


def evaluate_args(cfg: DictConfig, plan: Plan, arch: str | None, seed: int) -> list[str]:
    """``nas evaluate`` arguments of one arch (``arch=None``: the same without the arch, for checking)."""
    return ["evaluate", *([f"arch={arch}"] if arch else []), f"space={plan.space}", f"dataset={plan.dataset}",
            f"protocol={cfg.protocol.name}", *plan.group_args, *group_overrides("protocol", cfg.protocol),
            *[str(o) for o in cfg.evaluate_overrides or []], f"seed={seed}", out_root_arg(cfg), *common_args(cfg),
            *logger_args(cfg)]
