"""`nas search` run directories: artifacts, resume (also after SIGKILL), finished runs, derive."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from helpers import TINY_SEARCH, nas, result_line


def _run_dir(res):
    return Path(res["run_dir"])


def _final_alphas(run_dir: Path) -> torch.Tensor:
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    return state["supernet"]["mixer.alphas.cell"]


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


def test_resume_after_sigkill_equals_uninterrupted(tmp_path):
    args = [*TINY_SEARCH, "search.epochs=4", "dataset.num_train=512", "search.checkpoint_every_steps=3"]
    ref = result_line(nas("search", *args, f"out_root={tmp_path / 'ref'}"))
    ref_alphas = _final_alphas(_run_dir(ref))

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "nascli", "search", *args, f"out_root={out}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.time() + 120
    metrics = None
    while time.time() < deadline:  # wait until epoch 0 is logged, then kill somewhere inside epoch 1 or 2
        found = list(out.rglob("metrics.jsonl"))
        if found and found[0].read_text().count("\n") >= 1:
            metrics = found[0]
            break
        time.sleep(0.05)
    assert metrics is not None, "the search never finished its first epoch"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (metrics.parent / "result.json").exists(), "killed too late: the run had finished"

    resumed = nas("search", *args, f"out_root={out}")
    assert "resuming" in resumed.stderr
    res = result_line(resumed)
    assert torch.equal(_final_alphas(_run_dir(res)), ref_alphas)
    assert res["arch"] == ref["arch"]
    epochs = [json.loads(line)["epoch"] for line in metrics.read_text().splitlines()]
    assert epochs == [0, 1, 2, 3]


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
    proc = nas("derive", f"run={tmp_path / 'nope'}", check=False)
    assert proc.returncode == 2 and "not a search run directory" in proc.stderr
