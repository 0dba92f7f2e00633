"""Pieces shared by the commands: console, plain config values, threads, the result line."""
from __future__ import annotations

import json
import sys
from typing import Any

import torch
from omegaconf import DictConfig
from rich.console import Console

from nascli.plain import plain  # noqa: F401  (re-exported: the commands' config values)

console = Console(stderr=True, highlight=False)


def set_threads(cfg: DictConfig) -> None:
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))


def emit_result(result: dict[str, Any]) -> None:
    """The one JSON line on stdout that shell pipelines consume."""
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
