"""``nas show run=<run dir> [format=text|json]``: what one search or evaluate run is, where it stands, what it found;
``nas show run=<sweep folder>``: one row per run under it.

Read only: the run's ``config.yaml`` (a folder without it is not a run), ``result.json`` (absent while the run is
going or after it was stopped), ``metrics.jsonl``, ``arch.json`` and the cell pictures under ``cells/``. Rules:

* status: result.json's ``status`` (``ok``, ``dry_run``, ``failed``, ``diverged``, ``oom``); without one,
  ``running`` while another process holds the run's lock (:mod:`nascli.runlock`), else ``stopped`` (the same
  command resumes it from ``checkpoint.pt``);
* epochs done: the number of lines in metrics.jsonl, of the total the command's config asks for;
* headline figures: result.json's numeric fields, then the last epoch's (metrics.jsonl) that it lacks;
* arch: result.json's, else arch.json's, else the last epoch's derived arch;
* curves: per epoch, ``train_loss`` and the headline metric, drawn as a one-line sparkline in text.

A folder without config.yaml is a sweep: the runs its ``runs.jsonl`` lists (a ``nas ... -m`` sweep folder; a
listed job that left no run folder is a row with the manifest's status), else every run folder below it (the
outermost one of nested folders). Each row: status, command, method, seed, epochs and the headline metric:
the tabular benchmark's test accuracy when the space has one, else the first of the figures whose key starts
with ``test_``, then ``val_``, then ``train_``, that is not a loss.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nascli.errors import NasError
from nascli.runlock import LOCK_NAME

# command -> the config key holding its total number of epochs (also how a run's command is recognised)
EPOCHS_KEY: dict[str, str] = {"search": "search.epochs", "evaluate": "protocol.epochs"}
# result.json numbers that say what the run is rather than what it found
_IDENTITY = {"seed", "epochs", "world_size", "diverged_epoch", "diverged_step"}
_PER_STEP = {"epoch", "steps"}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _metrics(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            break  # a line cut short by a crash ends what is known
    return out


def locked_by_another(run: Path) -> bool:
    """Whether another process holds the run's exclusive lock (a shared, non-blocking ``flock`` is refused)."""
    try:
        fd = os.open(run / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _numbers(record: dict[str, Any], skip: set[str]) -> dict[str, float]:
    return {k: v for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in skip}


def _name(cfg: DictConfig, key: str) -> str | None:
    value = OmegaConf.select(cfg, key, default=None)
    return None if value is None else str(value)


def summarize(run_dir: str | Path) -> dict[str, Any]:
    """The summary of one run directory (module docstring); one-line NasError for a folder that is not a run."""
    run = Path(run_dir).expanduser()
    if not (run / "config.yaml").is_file():
        what = "does not exist" if not run.exists() else "is not a nas run folder (no config.yaml)"
        raise NasError(f"run={run_dir} {what}; allowed: a run folder of nas search or nas evaluate "
                       f"(outputs/<command>/.../seed=N)")
    cfg = OmegaConf.load(run / "config.yaml")
    result = _read_json(run / "result.json")
    metrics = _metrics(run / "metrics.jsonl")
    arch_file = _read_json(run / "arch.json") or {}
    command = (result or {}).get("command") or next(
        (c for c, key in EPOCHS_KEY.items() if OmegaConf.select(cfg, key, default=None) is not None), "unknown")
    if result is not None:
        status = str(result.get("status", "unknown"))
    else:
        status = "running" if locked_by_another(run) else "stopped"
    total = OmegaConf.select(cfg, EPOCHS_KEY.get(command, ""), default=None) if command in EPOCHS_KEY else None
    last = metrics[-1] if metrics else {}
    figures = _numbers(result or {}, _IDENTITY)
    figures.update({k: v for k, v in _numbers(last, _PER_STEP).items() if k not in figures})
    curves = _curves(metrics, figures)
    return {
        "run_dir": str(run),
        "command": command,
        "status": status,
        "space": _name(cfg, "space.name"),
        "dataset": _name(cfg, "dataset.name"),
        "method": _name(cfg, "method.name"),
        "task": _name(cfg, "task.name") or "classification",
        "seed": OmegaConf.select(cfg, "seed", default=None),
        "epochs_done": len(metrics),
        "epochs_total": None if total is None else int(total),
        "arch": (result or {}).get("arch") or arch_file.get("arch") or last.get("arch"),
        "figures": figures,
        "benchmark": (result or {}).get("benchmark"),
        "error": (result or {}).get("error"),
        "checkpoint": (run / "checkpoint.pt").is_file(),
        "pictures": sorted(str(p) for p in (run / "cells").rglob("*.png")),
        "curves": curves,
    }


HEADLINE_SPLITS = ("test_", "val_", "train_")
SPARKS = "▁▂▃▄▅▆▇█"


def headline(summary: dict[str, Any]) -> tuple[str, float] | None:
    """(name, value) of a run's headline metric (module docstring), or None."""
    bench = summary.get("benchmark")
    if isinstance(bench, dict) and isinstance(bench.get("test"), (int, float)):
        return "benchmark_test", float(bench["test"])
    figures = summary.get("figures") or {}
    for prefix in HEADLINE_SPLITS:
        for key, value in figures.items():
            if key.startswith(prefix) and not key.endswith("_loss"):
                return key, float(value)
    return None


def _curves(metrics: list[dict[str, Any]], figures: dict[str, float]) -> dict[str, list[float]]:
    """Per-epoch ``train_loss`` and the headline figure's values (those the epochs logged)."""
    keys = ["train_loss"]
    top = headline({"figures": figures})
    if top is not None and top[0] not in keys:
        keys.append(top[0])
    return {k: [float(m[k]) for m in metrics if isinstance(m.get(k), (int, float))] for k in keys
            if any(isinstance(m.get(k), (int, float)) for m in metrics)}


def sparkline(values: list[float]) -> str:
    """``values`` as a row of block characters, lowest to highest (non-finite values as spaces)."""
    finite = [v for v in values if v == v and abs(v) != float("inf")]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = high - low or 1.0
    return "".join(SPARKS[round((v - low) / span * (len(SPARKS) - 1))] if v in finite else " " for v in values)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "  ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return "-" if value is None else str(value)


def as_text(s: dict[str, Any]) -> str:
    """A few labelled lines for a terminal; long values (the arch string) stay on one line of their own."""
    done = f"{s['epochs_done']} of {_fmt(s['epochs_total'])}"
    lines = [("run", s["run_dir"]),
             ("command", f"{s['command']}   status {s['status']}   seed {_fmt(s['seed'])}   epochs {done}"),
             ("setup", f"space {_fmt(s['space'])}   dataset {_fmt(s['dataset'])}   method {_fmt(s['method'])}   "
                       f"task {s['task']}"),
             ("arch", _fmt(s["arch"])),
             ("figures", _fmt(s["figures"]) or "-")]
    if s["benchmark"]:
        lines.append(("benchmark", _fmt(s["benchmark"])))
    for key, values in (s.get("curves") or {}).items():
        if len(values) > 1:
            lines.append(("curve", f"{key:<12} {sparkline(values[-60:])}  {_fmt(values[0])} -> {_fmt(values[-1])}"))
    if s["error"]:
        lines.append(("error", s["error"]))
    if s["status"] in ("running", "stopped") and s["checkpoint"]:
        lines.append(("resume", "checkpoint.pt present: the same command resumes this run"))
    lines += [("cells", p) for p in s["pictures"]] or [("cells", "-")]
    return "\n".join(f"{label:<10}{value}" for label, value in lines)


def _manifest_rows(folder: Path) -> list[dict[str, Any]] | None:
    """The jobs a sweep's runs.jsonl lists, as (run folder, manifest entry), the last entry per run; None
    without a manifest."""
    lines = _metrics(folder / "runs.jsonl")  # one JSON object per line, a torn last line dropped
    if not lines:
        return None
    by_dir: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(lines):
        by_dir[str(entry.get("run_dir") or f"job {i}")] = entry
    return list(by_dir.values())


def _run_folders(folder: Path) -> list[Path]:
    """The outermost run folders (with config.yaml) below ``folder``, sorted."""
    found = sorted(p.parent for p in folder.rglob("config.yaml"))
    outer: list[Path] = []
    for run in found:
        if not any(run.is_relative_to(o) for o in outer):
            outer.append(run)
    return outer


def _row(s: dict[str, Any]) -> dict[str, Any]:
    top = headline(s)
    return {"run_dir": s["run_dir"], "status": s["status"], "command": s["command"], "method": s["method"],
            "seed": s["seed"], "epochs_done": s["epochs_done"], "epochs_total": s["epochs_total"],
            "metric": top[0] if top else None, "value": top[1] if top else None, "error": s["error"]}


def summarize_sweep(folder: str | Path) -> dict[str, Any]:
    """One row per run of a sweep folder (module docstring); a one-line NasError when it holds no run."""
    root = Path(folder).expanduser()
    rows: list[dict[str, Any]] = []
    entries = _manifest_rows(root)
    if entries is not None:
        for entry in entries:
            run = Path(str(entry.get("run_dir") or ""))
            if entry.get("run_dir") and (run / "config.yaml").is_file():
                rows.append(_row(summarize(run)))
            else:
                rows.append({"run_dir": entry.get("run_dir"), "status": str(entry.get("status", "failed")),
                             "command": entry.get("command"), "method": entry.get("method"),
                             "seed": entry.get("seed"), "epochs_done": 0, "epochs_total": None, "metric": None,
                             "value": None, "error": entry.get("error")})
    else:
        rows = [_row(summarize(run)) for run in _run_folders(root)]
    if not rows:
        raise NasError(f"run={folder} is not a nas run folder and holds none (no config.yaml below it, no runs.jsonl); "
                       f"allowed: a run folder (outputs/<command>/.../seed=N) or a sweep folder above run folders")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return {"sweep": str(root), "runs": rows, "counts": counts}


def sweep_text(s: dict[str, Any]) -> str:
    """A header and one fixed-width row per run; the run folder, relative to the sweep where it lies below it,
    last (never cut)."""
    root = Path(s["sweep"])
    head = f"{'status':<9}{'command':<10}{'method':<14}{'seed':>5}  {'epochs':<8}{'metric':<16}{'value':>9}  run"
    lines = [f"sweep {s['sweep']}   " + "  ".join(f"{k} {v}" for k, v in s["counts"].items()), head]
    for r in s["runs"]:
        run = str(r["run_dir"] or "-")
        if r["run_dir"] and Path(run).is_relative_to(root):
            run = str(Path(run).relative_to(root))
        epochs = f"{r['epochs_done']}/{_fmt(r['epochs_total'])}"
        lines.append(f"{r['status']:<9}{_fmt(r['command']):<10}{_fmt(r['method']):<14}{_fmt(r['seed']):>5}  "
                     f"{epochs:<8}{_fmt(r['metric']):<16}{_fmt(r['value']):>9}  {run}")
    return "\n".join(lines)


FORMATS: dict[str, Callable[[dict[str, Any]], str]] = {
    "text": as_text,
    "json": lambda s: json.dumps(s, default=str),
}
SWEEP_FORMATS: dict[str, Callable[[dict[str, Any]], str]] = {
    "text": sweep_text,
    "json": lambda s: json.dumps(s, default=str),
}


def show(cfg: DictConfig) -> dict[str, Any]:
    """``nas show``: print the summary of ``run=`` in ``format=`` to stdout and return it."""
    fmt = str(cfg.get("format"))
    if fmt not in FORMATS:
        raise NasError(f"unknown format {fmt!r}; valid choices: {', '.join(FORMATS)}")
    if not cfg.get("run"):
        raise NasError("show needs run=<run folder> (a folder of nas search or nas evaluate, .../seed=N, or a "
                       "sweep folder above several)")
    folder = Path(str(cfg.run)).expanduser()
    if folder.is_dir() and not (folder / "config.yaml").is_file():
        summary = summarize_sweep(folder)
        print(SWEEP_FORMATS[fmt](summary), flush=True)
        return summary
    summary = summarize(str(cfg.run))
    print(FORMATS[fmt](summary), flush=True)
    return summary
