"""Published results (METHODS.md 0.6, 1-8), printed beside a study's own numbers.

Each number is kept with the *set* it belongs to, and a report always names the set, because different
sets are not comparable with each other:

* ``nb201_iclr20``: the NAS-Bench-201 paper's table (Dong & Yang, ICLR'20, benchmark file v1.0,
  ``NAS-Bench-201-v1_0-e61699.pth``). Per-row sources as METHODS.md 0.6 tags them.
* ``nb201_later``: a later revision (probably NATS-Bench era; provenance not pinned down) that DrNAS
  and many later papers compare against [2nd: EEEA-Net and GENIUS papers' tables; README
  xiangning-chen/DrNAS].
* ``nb201_papers``: NB201 numbers that a method's own paper reports (not part of either NB201 table).
* ``darts_c10``: DARTS-space CIFAR-10, the test error of the searched cell trained with the DARTS
  evaluation protocol (METHODS.md 0.2), with parameters (M) and search cost (GPU-days).

NB201 values are accuracy in %, ``(mean, std)``; ``std`` is ``None`` where the source gives a single number.
Columns are ``(dataset config name, split)`` with split ``valid`` / ``test`` in the table convention of
METHODS.md 0.5. DARTS-space values are test error in %; :meth:`ErrorRow.accuracy` gives ``100 - error``
so they sit beside a study's measured accuracy. A row whose numbers were not recovered is kept with
``None`` values and says so in its source, rather than inventing a figure.

Which rows belong to a search is decided by :data:`MATCHES`: a (method, optimizer, selection) triple
names its own rows and only those (first-order ``darts`` is DARTS-V1, never DARTS-V2).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

Cell = tuple[float, float | None]
COLUMNS: tuple[tuple[str, str], ...] = (("cifar10", "valid"), ("cifar10", "test"), ("cifar100", "valid"),
                                         ("cifar100", "test"), ("imagenet16_120", "valid"), ("imagenet16_120", "test"))


@dataclass(frozen=True)
class PublishedRow:
    """One NB201 row: accuracy ``(mean, std)`` per :data:`COLUMNS` entry."""

    name: str
    values: tuple[Cell | None, ...]  # aligned with COLUMNS
    source: str

    def get(self, dataset: str, split: str) -> Cell | None:
        return self.values[COLUMNS.index((dataset, split))] if (dataset, split) in COLUMNS else None

    def accuracy(self, dataset: str) -> Cell | None:
        """Test accuracy (%) on ``dataset``."""
        return self.get(dataset, "test")

    def covers(self, dataset: str) -> bool:
        """Whether ``dataset`` is one of this row's columns (its value may still be unrecovered)."""
        return any(d == dataset for d, _ in COLUMNS)


@dataclass(frozen=True)
class ErrorRow:
    """One DARTS-space row: test error ``(mean, std)`` in % on ``dataset``, parameters (M), search cost
    (GPU-days); ``stat`` says whether ``error`` is a mean over runs or the best run."""

    name: str
    dataset: str
    error: Cell | None
    params_m: float | None
    cost_gpu_days: float | None
    source: str
    stat: str = "mean"

    def accuracy(self, dataset: str) -> Cell | None:
        """Test accuracy (%) = 100 - error, same std."""
        if dataset != self.dataset or self.error is None:
            return None
        mean, std = self.error
        return (round(100.0 - mean, 4), std)

    def covers(self, dataset: str) -> bool:
        return dataset == self.dataset


Row = PublishedRow | ErrorRow


@dataclass(frozen=True)
class PublishedSet:
    """Rows from one source table, about one search space; ``metric`` names what the rows hold."""

    key: str
    title: str
    space: str
    metric: str
    rows: tuple[Row, ...] = field(default_factory=tuple)

    def row(self, name: str) -> Row | None:
        return next((r for r in self.rows if r.name == name), None)


def trust(source: str) -> str:
    """The trust tag a source string starts with (``CODE``, ``README``, ``2nd``, ``MEM``) or ``?``."""
    found = re.match(r"\s*\[(CODE|README|2nd|MEM)\b", source)
    return found.group(1) if found else "?"


def _row(name: str, source: str, *values: Cell | None) -> PublishedRow:
    assert len(values) == len(COLUMNS), name
    return PublishedRow(name, tuple(values), source)


# ----------------------------------------------------------------------------------- NB201
_RELIZO = "[2nd: ReLIZO paper, 'quoted from NB201'] (METHODS.md 0.6)"
_MEM = "[MEM: recalled from the paper, not verified] (METHODS.md 0.6)"

NB201_ICLR20 = PublishedSet("nb201_iclr20", "NAS-Bench-201 paper (ICLR'20, benchmark file v1.0)", "nb201",
                            "test accuracy (%)", (
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
NB201_LATER = PublishedSet("nb201_later", "later revision of the NB201 results (as compared against by DrNAS)",
                           "nb201", "test accuracy (%)", (
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

NB201_PAPERS = PublishedSet("nb201_papers", "NB201 numbers from the methods' own papers (in neither NB201 table)",
                            "nb201", "test accuracy (%)", (
    # means [2nd: PapersWithCode], the +- values [MEM] (METHODS.md 2)
    _row("DARTS-", "[2nd: PapersWithCode means; the +- are MEM] (METHODS.md 2)",
         (91.03, 0.44), (93.80, 0.40), (71.36, 1.51), (71.53, 1.51), (44.87, 1.46), (45.12, 0.82)),
    # METHODS.md 3: "Exact numbers not verified" -- kept as a row without numbers, never invented
    _row("Single-DARTS", "[?: not recovered; the abstract says 'nearly optimal'] (METHODS.md 3)",
         None, None, None, None, None, None),
))

# ----------------------------------------------------------------------------------- DARTS space, CIFAR-10
DARTS_C10 = PublishedSet("darts_c10", "DARTS space, CIFAR-10: test error of the searched cell (DARTS protocol, "
                         "METHODS.md 0.2), params, search cost", "darts", "test error (%)", (
    ErrorRow("DARTS (1st order)", "cifar10", (3.00, 0.14), 3.3, 0.4,
             "[README PC-DARTS; 2nd: ZiCo paper table] cost 0.4 GPU-days for one run (1.5 in the paper table) "
             "(METHODS.md 1.3)"),
    ErrorRow("DARTS (2nd order)", "cifar10", (2.76, 0.09), 3.3, 1.0,
             "[README quark0/darts] cost 1.0 GPU-day for one run [README PC-DARTS] (4 in the paper table, "
             "4 runs) (METHODS.md 1.3)"),
    ErrorRow("PC-DARTS", "cifar10", (2.57, 0.07), 3.6, 0.1,
             "[README yuhuixu1993/PC-DARTS] (+-0.07 from the paper) (METHODS.md 6)"),
    ErrorRow("DARTS-", "cifar10", (2.59, 0.08), 3.5, 0.4,
             "[2nd: NASI paper table] 9.6 GPU-hours (METHODS.md 2)"),
    ErrorRow("GDAS", "cifar10", (2.93, None), 3.4, 0.21,
             "[2nd: NASI and ZiCo tables] for 2.93 % and 3.4M; the 0.21 GPU-days are MEM (NASI lists 7.2 "
             "GPU-hours) (METHODS.md 5.1)"),
    ErrorRow("GDAS (FRC)", "cifar10", (2.82, None), 2.5, 0.17,
             "[2nd: NASI and ZiCo tables] (fixed reduction cell; not a nascli method) (METHODS.md 5.1)"),
    ErrorRow("ROME", "cifar10", (2.48, None), 3.6, 0.3,
             "[2nd: ICCV'23 paper summary] best run 97.52 % (K=7 ablation: 97.42+-0.07) (METHODS.md 5.2)",
             stat="best"),
    ErrorRow("OStr-DARTS", "cifar10", (2.42, None), None, None,
             "[2nd: PNAG paper-notes table] 97.58 % accuracy (METHODS.md 4)"),
    ErrorRow("DAAS", "cifar10", (2.09, None), None, None,
             "[2nd: arxivlens summary] 97.91 % accuracy; params and cost not recovered (METHODS.md 7)"),
    ErrorRow("SDARTS-RS", "cifar10", (2.67, 0.03), 3.4, 0.4, "[MEM: not verified] (METHODS.md 8, 12)"),
    ErrorRow("SDARTS-ADV", "cifar10", (2.61, 0.02), 3.3, 1.3, "[2nd: NASI/ZiCo tables] (METHODS.md 8)"),
    ErrorRow("DrNAS", "cifar10", (2.46, 0.03), 4.1, 0.6, "[README xiangning-chen/DrNAS] (METHODS.md 8)"),
    ErrorRow("R-DARTS (L2)", "cifar10", (2.95, 0.21), None, None,
             "[2nd: NASI table] (a regularisation grid, not one nascli method) (METHODS.md 8)"),
    ErrorRow("MS-DARTS", "cifar10", None, None, None, "[?: numbers not recovered] (METHODS.md 8, 12)"),
    ErrorRow("RARTS", "cifar10", (2.65, None), None, None,
             "[MEM: low confidence, 'about 2.65 %'] (METHODS.md 8)"),
    ErrorRow("Random search (DARTS paper)", "cifar10", (3.29, 0.15), 3.2, None, "[MEM] (METHODS.md 1.3)"),
))

PUBLISHED_SETS: tuple[PublishedSet, ...] = (NB201_ICLR20, NB201_LATER, NB201_PAPERS, DARTS_C10)


def published_set(key: str) -> PublishedSet:
    """The set called ``key`` (KeyError names the valid keys)."""
    for pset in PUBLISHED_SETS:
        if pset.key == key:
            return pset
    raise KeyError(f"unknown published set {key!r}; valid: {', '.join(p.key for p in PUBLISHED_SETS)}")


# ----------------------------------------------------------------------------------- which rows a search matches
@dataclass(frozen=True)
class Match:
    """A search whose method, optimizer and selection are exactly these reproduces ``rows`` ((set, row) pairs)."""

    method: str
    optimizer: str
    selection: str
    rows: tuple[tuple[str, str], ...]


# Each method only to its own rows: the optimizer is the paper's (first-order `bilevel` vs second-order
# `bilevel_2nd`, METHODS.md 1.2), the selection the paper's (OStr-DARTS is DARTS with selection=ostr,
# METHODS.md 4). The unattributed `nb201_later` "DARTS" row (order not stated) and R-DARTS (L2) (a
# weight-decay grid) match no search. sdarts_rs/sdarts_adv/ms_darts/drnas are first order (METHODS.md 8
# "everything else as DARTS", quark0's default), RARTS is `darts` with `optimizer=rarts`.
MATCHES: tuple[Match, ...] = (
    Match("darts", "bilevel", "magnitude", (("nb201_iclr20", "DARTS-V1"), ("darts_c10", "DARTS (1st order)"))),
    Match("darts", "bilevel_2nd", "magnitude", (("nb201_iclr20", "DARTS-V2"), ("darts_c10", "DARTS (2nd order)"))),
    Match("darts", "bilevel", "ostr", (("darts_c10", "OStr-DARTS"),)),
    Match("darts", "rarts", "magnitude", (("darts_c10", "RARTS"),)),
    Match("gdas", "bilevel", "magnitude", (("nb201_iclr20", "GDAS"), ("nb201_later", "GDAS"), ("darts_c10", "GDAS"))),
    Match("pc_darts", "bilevel", "magnitude", (("nb201_later", "PC-DARTS"), ("darts_c10", "PC-DARTS"))),
    Match("darts_minus", "bilevel", "magnitude", (("nb201_papers", "DARTS-"), ("darts_c10", "DARTS-"))),
    Match("single_darts", "single_level", "magnitude", (("nb201_papers", "Single-DARTS"),)),
    Match("rome", "multipath", "magnitude", (("darts_c10", "ROME"),)),
    Match("daas", "bilevel", "magnitude", (("darts_c10", "DAAS"),)),
    Match("sdarts_rs", "bilevel", "magnitude", (("darts_c10", "SDARTS-RS"),)),
    Match("sdarts_adv", "bilevel", "magnitude", (("darts_c10", "SDARTS-ADV"),)),
    Match("ms_darts", "bilevel", "magnitude", (("darts_c10", "MS-DARTS"),)),
    Match("drnas", "bilevel", "magnitude", (("nb201_later", "DrNAS"), ("darts_c10", "DrNAS"))),
)

# Rows that frame any study of a space: its best cell, a hand design, and random search.
REFERENCE_ROWS: dict[str, tuple[str, ...]] = {
    "nb201": ("Optimal", "ResNet", "RS (random search)"),
    "darts": ("Random search (DARTS paper)",),
}


def published_for(method: str, optimizer: str, selection: str = "magnitude",
                  space: str | None = None) -> list[tuple[PublishedSet, Row]]:
    """The published rows of a search with this method, optimizer and selection (:data:`MATCHES`),
    restricted to ``space``'s sets when given; ``[]`` when no row is that search's own."""
    out = []
    for match in MATCHES:
        if (match.method, match.optimizer, match.selection) != (method, optimizer, selection):
            continue
        for key, name in match.rows:
            pset = published_set(key)
            if space is None or pset.space == space:
                out.append((pset, pset.row(name)))
    return out


def reference_rows(space: str = "nb201") -> list[tuple[PublishedSet, Row]]:
    """The framing rows of ``space`` (:data:`REFERENCE_ROWS`) from every set of it that has them."""
    return [(pset, row) for pset in PUBLISHED_SETS if pset.space == space
            for name in REFERENCE_ROWS.get(space, ()) if (row := pset.row(name)) is not None]


def covers(dataset: str, space: str = "nb201") -> bool:
    """Whether the published sets of ``space`` have numbers for ``dataset``."""
    return any(row.covers(dataset) for pset in PUBLISHED_SETS if pset.space == space for row in pset.rows)
