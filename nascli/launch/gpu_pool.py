"""GPU pool for local parallel sweeps: with G visible GPUs, job ``i`` of a multirun runs on GPU ``i mod G``.

The rule (:func:`gpu_for_job`) is applied by :class:`GpuPoolCallback`, a Hydra callback registered in
``conf/_shared/hydra.yaml`` whose ``on_job_start`` runs in the process that executes the job (a
submitit job process, a joblib/loky worker, or the main process for Hydra's basic launcher), after
the job config is composed and before the command touches CUDA.

Why the callback reorders CUDA_VISIBLE_DEVICES instead of narrowing it
----------------------------------------------------------------------
CUDA reads ``CUDA_VISIBLE_DEVICES`` once per process, when the driver initialises (``cuInit``; note
that ``torch.cuda.is_available()`` already does that). Setting the variable later changes nothing.
joblib's loky workers are reused: one worker may run job 0 and then job 3, and a worker whose CUDA
was initialised with only GPU 0 visible can never reach GPU 1. So, per process:

* first job in the process, CUDA not initialised yet (a fresh submitit job process or loky
  worker: nothing in nascli touches CUDA at import time, which tests/test_scale_out.py checks):
  ``CUDA_VISIBLE_DEVICES`` is set to the pool *rotated* so the job's GPU comes first. The job's
  ``device=auto|cuda`` then means ``cuda:0`` = its GPU, and the other GPUs stay reachable.
* any later job in the same process (a reused worker, or the basic launcher's sequential jobs):
  the driver has fixed its device order (the one recorded above), so the callback selects the job's
  GPU with ``torch.cuda.set_device(index of that GPU in the recorded order)``; ``device=auto|cuda``
  follows the current device.

The pool is what the process saw first: the ``CUDA_VISIBLE_DEVICES`` entries (indices, UUIDs or MIG
ids) when set, else every GPU torch counts. Nothing happens outside multiruns, under torchrun
(WORLD_SIZE > 1, where the local rank picks the GPU), for ``device=cpu`` or ``device=cuda:N``, or
when there is no GPU.
"""
from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from nascli.launch.plugins import parse_visible_devices

POOLED_DEVICE_SETTINGS = ("auto", "cuda")  # device=cpu / cuda:N are the user's explicit choice


def gpu_for_job(job_num: int, num_gpus: int) -> int:
    """Position in the pool of job ``job_num``'s GPU: ``job_num mod num_gpus``."""
    if num_gpus < 1:
        raise ValueError("the GPU pool is empty")
    if job_num < 0:
        raise ValueError(f"job number {job_num} is negative")
    return job_num % num_gpus


def rotated(pool: Sequence[str], first: int) -> list[str]:
    """``pool`` rotated so that ``pool[first]`` leads: [p_f, p_f+1, ..., p_0, ..., p_f-1]."""
    return list(pool[first:]) + list(pool[:first])


class CudaState(Protocol):
    """The few CUDA calls the pool needs (a fake one in tests)."""

    def is_built(self) -> bool: ...

    def is_initialized(self) -> bool: ...

    def device_count(self) -> int: ...

    def set_device(self, index: int) -> None: ...


class TorchCuda:
    """:class:`CudaState` backed by ``torch.cuda`` (imported lazily; none of these calls runs ``cuInit``)."""

    def is_built(self) -> bool:
        import torch
        return bool(torch.backends.cuda.is_built())

    def is_initialized(self) -> bool:
        import torch
        return bool(torch.cuda.is_initialized())

    def device_count(self) -> int:
        import torch
        return int(torch.cuda.device_count())  # NVML-based before CUDA initialises (no cuInit)

    def set_device(self, index: int) -> None:
        import torch
        torch.cuda.set_device(index)


@dataclass(frozen=True)
class Assignment:
    """Where one job runs: ``gpu`` (a pool entry), and how it was selected."""

    job_num: int
    gpu: str
    visible_devices: str  # CUDA_VISIBLE_DEVICES of the process after the assignment
    device_index: int  # the job's GPU as cuda:<index> in this process
    set_device: bool  # True when torch.cuda.set_device(device_index) was called


class GpuPool:
    """Per-process pool state: the pool and the device order fixed by the process's first job."""

    def __init__(self) -> None:
        self.pool: list[str] | None = None
        self.driver_order: list[str] | None = None

    def assign(self, job_num: int, environ: MutableMapping[str, str], cuda: CudaState) -> Assignment | None:
        """Pin job ``job_num`` to its GPU in this process (None when there is no GPU); see the module doc."""
        if self.pool is None:
            entries = parse_visible_devices(environ.get("CUDA_VISIBLE_DEVICES"))
            if not cuda.is_built():
                entries = []  # a CPU-only torch has no GPU, whatever the environment says
            self.pool = entries if entries is not None else [str(i) for i in range(cuda.device_count())]
            if self.pool and not cuda.is_initialized():
                self.driver_order = rotated(self.pool, gpu_for_job(job_num, len(self.pool)))
                environ["CUDA_VISIBLE_DEVICES"] = ",".join(self.driver_order)
            else:
                self.driver_order = list(self.pool)
        if not self.pool:
            return None
        assert self.driver_order is not None
        gpu = self.pool[gpu_for_job(job_num, len(self.pool))]
        index = self.driver_order.index(gpu)
        select = index != 0 or cuda.is_initialized()
        if select:
            cuda.set_device(index)
        return Assignment(job_num, gpu, environ.get("CUDA_VISIBLE_DEVICES", ""), index, select)


_POOLS: dict[int, GpuPool] = {}  # per process id, so a forked child never inherits its parent's order


def process_pool() -> GpuPool:
    """This process's :class:`GpuPool`."""
    return _POOLS.setdefault(os.getpid(), GpuPool())


def job_number(config: DictConfig) -> int | None:
    """``hydra.job.num`` of a multirun job; None for a single run."""
    from hydra.types import RunMode

    hydra_cfg = config.get("hydra")
    if hydra_cfg is None or hydra_cfg.get("mode") != RunMode.MULTIRUN:
        return None
    num = hydra_cfg.job.get("num")
    return None if num is None else int(num)


class GpuPoolCallback(Callback):
    """Hydra callback: job ``hydra.job.num = i`` of a multirun runs on pool GPU ``i mod G``."""

    def __init__(self, enabled: bool = True, verbose: bool = True) -> None:
        self.enabled, self.verbose = bool(enabled), bool(verbose)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        assignment = self.assign(config, os.environ, TorchCuda())
        if assignment is not None and self.verbose:
            print(f"gpu pool: job {assignment.job_num} -> GPU {assignment.gpu} (cuda:{assignment.device_index}, "
                  f"CUDA_VISIBLE_DEVICES={assignment.visible_devices})", file=sys.stderr, flush=True)

    def assign(self, config: DictConfig, environ: MutableMapping[str, str], cuda: CudaState,
               pool: GpuPool | None = None) -> Assignment | None:
        """The assignment for ``config``'s job, or None when the pool does not apply."""
        num = job_number(config)
        if not self.enabled or num is None or int(environ.get("WORLD_SIZE", "1") or 1) > 1:
            return None
        if str(config.get("device", "auto")) not in POOLED_DEVICE_SETTINGS:
            return None
        return (pool or process_pool()).assign(num, environ, cuda)
