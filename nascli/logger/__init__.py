"""Watching runs: the loop hooks (:mod:`~nascli.logger.observer`), the ``logger=`` registry
(:mod:`~nascli.logger.registry`: tensorboard, none, auto) and what a command attaches
(:mod:`~nascli.logger.session`)."""
from nascli.logger.observer import Observers, RunObserver, StepInfo, observing  # noqa: F401
