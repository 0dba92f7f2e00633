"""scripts/collapse_report.py: the collapse indicators on hand-made cells and a hand-made study directory."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "collapse_report.py"
spec = importlib.util.spec_from_file_location("collapse_report", SCRIPT)
cr = importlib.util.module_from_spec(spec)
sys.modules["collapse_report"] = cr  # dataclasses resolve annotations through sys.modules
spec.loader.exec_module(cr)

ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
MIXED = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_3x3~2|"
OSTR_CELLS = ("|none~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|nor_conv_1x1~2|",                  # 4 of 6 none
              "|none~0|+|nor_conv_3x3~0|none~1|+|nor_conv_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|")  # 2 of 6


def test_param_free_share_of_nb201_cells():
    assert cr.param_free_share(ALL_SKIP) == 1.0
    assert cr.param_free_share(MIXED) == pytest.approx(3 / 6)  # none, avg_pool, skip


def test_param_free_share_of_a_darts_genotype():
    g = ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('noise', 0), ('sep_conv_3x3', 2)], "
         "normal_concat=[2, 3], reduce=[('max_pool_3x3', 0), ('dil_conv_3x3', 1)], reduce_concat=[2])")
    assert cr.arch_ops(g) == ["sep_conv_3x3", "skip_connect", "noise", "sep_conv_3x3", "max_pool_3x3", "dil_conv_3x3"]
    assert cr.param_free_share(g) == pytest.approx(3 / 6)


def test_max_deviation_and_settling():
    assert cr.max_deviation({"cell": [[0.2] * 5, [0.1, 0.3, 0.2, 0.2, 0.2]]}) == pytest.approx(0.1)
    assert cr.settled_epoch(["a", "b", "b", "c", "c", "c"]) == 3
    assert cr.settled_epoch(["a", "a"]) == 0


def test_t_interval_by_hand():
    mean, half = cr.t_interval([1.0, 2.0, 3.0, 4.0])
    s = math.sqrt(((1.5 ** 2) * 2 + (0.5 ** 2) * 2) / 3)
    assert mean == 2.5 and half == pytest.approx(3.182 * s / 2)
    assert cr.t_interval([5.0]) is None


def _epoch(e: int, arch: str, dev: float, hessian: float | None = None) -> dict:
    row = {"epoch": e, "steps": 10, "arch": arch, "alphas": {"cell": [[0.2 + dev, 0.2 - dev, 0.2, 0.2, 0.2]]}}
    if hessian is not None:
        row["hessian_eigenvalue"] = hessian
    return row


def test_report_of_a_hand_made_study(tmp_path):
    study, jobs = tmp_path / "study", tmp_path / "study" / "jobs"
    jobs.mkdir(parents=True)
    for seed, (final, acc) in enumerate([(ALL_SKIP, 60.0), (MIXED, 70.0)]):
        run = tmp_path / f"run{seed}"
        run.mkdir()
        rows = [_epoch(0, MIXED, 0.01, 0.5), _epoch(1, final, 0.02), _epoch(2, final, 0.05, 0.9)]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (jobs / f"search-darts-seed{seed}.json").write_text(json.dumps(
            {"status": "ok", "result": {"run_dir": str(run), "arch": final}}))
        (jobs / f"evaluate-darts-seed{seed}-magnitude.json").write_text(json.dumps(
            {"status": "ok", "result": {"test_acc": acc}}))
        (jobs / f"derive-darts-seed{seed}-ostr.json").write_text(json.dumps(
            {"status": "ok", "result": {"arch": OSTR_CELLS[seed]}}))
    running = tmp_path / "run_live"
    running.mkdir()
    (running / "metrics.jsonl").write_text(json.dumps(_epoch(0, MIXED, 0.003)) + "\n{\"epo")  # a line being written
    (jobs / "search-gdas-seed0.log").write_text(f"$ nas search method=gdas\nsearch {running}\n")
    (jobs / "evaluate-random-0.json").write_text(json.dumps({"status": "ok", "result": {"test_acc": 50.0}}))

    runs = cr.collect(study, include_running=True)
    assert [(r.label, r.seed, r.finished, len(r.epochs)) for r in runs] == [
        ("darts", 0, True, 3), ("darts", 1, True, 3), ("gdas", 0, False, 1)]
    assert cr.collect(study)[-1].label == "darts"  # without include_running only finished runs
    report = cr.write_report(runs, cr.baseline_accuracy(study), tmp_path / "out", "nas benchmark ...")
    text = report.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| darts |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:5] == ["2 (2)", "3", "10", "0.750"]            # param-free share (1.0 + 0.5) / 2
    assert cells[5] == "0.050" and cells[6] == "0.900"           # max dev, last lambda_max
    assert cells[7] == "1 (10), 0 (0)"   # seed 0 changed at epoch 1 (10 steps); seed 1 ended where it began
    assert cells[8] == f"65.00 ± {12.706 * math.sqrt(50) / math.sqrt(2):.2f} (n=2)"
    assert cells[9] == "–"
    assert "Random baseline (1 archs): 50.00 (n=1)" in text
    assert "| gdas | 0 | no (1 epochs) |" in text and "\\|skip_connect~0\\|" in text
    magnitude = next(line for line in text.splitlines() if line.startswith("| darts | magnitude |"))
    assert [c.strip() for c in magnitude.strip("|").split("|")][2:] == [
        "2", f"0.750 ± {12.706 * math.sqrt(0.125) / math.sqrt(2):.3f} (n=2)", "0.583", "0.083", "0.083"]
    ostr = next(line for line in text.splitlines() if line.startswith("| darts | ostr |"))
    assert [c.strip() for c in ostr.strip("|").split("|")][2:] == [  # 4/6 and 2/6 none
        "2", f"0.500 ± {12.706 * math.sqrt(2 / 36) / math.sqrt(2):.3f} (n=2)", "0.000", "0.500", "0.000"]
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"report.md", "param_free_share.png", "hessian.png",
                                                                "max_dev.png"}


def test_not_a_study_directory_is_one_line(tmp_path, capsys):
    assert cr.main(["--study", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path} is not a nas benchmark study directory (no jobs/ folder)"
