"""A study's plan: which search runs it covers and with which selections, checked before anything runs.

Two ways to get one (:data:`MODES`, the ``mode=`` of ``nas benchmark``):

* ``study``: every (method label, seed) of ``methods`` x ``seeds``, a label being a ``conf/method`` name, a
  ``variants`` entry (``[method=<name>, overrides...]``) or a paper preset (``paper/<name>``). Each search
  config is composed through Hydra's compose API exactly as ``nas search`` will compose it, and its run
  directory computed from it, so a bad name or override fails with one line before any job starts;
* ``aggregate``: the search runs found under ``sweep=`` (:func:`nascli.bench.study.discover_runs`).

Both compose every selection's ``nas derive`` config and one ``nas evaluate`` config up front.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nascli.bench.args import common_args, derive_overrides, evaluate_args, logger_args, out_root_arg
from nascli.bench.compose import Compose, choices, compose_or_fail, fresh_compose, group_overrides
from nascli.bench.presets import is_preset, preset_entry
from nascli.bench.study import SearchRun, discover_runs
from nascli.errors import NasError
from nascli.overrides import merge_overrides
from nascli.plain import plain
from nascli.rundir import RunDir
from nascli.tasks import DEFAULT_TASK, task_of

EVALUATIONS = ("auto", "train")            # auto: table lookup where possible, else training | train: always train


@dataclass
class Plan:
    """What a study runs: search runs (planned or found), how to derive them, and the jobs' common arguments."""

    mode: str
    space: str
    dataset: str
    labels: list[str]
    methods: dict[str, str]                  # label -> conf/method name
    seeds: list[int]
    selections: list[str]
    selection_cfgs: dict[str, dict]          # selection -> composed selection config (name + options)
    runs: list[SearchRun]
    search_argv: dict[tuple[str, int], list[str]] = field(default_factory=dict)   # study mode
    group_args: list[str] = field(default_factory=list)    # task/space/dataset overrides for evaluate jobs
    metric: str = "test_acc"                               # the task's primary result key (nascli/tasks)
    metric_title: str = "test accuracy (%)"
    higher_is_better: bool = True                          # the metric's direction (False: an error rate)
    hash_extra: dict[str, Any] = field(default_factory=dict)
    study_info: dict[str, Any] = field(default_factory=dict)



def validate_lists(cfg: DictConfig) -> None:
    """One-line errors for an empty, unknown or repeated selection, an unknown evaluation, ``jobs`` < 1 and
    ``baseline.samples`` < 0."""
    selections = [str(s) for s in cfg.selections or []]
    if not selections:
        raise NasError("selections is empty; give at least one, e.g. selections=[magnitude]")
    bad = [s for s in selections if s not in choices("selection")]
    if bad:
        raise NasError(f"unknown selection {bad[0]!r}; valid choices: {', '.join(choices('selection'))}")
    if len(set(selections)) != len(selections):
        raise NasError(f"selections lists a name twice: {selections}")
    if str(cfg.evaluation) not in EVALUATIONS:
        raise NasError(f"unknown evaluation {cfg.evaluation!r}; valid choices: {', '.join(EVALUATIONS)}")
    if int(cfg.jobs) < 1:
        raise NasError(f"jobs={cfg.jobs} (need >= 1 parallel subprocesses)")
    if int(cfg.baseline.samples) < 0:
        raise NasError(f"baseline.samples={cfg.baseline.samples} (need >= 0)")


def method_of(label: str, variants: dict[str, list[str]], space: str) -> tuple[str, list[str]]:
    """(conf/method name, extra search overrides) of a methods entry: a method, a named variant with
    exactly one ``method=<name>`` among its overrides, or a paper preset ``paper/<name>`` of ``space``
    (:mod:`nascli.bench.presets`: its method, searched with ``experiment=paper/<name>``)."""
    if label not in variants and is_preset(label):
        return preset_entry(label, space)
    if label in variants:
        items = [str(o) for o in variants[label]]
        named = [o.split("=", 1)[1] for o in items if o.startswith("method=")]
        if len(named) != 1:
            raise NasError(f"variant {label!r} must contain exactly one method=<name> override, got {items}")
        return named[0], [o for o in items if not o.startswith("method=")]
    return label, []


def _check_methods(labels: list[str], seeds: list[int], variants: dict[str, list[str]], space: str) -> None:
    if not labels or not seeds:
        raise NasError("a study needs methods=[...] and seeds=[...] (e.g. methods=[darts] seeds=[0,1])")
    if len(set(labels)) != len(labels) or len(set(seeds)) != len(seeds):
        raise NasError(f"methods and seeds must not repeat: methods={labels} seeds={seeds}")
    valid = choices("method")
    for label in labels:
        method, _ = method_of(label, variants, space)
        if method not in valid:
            where = f" (in variant {label!r})" if label in variants else ""
            raise NasError(f"unknown method {method!r}{where}; valid choices: {', '.join(valid + sorted(variants))}")


def _planned_run(compose: Compose, argv: list[str], label: str, method: str, seed: int) -> SearchRun:
    """The search run ``nas <argv>`` will make: its config composed and its run directory computed."""
    scfg = compose_or_fail(compose, "search", argv[1:], f"search {label} seed={seed}")
    try:  # resolves every interpolation, as the search itself will
        run = RunDir.for_config(scfg, "search", f"{scfg.space.name}-{scfg.dataset.name}", scfg.method.name)
    except Exception as exc:  # noqa: BLE001 - an unresolvable config is a bad study config
        raise NasError(f"search {label} seed={seed}: the composed config does not resolve "
                       f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    return SearchRun(label, method, seed, run.path, str(scfg.space.name), str(scfg.dataset.name),
                     int(scfg.search.epochs), dict(plain(scfg.selection)), plain(scfg))


def task_args(cfg: DictConfig) -> list[str]:
    """``task=<name>`` and its options for every job of a study; none for the default task (classification), so
    its jobs' command lines are what they were before the task axis."""
    node = dict(plain(cfg.get("task")) or {})
    name = str(node.pop("name", DEFAULT_TASK))
    if name == DEFAULT_TASK and not node:
        return []
    return [f"task={name}", *(f"task.{k}={'null' if v is None else v}" for k, v in node.items())]


def plan_study(cfg: DictConfig) -> Plan:
    """Validate the study config and compose every search (nothing runs here)."""
    validate_lists(cfg)
    labels = [str(m) for m in cfg.methods or []]
    seeds = [int(s) for s in cfg.seeds or []]
    variants = {str(k): list(v) for k, v in (plain(cfg.get("variants")) or {}).items()}
    space, dataset = str(cfg.space.name), str(cfg.dataset.name)
    _check_methods(labels, seeds, variants, space)
    task = task_of(cfg)
    group_args = task_args(cfg) + group_overrides("space", cfg.space) + group_overrides("dataset", cfg.dataset)
    search_overrides = [str(o) for o in cfg.search_overrides or []]
    plan = Plan("study", space, dataset, labels, {}, seeds, [str(s) for s in cfg.selections], {}, [],
                group_args=group_args, metric=task.metric, metric_title=task.metric_title,
                higher_is_better=task.higher_is_better)
    with fresh_compose() as compose:
        plan.selection_cfgs = compose_selections(compose, cfg)
        for label in labels:
            method, extra = method_of(label, variants, space)
            plan.methods[label] = method
            for seed in seeds:
                argv = ["search", f"method={method}", f"space={space}", f"dataset={dataset}", *group_args, *extra,
                        *search_overrides, f"seed={seed}", out_root_arg(cfg), *common_args(cfg), *logger_args(cfg)]
                plan.runs.append(_planned_run(compose, argv, label, method, seed))
                plan.search_argv[(label, seed)] = argv
        check_evaluate(compose, cfg, plan)
    plan.study_info = {"variants": variants, "search_overrides": search_overrides}
    return plan


def compose_selections(compose: Compose, cfg: DictConfig) -> dict[str, dict]:
    """Each selection's composed ``nas derive`` selection config (name + options, with its
    ``derive_overrides``); ``derive_overrides`` naming a selection the study does not use is an error."""
    extra = sorted(set(plain(cfg.get("derive_overrides")) or {}) - {str(s) for s in cfg.selections})
    if extra:
        raise NasError(f"derive_overrides names selections that the study does not use: {extra}")
    return {str(s): dict(plain(compose_or_fail(compose, "derive", [f"selection={s}", *derive_overrides(cfg, str(s))],
                                                f"derive selection={s}").selection))
            for s in cfg.selections}


def check_evaluate(compose: Compose, cfg: DictConfig, plan: Plan) -> None:
    """Compose one evaluate job up front, so a bad evaluate override fails before anything runs."""
    compose_or_fail(compose, "evaluate", evaluate_args(cfg, plan, None, 0)[1:], "evaluate")


def plan_aggregate(cfg: DictConfig) -> Plan:
    """The search runs of an existing sweep (``sweep=<dir>``; see :mod:`nascli.bench.study`), which must
    all be of one space and dataset."""
    validate_lists(cfg)
    if not cfg.get("sweep"):
        raise NasError("mode=aggregate needs sweep=<dir>: a multirun dir with runs.jsonl, or a folder above "
                       "search runs (e.g. outputs/search/nb201-cifar10)")
    sweep = Path(str(cfg.sweep)).resolve()
    if not sweep.exists():
        raise NasError(f"sweep={sweep} does not exist")
    runs = discover_runs(sweep)
    if not runs:
        raise NasError(f"no search runs under {sweep} (looked for runs.jsonl, then for seed=*/config.yaml of searches)")
    pairs = sorted({(r.space, r.dataset) for r in runs})
    if len(pairs) > 1:
        raise NasError("the sweep mixes spaces/datasets " + ", ".join(f"{s}-{d}" for s, d in pairs)
                       + "; aggregate one at a time (sweep=<out_root>/search/<space>-<dataset>)")
    space, dataset = pairs[0]
    labels = sorted({r.label for r in runs})
    methods = {r.label: r.method for r in runs}
    first = next((r for r in runs if r.config), None)
    group_args = (group_overrides("space", first.config.get("space", {}))
                  + group_overrides("dataset", first.config.get("dataset", {}))) if first else []
    if str(cfg.space.name) == space:  # space.network.C=8 etc. on the benchmark command line: for evaluate
        group_args = merge_overrides(group_args, group_overrides("space", cfg.space))
    plan = Plan("aggregate", space, dataset, labels, methods, sorted({r.seed for r in runs}),
                [str(s) for s in cfg.selections], {}, runs, group_args=group_args)
    with fresh_compose() as compose:
        plan.selection_cfgs = compose_selections(compose, cfg)
        check_evaluate(compose, cfg, plan)
    plan.hash_extra = {"sweep": str(sweep), "runs": [str(r.run_dir) for r in runs]}
    plan.study_info = {"sweep": str(sweep), "variants": {}, "search_overrides": []}
    return plan


MODES: dict[str, Callable[[DictConfig], Plan]] = {"study": plan_study, "aggregate": plan_aggregate}


def make_plan(cfg: DictConfig) -> Plan:
    """The plan of ``cfg.mode`` (default ``study``); an unknown mode names the valid ones."""
    mode = str(cfg.get("mode") or "study")
    if mode not in MODES:
        raise NasError(f"unknown benchmark mode {mode!r}; valid choices: {', '.join(MODES)}")
    return MODES[mode](cfg)
