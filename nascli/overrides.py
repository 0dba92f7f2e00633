"""Writing values in Hydra's override grammar (``key=value`` on a command line), in one place.

Three rules, for three kinds of input:

* :func:`quote_value`: free text a user typed (an NB201 string, a Genotype, a path with ``seed=N``) is
  wrapped in quotes unless it already is quoted: single quotes, or double quotes when the text has a
  single quote but no double quote;
* :func:`hydra_value`: a Python value (from a composed config) written so that Hydra parses it back to
  the same value: ``null``, ``true``/``false``, numbers, ``[..]`` lists, ``{k:v}`` dicts, and strings
  always single-quoted;
* :func:`path_value`: a path is left bare when it is made of plainly safe characters only
  (letters, digits, ``_ . / : + -``), else quoted by :func:`hydra_value`.

Inside quotes Hydra reads a backslash literally except in a run of backslashes that ends at a quote
character of the same kind (or at the closing quote): there each backslash is written twice and the
quote as ``\\'`` (:func:`quoted`), so every text comes back unchanged.

:func:`override_key` and :func:`merge_overrides` read and combine override lists.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

SAFE_PATH = re.compile(r"^[A-Za-z0-9_./:+-]+$")


def quoted(text: str, quote: str = "'") -> str:
    """``text`` between ``quote`` characters, escaped so that Hydra reads back exactly ``text`` (module
    docstring: backslash runs before a ``quote`` or the end are doubled, ``quote`` becomes ``\\quote``)."""
    def escape(m: re.Match) -> str:
        return m.group(1) * 2 + ("\\" + m.group(2) if m.group(2) else "")

    return quote + re.sub(r"(\\*)(" + re.escape(quote) + r"|$)", escape, text) + quote


def quote_value(value: str) -> str:
    """Quote free text for Hydra's grammar unless it already is quoted: single quotes, or double quotes
    when the text holds a single quote and no double quote."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value
    return quoted(value, '"' if "'" in value and '"' not in value else "'")


def hydra_value(value: Any) -> str:
    """``value`` in Hydra's override grammar, so that Hydra parses it back to ``value`` (module docstring)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    return quoted(str(value))


def path_value(path: Path | str) -> str:
    """A path as an override value: bare when every character is plainly safe, else quoted."""
    text = str(path)
    return text if SAFE_PATH.match(text) else hydra_value(text)


def override_key(override: str) -> str:
    """The dotted key an override sets or deletes (``++a.b=1`` -> ``a.b``, ``~a.b`` -> ``a.b``)."""
    return override.lstrip("+~").split("=", 1)[0]


def merge_overrides(first: list[str], then: list[str]) -> list[str]:
    """``first`` without the keys that ``then`` sets, followed by ``then`` (one override per key)."""
    later = {override_key(o) for o in then}
    return [o for o in first if override_key(o) not in later] + list(then)
