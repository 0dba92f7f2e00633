"""One process per run directory: an OS lock that names its holder and dies with it."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import TINY_SEARCH, nas, result_line
from nascli.rundir import RunDir
from nascli.errors import RunLockedError
from nascli.runlock import RunLock

HOLDER = """
import sys, time
from nascli.runlock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def _start_holder(directory: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_lock_in_the_same_process_is_refused_naming_the_holder(tmp_path):
    with RunLock(tmp_path / "run") as first:
        assert first.held and (tmp_path / "run" / ".lock").read_text().split()[0] == str(os.getpid())
        with pytest.raises(RunLockedError) as err:
            RunLock(tmp_path / "run").acquire()
        assert str(err.value) == (f"run directory {tmp_path / 'run'} is in use by process {os.getpid()}; wait for it "
                                  "to finish or stop it, then run this command again")
    with RunLock(tmp_path / "run"):  # released at the end of the block
        pass


def test_kill_9_of_the_holder_leaves_no_stale_lock(tmp_path):
    run = tmp_path / "run"
    holder = _start_holder(run)
    try:
        with pytest.raises(RunLockedError, match=f"in use by process {holder.pid};"):
            RunLock(run).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / ".lock").exists()  # the file stays; the lock went with the process
    with RunLock(run) as lock:
        assert lock.held and (run / ".lock").read_text().split()[0] == str(os.getpid())


def test_directories_the_lock_created_are_removed_when_nothing_was_written(tmp_path):
    (tmp_path / "out").mkdir()
    with RunLock(tmp_path / "out" / "search" / "x" / "seed=0"):
        assert (tmp_path / "out" / "search" / "x" / "seed=0" / ".lock").is_file()
    assert list((tmp_path / "out").iterdir()) == []  # out/ existed before: kept
    with RunLock(tmp_path / "out" / "a" / "seed=0"):
        (tmp_path / "out" / "a" / "seed=0" / "result.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "out" / "a" / "seed=0").iterdir()) == [".lock", "result.json"]


def test_run_dir_lock_disabled_for_other_ranks_does_nothing(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.lock(enabled=False):
        assert not run.path.exists()
    with run.lock(), run.lock(enabled=False):
        assert (run.path / ".lock").exists()


def test_search_and_derive_refuse_a_run_directory_in_use(tmp_path):
    args = [*TINY_SEARCH, "search.epochs=1", f"out_root={tmp_path}"]
    res = result_line(nas("search", *args))
    run = Path(res["run_dir"])
    (run / "result.json").unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    holder = _start_holder(run)
    try:
        for proc in (nas("search", *args, check=False), nas("derive", f"run={run}", "num_threads=1", check=False)):
            assert proc.returncode == 2 and proc.stdout == ""
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and f"run directory {run} is in use by process {holder.pid};" in lines[0]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"} == before


def test_two_identical_searches_started_together_one_refuses(tmp_path):
    args = [sys.executable, "-m", "nascli", "search", *TINY_SEARCH, "search.epochs=6", "dataset.num_train=512",
            f"out_root={tmp_path}"]  # seconds of work: the second process starts long before the first ends
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    winner = [o for p, o in zip(procs, outs) if p.returncode == 0][0]
    loser_pid, loser = [(p.pid, o) for p, o in zip(procs, outs) if p.returncode == 2][0]
    winner_pid = [p.pid for p in procs if p.returncode == 0][0]
    lines = loser[1].strip().splitlines()
    assert len(lines) == 1 and f"is in use by process {winner_pid};" in lines[0] and loser[0] == ""
    result = result_line(subprocess.CompletedProcess(args, 0, winner[0], winner[1]))
    assert result["status"] == "ok" and str(loser_pid) not in lines[0]
    assert not list(Path(result["run_dir"]).glob(".*.tmp"))
