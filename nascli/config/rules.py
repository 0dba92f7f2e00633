"""Value rules of the config schema: what one key accepts, and how to say it in one line.

A rule answers two questions: does a (resolved) value pass, and what is allowed, in words
(``"an integer >= 1"``). Hydra parses ``search.epochs=abc`` to the string ``'abc'`` and ``seed=1.5``
to a float, so the rules check Python types strictly: an integer key takes an ``int`` (never a
``bool``), a number key takes an ``int`` or a finite ``float``, a list key takes a list.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    """Base rule: ``nullable`` lets ``null`` through."""

    nullable: bool = False

    def accepts(self, value: Any) -> bool:
        """True when ``value`` is allowed."""
        if value is None:
            return self.nullable
        return self._accepts(value)

    def _accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def allowed(self) -> str:
        """What the key accepts, in words (for the one-line error)."""
        text = self._allowed()
        return f"{text} or null" if self.nullable else text

    def _allowed(self) -> str:
        raise NotImplementedError

    def hint(self, key: str, value: Any) -> str:
        """An optional corrected spelling of ``key=value`` (empty when there is none)."""
        return ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return " and ".join(parts)


def _within(value: float, low: float | None, high: float | None, low_open: bool, high_open: bool) -> bool:
    if low is not None and (value <= low if low_open else value < low):
        return False
    if high is not None and (value >= high if high_open else value > high):
        return False
    return True


@dataclass(frozen=True)
class Int(Rule):
    """An integer within ``[low, high]`` (either bound optional)."""

    low: int | None = None
    high: int | None = None

    def _accepts(self, value: Any) -> bool:
        return _is_int(value) and _within(value, self.low, self.high, False, False)

    def _allowed(self) -> str:
        bounds = _bounds(self.low, self.high, False, False)
        return f"an integer {bounds}" if bounds else "an integer"


@dataclass(frozen=True)
class Number(Rule):
    """A finite int or float within the bounds; ``low_open``/``high_open`` exclude the bound itself."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def _accepts(self, value: Any) -> bool:
        if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value):
            return False
        return _within(value, self.low, self.high, self.low_open, self.high_open)

    def _allowed(self) -> str:
        bounds = _bounds(self.low, self.high, self.low_open, self.high_open)
        return f"a number {bounds}" if bounds else "a number"


@dataclass(frozen=True)
class Flag(Rule):
    """``true`` or ``false``."""

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, bool)

    def _allowed(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Choice(Rule):
    """One of a fixed set of words."""

    choices: tuple[str, ...] = ()

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.choices

    def _allowed(self) -> str:
        return "one of " + ", ".join(self.choices)


@dataclass(frozen=True)
class Text(Rule):
    """A non-empty string; ``words`` says what it names (``"a method name"``)."""

    words: str = "a non-empty text"

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value.strip() != ""

    def _allowed(self) -> str:
        return self.words


@dataclass(frozen=True)
class Pattern(Rule):
    """A string matching ``regex`` in full; ``words`` says what that means."""

    regex: str = ""
    words: str = ""

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, str) and re.fullmatch(self.regex, value) is not None

    def _allowed(self) -> str:
        return self.words


@dataclass(frozen=True)
class ListOf(Rule):
    """A list whose items all pass ``item``; ``nonempty`` refuses ``[]``."""

    item: Rule = Text()
    nonempty: bool = False
    example: str = ""

    def _accepts(self, value: Any) -> bool:
        if not isinstance(value, (list, tuple)):
            return False
        if self.nonempty and not value:
            return False
        return all(self.item.accepts(v) for v in value)

    def _allowed(self) -> str:
        size = "a non-empty list" if self.nonempty else "a list"
        example = f", e.g. {self.example}" if self.example else ""
        return f"{size}, each item {self.item.allowed()}{example}"

    def hint(self, key: str, value: Any) -> str:
        """A single value where a list belongs: show the list spelling (``methods=[darts]``)."""
        if value is not None and not isinstance(value, (list, tuple, dict)) and self.item.accepts(value):
            return f"is a single value where a list belongs; write {key}=[{value}]"
        return ""


@dataclass(frozen=True)
class Mapping(Rule):
    """A ``{key: value}`` mapping (its entries are checked by the code that uses them)."""

    def _accepts(self, value: Any) -> bool:
        return isinstance(value, dict)

    def _allowed(self) -> str:
        return "a mapping {name: value, ...}"
