"""Run directories: deterministic paths, atomic artifacts, checkpoints and resume.

A low-level module (no command logic), so every layer that reads or writes run directories (the
commands, the benchmark studies) can import it; ``nascli.commands.run`` re-exports it.

Path: ``<out_root>/<command>/<space>-<dataset>/<method>/<hash>/seed=<N>/`` where the hash covers the
semantic config only (no seed, paths, device or display settings), so the same command always
lands in the same directory, and re-running it resumes or reports it.

Safety rules: one process owns a run directory at a time (:meth:`RunDir.lock`, an OS lock released
when its holder dies); the owner first removes temp files a killed write left behind; every file is
replaced atomically (temp file, fsync, rename); checkpoints are versioned and read without running
code (:mod:`nascli.checkpoint`); a torn last line of ``metrics.jsonl`` is dropped; a diverged run
records ``status: diverged`` and keeps its last good checkpoint (:meth:`RunDir.record_divergence`).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from nascli.checkpoint import checkpoint_bytes, load_checkpoint_file
from nascli.errors import DivergedError, NasError
from nascli.rng import seed_everything  # noqa: F401 (re-exported for the commands)
from nascli.runlock import RunLock

TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"  # atomic_write_bytes's temp files: .<name>.<random>.tmp

# Keys that do not change what a run computes; dotted paths into the config.
NON_SEMANTIC_KEYS = ("seed", "device", "out_root", "num_threads", "progress", "run", "hydra",
                     "dataset.root", "dataset.download", "search.checkpoint_every_steps",
                     "train.checkpoint_every_steps", "dry_run", "kill_after_steps",
                     "method.flow.children", "method.flow.node",  # GM-NAS children as jobs: the same tree
                     "paper",  # a preset's record of the published row: says what to compare with, changes no run
                     "export",  # nas evaluate's extra model files (onnx, torchscript): the trained network is the same
                     "logger",  # where the epoch records are also written (TensorBoard): watches, computes nothing
                     "seeds_mode")  # a seed group's seeds in turns or stacked: the same searches in another summation order


#: top-level keys left out of the hash while null: ``nas search``'s ``seeds`` (a seed group, whose seeds each run
#: with ``seeds`` null) keeps every solo run in the directory it had before the key existed, while
#: ``nas benchmark``'s ``seeds`` list is still hashed
NULL_NOT_HASHED = ("seeds",)


#: the ``task`` node of the default task as conf/task/classification.yaml composes it: not hashed, so every
#: classification run keeps the directory it had before the task axis existed (any other task, or any
#: option added to this one, is hashed)
DEFAULT_TASK_NODE = {"name": "classification"}


def semantic_config(cfg: DictConfig) -> dict[str, Any]:
    data = OmegaConf.to_container(cfg, resolve=True)
    if data.get("task") == DEFAULT_TASK_NODE:
        data.pop("task")
    for key in NON_SEMANTIC_KEYS:
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    for key in NULL_NOT_HASHED:
        if key in data and data[key] is None:
            data.pop(key)
    return data


def config_hash(cfg: DictConfig, length: int = 10) -> str:
    blob = json.dumps(semantic_config(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file ``.<name>.<random>.tmp`` in the same directory, fsync, then rename over
    ``path``: readers see the old or the new file, never a part. A killed write leaves the temp file,
    which the next owner of the run directory removes (:meth:`RunDir.remove_stale_temp_files`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n").encode())


def _jsonable(o: Any):
    if isinstance(o, Path):
        return str(o)
    if torch.is_tensor(o):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class RunDir:
    """One run's directory and its artifacts."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def for_config(cls, cfg: DictConfig, command: str, group: str, name: str) -> "RunDir":
        return cls(Path(cfg.out_root) / command / group / name / config_hash(cfg) / f"seed={cfg.seed}")

    # ---------------------------------------------------------------- files
    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def result_path(self) -> Path:
        return self.path / "result.json"

    # ---------------------------------------------------------------- ownership
    @contextmanager
    def lock(self, enabled: bool = True) -> Iterator["RunDir"]:
        """Own the run directory for the duration of the block (creating it if needed), or raise
        :class:`~nascli.errors.RunLockedError` at once naming the process that owns it. The owner then
        removes the temp files of killed writes. ``enabled=False`` (torchrun ranks other than 0) does nothing."""
        if not enabled:
            yield self
            return
        with RunLock(self.path):
            self.remove_stale_temp_files()
            yield self

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete ``.*.tmp`` files under the run directory (call only while holding :meth:`lock`:
        then no write of ours is in flight, so every such file is an orphan of a killed write)."""
        if not self.path.is_dir():
            return []
        stale = [p for p in self.path.rglob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}") if p.is_file()]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def finished_result(self) -> dict | None:
        """result.json of a finished (status ok) run, else None."""
        if not self.result_path.exists():
            return None
        try:
            result = json.loads(self.result_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return result if result.get("status") == "ok" else None

    def write_config(self, cfg: DictConfig) -> None:
        data = OmegaConf.to_container(cfg, resolve=True)
        data["_runtime"] = {"torch": str(torch.__version__), "cuda": torch.version.cuda, "git": git_revision()}
        atomic_write_bytes(self.path / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(data)).encode())

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.path / name
        atomic_write_json(path, obj)
        return path

    # ---------------------------------------------------------------- metrics
    def append_metrics(self, record: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record, default=_jsonable) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_metrics(self) -> list[dict[str, Any]]:
        """The records of metrics.jsonl. Rule: a last line that does not parse (torn by a crash during
        its write) is dropped; an unparsable line before the last one is a damaged file (NasError)."""
        if not self.metrics_path.exists():
            return []
        lines = [(n, line) for n, line in enumerate(self.metrics_path.read_text().splitlines(), 1) if line.strip()]
        records = []
        for i, (n, line) in enumerate(lines):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines) - 1:
                    break  # torn last line
                raise NasError(f"{self.metrics_path} line {n} is not valid JSON; repair or delete that line") from None
        return records

    def truncate_metrics(self, before_epoch: int) -> None:
        """Drop records of epochs >= before_epoch (written after the checkpoint we resume from)."""
        kept = [r for r in self.read_metrics() if r.get("epoch", -1) < before_epoch]
        atomic_write_bytes(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept).encode())

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Atomically replace checkpoint.pt with ``state`` (which carries its ``format`` key)."""
        atomic_write_bytes(self.checkpoint_path, checkpoint_bytes(state))

    def load_checkpoint(self, map_location=None, expect: str | None = None) -> dict[str, Any] | None:
        """checkpoint.pt's state, None when there is none; anything that is not one of our checkpoints
        (of format ``expect`` when given) raises a one-line CheckpointError naming the file."""
        if not self.checkpoint_path.exists():
            return None
        return load_checkpoint_file(self.checkpoint_path, map_location=map_location, expect=expect)

    # ---------------------------------------------------------------- failures
    def record_divergence(self, error: DivergedError, fields: dict[str, Any]) -> dict[str, Any]:
        """Write result.json with status ``diverged`` (``fields`` + where and why) and return it; the
        checkpoint is not touched, so it stays the last good one."""
        result = {"status": "diverged", **fields, "run_dir": str(self.path), "diverged_epoch": error.epoch,
                  "diverged_step": error.step, "error": str(error),
                  "checkpoint": str(self.checkpoint_path) if self.checkpoint_path.exists() else None}
        self.write_json("result.json", result)
        return result
