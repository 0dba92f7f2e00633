"""The pieces of a study that are plain data: search runs, their figures, aggregation input, baseline.

A study is a set of search runs (method label x seed), each read back from its run directory
(``config.yaml``, ``result.json``, ``metrics.jsonl``, ``arch*.json``; DESIGN.md "Artifacts are data").

Aggregation input (``nas benchmark mode=aggregate sweep=<dir>``), first match wins:

1. ``<dir>/runs.jsonl`` (or ``sweep=`` naming that file): the manifest that the multirun callback
   :class:`nascli.commands.sweep_callback.RunManifest` appends to, one line per finished job
   (``status``, ``run_dir``, ``method``, ``seed``, ``error``). Later lines for the same run directory
   win, so re-running a sweep updates its entries. Jobs that failed are in it too.
2. Otherwise every search run directory below ``<dir>`` (a folder ``seed=<N>`` holding ``config.yaml``
   of a search), e.g. ``outputs/search/nb201-cifar10``; a run without ``result.json`` is ``incomplete``.

Runs of one method with different search configs (different hash folders) are kept apart: their label
is ``<method>@<hash prefix>``; a method with one config is labelled by its name.
"""
from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "runs.jsonl"


@dataclass
class SearchRun:
    """One search run of a study (planned, or found on disk)."""

    label: str                       # how the report names the method (method, variant or method@hash)
    method: str                      # conf/method name
    seed: int
    run_dir: Path
    space: str
    dataset: str
    epochs: int | None = None
    selection: dict[str, Any] = field(default_factory=dict)   # the search's own selection config
    config: dict[str, Any] = field(default_factory=dict)      # the composed search config (plain data)
    status: str | None = None        # known status (aggregate input); None = decided by the study's job
    error: str | None = None

    @property
    def config_id(self) -> str:
        """The run's config hash folder."""
        return self.run_dir.parent.name


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Records of ``metrics.jsonl`` (an unreadable trailing line from a killed writer is skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def read_config(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        return None
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    data.pop("_runtime", None)
    return data


def _mean_over_cell_types(value: Any) -> float | None:
    """alpha_entropy is logged per cell type; the report shows the mean over cell types."""
    if isinstance(value, dict):
        vals = [float(v) for v in value.values() if isinstance(v, (int, float))]
        return sum(vals) / len(vals) if vals else None
    return float(value) if isinstance(value, (int, float)) else None


def search_figures(run_dir: Path, result: dict[str, Any] | None,
                   metrics: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Cost and collapse indicators of a finished search: wall time, peak memory, final alpha entropy
    (mean over cell types), the last logged Hessian eigenvalue (None when not logged), the early stop
    (result.json ``stopped_early``: DARTS-ES) and DARTS-ADA's roll-backs and final weight decay (last record)."""
    metrics = read_metrics(run_dir) if metrics is None else metrics
    result = result or {}
    hessian = [m["hessian_eigenvalue"] for m in metrics if m.get("hessian_eigenvalue") is not None]
    last = metrics[-1] if metrics else {}
    return {
        "search_time_s": result.get("search_time_s"),
        "peak_memory_mb": result.get("peak_memory_mb"),
        "alpha_entropy": _mean_over_cell_types(last.get("alpha_entropy")) if metrics else None,
        "hessian_eigenvalue": float(hessian[-1]) if hessian else None,
        "stopped_early": result.get("stopped_early"),
        "ada_adaptations": last.get("ada_adaptations"),
        "ada_weight_decay": last.get("ada_weight_decay"),
    }


def sample_baseline(space: Any, n: int, seed: int) -> list[Any]:
    """``n`` archs drawn uniformly from ``space`` with ``random.Random(seed)`` (``space.random_arch``):
    the random baseline of "NAS evaluation is frustratingly hard" (METHODS.md 8), same space and protocol."""
    rng = random.Random(seed)
    return [space.random_arch(rng) for _ in range(int(n))]


# ------------------------------------------------------------------------- aggregation input
def _run_from_dir(run_dir: Path, status: str | None = None, error: str | None = None) -> SearchRun | None:
    cfg = read_config(run_dir)
    if cfg is None or "search" not in cfg or "method" not in cfg:  # not a search run (e.g. an evaluate run)
        return None
    result = read_json(run_dir / "result.json")
    if status is None:
        status = "ok" if result and result.get("status") == "ok" else "incomplete"
        if status == "incomplete":
            error = "no result.json: the search did not finish (re-run it to resume)"
    method = str(cfg.get("method", {}).get("name", "?"))
    return SearchRun(label=method, method=method, seed=int(cfg.get("seed", 0)), run_dir=run_dir,
                     space=str(cfg.get("space", {}).get("name", "?")),
                     dataset=str(cfg.get("dataset", {}).get("name", "?")),
                     epochs=cfg.get("search", {}).get("epochs"), selection=dict(cfg.get("selection") or {}),
                     config=cfg, status=status, error=error)


def _is_search_run(path: Path) -> bool:
    return path.name.startswith("seed=") and (path / "config.yaml").exists()


def _from_manifest(path: Path) -> list[SearchRun]:
    latest: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("run_dir") and entry.get("command", "search") == "search":
            latest[str(Path(entry["run_dir"]).resolve())] = entry
    runs = []
    for run_dir, entry in sorted(latest.items()):
        status = "ok" if entry.get("status") == "ok" else str(entry.get("status") or "failed")
        run = _run_from_dir(Path(run_dir), status=status, error=entry.get("error"))
        if run is None:  # failed before writing config.yaml: what the manifest says is all there is
            run = SearchRun(label=str(entry.get("method", "?")), method=str(entry.get("method", "?")),
                            seed=int(entry.get("seed", 0)), run_dir=Path(run_dir), space=str(entry.get("space", "?")),
                            dataset=str(entry.get("dataset", "?")), status=status, error=entry.get("error"))
        elif status == "ok" and run.status == "ok" and read_json(run.run_dir / "result.json") is None:
            run.status, run.error = "incomplete", "the manifest says ok but result.json is missing"
        runs.append(run)
    return runs


def discover_runs(sweep: Path) -> list[SearchRun]:
    """The search runs of a sweep (module docstring), labelled, sorted by (label, seed)."""
    sweep = Path(sweep)
    manifest = sweep if sweep.name == MANIFEST else sweep / MANIFEST
    if manifest.is_file():
        runs = _from_manifest(manifest)
    else:
        dirs = sorted(p for p in sweep.rglob("seed=*") if p.is_dir() and _is_search_run(p))
        runs = [r for r in (_run_from_dir(d.resolve()) for d in dirs) if r is not None]
    label_runs(runs)
    return sorted(runs, key=lambda r: (r.label, r.seed, str(r.run_dir)))


def label_runs(runs: Iterable[SearchRun]) -> None:
    """Label runs by method name, or ``method@hash`` when one method has several search configs."""
    runs = list(runs)
    configs: dict[str, set[str]] = {}
    for r in runs:
        configs.setdefault(r.method, set()).add(r.config_id)
    for r in runs:
        r.label = r.method if len(configs[r.method]) == 1 else f"{r.method}@{r.config_id[:6]}"
