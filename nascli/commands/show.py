"""``nas show run=<run dir> [format=text|json]``: what one search or evaluate run is, where it stands, what it found.

Read only: the run's ``config.yaml`` (a folder without it is not a run), ``result.json`` (absent while the run is
going or after it was stopped), ``metrics.jsonl``, ``arch.json`` and the cell pictures under ``cells/``. Rules:

* status: result.json's ``status`` (``ok``, ``dry_run``, ``failed``, ``diverged``, ``oom``); without one,
  ``running`` while another process holds the run's lock (:mod:`nascli.runlock`), else ``stopped`` (the same
  command resumes it from ``checkpoint.pt``);
* epochs done: the number of lines in metrics.jsonl, of the total the command's config asks for;
* headline figures: result.json's numeric fields, then the last epoch's (metrics.jsonl) that it lacks;
* arch: result.json's, else arch.json's, else the last epoch's derived arch.
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
    }


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
    if s["error"]:
        lines.append(("error", s["error"]))
    if s["status"] in ("running", "stopped") and s["checkpoint"]:
        lines.append(("resume", "checkpoint.pt present: the same command resumes this run"))
    lines += [("cells", p) for p in s["pictures"]] or [("cells", "-")]
    return "\n".join(f"{label:<10}{value}" for label, value in lines)


FORMATS: dict[str, Callable[[dict[str, Any]], str]] = {
    "text": as_text,
    "json": lambda s: json.dumps(s, default=str),
}


def show(cfg: DictConfig) -> dict[str, Any]:
    """``nas show``: print the summary of ``run=`` in ``format=`` to stdout and return it."""
    fmt = str(cfg.get("format"))
    if fmt not in FORMATS:
        raise NasError(f"unknown format {fmt!r}; valid choices: {', '.join(FORMATS)}")
    if not cfg.get("run"):
        raise NasError("show needs run=<run folder> (a folder of nas search or nas evaluate, .../seed=N)")
    summary = summarize(str(cfg.run))
    print(FORMATS[fmt](summary), flush=True)
    return summary
