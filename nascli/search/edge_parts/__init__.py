"""Edge parts: method features on every searchable edge (PC-DARTS partial channels, DARTS- auxiliary skip).

A method lists them in its yaml as ``method.edge_parts: [{name: ..., <options>}]``; each becomes an
:class:`~nascli.spaces.edge.EdgePartSpec` that the space's cells build per cell (see ``nascli/spaces/edge.py``).
"""
from __future__ import annotations

from typing import Any

from nascli.registry import Registry
from nascli.spaces.edge import EdgePartSpec

EDGE_PARTS: Registry[type[EdgePartSpec]] = Registry("edge part")


def build_edge_parts(specs: list[dict[str, Any]] | None) -> list[EdgePartSpec]:
    """Instantiate ``[{name: ..., **options}, ...]``; an unknown option is a one-line error (see options.py)."""
    from nascli.search.options import construct

    _load_all()
    out = []
    for spec in specs or []:
        spec = dict(spec)
        name = spec.pop("name")
        out.append(construct(EDGE_PARTS.get(name), spec, f"method.edge_parts[{name}]"))
    names = [p.name for p in out]
    if len(set(names)) != len(names):
        raise ValueError(f"method.edge_parts lists a part twice: {names}")
    return out


def method_parts(partial_channels: int = 1, aux_skip: bool = False) -> list[EdgePartSpec]:
    """The parts of the PC-DARTS / DARTS- presets by value (tests, scripts): K > 1 adds partial channels."""
    _load_all()
    out: list[EdgePartSpec] = []
    if int(partial_channels) > 1:
        out.append(EDGE_PARTS.get("partial_channels")(k=int(partial_channels)))
    if aux_skip:
        out.append(EDGE_PARTS.get("aux_skip")())
    return out


def _load_all() -> None:
    from nascli.search.edge_parts import aux_skip, partial_channels  # noqa: F401  (register)
