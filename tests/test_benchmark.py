"""`nas benchmark`: statistics, baseline sampling, table statistics, job failures, aggregation, end to end."""
from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers import compose_cfg, nas, result_line
from nascli.bench import published as pub
from nascli.bench.jobs import Job, Launch, Outcome, classify, run_jobs
from nascli.bench.nb201_table import load_nb201_table, space_stats
from nascli.bench.report import build_report, render_csv, render_markdown, report_digest
from nascli.bench.stats import mean_std, relative_improvement, summarize
from nascli.bench.study import discover_runs, sample_baseline
from nascli.bench.compose import group_overrides
from nascli.bench.slots import gpu_slots
from nascli.commands.benchmark import benchmark
from nascli.errors import NasError
from nascli.overrides import hydra_value
from nascli.paths import CONF_DIR
from nascli.spaces import get_space
from nascli.spaces.nb201.arch import NB201_EDGES, NB201_OPS

METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
SECOND = next((m for m in ("single_darts", "darts_minus") if m in METHODS), None)

TINY = ["space.supernet.C=4", "space.supernet.N=1", "space.network.C=4", "space.network.N=1",
        "dataset.num_train=256", "dataset.num_test=64", "dataset.image_size=8", "num_threads=1",
        "search_overrides=['search.batch_size=16','search.epochs=1']",
        "protocol.epochs=1", "protocol.max_steps_per_epoch=2", "protocol.batch_size=16"]


# ------------------------------------------------------------------------------------- statistics
def test_relative_improvement_reproduces_the_papers_table():
    # "NAS evaluation is frustratingly hard" CIFAR-10 means (METHODS.md 8): DARTS 96.92 -> 97.23 gives RI 0.32,
    # PDARTS 96.62 -> 97.12 gives 0.52, NSGANET 96.64 -> 96.18 gives -0.48.
    assert round(relative_improvement(97.23, 96.92), 2) == 0.32
    assert round(relative_improvement(97.12, 96.62), 2) == 0.52
    assert round(relative_improvement(96.18, 96.64), 2) == -0.48
    assert relative_improvement(50.0, 40.0) == 25.0
    assert relative_improvement(None, 40.0) is None and relative_improvement(50.0, None) is None
    assert relative_improvement(50.0, 0.0) is None
    # an error rate (CER): fewer errors than random is a positive improvement, 20 vs 40 halves them
    assert relative_improvement(20.0, 40.0, higher_is_better=False) == 50.0
    assert relative_improvement(50.0, 40.0, higher_is_better=False) == -25.0


def test_mean_std_is_population_std_and_ignores_missing_values():
    mean, std = mean_std([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and std == math.sqrt(1.25)  # ddof 0: sqrt(((1.5^2+0.5^2)*2)/4)
    s = summarize([90.0, None, float("nan"), 92.0, "x", True])
    assert (s.n, s.mean, s.std, s.best) == (2, 91.0, 1.0, 92.0)
    assert summarize([]).as_dict() == {"n": 0, "mean": None, "std": None, "best": None}
    assert summarize([3.0, 1.0], higher_is_better=False).best == 1.0


# ------------------------------------------------------------------------------------- baseline
def test_random_baseline_is_seeded_and_uniform_over_the_space():
    space = get_space("nb201")
    archs = sample_baseline(space, 8, seed=3)
    rng = random.Random(3)  # the same draws by hand: one uniform op per edge, edges in order
    assert [a.ops for a in archs] == [tuple(rng.choice(NB201_OPS) for _ in NB201_EDGES) for _ in range(8)]
    assert [a.to_string() for a in sample_baseline(space, 8, seed=3)] == [a.to_string() for a in archs]
    assert [a.to_string() for a in sample_baseline(space, 8, seed=4)] != [a.to_string() for a in archs]
    # uniform over the 5^6 cells = every edge uniform over the 5 ops and edges independent
    draws = sample_baseline(space, 20000, seed=0)
    for e in range(len(NB201_EDGES)):
        counts = Counter(a.ops[e] for a in draws)
        assert set(counts) == set(NB201_OPS)
        for n in counts.values():  # binomial(20000, 0.2): sd 56.6; 5 sd
            assert abs(n - 4000) < 283
    pairs = Counter((a.ops[0], a.ops[5]) for a in draws)  # 25 joint cells of two edges: 800 each, sd 27.7
    assert len(pairs) == 25 and all(abs(n - 800) < 139 for n in pairs.values())


# ------------------------------------------------------------------------------------- report
def _row(method, seed, sel="magnitude", status="ok", acc=None, **kw):
    row = {"method": method, "method_name": method, "seed": seed, "selection": sel, "status": status,
           "search_status": kw.pop("search_status", "ok" if status in ("ok",) else status), "acc": acc,
           "valid_acc": None, "arch": kw.pop("arch", f"arch{seed}"), "skip_count": 1, "search_time_s": 10.0 + seed,
           "peak_memory_mb": 100.0 + seed, "alpha_entropy": 1.0, "hessian_eigenvalue": None, "stage": None,
           "error": None, "log": None}
    row.update(kw)
    return row


def _study(dataset="cifar10"):
    return {"id": "x", "mode": "study", "space": "nb201", "dataset": dataset, "methods": ["darts", "gdas"],
            "seeds": [0, 1, 2], "selections": ["magnitude"], "baseline": {"samples": 2, "seed": 0}}


def test_report_of_a_lower_is_better_metric_picks_the_lowest_and_signs_ri_by_it():
    """Speech studies report CER: "best" is the lowest error and a method below random has a positive RI."""
    rows = [_row("darts", 0, acc=30.0), _row("darts", 1, acc=50.0), _row("gdas", 0, acc=90.0)]
    baseline = [{"sample": 0, "seed": 0, "arch": "a", "status": "ok", "acc": 100.0},
                {"sample": 1, "seed": 1, "arch": "b", "status": "ok", "acc": 60.0}]
    report = build_report(_study(), rows, baseline, None, labels=["darts", "gdas"], selections=["magnitude"],
                          methods={"darts": "darts", "gdas": "gdas"}, with_published=False, accuracy_source="run",
                          metric="CER (%)", higher_is_better=False)
    darts, gdas = report["cells"]
    assert darts["acc"]["best"] == 30.0 and report["baseline"]["random"]["best"] == 60.0
    assert darts["ri"] == pytest.approx(100 * (80.0 - 40.0) / 80.0) and gdas["ri"] == pytest.approx(-12.5)
    assert report["accuracy"] == {"metric": "CER (%)", "source": "run", "higher_is_better": False}


def test_report_cells_count_failures_and_use_exact_nb201_space_statistics():
    rows = [_row("darts", 0, acc=54.30), _row("darts", 1, acc=60.0),
            _row("darts", 2, status="oom", stage="search", error="CUDA out of memory", search_status="oom"),
            _row("gdas", 0, acc=93.0), _row("gdas", 1, status="failed", stage="evaluate", error="boom",
                                            search_status="ok"),
            _row("gdas", 2, status="skipped", stage="derive", search_status="ok")]
    baseline = [{"sample": 0, "seed": 0, "arch": "a", "status": "ok", "acc": 80.0},
                {"sample": 1, "seed": 1, "arch": "b", "status": "ok", "acc": 90.0},
                {"sample": 2, "seed": 2, "arch": "c", "status": "failed", "acc": None, "error": "x"}]
    stats = space_stats("cifar10")
    report = build_report(_study(), rows, baseline, stats, labels=["darts", "gdas"], selections=["magnitude"],
                          methods={"darts": "darts", "gdas": "gdas"}, with_published=True, accuracy_source="table")
    darts, gdas = report["cells"]
    assert (darts["runs"], darts["ok"], darts["statuses"]) == (3, 2, {"oom": 1})
    assert (gdas["runs"], gdas["ok"], gdas["statuses"]) == (3, 1, {"failed": 1, "skipped": 1})
    assert darts["acc"] == {"n": 2, "mean": 57.15, "std": 2.8500000000000014, "best": 60.0}
    # RI on the means against the sampled baseline (mean of the two ok samples: 85) and the exact space mean
    assert darts["ri"] == pytest.approx(100 * (57.15 - 85.0) / 85.0, abs=1e-12)
    table = load_nb201_table()
    exact = math.fsum(table.lookup(a, "cifar10")["test"] for a in table.arch_strings()) / len(table)
    assert report["baseline"]["space"]["mean"] == pytest.approx(exact, abs=1e-9)
    assert report["baseline"]["space"]["best"] == 94.373333  # NB201 cifar10 test optimum (METHODS.md 0.6: 94.37)
    assert darts["ri_space"] == pytest.approx(100 * (57.15 - exact) / exact, abs=1e-9)
    # search figures: over the runs whose search succeeded (not the oom one), memory is the max
    assert darts["search_time_s"] == 10.5 and darts["peak_memory_mb"] == 101.0
    assert gdas["search_time_s"] == 11.0 and gdas["peak_memory_mb"] == 102.0
    assert report["baseline"]["random"]["n"] == 2 and report["baseline"]["random"]["planned"] == 3
    assert report["counts"] == {"runs": 6, "runs_ok": 3, "baseline": 3, "baseline_ok": 2}
    assert len(report["failures"]) == 4 and report["failures"][0]["status"] == "oom"
    # the sets in use are named; first-order darts (its default optimizer) gets DARTS-V1's collapse number only
    assert set(report["published"]["sets"]) == {"nb201_iclr20", "nb201_later"}
    darts_pub = {(p["set"], p["row"]): p["test"] for p in report["published"]["methods"] if p["method"] == "darts"}
    assert darts_pub == {("nb201_iclr20", "DARTS-V1"): (54.30, 0.0)}
    md = render_markdown(report)
    assert ("| darts | magnitude | 2/3 (1 oom) | 57.15 ± 2.85 | 54.30 ± 0.00 (nb201_iclr20 DARTS-V1, 2nd) "
            "| 60.00 |") in md
    assert "NAS-Bench-201 paper (ICLR'20, benchmark file v1.0)" in md and "CUDA out of memory" in md
    csv_lines = render_csv(report).splitlines()
    assert csv_lines[1].startswith("method,darts,magnitude,3,2,57.15,")
    assert csv_lines[1].endswith(",54.3,0.0,nb201_iclr20,DARTS-V1")
    assert csv_lines[-1].startswith(f"space,space,,,,{report['baseline']['space']['mean']},")


def test_published_tables_keep_both_sets_apart():
    assert pub.NB201_ICLR20.row("GDAS").get("cifar10", "test") == (93.61, 0.09)
    assert pub.NB201_LATER.row("GDAS").get("cifar10", "test") == (93.23, 0.23)
    assert pub.NB201_LATER.row("PC-DARTS").get("cifar100", "test") == (67.48, 0.89)
    assert pub.NB201_ICLR20.row("PC-DARTS") is None
    assert [(s.key, r.name) for s, r in pub.published_for("pc_darts", "bilevel", space="nb201")] == \
        [("nb201_later", "PC-DARTS")]
    assert pub.NB201_ICLR20.row("Optimal").get("cifar10", "test") == (94.37, None)
    assert not pub.covers("fashion_mnist")


# ------------------------------------------------------------------------------------- jobs
def test_job_status_classification():
    assert classify(0, {"status": "ok"}, "") == ("ok", None)
    assert classify(1, None, "Traceback...\nValueError: Invalid learning rate: -1.0\n\n"
                             "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n") == \
        ("failed", "ValueError: Invalid learning rate: -1.0")
    assert classify(1, None, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB")[0] == "oom"
    status, error = classify(-signal.SIGKILL, None, "")
    assert status == "killed" and "SIGKILL" in error and "out-of-memory" in error
    assert classify(0, None, "") == ("failed", "no result line on stdout")
    assert classify(0, {"status": "diverged"}, "loss is nan") == ("diverged", "loss is nan")


_SCRIPT = """
import json, os, signal, sys, time
what = sys.argv[1]
if what == "ok":
    time.sleep(float(sys.argv[2]) if len(sys.argv) > 3 else 0)
    print("progress text"); print(json.dumps({"status": "ok", "job": sys.argv[-1], "slot": os.environ["SLOT"]}))
elif what == "fail":
    print("error: bad value", file=sys.stderr); sys.exit(2)
elif what == "oom":
    print("RuntimeError: CUDA out of memory.", file=sys.stderr); sys.exit(1)
elif what == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_run_jobs_records_failures_skips_dependents_and_reuses(tmp_path):
    program = [sys.executable, "-c", _SCRIPT]

    def job(key, args, deps=(), lock=None):
        return Job(key, "search", key, prepare=lambda _o: Launch(list(args) + [key], lock=lock), deps=tuple(deps))

    jobs = [job("a", ["ok", "0.3"], lock="L"), job("b", ["fail"]), job("c", ["ok"], deps=["b"]),
            job("d", ["oom"]), job("e", ["kill"]), job("f", ["ok"], deps=["a"]), job("g", ["ok"], lock="L"),
            job("h", ["ok"])]
    done: list[str] = []
    outcomes = run_jobs(jobs, parallel=3, log_dir=tmp_path / "jobs", program=program,
                        reuse=lambda j, launch: Outcome("ok", result={"stored": True}) if j.key == "h" else None,
                        on_done=lambda j, o: done.append(j.key), slot_env=lambda slot: {"SLOT": str(slot)})
    status = {k: o.status for k, o in outcomes.items()}
    assert status == {"a": "ok", "b": "failed", "c": "skipped", "d": "oom", "e": "killed", "f": "ok", "g": "ok",
                      "h": "ok"}
    assert outcomes["a"].result == {"status": "ok", "job": "a", "slot": "0"}  # the first job gets slot 0
    assert {outcomes[k].result["slot"] for k in "fg"} <= {"0", "1", "2"}
    assert outcomes["b"].error == "error: bad value"
    assert outcomes["c"].error == "b did not succeed (failed)"
    assert outcomes["h"].reused and outcomes["h"].result == {"stored": True} and not outcomes["a"].reused
    assert sorted(done) == sorted(status)
    # g shares a's lock, so it started only after a finished; f depends on a
    assert done.index("a") < done.index("g") and done.index("a") < done.index("f")
    assert (tmp_path / "jobs" / "b.log").read_text().splitlines()[-1] == "error: bad value"


def test_parallel_slots_get_rotated_gpu_lists(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,7")
    slots = gpu_slots(compose_cfg("benchmark", ["jobs=2"]))
    assert [slots(i)["CUDA_VISIBLE_DEVICES"] for i in range(4)] == ["3,5,7", "5,7,3", "7,3,5", "3,5,7"]
    assert gpu_slots(compose_cfg("benchmark", ["jobs=1"])) is None
    assert gpu_slots(compose_cfg("benchmark", ["jobs=2", "device=cpu"])) is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert gpu_slots(compose_cfg("benchmark", ["jobs=2"])) is None


# ------------------------------------------------------------------------------------- config checks
def test_unknown_method_fails_before_anything_runs(tmp_path):
    cfg = compose_cfg("benchmark", ["methods=[darts,no_such_method]", f"out_root={tmp_path}"])
    with pytest.raises(NasError) as err:
        benchmark(cfg)
    msg = str(err.value)
    assert "unknown method 'no_such_method'" in msg and "valid choices: " + ", ".join(METHODS) in msg
    assert list(tmp_path.iterdir()) == []
    cfg = compose_cfg("benchmark", ["selections=[magnitude,nope]", f"out_root={tmp_path}"])
    with pytest.raises(NasError, match="unknown selection 'nope'; valid choices: magnitude"):
        benchmark(cfg)
    cfg = compose_cfg("benchmark", ["methods=[v]", "+variants.v=['optimizer=bilevel']", f"out_root={tmp_path}"])
    with pytest.raises(NasError, match="variant 'v' must contain exactly one method="):
        benchmark(cfg)
    cfg = compose_cfg("benchmark", ["search_overrides=['search.no_such_key=1']", f"out_root={tmp_path}"])
    with pytest.raises(NasError, match="search darts seed=0: the overrides do not compose"):
        benchmark(cfg)
    assert list(tmp_path.iterdir()) == []


def test_cli_names_the_valid_methods_in_one_line(tmp_path):
    proc = nas("benchmark", "methods=[darts,rome_typo]", f"out_root={tmp_path}", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown method 'rome_typo'" in lines[0] and "darts" in lines[0]


def test_group_overrides_forward_what_the_command_line_changed():
    cfg = compose_cfg("benchmark", ["dataset=synthetic", "dataset.num_train=256", "space.supernet.C=4",
                                    "protocol.epochs=1"])
    assert group_overrides("dataset", cfg.dataset) == ["dataset.num_train=256"]
    assert group_overrides("space", cfg.space) == ["space.supernet.C=4"]
    assert group_overrides("protocol", cfg.protocol) == ["protocol.epochs=1"]
    assert group_overrides("dataset", compose_cfg("benchmark", []).dataset) == []
    assert hydra_value("it's") == "'it\\'s'" and hydra_value([1, 2.5, None, True]) == "[1,2.5,null,true]"


# ------------------------------------------------------------------------------------- aggregation
def _fake_search_run(root: Path, method: str, seed: int, arch: str, config_id: str = "abc123", finished=True,
                     hessian: bool = False) -> Path:
    """A search run directory as `nas search` writes it (NB201 on cifar10, 2 epochs)."""
    run = root / "search" / "nb201-cifar10" / method / config_id / f"seed={seed}"
    run.mkdir(parents=True)
    cfg = {"seed": seed, "method": {"name": method}, "search": {"epochs": 2},
           "selection": {"name": "magnitude"},
           "space": OmegaConf.to_container(OmegaConf.load(CONF_DIR / "space" / "nb201.yaml")),
           "dataset": OmegaConf.to_container(OmegaConf.load(CONF_DIR / "dataset" / "cifar10.yaml"))}
    (run / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    table = load_nb201_table()
    probs = [[0.2] * 5 for _ in range(6)]
    with open(run / "metrics.jsonl", "w") as f:
        for epoch, a in enumerate([table.arch_strings()[0], arch]):
            rec = {"epoch": epoch, "val_acc": 10.0 + epoch, "skip_count": a.count("skip_connect"), "arch": a,
                   "benchmark": table.lookup(a, "cifar10"), "alpha_entropy": {"cell": 1.6 - 0.1 * epoch},
                   "alphas": {"cell": probs}}
            if hessian:
                rec["hessian_eigenvalue"] = 0.1 * (epoch + 1)
            f.write(json.dumps(rec) + "\n")
    if finished:
        res = {"status": "ok", "run_dir": str(run), "arch_path": str(run / "arch.json"), "arch": arch,
               "skip_count": arch.count("skip_connect"), "search_time_s": 5.0 + seed, "peak_memory_mb": 50.0}
        (run / "result.json").write_text(json.dumps(res))
        (run / "arch.json").write_text(json.dumps({"space": "nb201", "arch": arch}))
    return run


def test_aggregate_scans_search_runs_and_looks_archs_up_in_the_table(tmp_path):
    table = load_nb201_table()
    archs = table.arch_strings()
    sweep = tmp_path / "sweep"
    _fake_search_run(sweep, "darts", 0, archs[10], hessian=True)
    _fake_search_run(sweep, "darts", 1, archs[20])
    _fake_search_run(sweep, "gdas", 0, archs[30])
    _fake_search_run(sweep, "gdas", 1, archs[40], finished=False)  # interrupted: counted, not averaged
    _fake_search_run(sweep, "gdas", 0, archs[50], config_id="def456")  # another gdas config: kept apart
    out = tmp_path / "out"
    cfg = compose_cfg("benchmark", ["mode=aggregate", f"sweep={sweep}", "baseline.samples=4", f"out_root={out}"])
    summary = benchmark(cfg)
    assert summary["status"] == "partial" and summary["runs"] == 5 and summary["runs_ok"] == 4
    assert summary["jobs"]["total"] == 0  # table lookups and the searches' own arch.json: nothing to run
    report = json.loads(Path(summary["report"]).read_text())
    cells = {c["method"]: c for c in report["cells"]}
    assert set(cells) == {"darts", "gdas@abc123", "gdas@def456"}
    test = [table.lookup(archs[i], "cifar10")["test"] for i in (10, 20)]
    assert cells["darts"]["acc"]["mean"] == pytest.approx(sum(test) / 2, abs=1e-12)
    assert cells["darts"]["acc"]["best"] == max(test)
    assert cells["darts"]["hessian_eigenvalue"] == pytest.approx(0.2) and cells["darts"]["alpha_entropy"] == 1.5
    assert (cells["gdas@abc123"]["ok"], cells["gdas@abc123"]["runs"]) == (1, 2)
    assert cells["gdas@abc123"]["statuses"] == {"incomplete": 1}
    random_archs = [a.to_string() for a in sample_baseline(get_space("nb201"), 4, 0)]
    random_mean = sum(table.lookup(a, "cifar10")["test"] for a in random_archs) / 4
    assert [a for a, _ in report["baseline"]["random"]["archs"]] == random_archs
    assert report["baseline"]["random"]["mean"] == pytest.approx(random_mean, abs=1e-12)
    assert cells["darts"]["ri"] == pytest.approx(relative_improvement(sum(test) / 2, random_mean), abs=1e-12)
    assert report["baseline"]["space"]["mean"] == space_stats("cifar10")["test"][0]
    assert report["published"] and report["study"]["evaluation"] == "table"
    # the runs' configs name no optimizer: each method's own default decides its rows (darts: first order)
    matched = {(p["method"], p["set"], p["row"]) for p in report["published"]["methods"]}
    assert matched == {("darts", "nb201_iclr20", "DARTS-V1"), ("gdas@abc123", "nb201_iclr20", "GDAS"),
                       ("gdas@abc123", "nb201_later", "GDAS"), ("gdas@def456", "nb201_iclr20", "GDAS"),
                       ("gdas@def456", "nb201_later", "GDAS")}
    bdir = Path(summary["benchmark_dir"])
    md = (bdir / "report.md").read_text()
    assert "| measured acc ± std | published acc |" in md and "54.30 ± 0.00 (nb201_iclr20 DARTS-V1, 2nd)" in md
    assert bdir.parent == out / "benchmark" / "nb201-cifar10"
    for name in ("report.md", "report.csv", "accuracy_per_epoch.png", "final_accuracy.png", "skip_count.png",
                 "hessian_eigenvalue.png", "alphas_darts.png"):
        assert (bdir / name).is_file(), name
    assert (bdir / "accuracy_per_epoch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # deterministic: the same runs give the same directory and the same report, byte for byte
    before = Path(summary["report"]).read_bytes()
    assert benchmark(cfg)["report"] == summary["report"] and Path(summary["report"]).read_bytes() == before


def test_aggregate_reads_the_multirun_manifest(tmp_path):
    table = load_nb201_table()
    sweep = tmp_path / "multirun"
    ok = _fake_search_run(tmp_path, "darts", 0, table.arch_strings()[7])
    bad = tmp_path / "search" / "nb201-cifar10" / "darts" / "abc123" / "seed=1"
    entries = [{"command": "search", "status": "failed", "run_dir": str(ok), "method": "darts", "seed": 0},
               {"command": "search", "status": "ok", "run_dir": str(ok), "method": "darts", "seed": 0},  # later wins
               {"command": "search", "status": "failed", "run_dir": str(bad), "method": "darts", "seed": 1,
                "space": "nb201", "dataset": "cifar10", "error": "RuntimeError: CUDA out of memory"},
               {"command": "evaluate", "status": "ok"}]
    sweep.mkdir()
    (sweep / "runs.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    runs = discover_runs(sweep)
    assert [(r.label, r.seed, r.status) for r in runs] == [("darts", 0, "ok"), ("darts", 1, "failed")]
    assert runs[1].error == "RuntimeError: CUDA out of memory"
    summary = benchmark(compose_cfg("benchmark", ["mode=aggregate", f"sweep={sweep}", "baseline.samples=1",
                                                  "plots=false", f"out_root={tmp_path / 'out'}"]))
    report = json.loads(Path(summary["report"]).read_text())
    assert report["cells"][0]["ok"] == 1 and report["cells"][0]["runs"] == 2
    assert report["failures"][0]["error"] == "RuntimeError: CUDA out of memory"


# ------------------------------------------------------------------------------------- end to end
def _benchmark_args(out: Path, methods: list[str], *extra: str) -> list[str]:
    return [f"methods=[{','.join(methods)}]", *TINY, f"out_root={out}", "progress=false", *extra]


@pytest.mark.slow
def test_study_end_to_end_survives_sigkill_and_reuses_finished_runs(tmp_path):
    methods = ["darts", SECOND] if SECOND else ["darts", "darts_2nd"]
    extra = [] if SECOND else ["+variants.darts_2nd=['method=darts','optimizer=bilevel_2nd']"]
    args = _benchmark_args(tmp_path, methods, "seeds=[0,1]", "baseline.samples=2", *extra)
    proc = subprocess.Popen([sys.executable, "-m", "nascli", "benchmark", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, env=dict(os.environ))
    first = None
    deadline = time.time() + 300
    while time.time() < deadline and first is None:  # kill once one search finished and the next job started
        done = list((tmp_path / "search").rglob("result.json"))
        logs = list(tmp_path.glob("benchmark/*/*/jobs/*.log"))
        if done and len(logs) >= 2:
            first = done[0].parent
        time.sleep(0.1)
    assert first is not None, "the study never finished its first search"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    mtime = (first / "checkpoint.pt").stat().st_mtime_ns
    assert not list(tmp_path.glob("benchmark/*/*/report.json")), "killed too late: the study had finished"

    resumed = nas("benchmark", *args, timeout=900)
    summary = result_line(resumed)
    assert summary["status"] == "ok" and summary["runs"] == 4 and summary["runs_ok"] == 4
    assert summary["jobs"]["reused"] >= 1 and summary["jobs"]["total"] == 4 + 4 + 2
    assert (first / "checkpoint.pt").stat().st_mtime_ns == mtime  # the finished search was not touched
    report_path = Path(summary["report"])
    report = json.loads(report_path.read_text())
    # every row is what its own run directories say
    for row in report["runs"]:
        search_res = json.loads((Path(row["search_run"]) / "result.json").read_text())
        eval_res = json.loads((Path(row["eval_run"]) / "result.json").read_text())
        assert row["status"] == "ok" and row["arch"] == search_res["arch"] == eval_res["arch"]
        assert row["acc"] == eval_res["test_acc"] and row["search_time_s"] == search_res["search_time_s"]
    for cell in report["cells"]:
        assert cell["ok"] == cell["runs"] == 2
    bytes_before = report_path.read_bytes()

    again = result_line(nas("benchmark", *args, timeout=300))
    assert again["jobs"]["ran"] == 0 and again["jobs"]["reused"] == again["jobs"]["total"]
    assert report_path.read_bytes() == bytes_before

    # the same runs, aggregated by scanning the search folder, give the same cells
    agg = result_line(nas("benchmark", "mode=aggregate", f"sweep={tmp_path / 'search'}", "baseline.samples=2",
                          "space.network.C=4", "space.network.N=1", "protocol.epochs=1",
                          "protocol.max_steps_per_epoch=2", "protocol.batch_size=16", "num_threads=1",
                          f"out_root={tmp_path}", "progress=false", timeout=600))
    agg_report = json.loads(Path(agg["report"]).read_text())
    if SECOND:  # (a variant's label is its name in a study, its method name when aggregated)
        assert agg_report["cells"] == report["cells"]
    assert report_digest({"b": agg_report["baseline"]}) == report_digest({"b": report["baseline"]})


@pytest.mark.slow
def test_failing_search_is_recorded_and_the_study_completes(tmp_path):
    args = _benchmark_args(tmp_path, ["darts", "broken"], "seeds=[0]", "baseline.samples=1",
                           "+variants.broken=['method=darts','optimizer.lr=-1.0']", "selections=[magnitude,ostr]",
                           "+derive_overrides.ostr=['selection.num_batches=1']")
    proc = nas("benchmark", *args, timeout=900)
    summary = result_line(proc)
    assert summary["status"] == "partial" and summary["runs"] == 4 and summary["runs_ok"] == 2
    assert summary["jobs"]["failed"] == 1 and summary["jobs"]["skipped"] == 3  # broken: derive + 2 evaluates
    report = json.loads(Path(summary["report"]).read_text())
    cells = {(c["method"], c["selection"]): c for c in report["cells"]}
    assert cells[("darts", "ostr")]["ok"] == 1 and cells[("darts", "magnitude")]["ok"] == 1
    assert cells[("broken", "magnitude")]["statuses"] == {"failed": 1}
    failure = report["failures"][0]
    assert failure["stage"] == "search" and "Invalid learning rate" in failure["error"]
    assert (Path(summary["benchmark_dir"]) / failure["log"]).is_file()
    ostr = next(r for r in report["runs"] if r["method"] == "darts" and r["selection"] == "ostr")
    assert json.loads((Path(ostr["search_run"]) / "arch_ostr.json").read_text())["arch"] == ostr["arch"]
    assert "did not succeed" in proc.stderr and "broken" in (Path(summary["benchmark_dir"]) / "report.md").read_text()


@pytest.mark.slow
def test_multirun_callback_manifest_feeds_aggregate(tmp_path):
    common = ["space.supernet.C=4", "space.supernet.N=1", "dataset.num_train=256", "dataset.num_test=64",
              "dataset.image_size=8", "search.batch_size=16", "search.epochs=1", "num_threads=1"]
    nas("search", "-m", "seed=0,1", *common, f"out_root={tmp_path}", timeout=600)  # the manifest callback is on by default
    lines = [json.loads(x) for x in (tmp_path / "multirun" / "runs.jsonl").read_text().splitlines()]
    assert [(x["seed"], x["status"]) for x in lines] == [(0, "ok"), (1, "ok")]
    runs = discover_runs(tmp_path / "multirun")
    assert [str(r.run_dir) for r in runs] == [x["run_dir"] for x in lines]
    summary = result_line(nas("benchmark", "mode=aggregate", f"sweep={tmp_path / 'multirun'}", "baseline.samples=0",
                              "space.network.C=4", "space.network.N=1", "protocol.epochs=1",
                              "protocol.max_steps_per_epoch=2", "protocol.batch_size=16", "num_threads=1",
                              f"out_root={tmp_path}", "progress=false", timeout=600))
    assert summary["runs"] == summary["runs_ok"] == 2 and summary["jobs"]["ran"] == 2
