"""Scale-out: launcher presets, the GPU pool, torchrun data parallelism, re-launched studies.

The launcher tests need the Hydra launcher plugins (the slurm and joblib extras, part of the test extras
that `make test` installs): without them they fail. SLURM itself cannot run here: its preset is checked
as composed config and through a fake `sbatch`.
"""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.types import RunMode
from omegaconf import OmegaConf
from torch import nn

from helpers import compose_cfg, nas, result_line
from nascli import distributed
from nascli.data.base import DatasetInfo, ImageSplit
from nascli.data.stream import BatchStream
from nascli.errors import NasError
from nascli.launch import plugins
from nascli.launch.gpu_pool import GpuPool, GpuPoolCallback, gpu_for_job, rotated
from nascli.train import Protocol, train_network

TINY = ["space.supernet.C=4", "space.supernet.N=1", "dataset.image_size=8", "dataset.num_train=256",
        "dataset.num_test=64", "search.epochs=1", "search.batch_size=16", "search.max_steps_per_epoch=2",
        "num_threads=1"]
ARTIFACTS = ("config.yaml", "metrics.jsonl", "checkpoint.pt", "arch.json", "result.json")
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _results(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in (root / "search").rglob("result.json"))


# ----------------------------------------------------------------------------- GPU pool: the rule
@pytest.mark.parametrize("jobs, gpus, expected", [
    (5, 2, [0, 1, 0, 1, 0]),
    (4, 4, [0, 1, 2, 3]),
    (3, 1, [0, 0, 0]),
    (7, 3, [0, 1, 2, 0, 1, 2, 0]),
])
def test_job_i_runs_on_gpu_i_mod_g(jobs, gpus, expected):
    assert [gpu_for_job(i, gpus) for i in range(jobs)] == expected


def test_gpu_rule_rejects_empty_pool_and_negative_jobs():
    with pytest.raises(ValueError):
        gpu_for_job(0, 0)
    with pytest.raises(ValueError):
        gpu_for_job(-1, 2)


def test_rotation_and_visible_devices_parsing():
    assert rotated(["0", "1", "2", "3"], 2) == ["2", "3", "0", "1"]
    assert rotated(["a"], 0) == ["a"]
    assert plugins.parse_visible_devices(None) is None
    assert plugins.parse_visible_devices("") == []
    assert plugins.parse_visible_devices("-1") == []
    assert plugins.parse_visible_devices("2, 5,GPU-abc") == ["2", "5", "GPU-abc"]
    assert plugins.parse_visible_devices("0,1,-1,3") == ["0", "1"]  # CUDA stops at an invalid entry
    assert plugins.visible_gpu_count({"CUDA_VISIBLE_DEVICES": "4,6,7"}) == 3
    assert plugins.visible_gpu_count({"CUDA_VISIBLE_DEVICES": ""}) == 0


class FakeCuda:
    """Records what the pool asks of CUDA; `initialized` flips when a device is selected."""

    def __init__(self, count: int = 0, initialized: bool = False, built: bool = True):
        self.count, self.initialized, self.built = count, initialized, built
        self.selected: list[int] = []

    def is_built(self) -> bool:
        return self.built

    def is_initialized(self) -> bool:
        return self.initialized

    def device_count(self) -> int:
        return self.count

    def set_device(self, index: int) -> None:
        self.selected.append(index)
        self.initialized = True


def test_fresh_process_gets_rotated_visible_devices_before_cuda_starts():
    env, cuda = {"CUDA_VISIBLE_DEVICES": "4,5,6"}, FakeCuda()
    a = GpuPool().assign(4, env, cuda)  # 4 mod 3 = 1 -> GPU "5"
    assert (a.gpu, a.device_index, a.set_device) == ("5", 0, False)
    assert env["CUDA_VISIBLE_DEVICES"] == "5,6,4" and cuda.selected == []


def test_reused_worker_selects_its_gpu_in_the_order_fixed_at_first_job():
    env, cuda, pool = {"CUDA_VISIBLE_DEVICES": "0,1,2"}, FakeCuda(), GpuPool()
    first = pool.assign(1, env, cuda)
    assert env["CUDA_VISIBLE_DEVICES"] == "1,2,0" and first.device_index == 0
    cuda.initialized = True  # job 1 ran on cuda:0 = GPU 1; the driver order is now fixed
    second = pool.assign(3, env, cuda)  # 3 mod 3 = 0 -> GPU "0" = cuda:2 in the order "1,2,0"
    assert (second.gpu, second.device_index, second.set_device) == ("0", 2, True)
    assert env["CUDA_VISIBLE_DEVICES"] == "1,2,0"  # never changed after the first job
    third = pool.assign(4, env, cuda)  # GPU "1" = cuda:0: selected again, as the current device is cuda:2
    assert (third.gpu, third.device_index) == ("1", 0) and cuda.selected == [2, 0]


def test_pool_without_cuda_visible_devices_counts_gpus_and_respects_an_initialised_driver():
    env = {}
    a = GpuPool().assign(5, env, FakeCuda(count=3))  # 5 mod 3 = 2
    assert a.gpu == "2" and env["CUDA_VISIBLE_DEVICES"] == "2,0,1"
    env, cuda = {"CUDA_VISIBLE_DEVICES": "0,1"}, FakeCuda(initialized=True)
    a = GpuPool().assign(1, env, cuda)  # too late for the variable: select the device instead
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1" and (a.device_index, cuda.selected) == (1, [1])


def test_pool_is_empty_without_gpus():
    assert GpuPool().assign(0, {"CUDA_VISIBLE_DEVICES": ""}, FakeCuda(count=2)) is None
    assert GpuPool().assign(0, {}, FakeCuda(count=0)) is None
    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert GpuPool().assign(1, env, FakeCuda(built=False)) is None and env["CUDA_VISIBLE_DEVICES"] == "0,1"


def _job_config(num: int | None, device: str = "auto", mode: RunMode = RunMode.MULTIRUN):
    return OmegaConf.create({"device": device, "seed": 0, "hydra": {"mode": mode, "job": {"num": num}}})


def test_callback_maps_a_sweep_over_fresh_workers():
    gpus = []
    for num in range(5):  # one fresh process (pool) per job, as submitit does
        env = {"CUDA_VISIBLE_DEVICES": "0,1"}
        a = GpuPoolCallback().assign(_job_config(num), env, FakeCuda(), pool=GpuPool())
        gpus.append(a.gpu)
        assert env["CUDA_VISIBLE_DEVICES"].split(",")[0] == a.gpu
    assert gpus == ["0", "1", "0", "1", "0"]


@pytest.mark.parametrize("config, env", [
    (_job_config(3, mode=RunMode.RUN), {}),  # a single run keeps the default device
    (_job_config(3, device="cpu"), {}),
    (_job_config(3, device="cuda:1"), {}),  # an explicit device is the user's choice
    (_job_config(3), {"WORLD_SIZE": "2"}),  # torchrun: the local rank picks the GPU
])
def test_callback_leaves_other_runs_alone(config, env):
    env = {"CUDA_VISIBLE_DEVICES": "0,1", **env}
    cuda = FakeCuda()
    assert GpuPoolCallback().assign(config, env, cuda, pool=GpuPool()) is None
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1" and cuda.selected == []


def test_callback_is_registered_for_every_command():
    from hydra import compose, initialize_config_dir

    from nascli.paths import CONF_DIR
    for command in ("search", "evaluate"):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = compose(command, return_hydra_config=True)
        assert cfg.hydra.callbacks.gpu_pool._target_ == "nascli.launch.gpu_pool.GpuPoolCallback"
        assert cfg.hydra.sweep.subdir == "."  # job numbers never appear in any path


def test_nothing_touches_cuda_before_the_job_starts():
    """The pool's CUDA_VISIBLE_DEVICES only works if CUDA is untouched until on_job_start: importing the
    package (what a loky worker or submitit job does when it unpickles the task) must not call CUDA."""
    code = """
import pkgutil, importlib, torch
calls = []
for name in ("is_available", "device_count", "init", "_lazy_init", "current_device", "set_device"):
    setattr(torch.cuda, name, (lambda n: lambda *a, **k: calls.append(n))(name))
import nascli
for mod in pkgutil.walk_packages(nascli.__path__, "nascli."):
    if not mod.name.startswith("nascli.__main__"):
        importlib.import_module(mod.name)
from nascli.launch.gpu_pool import GpuPoolCallback
GpuPoolCallback()
print("CALLS", calls)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "CALLS []" in out.stdout


# ----------------------------------------------------------------------------- launchers: presets, errors
def test_missing_plugin_is_one_line_naming_the_extra(monkeypatch, capsys):
    from nascli import cli
    monkeypatch.setattr(plugins.importlib.util, "find_spec", lambda name: None)
    for choice, extra in (("slurm", "slurm"), ("local", "slurm"), ("submitit_slurm", "slurm"),
                          ("parallel", "joblib"), ("joblib", "joblib")):
        with pytest.raises(SystemExit) as exc:
            cli.main(["search", f"hydra/launcher={choice}", "-m", "seed=0,1"])
        assert exc.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: hydra/launcher={choice} needs the ")
        assert lines[0].endswith(f"pip install 'nascli[{extra}]'")
    plugins.check_launcher("basic")  # Hydra's own launcher needs nothing


def test_unknown_launcher_is_one_line(tmp_path):
    proc = nas("search", "-m", "hydra/launcher=slurmm", f"out_root={tmp_path}", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown hydra/launcher 'slurmm'; valid choices: ")
    assert "slurm" in lines[0] and "parallel" in lines[0]


def test_presets_extend_the_plugin_configs():
    assert plugins.preset_base("slurm") == "submitit_slurm"
    assert plugins.preset_base("local") == "submitit_local"
    assert plugins.preset_base("parallel") == "joblib"
    assert plugins.required_plugin("local").extra == "slurm"
    assert plugins.required_plugin("basic") is None


def _launcher_cfg(name: str):
    from hydra import compose, initialize_config_dir

    from nascli.paths import CONF_DIR
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose("search", overrides=[f"hydra/launcher={name}", "out_root=/runs"], return_hydra_config=True)
    return cfg.hydra.launcher


def test_slurm_preset_requeues_and_keeps_submitit_out_of_run_dirs():
    import nascli.launch  # noqa: F401  (resolvers)
    launcher = _launcher_cfg("slurm")
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    # timed-out jobs are requeued up to 20 times (the plugin's default, 0, never requeues); USR2 comes 3 min early
    assert launcher.max_num_timeout == 20 and launcher.signal_delay_s == 180
    assert (launcher.partition, launcher.gpus_per_node, launcher.cpus_per_task, launcher.mem_gb) == (None, 1, 8, 32)
    assert (launcher.timeout_min, launcher.array_parallelism) == (1440, 32)
    assert launcher.submitit_folder == "/runs/multirun/.submitit/%j"
    local = _launcher_cfg("local")
    assert local._target_.endswith("LocalLauncher") and local.gpus_per_node == plugins.visible_gpu_count()
    assert local.submitit_folder == "/runs/multirun/.submitit/%j"


def test_slurm_preset_submits_a_requeueable_array(tmp_path):
    """No SLURM here: a fake `sbatch` captures the batch script submitit writes, and the pickled jobs
    are read back. Checks the directives and that a requeue re-runs the same Hydra job."""
    import pickle

    from submitit.slurm.slurm import SlurmJobEnvironment
    bin_dir, capture = tmp_path / "bin", tmp_path / "capture"
    bin_dir.mkdir()
    capture.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {capture}/job.sh\necho refused >&2\nexit 3\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")  # submitit looks for srun before submitting
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "nascli", "search", "-m", "seed=0,1,2", "hydra/launcher=slurm",
                           "hydra.launcher.partition=gpu", "hydra.launcher.array_parallelism=2",
                           "hydra.launcher.timeout_min=90", f"out_root={out}"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "refused" in proc.stderr  # the fake sbatch refused the submission
    script = (capture / "job.sh").read_text()
    submitit_dir = out / "multirun" / ".submitit"
    for directive in ("--array=0-2%2", "--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=32GB",
                      "--time=90", f"--signal={SlurmJobEnvironment.USR_SIG}@180", "--job-name=nas-search",
                      f"--output={submitit_dir}/%A_%a/%A_%a_0_log.out"):
        assert f"#SBATCH {directive}\n" in script, directive
    jobs = [pickle.loads(p.read_bytes()) for p in submitit_dir.glob("*.pkl")]
    assert sorted(j.args[2] for j in jobs) == [0, 1, 2]  # Hydra job numbers: in submitit's pickles only
    for job in jobs:
        again = job.function.checkpoint(*job.args)  # what submitit requeues on USR2: the same call
        assert again.args == job.args
    assert not (out / "search").exists()


def test_parallel_preset_runs_one_job_per_gpu():
    import nascli.launch  # noqa: F401
    launcher = _launcher_cfg("parallel")
    assert launcher._target_.endswith("JoblibLauncher")
    assert launcher.n_jobs == (plugins.visible_gpu_count() or -1)


# ----------------------------------------------------------------------------- launchers: end to end
def _check_study(tmp_path: Path, proc: subprocess.CompletedProcess) -> list[Path]:
    dirs = _run_dirs(tmp_path)
    assert [d.name for d in dirs] == ["seed=0", "seed=1"] and dirs[0].parent == dirs[1].parent
    for d in dirs:
        for name in ARTIFACTS:
            assert (d / name).is_file(), (d, name)
        assert json.loads((d / "result.json").read_text())["status"] == "ok"
        assert "multirun" not in d.parts and ".submitit" not in d.parts
        assert not {"0", "1"} & set(d.relative_to(tmp_path).parts)  # no Hydra job-number folders
    return dirs


def test_submitit_local_multirun_completes_both_seeds_and_relaunch_redoes_nothing(tmp_path):
    args = ["search", "-m", "seed=0,1", "hydra/launcher=local", *TINY, f"out_root={tmp_path}"]
    proc = nas(*args)
    dirs = _check_study(tmp_path, proc)
    logs = list((tmp_path / "multirun" / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2  # submitit's own folder: under the sweep dir, one per job id, not in run dirs
    results = sorted((json.loads(line) for log in logs for line in log.read_text().splitlines()
                      if line.startswith("{")), key=lambda r: r["seed"])
    assert [r["run_dir"] for r in results] == [str(d) for d in dirs]
    mtimes = [(d / "checkpoint.pt").stat().st_mtime_ns for d in dirs]
    nas(*args)  # the same study again: both jobs report their finished run
    assert [(d / "checkpoint.pt").stat().st_mtime_ns for d in dirs] == mtimes
    logs = list((tmp_path / "multirun" / ".submitit").glob("*/*_log.err"))
    assert sum("finished run" in log.read_text() for log in logs) == 2


def _submitit_job_pids(folder: Path) -> list[int]:
    """The job runners: processes started with the submitit folder on their command line (the `nas` parent
    only names out_root) whose own parent is one too (submitit's local controller starts the runner)."""
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
            stat = (cmdline.parent / "stat").read_text()
        except OSError:
            continue
        if any(str(folder).encode() in a for a in args):
            found[int(cmdline.parent.name)] = int(stat.rsplit(")", 1)[1].split()[1])  # field 4: the parent pid
    return [pid for pid, ppid in found.items() if ppid in found]


def test_preempted_submitit_job_is_requeued_and_resumes_from_its_run_dir(tmp_path):
    """SIGUSR2 is submitit's preemption/time-out signal (SLURM sends it `signal_delay_s` before the
    limit; SUBMITIT_PREEMPT_SIGNAL can change it). The job process catches it, Hydra's launcher checkpoints
    the call, submitit requeues it, and the new attempt resumes the same run directory: every epoch is logged
    once, the run ends ok."""
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("needs /proc to find the job process")
    import signal
    import time

    usr_sig = signal.SIGUSR2  # submitit's documented default, kept by clearing SUBMITIT_PREEMPT_SIGNAL below
    env = {k: v for k, v in os.environ.items() if k != "SUBMITIT_PREEMPT_SIGNAL"}
    epochs = 80
    args = [sys.executable, "-m", "nascli", "search", "-m", "seed=0", "hydra/launcher=local", *TINY,
            f"search.epochs={epochs}", "search.max_steps_per_epoch=1", "dataset.num_train=64", f"out_root={tmp_path}"]
    parent = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline, metrics = time.time() + 120, None
        while time.time() < deadline and metrics is None:
            found = list((tmp_path / "search").rglob("metrics.jsonl")) if (tmp_path / "search").exists() else []
            if found and len(found[0].read_text().splitlines()) >= 3 and (found[0].parent / "checkpoint.pt").exists():
                metrics = found[0]
            time.sleep(0.05)
        assert metrics is not None, "the job never reached epoch 3"
        pids = _submitit_job_pids(tmp_path / "multirun" / ".submitit")
        assert len(pids) == 1
        os.kill(pids[0], usr_sig)
        _, err = parent.communicate(timeout=240)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 0, err[-2000:]
    run = metrics.parent
    assert json.loads((run / "result.json").read_text())["status"] == "ok"
    logged = [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]
    assert logged == list(range(epochs)), "each epoch logged exactly once"
    log = "".join(p.read_text() for p in (tmp_path / "multirun" / ".submitit").glob("*/*_log.err"))
    assert f"Caught signal {signal.Signals(usr_sig).name}" in log and "preempted" in log
    assert "resuming" in log and log.count("search ") == 1  # one fresh start, then a resumed attempt
    assert logged[-1] == epochs - 1 and log.index("Caught signal") < log.index("resuming")


def test_joblib_multirun_completes_both_jobs(tmp_path):
    proc = nas("search", "-m", "seed=0,1", "hydra/launcher=parallel", *TINY, f"out_root={tmp_path}")
    dirs = _check_study(tmp_path, proc)
    results = sorted(_results(proc.stdout), key=lambda r: r["seed"])
    assert [r["seed"] for r in results] == [0, 1] and [r["run_dir"] for r in results] == [str(d) for d in dirs]
    assert "gpu pool:" not in proc.stderr  # the pool callback ran in the workers and found no GPU


def test_relaunched_study_skips_finished_and_resumes_unfinished_jobs(tmp_path, monkeypatch):
    """Interrupt seed 1 after its first epoch (its checkpoint is kept, no result), finish seed 0, then
    re-launch the whole multirun: seed 0 is reported as is, seed 1 resumes and ends like a clean run."""
    from nascli.commands import search as search_cmd

    overrides = [*TINY, "search.epochs=2", f"out_root={tmp_path / 'study'}"]
    first = search_cmd.search(compose_cfg("search", [*overrides, "seed=0"]))

    class Interrupted(Exception):
        pass

    original = search_cmd.SearchSession.epoch_record

    def interrupt_in_epoch_1(self, epoch, timing):
        if epoch == 1:
            raise Interrupted
        return original(self, epoch, timing)

    with monkeypatch.context() as m:
        m.setattr(search_cmd.SearchSession, "epoch_record", interrupt_in_epoch_1)
        with pytest.raises(Interrupted):
            search_cmd.search(compose_cfg("search", [*overrides, "seed=1"]))
    seed1 = Path(first["run_dir"]).parent / "seed=1"
    assert not (seed1 / "result.json").exists()
    assert [json.loads(line)["epoch"] for line in (seed1 / "metrics.jsonl").read_text().splitlines()] == [0]

    proc = nas("search", "-m", "seed=0,1", *overrides)
    results = {r["seed"]: r for r in _results(proc.stdout)}
    assert results[0] == first
    assert "finished run" in proc.stderr and "resuming" in proc.stderr
    assert _run_dirs(tmp_path / "study") == [Path(first["run_dir"]), seed1]
    clean = result_line(nas("search", *TINY, "search.epochs=2", "seed=1", f"out_root={tmp_path / 'clean'}"))
    assert results[1]["arch"] == clean["arch"]
    resumed = [json.loads(line) for line in (seed1 / "metrics.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in (Path(clean["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in resumed] == [0, 1]
    for key in ("train_loss", "train_acc", "alpha_entropy", "arch"):
        assert [m[key] for m in resumed] == [m[key] for m in reference], key


# ----------------------------------------------------------------------------- torchrun
def test_search_under_torchrun_is_one_line(tmp_path):
    env = dict(os.environ, WORLD_SIZE="2", RANK="0", LOCAL_RANK="0")
    proc = subprocess.run([sys.executable, "-m", "nascli", "search", f"out_root={tmp_path}"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: nas search runs on one device per job (WORLD_SIZE=2")
    assert "hydra/launcher=" in lines[0] and not (tmp_path / "search").exists()
    env["RANK"] = "1"  # the other ranks exit quietly: one line in all
    proc = subprocess.run([sys.executable, "-m", "nascli", "search", f"out_root={tmp_path}"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == ""


def test_shard_bounds_tile_the_range():
    for n in (0, 1, 7, 31, 64):
        for world in (1, 2, 3, 4):
            bounds = [distributed.shard_bounds(n, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            sizes = [e - s for s, e in bounds]
            assert max(sizes) - min(sizes) <= 1
    assert distributed.shard_bounds(31, 0, 2) == (0, 16) and distributed.shard_bounds(31, 1, 2) == (16, 31)


def test_context_from_env():
    assert distributed.context_from_env({}) == distributed.DistContext(0, 1, 0)
    ctx = distributed.context_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main, ctx.distributed) == (3, 4, 1, False, True)
    with pytest.raises(NasError):
        distributed.context_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    assert distributed.backend_for(torch.device("cpu")) == "gloo"
    assert distributed.backend_for(torch.device("cuda", 0)) == "nccl"


def _toy_data():
    g = torch.Generator().manual_seed(7)
    info = DatasetInfo("toy", 4, 3, 8, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), crop_padding=1)
    labels = torch.randint(0, 4, (64,), generator=g)
    images = (torch.randint(0, 120, (64, 3, 8, 8), generator=g) + 40 * labels[:, None, None, None]).to(torch.uint8)
    test_labels = torch.randint(0, 4, (31,), generator=g)  # 31: uneven shards 16 / 15
    test_images = (torch.randint(0, 120, (31, 3, 8, 8), generator=g)
                   + 40 * test_labels[:, None, None, None]).to(torch.uint8)
    return ImageSplit(images, labels), ImageSplit(test_images, test_labels), info


def test_sharded_stream_ranks_together_are_the_single_process_batch():
    train, _, info = _toy_data()
    single = BatchStream(train, info, 16, seed=3, train_aug=True, cutout=2)
    ranks = [distributed.ShardedStream(train, info, 16, seed=3, train_aug=True, cutout=2, rank=r, world_size=2)
             for r in range(2)]
    for _ in range(6):  # more than one pass of 4 batches: a new permutation is drawn in lockstep
        x, y = single.next()
        parts = [s.next() for s in ranks]
        assert all(p[0].shape == (8, 3, 8, 8) for p in parts)
        assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(torch.cat([p[1] for p in parts]), y)
    a, b = (s.state_dict() for s in ranks)
    assert torch.equal(a["generator"], b["generator"]) and torch.equal(a["perm"], b["perm"]) and a["pos"] == b["pos"]
    with pytest.raises(NasError, match="does not split evenly"):
        distributed.ShardedStream(train, info, 15, seed=0, train_aug=False, rank=0, world_size=2)


TOY_PROTOCOL = Protocol(name="toy", epochs=2, batch_size=16, lr=0.1, momentum=0.9, nesterov=True,
                        weight_decay=5e-4, grad_clip=5.0, label_smoothing=0.1)


class _Toy(nn.Module):
    """No BatchNorm, so DDP must match one process exactly; `unused` never sees a gradient (as the
    convolution of an NB201 node that feeds only `none` edges)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3 * 8 * 8, 4)
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        return self.linear(x.flatten(1))


def _toy_model() -> nn.Module:
    torch.manual_seed(11)
    return _Toy()


def _train_toy(out: Path | None = None) -> dict:
    train, test, info = _toy_data()
    model, metrics = _toy_model(), []
    final = train_network(model, TOY_PROTOCOL, train, test, info, device="cpu", seed=5,
                          on_epoch_end=lambda e, m, s: metrics.append(m))
    record = {"final": final, "metrics": metrics, "weights": {k: v.clone() for k, v in model.state_dict().items()}}
    if out is not None:
        torch.save(record, out)
    return record


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed.setup(torch.device("cpu"))
    try:
        _train_toy(Path(out_dir) / f"rank{rank}.pt")
    finally:
        distributed.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_rank_ddp_training_equals_one_process_on_the_global_batch(tmp_path):
    import torch.multiprocessing as mp

    reference = _train_toy()
    mp.start_processes(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for key, value in reference["weights"].items():
        assert torch.equal(ranks[0]["weights"][key], ranks[1]["weights"][key]), key  # ranks agree exactly
        assert torch.allclose(ranks[0]["weights"][key], value, atol=1e-5, rtol=1e-4), key
    assert torch.equal(ranks[0]["weights"]["unused.weight"], _toy_model().unused.weight.detach())
    assert not torch.equal(ranks[0]["weights"]["linear.weight"], _toy_model().linear.weight.detach())
    assert ranks[0]["final"] == ranks[1]["final"]  # every rank reports the all-reduced figures
    for got, want in zip(ranks[0]["metrics"], reference["metrics"]):
        assert got["steps"] == want["steps"] == 4 and got["lr"] == want["lr"]
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
        assert got["train_acc"] == want["train_acc"] and got["test_acc"] == want["test_acc"]


def test_torchrun_evaluate_writes_one_artifact_set_and_one_result_line(tmp_path):
    common = [f"arch={BEST}", "dataset=synthetic", "protocol=quick", "dataset.image_size=8", "dataset.num_train=256",
              "dataset.num_test=64", "protocol.batch_size=16", "protocol.epochs=1", "protocol.max_steps_per_epoch=4",
              "space.network.C=4", "space.network.N=1", "num_threads=1"]
    dry = result_line(nas("evaluate", *common, "dry_run=true", f"out_root={tmp_path / 'dry'}"))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "nascli", "evaluate", *common, f"out_root={tmp_path / 'ddp'}"],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = result_line(proc)  # exactly one JSON line: rank 0's
    assert res["status"] == "ok" and res["world_size"] == 2
    assert res["params"] == dry["params"] and math.isfinite(res["test_acc"]) and 0 <= res["test_acc"] <= 100
    runs = [p.parent for p in (tmp_path / "ddp").rglob("result.json")]
    assert runs == [Path(res["run_dir"])]
    for name in ARTIFACTS:
        assert (runs[0] / name).is_file(), name
    assert json.loads((runs[0] / "result.json").read_text()) == res
    assert len((runs[0] / "metrics.jsonl").read_text().splitlines()) == 1
    # the reported accuracy is rank 0's checkpointed model on the whole test split
    from nascli.commands.evaluate import build_network, load_arch
    from nascli.data import eval_splits, iterate_eval
    from nascli.train.loop import evaluate_accuracy
    from nascli.cli import prepare_overrides
    cfg = compose_cfg("evaluate", prepare_overrides(common))  # quotes the arch string for Hydra
    space, arch = load_arch(BEST, "nb201")
    _, test_split, info = eval_splits(cfg.dataset)
    model = build_network(cfg, space, arch, info)
    model.load_state_dict(torch.load(runs[0] / "checkpoint.pt", weights_only=False)["model"])
    assert evaluate_accuracy(model, iterate_eval(test_split, info, 16), "cpu") == res["test_acc"]
