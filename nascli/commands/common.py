"""Pieces shared by the commands: builders from config, console, result line."""
from __future__ import annotations

import json
import sys
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from nascli.spaces import get_space
from nascli.spaces.base import SupernetOptions

console = Console(stderr=True, highlight=False)


def plain(node: Any) -> Any:
    """An OmegaConf node as plain Python data."""
    if isinstance(node, DictConfig) or OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def set_threads(cfg: DictConfig) -> None:
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))


def build_supernet(cfg: DictConfig, space, num_classes: int, in_channels: int):
    """Mixer (method.mixer) + supernet (space.supernet sizes, method.supernet switches)."""
    from nascli.search.mixers import MIXERS

    mixer_cfg = dict(plain(cfg.method.mixer))
    mixer = MIXERS.get(mixer_cfg.pop("name"))(space, **mixer_cfg)
    opts = dict(plain(cfg.method.get("supernet", {})) or {})
    options = SupernetOptions(partial_channels=int(opts.pop("partial_channels", 1)),
                              aux_skip=bool(opts.pop("aux_skip", False)),
                              track_running_stats=bool(opts.pop("track_running_stats", True)),
                              extra=opts)
    return space.build_supernet(mixer, num_classes, in_channels, options, **plain(cfg.space.supernet))


def benchmark_truth(space_name: str, dataset: str, arch) -> dict | None:
    """NB201 table accuracies (valid/test, %) of ``arch`` on ``dataset`` when the table has them."""
    if space_name != "nb201":
        return None
    from nascli.bench.nb201_table import lookup
    return lookup(arch.to_string(), dataset)


def emit_result(result: dict[str, Any]) -> None:
    """The one JSON line on stdout that shell pipelines consume."""
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


def resolve_space(name: str):
    return get_space(name)
