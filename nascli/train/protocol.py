"""Training protocols for discrete networks (``conf/protocol/<name>.yaml``) and their schedules.

The schedules are pure functions of (protocol, epoch) and are applied once at the start of every
epoch, so resuming needs no scheduler state.

* cosine (METHODS.md 0.2, 0.5 and 11.9; quark0 steps ``CosineAnnealingLR`` at epoch start):
  ``lr_e = lr_min + (lr - lr_min) * (1 + cos(pi * e / E)) / 2`` for e = 0..E-1.
* step (METHODS.md 0.3; ``StepLR(step_size, gamma)``): ``lr_e = lr * gamma ** floor(e / step_size)``
  (``step_size`` = 1 epoch unless set: EDSR halves every 200 epochs of 1000 updates).
* warm-up (PC-DARTS ImageNet, METHODS.md 0.3): for e < W, ``lr_e = lr * (e + 1) / W``; from epoch W on
  the schedule above, evaluated at the unshifted epoch e.
* drop-path (METHODS.md 0.2): ``p_e = drop_path_prob * e / E``.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nascli.errors import NasError

SCHEDULES = ("cosine", "step")
#: ``protocol.optimizer``: SGD (momentum, nesterov, weight decay) or Adam (beta1, beta2, eps 1e-8, weight decay;
#: EDSR's optimizer, Lim et al. 2017 sec. 4.2)
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class Protocol:
    """Everything that defines how a discrete network is trained from scratch.

    ``cutout`` is the cutout hole side in pixels (0 = off); ``grad_clip`` the max gradient norm (None or
    0 = off); ``max_steps_per_epoch`` caps steps per epoch (None = one full pass over the train split).
    """

    name: str
    epochs: int
    batch_size: int
    lr: float
    lr_min: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "cosine"
    step_gamma: float | None = None
    warmup_epochs: int = 0
    grad_clip: float | None = None
    cutout: int = 0
    auxiliary_weight: float = 0.0
    drop_path_prob: float = 0.0
    label_smoothing: float = 0.0
    max_steps_per_epoch: int | None = None
    optimizer: str = "sgd"
    beta1: float = 0.9
    beta2: float = 0.999
    step_size: int = 1

    def __post_init__(self) -> None:
        problems = []
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule {self.schedule!r} (valid: {', '.join(SCHEDULES)})")
        if self.schedule == "step" and not (self.step_gamma and self.step_gamma > 0):
            problems.append(f"step_gamma {self.step_gamma!r} (the 'step' schedule needs a positive gamma)")
        if self.epochs < 1:
            problems.append(f"epochs {self.epochs!r} (need >= 1)")
        if self.batch_size < 1:
            problems.append(f"batch_size {self.batch_size!r} (need >= 1)")
        if self.warmup_epochs < 0 or self.warmup_epochs > self.epochs:
            problems.append(f"warmup_epochs {self.warmup_epochs!r} (need 0..epochs)")
        if not 0.0 <= self.drop_path_prob < 1.0:
            problems.append(f"drop_path_prob {self.drop_path_prob!r} (need 0 <= p < 1)")
        if not 0.0 <= self.label_smoothing < 1.0:
            problems.append(f"label_smoothing {self.label_smoothing!r} (need 0 <= s < 1)")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            problems.append(f"max_steps_per_epoch {self.max_steps_per_epoch!r} (need >= 1 or null)")
        if self.nesterov and self.momentum <= 0:
            problems.append(f"nesterov with momentum {self.momentum!r} (Nesterov needs momentum > 0)")
        if self.cutout < 0:
            problems.append(f"cutout {self.cutout!r} (need >= 0)")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer {self.optimizer!r} (valid: {', '.join(OPTIMIZERS)})")
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            problems.append(f"beta1/beta2 {self.beta1!r}/{self.beta2!r} (need 0 <= beta < 1)")
        if self.step_size < 1:
            problems.append(f"step_size {self.step_size!r} (need >= 1 epoch)")
        if problems:
            raise NasError(f"protocol {self.name!r}: bad " + "; bad ".join(problems))

    @classmethod
    def from_cfg(cls, node: Mapping[str, Any] | Any) -> "Protocol":
        """Build from a Hydra/omegaconf node or a plain mapping; unknown keys are an error."""
        if hasattr(node, "_metadata"):  # omegaconf DictConfig
            from omegaconf import OmegaConf

            node = OmegaConf.to_container(node, resolve=True)
        data = dict(node)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise NasError(f"unknown protocol keys {unknown}; valid keys: {', '.join(sorted(known))}")
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING and data.get(f.name) is None)
        if missing:
            raise NasError(f"protocol {data.get('name', '?')!r} lacks required keys {missing}")
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = data.get(f.name)
            if value is None:  # absent or null: the field default (None stays None for optional fields)
                continue
            kwargs[f.name] = _COERCE.get(f.name, lambda v: v)(value)
        return cls(**kwargs)

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | Any) -> "Protocol":
        """Alias of :meth:`from_cfg`."""
        return cls.from_cfg(node)

    def as_dict(self) -> dict[str, Any]:
        """Plain-data form (for config.yaml, metrics and checkpoints). The optimizer keys added with Adam
        (:data:`OPTIMIZER_DEFAULTS`) appear only when they differ from SGD's defaults, so a classification
        protocol reads as it did before them (its checkpoints still resume)."""
        data = dataclasses.asdict(self)
        for key, value in OPTIMIZER_DEFAULTS.items():
            if data[key] == value:
                del data[key]
        return data


OPTIMIZER_DEFAULTS = {"optimizer": "sgd", "beta1": 0.9, "beta2": 0.999, "step_size": 1}
_INT_FIELDS = ("epochs", "batch_size", "warmup_epochs", "cutout", "max_steps_per_epoch", "step_size")
_FLOAT_FIELDS = ("lr", "lr_min", "momentum", "weight_decay", "step_gamma", "grad_clip", "auxiliary_weight",
                 "drop_path_prob", "label_smoothing", "beta1", "beta2")
_COERCE: dict[str, Any] = {
    "name": str,
    "schedule": str,
    "optimizer": str,
    "nesterov": lambda v: v.strip().lower() in ("1", "true", "yes", "on") if isinstance(v, str) else bool(v),
    **{k: int for k in _INT_FIELDS},
    **{k: float for k in _FLOAT_FIELDS},
}


def load_protocol(path: str | Path) -> Protocol:
    """Read one ``conf/protocol/<name>.yaml`` file (outside Hydra: tests, scripts)."""
    from omegaconf import OmegaConf

    return Protocol.from_cfg(OmegaConf.load(Path(path)))


def lr_at_epoch(protocol: Protocol, epoch: int) -> float:
    """Learning rate used throughout epoch ``epoch`` (0-based); see the module docstring."""
    e, total = int(epoch), protocol.epochs
    if e < protocol.warmup_epochs:
        return protocol.lr * (e + 1) / protocol.warmup_epochs
    if protocol.schedule == "cosine":
        return protocol.lr_min + (protocol.lr - protocol.lr_min) * (1.0 + math.cos(math.pi * e / total)) / 2.0
    assert protocol.step_gamma is not None  # validated in Protocol.__post_init__
    return protocol.lr * protocol.step_gamma ** (e // protocol.step_size)


def drop_path_at_epoch(protocol: Protocol, epoch: int) -> float:
    """Drop-path probability for epoch ``epoch``: ``p * e / E`` (0 at the first epoch)."""
    return protocol.drop_path_prob * int(epoch) / protocol.epochs
