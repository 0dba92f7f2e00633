"""Declared options: every configurable class (mixer, optimizer, edge part, component, selection) accepts
exactly the keyword arguments of its constructor (or function) signature; anything else in its config
node is a one-line :class:`~nascli.errors.OptionError` naming the key, the nearest accepted key and the
accepted ones. Nothing is silently ignored (no ``**_`` catch-alls)."""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from nascli.errors import OptionError

T = TypeVar("T")

#: arguments that the builders pass themselves; never config keys
BUILDER_ARGS = ("self", "space", "supernet", "optimizer", "ctx", "device")


def accepted_options(target: Callable[..., Any], skip: Iterable[str] = BUILDER_ARGS) -> list[str]:
    """Keyword options of ``target`` (a class: its ``__init__`` along the MRO while it forwards ``**kw``)."""
    names: list[str] = []
    funcs = [c.__init__ for c in inspect.getmro(target) if "__init__" in c.__dict__] \
        if inspect.isclass(target) else [target]
    for fn in funcs:
        params = inspect.signature(fn).parameters.values()
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip and p.name not in names:
                names.append(p.name)
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names


def check_options(options: dict[str, Any], accepted: list[str], where: str) -> None:
    """One-line error for the first key of ``options`` that is not in ``accepted``."""
    for key in options:
        if key not in accepted:
            near = difflib.get_close_matches(key, accepted, n=1)
            hint = f" (did you mean {where}.{near[0]}?)" if near else ""
            raise OptionError(f"unknown key {where}.{key}{hint}; {where} accepts: {', '.join(sorted(accepted))}")


def construct(target: Callable[..., T], options: dict[str, Any], where: str, *args: Any, **given: Any) -> T:
    """``target(*args, **given, **options)`` after checking ``options`` against its declared keys."""
    check_options(options, accepted_options(target), where)
    return target(*args, **given, **options)
