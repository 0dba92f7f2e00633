"""Components: method parts with schedules (DARTS- beta, ...), orthogonal to mixer and optimizer.

A component owns its state and exposes ``state_dict()``; the search engine calls
``on_epoch_start`` / ``on_step_end`` and checkpoints every component with the run. Every component is
attached to the search optimizer and receives its named step hooks (``before_step``, ``on_loss``,
``after_step``; :class:`~nascli.search.optimizers.base.StepHooks`), which every optimizer calls.
A method yaml lists its components as ``method.components: [{name: ..., <options>}]``; the options are
the component's constructor keywords (an unknown key is a one-line error). A user adds components to any
method with the top-level list ``+components=[darts_es]`` (names, or ``{name: ..., <options>}`` entries),
appended after the method's own (:func:`component_specs`).

At the end of every epoch (after its last step, before it is logged) the engine calls ``on_epoch_end`` with
an :class:`EpochEnd`: the epoch, and the dominant Hessian eigenvalue of that epoch computed on demand (once,
shared by every component). A component may end the search early (``stopped()``) or roll it back to the end
of an earlier epoch (``on_epoch_end`` restores that state and returns the epoch to continue from).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nascli.registry import Registry
from nascli.search.optimizers.base import StepHooks

COMPONENTS: Registry[type["Component"]] = Registry("component")


@dataclass(frozen=True)
class EpochEnd:
    """What a component sees at the end of an epoch (``epoch`` 0-based, of ``epochs``)."""

    epoch: int
    epochs: int
    #: lambda_max of d^2 L_val / d alpha^2 (+ arch wd I) on the epoch's last validation batch (the last
    #: training batch for an optimizer that draws none), computed on the first call (nascli/search/diagnostics.py)
    dominant_eigenvalue: Callable[[], float]


class Component(StepHooks):
    """Base component: no-op hooks, no state."""

    #: the component reads the validation loss of each step (``on_loss('val', ...)``); an optimizer that
    #: computes none (single-level) cannot serve it
    needs_validation_loss: bool = False
    #: the component changes the supernet's tensor shapes during the search (DrNAS widening): an earlier
    #: snapshot of the supernet cannot be loaded back into it
    reshapes_supernet: bool = False

    def __init__(self, supernet, optimizer):
        self.supernet = supernet
        self.optimizer = optimizer

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Called before the first step of every epoch (also after a resume)."""

    def on_step_end(self, epoch: int, step: int) -> None:
        """Called after every search step."""

    def on_epoch_end(self, end: EpochEnd) -> int | None:
        """Called after the last step of every epoch, before it is logged. Returns None to go on, or the epoch
        to continue from after rolling the search back (the component has restored the state at the end of
        epoch ``returned - 1``; the engine drops the later epochs' records)."""
        return None

    def stopped(self) -> dict[str, Any] | None:
        """``{"epoch": e, ...}`` once the component has ended the search early at epoch e, else None."""
        return None

    def on_search_end(self) -> None:
        """Called once when the search loop ends (last epoch or early stop), before the final checkpoint."""

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


def component_specs(cfg) -> list[dict[str, Any]]:
    """The method's ``method.components`` followed by the top-level ``components`` list of the config
    (``+components=[darts_es]``); a bare name stands for ``{name: <name>}``. A malformed entry raises a
    one-line :class:`~nascli.errors.OptionError`."""
    from nascli.errors import OptionError
    from nascli.plain import plain

    extra = plain(cfg.get("components")) if hasattr(cfg, "get") else None
    if extra is None:
        extra = []
    if not isinstance(extra, list):
        raise OptionError(f"components={extra!r} is not a list; write e.g. +components=[darts_es] "
                          f"(choices: {', '.join(_names())})")
    out = [dict(s) for s in (plain(cfg.method.get("components")) or [])]
    for entry in extra:
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or "name" not in entry:
            raise OptionError(f"components entry {entry!r} is neither a component name nor {{name: ..., <options>}}; "
                              f"choices: {', '.join(_names())}")
        out.append(dict(entry))
    return out


def _names() -> list[str]:
    _load_all()
    return COMPONENTS.names()


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
