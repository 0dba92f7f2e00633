"""NAS-Bench-201 ground-truth lookup from the table shipped in ``nascli/bench/data/nb201.json.gz``.

The table (provenance in ``nascli/bench/data/NB201_PROVENANCE.md``) holds all 5^6 = 15,625 NB201
cells. :func:`lookup` reports the primary fields that DARTS-family papers quote (METHODS.md 0.5,
"table convention"; benchmark file ``NAS-Bench-201-v1_0-e61699.pth``, 200 epochs, seed mean):

=================  =======================================  ======================================
dataset            ``valid``                                ``test``
=================  =======================================  ======================================
``cifar10``        ``cifar10_valid`` (25k-trained, x-valid)  ``cifar10_test`` (50k-trained, ori-test)
``cifar100``       ``cifar100_valid`` (x-valid, 5k)          ``cifar100_test`` (x-test, 5k)
``imagenet16_120`` ``imagenet16_valid`` (x-valid, 3k)        ``imagenet16_test`` (x-test, 3k)
=================  =======================================  ======================================

Datasets without a table (``fashion_mnist``, ``synthetic``, ...) give ``None``. The file is read once
per process, from the installed package (never from the project's shared folder).
"""
from __future__ import annotations

import functools
import gzip
import json
import math
import random
from collections.abc import Sequence
from importlib import resources
from typing import Any

TABLE_FILE = "nb201.json.gz"
TABLE_FORMAT = "nb201-compact/1"
NUM_ARCHS = 15625  # 5 ops ** 6 edges (METHODS.md 0.4)

# Dataset config name -> prefix of the table's primary fields (METHODS.md 0.5).
_FIELD_PREFIX: dict[str, str] = {
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "imagenet16_120": "imagenet16",
}
# Dataset config name -> exact TinyNetwork(C=16, N=5) parameter count field (millions).
_PARAMS_FIELD: dict[str, str] = {
    "cifar10": "params_M_cifar10",
    "cifar100": "params_M_cifar100",
    "imagenet16_120": "params_M_imagenet16",
}


def _dataset_key(dataset: str) -> str:
    """Normalise spellings such as ``ImageNet16-120`` to the config name ``imagenet16_120``."""
    return str(dataset).strip().lower().replace("-", "_")


def _arch_key(arch: Any) -> str:
    """Accept an arch string or any object with ``to_string()`` (an NB201 ``Arch``)."""
    return arch.to_string() if hasattr(arch, "to_string") else str(arch)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Population mean and standard deviation (ddof=0): the table is the whole space, not a sample."""
    n = len(values)
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / n
    return mean, math.sqrt(var)


class NB201Table:
    """All NB201 records keyed by canonical arch string; see the module docstring for the fields."""

    def __init__(self, payload: dict[str, Any]):
        if payload.get("format") != TABLE_FORMAT:
            raise ValueError(f"unexpected NB201 table format {payload.get('format')!r}, want {TABLE_FORMAT!r}")
        self.fields: tuple[str, ...] = tuple(payload["fields"])
        self._archs: dict[str, dict[str, float]] = payload["archs"]
        if len(self._archs) != int(payload["num_archs"]):
            raise ValueError(f"NB201 table lists {payload['num_archs']} archs but holds {len(self._archs)}")
        # Fixed order (benchmark index) so that sampling with a seeded rng is reproducible.
        self._order: tuple[str, ...] = tuple(sorted(self._archs, key=lambda a: self._archs[a]["index"]))
        self._stats: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._archs)

    def __contains__(self, arch: object) -> bool:
        return _arch_key(arch) in self._archs

    def arch_strings(self) -> tuple[str, ...]:
        """All arch strings, in NB201 index order."""
        return self._order

    @staticmethod
    def has_dataset(dataset: str) -> bool:
        """Whether the table has accuracies for ``dataset`` (a dataset config name)."""
        return _dataset_key(dataset) in _FIELD_PREFIX

    def record(self, arch_str: Any) -> dict[str, float] | None:
        """The raw record (all fields, plus ``index``) of one arch, or ``None`` if it is not an NB201 cell."""
        rec = self._archs.get(_arch_key(arch_str))
        return None if rec is None else dict(rec)

    def lookup(self, arch_str: Any, dataset: str) -> dict[str, float] | None:
        """``{'valid': %, 'test': %}`` from the primary fields, or ``None`` (unknown arch / no table)."""
        prefix = _FIELD_PREFIX.get(_dataset_key(dataset))
        rec = self._archs.get(_arch_key(arch_str))
        if prefix is None or rec is None:
            return None
        return {"valid": rec[f"{prefix}_valid"], "test": rec[f"{prefix}_test"]}

    def params_m(self, arch_str: Any, dataset: str) -> float | None:
        """Exact trainable parameters (millions) of the TinyNetwork(C=16, N=5) with the dataset's head."""
        field = _PARAMS_FIELD.get(_dataset_key(dataset))
        rec = self._archs.get(_arch_key(arch_str))
        if field is None or rec is None:
            return None
        return rec[field]

    def space_stats(self, dataset: str) -> dict[str, Any] | None:
        """Exact statistics over all 15,625 archs, for random baselines and the "optimal" row.

        Returns ``{'valid': (mean, std), 'test': (mean, std), 'optimal': {'valid': max, 'test': max}}``
        with the population std (ddof=0), or ``None`` when the dataset has no table.
        """
        prefix = _FIELD_PREFIX.get(_dataset_key(dataset))
        if prefix is None:
            return None
        if prefix not in self._stats:
            out: dict[str, Any] = {"optimal": {}}
            for split in ("valid", "test"):
                values = [rec[f"{prefix}_{split}"] for rec in self._archs.values()]
                out[split] = _mean_std(values)
                out["optimal"][split] = max(values)
            self._stats[prefix] = out
        cached = self._stats[prefix]
        return {"valid": cached["valid"], "test": cached["test"], "optimal": dict(cached["optimal"])}

    def sample_archs(self, n: int, rng: random.Random | Any, replace: bool = True) -> list[str]:
        """``n`` arch strings drawn uniformly from the space.

        ``rng`` is a :class:`random.Random` or a ``numpy.random.Generator``; draws are over the archs in
        NB201 index order, so a seeded rng gives the same archs every time. With ``replace=True`` the
        draws are independent (random search with replacement); otherwise the archs are distinct.
        """
        if n < 0 or (not replace and n > len(self._order)):
            raise ValueError(f"cannot draw {n} archs from {len(self._order)} (replace={replace})")
        if hasattr(rng, "integers"):  # numpy.random.Generator
            idx = rng.choice(len(self._order), size=n, replace=replace)
            return [self._order[int(i)] for i in idx]
        if replace:
            return [self._order[rng.randrange(len(self._order))] for _ in range(n)]
        return [self._order[i] for i in rng.sample(range(len(self._order)), n)]


@functools.lru_cache(maxsize=1)
def load_nb201_table() -> NB201Table:
    """Read the packaged table once per process (importlib.resources, works from wheels and zips)."""
    resource = resources.files("nascli.bench").joinpath("data", TABLE_FILE)
    with resource.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as text:
        return NB201Table(json.load(text))


def lookup(arch_str: Any, dataset: str) -> dict[str, float] | None:
    """:meth:`NB201Table.lookup` on the packaged table."""
    return load_nb201_table().lookup(arch_str, dataset)


def record(arch_str: Any) -> dict[str, float] | None:
    """:meth:`NB201Table.record` on the packaged table."""
    return load_nb201_table().record(arch_str)


def params_m(arch_str: Any, dataset: str) -> float | None:
    """:meth:`NB201Table.params_m` on the packaged table."""
    return load_nb201_table().params_m(arch_str, dataset)


def space_stats(dataset: str) -> dict[str, Any] | None:
    """:meth:`NB201Table.space_stats` on the packaged table."""
    return load_nb201_table().space_stats(dataset)


def sample_archs(n: int, rng: random.Random | Any, replace: bool = True) -> list[str]:
    """:meth:`NB201Table.sample_archs` on the packaged table."""
    return load_nb201_table().sample_archs(n, rng, replace=replace)
