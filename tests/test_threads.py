"""Threads per job: the cores a process may use (affinity, cgroup quota) shared among concurrent jobs."""
import os

import pytest
import torch
from omegaconf import OmegaConf

from nascli import threads
from nascli.bench.args import common_args
from nascli.commands import common


def _v2(tmp_path, text):
    (tmp_path / "cpu.max").write_text(text)
    return tmp_path


def _v1(tmp_path, quota, period):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(f"{period}\n")
    return tmp_path


@pytest.mark.parametrize("text,cores", [("150000 100000\n", 1.5), ("200000 100000", 2.0), ("50000 100000", 0.5),
                                        ("max 100000\n", None), ("garbage", None)])
def test_cgroup_v2_quota(tmp_path, text, cores):
    assert threads.cgroup_cpu_limit(_v2(tmp_path, text)) == cores


@pytest.mark.parametrize("quota,period,cores", [(300000, 100000, 3.0), (-1, 100000, None), (25000, 50000, 0.5)])
def test_cgroup_v1_quota(tmp_path, quota, period, cores):
    assert threads.cgroup_cpu_limit(_v1(tmp_path, quota, period)) == cores


def test_no_cgroup_files_means_no_limit(tmp_path):
    assert threads.cgroup_cpu_limit(tmp_path) is None


def test_available_cpus_is_affinity_capped_by_the_rounded_up_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    assert threads.available_cpus(tmp_path) == 8                         # no quota: the affinity set
    assert threads.available_cpus(_v2(tmp_path, "150000 100000")) == 2   # 1.5 CPUs -> 2 threads
    assert threads.available_cpus(_v2(tmp_path, "20000 100000")) == 1    # 0.2 CPUs -> still one
    assert threads.available_cpus(_v2(tmp_path, "max 100000")) == 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})        # taskset -c 3: one core whatever the quota
    assert threads.available_cpus(_v2(tmp_path, "400000 100000")) == 1


@pytest.mark.parametrize("parallel,cores,share", [(1, 2, 2), (2, 2, 1), (4, 2, 1), (3, 8, 2), (2, 16, 8), (0, 4, 4)])
def test_threads_per_job(parallel, cores, share):
    assert threads.threads_per_job(parallel, cores) == share


def _bench_cfg(**kw):
    return OmegaConf.create({"device": "cpu", "num_threads": None, "jobs": 1, **kw})


def test_study_jobs_get_their_share_unless_num_threads_is_set(monkeypatch):
    monkeypatch.setattr(threads, "available_cpus", lambda root=None: 8)
    assert common_args(_bench_cfg(jobs=4)) == ["device=cpu", "num_threads=2"]
    assert common_args(_bench_cfg(jobs=3)) == ["device=cpu", "num_threads=2"]
    assert common_args(_bench_cfg(jobs=16)) == ["device=cpu", "num_threads=1"]
    assert common_args(_bench_cfg(jobs=4, num_threads=3)) == ["device=cpu", "num_threads=3"]  # the user's wins
    assert common_args(_bench_cfg(jobs=1)) == ["device=cpu"]                                  # one job: its default


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_set_threads_takes_the_launchers_share_and_never_raises_torchs_default(monkeypatch, torch_threads):
    torch.set_num_threads(4)
    monkeypatch.setattr(threads, "available_cpus", lambda root=None: 4)
    monkeypatch.setattr(common, "available_cpus", lambda root=None: 4)
    monkeypatch.setattr(common, "launcher_parallelism", lambda: 2)
    common.set_threads(OmegaConf.create({"num_threads": None}))
    assert torch.get_num_threads() == 2
    monkeypatch.setattr(common, "launcher_parallelism", lambda: 1)
    common.set_threads(OmegaConf.create({"num_threads": None}))
    assert torch.get_num_threads() == 2          # 4 cores for one job, but never above what torch had
    common.set_threads(OmegaConf.create({"num_threads": 3}))
    assert torch.get_num_threads() == 3          # num_threads always wins


def test_launcher_parallelism_reads_the_joblib_launchers_n_jobs(monkeypatch):
    from hydra.core.hydra_config import HydraConfig

    monkeypatch.setattr(common, "available_cpus", lambda root=None: 6)
    saved = HydraConfig.instance().cfg
    try:
        HydraConfig.instance().cfg = None
        assert common.launcher_parallelism() == 1                          # no Hydra run (Python API): one job
        for n_jobs, expected in ((3, 3), (-1, 6), (None, 1)):
            HydraConfig.instance().cfg = OmegaConf.create({"hydra": {"launcher": {"n_jobs": n_jobs}}})
            assert common.launcher_parallelism() == expected
    finally:
        HydraConfig.instance().cfg = saved
