"""What a study's search is, for matching it to published rows: method, optimizer, selection, preset.

A published row belongs to a (method, optimizer, selection) triple (:data:`nascli.bench.published.MATCHES`),
so the report needs the optimizer each label ran with, not only its method. It is read from the search's
composed config (``optimizer.name``); a config without one (an old or hand-made run directory) falls back to
the method's own default, the ``override /optimizer`` of ``conf/method/<method>.yaml`` (followed through
the method yamls it extends, e.g. daas -> gdas). A run made from a paper preset (``+experiment=paper/<name>``)
also carries the preset's ``paper`` record, which names its row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf

from nascli.paths import CONF_DIR

FALLBACK_OPTIMIZER = "bilevel"   # search.yaml's default optimizer


@dataclass(frozen=True)
class SearchIdentity:
    """The axes of one search that decide its published rows."""

    method: str
    optimizer: str
    selection: str = "magnitude"                 # the search's own selection
    paper: tuple[str, str] | None = None         # (set key, row name) of the preset the run came from


def _defaults(method: str) -> list[Any]:
    path = CONF_DIR / "method" / f"{method}.yaml"
    if not path.is_file():
        return []
    return list(OmegaConf.to_container(OmegaConf.load(path)).get("defaults") or [])


def default_optimizer(method: str, _seen: frozenset[str] = frozenset()) -> str:
    """The optimizer ``conf/method/<method>.yaml`` selects (``override /optimizer: X``), looking through the
    method yamls it extends; :data:`FALLBACK_OPTIMIZER` when none does."""
    parents = []
    for entry in _defaults(method):
        if isinstance(entry, dict):
            for key, value in entry.items():
                if str(key).removeprefix("override").strip() in ("/optimizer", "optimizer"):
                    return str(value)
        elif isinstance(entry, str) and entry != "_self_" and entry not in _seen:
            parents.append(entry)
    for parent in parents:
        found = default_optimizer(parent, _seen | {method})
        if found != FALLBACK_OPTIMIZER:
            return found
    return FALLBACK_OPTIMIZER


def identity_of(method: str, config: dict[str, Any] | None) -> SearchIdentity:
    """The identity of a search of conf/method ``method`` whose composed config is ``config`` (plain data)."""
    config = config or {}
    optimizer = (config.get("optimizer") or {}).get("name") or default_optimizer(method)
    selection = (config.get("selection") or {}).get("name") or "magnitude"
    record = config.get("paper") or {}
    paper = (str(record["table"]), str(record["row"])) if record.get("table") and record.get("row") else None
    return SearchIdentity(str((config.get("method") or {}).get("name") or method), str(optimizer), str(selection),
                          paper)


def as_identity(value: SearchIdentity | str) -> SearchIdentity:
    """A conf/method name alone means that method with its default optimizer."""
    return value if isinstance(value, SearchIdentity) else SearchIdentity(value, default_optimizer(value))
