"""The loggers ``logger=<name>`` chooses (conf/logger/<name>.yaml): name -> factory(target, options).

A factory returns a :class:`~nascli.logger.observer.RunObserver` that subscribes to the loop's hooks, or None
for a logger that writes nothing. ``logger=auto`` (the default) is the first of :data:`AUTO_ORDER` whose client
package imports, else ``none``, so a machine without TensorBoard runs without a word; naming a logger whose
package is missing is a one-line error before anything runs. wandb and mlflow would be two more entries here
(their clients are not installed in this project's environments).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nascli.errors import NasError
from nascli.logger import tensorboard
from nascli.logger.observer import RunObserver
from nascli.logger.target import LogTarget
from nascli.registry import Registry

Factory = Callable[[LogTarget, dict[str, Any]], RunObserver | None]
LOGGERS: Registry[Factory] = Registry("logger")
AUTO = "auto"
#: logger name -> whether its client package imports (the loggers logger=auto may pick, in order)
AVAILABLE: dict[str, Callable[[], bool]] = {"tensorboard": tensorboard.available}
AUTO_ORDER = ("tensorboard",)
#: logger name -> the pip extra that installs its client
EXTRAS: dict[str, str] = {"tensorboard": "tensorboard"}


@LOGGERS.register("tensorboard")
def _tensorboard(target: LogTarget, options: dict[str, Any]) -> RunObserver:
    return tensorboard.TensorBoardLogger(target, heatmaps=bool(options.get("heatmaps", True)))


@LOGGERS.register("none")
def _none(target: LogTarget, options: dict[str, Any]) -> None:
    return None


def resolve_logger(name: str) -> str:
    """The logger that runs for ``logger.name=name``: ``auto`` -> the first available of :data:`AUTO_ORDER`
    (else ``none``); a named logger whose client is missing raises a one-line :class:`NasError`."""
    if name == AUTO:
        return next((n for n in AUTO_ORDER if AVAILABLE[n]()), "none")
    LOGGERS.get(name)  # unknown name: the registry's one line with the valid choices
    if name in AVAILABLE and not AVAILABLE[name]():
        raise NasError(f"logger={name} needs its client package: pip install 'nascli[{EXTRAS[name]}]' "
                       f"(or logger=none)")
    return name


def make_logger(name: str, target: LogTarget, options: dict[str, Any] | None = None) -> RunObserver | None:
    """The observer of logger ``name`` (resolved by :func:`resolve_logger`) writing into ``target``."""
    return LOGGERS.get(resolve_logger(name))(target, dict(options or {}))
