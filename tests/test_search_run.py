"""`nas search` run directories: artifacts, bit-exact resume after SIGKILL (also inside a checkpoint write, on
NB201 with DARTS and GDAS and on the DARTS space), finished runs, derive."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import TINY, TINY_DARTS, TINY_SEARCH, assert_same_nested, nas, result_line


def _run_dir(res):
    return Path(res["run_dir"])


def test_artifacts_and_deterministic_path(tmp_path):
    res = result_line(nas("search", *TINY_SEARCH, f"out_root={tmp_path}"))
    run = _run_dir(res)
    assert run.parent.parent.parent.parent == tmp_path / "search"
    assert run.parts[-4:-2] == ("nb201-synthetic", "darts") and run.name == "seed=0"
    for name in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "arch.json", "result.json"):
        assert (run / name).is_file(), name
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [0, 1, 2]
    for key in ("train_loss", "val_acc", "lr", "alpha_entropy", "skip_count", "arch", "wall_time_s",
                "peak_memory_mb", "images_per_s"):
        assert key in metrics[-1], key
    assert metrics[0]["lr"] == 0.025 and metrics[2]["lr"] < metrics[1]["lr"]
    arch = json.loads((run / "arch.json").read_text())
    assert arch["space"] == "nb201" and arch["arch"] == res["arch"] == metrics[-1]["arch"]
    assert arch["provenance"]["selection"] == "magnitude"
    assert json.loads((run / "result.json").read_text()) == res
    # a different seed lands beside it, a different semantic config elsewhere
    res1 = result_line(nas("search", *TINY_SEARCH, "search.epochs=1", "seed=1", f"out_root={tmp_path}"))
    assert _run_dir(res1).name == "seed=1" and _run_dir(res1).parent != run.parent


def test_finished_run_is_reported_not_redone(tmp_path):
    first = result_line(nas("search", *TINY_SEARCH, "search.epochs=1", f"out_root={tmp_path}"))
    mtime = (_run_dir(first) / "checkpoint.pt").stat().st_mtime_ns
    again = nas("search", *TINY_SEARCH, "search.epochs=1", f"out_root={tmp_path}")
    assert result_line(again) == first
    assert "finished run" in again.stderr
    assert (_run_dir(first) / "checkpoint.pt").stat().st_mtime_ns == mtime


KILL_IN_CHECKPOINT_WRITE = """
import os, signal, sys
from nascli.cli import main
target, count, real_fsync = int(os.environ["KILL_AT_CHECKPOINT_WRITE"]), [0], os.fsync
def fsync(fd):  # the n-th checkpoint write: cut the temp file in half and die before the rename
    if ".checkpoint.pt." in os.readlink(f"/proc/self/fd/{fd}"):
        count[0] += 1
        if count[0] == target:
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            os.kill(os.getpid(), signal.SIGKILL)
    real_fsync(fd)
os.fsync = fsync
main(sys.argv[1:])
"""
TIMING = ("epoch_time_s", "images_per_s", "wall_time_s", "peak_memory_mb")
SEARCHES = {  # three epochs or more, mid-epoch checkpoints, on NB201 (DARTS, GDAS) and the DARTS space
    "nb201-darts": [*TINY_SEARCH, "search.epochs=4", "dataset.num_train=512", "search.checkpoint_every_steps=3"],
    "nb201-gdas": ["method=gdas", *TINY, "search.epochs=6", "search.checkpoint_every_steps=3"],
    "darts-darts": [*TINY_DARTS, "search.epochs=3", "search.max_steps_per_epoch=5", "search.checkpoint_every_steps=2"],
}


def _metrics(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def _assert_resumed_equals(ref: dict, resumed: subprocess.CompletedProcess, run: Path, *,
                           checkpointed: bool = True) -> None:
    """The resumed run ends bit-identical to the uninterrupted one and left no temp files behind. A run killed
    before its first checkpoint was complete (``checkpointed=False``) has nothing to resume: it starts over."""
    assert ("resuming" in resumed.stderr) == checkpointed, resumed.stderr[-2000:]
    res = result_line(resumed)
    assert res["arch"] == ref["arch"] and Path(res["run_dir"]) == run
    final = torch.load(run / "checkpoint.pt", weights_only=True)
    expected = torch.load(Path(ref["run_dir"]) / "checkpoint.pt", weights_only=True)
    final.pop("elapsed"), expected.pop("elapsed")
    assert_same_nested(final, expected, "checkpoint")  # weights, alphas, optimizers, components, streams, RNGs
    assert _metrics(run) == _metrics(Path(ref["run_dir"]))
    assert not [p for p in run.rglob("*.tmp")], "orphaned temp files"


def _wait_for_first_epoch(out: Path, proc: subprocess.Popen) -> Path:
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        found = list(out.rglob("metrics.jsonl"))
        if found and found[0].read_text().count("\n") >= 1:
            return found[0].parent
        time.sleep(0.02)
    raise AssertionError(f"the search never finished its first epoch: {proc.stderr.read()[-2000:]}")


@pytest.mark.parametrize("name", list(SEARCHES))
def test_resume_after_sigkill_equals_uninterrupted(tmp_path, name):
    """kill -9 at a random moment after the first epoch, and kill -9 in the middle of a random checkpoint
    write (with a torn last metrics line on top): both resume to exactly the uninterrupted result."""
    args = SEARCHES[name]
    ref = result_line(nas("search", *args, f"out_root={tmp_path / 'ref'}"))
    ref_metrics = [json.loads(line) for line in (Path(ref["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)

    # 1. at a random moment (while epochs 1.. run)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "nascli", "search", *args, f"out_root={out}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    run = _wait_for_first_epoch(out, proc)
    time.sleep(rng.uniform(0, 0.6 * (ref_metrics[-1]["wall_time_s"] - ref_metrics[0]["wall_time_s"])))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "result.json").exists(), f"killed too late: the run had finished (seed {seed})"
    _assert_resumed_equals(ref, nas("search", *args, f"out_root={out}"), run)

    # 2. in the middle of the n-th checkpoint write, n random among all the run's checkpoint writes
    steps, every = ref_metrics[0]["steps"], int(next(a for a in args if "checkpoint_every" in a).split("=")[1])
    writes = len(ref_metrics) * (len(range(every, steps, every)) + 1)
    _kill_in_write_and_resume(tmp_path / "killed_in_write", args, ref, rng.randint(1, writes), writes)


def _kill_in_write_and_resume(out: Path, args: list[str], ref: dict, nth: int, writes: int) -> None:
    """kill -9 inside the ``nth`` checkpoint write (a torn last metrics line on top), then resume."""
    proc = subprocess.run([sys.executable, "-c", KILL_IN_CHECKPOINT_WRITE, "search", *args, f"out_root={out}"],
                          capture_output=True, text=True, env=dict(os.environ, KILL_AT_CHECKPOINT_WRITE=str(nth)))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run = next(out.rglob("metrics.jsonl")).parent
    assert len(list(run.glob(".checkpoint.pt.*.tmp"))) == 1, f"write {nth} of {writes} left no temp file"
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 99, "train_lo')  # and a torn last line, as a crash inside that write leaves it
    _assert_resumed_equals(ref, nas("search", *args, f"out_root={out}"), run, checkpointed=nth > 1)


def test_killed_inside_the_first_checkpoint_write_starts_over(tmp_path):
    """The first checkpoint write torn: no checkpoint exists, so the rerun starts over (no "resuming") and still
    ends exactly like the uninterrupted run."""
    args = SEARCHES["nb201-darts"]
    ref = result_line(nas("search", *args, f"out_root={tmp_path / 'ref'}"))
    _kill_in_write_and_resume(tmp_path / "killed_in_write", args, ref, 1, 1)


def test_unreadable_checkpoint_is_one_line_and_left_alone(tmp_path):
    args = [*TINY_SEARCH, "search.epochs=2", f"out_root={tmp_path}"]
    run = _run_dir(result_line(nas(*["search", *args])))
    (run / "result.json").unlink()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    proc = nas("search", *args, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot read checkpoint" in lines[0]
    assert (run / "checkpoint.pt").read_bytes() == b"not a checkpoint"


def test_derive_writes_a_new_arch_file(tmp_path):
    res = result_line(nas("search", *TINY_SEARCH, "search.epochs=1", f"out_root={tmp_path}"))
    run = _run_dir(res)
    original = (run / "arch.json").read_text()
    der = result_line(nas("derive", f"run={run}", "selection=magnitude", "num_threads=1"))
    assert der["arch"] == res["arch"]
    assert Path(der["arch_path"]) == run / "arch_magnitude.json"
    assert (run / "arch.json").read_text() == original
    for bad in (tmp_path / "nope", tmp_path):  # missing; a folder without config.yaml
        proc = nas("derive", f"run={bad}", check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and f"run={bad} " in lines[0], proc.stderr
    assert not (tmp_path / "nope").exists() and not (tmp_path / ".lock").exists()
