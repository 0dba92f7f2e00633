"""Hydra's compose API on the package's configs, usable inside a running Hydra app (a command composing the
configs of its jobs, or the CLI checking a command line before Hydra runs): any GlobalHydra already set up is
set aside for the duration and put back afterwards."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from omegaconf import DictConfig

from nascli.paths import CONF_DIR

Compose = Callable[..., DictConfig]


@contextlib.contextmanager
def fresh_compose() -> Iterator[Compose]:
    """Yield Hydra's ``compose`` on ``nascli/conf`` (module docstring)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton

    saved = Singleton._instances.pop(GlobalHydra, None)  # noqa: SLF001 - Hydra's own backup mechanism
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            yield compose
    finally:
        Singleton._instances.pop(GlobalHydra, None)  # noqa: SLF001
        if saved is not None:
            Singleton._instances[GlobalHydra] = saved  # noqa: SLF001
