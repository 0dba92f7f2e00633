"""The discrete sisr_trilevel architecture (JSON data, never code) and the network-level rules.

An arch is one cell genotype shared by every cell (``ops``: the op of each of the K slots; ``widths``: the
channel fraction after each of the first K - 1 slots, the kernel level) and the network level: ``lr_cells``
cells before the sub-pixel upsampler and ``hr_cells`` cells after it.

Text form: ``ops=conv_3x3,conv_3x3,conv_3x3;widths=1,1;lr=2;hr=0``. JSON: ``{"space": "sisr_trilevel",
"schema": 1, "ops": [...], "widths": [...], "lr_cells": 2, "hr_cells": 0, "arch": "<text form>"}``.

Network-level candidates with S searchable cells: every (a, b) with a + b <= S (a cells at LR, the upsampler,
b cells at HR), ordered a = 0..S, then b = 0..S - a; there are P = (S + 1)(S + 2) / 2.

Sorting for compression (:func:`sort_network_candidates`): the candidates are ranked by their cost
c(a, b) = a + 4 b (an HR cell runs on s^2 >= 4 times the pixels of an LR cell; 4 is the x2 factor), and the
derived network is the cheapest candidate whose weight is within ``tolerance`` of the largest weight
(ties in cost: fewer HR cells, then the lower index). With tolerance 0 it is the argmax with ties broken
towards the compact net.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import torch

from nascli.errors import BadArchError
from nascli.spaces.base import Arch
from nascli.spaces.sisr.ops import SISR_OPS

SPACE_NAME = "sisr_trilevel"
SCHEMA = 1
#: op slots per cell (a chain slot_0 -> ... -> slot_{K-1}); the reference config uses 5 (a choice: 3 on CPU)
OPS_PER_CELL = 3
#: kernel level: channel fraction of the feature after each inner slot (slimmable widths, a choice)
WIDTH_CHOICES: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
#: weight tolerance of the default sorting rule (a choice)
SORT_TOLERANCE = 0.05


def width_channels(width: float, channels: int) -> int:
    """Channels of a slot with fraction ``width`` of C: max(1, round(width C))."""
    return max(1, int(round(width * channels)))


def network_candidates(search_cells: int) -> list[tuple[int, int]]:
    """The (lr_cells, hr_cells) candidates for S searchable cells, in network-alpha column order."""
    return [(a, b) for a in range(search_cells + 1) for b in range(search_cells + 1 - a)]


def search_cells_for(num_candidates: int) -> int:
    """S from P = (S + 1)(S + 2) / 2; ValueError when P is not such a number."""
    s = int(round((math.sqrt(8 * num_candidates + 1) - 3) / 2))
    if s < 0 or (s + 1) * (s + 2) // 2 != num_candidates:
        raise ValueError(f"{num_candidates} network-level scores: not (S+1)(S+2)/2 for any S")
    return s


def candidate_cost(lr_cells: int, hr_cells: int) -> int:
    """c(a, b) = a + 4 b (module docstring)."""
    return lr_cells + 4 * hr_cells


def sort_network_candidates(weights: torch.Tensor, candidates: list[tuple[int, int]],
                            tolerance: float = SORT_TOLERANCE) -> list[int]:
    """Candidate indices, best first: those within ``tolerance`` of the largest weight by (cost, hr, index),
    then the others by weight (descending, ties to the lower index). The first is the derived network."""
    w = [float(x) for x in weights]
    top = max(w)
    near = [i for i in range(len(w)) if w[i] >= top - tolerance]
    near.sort(key=lambda i: (candidate_cost(*candidates[i]), candidates[i][1], i))
    rest = sorted((i for i in range(len(w)) if i not in near), key=lambda i: (-w[i], i))
    return near + rest


@dataclass(frozen=True)
class SISRArch(Arch):
    """One cell genotype (ops, widths) and the network level (lr_cells, hr_cells); module docstring."""

    ops: tuple[str, ...]
    widths: tuple[float, ...]
    lr_cells: int
    hr_cells: int
    space: str = SPACE_NAME

    def __post_init__(self) -> None:
        if len(self.ops) != OPS_PER_CELL or any(o not in SISR_OPS for o in self.ops):
            raise BadArchError(f"sisr_trilevel arch needs {OPS_PER_CELL} ops from {', '.join(SISR_OPS)}; "
                               f"got {list(self.ops)}")
        if len(self.widths) != OPS_PER_CELL - 1 or any(w not in WIDTH_CHOICES for w in self.widths):
            raise BadArchError(f"sisr_trilevel arch needs {OPS_PER_CELL - 1} widths from "
                               f"{', '.join(f'{w:g}' for w in WIDTH_CHOICES)}; got {list(self.widths)}")
        for key in ("lr_cells", "hr_cells"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise BadArchError(f"sisr_trilevel arch {key}={v!r} is not a count >= 0")

    def to_string(self) -> str:
        return (f"ops={','.join(self.ops)};widths={','.join(f'{w:g}' for w in self.widths)};"
                f"lr={self.lr_cells};hr={self.hr_cells}")

    def to_json(self) -> dict[str, Any]:
        return {"space": SPACE_NAME, "schema": SCHEMA, "ops": list(self.ops), "widths": list(self.widths),
                "lr_cells": self.lr_cells, "hr_cells": self.hr_cells, "arch": self.to_string()}


#: hand-picked named archs: every slot a full-width 3x3 conv, two LR cells, none at HR
NAMED_ARCHS: dict[str, SISRArch] = {
    "sisr_baseline": SISRArch(("conv_3x3",) * OPS_PER_CELL, (1.0,) * (OPS_PER_CELL - 1), 2, 0),
}

_FORMAT = "ops=<op>,<op>,<op>;widths=<w>,<w>;lr=<n>;hr=<n>"


def _width(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise BadArchError(f"sisr_trilevel width {text!r} is not a number; valid widths: "
                           f"{', '.join(f'{w:g}' for w in WIDTH_CHOICES)}") from None


def _count(text: str, key: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadArchError(f"sisr_trilevel {key}={text!r} is not a whole number") from None


def parse_sisr(text: str) -> SISRArch:
    """A named arch (``sisr_baseline``), the text form, or the JSON object; BadArchError with the reason."""
    s = str(text).strip()
    if s.lower() in NAMED_ARCHS:
        return NAMED_ARCHS[s.lower()]
    if s.startswith("{"):
        try:
            return arch_from_json(json.loads(s))
        except json.JSONDecodeError as exc:
            raise BadArchError(f"bad sisr_trilevel arch JSON: {exc}") from None
    fields = dict(part.split("=", 1) for part in s.split(";") if "=" in part)
    if set(fields) != {"ops", "widths", "lr", "hr"}:
        raise BadArchError(f"not a sisr_trilevel arch: expected a name ({', '.join(NAMED_ARCHS)}) or {_FORMAT}")
    return SISRArch(tuple(fields["ops"].split(",")), tuple(_width(w) for w in fields["widths"].split(",")),
                    _count(fields["lr"], "lr"), _count(fields["hr"], "hr"))


def arch_from_json(data: Any) -> SISRArch:
    """Inverse of :meth:`SISRArch.to_json` (``arch`` and unknown keys ignored)."""
    if not isinstance(data, dict) or data.get("space") != SPACE_NAME:
        found = data.get("space") if isinstance(data, dict) else type(data).__name__
        raise BadArchError(f"not a sisr_trilevel arch.json (space={found!r}); expected \"space\": \"{SPACE_NAME}\"")
    missing = [k for k in ("ops", "widths", "lr_cells", "hr_cells") if k not in data]
    if missing:
        raise BadArchError(f"sisr_trilevel arch.json lacks {', '.join(missing)}")
    if not isinstance(data["ops"], list) or not isinstance(data["widths"], list):
        raise BadArchError("sisr_trilevel arch.json \"ops\" and \"widths\" must be lists")
    widths = tuple(float(w) if isinstance(w, (int, float)) and not isinstance(w, bool) else w
                   for w in data["widths"])
    return SISRArch(tuple(data["ops"]), widths, data["lr_cells"], data["hr_cells"])
