"""Run directories: deterministic paths, atomic artifacts, checkpoints and resume.

Path: ``<out_root>/<command>/<space>-<dataset>/<method>/<hash>/seed=<N>/`` where the hash covers the
semantic config only (no seed, paths, device or display settings), so the same command always
lands in the same directory, and re-running it resumes or reports it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from nascli.errors import CheckpointError

# Keys that do not change what a run computes; dotted paths into the config.
NON_SEMANTIC_KEYS = ("seed", "device", "out_root", "num_threads", "progress", "run", "hydra",
                     "dataset.root", "dataset.download", "search.checkpoint_every_steps",
                     "train.checkpoint_every_steps", "dry_run", "kill_after_steps")


def semantic_config(cfg: DictConfig) -> dict[str, Any]:
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in NON_SEMANTIC_KEYS:
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return data


def config_hash(cfg: DictConfig, length: int = 10) -> str:
    blob = json.dumps(semantic_config(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, before_epoch: int) -> None:
        """Drop records of epochs >= before_epoch (written after the checkpoint we resume from)."""
        kept = [r for r in self.read_metrics() if r.get("epoch", -1) < before_epoch]
        atomic_write_bytes(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept).encode())

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(self.checkpoint_path, buf.getvalue())

    def load_checkpoint(self, map_location=None) -> dict[str, Any] | None:
        if not self.checkpoint_path.exists():
            return None
        try:
            return torch.load(self.checkpoint_path, map_location=map_location, weights_only=False)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user-facing problem
            raise CheckpointError(f"cannot read checkpoint {self.checkpoint_path}: {type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else 'corrupt file'}; "
                                  "move it away to restart this run from scratch") from None


def capture_rng() -> dict[str, Any]:
    import random

    import numpy as np
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import random

    import numpy as np
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
