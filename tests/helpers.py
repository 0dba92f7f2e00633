"""Test helpers: run the real CLI in a subprocess and compose configs with Hydra's compose API."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from nascli.paths import CONF_DIR

# A tiny NB201 search: a few seconds on one CPU thread.
TINY_SEARCH = ["space.supernet.C=4", "space.supernet.N=1", "dataset.num_train=256", "dataset.num_test=64",
               "dataset.image_size=8", "search.batch_size=16", "search.epochs=3", "num_threads=1"]


def nas(*args: str, cwd: Path | None = None, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "nascli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"nas {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def result_line(proc: subprocess.CompletedProcess) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line on stdout, got {proc.stdout!r}"
    return json.loads(lines[0])


def compose_cfg(command: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(command, overrides=overrides)
