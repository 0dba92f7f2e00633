"""A study's configs through Hydra's compose API: the shipped choices, composing, forwarding group changes.

A study checks every job's config before anything runs by composing it exactly as the job's own
``nas <command>`` will. :func:`group_overrides` turns a config group as the user changed it on the
benchmark command line (``dataset.num_train=256``) back into overrides, so every job gets the same group.
"""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from nascli.compose_api import Compose, fresh_compose  # noqa: F401  (re-exported for the bench modules)
from nascli.errors import NasError
from nascli.overrides import hydra_value
from nascli.paths import CONF_DIR



def choices(group: str) -> list[str]:
    """Config names available in ``conf/<group>/``, sorted."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def compose_or_fail(compose: Compose, name: str, overrides: list[str], what: str) -> DictConfig:
    """``compose(name, overrides)``; any composition problem is a :class:`NasError` naming ``what`` and
    the first line of Hydra's message."""
    try:
        return compose(name, overrides=overrides)
    except Exception as exc:  # noqa: BLE001 - any composition problem is a bad study config
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NasError(f"{what}: the overrides do not compose ({first}); overrides: {' '.join(overrides)}") from None


def _diff(default: Any, node: Any, key: str, out: list[str]) -> None:
    if isinstance(default, dict) and isinstance(node, dict):
        for k, v in node.items():
            if k not in default:
                out.append(f"++{key}.{k}={hydra_value(v)}")
            else:
                _diff(default[k], v, f"{key}.{k}", out)
        out.extend(f"~{key}.{k}" for k in default if k not in node)
    elif default != node:
        out.append(f"{key}={hydra_value(node)}")


def group_overrides(group: str, node: Any) -> list[str]:
    """Overrides that turn ``conf/<group>/<node.name>.yaml`` into ``node``: changed values as
    ``group.key=value``, added keys as ``++group.key=value``, removed keys as ``~group.key``; ``[]`` when
    the named file does not exist."""
    data = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node or {})
    path = CONF_DIR / group / f"{data.get('name')}.yaml"
    if not path.exists():
        return []
    default = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    default.pop("defaults", None)
    out: list[str] = []
    _diff(default, {k: v for k, v in data.items() if k != "defaults"}, group, out)
    return out
