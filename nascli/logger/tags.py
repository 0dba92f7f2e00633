"""Which TensorBoard tag an epoch record's number goes to, and the alpha figures the loggers add.

Tag rule for a numeric key ``k`` of a metrics.jsonl record (booleans, text, lists are not scalars):

1. ``k`` in :data:`NOT_LOGGED` (counters and cumulative wall time): no tag;
2. ``k`` in :data:`GROUPS`: that tag (``alpha_entropy`` -> ``alpha/entropy``,
   ``images_per_s`` -> ``speed/images_per_s``, RL's ``eval_return_mean`` -> ``return/eval``); a key starting
   with a :data:`PREFIXES` prefix: ``<group>/<rest>`` (``ppo_approx_kl`` -> ``ppo/approx_kl``);
3. ``<split>_<metric>`` with split train, val or test: ``<metric>/<split>`` (``val_acc`` -> ``acc/val``,
   ``train_loss`` -> ``loss/train``, ``test_psnr`` -> ``psnr/test``), so TensorBoard draws the splits of a
   metric side by side;
4. anything else is a schedule or component value (``lr``, ``tau``, ``beta``, ``drop_path_prob``):
   ``schedule/<k>``.

A mapping of numbers (a value per cell type, ``alpha_entropy: {normal: .., reduce: ..}``, or the tabular
benchmark's ``benchmark: {valid: .., test: ..}``) gives one scalar per entry under ``<tag>/<entry>``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

SPLITS = ("train", "val", "test")
NOT_LOGGED = frozenset({"epoch", "steps", "wall_time_s", "drnas_stage_changed", "timesteps"})
GROUPS: dict[str, str] = {
    "alpha_entropy": "alpha/entropy",
    "benchmark": "benchmark",
    "skip_share": "alpha/skip_share",
    "hessian_eigenvalue": "alpha/hessian_eigenvalue",
    "skip_count": "arch/skip_count",
    "param_free_share": "arch/param_free_share",
    "images_per_s": "speed/images_per_s",
    "epoch_time_s": "speed/epoch_time_s",
    "wall_s": "speed/epoch_time_s",
    "peak_memory_mb": "speed/peak_memory_mb",
    "peak_memory_bytes": "speed/peak_memory_bytes",
    # task=reinforcement_learning's records (nascli/rl/driver.py)
    "eval_return_mean": "return/eval",
    "eval_return_std": "return/eval_std",
    "train_return_mean": "return/train",
    "train_episodes": "rl/train_episodes",
    "arch_steps": "rl/arch_steps",
    "env_steps_per_s": "speed/env_steps_per_s",
}
#: record-key prefix -> tag group (the rest of the key is the tag's name)
PREFIXES: dict[str, str] = {"ppo_": "ppo"}


def tag_of(key: str) -> str | None:
    """The TensorBoard tag of record key ``key`` (module docstring), or None when it is not logged."""
    if key in NOT_LOGGED:
        return None
    if key in GROUPS:
        return GROUPS[key]
    for prefix, group in PREFIXES.items():
        if key.startswith(prefix) and len(key) > len(prefix):
            return f"{group}/{key[len(prefix):]}"
    split, _, metric = key.partition("_")
    if split in SPLITS and metric:
        return f"{metric}/{split}"
    return f"schedule/{key}"


def scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """tag -> value of every finite number of ``record`` that has a tag."""
    out: dict[str, float] = {}
    for key, value in record.items():
        tag = tag_of(str(key))
        if tag is None:
            continue
        entries = value.items() if isinstance(value, Mapping) else [(None, value)]
        for entry, number in entries:
            if _is_number(number):
                out[tag if entry is None else f"{tag}/{entry}"] = float(number)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def skip_share(alphas: Mapping[str, Sequence[Sequence[float]]], ops: Sequence[str], skip_op: str) -> float | None:
    """The mean over all edges (every cell type whose rows choose among the O ops) of the probability on
    ``skip_op``: 1/O at a uniform start, drifting towards 1 when the search collapses to skip connections; None
    when the space has no skip op. Levels of another width (sisr_trilevel's network and kernel levels) choose
    among other things and are left out."""
    if skip_op not in ops:
        return None
    col = list(ops).index(skip_op)
    rows = [row[col] for probs in alphas.values() for row in probs if len(row) == len(ops)]
    return sum(rows) / len(rows) if rows else None
