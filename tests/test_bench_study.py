"""`nas benchmark` study mode on tiny shapes: the plan, the job graph, and reuse of finished searches,
derivations and evaluations (across studies too). The one end-to-end test runs real `nas` jobs (~30 s)."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers import compose_cfg
from nascli.bench.derivations import finished_derivation
from nascli.bench.graph import build_jobs
from nascli.bench.jobs import Launch, Outcome
from nascli.bench.plan import make_plan
from nascli.commands.benchmark import benchmark
from nascli.commands.run import RunDir
from nascli.errors import NasError
from nascli.spaces import get_space

TINY = ["space.supernet.C=4", "space.supernet.N=1", "space.network.C=4", "space.network.N=1",
        "dataset.num_train=256", "dataset.num_test=64", "dataset.image_size=8", "num_threads=1", "device=cpu",
        "search_overrides=['search.batch_size=16','search.epochs=1']",
        "protocol.epochs=1", "protocol.max_steps_per_epoch=2", "protocol.batch_size=16"]
GROUP_ARGS = ["space.supernet.C=4", "space.supernet.N=1", "space.network.C=4", "space.network.N=1",
              "dataset.image_size=8", "dataset.num_train=256", "dataset.num_test=64"]
OSTR_FAST = "+derive_overrides.ostr=['selection.num_batches=1']"


def selection_cfg(*overrides: str) -> dict:
    """The selection config `nas derive <overrides>` composes (name + options), as plain data."""
    return dict(OmegaConf.to_container(compose_cfg("derive", list(overrides)).selection, resolve=True))


# ------------------------------------------------------------------------------------- plan and graph
def test_plan_composes_each_search_as_nas_search_does_and_the_graph_orders_jobs_seed_major(tmp_path):
    cfg = compose_cfg("benchmark", [*TINY, "methods=[darts,fast]", "seeds=[0,1]", "selections=[magnitude,ostr]",
                                    "+variants.fast=['method=darts','optimizer.lr=0.01']", OSTR_FAST,
                                    "baseline.samples=1", f"out_root={tmp_path}"])
    plan = make_plan(cfg)
    assert [(r.label, r.method, r.seed) for r in plan.runs] == [("darts", "darts", 0), ("darts", "darts", 1),
                                                                ("fast", "darts", 0), ("fast", "darts", 1)]
    ostr = selection_cfg("selection=ostr", "selection.num_batches=1")
    assert ostr["name"] == "ostr" and ostr["num_batches"] == 1
    assert plan.selection_cfgs == {"magnitude": selection_cfg("selection=magnitude"), "ostr": ostr}
    argv = plan.search_argv[("fast", 1)]
    assert argv == ["search", "method=darts", "space=nb201", "dataset=synthetic", *GROUP_ARGS, "optimizer.lr=0.01",
                    "search.batch_size=16", "search.epochs=1", "seed=1", f"out_root={tmp_path}", "device=cpu",
                    "num_threads=1", "logger=auto"]  # the study's logger: each job logs into its own run dir
    for run in plan.runs:  # the directory `nas search <argv>` will use, computed independently
        scfg = compose_cfg("search", plan.search_argv[(run.label, run.seed)][1:])
        assert run.run_dir == RunDir.for_config(scfg, "search", "nb201-synthetic", "darts").path
        assert run.run_dir.name == f"seed={run.seed}" and run.epochs == 1
        assert run.selection == OmegaConf.to_container(scfg.selection)
    assert plan.runs[0].run_dir.parent == plan.runs[1].run_dir.parent != plan.runs[2].run_dir.parent

    graph = build_jobs(cfg, plan, [(tmp_path / "sample_00.json", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")],
                       train=True)
    per_run = ["search-{}-seed{}", "evaluate-{}-seed{}-magnitude", "derive-{}-seed{}-ostr", "evaluate-{}-seed{}-ostr"]
    expected = [k.format(label, seed) for seed in (0, 1) for label in ("darts", "fast") for k in per_run]
    assert [j.key for j in graph.jobs] == [*expected, "evaluate-random-00"]
    jobs = {j.key: j for j in graph.jobs}
    assert jobs["evaluate-fast-seed1-magnitude"].deps == ("search-fast-seed1",)   # the search's own arch.json
    assert jobs["derive-fast-seed1-ostr"].deps == ("search-fast-seed1",)
    assert jobs["evaluate-fast-seed1-ostr"].deps == ("derive-fast-seed1-ostr",)
    assert graph.arch_job[("fast", 1, "magnitude")] is None
    fast1 = plan.runs[3].run_dir
    assert jobs["derive-fast-seed1-ostr"].prepare({}).argv == ["derive", f"run={fast1}", "selection=ostr",
                                                              "selection.num_batches=1", "device=cpu", "num_threads=1"]
    assert graph.derivations["derive-fast-seed1-ostr"].selection == ostr
    assert graph.search_dirs["search-fast-seed1"] == fast1
    derived = {"derive-fast-seed1-ostr": Outcome("ok", result={"arch_path": "/runs/x/seed=1/arch_ostr.json",
                                                               "arch": "ARCH"})}
    launch = jobs["evaluate-fast-seed1-ostr"].prepare(derived)
    protocol = ["protocol.epochs=1", "protocol.batch_size=16", "protocol.max_steps_per_epoch=2"]
    assert launch == Launch(["evaluate", "arch='/runs/x/seed=1/arch_ostr.json'", "space=nb201", "dataset=synthetic",
                             "protocol=quick", *GROUP_ARGS, *protocol, "seed=1", f"out_root={tmp_path}", "device=cpu",
                             "num_threads=1", "logger=auto"], lock="ARCH|1")
    assert jobs["evaluate-random-00"].prepare({}).lock == "|none~0|+|none~0|none~1|+|none~0|none~1|none~2||0"
    assert build_jobs(cfg, plan, [], train=False).eval_job == {}  # table lookup: no evaluate job


def test_derive_overrides_for_an_unused_selection_fail_before_anything_runs(tmp_path):
    cfg = compose_cfg("benchmark", [*TINY, "selections=[magnitude]", OSTR_FAST, f"out_root={tmp_path}"])
    with pytest.raises(NasError, match=r"derive_overrides names selections that the study does not use: \['ostr'\]"):
        make_plan(cfg)
    with pytest.raises(NasError, match="unknown benchmark mode 'nope'; valid choices: study, aggregate"):
        make_plan(compose_cfg("benchmark", ["mode=nope"]))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------- derivation reuse rule
def _finished_search(root: Path, ostr: dict, epochs: int = 3) -> tuple[Path, str]:
    """A finished search run directory holding an ostr derivation (options of ``ostr``) of its final supernet."""
    run = root / "search" / "nb201-synthetic" / "darts" / "abc" / "seed=0"
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(b"weights")
    (run / "result.json").write_text(json.dumps({"status": "ok", "run_dir": str(run), "epochs": epochs}))
    arch = get_space("nb201").random_arch(random.Random(1))
    data = {**arch.to_json(), "provenance": {"run": str(run), "selection": "ostr",
                                             "options": {k: v for k, v in ostr.items() if k != "name"},
                                             "epoch": epochs},
            "scores": {}, "benchmark": None}
    (run / "arch_ostr.json").write_text(json.dumps(data))
    return run, arch.to_string()


def _edit(path: Path, **provenance) -> None:
    data = json.loads(path.read_text())
    data["provenance"].update(provenance)
    path.write_text(json.dumps(data))


def test_a_finished_derivation_stands_for_the_derive_job_only_when_it_matches(tmp_path):
    ostr = selection_cfg("selection=ostr")
    run, arch = _finished_search(tmp_path, ostr)
    space = get_space("nb201")
    found = finished_derivation(run, ostr, "nb201")
    assert found == {"status": "ok", "command": "derive", "run_dir": str(run), "selection": "ostr",
                     "arch_path": str(run / "arch_ostr.json"), "arch": arch, "space": "nb201",
                     "skip_count": space.skip_count(space.parse_arch(arch)), "benchmark": None}
    assert finished_derivation(run, {**ostr, "num_batches": ostr["num_batches"] + 1}, "nb201") is None  # options
    assert finished_derivation(run, {"name": "perturbation"}, "nb201") is None            # no such file

    _edit(run / "arch_ostr.json", epoch=2)   # derived from an earlier checkpoint than the final one
    assert finished_derivation(run, ostr, "nb201") is None
    _edit(run / "arch_ostr.json", epoch=3)
    assert finished_derivation(run, ostr, "nb201") == found
    stamp = (run / "arch_ostr.json").stat().st_mtime_ns
    os.utime(run / "checkpoint.pt", ns=(stamp + 10**9, stamp + 10**9))   # a checkpoint written after it
    assert finished_derivation(run, ostr, "nb201") is None
    (run / "checkpoint.pt").unlink()                                    # none left: the file is all there is
    assert finished_derivation(run, ostr, "nb201") == found
    (run / "result.json").write_text(json.dumps({"status": "diverged", "epochs": 3}))  # search not finished
    assert finished_derivation(run, ostr, "nb201") is None


# ------------------------------------------------------------------------------------- end to end (tiny)
def _jobs_ran(bdir: Path) -> set[str]:
    """Jobs that started a process in this study (each writes its log; reused jobs write none)."""
    return {p.stem for p in (bdir / "jobs").glob("*.log")}


def test_tiny_study_reuses_finished_searches_and_derivations_across_studies(tmp_path):
    args = [*TINY, "methods=[darts]", "seeds=[0]", "selections=[ostr]", OSTR_FAST, "baseline.samples=0",
            "progress=false", "plots=false", "jobs=2", f"out_root={tmp_path}"]
    first = benchmark(compose_cfg("benchmark", [*args, "baseline.seed=0"]))
    assert first["status"] == "ok" and (first["runs"], first["runs_ok"]) == (1, 1)
    assert first["jobs"] == {"total": 3, "ran": 3, "reused": 0, "failed": 0, "skipped": 0}
    report = json.loads(Path(first["report"]).read_text())
    row = report["runs"][0]
    derived = Path(row["search_run"]) / "arch_ostr.json"
    before = (derived.read_bytes(), derived.stat().st_mtime_ns)
    assert json.loads(derived.read_text())["arch"] == row["arch"] and row["status"] == "ok"
    assert row["acc"] == json.loads((Path(row["eval_run"]) / "result.json").read_text())["test_acc"]

    # another study (a new hash: another baseline seed) over the same search: the search and its ostr
    # derivation are reused without a process; only the evaluation's `nas evaluate` starts (and finds its run)
    second = benchmark(compose_cfg("benchmark", [*args, "baseline.seed=1"]))
    bdir = Path(second["benchmark_dir"])
    assert bdir != Path(first["benchmark_dir"]) and second["status"] == "ok"
    assert _jobs_ran(bdir) == {"evaluate-darts-seed0-ostr"}  # no search-*, no derive-* process
    assert second["jobs"] == {"total": 3, "ran": 1, "reused": 2, "failed": 0, "skipped": 0}
    assert (derived.read_bytes(), derived.stat().st_mtime_ns) == before
    again = json.loads(Path(second["report"]).read_text())
    assert again["runs"] == report["runs"] and again["study"]["baseline"] == {"samples": 0, "seed": 1}

    # the same study again: every job is reused from its record, and the report is byte-identical
    report_bytes = Path(second["report"]).read_bytes()
    third = benchmark(compose_cfg("benchmark", [*args, "baseline.seed=1", "jobs=1"]))
    assert third["benchmark_dir"] == str(bdir)
    assert third["jobs"] == {"total": 3, "ran": 0, "reused": 3, "failed": 0, "skipped": 0}
    assert Path(third["report"]).read_bytes() == report_bytes
