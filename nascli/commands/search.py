"""``nas search``: train a supernet with the composed method, derive its arch, write the run dir."""
from __future__ import annotations

import time
from typing import Any

import torch
from omegaconf import DictConfig

from nascli.commands.common import benchmark_truth, build_supernet, console, emit_result, plain, set_threads
from nascli.commands.run import RunDir, seed_everything
from nascli.device import resolve_device, to_device
from nascli.profile import peak_memory_bytes
from nascli.search.components import build_components
from nascli.search.diagnostics import alpha_entropy, dominant_eigenvalue
from nascli.search.engine import SearchEngine
from nascli.search.optimizers import SEARCH_OPTIMIZERS
from nascli.search.selection import SELECTIONS, SelectionContext
from nascli.spaces import get_space


def _concat(a, b):
    from nascli.data import ImageSplit
    return ImageSplit(torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels]))


class SearchSession:
    """Everything one search run needs, built from the composed config."""

    def __init__(self, cfg: DictConfig):
        from nascli.data import BatchStream, search_splits

        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.space = get_space(cfg.space.name)
        self.run = RunDir.for_config(cfg, "search", f"{self.space.name}-{cfg.dataset.name}", cfg.method.name)
        self.opt_cls = SEARCH_OPTIMIZERS.get(cfg.optimizer.name)
        SELECTIONS.get(cfg.selection.name)  # fail early on a bad criterion
        seed_everything(int(cfg.seed))
        weights_split, arch_split, self.info = search_splits(cfg.dataset)
        opt_cfg = dict(plain(cfg.optimizer))
        opt_cfg.pop("name")
        if not self.opt_cls.uses_arch_batches and opt_cfg.get("data", "train") == "all":
            weights_split = _concat(weights_split, arch_split)
        self.weights_split = weights_split.to(self.device)
        self.arch_split = arch_split.to(self.device)
        self.supernet = to_device(build_supernet(cfg, self.space, self.info.num_classes, self.info.channels),
                                  self.device)
        self.optimizer = self.opt_cls(self.supernet, device=self.device, **opt_cfg)
        self.components = build_components(plain(cfg.method.get("components", [])), self.supernet, self.optimizer)
        s = cfg.search
        bs = int(s.batch_size)
        train_stream = BatchStream(self.weights_split, self.info, bs, seed=int(cfg.seed), train_aug=True,
                                   cutout=int(s.get("cutout", 0)))
        arch_stream = None
        if self.opt_cls.uses_arch_batches:
            arch_stream = BatchStream(self.arch_split, self.info, bs, seed=int(cfg.seed) + 1, train_aug=True,
                                      cutout=int(s.get("cutout", 0)), mode=str(s.val_sampling))
        steps = train_stream.batches_per_pass()
        if s.get("max_steps_per_epoch"):
            steps = min(steps, int(s.max_steps_per_epoch))
        self.engine = SearchEngine(self.supernet, self.optimizer, self.components, train_stream, arch_stream,
                                   int(s.epochs), steps)
        self.elapsed = 0.0

    # -------------------------------------------------------------- helpers
    def selection_context(self) -> SelectionContext:
        from nascli.data import iterate_eval

        def batches(n: int) -> list:
            out = []
            for batch in iterate_eval(self.arch_split, self.info, int(self.cfg.search.batch_size)):
                if len(out) >= n:
                    break
                out.append(batch)
            return out

        return SelectionContext(self.supernet, self.space, batches, self.device,
                                rule=str(self.cfg.method.get("derive_rule", "default")))

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
        record["arch"] = derived.to_string()
        record["benchmark"] = benchmark_truth(self.space.name, self.cfg.dataset.name, derived)
        every = int(self.cfg.diagnostics.get("hessian_every", 0) or 0)
        if every and ((epoch + 1) % every == 0 or epoch + 1 == self.engine.epochs):
            batch = self.selection_context().batches(1)[0]
            self.supernet.train()
            record["hessian_eigenvalue"] = dominant_eigenvalue(self.supernet, batch, self.optimizer.arch_weight_decay)
        record.update(timing)
        record["wall_time_s"] = self.elapsed
        record["peak_memory_mb"] = peak_memory_bytes(self.device) / 2**20
        return record

    # -------------------------------------------------------------- main
    def execute(self) -> dict[str, Any]:
        run, engine, cfg = self.run, self.engine, self.cfg
        state = run.load_checkpoint(map_location=self.device)
        if state is not None:
            engine.load_state_dict(state)
            self.elapsed = float(state.get("elapsed", 0.0))
            run.truncate_metrics(engine.epoch)
            console.print(f"[bold]resuming[/] {run.path} at epoch {engine.epoch} step {engine.step}")
        else:
            run.path.mkdir(parents=True, exist_ok=True)
            run.write_config(cfg)
            run.truncate_metrics(0)
            console.print(f"[bold]search[/] {run.path}")
        every = int(cfg.search.get("checkpoint_every_steps", 0) or 0)
        for epoch in range(engine.epoch, engine.epochs):
            engine.start_epoch(epoch)
            t0 = time.perf_counter()
            timing = engine.run_epoch(checkpoint=self.checkpoint, checkpoint_every=every)
            self.elapsed += time.perf_counter() - t0
            record = self.epoch_record(epoch, timing)
            run.append_metrics(record)
            engine.epoch, engine.step = epoch + 1, 0
            self.checkpoint()
            console.print(f"epoch {epoch + 1}/{engine.epochs} train_acc {record.get('train_acc', 0):.1f} "
                          f"val_acc {record.get('val_acc', float('nan')):.1f} skip {record['skip_count']} "
                          f"{record['images_per_s']:.0f} img/s  {record['arch']}")
        return self.finish()

    def finish(self) -> dict[str, Any]:
        from nascli.commands.derive import write_selection

        cfg, run = self.cfg, self.run
        arch_path, arch, bench = write_selection(run, self.space, self.selection_context(), cfg.selection,
                                                 dataset=str(cfg.dataset.name), file_name="arch.json",
                                                 epoch=self.engine.epochs)
        artifacts = {}
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
            "search_time_s": round(self.elapsed, 3),
            "images_per_s": round(sum(m["images_per_s"] for m in metrics) / max(len(metrics), 1), 2),
            "peak_memory_mb": round(max((m["peak_memory_mb"] for m in metrics), default=0.0), 1),
        }
        if artifacts:
            result["artifacts"] = artifacts
        run.write_json("result.json", result)
        return result


def search(cfg: DictConfig) -> dict[str, Any]:
    set_threads(cfg)
    session_run = RunDir.for_config(cfg, "search", f"{cfg.space.name}-{cfg.dataset.name}", cfg.method.name)
    from nascli.errors import DivergedError
    with session_run.lock():  # one process per run directory (RunLockedError names the holder)
        done = session_run.finished_result()
        if done is not None:
            console.print(f"[bold]finished run[/] {session_run.path} (not redone; delete result.json to rerun)")
            emit_result(done)
            return done
        try:
            result = SearchSession(cfg).execute()
        except DivergedError as exc:  # result.json says diverged; the last good checkpoint stays
            emit_result(session_run.record_divergence(exc, {
                "command": "search", "space": str(cfg.space.name), "dataset": str(cfg.dataset.name),
                "method": str(cfg.method.name), "seed": int(cfg.seed)}))
            raise
    emit_result(result)
    return result
