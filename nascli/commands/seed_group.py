"""Several seeds of one search in one process: ``nas search 'seeds=[0,1,2,3]'``.

Each seed is exactly the run ``nas search seed=s`` would make: the same run directory (its config is the
solo run's, ``seeds`` null), its own lock, config, checkpoints, metrics, resume and result.json. The process holds all of
them and runs the seeds' epochs in turn (seed order, one epoch each, until every seed is done).

Exactness rule. The global random generators (Python ``random``, NumPy, torch CPU and every CUDA device)
belong to the seed whose turn it is: before a seed builds its search, runs an epoch or finishes, its own
generator state is restored, and after, it is captured again (nascli/rng.py). Weight initialisation, the
samplers' draws (GDAS Gumbel noise, DrNAS Dirichlet samples), the data streams (their own generators) and
the components' generators therefore see the numbers of that seed's solo run, so every seed's metrics,
checkpoint and arch equal its solo run bit for bit on CPU (``tests/test_seed_group.py``). On CUDA the
same holds wherever the solo run itself is deterministic.

What the seeds share: one interpreter and its imports, one CUDA context, one copy of the search data
(the task's ``search_data`` is read once, and only when it leaves the global generators untouched;
otherwise each seed reads its own). What it does not give: parallel compute. The seeds run one after
another on the same device and threads (a seed writes its result.json as soon as its last epoch ends), so on CPU the group takes the sum of the solo runs' compute plus
nothing (no process start or data load per seed); docs/SPEED.md has the measurements.

``seeds_mode`` (:func:`group_mode`): ``turns`` as above; ``stacked``, the seeds' epochs in lockstep with every
step one stacked step of all of them (nascli/search/stacked.py: one vmapped forward for every seed, each seed's
batches, hooks, components, records and checkpoints its own, in its turn of the generators; each step equal
to the solo step up to float rounding, which grows over a search); ``auto`` (default), stacked on CUDA when the search can stack, else turns.

Refused with one line: duplicate seeds, and methods with a search flow of their own (GM-NAS's split tree)
or tasks with their own loop (RL), which are separate runs per seed (``nas search -m seed=0,1,2,3``).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nascli.commands.common import console, emit_result
from nascli.errors import DivergedError, NasError
from nascli.logger import observing
from nascli.rng import capture_rng_state, restore_rng_state
from nascli.search.composition import Composition
from nascli.tasks import task_of


def group_seeds(cfg: DictConfig) -> list[int] | None:
    """The ``seeds`` list of a search config (None: a solo run); duplicates are refused."""
    seeds = cfg.get("seeds")
    if seeds is None:
        return None
    seeds = [int(s) for s in seeds]
    dupes = sorted({s for s in seeds if seeds.count(s) > 1})
    if dupes:
        raise NasError(f"seeds={seeds} repeats seed {', '.join(map(str, dupes))}: each seed is one run; "
                       f"list every seed once")
    return seeds


def seed_config(cfg: DictConfig, seed: int) -> DictConfig:
    """``cfg`` as the solo run of ``seed`` composes it: ``seed=seed`` and no ``seeds`` list."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.set_struct(out, False)
    out.seed = int(seed)
    out.seeds = None
    return out


def refuse_own_loops(cfg: DictConfig, composition: Composition) -> None:
    """A seed group runs the plain search loop; a method with its own flow or a task with its own loop
    cannot be interleaved (one line naming the alternative)."""
    seeds = list(cfg.seeds)
    if composition.flow is not None:
        raise NasError(f"seeds={seeds} cannot group method {cfg.method.name}: it runs its own search flow; "
                       f"run one search per seed instead: nas search -m seed={','.join(map(str, seeds))} ...")
    if composition.task is not None and composition.task.driver() is not None:
        raise NasError(f"seeds={seeds} cannot group task {composition.task.name}: it runs its own training loop; "
                       f"run one search per seed instead: nas search -m seed={','.join(map(str, seeds))} ...")


@dataclass
class SeedTurn:
    """One seed of the group: its solo config and run directory, its session, its generators between turns,
    and its outcome."""

    seed: int
    cfg: DictConfig
    run: Any  # RunDir
    session: Any = None  # SearchSession
    rng: dict[str, Any] | None = None
    result: dict[str, Any] | None = None

    @contextlib.contextmanager
    def turn(self):
        """The seed's generators for the block: restored before, captured after (also when it raised)."""
        restore_rng_state(self.rng)
        try:
            yield
        finally:
            self.rng = capture_rng_state()


def shared_search_data(cfg: DictConfig) -> tuple[Any, Any, Any] | None:
    """The task's search data, read once for every seed, when reading it draws nothing from the global
    generators (then it depends on the dataset config alone, which the seeds share); None otherwise."""
    before = capture_rng_state()
    data = task_of(cfg).search_data(cfg.dataset)
    after = capture_rng_state()
    restore_rng_state(before)
    if not _same_state(before, after):
        return None
    return data


def _same_state(a: Any, b: Any) -> bool:
    import torch

    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    return a == b


def run_seed_group(cfg: DictConfig, composition: Composition, seeds: list[int]) -> dict[str, Any]:
    """Run (or resume, or report as finished) the search of every seed in ``seeds`` in this process (module
    docstring); returns the group result: one entry per seed, in order."""
    from nascli.commands.search import SearchSession, search_run_dir

    refuse_own_loops(cfg, composition)
    turns = []
    for s in seeds:
        seed_cfg = seed_config(cfg, s)
        turns.append(SeedTurn(s, seed_cfg, search_run_dir(seed_cfg)))
    with contextlib.ExitStack() as stack:
        for t in turns:  # every run's lock first: a seed another process is running stops the group at once
            stack.enter_context(t.run.lock())
            t.result = t.run.finished_result()
            if t.result is not None:
                console.print(f"[bold]finished run[/] {t.run.path} (not redone; delete result.json to rerun)")
        todo = [t for t in turns if t.result is None]
        data = shared_search_data(cfg) if todo else None
        for t in todo:  # build in seed order, each from its own seeded generators (SearchSession seeds them)
            t.session = SearchSession(t.cfg, t.run, composition, data, label=f"seed {t.seed} ")
            t.rng = capture_rng_state()
        stacked = group_mode(cfg, todo) == "stacked"  # a search that cannot stack is refused before any file
        for t in todo:
            with t.turn():
                t.session.begin()  # a resumed seed restores its checkpoint's generators: captured here
            # no progress bar (one per seed would fight over the terminal); the logger still watches
            t.session.engine.observers = stack.enter_context(observing(t.session.observers(progress=False)))
        running = list(todo)
        if stacked:
            running = run_stacked(cfg, running)  # what is left when the seeds stop being in step
        while running:
            for t in list(running):
                with _turn_or_leave(t, running):  # a diverged seed stops with result.json "diverged"
                    if not t.session.done():
                        t.session.advance()
                    if t.session.done():  # a finished seed writes its result at once, not at the group's end
                        t.result = t.session.finish()
                if t.result is not None and t in running:
                    running.remove(t)
    return group_result(cfg, turns)


SEEDS_MODES = ("auto", "turns", "stacked")


def group_mode(cfg: DictConfig, todo: list[SeedTurn]) -> str:
    """``seeds_mode``: ``turns`` (the seeds' epochs one after another), ``stacked`` (their steps as one,
    nascli/search/stacked.py; refused with one line when this search cannot stack) or ``auto`` (stacked on a
    CUDA device when the search can stack, else turns). Fewer than two seeds to run: turns."""
    from nascli.search.stacked import stack_problem

    mode = str(cfg.get("seeds_mode") or "auto")
    if mode not in SEEDS_MODES:
        raise NasError(f"unknown seeds_mode={mode}; valid choices: {', '.join(SEEDS_MODES)}")
    if len(todo) < 2 or mode == "turns":
        return "turns"
    problem = stack_problem(str(cfg.optimizer.name), todo[0].session.supernet)
    if mode == "stacked" and problem:
        raise NasError(f"seeds_mode=stacked cannot stack this search: {problem}; or run seeds_mode=turns")
    if mode == "auto":
        return "stacked" if problem is None and todo[0].session.device.type == "cuda" else "turns"
    return mode


def run_stacked(cfg: DictConfig, running: list[SeedTurn]) -> list[SeedTurn]:
    """The seeds' epochs in lockstep, every step one stacked step of all of them (nascli/search/stacked.py);
    each seed's batches, hooks, components, records and checkpoints are its own, in its turn of the global
    generators. A diverged seed leaves the stack. Returns the seeds still to run or finish once they no longer
    stand at the same epoch and step (a resumed group whose checkpoints differ, a component that rolled one
    back, a seed that stopped early), or once one seed is left: those finish in turns."""
    from nascli.search.stacked import stacked_step

    name = str(cfg.optimizer.name)

    def in_step() -> bool:  # two or more seeds with epochs left, all at the same epoch and step
        positions = {(t.session.engine.epoch, t.session.engine.step) for t in running}
        return len(running) > 1 and len(positions) == 1 and not any(t.session.done() for t in running)

    while in_step():
        epoch = running[0].session.engine.epoch
        for t in running:
            with t.turn():
                t.session.engine.start_epoch(epoch)
                t.session.engine.open_steps()
        live = list(running)
        while live and live[0].session.engine.step < live[0].session.engine.steps_per_epoch:
            batches = []
            for t in live:
                with t.turn():
                    batches.append(t.session.engine.next_batches())
            stacked_step(name, [t.session.optimizer for t in live], [b[0] for b in batches],
                         [b[1] for b in batches], [t.turn for t in live])
            for t, (train_batch, arch_batch) in zip(list(live), batches):
                with _turn_or_leave(t, live):
                    t.session.engine.close_step(train_batch, arch_batch, t.session.checkpoint,
                                                t.session.checkpoint_every)
        timings = {}
        for t in list(live):  # every seed's clock stops at the end of the shared steps
            with _turn_or_leave(t, live):
                timings[t.seed] = t.session.engine.close_steps()
        for t in list(live):
            with _turn_or_leave(t, live):
                began = time.perf_counter() - timings[t.seed]["epoch_time_s"]  # its own records count, not the others'
                t.session.close_epoch(epoch, timings[t.seed], began)
                if t.session.done():  # a finished seed writes its result at once
                    t.result = t.session.finish()
        running = [t for t in live if t.result is None]
    return running


@contextlib.contextmanager
def _turn_or_leave(t: SeedTurn, live: list[SeedTurn]):
    """The block in seed ``t``'s turn of the generators; a :class:`DivergedError` in it records the seed's
    divergence (result.json "diverged") and takes it out of ``live``; the other seeds go on."""
    try:
        with t.turn():
            yield
    except DivergedError as exc:
        from nascli.commands.search import record_search_divergence

        t.result = record_search_divergence(t.run, t.cfg, exc)  # as its solo run writes it
        console.print(f"seed {t.seed}: {exc}")
        live.remove(t)


def group_result(cfg: DictConfig, turns: list[SeedTurn]) -> dict[str, Any]:
    """The command's one JSON line: the group's status (``ok`` when every seed is ok, else ``diverged``) and
    every seed's result.json, in seed order."""
    runs = [t.result for t in turns]
    status = "ok" if all(r.get("status") == "ok" for r in runs) else "diverged"
    return {"status": status, "command": "search", "seeds": [t.seed for t in turns], "space": str(cfg.space.name),
            "dataset": str(cfg.dataset.name), "method": str(cfg.method.name), "runs": runs}


def search_seed_group(cfg: DictConfig, composition: Composition, seeds: list[int]) -> dict[str, Any]:
    """``nas search 'seeds=[...]'``: run the group, print its line; a diverged seed makes the exit status 3
    (like a diverged solo run) after every other seed has finished."""
    result = run_seed_group(cfg, composition, seeds)
    emit_result(result)
    diverged = [r["seed"] for r in result["runs"] if r.get("status") == "diverged"]
    if diverged:
        raise GroupDivergedError(diverged)
    return result


class GroupDivergedError(NasError):
    """Some seeds of a group diverged (their result.json says where); exit code 3 like :class:`DivergedError`."""

    exit_code = DivergedError.exit_code

    def __init__(self, seeds: list[int]):
        super().__init__(f"diverged: seed {', '.join(map(str, seeds))} of the group stopped with a non-finite "
                         "loss (see their result.json); the other seeds finished")
