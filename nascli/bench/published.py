"""Published NAS-Bench-201 results (METHODS.md 0.6), printed beside a study's own numbers.

Two different sets of numbers circulate for the same methods, so every row is kept with the set it
belongs to and a report always names the set:

* ``nb201_iclr20``: the NAS-Bench-201 paper's table (Dong & Yang, ICLR'20, benchmark file v1.0,
  ``NAS-Bench-201-v1_0-e61699.pth``). Per-row sources as METHODS.md 0.6 tags them.
* ``nb201_later``: a later revision (probably NATS-Bench era; provenance not pinned down) that DrNAS
  and many later papers compare against [2nd: EEEA-Net and GENIUS papers' tables; README
  xiangning-chen/DrNAS].

Values are accuracy in %, ``(mean, std)``; ``std`` is ``None`` where the source gives a single number.
Columns are ``(dataset config name, split)`` with split ``valid`` / ``test`` in the table convention of
METHODS.md 0.5 (CIFAR-10 valid = 25k-trained x-valid, test = 50k-trained ori-test; CIFAR-100 and
ImageNet16-120 x-valid / x-test).
"""
from __future__ import annotations

from dataclasses import dataclass, field

SPACE = "nb201"  # the search space these tables are about
Cell = tuple[float, float | None]
COLUMNS: tuple[tuple[str, str], ...] = (("cifar10", "valid"), ("cifar10", "test"), ("cifar100", "valid"),
                                         ("cifar100", "test"), ("imagenet16_120", "valid"), ("imagenet16_120", "test"))


@dataclass(frozen=True)
class PublishedRow:
    name: str
    values: tuple[Cell | None, ...]  # aligned with COLUMNS
    source: str

    def get(self, dataset: str, split: str) -> Cell | None:
        return self.values[COLUMNS.index((dataset, split))] if (dataset, split) in COLUMNS else None


@dataclass(frozen=True)
class PublishedSet:
    key: str
    title: str
    rows: tuple[PublishedRow, ...] = field(default_factory=tuple)

    def row(self, name: str) -> PublishedRow | None:
        return next((r for r in self.rows if r.name == name), None)


def _row(name: str, source: str, *values: Cell | None) -> PublishedRow:
    assert len(values) == len(COLUMNS), name
    return PublishedRow(name, tuple(values), source)


_RELIZO = "[2nd: ReLIZO paper, 'quoted from NB201'] (METHODS.md 0.6)"
_MEM = "[MEM: recalled from the paper, not verified] (METHODS.md 0.6)"

NB201_ICLR20 = PublishedSet("nb201_iclr20", "NAS-Bench-201 paper (ICLR'20, benchmark file v1.0)", (
    _row("ResNet", "[2nd: EEEA-Net paper's copy of the NB201 table] (METHODS.md 0.6)",
         (90.83, None), (93.97, None), (70.42, None), (70.86, None), (44.53, None), (43.63, None)),
    _row("RSPS", _RELIZO, (80.42, 3.58), (84.07, 3.61), (52.12, 5.55), (52.31, 5.77), (27.22, 3.24), (26.28, 3.09)),
    _row("DARTS-V1", _RELIZO, (39.77, 0.0), (54.30, 0.0), (15.03, 0.0), (15.61, 0.0), (16.43, 0.0), (16.32, 0.0)),
    _row("DARTS-V2", _RELIZO, (39.77, 0.0), (54.30, 0.0), (15.03, 0.0), (15.61, 0.0), (16.43, 0.0), (16.32, 0.0)),
    _row("GDAS", _RELIZO, (89.89, 0.08), (93.61, 0.09), (71.34, 0.04), (70.70, 0.30), (41.59, 1.33), (41.71, 0.98)),
    _row("SETN", _RELIZO, (84.04, 0.28), (87.64, 0.00), (58.86, 0.06), (59.05, 0.24), (33.06, 0.02), (32.52, 0.21)),
    _row("ENAS", _RELIZO, (37.51, 3.19), (53.89, 0.58), (13.37, 2.35), (13.96, 2.33), (15.06, 1.95), (14.84, 2.10)),
    _row("REA", _MEM, (91.19, 0.31), (93.92, 0.30), (71.81, 1.12), (71.84, 0.99), (45.15, 0.89), (45.54, 1.03)),
    _row("RS (random search)", _MEM,
         (90.93, 0.36), (93.70, 0.36), (70.93, 1.09), (71.04, 1.07), (44.45, 1.10), (44.57, 1.25)),
    _row("REINFORCE", "[MEM] (C10 columns match a 2nd source) (METHODS.md 0.6)",
         (91.09, 0.37), (93.85, 0.37), (71.61, 1.12), (71.71, 1.09), (45.05, 1.02), (45.24, 1.18)),
    _row("BOHB", _MEM, (90.82, 0.53), (93.61, 0.52), (70.74, 1.29), (70.85, 1.28), (44.26, 1.36), (44.42, 1.49)),
    _row("Optimal", "[2nd: EEEA-Net table; DrNAS README gives the test optima] (METHODS.md 0.6)",
         (91.61, None), (94.37, None), (73.49, None), (73.51, None), (46.77, None), (47.31, None)),
))

_LATER = "[2nd: EEEA-Net and GENIUS papers' tables; README xiangning-chen/DrNAS] (METHODS.md 0.6)"
NB201_LATER = PublishedSet("nb201_later", "later revision of the NB201 results (as compared against by DrNAS)", (
    _row("RSPS", _LATER, (84.16, 1.69), (87.66, 1.69), (45.78, 6.33), (46.60, 6.57), (31.09, 5.65), (30.78, 6.12)),
    _row("ENAS", _LATER, (39.77, 0.0), (54.30, 0.0), (10.23, 0.12), (10.62, 0.27), (16.43, 0.0), (16.32, 0.0)),
    _row("REINFORCE", _LATER, (91.09, 0.37), (93.85, 0.37), (70.05, 1.67), (70.17, 1.61), (43.04, 2.18), (43.16, 2.28)),
    _row("DARTS", _LATER, (39.77, None), (54.30, None), (38.57, None), (38.97, None), (18.87, None), (18.41, None)),
    _row("GDAS", _LATER, (90.01, 0.46), (93.23, 0.23), (24.05, 8.12), (24.20, 8.08), (40.66, None), (41.02, None)),
    _row("SNAS", _LATER, (90.10, 1.04), (92.77, 0.83), (69.69, 2.39), (69.34, 1.98), (42.84, 1.79), (43.16, 2.64)),
    _row("DSNAS", _LATER, (89.66, 0.29), (93.08, 0.13), (30.87, 16.40), (31.01, 16.38), (40.61, 0.09), (41.07, 0.09)),
    _row("PC-DARTS", _LATER, (89.96, 0.15), (93.41, 0.30), (67.12, 0.39), (67.48, 0.89), (40.83, 0.08), (41.31, 0.22)),
    _row("DrNAS", _LATER, (91.55, 0.0), (94.36, 0.0), (73.49, 0.0), (73.51, 0.0), (46.37, 0.0), (46.34, 0.0)),
))

PUBLISHED_SETS: tuple[PublishedSet, ...] = (NB201_ICLR20, NB201_LATER)

# nascli method name (conf/method/<name>.yaml) -> published row names. DARTS-V1 is the first-order
# NB201 port, DARTS-V2 the second-order one (METHODS.md 1.2); both sets are shown for every match.
METHOD_ROWS: dict[str, tuple[str, ...]] = {
    "darts": ("DARTS-V1", "DARTS-V2", "DARTS"),
    "gdas": ("GDAS",),
    "pc_darts": ("PC-DARTS",),
}
# Rows that frame any study: the space's best cell, a hand design, and random search.
REFERENCE_ROWS: tuple[str, ...] = ("Optimal", "ResNet", "RS (random search)")


def published_for(method: str) -> list[tuple[PublishedSet, PublishedRow]]:
    """Every published row of ``method`` (a nascli method name), with its set."""
    out = []
    for pset in PUBLISHED_SETS:
        for name in METHOD_ROWS.get(method, ()):
            row = pset.row(name)
            if row is not None:
                out.append((pset, row))
    return out


def reference_rows() -> list[tuple[PublishedSet, PublishedRow]]:
    """The framing rows (:data:`REFERENCE_ROWS`) from every set that has them."""
    return [(pset, row) for pset in PUBLISHED_SETS for name in REFERENCE_ROWS
            if (row := pset.row(name)) is not None]


def covers(dataset: str) -> bool:
    """Whether the published tables have columns for ``dataset``."""
    return any(d == dataset for d, _ in COLUMNS)
