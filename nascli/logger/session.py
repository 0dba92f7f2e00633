"""What watches a command's run: the live progress bar (on a terminal) and the configured logger.

:func:`check_logger` runs before a command writes anything (a named logger without its client is one line);
:func:`run_observers` builds the observers a loop calls once the run's first epoch is known.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nascli.logger.observer import RunObserver
from nascli.logger.registry import make_logger, resolve_logger
from nascli.logger.target import AlphaLabels, LogTarget


def logger_config(cfg: DictConfig) -> tuple[str, dict[str, Any]]:
    """(``logger.name``, its other options) of a command's config; ``none`` when the config has no logger."""
    node = cfg.get("logger") if isinstance(cfg, DictConfig) else None
    if node is None:
        return "none", {}
    options = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
    name = str(options.pop("name", "none"))
    return name, options


def check_logger(cfg: DictConfig) -> str:
    """The logger that will run (raises the one-line error of a named logger whose client is missing)."""
    return resolve_logger(logger_config(cfg)[0])


def run_observers(cfg: DictConfig, run_dir: str | Path, start_epoch: int, space=None,
                  console=None) -> list[RunObserver]:
    """The progress bar (when ``console`` is a terminal) and the logger of ``cfg`` for a run that starts at
    epoch ``start_epoch`` in ``run_dir``; ``space`` labels a search's alphas."""
    from nascli.train.progress import EpochProgress

    observers: list[RunObserver] = []
    if console is not None and console.is_terminal:
        observers.append(EpochProgress(console))
    name, options = logger_config(cfg)
    labels = AlphaLabels.of_space(space) if space is not None else None
    logger = make_logger(name, LogTarget(Path(run_dir), int(start_epoch), labels), options)
    if logger is not None:
        observers.append(logger)
    return observers
