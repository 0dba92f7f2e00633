"""Components: method parts with schedules (DARTS- beta, ...), orthogonal to mixer and optimizer.

A component owns its state and exposes ``state_dict()``; the search engine calls
``on_epoch_start`` / ``on_step_end`` and checkpoints every component with the run. Every component is
attached to the search optimizer and receives its named step hooks (``before_step``, ``on_loss``,
``after_step``; :class:`~nascli.search.optimizers.base.StepHooks`), which every optimizer calls.
A method yaml lists its components as ``method.components: [{name: ..., <options>}]``; the options are
the component's constructor keywords (an unknown key is a one-line error).
"""
from __future__ import annotations

from typing import Any

from nascli.registry import Registry
from nascli.search.optimizers.base import StepHooks

COMPONENTS: Registry[type["Component"]] = Registry("component")


class Component(StepHooks):
    """Base component: no-op hooks, no state."""

    #: the component reads the validation loss of each step (``on_loss('val', ...)``); an optimizer that
    #: computes none (single-level) cannot serve it
    needs_validation_loss: bool = False

    def __init__(self, supernet, optimizer):
        self.supernet = supernet
        self.optimizer = optimizer

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Called before the first step of every epoch (also after a resume)."""

    def on_step_end(self, epoch: int, step: int) -> None:
        """Called after every search step."""

    def values(self) -> dict[str, float]:
        """Schedule values logged in metrics.jsonl."""
        return {}

    def artifacts(self) -> dict[str, Any]:
        """JSON files (name -> object) the search command writes into the run directory at the end."""
        return {}

    def report(self) -> Any:
        """A rich renderable printed (to stderr) at the end of the search, or None."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def build_components(specs, supernet, optimizer) -> list[Component]:
    """Instantiate ``[{name: ..., **options}, ...]`` from the method config and attach each to ``optimizer``."""
    from nascli.search.options import construct

    _load_all()
    out = []
    for spec in specs or []:
        spec = dict(spec)
        name = spec.pop("name")
        component = construct(COMPONENTS.get(name), spec, f"method.components[{name}]", supernet, optimizer)
        if optimizer is not None:
            optimizer.attach(component)
        out.append(component)
    return out


def _load_all() -> None:
    """Import the modules that register components."""
    import importlib
    import pkgutil

    import nascli.search.regularizers as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{mod.name}")
