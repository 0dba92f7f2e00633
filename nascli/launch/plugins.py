"""The optional Hydra launcher plugins, the extras that install them, and the presets built on them.

A preset in ``conf/hydra/launcher/<name>.yaml`` extends one plugin config through its defaults list
(``defaults: [submitit_slurm]``); the plugin's own configs (``submitit_slurm``, ``submitit_local``,
``joblib``) stay selectable too. :func:`check_launcher` turns a missing plugin into one line that
names the extra to install, before Hydra fails on an unknown config.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from omegaconf import OmegaConf

from nascli.errors import NasError
from nascli.paths import CONF_DIR

LAUNCHER_DIR = CONF_DIR / "hydra" / "launcher"
BUILTIN_LAUNCHERS = ("basic",)  # shipped with hydra-core


@dataclass(frozen=True)
class LauncherPlugin:
    """One optional package: the module Hydra discovers, its PyPI name, and nascli's extra for it."""

    module: str
    package: str
    extra: str


# Plugin config name (as registered in Hydra's ConfigStore by the plugin) -> the package providing it.
PLUGIN_CONFIGS: dict[str, LauncherPlugin] = {
    "submitit_slurm": LauncherPlugin("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "slurm"),
    "submitit_local": LauncherPlugin("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "slurm"),
    "joblib": LauncherPlugin("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "joblib"),
}


def preset_base(name: str) -> str | None:
    """The plugin config a preset ``conf/hydra/launcher/<name>.yaml`` extends (first defaults entry)."""
    path = LAUNCHER_DIR / f"{name}.yaml"
    if not path.is_file():
        return None
    for entry in OmegaConf.load(path).get("defaults", []) or []:
        if isinstance(entry, str) and entry != "_self_":
            return entry
    return None


def launcher_choices() -> list[str]:
    """Every valid ``hydra/launcher=`` value: nascli's presets, the plugin configs and Hydra's basic."""
    presets = sorted(p.stem for p in LAUNCHER_DIR.glob("*.yaml"))
    return presets + sorted(PLUGIN_CONFIGS) + list(BUILTIN_LAUNCHERS)


def required_plugin(choice: str) -> LauncherPlugin | None:
    """The optional package ``hydra/launcher=<choice>`` needs (None for Hydra's built-in launcher)."""
    return PLUGIN_CONFIGS.get(preset_base(choice) or choice)


def check_launcher(choice: str) -> None:
    """Raise a one-line :class:`NasError` for an unknown launcher or one whose plugin is not installed."""
    if choice not in launcher_choices():
        raise NasError(f"unknown hydra/launcher {choice!r}; valid choices: {', '.join(launcher_choices())}")
    plugin = required_plugin(choice)
    if plugin is not None and importlib.util.find_spec(plugin.module) is None:
        raise NasError(f"hydra/launcher={choice} needs the {plugin.package} plugin, which is not installed: "
                       f"pip install 'nascli[{plugin.extra}]'")


def parse_visible_devices(value: str | None) -> list[str] | None:
    """The entries of a ``CUDA_VISIBLE_DEVICES`` value (indices, ``GPU-<uuid>`` or MIG ids); None when unset.

    CUDA stops at the first invalid entry; a negative index (``-1``) is the usual way to hide every GPU.
    """
    if value is None:
        return None
    entries = []
    for item in value.split(","):
        item = item.strip()
        if not item or item.startswith("-"):
            break
        entries.append(item)
    return entries


def visible_gpu_count(environ: dict[str, str] | None = None) -> int:
    """GPUs this process may use: the ``CUDA_VISIBLE_DEVICES`` entries when set, else torch's count
    (NVML-based in torch 2.x, so the CUDA driver is not initialised by asking)."""
    environ = os.environ if environ is None else environ
    entries = parse_visible_devices(environ.get("CUDA_VISIBLE_DEVICES"))
    if entries is not None:
        return len(entries)
    import torch

    return int(torch.cuda.device_count())


def _visible_gpus(when_none: int = 0) -> int:
    count = visible_gpu_count()
    return count if count > 0 else int(when_none)


def register_resolvers() -> None:
    """``${nas.visible_gpus:N}``: the visible GPU count, or N when there is none (idempotent)."""
    if not OmegaConf.has_resolver("nas.visible_gpus"):
        OmegaConf.register_new_resolver("nas.visible_gpus", _visible_gpus)
