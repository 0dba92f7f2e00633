"""Report rows: one per (search run, selection) and one per random sample, from the jobs' outcomes.

A row's ``status`` is the first stage that did not succeed (``stage`` = search | derive | evaluate, with
its error and log), else ``ok``. Its arch comes from the search's own result or from the derive job's;
its accuracy from the table (``test``/``valid``) when there is one, else from the evaluate job's result.
Search figures (time, memory, final alpha entropy, Hessian eigenvalue) are read from the run directory.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nascli.bench.graph import Graph
from nascli.bench.jobs import Outcome
from nascli.bench.plan import Plan
from nascli.bench.study import SearchRun, read_json, search_figures
from nascli.bench.truth import GroundTruth


def table_accuracy(table: GroundTruth, arch: str, dataset: str) -> dict[str, Any]:
    """Row fields of an arch looked up in the table (failed when the table lacks it)."""
    found = table.lookup(arch, dataset)
    if found is None:
        return {"status": "failed", "error": f"arch {arch} is not in the {dataset} table"}
    return {"status": "ok", "acc": found["test"], "valid_acc": found["valid"]}


def trained_accuracy(out: Outcome | None, key: str | None, metric: str = "test_acc") -> dict[str, Any]:
    """Row fields of an arch trained by evaluate job ``key``: its primary test metric (the task's ``metric``
    result key: ``test_acc``, ``psnr``) as ``acc``, and its run, or its failure."""
    if out is None:
        return {"status": "failed", "error": "not run"}
    if out.ok:
        return {"status": "ok", "acc": out.result.get(metric), "eval_run": out.result.get("run_dir")}
    return {"status": out.status, "error": out.error, "log": f"jobs/{key}.log" if key else None}


def follow_actual_run_dirs(plan: Plan, graph: Graph, outcomes: dict[str, Outcome]) -> list[str]:
    """Read each search from where it says it ran (normally the directory computed before it ran);
    returns a note for each run that moved."""
    notes = []
    for run in plan.runs:
        out = outcomes.get(graph.search_job.get((run.label, run.seed), ""))
        actual = out.result.get("run_dir") if out and out.ok and out.result else None
        if actual and Path(actual) != run.run_dir:
            notes.append(f"{run.label} seed={run.seed} ran in {actual}, not the expected {run.run_dir}")
            run.run_dir = Path(actual)
    return notes


def _search_state(run: SearchRun, graph: Graph,
                  outcomes: dict[str, Outcome]) -> tuple[str | None, str, str | None, dict | None]:
    """(search job key, status, error, result) of a run: from its job, or as found (aggregation)."""
    skey = graph.search_job.get((run.label, run.seed))
    if skey:
        sout = outcomes.get(skey)
        return (skey, sout.status, sout.error, sout.result) if sout else (skey, "failed", "not run", None)
    return None, run.status or "failed", run.error, read_json(run.run_dir / "result.json")


def build_rows(plan: Plan, graph: Graph, outcomes: dict[str, Outcome], table: GroundTruth | None) -> list[dict]:
    """The rows of the methods' runs, ordered by (method label as listed, seed), selections as listed."""
    rows = []
    for run in sorted(plan.runs, key=lambda r: (plan.labels.index(r.label), r.seed)):
        skey, s_status, s_error, s_result = _search_state(run, graph, outcomes)
        figures = search_figures(run.run_dir, s_result) if s_status == "ok" else {}
        for sel in plan.selections:
            row: dict[str, Any] = {"method": run.label, "method_name": run.method, "seed": run.seed, "selection": sel,
                                   "status": "ok", "stage": None, "error": None, "log": None,
                                   "search_status": s_status, "search_run": str(run.run_dir), "arch": None,
                                   "acc": None, "valid_acc": None, "skip_count": None, "eval_run": None,
                                   "search_time_s": None, "peak_memory_mb": None, "alpha_entropy": None,
                                   "hessian_eigenvalue": None}
            row.update(figures)
            rows.append(row)
            if s_status != "ok":
                row.update(status=s_status, stage="search", error=s_error,
                           log=f"jobs/{skey}.log" if skey and s_status != "skipped" else None)
                continue
            akey = graph.arch_job.get((run.label, run.seed, sel))
            if akey is None:
                arch_result = s_result
            else:
                aout = outcomes.get(akey)
                if aout is None or not aout.ok:
                    row.update(status=aout.status if aout else "failed", stage="derive",
                               error=aout.error if aout else "not run", log=f"jobs/{akey}.log")
                    continue
                arch_result = aout.result
            row.update(arch=arch_result["arch"], skip_count=arch_result.get("skip_count"))
            ekey = graph.eval_job.get((run.label, run.seed, sel))
            found = (table_accuracy(table, row["arch"], plan.dataset) if table
                     else trained_accuracy(outcomes.get(ekey), ekey, plan.metric))
            if found["status"] != "ok":
                found["stage"] = "evaluate"
            row.update(found)
    return rows


def build_baseline_rows(plan: Plan, archs: list, graph: Graph, outcomes: dict[str, Outcome],
                        table: GroundTruth | None) -> list[dict]:
    """The rows of the random samples, in sample order (training seed = sample index)."""
    rows = []
    for k, arch in enumerate(archs):
        text = arch.to_string()
        row = {"sample": k, "seed": k, "arch": text, "status": "ok", "acc": None, "valid_acc": None,
               "error": None, "log": None, "eval_run": None}
        key = graph.baseline_job.get(k)
        row.update(table_accuracy(table, text, plan.dataset) if table
                   else trained_accuracy(outcomes.get(key), key, plan.metric))
        rows.append(row)
    return rows
