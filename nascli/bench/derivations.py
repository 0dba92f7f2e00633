"""Finished derivations kept in a search run directory, so that no study derives the same thing twice.

``nas derive run=<dir> selection=<name>`` writes ``<dir>/arch_<name>.json`` with a provenance
``{run, selection, options, epoch}``. That file stands for a new ``nas derive`` of the selection when

1. its provenance names the same selection with the same options (every key of the composed selection
   config but ``name``, after the study's ``derive_overrides``);
2. it was derived from the final supernet: its epoch is the finished search's ``epochs`` (from the run's
   ``result.json``), so an unfinished search never has a reusable derivation;
3. it is not older than the run's ``checkpoint.pt`` (a checkpoint written after it would derive anew);
4. the space reads it back as an arch.

The run directory may have moved since (the provenance path is not compared): the checkpoint moved with it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nascli.bench.study import read_json
from nascli.errors import NasError
from nascli.rundir import RunDir
from nascli.spaces import get_space


def derivation_file(run_dir: Path, selection: str) -> Path:
    """Where ``nas derive`` writes the arch of ``selection``."""
    return Path(run_dir) / f"arch_{selection}.json"


def _same_selection(provenance: dict[str, Any], selection_cfg: dict[str, Any]) -> bool:
    options = {k: v for k, v in selection_cfg.items() if k != "name"}
    return provenance.get("selection") == selection_cfg.get("name") and provenance.get("options") == options


def _not_older_than_checkpoint(path: Path, run_dir: Path) -> bool:
    checkpoint = Path(run_dir) / "checkpoint.pt"
    return not checkpoint.exists() or path.stat().st_mtime_ns >= checkpoint.stat().st_mtime_ns


def finished_derivation(run_dir: Path, selection_cfg: dict[str, Any], space: str) -> dict[str, Any] | None:
    """The result line ``nas derive`` would print for ``selection_cfg`` on ``run_dir``, rebuilt from its
    ``arch_<selection>.json`` when that file is a finished derivation (module docstring), else ``None``."""
    search = RunDir(Path(run_dir)).finished_result()
    path = derivation_file(run_dir, str(selection_cfg.get("name")))
    data = read_json(path)
    if search is None or data is None:
        return None
    provenance = data.get("provenance")
    if not isinstance(provenance, dict) or not _same_selection(provenance, selection_cfg):
        return None
    if search.get("epochs") is None or provenance.get("epoch") != search.get("epochs"):
        return None
    if not _not_older_than_checkpoint(path, run_dir):
        return None
    try:
        arch_space = get_space(space)
        arch = arch_space.arch_from_json(data)
    except (NasError, KeyError, TypeError, ValueError):
        return None
    return {"status": "ok", "command": "derive", "run_dir": str(run_dir), "selection": provenance["selection"],
            "arch_path": str(path), "arch": arch.to_string(), "space": arch_space.name,
            "skip_count": arch_space.skip_count(arch), "benchmark": data.get("benchmark")}
