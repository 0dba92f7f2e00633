"""How many CPU threads a job may use, so that parallel jobs do not oversubscribe the cores.

Two searches on a 2-core machine, each at torch's default of 2 intra-op threads, ran at 3 images/s instead of 21
with one thread each (issue 22: idle OpenMP threads spin while the other process holds the core). The cores a
process may use are the smaller of

* its CPU affinity (``os.sched_getaffinity``: ``taskset``, ``numactl``, SLURM's ``--cpus-per-task`` binding), and
* its cgroup CPU quota, rounded up (cgroup v2 ``cpu.max`` = ``"<quota> <period>"``; v1 ``cpu.cfs_quota_us`` /
  ``cpu.cfs_period_us``; a container limited to 1.5 CPUs gets 2),

not the machine's core count (``os.cpu_count``), and ``parallel`` jobs sharing them get ``cores // parallel`` each
(at least one). A user's ``num_threads=`` always wins.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

#: where the cgroup files of this process are read (a test points it at a folder of hand-written files)
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path | None = None) -> float | None:
    """The CPU quota of this process's cgroup in cores (quota / period), or None when unlimited or unreadable."""
    root = CGROUP_ROOT if root is None else root
    try:
        v2 = root / "cpu.max"
        if v2.is_file():
            quota, period = (v2.read_text().split() + ["100000"])[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota_file, period_file = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
        if quota_file.is_file() and period_file.is_file():
            quota = int(quota_file.read_text())
            return None if quota <= 0 else quota / int(period_file.read_text())
    except (OSError, ValueError):
        return None
    return None


def available_cpus(root: Path | None = None) -> int:
    """The cores this process may run on: min(affinity, ceil(cgroup quota)), at least 1 (module docstring)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows: no affinity call
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cores = min(cores, max(1, math.ceil(limit)))
    return max(1, cores)


def threads_per_job(parallel: int, cores: int | None = None) -> int:
    """``cores // parallel`` threads for each of ``parallel`` concurrent jobs, at least one."""
    cores = available_cpus() if cores is None else cores
    return max(1, cores // max(1, int(parallel)))
