"""A named registry: every configurable axis is a lookup here, never an if-chain."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from nascli.errors import UnknownChoiceError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories (classes or functions) for one axis of the configuration."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownChoiceError(self.kind, name, self._items) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
