"""``nas benchmark``: a methods x seeds study with a random baseline, a report and plots.

    nas benchmark methods=[darts,darts_minus] seeds=[0,1,2,3] space=nb201 dataset=cifar10 selections=[magnitude,ostr]
    nas benchmark mode=aggregate sweep=outputs/multirun     # the same report over a `nas search -m` sweep

Orchestration only: every search, derivation and training is the ``nas search`` / ``nas derive`` /
``nas evaluate`` command run as its own subprocess (:mod:`nascli.bench.jobs`), so each (method, seed)
is an ordinary run directory (finished runs are reused, interrupted ones resume) and one failing or
out-of-memory job is recorded without stopping the study. The steps:

1. validate methods / selections / variants against ``conf/`` and compose every job's config through
   Hydra's compose API before anything runs (unknown names and bad overrides fail with one line);
2. search every (method, seed); derive every selection that differs from the search's own
   (``nas derive``); evaluate every derived arch by table lookup where the space has a table for the
   dataset (NB201 on cifar10/cifar100/imagenet16_120), else by training with ``protocol`` (``nas evaluate``);
3. the random baseline: ``baseline.samples`` archs from ``space.random_arch(random.Random(baseline.seed))``
   evaluated the same way (training seed = sample index), plus the exact space statistics of a table;
4. report.json / report.md / report.csv and PNG plots in ``<out_root>/benchmark/<space>-<dataset>/<hash>/``
   (hash of the study config without device/paths/parallelism), the table on stderr, one JSON line on stdout.

Job outcomes are kept in ``<benchmark dir>/jobs/<job>.json`` (with the job's log ``<job>.log``); a job
whose stored outcome is ok, whose arguments are unchanged and whose run still holds that result is
reused without starting a process. Search runs are also reused straight from their run directories
(the path is computed from the composed config, exactly as ``nas search`` computes it).
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nascli.bench import published
from nascli.bench.jobs import Job, Launch, Outcome, run_jobs
from nascli.bench.progress import StudyProgress
from nascli.bench.report import build_report, render_csv, render_markdown, rich_table
from nascli.bench.study import SearchRun, discover_runs, read_json, read_metrics, sample_baseline, search_figures
from nascli.bench.truth import table_for
from nascli.commands.common import console, emit_result, plain, set_threads
from nascli.commands.run import RunDir, atomic_write_bytes, atomic_write_json, config_hash
from nascli.errors import NasError
from nascli.paths import CONF_DIR
from nascli.spaces import get_space

EVALUATIONS = ("auto", "train")            # auto: table lookup where possible, else training | train: always train
STUDY_ONLY_KEYS = ("jobs", "progress", "plots")   # do not change what a study computes (left out of its hash)


# ============================================================================ config helpers
def choices(group: str) -> list[str]:
    """Config names available in ``conf/<group>/``."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


_SAFE = re.compile(r"^[A-Za-z0-9_./:+-]+$")


def hydra_value(value: Any) -> str:
    """``value`` in Hydra's override grammar (strings quoted unless plainly safe paths/words)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def path_value(path: Path | str) -> str:
    text = str(path)
    return text if _SAFE.match(text) else hydra_value(text)


def _diff(default: Any, node: Any, key: str, out: list[str]) -> None:
    if isinstance(default, dict) and isinstance(node, dict):
        for k, v in node.items():
            if k not in default:
                out.append(f"++{key}.{k}={hydra_value(v)}")
            else:
                _diff(default[k], v, f"{key}.{k}", out)
        out.extend(f"~{key}.{k}" for k in default if k not in node)
    elif default != node:
        out.append(f"{key}={hydra_value(node)}")


def group_overrides(group: str, node: Any) -> list[str]:
    """Overrides that turn ``conf/<group>/<node.name>.yaml`` into ``node`` (what the user changed on the
    command line, e.g. ``dataset.num_train=256``), to pass the same group config on to every job."""
    data = plain(node) if OmegaConf.is_config(node) else dict(node or {})
    path = CONF_DIR / group / f"{data.get('name')}.yaml"
    if not path.exists():
        return []
    default = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    default.pop("defaults", None)
    out: list[str] = []
    _diff(default, {k: v for k, v in data.items() if k != "defaults"}, group, out)
    return out


@contextlib.contextmanager
def fresh_compose() -> Iterator[Callable[..., DictConfig]]:
    """Hydra's compose API on ``conf/``, usable inside a running Hydra app (the benchmark is one): the
    app's GlobalHydra is set aside for the duration and put back afterwards."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton

    saved = Singleton._instances.pop(GlobalHydra, None)  # noqa: SLF001 - Hydra's own backup mechanism
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            yield compose
    finally:
        Singleton._instances.pop(GlobalHydra, None)  # noqa: SLF001
        if saved is not None:
            Singleton._instances[GlobalHydra] = saved  # noqa: SLF001


def _compose(compose: Callable[..., DictConfig], name: str, overrides: list[str], what: str) -> DictConfig:
    try:
        return compose(name, overrides=overrides)
    except Exception as exc:  # noqa: BLE001 - any composition problem is a bad study config
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NasError(f"{what}: the overrides do not compose ({first}); overrides: {' '.join(overrides)}") from None


# ============================================================================ the plan
@dataclass
class Plan:
    """What a study runs: search runs (planned or found), how to evaluate, and the jobs' common arguments."""

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
    group_args: list[str] = field(default_factory=list)    # space/dataset overrides for evaluate jobs
    hash_extra: dict[str, Any] = field(default_factory=dict)
    study_info: dict[str, Any] = field(default_factory=dict)


def _common_args(cfg: DictConfig) -> list[str]:
    args = [f"device={cfg.device}"]
    if cfg.get("num_threads"):
        args.append(f"num_threads={int(cfg.num_threads)}")
    return args


def _validate_lists(cfg: DictConfig) -> None:
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


def _method_of(label: str, variants: dict[str, list[str]]) -> tuple[str, list[str]]:
    """(conf/method name, extra search overrides) of a methods entry: a method, or a named variant."""
    if label in variants:
        items = [str(o) for o in variants[label]]
        named = [o.split("=", 1)[1] for o in items if o.startswith("method=")]
        if len(named) != 1:
            raise NasError(f"variant {label!r} must contain exactly one method=<name> override, got {items}")
        return named[0], [o for o in items if not o.startswith("method=")]
    return label, []


def plan_study(cfg: DictConfig) -> Plan:
    """Validate the study config and compose every search (nothing runs here)."""
    _validate_lists(cfg)
    labels = [str(m) for m in cfg.methods or []]
    seeds = [int(s) for s in cfg.seeds or []]
    if not labels or not seeds:
        raise NasError("a study needs methods=[...] and seeds=[...] (e.g. methods=[darts] seeds=[0,1])")
    if len(set(labels)) != len(labels) or len(set(seeds)) != len(seeds):
        raise NasError(f"methods and seeds must not repeat: methods={labels} seeds={seeds}")
    variants = {str(k): list(v) for k, v in (plain(cfg.get("variants")) or {}).items()}
    valid = choices("method")
    for label in labels:
        method, _ = _method_of(label, variants)
        if method not in valid:
            where = f" (in variant {label!r})" if label in variants else ""
            raise NasError(f"unknown method {method!r}{where}; valid choices: {', '.join(valid + sorted(variants))}")
    space, dataset = str(cfg.space.name), str(cfg.dataset.name)
    group_args = group_overrides("space", cfg.space) + group_overrides("dataset", cfg.dataset)
    search_overrides = [str(o) for o in cfg.search_overrides or []]
    out_root = Path(str(cfg.out_root)).resolve()
    plan = Plan("study", space, dataset, labels, {}, seeds, [str(s) for s in cfg.selections], {}, [],
                group_args=group_args)
    with fresh_compose() as compose:
        plan.selection_cfgs = _compose_selections(compose, cfg)
        for label in labels:
            method, extra = _method_of(label, variants)
            plan.methods[label] = method
            for seed in seeds:
                argv = ["search", f"method={method}", f"space={space}", f"dataset={dataset}", *group_args, *extra,
                        *search_overrides, f"seed={seed}", f"out_root={path_value(out_root)}", *_common_args(cfg)]
                scfg = _compose(compose, "search", argv[1:], f"search {label} seed={seed}")
                try:  # resolves every interpolation, as the search itself will
                    run = RunDir.for_config(scfg, "search", f"{scfg.space.name}-{scfg.dataset.name}", scfg.method.name)
                except Exception as exc:  # noqa: BLE001 - an unresolvable config is a bad study config
                    raise NasError(f"search {label} seed={seed}: the composed config does not resolve "
                                   f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
                plan.runs.append(SearchRun(label, method, seed, run.path, space, dataset, int(scfg.search.epochs),
                                           dict(plain(scfg.selection)), plain(scfg)))
                plan.search_argv[(label, seed)] = argv
        _check_evaluate(compose, cfg, plan)
    plan.study_info = {"variants": variants, "search_overrides": search_overrides}
    return plan


def derive_overrides(cfg: DictConfig, selection: str) -> list[str]:
    """``derive_overrides.<selection>``: the overrides of that selection's ``nas derive`` jobs."""
    return [str(o) for o in (plain(cfg.get("derive_overrides")) or {}).get(selection, [])]


def _compose_selections(compose: Callable[..., DictConfig], cfg: DictConfig) -> dict[str, dict]:
    extra = sorted(set(plain(cfg.get("derive_overrides")) or {}) - {str(s) for s in cfg.selections})
    if extra:
        raise NasError(f"derive_overrides names selections that the study does not use: {extra}")
    return {s: dict(plain(_compose(compose, "derive", [f"selection={s}", *derive_overrides(cfg, s)],
                                   f"derive selection={s}").selection))
            for s in cfg.selections}


def plan_aggregate(cfg: DictConfig) -> Plan:
    """The search runs of an existing sweep (``sweep=<dir>``; see :mod:`nascli.bench.study`)."""
    _validate_lists(cfg)
    if not cfg.get("sweep"):
        raise NasError("mode=aggregate needs sweep=<dir>: a multirun dir with runs.jsonl, or a folder above "
                       "search runs "
                       "(e.g. outputs/search/nb201-cifar10)")
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
        group_args = _merge_overrides(group_args, group_overrides("space", cfg.space))
    plan = Plan("aggregate", space, dataset, labels, methods, sorted({r.seed for r in runs}),
                [str(s) for s in cfg.selections], {}, runs, group_args=group_args)
    with fresh_compose() as compose:
        plan.selection_cfgs = _compose_selections(compose, cfg)
        _check_evaluate(compose, cfg, plan)
    plan.hash_extra = {"sweep": str(sweep), "runs": [str(r.run_dir) for r in runs]}
    plan.study_info = {"sweep": str(sweep), "variants": {}, "search_overrides": []}
    return plan


def _merge_overrides(first: list[str], then: list[str]) -> list[str]:
    """``first`` with the keys that ``then`` sets replaced by ``then``'s values (one override per key)."""
    def key(o: str) -> str:
        return o.lstrip("+~").split("=", 1)[0]

    later = {key(o) for o in then}
    return [o for o in first if key(o) not in later] + list(then)


def _check_evaluate(compose: Callable[..., DictConfig], cfg: DictConfig, plan: Plan) -> None:
    """Compose one evaluate job up front, so a bad evaluate override fails before anything runs."""
    _compose(compose, "evaluate", _evaluate_args(cfg, plan, None, 0)[1:], "evaluate")


MODES: dict[str, Callable[[DictConfig], Plan]] = {"study": plan_study, "aggregate": plan_aggregate}


def study_dir(cfg: DictConfig, plan: Plan) -> tuple[str, Path]:
    """``<out_root>/benchmark/<space>-<dataset>/<hash>``: the hash covers what the study computes."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in STUDY_ONLY_KEYS:
        data.pop(key, None)
    if plan.mode == "aggregate":  # the runs define space, dataset, methods and seeds
        for key in ("methods", "seeds", "variants", "search_overrides", "space", "dataset"):
            data.pop(key, None)
        data["_aggregate"] = plan.hash_extra
    digest = config_hash(OmegaConf.create(data))
    return digest, Path(str(cfg.out_root)).resolve() / "benchmark" / f"{plan.space}-{plan.dataset}" / digest


def _evaluate_args(cfg: DictConfig, plan: Plan, arch: str | None, seed: int) -> list[str]:
    """``nas evaluate`` arguments of one arch (``arch=None``: the same without the arch, for checking)."""
    return ["evaluate", *([f"arch={arch}"] if arch else []), f"space={plan.space}", f"dataset={plan.dataset}",
            f"protocol={cfg.protocol.name}", *plan.group_args, *group_overrides("protocol", cfg.protocol),
            *[str(o) for o in cfg.evaluate_overrides or []], f"seed={seed}",
            f"out_root={path_value(Path(str(cfg.out_root)).resolve())}", *_common_args(cfg)]


# ============================================================================ jobs
def _key(*parts: Any) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_.@]+", "_", str(p)) for p in parts)


@dataclass
class Graph:
    """Jobs and where each row's arch / accuracy comes from."""

    jobs: list[Job] = field(default_factory=list)
    search_job: dict[tuple[str, int], str] = field(default_factory=dict)
    arch_job: dict[tuple[str, int, str], str | None] = field(default_factory=dict)  # None: the search's arch.json
    eval_job: dict[tuple[str, int, str], str] = field(default_factory=dict)
    baseline_job: dict[int, str] = field(default_factory=dict)


def build_jobs(cfg: DictConfig, plan: Plan, baseline: list[tuple[Path, str]], train: bool) -> Graph:
    """Search / derive / evaluate jobs in plan order (seed-major); ``baseline``: (arch file, arch string)."""
    graph = Graph()
    order = sorted(plan.runs, key=lambda r: (plan.seeds.index(r.seed) if r.seed in plan.seeds else 0,
                                             plan.labels.index(r.label)))
    for run in order:
        rid = (run.label, run.seed)
        search_key = None
        if plan.mode == "study":
            search_key = _key("search", run.label, f"seed{run.seed}")
            argv = plan.search_argv[rid]
            graph.jobs.append(Job(search_key, "search", f"search {run.label} seed={run.seed}",
                                  prepare=lambda _o, a=argv, d=run.run_dir: Launch(a, lock=str(d)),
                                  watch=run.run_dir / "metrics.jsonl", epochs=run.epochs))
            graph.search_job[rid] = search_key
        elif run.status != "ok":
            continue
        for sel in plan.selections:
            deps = (search_key,) if search_key else ()
            if plan.selection_cfgs[sel] == run.selection:
                arch_key = search_key
                graph.arch_job[(*rid, sel)] = None
            else:
                arch_key = _key("derive", run.label, f"seed{run.seed}", sel)
                argv = ["derive", f"run={run.run_dir}", f"selection={sel}", *derive_overrides(cfg, sel),
                        *_common_args(cfg)]
                graph.jobs.append(Job(arch_key, "derive", f"derive {run.label} seed={run.seed} {sel}",
                                      prepare=lambda _o, a=argv: Launch(a), deps=deps))
                graph.arch_job[(*rid, sel)] = arch_key
            if not train:
                continue
            eval_key = _key("evaluate", run.label, f"seed{run.seed}", sel)

            def prepare(outcomes: dict[str, Outcome], k=arch_key, r=run) -> Launch:
                result = outcomes[k].result if k else read_json(r.run_dir / "result.json")
                return Launch(_evaluate_args(cfg, plan, path_value(result["arch_path"]), r.seed),
                              lock=f"{result['arch']}|{r.seed}")

            graph.jobs.append(Job(eval_key, "evaluate", f"evaluate {run.label} seed={run.seed} {sel}",
                                  prepare=prepare, deps=(arch_key,) if arch_key else ()))
            graph.eval_job[(*rid, sel)] = eval_key
    if train:
        for k, (path, arch) in enumerate(baseline):
            key = _key("evaluate", "random", f"{k:02d}")
            argv = _evaluate_args(cfg, plan, path_value(path), k)
            graph.jobs.append(Job(key, "evaluate", f"evaluate random sample {k}",
                                  prepare=lambda _o, a=argv, lk=f"{arch}|{k}": Launch(a, lock=lk)))
            graph.baseline_job[k] = key
    return graph


def _still_there(kind: str, result: dict[str, Any] | None) -> bool:
    """Whether a stored ok outcome still describes what is on disk."""
    if not result:
        return False
    if kind == "derive":
        data = read_json(Path(result.get("arch_path", "")))
        return bool(data) and data.get("arch") == result.get("arch")
    return RunDir(Path(result.get("run_dir", ""))).finished_result() == result


class Ledger:
    """``<benchmark dir>/jobs/<key>.json``: each job's last outcome and arguments."""

    def __init__(self, directory: Path, runs: dict[str, Path]):
        self.dir, self.runs = directory, runs
        self.by_lock: dict[str, Outcome] = {}

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def reuse(self, job: Job, launch: Launch) -> Outcome | None:
        if job.kind == "search":  # straight from the run directory, wherever it was run from
            done = RunDir(self.runs[job.key]).finished_result()
            return Outcome("ok", result=done, argv=launch.argv) if done else None
        if launch.lock and launch.lock in self.by_lock:  # the same arch and seed, trained by another job
            stored = self.by_lock[launch.lock]
            return Outcome("ok", result=stored.result, argv=launch.argv)
        data = read_json(self.path(job.key))
        if not data or data.get("status") != "ok" or data.get("argv") != launch.argv:
            return None
        return Outcome.from_dict(data) if _still_there(job.kind, data.get("result")) else None

    def record(self, job: Job, outcome: Outcome, launch_lock: str | None = None) -> None:
        if outcome.ok and launch_lock:
            self.by_lock.setdefault(launch_lock, outcome)
        if not outcome.reused:
            atomic_write_json(self.path(job.key), {**outcome.as_dict(), "reused": False})


# ============================================================================ rows
def _lookup(table, arch: str, dataset: str) -> dict[str, Any]:
    found = table.lookup(arch, dataset)
    if found is None:
        return {"status": "failed", "error": f"arch {arch} is not in the {dataset} table"}
    return {"status": "ok", "acc": found["test"], "valid_acc": found["valid"]}


def _from_outcome(out: Outcome | None, key: str | None) -> dict[str, Any]:
    if out is None:
        return {"status": "failed", "error": "not run"}
    if out.ok:
        return {"status": "ok", "acc": out.result.get("test_acc"), "eval_run": out.result.get("run_dir")}
    return {"status": out.status, "error": out.error, "log": f"jobs/{key}.log" if key else None}


def _follow_actual_run_dirs(plan: Plan, graph: Graph, outcomes: dict[str, Outcome]) -> None:
    """Read each search from where it says it ran (normally the directory computed before it ran)."""
    for run in plan.runs:
        out = outcomes.get(graph.search_job.get((run.label, run.seed), ""))
        actual = out.result.get("run_dir") if out and out.ok and out.result else None
        if actual and Path(actual) != run.run_dir:
            console.print(f"[yellow]note:[/] {run.label} seed={run.seed} ran in {actual}, "
                          f"not the expected {run.run_dir}")
            run.run_dir = Path(actual)


def build_rows(plan: Plan, graph: Graph, outcomes: dict[str, Outcome], table) -> list[dict[str, Any]]:
    rows = []
    for run in sorted(plan.runs, key=lambda r: (plan.labels.index(r.label), r.seed)):
        rid = (run.label, run.seed)
        skey = graph.search_job.get(rid)
        if skey:
            sout = outcomes.get(skey)
            s_status, s_error, s_result = ((sout.status, sout.error, sout.result) if sout
                                           else ("failed", "not run", None))
        else:
            s_status, s_error, s_result = run.status or "failed", run.error, read_json(run.run_dir / "result.json")
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
            akey = graph.arch_job.get((*rid, sel))
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
            ekey = graph.eval_job.get((*rid, sel))
            found = _lookup(table, row["arch"], plan.dataset) if table else _from_outcome(outcomes.get(ekey), ekey)
            if found["status"] != "ok":
                found["stage"] = "evaluate"
            row.update(found)
    return rows


def build_baseline_rows(plan: Plan, archs: list, graph: Graph, outcomes: dict[str, Outcome], table) -> list[dict]:
    rows = []
    for k, arch in enumerate(archs):
        text = arch.to_string()
        row = {"sample": k, "seed": k, "arch": text, "status": "ok", "acc": None, "valid_acc": None,
               "error": None, "log": None, "eval_run": None}
        key = graph.baseline_job.get(k)
        row.update(_lookup(table, text, plan.dataset) if table else _from_outcome(outcomes.get(key), key))
        rows.append(row)
    return rows


# ============================================================================ plots
def _curve(metrics: list[dict], pick: Callable[[dict], Any]) -> list[tuple[int, float]]:
    out = []
    for m in metrics:
        v = pick(m)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append((int(m.get("epoch", len(out))) + 1, float(v)))
    return out


def _table_test(m: dict) -> Any:
    bench = m.get("benchmark")
    return bench.get("test") if isinstance(bench, dict) else None


def make_plots(plan: Plan, report: dict[str, Any], rows: list[dict], table) -> list[tuple[str, str, bytes]]:
    """(file name, caption, PNG bytes) of every plot the data allows."""
    from nascli.bench import plots

    ok_runs = [r for r in plan.runs if any(x["search_status"] == "ok" and x["search_run"] == str(r.run_dir)
                                           for x in rows)]
    metrics = {str(r.run_dir): read_metrics(r.run_dir) for r in ok_runs}
    by_label = {label: [r for r in ok_runs if r.label == label] for label in plan.labels}
    out: list[tuple[str, str, bytes]] = []
    all_table = bool(metrics) and all(_table_test(m) is not None for ms in metrics.values() for m in ms)
    pick = _table_test if all_table else (lambda m: m.get("val_acc"))
    metric = ("table test accuracy of the arch derived (magnitude) at each epoch" if all_table
              else "supernet validation accuracy (val_acc)")
    curves = {label: [_curve(metrics[str(r.run_dir)], pick) for r in runs] for label, runs in by_label.items()}
    hlines = {}
    base = report["baseline"]
    if all_table and base["random"]["mean"] is not None:
        hlines[f"random archs, mean of {base['random']['n']}"] = base["random"]["mean"]
    if all_table and base["space"]:
        hlines["whole space, exact mean"] = base["space"]["mean"]
    if any(c for cs in curves.values() for c in cs):
        out.append(("accuracy_per_epoch.png", f"Accuracy per search epoch: {metric}",
                    plots.accuracy_curves(curves, metric=metric, dataset=plan.dataset, hlines=hlines)))
    points = {}
    for c in report["cells"]:
        name = c["method"] if len(plan.selections) == 1 else f"{c['method']} / {c['selection']}"
        points[name] = [r["acc"] for r in rows if r["method"] == c["method"] and r["selection"] == c["selection"]
                        and r["status"] == "ok"]
    out.append(("final_accuracy.png", "Final accuracy of each run's derived arch, and of the random archs",
                plots.final_accuracy(points, random_points=[b["acc"] for b in report["baseline_runs"]
                                                            if b["status"] == "ok"],
                                     space_mean=base["space"]["mean"] if base["space"] else None,
                                     metric=report["accuracy"]["metric"], dataset=plan.dataset)))
    skips = {label: [_curve(metrics[str(r.run_dir)], lambda m: m.get("skip_count")) for r in runs]
             for label, runs in by_label.items()}
    if any(c for cs in skips.values() for c in cs):
        out.append(("skip_count.png", "Skip connections in the arch derived (magnitude) at each epoch",
                    plots.epoch_curves(skips, title=f"skip connections in the derived arch ({plan.dataset})",
                                       ylabel="skip connections", integer_y=True)))
    hess = {label: [_curve(metrics[str(r.run_dir)], lambda m: m.get("hessian_eigenvalue")) for r in runs]
            for label, runs in by_label.items()}
    if any(c for cs in hess.values() for c in cs):
        out.append(("hessian_eigenvalue.png", "Dominant Hessian eigenvalue of L_val w.r.t. alpha",
                    plots.epoch_curves(hess, title=f"dominant eigenvalue of the Hessian of L_val w.r.t. α "
                                                   f"({plan.dataset})",
                                       ylabel="λ_max (largest Hessian eigenvalue)")))
    space = get_space(plan.space)
    edge_names = {ct: [f"edge {e.src}→{e.dst}" for e in space.edges(ct)] for ct in space.cell_types}
    for label, runs in by_label.items():
        for r in sorted(runs, key=lambda x: x.seed):
            recs = [m for m in metrics[str(r.run_dir)] if isinstance(m.get("alphas"), dict)]
            if recs:
                out.append((f"alphas_{_key(label)}.png", f"softmax(α) per edge, {label} seed {r.seed}",
                            plots.alpha_trajectories([int(m["epoch"]) + 1 for m in recs], [m["alphas"] for m in recs],
                                                     edge_names, list(space.ops),
                                                     title=f"{label}, seed {r.seed}: softmax(α) per edge "
                                                           "over the search")))
                break
    return out


# ============================================================================ the command
def gpu_slots(cfg: DictConfig) -> Callable[[int], dict[str, str]] | None:
    """With ``jobs`` > 1 and several visible GPUs, parallel slot ``i`` sees GPU ``i mod G`` first
    (``CUDA_VISIBLE_DEVICES`` rotated, the rule of nascli.launch.gpu_pool for multiruns)."""
    import os

    from nascli.launch.gpu_pool import POOLED_DEVICE_SETTINGS, gpu_for_job, rotated
    from nascli.launch.plugins import parse_visible_devices, visible_gpu_count

    if int(cfg.jobs) < 2 or str(cfg.device) not in POOLED_DEVICE_SETTINGS:
        return None
    pool = parse_visible_devices(os.environ.get("CUDA_VISIBLE_DEVICES"))
    if pool is None:
        pool = [str(i) for i in range(visible_gpu_count())]
    if len(pool) < 2:
        return None
    return lambda slot: {"CUDA_VISIBLE_DEVICES": ",".join(rotated(pool, gpu_for_job(slot, len(pool))))}


def _accuracy_source(cfg: DictConfig, plan: Plan, table) -> str:
    if table is not None:
        return table.describe(plan.dataset)
    return (f"test accuracy after training each arch from scratch with protocol `{cfg.protocol.name}` "
            f"(`nas evaluate`, training seed = search seed; random sample k uses seed k)")


def _write_baseline(bdir: Path, archs: list, seed: int) -> list[Path]:
    files = []
    for k, arch in enumerate(archs):
        data = arch.to_json()
        data["provenance"] = {"baseline": "uniform random sample", "sample": k, "seed": seed}
        path = bdir / "baseline" / f"sample_{k:02d}.json"
        if read_json(path) != data:
            atomic_write_json(path, data)
        files.append(path)
    return files


def benchmark(cfg: DictConfig) -> dict[str, Any]:
    set_threads(cfg)
    mode = str(cfg.get("mode") or "study")
    if mode not in MODES:
        raise NasError(f"unknown benchmark mode {mode!r}; valid choices: {', '.join(MODES)}")
    plan = MODES[mode](cfg)
    study_id, bdir = study_dir(cfg, plan)
    space = get_space(plan.space)
    table = table_for(plan.space, plan.dataset) if str(cfg.evaluation) == "auto" else None
    archs = sample_baseline(space, int(cfg.baseline.samples), int(cfg.baseline.seed))
    baseline_files = _write_baseline(bdir, archs, int(cfg.baseline.seed))
    graph = build_jobs(cfg, plan, [(f, a.to_string()) for f, a in zip(baseline_files, archs)], train=table is None)
    ledger = Ledger(bdir / "jobs", {graph.search_job[(r.label, r.seed)]: r.run_dir
                                    for r in plan.runs if (r.label, r.seed) in graph.search_job})
    locks: dict[str, str | None] = {}

    def reuse(job: Job, launch: Launch) -> Outcome | None:
        locks[job.key] = launch.lock
        return ledger.reuse(job, launch)

    console.print(f"[bold]benchmark[/] {bdir} ({len(plan.runs)} search runs, {len(graph.jobs)} jobs, "
                  f"{'table lookup' if table else 'training with protocol ' + str(cfg.protocol.name)})")
    title = f"benchmark {plan.space}-{plan.dataset} {study_id}"
    with StudyProgress(console, title, graph.jobs, int(cfg.jobs), enabled=bool(cfg.get("progress", True))) as progress:
        outcomes = run_jobs(graph.jobs, parallel=int(cfg.jobs), log_dir=bdir / "jobs", reuse=reuse,
                            on_done=lambda job, out: ledger.record(job, out, locks.get(job.key)), observer=progress,
                            slot_env=gpu_slots(cfg))
    _follow_actual_run_dirs(plan, graph, outcomes)
    rows = build_rows(plan, graph, outcomes, table)
    base_rows = build_baseline_rows(plan, archs, graph, outcomes, table)
    study = {"id": study_id, "mode": plan.mode, "space": plan.space, "dataset": plan.dataset, "methods": plan.labels,
             "method_names": plan.methods, "seeds": plan.seeds, "selections": plan.selections,
             "evaluation": "table" if table else "train", "protocol": None if table else str(cfg.protocol.name),
             "baseline": {"samples": int(cfg.baseline.samples), "seed": int(cfg.baseline.seed)},
             "group_overrides": plan.group_args,
             "protocol_overrides": [] if table else group_overrides("protocol", cfg.protocol),
             "evaluate_overrides": [str(o) for o in cfg.evaluate_overrides or []],
             "derive_overrides": {s: derive_overrides(cfg, s) for s in plan.selections if derive_overrides(cfg, s)},
             **plan.study_info}
    kwargs = dict(labels=plan.labels, selections=plan.selections, methods=plan.methods,
                  with_published=table is not None and plan.space == published.SPACE,
                  accuracy_source=_accuracy_source(cfg, plan, table))
    stats = table.space_stats(plan.dataset) if table else None
    report = build_report(study, rows, base_rows, stats, **kwargs)
    if cfg.get("plots", True):
        try:
            pictures = make_plots(plan, report, rows, table)
        except ImportError as exc:
            console.print(f"[yellow]note:[/] no plots ({exc})")
            pictures = []
        for name, _, png in pictures:
            atomic_write_bytes(bdir / name, png)
        report = build_report(study, rows, base_rows, stats, plots=[(n, c) for n, c, _ in pictures], **kwargs)
    atomic_write_json(bdir / "report.json", report)
    atomic_write_bytes(bdir / "report.md", render_markdown(report).encode())
    atomic_write_bytes(bdir / "report.csv", render_csv(report).encode())
    from rich.console import Console

    wide = console if console.is_terminal else Console(stderr=True, highlight=False, width=200)
    wide.print(rich_table(report))
    if report["failures"]:
        console.print(f"[yellow]{len(report['failures'])} run(s) did not succeed[/]; see {bdir / 'report.md'}")
    counts = report["counts"]
    done = counts["runs_ok"] == counts["runs"] and counts["baseline_ok"] == counts["baseline"]
    summary = {"status": "ok" if done else ("failed" if counts["runs_ok"] == 0 else "partial"), "command": "benchmark",
               "mode": plan.mode, "benchmark_dir": str(bdir), "report": str(bdir / "report.json"), **counts,
               "jobs": {"total": len(outcomes),
                        "ran": sum(not o.reused and o.status != "skipped" for o in outcomes.values()),
                        "reused": sum(o.reused for o in outcomes.values()),
                        "failed": sum(o.status not in ("ok", "skipped") for o in outcomes.values()),
                        "skipped": sum(o.status == "skipped" for o in outcomes.values())}}
    emit_result(summary)
    return summary
