"""Checkpoint safety: weights_only loading, format versions, refusal of foreign pickles, torn metrics,
orphaned temp files of killed writes, one RNG module."""
import io
import json
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import TINY_SEARCH, nas, result_line
from nascli.checkpoint import FORMATS, SEARCH_FORMAT, TRAIN_FORMAT, load_checkpoint_file
from nascli.rundir import RunDir, atomic_write_bytes
from nascli.errors import CheckpointError, NasError
from nascli.rng import capture_rng_state, restore_rng_state, seed_everything


class MarkerPayload:
    """Unpickling this object runs ``open(marker, 'w')``: it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _draws() -> tuple:
    return random.random(), random.gauss(0, 1), float(np.random.randn()), torch.randn(3).tolist()


def test_rng_state_is_plain_data_and_restores_every_generator_exactly():
    seed_everything(5)
    _draws()  # leaves a cached gaussian in Python's and NumPy's generators
    buf = io.BytesIO()
    torch.save(capture_rng_state(), buf)
    expected = _draws()
    seed_everything(99)
    restore_rng_state(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert _draws() == expected


def test_rng_state_in_another_shape_is_a_checkpoint_error():
    seed_everything(1)
    before = _draws()
    seed_everything(1)
    with pytest.raises(CheckpointError, match="random generator state"):
        restore_rng_state({"python": random.getstate(), "numpy": {}, "torch": torch.get_rng_state()})
    assert _draws() == before  # nothing was changed by the refused state


def test_checkpoint_roundtrip_keeps_format_and_values(tmp_path):
    run = RunDir(tmp_path / "run")
    state = {"format": SEARCH_FORMAT, "epoch": 2, "w": torch.arange(4.0), "rng": capture_rng_state()}
    run.save_checkpoint(state)
    loaded = run.load_checkpoint()
    assert loaded["format"] == SEARCH_FORMAT and loaded["epoch"] == 2 and torch.equal(loaded["w"], state["w"])
    assert run.load_checkpoint(expect=SEARCH_FORMAT)["epoch"] == 2
    with pytest.raises(CheckpointError) as err:
        run.load_checkpoint(expect=TRAIN_FORMAT)
    assert str(err.value) == (f"cannot read checkpoint {run.checkpoint_path}: its format is {SEARCH_FORMAT!r}, this "
                              f"nascli reads {TRAIN_FORMAT!r}; move it away to restart this run from scratch")
    assert [p.name for p in run.path.iterdir()] == ["checkpoint.pt"]  # no temp file left beside it


def test_saving_a_state_without_our_format_is_a_bug_not_a_file(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(ValueError, match="format"):
        run.save_checkpoint({"epoch": 1})
    assert not run.checkpoint_path.exists()


@pytest.mark.parametrize("state, words", [
    ({"epoch": 3, "w": torch.ones(2)}, "no nascli format version in it"),
    ({"format": "nascli.search/1", "epoch": 3}, "its format is 'nascli.search/1', this nascli reads"),
    ([1, 2, 3], "no nascli format version in it"),
])
def test_a_checkpoint_not_of_our_format_is_refused_naming_the_file(tmp_path, state, words):
    path = tmp_path / "checkpoint.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_file(path)
    message = str(err.value)
    assert message.startswith(f"cannot read checkpoint {path}: ") and words in message and "\n" not in message


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_crafted_pickle_is_refused_and_nothing_in_it_runs(tmp_path, writer):
    marker = tmp_path / "marker"
    path = tmp_path / "checkpoint.pt"
    payload = {"format": SEARCH_FORMAT, "evil": MarkerPayload(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    # control: the payload really would create the marker if it were unpickled the unsafe way
    pickle.loads(pickle.dumps(MarkerPayload(tmp_path / "control")))
    assert (tmp_path / "control").exists()

    with pytest.raises(CheckpointError) as err:
        load_checkpoint_file(path)
    assert not marker.exists()
    message = str(err.value)
    assert message.startswith(f"cannot read checkpoint {path}: ") and "\n" not in message
    if writer == "torch.save":
        assert "references Python code (io.open)" in message and "refused without running" in message


def test_search_refuses_a_crafted_checkpoint_in_one_line(tmp_path):
    args = [*TINY_SEARCH, "search.epochs=1", f"out_root={tmp_path}"]
    run = Path(result_line(nas("search", *args))["run_dir"])
    (run / "result.json").unlink()
    marker = tmp_path / "marker"
    torch.save({"format": SEARCH_FORMAT, "evil": MarkerPayload(marker)}, run / "checkpoint.pt")
    crafted = (run / "checkpoint.pt").read_bytes()
    proc = nas("search", *args, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"cannot read checkpoint {run / 'checkpoint.pt'}" in lines[0] and "(io.open)" in lines[0]
    assert not marker.exists()
    assert (run / "checkpoint.pt").read_bytes() == crafted  # left alone for the user to inspect
    der = nas("derive", f"run={run}", "num_threads=1", check=False)
    assert der.returncode == 2 and "cannot read checkpoint" in der.stderr and not marker.exists()


def test_checkpoint_files_written_by_search_load_with_weights_only(tmp_path):
    res = result_line(nas("search", *TINY_SEARCH, "search.epochs=1", f"out_root={tmp_path}"))
    state = torch.load(Path(res["run_dir"]) / "checkpoint.pt", weights_only=True)
    assert state["format"] == SEARCH_FORMAT and state["format"] in FORMATS
    assert isinstance(state["rng"]["python"]["internal"], torch.Tensor)


# ------------------------------------------------------------------ metrics.jsonl
def test_a_torn_last_metrics_line_is_dropped(tmp_path):
    run = RunDir(tmp_path)
    run.append_metrics({"epoch": 0, "loss": 1.5})
    run.append_metrics({"epoch": 1, "loss": 1.25})
    with open(run.metrics_path, "a") as f:
        f.write('{"epoch": 2, "lo')  # a crash in the middle of the write
    assert run.read_metrics() == [{"epoch": 0, "loss": 1.5}, {"epoch": 1, "loss": 1.25}]
    run.truncate_metrics(1)
    assert run.metrics_path.read_text() == '{"epoch": 0, "loss": 1.5}\n'


def test_a_damaged_metrics_line_before_the_last_is_an_error_naming_the_line(tmp_path):
    run = RunDir(tmp_path)
    run.metrics_path.write_text('{"epoch": 0}\n{"epo\n{"epoch": 2}\n')
    with pytest.raises(NasError) as err:
        run.read_metrics()
    assert str(err.value) == f"{run.metrics_path} line 2 is not valid JSON; repair or delete that line"


# ------------------------------------------------------------------ temp files of killed writes
KILL_IN_WRITE = """
import os, signal, sys
from pathlib import Path
real_fsync = os.fsync
def fsync(fd):  # SIGKILL this process in the middle of writing the temp file, before the rename
    os.ftruncate(fd, os.fstat(fd).st_size // 2)
    os.kill(os.getpid(), signal.SIGKILL)
from nascli.rundir import atomic_write_bytes
os.fsync = fsync
atomic_write_bytes(Path(sys.argv[1]) / "checkpoint.pt", b"new" * 1000)
"""


def test_a_killed_write_keeps_the_old_file_and_the_next_owner_removes_the_temp_file(tmp_path):
    run = RunDir(tmp_path / "run")
    atomic_write_bytes(run.checkpoint_path, b"old")
    (run.path / "cells").mkdir()
    atomic_write_bytes(run.path / "cells" / "a.json", b"{}")
    proc = subprocess.run([sys.executable, "-c", KILL_IN_WRITE, str(run.path)], capture_output=True)
    assert proc.returncode == -9
    orphans = sorted(p.name for p in run.path.glob(".checkpoint.pt.*.tmp"))
    assert len(orphans) == 1 and run.checkpoint_path.read_bytes() == b"old"
    (run.path / "cells" / ".a.json.x1.tmp").write_bytes(b"{")  # an orphan in a subfolder too
    (run.path / "keep.tmp").write_bytes(b"not ours")  # not the writer's pattern: left alone
    with run.lock():
        assert not list(run.path.rglob(".*.tmp"))
    assert sorted(p.name for p in run.path.iterdir()) == [".lock", "cells", "checkpoint.pt", "keep.tmp"]
    assert run.checkpoint_path.read_bytes() == b"old" and (run.path / "cells" / "a.json").read_bytes() == b"{}"


def test_result_json_of_a_diverged_run(tmp_path):
    from nascli.errors import DivergedError

    run = RunDir(tmp_path)
    run.save_checkpoint({"format": TRAIN_FORMAT, "epoch": 0})
    before = run.checkpoint_path.read_bytes()
    result = run.record_divergence(DivergedError(1, 4), {"command": "evaluate", "seed": 0})
    assert json.loads(run.result_path.read_text()) == result
    assert result["status"] == "diverged" and (result["diverged_epoch"], result["diverged_step"]) == (1, 4)
    assert result["checkpoint"] == str(run.checkpoint_path) and run.checkpoint_path.read_bytes() == before
    assert run.finished_result() is None  # a re-run is not treated as finished
    assert sorted(os.listdir(run.path)) == ["checkpoint.pt", "result.json"]


# ------------------------------------------------------------------ layers
def test_one_rng_module_and_the_search_and_train_loops_do_not_import_commands():
    import ast

    import nascli

    root = Path(nascli.__file__).parent
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                   if "getstate()" in p.read_text() or "get_rng_state(" in p.read_text())
    assert users == ["rng.py"]  # the only place that captures generator states
    for name in ("search/engine.py", "train/loop.py", "rundir.py", "checkpoint.py", "runlock.py", "divergence.py"):
        tree = ast.parse((root / name).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(m and m.startswith("nascli.commands") for m in imported), name
    assert {"nascli.rng"} <= {n.module for n in ast.walk(ast.parse((root / "search/engine.py").read_text()))
                              if isinstance(n, ast.ImportFrom)}
