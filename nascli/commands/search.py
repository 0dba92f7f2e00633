"""``nas search``: train a supernet with the composed method, derive its arch, write the run dir."""
from __future__ import annotations

import time
from typing import Any

from omegaconf import DictConfig

from nascli.commands.artifacts import write_selection
from nascli.commands.common import console, emit_result, set_threads
from nascli.commands.run import RunDir, seed_everything
from nascli.commands.seed_group import group_seeds, search_seed_group
from nascli.device import resolve_device
from nascli.errors import DivergedError
from nascli.logger import observing
from nascli.logger.session import check_logger, run_observers
from nascli.profile import peak_memory_bytes
from nascli.search.builder import build_search
from nascli.search.composition import Composition, check_search_config
from nascli.search.diagnostics import alpha_entropy, dominant_eigenvalue
from nascli.search.selection import SELECTIONS, SelectionContext
from nascli.spaces.param_free import parameter_free_share
from nascli.train.progress import print_line


def search_run_dir(cfg: DictConfig) -> RunDir:
    """``<out_root>/search/<space>-<dataset>/<method>/<hash>/seed=<N>``."""
    return RunDir.for_config(cfg, "search", f"{cfg.space.name}-{cfg.dataset.name}", cfg.method.name)


class SearchSession:
    """One search run: the built search (nascli/search/builder.py) and its run directory."""

    def __init__(self, cfg: DictConfig, run: RunDir | None = None, composition: Composition | None = None,
                 data: tuple[Any, Any, Any] | None = None, label: str = ""):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.run = run or search_run_dir(cfg)
        seed_everything(int(cfg.seed))
        self.setup = build_search(cfg, self.device, composition, data)
        self.space, self.supernet = self.setup.space, self.setup.supernet
        self.optimizer, self.components, self.engine = self.setup.optimizer, self.setup.components, self.setup.engine
        self.elapsed = 0.0
        self.label = label  # prefix of the epoch lines ("seed 3 " in a seed group)

    # -------------------------------------------------------------- helpers
    def selection_context(self) -> SelectionContext:
        return self.setup.selection_context()

    def checkpoint(self) -> None:
        state = self.engine.state_dict()
        state["elapsed"] = self.elapsed
        self.run.save_checkpoint(state)

    def epoch_record(self, epoch: int, timing: dict[str, float]) -> dict[str, Any]:
        derived = SELECTIONS.get("magnitude")(self.selection_context()).arch
        record: dict[str, Any] = {"epoch": epoch, "steps": self.engine.steps_per_epoch}
        record.update(self.engine.schedule_values())
        record.update(self.optimizer.stats.summary())
        record["alpha_entropy"] = alpha_entropy(self.supernet.mixer.probabilities())
        record["alphas"] = {ct: p.tolist() for ct, p in self.supernet.mixer.probabilities().items()}
        record["skip_count"] = self.space.skip_count(derived)
        record["param_free_share"] = parameter_free_share(self.space, derived)  # nascli/spaces/param_free.py
        record["arch"] = derived.to_string()
        record["benchmark"] = self.space.ground_truth(derived, str(self.cfg.dataset.name))
        every = int(self.cfg.diagnostics.get("hessian_every", 0) or 0)
        if every and ((epoch + 1) % every == 0 or epoch + 1 == self.engine.epochs):
            batch = self.selection_context().batches(1)[0]
            self.supernet.train()
            record["hessian_eigenvalue"] = dominant_eigenvalue(self.supernet, batch, self.optimizer.arch_weight_decay,
                                                               str(self.cfg.diagnostics.get("hessian_method", "auto")),
                                                               loss_fn=self.setup.task.criterion.loss)
        record.update(timing)
        record["wall_time_s"] = self.elapsed
        record["peak_memory_mb"] = peak_memory_bytes(self.device) / 2**20
        return record

    # -------------------------------------------------------------- main
    def begin(self) -> None:
        """Resume from the run's checkpoint (weights, optimizer, streams, RNGs, epoch and step), or start a
        new run directory with its config."""
        run, engine = self.run, self.engine
        state = run.load_checkpoint(map_location=self.device)
        if state is not None:
            engine.load_state_dict(state)
            self.elapsed = float(state.get("elapsed", 0.0))
            run.truncate_metrics(engine.epoch)
            console.print(f"[bold]resuming[/] {run.path} at epoch {engine.epoch} step {engine.step}", soft_wrap=True)
        else:
            run.path.mkdir(parents=True, exist_ok=True)
            run.write_config(self.cfg)
            run.truncate_metrics(0)
            console.print(f"[bold]search[/] {run.path}", soft_wrap=True)

    def done(self) -> bool:
        """Whether the epoch loop is over: every epoch run, or a component stopped the search early."""
        return self.engine.epoch >= self.engine.epochs or self.engine.stopped_early() is not None

    def advance(self) -> None:
        """Run the epoch in progress to its end (from a mid-epoch step when resumed), record it (or truncate
        the records a roll-back voids) and checkpoint."""
        epoch = self.engine.epoch
        self.engine.start_epoch(epoch)
        t0 = time.perf_counter()
        timing = self.engine.run_epoch(checkpoint=self.checkpoint, checkpoint_every=self.checkpoint_every)
        self.close_epoch(epoch, timing, t0)

    @property
    def checkpoint_every(self) -> int:
        """``search.checkpoint_every_steps`` (0: at epoch ends only)."""
        return int(self.cfg.search.get("checkpoint_every_steps", 0) or 0)

    def close_epoch(self, epoch: int, timing: dict[str, float], began: float) -> None:
        """After epoch ``epoch``'s steps (begun at ``perf_counter()`` ``began``): the components' epoch end,
        the elapsed time, the epoch's record (or the truncation a roll-back voids), the next epoch and a
        checkpoint."""
        engine, run = self.engine, self.run
        next_epoch = engine.end_epoch(epoch)  # components: early stop (DARTS-ES), roll back (DARTS-ADA)
        self.elapsed += time.perf_counter() - began
        if next_epoch <= epoch:  # rolled back to the end of epoch next_epoch - 1: later records are void
            run.truncate_metrics(next_epoch)
            engine.publish_rollback(next_epoch)
            console.print(f"{self.label}epoch {epoch + 1}/{engine.epochs}: rolled back to the end of epoch {next_epoch}")
        else:
            record = self.epoch_record(epoch, timing)
            run.append_metrics(record)
            engine.publish_epoch(epoch, record)
            score = self.optimizer.criterion.score_name  # the task's batch score: acc, psnr
            print_line(console, f"{self.label}epoch {epoch + 1}/{engine.epochs} "
                                f"train_{score} {record.get(f'train_{score}', 0):.1f} "
                                f"val_{score} {record.get(f'val_{score}', float('nan')):.1f} "
                                f"skip {record['skip_count']} {record['images_per_s']:.0f} img/s  "
                                f"{record['arch']}")
        engine.epoch, engine.step = next_epoch, 0
        if self.done():
            engine.end_search()  # DARTS-ES restores the architecture of the epoch the rise began
        self.checkpoint()

    def observers(self, progress: bool = True):
        """The run's watchers for :func:`nascli.logger.observing`: the progress bar (when ``progress`` and the
        console is a terminal) and the logger."""
        return run_observers(self.cfg, self.run.path, self.engine.epoch, self.space, console if progress else None)

    def execute(self) -> dict[str, Any]:
        self.begin()
        # the progress bar (terminal) and the logger (logger=) watch the epochs through the engine's hooks
        with observing(self.observers()) as self.engine.observers:
            while not self.done():
                self.advance()
        return self.finish()

    def finish(self) -> dict[str, Any]:
        cfg, run = self.cfg, self.run
        stopped = self.engine.stopped_early()  # {"epoch": e, "arch_epoch": r}: the arch is that of epoch r's end
        arch_epoch = int(stopped.get("arch_epoch", stopped["epoch"])) + 1 if stopped else self.engine.epochs
        arch_path, arch, bench = write_selection(run, self.space, self.selection_context(), cfg.selection,
                                                 dataset=str(cfg.dataset.name), file_name="arch.json",
                                                 epoch=arch_epoch)
        task_files = self.setup.task.artifacts(self.setup.info)  # e.g. speech's vocab.json
        artifacts = {name: str(run.write_json(name, obj)) for name, obj in task_files.items()}
        for component in self.components:
            for name, obj in component.artifacts().items():
                artifacts[name] = str(run.write_json(name, obj))
            renderable = component.report()
            if renderable is not None:
                console.print(renderable)
        metrics = run.read_metrics()
        result = {
            "status": "ok", "command": "search", "run_dir": str(run.path), "arch_path": str(arch_path),
            "arch": arch.to_string(), "space": self.space.name, "dataset": str(cfg.dataset.name),
            "method": str(cfg.method.name), "optimizer": str(cfg.optimizer.name),
            "selection": str(cfg.selection.name), "seed": int(cfg.seed), "epochs": self.engine.epochs,
            "skip_count": self.space.skip_count(arch), "benchmark": bench,
            "splits": {"weights": self.setup.weights_split.name, "arch": self.setup.arch_split.name},
            "images": {"weights": len(self.setup.weights_split), "arch": len(self.setup.arch_split)},
            "search_time_s": round(self.elapsed, 3),
            "images_per_s": round(sum(m["images_per_s"] for m in metrics) / max(len(metrics), 1), 2),
            "peak_memory_mb": round(max((m["peak_memory_mb"] for m in metrics), default=0.0), 1),
        }
        if stopped:
            result["stopped_early"] = stopped
        if artifacts:
            result["artifacts"] = artifacts
        run.write_json("result.json", result)
        return result


def record_search_divergence(run: RunDir, cfg: DictConfig, exc: DivergedError) -> dict[str, Any]:
    """result.json "diverged" for the search of ``cfg`` (one seed's config) in ``run``; returned."""
    return run.record_divergence(exc, {"command": "search", "space": str(cfg.space.name),
                                       "dataset": str(cfg.dataset.name), "method": str(cfg.method.name),
                                       "seed": int(cfg.seed)})


def search(cfg: DictConfig) -> dict[str, Any]:
    set_threads(cfg)
    composition = check_search_config(cfg)  # unknown keys, impossible combinations: one line, nothing written
    check_logger(cfg)  # logger=<name> whose client is missing: one line, nothing written
    seeds = group_seeds(cfg)
    if seeds is not None:  # several seeds in this process, each in its solo run directory
        return search_seed_group(cfg, composition, seeds)
    session_run = search_run_dir(cfg)
    if composition.flow is not None and session_run.finished_result() is None:
        from nascli.search.few_shot.flow import flow_node, run_flow_node
        if flow_node(cfg) is not None:  # one node of a split tree as its own job: the node's lock, not the run's
            result = run_flow_node(cfg, session_run, composition, SearchSession, console.print)
            emit_result(result)
            return result
    with session_run.lock():  # one process per run directory (RunLockedError names the holder)
        done = session_run.finished_result()
        if done is not None:
            console.print(f"[bold]finished run[/] {session_run.path} (not redone; delete result.json to rerun)")
            emit_result(done)
            return done
        try:
            if composition.flow is not None:  # a method with its own search flow (GM-NAS's split tree)
                from nascli.search.few_shot.flow import run_flow
                result = run_flow(cfg, session_run, composition, SearchSession, console.print)
            elif composition.task is not None and composition.task.driver() is not None:  # RL: its own loop
                result = composition.task.driver().search(cfg, session_run, composition)
            else:
                result = SearchSession(cfg, session_run, composition).execute()
        except DivergedError as exc:  # result.json says diverged; the last good checkpoint stays
            emit_result(record_search_divergence(session_run, cfg, exc))
            raise
    emit_result(result)
    return result
