"""`nas evaluate`: training a discrete net from scratch, arch inputs, dry runs, finished runs."""
import json
from pathlib import Path

from helpers import TINY_SEARCH, nas, result_line

TINY_EVAL = ["space.network.C=4", "space.network.N=1", "dataset.num_train=256", "dataset.num_test=64", "dataset.image_size=8",
             "protocol.epochs=2", "protocol.max_steps_per_epoch=3", "protocol.batch_size=16", "num_threads=1"]


def test_evaluate_search_result_end_to_end(tmp_path):
    search = result_line(nas("search", *TINY_SEARCH, "search.epochs=1", f"out_root={tmp_path}"))
    res = result_line(nas("evaluate", f"arch={search['arch_path']}", *TINY_EVAL, f"out_root={tmp_path}"))
    assert res["status"] == "ok" and res["arch"] == search["arch"]
    assert 0.0 <= res["test_acc"] <= 100.0 and res["world_size"] == 1
    run = Path(res["run_dir"])
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1]
    assert json.loads((run / "arch.json").read_text())["arch"] == search["arch"]
    again = nas("evaluate", f"arch={search['arch_path']}", *TINY_EVAL, f"out_root={tmp_path}")
    assert "finished run" in again.stderr and result_line(again) == res


def test_dry_run_published_darts_genotype(tmp_path):
    res = result_line(nas("evaluate", "arch=darts_v2", "dry_run=true", "dataset=cifar10", f"out_root={tmp_path}"))
    assert res["space"] == "darts"
    assert res["params"] == 3349342  # DARTS_V2 on CIFAR-10, reference code count (3.3M in the paper)


def test_missing_arch_file_is_one_line(tmp_path):
    proc = nas("evaluate", f"arch={tmp_path}/nope.json", "dry_run=true", check=False)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "not found" in proc.stderr
