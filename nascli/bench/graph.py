"""A study's job graph: ``nas search`` / ``derive`` / ``evaluate`` jobs, their dependencies, and where each
report row's arch and accuracy come from.

Per search run, seed-major in plan order (every method's seed 0 before any seed 1):

* ``search-<label>-seed<N>`` for a planned search (study mode); a search found on disk (aggregation)
  takes part only when it finished;
* per selection: the search's own ``arch.json`` when the selection config equals the search's, else
  ``derive-<label>-seed<N>-<selection>`` after the search;
* per selection, when archs are trained: ``evaluate-<label>-seed<N>-<selection>`` after the arch's job,
  locked on (arch, seed) so one arch is never trained twice at once with one seed;

then, when archs are trained, ``evaluate-random-<k>`` per random baseline sample (training seed ``k``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nascli.bench.args import derive_args, evaluate_args
from nascli.bench.jobs import Job, Launch, Outcome
from nascli.bench.plan import Plan
from nascli.bench.study import SearchRun, read_json
from nascli.overrides import path_value

RunKey = tuple[str, int]               # (method label, seed)
RowKey = tuple[str, int, str]          # (method label, seed, selection)


def job_key(*parts: Any) -> str:
    """A file-name-safe job key: the parts joined by ``-``, other characters than ``[A-Za-z0-9_.@]`` as ``_``."""
    return "-".join(re.sub(r"[^A-Za-z0-9_.@]+", "_", str(p)) for p in parts)


@dataclass(frozen=True)
class Derivation:
    """What a derive job derives: a search run with one composed selection config."""

    run_dir: Path
    selection: dict[str, Any]


@dataclass
class Graph:
    """Jobs and where each row's arch / accuracy comes from."""

    jobs: list[Job] = field(default_factory=list)
    search_job: dict[RunKey, str] = field(default_factory=dict)
    arch_job: dict[RowKey, str | None] = field(default_factory=dict)  # None: the search's arch.json
    eval_job: dict[RowKey, str] = field(default_factory=dict)
    baseline_job: dict[int, str] = field(default_factory=dict)
    search_dirs: dict[str, Path] = field(default_factory=dict)         # search job key -> its run directory
    derivations: dict[str, Derivation] = field(default_factory=dict)  # derive job key -> what it derives


def _search_job(graph: Graph, plan: Plan, run: SearchRun) -> str:
    key = job_key("search", run.label, f"seed{run.seed}")
    argv = plan.search_argv[(run.label, run.seed)]
    graph.jobs.append(Job(key, "search", f"search {run.label} seed={run.seed}",
                          prepare=lambda _o, a=argv, d=run.run_dir: Launch(a, lock=str(d)),
                          watch=run.run_dir / "metrics.jsonl", epochs=run.epochs))
    graph.search_job[(run.label, run.seed)] = key
    graph.search_dirs[key] = run.run_dir
    return key


def _arch_job(cfg: DictConfig, graph: Graph, plan: Plan, run: SearchRun, sel: str,
              search_key: str | None) -> str | None:
    """The job whose result names the arch of (run, sel): the search itself, or a derive job."""
    if plan.selection_cfgs[sel] == run.selection:
        graph.arch_job[(run.label, run.seed, sel)] = None
        return search_key
    key = job_key("derive", run.label, f"seed{run.seed}", sel)
    argv = derive_args(cfg, run.run_dir, sel)
    graph.jobs.append(Job(key, "derive", f"derive {run.label} seed={run.seed} {sel}",
                          prepare=lambda _o, a=argv: Launch(a), deps=(search_key,) if search_key else ()))
    graph.arch_job[(run.label, run.seed, sel)] = key
    graph.derivations[key] = Derivation(run.run_dir, plan.selection_cfgs[sel])
    return key


def _evaluate_job(cfg: DictConfig, graph: Graph, plan: Plan, run: SearchRun, sel: str, arch_key: str | None) -> None:
    key = job_key("evaluate", run.label, f"seed{run.seed}", sel)

    def prepare(outcomes: dict[str, Outcome]) -> Launch:
        result = outcomes[arch_key].result if arch_key else read_json(run.run_dir / "result.json")
        return Launch(evaluate_args(cfg, plan, path_value(result["arch_path"]), run.seed),
                      lock=f"{result['arch']}|{run.seed}")

    graph.jobs.append(Job(key, "evaluate", f"evaluate {run.label} seed={run.seed} {sel}", prepare=prepare,
                          deps=(arch_key,) if arch_key else ()))
    graph.eval_job[(run.label, run.seed, sel)] = key


def _baseline_job(cfg: DictConfig, graph: Graph, plan: Plan, k: int, path: Path, arch: str) -> None:
    key = job_key("evaluate", "random", f"{k:02d}")
    argv = evaluate_args(cfg, plan, path_value(path), k)
    graph.jobs.append(Job(key, "evaluate", f"evaluate random sample {k}",
                          prepare=lambda _o, a=argv, lock=f"{arch}|{k}": Launch(a, lock=lock)))
    graph.baseline_job[k] = key


def build_jobs(cfg: DictConfig, plan: Plan, baseline: list[tuple[Path, str]], train: bool) -> Graph:
    """The study's jobs (module docstring); ``baseline``: (arch file, arch string) per random sample;
    ``train``: whether archs are evaluated by ``nas evaluate`` (else by table lookup, no job)."""
    graph = Graph()
    order = sorted(plan.runs, key=lambda r: (plan.seeds.index(r.seed) if r.seed in plan.seeds else 0,
                                             plan.labels.index(r.label)))
    for run in order:
        if (run.label, run.seed) in plan.search_argv:   # a study's planned search
            search_key = _search_job(graph, plan, run)
        elif run.status == "ok":                        # a finished search found on disk
            search_key = None
        else:
            continue
        for sel in plan.selections:
            arch_key = _arch_job(cfg, graph, plan, run, sel, search_key)
            if train:
                _evaluate_job(cfg, graph, plan, run, sel, arch_key)
    if train:
        for k, (path, arch) in enumerate(baseline):
            _baseline_job(cfg, graph, plan, k, path, arch)
    return graph
