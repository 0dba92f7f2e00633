"""``task=super_resolution`` end to end through the CLI (issue 17): search on the embedded photos and on a
DIV2K-layout folder, derive, evaluate (dry run with 720p multiply-adds, and a short training with PSNR/SSIM
beside bicubic), and the one-line refusals."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from helpers import compose_cfg, nas, result_line

sys.path.insert(0, str(Path(__file__).parent))
from sr_files import write_div2k_layout  # noqa: E402

TINY = ["task=super_resolution", "search.epochs=2", "search.max_steps_per_epoch=1", "search.batch_size=2",
        "task.patch_size=8", "task.eval_max_images=1", "space.supernet.C=4", "num_threads=1"]
SHORT = ["protocol.epochs=1", "protocol.max_steps_per_epoch=2", "protocol.batch_size=2", "space.network.C=4"]


def _finite(*values: float) -> bool:
    return all(isinstance(v, float) and math.isfinite(v) for v in values)


def test_search_and_evaluate_in_process(tmp_path):
    """The fast path of the same commands (no subprocess): search, evaluate dry run and a short training."""
    from nascli.commands.evaluate import evaluate
    from nascli.commands.search import search

    out = [f"out_root={tmp_path}"]
    res = search(compose_cfg("search", [*TINY, "search.epochs=1", *out]))
    assert res["status"] == "ok" and res["space"] == "sisr_trilevel"
    ev = ["task=super_resolution", "space=sisr_trilevel", "arch=sisr_baseline", *SHORT, "task.patch_size=8",
          "task.eval_max_images=1", "num_threads=1", *out]
    dry = evaluate(compose_cfg("evaluate", [*ev, "dry_run=true"]))
    assert dry["flops_input"] == [360, 640] and dry["params"] > 0
    trained = evaluate(compose_cfg("evaluate", ev))
    assert _finite(trained["psnr"], trained["ssim"], trained["bicubic_psnr"])


@pytest.mark.slow
def test_search_derive_and_evaluate_on_the_embedded_photos(tmp_path):
    out = [f"out_root={tmp_path}"]
    search = result_line(nas("search", *TINY, *out))
    assert (search["status"], search["space"], search["dataset"], search["method"]) == \
        ("ok", "sisr_trilevel", "sr_photos", "trilevel_sr")
    run = Path(search["run_dir"])
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(epochs) == 2 and _finite(epochs[-1]["train_loss"], epochs[-1]["train_psnr"])
    assert "train_acc" not in epochs[-1]
    derived = result_line(nas("derive", f"run={run}", "selection=magnitude", *out))
    assert derived["arch"] == search["arch"]

    dry = result_line(nas("evaluate", f"arch={search['arch_path']}", "task=super_resolution", "dry_run=true",
                          "space.network.C=4", *out))
    assert dry["space"] == "sisr_trilevel" and dry["params"] > 0 and dry["flops"] > 0
    assert (dry["flops_input"], dry["flops_output"], dry["scale"]) == ([360, 640], [720, 1280], 2)

    res = result_line(nas("evaluate", f"arch={search['arch_path']}", "task=super_resolution", *SHORT,
                          "task.patch_size=8", "task.eval_max_images=1", "num_threads=1", *out))
    assert res["status"] == "ok" and res["protocol"] == "sr_quick" and res["images"]["test"] == 1
    assert _finite(res["psnr"], res["ssim"], res["bicubic_psnr"], res["bicubic_ssim"], res["train_loss"])
    assert 0 < res["ssim"] <= 1 and res["bicubic_psnr"] > 20  # bicubic on a real photo at x2
    assert "test_acc" not in res and "train_acc" not in res


@pytest.mark.slow
def test_search_and_evaluate_on_a_div2k_layout(tmp_path):
    root = write_div2k_layout(tmp_path / "div2k", n_train=4, n_valid=1, scales=(2,), size=(32, 40))
    data = ["dataset=div2k", f"dataset.root={root}", f"out_root={tmp_path / 'out'}"]
    search = result_line(nas("search", *TINY, *data))
    assert (search["status"], search["dataset"], search["images"]) == ("ok", "div2k", {"weights": 2, "arch": 2})
    res = result_line(nas("evaluate", "arch=sisr_baseline", "task=super_resolution", *SHORT, "task.patch_size=8",
                          "num_threads=1", *data))
    assert res["status"] == "ok" and res["dataset"] == "div2k" and res["images"] == {"train": 4, "test": 1}
    assert _finite(res["psnr"], res["bicubic_psnr"])


def test_div2k_layout_search_in_process(tmp_path):
    from nascli.commands.search import search

    root = write_div2k_layout(tmp_path / "div2k", n_train=4, n_valid=1, scales=(2,), size=(32, 40))
    res = search(compose_cfg("search", [*TINY, "search.epochs=1", "dataset=div2k", f"dataset.root={root}",
                                        f"out_root={tmp_path / 'out'}"]))
    assert (res["status"], res["dataset"], res["splits"]) == ("ok", "div2k", {"weights": "search-weights",
                                                                             "arch": "search-arch"})


@pytest.mark.slow
def test_mismatches_are_one_line_through_the_cli(tmp_path):
    proc = nas("search", "task=super_resolution", "selection=ostr", f"out_root={tmp_path}", check=False)
    assert proc.returncode == 2 and "selection=ostr cannot derive a task=super_resolution search" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = nas("evaluate", "arch=sisr_baseline", "dry_run=true", f"out_root={tmp_path}", check=False)
    assert proc.returncode == 2
    assert "space=sisr_trilevel builds networks for task=super_resolution, not task=classification" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing written
