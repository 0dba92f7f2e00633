"""``nas benchmark``: a methods x seeds study with a random baseline, a report and plots.

    nas benchmark methods=[darts,darts_minus] seeds=[0,1,2,3] space=nb201 dataset=cifar10 selections=[magnitude,ostr]
    nas benchmark mode=aggregate sweep=outputs/multirun     # the same report over a `nas search -m` sweep

Orchestration only, each step a module of :mod:`nascli.bench`:

1. :mod:`~nascli.bench.plan`: validate methods / selections / variants against ``conf/`` and compose every
   job's config through Hydra's compose API before anything runs (bad names and overrides fail in one line);
2. :mod:`~nascli.bench.graph`: search every (method, seed), derive every selection that differs from the
   search's own, evaluate every derived arch by table lookup where the space has a table for the dataset
   (NB201 on cifar10/cifar100/imagenet16_120), else by training with ``protocol``; the random baseline
   (``baseline.samples`` archs of ``space.random_arch(random.Random(baseline.seed))``) is evaluated the same way;
3. :mod:`~nascli.bench.jobs` runs the jobs as ``nas`` subprocesses; :mod:`~nascli.bench.ledger` decides which
   need no process (finished searches, finished derivations, recorded evaluations) and records outcomes;
4. :mod:`~nascli.bench.rows`, :mod:`~nascli.bench.report` and :mod:`~nascli.bench.study_plots`: report.json /
   report.md / report.csv (each method row with its own published numbers beside the measured ones, matched
   by :mod:`~nascli.bench.identity` and :mod:`~nascli.bench.published`) and PNG plots in
   ``<out_root>/benchmark/<space>-<dataset>/<hash>/`` (:mod:`~nascli.bench.study_dir`), the table on stderr,
   one JSON line on stdout (:mod:`~nascli.bench.summary`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.markup import escape

from nascli.bench import published
from nascli.bench.baseline import write_baseline
from nascli.bench.graph import build_jobs
from nascli.bench.identity import identity_of
from nascli.bench.jobs import run_jobs
from nascli.bench.ledger import Ledger
from nascli.bench.plan import Plan, make_plan
from nascli.bench.progress import StudyProgress
from nascli.bench.report import build_report, render_csv, render_markdown, rich_table
from nascli.bench.rows import build_baseline_rows, build_rows, follow_actual_run_dirs
from nascli.bench.slots import gpu_slots
from nascli.bench.study import sample_baseline
from nascli.bench.study_dir import study_dir
from nascli.bench.study_plots import make_plots
from nascli.bench.summary import accuracy_source, describe_study, result_line
from nascli.bench.truth import table_for
from nascli.commands.common import console, emit_result, set_threads
from nascli.rundir import atomic_write_bytes, atomic_write_json
from nascli.spaces import get_space


def _write_report(bdir: Path, report: dict[str, Any]) -> None:
    atomic_write_json(bdir / "report.json", report)
    atomic_write_bytes(bdir / "report.md", render_markdown(report).encode())
    atomic_write_bytes(bdir / "report.csv", render_csv(report).encode())


def _plots(bdir: Path, plan: Plan, report: dict[str, Any], rows: list[dict]) -> list[tuple[str, str]]:
    """Write the plots beside the report; (file, caption) of each (none without matplotlib)."""
    try:
        pictures = make_plots(plan, report, rows)
    except ImportError as exc:
        console.print(f"[yellow]note:[/] no plots ({exc})")
        return []
    for name, _, png in pictures:
        atomic_write_bytes(bdir / name, png)
    return [(name, caption) for name, caption, _ in pictures]


def _show(report: dict[str, Any], bdir: Path) -> None:
    from rich.console import Console

    wide = console if console.is_terminal else Console(stderr=True, highlight=False, width=200)
    wide.print(rich_table(report))
    if report["failures"]:
        console.print(f"[yellow]{len(report['failures'])} run(s) did not succeed[/]; see {bdir / 'report.md'}")


def benchmark(cfg: DictConfig) -> dict[str, Any]:
    """Run the study or aggregation of ``cfg`` (module docstring) and return its result line."""
    set_threads(cfg)
    plan = make_plan(cfg)
    study_id, bdir = study_dir(cfg, plan)
    table = table_for(plan.space, plan.dataset) if str(cfg.evaluation) == "auto" else None
    archs = sample_baseline(get_space(plan.space), int(cfg.baseline.samples), int(cfg.baseline.seed))
    baseline_files = write_baseline(bdir, archs, int(cfg.baseline.seed))
    graph = build_jobs(cfg, plan, [(f, a.to_string()) for f, a in zip(baseline_files, archs)], train=table is None)
    ledger = Ledger(bdir / "jobs", graph.search_dirs, graph.derivations, plan.space)
    console.print(f"[bold]benchmark[/] {bdir} ({len(plan.runs)} search runs, {len(graph.jobs)} jobs, "
                  f"{'table lookup' if table else 'training with protocol ' + str(cfg.protocol.name)})")
    title = f"benchmark {plan.space}-{plan.dataset} {study_id}"
    with StudyProgress(console, title, graph.jobs, int(cfg.jobs), enabled=bool(cfg.get("progress", True))) as progress:
        outcomes = run_jobs(graph.jobs, parallel=int(cfg.jobs), log_dir=bdir / "jobs", reuse=ledger.reuse,
                            on_done=ledger.record, observer=progress, slot_env=gpu_slots(cfg))
    for note in follow_actual_run_dirs(plan, graph, outcomes):
        console.print(f"[yellow]note:[/] {escape(note)}")
    rows = build_rows(plan, graph, outcomes, table)
    base_rows = build_baseline_rows(plan, archs, graph, outcomes, table)
    study = describe_study(cfg, plan, study_id, table)
    identities = {run.label: identity_of(run.method, run.config) for run in plan.runs}  # one config per label
    kwargs = dict(labels=plan.labels, selections=plan.selections, methods={**plan.methods, **identities},
                  with_published=published.covers(plan.dataset, plan.space),
                  accuracy_source=accuracy_source(cfg, plan, table), metric=plan.metric_title,
                  higher_is_better=plan.higher_is_better)
    stats = table.space_stats(plan.dataset) if table else None
    report = build_report(study, rows, base_rows, stats, **kwargs)
    if cfg.get("plots", True):
        report = build_report(study, rows, base_rows, stats, plots=_plots(bdir, plan, report, rows), **kwargs)
    _write_report(bdir, report)
    _show(report, bdir)
    summary = result_line(plan, bdir, report, outcomes)
    emit_result(summary)
    return summary
