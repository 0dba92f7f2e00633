"""The benchmark scripts keep running: each one's ``--quick`` mode (the smallest configuration, seconds)
end to end, checking the rows it reports (fields, configuration, exit status), never the timings."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run_script(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(SCRIPTS / name), *args], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"), timeout=600)
    assert proc.returncode == 0, f"{name} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


SPEED_FIELDS = {"config", "impl", "threads", "device", "batch", "image", "sizes", "quick", "mixer", "load_before",
                "load_after", "rounds", "peak_rss_gb", "peak_rss_gb_rounds"}
TIMED = {"fwd_bwd": ("fwd_bwd_s", "fwd_bwd_s_rounds"),
         "step": ("step_s", "step_s_rounds", "step_img_s", "step_img_s_rounds"),
         "alpha2": ("alpha2_s", "alpha2_s_rounds")}


def _speed_rows(tmp_path: Path, *args: str) -> tuple[list[dict], dict, str]:
    out = tmp_path / "speed.json"
    proc = run_script("bench_speed.py", "--quick", "--threads", "1", "--device", "cpu", "--json", str(out), *args,
                      cwd=tmp_path)
    data = json.loads(out.read_text())
    return data["rows"], data, proc.stdout


def test_bench_speed_quick_alternates_fast_and_reference_in_one_run(tmp_path):
    rows, data, stdout = _speed_rows(tmp_path, "--rounds", "2", "--markdown", str(tmp_path / "table.md"))
    assert [(r["config"], r["impl"]) for r in rows] == [("nb201", "fast"), ("nb201", "reference")]
    assert [(r["impl"], r["round"]) for r in data["raw"]] == [("fast", 0), ("reference", 0), ("fast", 1),
                                                              ("reference", 1)]
    for r in rows:
        assert set(r) == SPEED_FIELDS | set(TIMED["fwd_bwd"]) | set(TIMED["step"]), r
        assert (r["device"], r["threads"], r["batch"], r["image"], r["mixer"]) == ("cpu", 1, 2, 8, "softmax")
        assert r["sizes"] == {"C": 4, "N": 1} and r["quick"] is True and r["rounds"] == 2
        assert len(r["step_img_s_rounds"]) == 2 and r["step_img_s"] == pytest.approx(statistics.median(r["step_img_s_rounds"]), abs=1e-3)
    # the ratios are fast over reference within each round (the median of the two rounds)
    fast, ref = [[x for x in data["raw"] if x["impl"] == impl] for impl in ("fast", "reference")]
    expected = statistics.median(f["step_img_s"] / r["step_img_s"] for f, r in zip(fast, ref))
    assert data["ratios"]["nb201"]["speedup_step"] == pytest.approx(expected)
    assert set(data["ratios"]["nb201"]) == {"speedup_step", "speedup_fwd_bwd", "memory_ratio"}
    assert set(data["official"]) == {"nb201", "darts", "darts_2nd", "pc_darts"}
    lines = stdout.splitlines()
    assert lines[0] == "`python scripts/bench_speed.py --quick --threads 1 --device cpu --json " \
                       f"{tmp_path / 'speed.json'} --rounds 2 --markdown {tmp_path / 'table.md'}`"
    assert lines[2].startswith("Measured 20") and "torch " in lines[2]
    table = lines[4:]
    assert table[0].startswith("| config | impl | fwd+bwd s | step img/s |")
    assert [line.split(" | ")[:2] for line in table[2:4]] == [["| nb201", "fast"], ["| nb201", "reference"]]
    assert f"step {data['ratios']['nb201']['speedup_step']:.2f}x" in table[2]
    assert "Official code, not measured by this script:" in stdout
    assert (tmp_path / "table.md").read_text() == stdout.rstrip("\n") + "\n"


def test_same_round_ratios_on_hand_made_rows():
    sys.path.insert(0, str(SCRIPTS))
    try:
        import bench_speed
    finally:
        sys.path.remove(str(SCRIPTS))
    fast = [{"step_img_s": 30.0, "fwd_bwd_s": 1.0, "peak_rss_gb": 2.0}, {"step_img_s": 10.0, "fwd_bwd_s": 3.0,
                                                                          "peak_rss_gb": 2.0}]
    ref = [{"step_img_s": 10.0, "fwd_bwd_s": 2.0, "peak_rss_gb": 4.0}, {"step_img_s": 5.0, "fwd_bwd_s": 3.0,
                                                                         "peak_rss_gb": 2.5}]
    assert bench_speed.same_round_ratios(fast[0], ref[0]) == {"speedup_step": 3.0, "speedup_fwd_bwd": 2.0,
                                                              "memory_ratio": 0.5}
    # round by round, not the ratio of the medians: (3 + 2) / 2 for the step, (2 + 1) / 2 for fwd+bwd
    assert bench_speed.round_ratios(fast, ref) == {"speedup_step": 2.5, "speedup_fwd_bwd": 1.5, "memory_ratio": 0.65}


def _bench_speed_module():
    sys.path.insert(0, str(SCRIPTS))
    try:
        import bench_speed
    finally:
        sys.path.remove(str(SCRIPTS))
    return bench_speed


def test_profile_op_categories_on_hand_made_names():
    op_category = _bench_speed_module().op_category
    assert op_category("aten::convolution_backward") == "conv, backward kernels"
    assert [op_category(n) for n in ("aten::mkldnn_convolution", "aten::_convolution", "aten::conv2d")] == \
        ["conv, forward kernels"] * 3
    assert op_category("aten::native_batch_norm_backward") == "batch norm backward"
    assert op_category("aten::native_batch_norm") == "batch norm forward"
    assert op_category("aten::avg_pool2d_backward") == op_category("aten::max_pool2d") == "pooling"
    assert op_category("aten::addmm") == "matmul"
    assert op_category("aten::copy_") == op_category("aten::cat") == "copies and layout"
    assert op_category("aten::addcmul") == op_category("aten::sum") == "elementwise and reductions"
    assert op_category("autograd::engine::evaluate_function: ConvolutionBackward0") == \
        op_category("Optimizer.step#SGD.step") == "autograd and optimizer bookkeeping"


def test_conv_flops_counts_forward_and_the_backward_that_runs():
    """2 FLOPs per multiply-add; the backward adds dL/dx only when x needs a gradient, and dL/dW."""
    import torch

    conv_flops = _bench_speed_module().conv_flops
    conv = torch.nn.Conv2d(4, 8, 3, padding=1, bias=False)
    macs = 2 * 5 * 5 * 8 * 4 * 9  # batch 2, 5x5 output, 8 out and 4 in channels, 3x3
    x = torch.randn(2, 4, 5, 5)
    assert conv_flops(lambda: conv(x)) == 2 * macs
    assert conv_flops(lambda: conv(x).sum().backward()) == 4 * macs  # dL/dW only
    assert conv_flops(lambda: conv(x.requires_grad_()).sum().backward()) == 6 * macs


def test_bench_speed_profile_quick_splits_the_step_by_op_category(tmp_path):
    bench_speed = _bench_speed_module()
    out = tmp_path / "profile.json"
    proc = run_script("bench_speed.py", "--quick", "--profile", "--threads", "1", "--device", "cpu", "--json",
                      str(out), cwd=tmp_path)
    (r,) = json.loads(out.read_text())["profiles"]
    assert (r["config"], r["impl"], r["job"], r["batch"], r["repeats"]) == ("nb201", "fast", "step", 2, 1)
    assert set(r["seconds_per_call"]) <= {c for c, _ in bench_speed.OP_CATEGORIES}
    assert {"conv, forward kernels", "conv, backward kernels", "batch norm forward"} <= set(r["seconds_per_call"])
    assert r["conv_gflop"] > 0 and r["matmul_gflops_per_s"] > 0
    assert r["conv_floor_s"] == pytest.approx(r["conv_gflop"] / r["matmul_gflops_per_s"])
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and " | s per call |" not in line]
    assert len(rows) == len(r["seconds_per_call"]) + 1 and rows[-1].startswith("| all profiled ops |")
    shares = [float(line.split(" | ")[2].rstrip("% |")) for line in rows[:-1]]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(100, abs=0.1 * len(shares))


def test_bench_speed_pool_kernels_quick_says_which_pool_nascli_runs(tmp_path):
    out = tmp_path / "pool.json"
    proc = run_script("bench_speed.py", "--pool-kernels", "--quick", "--threads", "1", "--json", str(out), cwd=tmp_path)
    rows = json.loads(out.read_text())["pool_kernels"]
    assert [(r["shape"], r["stride"], r["nascli_runs"]) for r in rows] == [([2, 3, 16, 16], 1, "depthwise_sum"),
                                                                          ([2, 3, 8, 8], 2, "avg_pool2d")]
    assert all(r["avg_pool2d_ms"] > 0 and r["depthwise_sum_ms"] > 0 for r in rows)
    assert "| (2, 3, 16, 16) | 1 |" in proc.stdout and proc.stdout.startswith("`python scripts/bench_speed.py")


@pytest.mark.slow  # three DARTS-space configurations and the five ablation variants: about a minute
def test_bench_speed_quick_darts_configurations_and_ablation(tmp_path):
    rows, _, _ = _speed_rows(tmp_path, "--only", "darts", "darts_2nd", "pc_darts", "--impl", "fast")
    assert [r["config"] for r in rows] == ["darts", "darts_2nd", "pc_darts"]
    assert [r["mixer"] for r in rows] == ["softmax", "softmax", "pc_softmax"]
    assert all(r["sizes"] == {"C": 4, "layers": 3} for r in rows)
    assert set(TIMED["alpha2"]) <= set(rows[1]) and "step_s" not in rows[1]  # second order: the alpha step only
    assert set(TIMED["step"]) <= set(rows[2]) and "alpha2_s" not in rows[2]
    ablation, _, _ = _speed_rows(tmp_path, "--ablation")
    assert [r["impl"] for r in ablation] == ["reference", "reference+channels_last", "fast+plain_depthwise", "fast",
                                             "fast+malloc"]
    assert all(r["config"] == "darts" and "fwd_bwd_s" in r and "step_s" not in r for r in ablation)


MEMORY_FIELDS = {"method", "optimizer", "space", "device", "batch", "image", "C", "peak_mb", "images_per_s", "step_s",
                 "quick", "ratio_to_darts"}


def _memory_rows(tmp_path: Path, *args: str) -> tuple[list[dict], str]:
    out = tmp_path / "memory.json"
    proc = run_script("bench_memory.py", "--quick", "--device", "cpu", "--json", str(out), *args, cwd=tmp_path)
    return json.loads(out.read_text()), proc.stdout


def test_bench_memory_quick_reports_every_default_method(tmp_path):
    rows, stdout = _memory_rows(tmp_path)
    assert [(r["method"], r["optimizer"]) for r in rows] == [("darts", "bilevel"), ("gdas", "bilevel"),
                                                             ("rome", "multipath"), ("daas", "bilevel")]
    for r in rows:
        assert set(r) == MEMORY_FIELDS | {"N"}, r
        assert (r["space"], r["device"], r["batch"], r["image"], r["C"], r["N"], r["quick"]) == \
            ("nb201", "cpu", 4, 8, 4, 1, True)
    assert rows[0]["ratio_to_darts"] == 1.0
    assert all(r["ratio_to_darts"] == round(r["peak_mb"] / rows[0]["peak_mb"], 3) for r in rows)
    lines = stdout.splitlines()
    assert lines[0].split() == ["method", "optimizer", "peak", "MB", "ratio", "img/s", "(cpu)"]
    assert [line.split()[:2] for line in lines[1:]] == [["darts", "bilevel"], ["gdas", "bilevel"],
                                                        ["rome", "multipath"], ["daas", "bilevel"]]


@pytest.mark.slow  # the DARTS space, two methods
def test_bench_memory_quick_on_the_darts_space(tmp_path):
    rows, _ = _memory_rows(tmp_path, "--space", "darts", "--methods", "darts", "pc_darts")
    assert [(r["method"], r["space"], r["layers"]) for r in rows] == [("darts", "darts", 3), ("pc_darts", "darts", 3)]
    assert all(set(r) == MEMORY_FIELDS | {"layers"} for r in rows)


def test_a_failing_method_makes_the_script_fail(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPTS / "bench_memory.py"), "--quick", "--device", "cpu",
                           "--methods", "no_such_method"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 1
    assert "no_such_method: failed:" in proc.stderr and "no_such_method" in proc.stdout.splitlines()[1]


def test_bn_layout_accuracy_quick_reports_both_layouts(tmp_path):
    out = tmp_path / "bn.json"
    proc = run_script("bn_layout_accuracy.py", "--quick", "--json", str(out), cwd=tmp_path)
    data = json.loads(out.read_text())
    assert [r["shape"] for r in data["rows"]] == [[8, 4, 8, 8], [8, 4, 8, 8]]
    for row in data["rows"]:
        errs = {k: v for k, v in row.items() if k.endswith("_err")}
        assert sorted(errs) == sorted(f"{lay}_{w}_err" for lay in ("nchw", "nhwc") for w in ("out", "mean", "var"))
        assert all(0.0 <= v < 1e-4 for v in errs.values()), errs  # float32 rounding against float64
    assert proc.stdout.count("\n| (8, 4, 8, 8) |") == 2


def test_bn_layout_speed_quick_times_the_three_ways(tmp_path):
    out = tmp_path / "bn_speed.json"
    proc = run_script("bn_layout_accuracy.py", "--speed", "--quick", "--json", str(out), cwd=tmp_path)
    (row,) = json.loads(out.read_text())["rows"]
    assert row["shape"] == [4, 4, 8, 8] and set(row) == {"shape", "nhwc_ms", "via_nchw_ms", "via_nchw_relayout_ms",
                                                          "by_hand_ms"}
    assert "| (4, 4, 8, 8) |" in proc.stdout


def test_bn_by_hand_is_batch_norm():
    """The --speed script's hand-written BN is the training-mode BN it is timed against (values, gradients)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        import bn_layout_accuracy as bn
    finally:
        sys.path.remove(str(SCRIPTS))
    import torch

    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(4, 3, 5, 5, generator=gen, dtype=torch.float64) * 2 + 1).contiguous(
        memory_format=torch.channels_last).requires_grad_()
    w = torch.rand(3, generator=gen, dtype=torch.float64).requires_grad_()
    ys = [fn(x, w) for fn in (bn._bn_nhwc, bn._bn_via_nchw, bn._bn_by_hand)]
    grads = [torch.autograd.grad(y.pow(3).sum(), (x, w)) for y in ys]
    for y, g in zip(ys[1:], grads[1:]):
        torch.testing.assert_close(y, ys[0])
        torch.testing.assert_close(g, grads[0])


def test_gpu_check_quick_times_every_search_part(tmp_path):
    """The prepared device check (docs/SPEED.md) on the CPU at tiny sizes: every search part ran, stopped or
    finished cleanly, and its 50-epoch projection is the stated rule on its own epoch times."""
    out = tmp_path / "check"
    proc = run_script("gpu_check.py", "--out", str(out), "--quick", "--device", "cpu", "--window", "1",
                      "--concurrent", "2", "--skip", "speed", cwd=tmp_path)
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["device"] == "cpu" and report["quick"] is True and "speed" not in report
    searches = [report["nb201_search"], report["pc_darts_search"], *report["concurrent_nb201"]["rows"]]
    assert len(searches) == 4
    group = report["group_nb201"]  # part 5: the in-process seed group (seeds 0 and 1 in turn)
    assert group["seeds"] == 2 and "seeds=[0,1]" in group["command"] and group["ended"] in ("finished", "stopped")
    assert 1 <= group["epochs_measured"] <= 6
    stacked = report["stacked_nb201"]  # part 6: the same seeds stacked (one vmapped forward)
    assert stacked["seeds"] == 2 and stacked["ended"] in ("finished", "stopped"), stacked
    assert "seeds_mode=stacked" in stacked["command"] and "seeds=[0,1]" in stacked["command"]
    assert stacked["total_images_per_s"] == pytest.approx(2 * statistics.median(stacked["images_per_s"]))
    for row in searches:
        assert row["ended"] in ("finished", "stopped"), row
        times = row["epoch_time_s"]
        assert 1 <= row["epochs_measured"] == len(times) <= 3
        median = statistics.median(times[1:] or times)  # the first epoch holds the start-up
        assert row["projected_50_epochs_s"] == pytest.approx(sum(times) + (50 - len(times)) * median)
    assert "method=pc_darts space=darts" in report["pc_darts_search"]["command"]
    assert "optimizer.arch_start_epoch=0" in report["pc_darts_search"]["command"]
    assert [r["command"].split("seed=")[1].split()[0] for r in report["concurrent_nb201"]["rows"]] == ["0", "1"]
    assert "| nb201_search |" in proc.stdout and "| concurrent_nb201 x2 |" in proc.stdout
    assert "| group_nb201 seeds x2 (in turn) |" in proc.stdout
    assert "| stacked_nb201 seeds x2 (stacked) |" in proc.stdout
