"""A Hydra callback that lists the jobs of a multirun in ``<hydra.sweep.dir>/runs.jsonl``.

``nas benchmark mode=aggregate sweep=<sweep dir>`` reads that manifest (nascli.bench.study) to build
the study report of a ``nas search -m ...`` sweep, failed jobs included. Register it for every command
(``conf/_shared/hydra.yaml``)::

    hydra:
      callbacks:
        run_manifest:
          _target_: nascli.commands.sweep_callback.RunManifest

or for one sweep: ``+hydra.callbacks.run_manifest._target_=nascli.commands.sweep_callback.RunManifest``.
One line per finished job: ``command``, ``overrides``, ``status`` (``ok`` or ``failed``), ``run_dir``
(computed from the job's config exactly as the command computes it, so failed jobs have one too),
``method``, ``seed``, ``space``, ``dataset`` and ``error``. A search job that runs a seed group
(``seeds=[...]``) gets one line per seed, each with that seed's run directory and status. Lines are appended
with one ``write`` each, so jobs of parallel launchers do not interleave within a line.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - Hydra < 1.1
    Callback = object  # type: ignore[assignment,misc]

MANIFEST = "runs.jsonl"


def manifest_entry(command: str, config: DictConfig, overrides: list[str], status: str,
                   result: Any = None, error: str | None = None) -> dict[str, Any]:
    """The manifest line of one job of ``command`` (only ``search`` jobs get a run directory)."""
    from nascli.commands.run import RunDir

    cfg = OmegaConf.masked_copy(config, [k for k in config.keys() if k != "hydra"])
    entry: dict[str, Any] = {"command": command, "overrides": list(overrides), "status": status, "error": error}
    if command == "search":
        entry.update(method=str(cfg.method.name), seed=int(cfg.seed), space=str(cfg.space.name),
                     dataset=str(cfg.dataset.name),
                     run_dir=str(RunDir.for_config(cfg, "search", f"{cfg.space.name}-{cfg.dataset.name}",
                                                   cfg.method.name).path.resolve()))
    if isinstance(result, dict):
        entry["status"] = "ok" if result.get("status") == "ok" else str(result.get("status", "failed"))
        entry["run_dir"] = result.get("run_dir", entry.get("run_dir"))
    return entry


def manifest_entries(command: str, config: DictConfig, overrides: list[str], status: str,
                     result: Any = None, error: str | None = None) -> list[dict[str, Any]]:
    """The job's manifest lines: :func:`manifest_entry`, or for a seed group one per seed (its ``seed``, run
    directory and status; the group's result holds each seed's result in ``runs``, in seed order)."""
    from nascli.commands.seed_group import seed_config

    seeds = config.get("seeds") if command == "search" else None
    if not seeds:
        return [manifest_entry(command, config, overrides, status, result, error)]
    runs = result.get("runs", []) if isinstance(result, dict) else []
    without_hydra = OmegaConf.masked_copy(config, [k for k in config.keys() if k != "hydra"])
    entries = []
    for i, seed in enumerate(seeds):
        seed_result = runs[i] if i < len(runs) else None
        entries.append(manifest_entry(command, seed_config(without_hydra, seed), overrides, status, seed_result,
                                      error if seed_result is None else None))
    return entries


class RunManifest(Callback):
    """Appends each multirun job's outcome to ``<hydra.sweep.dir>/runs.jsonl`` (module docstring)."""

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            return
        ok = job_return.status == JobStatus.COMPLETED
        value = getattr(job_return, "_return_value", None)
        result = value if ok and isinstance(value, dict) else None
        error = None
        if not ok:
            error = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else "job failed"
        elif result is None:
            error = "the command reported an error (see the job's stderr)"
        entries = manifest_entries(str(hc.job.config_name), config, list(job_return.overrides or []),
                                   "ok" if result is not None else "failed", result, error)
        path = Path(str(hc.sweep.dir)) / MANIFEST
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write("".join(json.dumps(entry, default=str) + "\n" for entry in entries))
