"""Summary statistics of a study: mean, standard deviation, best, and relative improvement.

* Standard deviation is the population one (ddof = 0, numpy's default), the convention of the NB201
  table statistics (:func:`nascli.bench.nb201_table.space_stats`) and of the seed spreads quoted in
  METHODS.md 0.6, so "mean +- std" of a method and of the whole space are computed the same way.
* Relative improvement (Yang, Esperanca, Carlucci, "NAS evaluation is frustratingly hard", ICLR'20;
  METHODS.md 8, antoyang/NAS-Benchmark notebook cell 11) is computed on the means over runs:
  ``RI = 100 * (acc_method - acc_random) / acc_random``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    """``n`` finite values summarised; ``mean``/``std``/``best`` are ``None`` when ``n == 0``."""

    n: int
    mean: float | None
    std: float | None
    best: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def finite(values: Iterable[Any]) -> list[float]:
    """The values that are real finite numbers (``None``, NaN and non-numbers dropped)."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(v):
            out.append(float(v))
    return out


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and population standard deviation ``sqrt(sum (v - mean)^2 / n)``; needs one value at least."""
    vals = list(values)
    if not vals:
        raise ValueError("mean_std of no values")
    n = len(vals)
    mean = math.fsum(vals) / n
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / n)


def summarize(values: Iterable[Any], higher_is_better: bool = True) -> Summary:
    """:class:`Summary` of the finite values (best = max, or min when ``higher_is_better`` is false)."""
    vals = finite(values)
    if not vals:
        return Summary(0, None, None, None)
    mean, std = mean_std(vals)
    return Summary(len(vals), mean, std, max(vals) if higher_is_better else min(vals))


def relative_improvement(acc_method: float | None, acc_random: float | None,
                         higher_is_better: bool = True) -> float | None:
    """``100 * (acc_method - acc_random) / acc_random`` on mean scores, so a better method is positive; for a
    lower-is-better metric (error rates such as CER) ``100 * (acc_random - acc_method) / acc_random``.
    ``None`` if either is missing or the random score is 0 (RI undefined)."""
    if acc_method is None or acc_random is None or acc_random == 0:
        return None
    gain = acc_method - acc_random if higher_is_better else acc_random - acc_method
    return 100.0 * gain / acc_random


def mean_of(values: Iterable[Any]) -> float | None:
    """Mean of the finite values, ``None`` when there are none."""
    vals = finite(values)
    return math.fsum(vals) / len(vals) if vals else None
