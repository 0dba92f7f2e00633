"""GPUs for a study's parallel job slots: slot ``i`` of ``jobs`` sees GPU ``i mod G`` first.

The rule of :mod:`nascli.launch.gpu_pool` for multiruns (``CUDA_VISIBLE_DEVICES`` rotated), applied only
with ``jobs`` > 1, a pooled device setting and at least two visible GPUs.
"""
from __future__ import annotations

import os
from collections.abc import Callable

from omegaconf import DictConfig


def gpu_slots(cfg: DictConfig) -> Callable[[int], dict[str, str]] | None:
    """``slot -> {"CUDA_VISIBLE_DEVICES": rotated list}``, or ``None`` when slots share the default."""
    from nascli.launch.gpu_pool import POOLED_DEVICE_SETTINGS, gpu_for_job, rotated
    from nascli.launch.plugins import parse_visible_devices, visible_gpu_count

    if int(cfg.jobs) < 2 or str(cfg.device) not in POOLED_DEVICE_SETTINGS:
        return None
    pool = parse_visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES"))
    if pool is None:
        pool = [str(i) for i in range(visible_gpu_count())]
    if len(pool) < 2:
        return None
    return lambda slot: {"CUDA_VISIBLE_DEVICES": ",".join(rotated(pool, gpu_for_job(slot, len(pool))))}
