"""The loops ``task=reinforcement_learning`` runs instead of the supervised search engine and training loop.

* ``nas search``: the composed method's supernet (any mixer and edge parts, built by
  :func:`nascli.search.builder.build_supernet`) is the PPO agent's encoder; weights and alpha learn jointly from
  the PPO loss (alpha by its own Adam, :mod:`nascli.rl.agent`). After each evaluation period
  (``protocol.rollouts_per_epoch`` PPO iterations) metrics.jsonl gets the period's returns (evaluation episodes
  and recent training episodes), PPO's statistics, alpha, its entropy and the cell derived by magnitude; the
  run ends with arch.json (``selection``), so ``nas derive`` and ``nas evaluate arch=<run>/arch.json`` work.
* ``nas evaluate``: the discrete network of ``arch=`` (or ``task.encoder=impala_baseline``) is trained from
  scratch with the same agent for ``protocol.epochs`` periods; the result's ``mean_return`` is the mean return
  of ``protocol.final_eval_episodes`` evaluation episodes of the final policy, ``returns`` the curve.

Checkpoint (format ``nascli.rl/1``, written after every period): the agent (:func:`~nascli.rl.agent.agent_state`),
the environments' states and RNGs (:func:`~nascli.rl.envs.capture_vec_env`: exact for MiniGrid), the global RNGs
and the period. A killed run resumes from its last period: evaluation episodes start from a fixed seed, so the
resumed curve continues the uninterrupted one.
"""
from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from omegaconf import DictConfig

from nascli.checkpoint import RL_FORMAT
from nascli.commands.common import console, emit_result, set_threads  # orchestration: the commands' console
from nascli.device import resolve_device, to_device
from nascli.errors import IncompatibleError, NasError
from nascli.logger import observing
from nascli.logger.session import run_observers
from nascli.rng import capture_rng_state, restore_rng_state, seed_everything
from nascli.rundir import RunDir, atomic_write_bytes

#: the per-evaluation-period keys every protocol of this task must set (conf/protocol/rl_*.yaml)
PROTOCOL_KEYS = ("n_envs", "n_steps", "batch_size", "n_epochs", "lr", "adam_eps", "gamma", "gae_lambda",
                 "clip_range", "ent_coef", "vf_coef", "max_grad_norm", "rollouts_per_epoch", "epochs",
                 "eval_episodes", "final_eval_episodes", "eval_deterministic")
#: seed of the evaluation environment's first reset: ``EVAL_SEED_OFFSET + seed`` (fixed across periods)
EVAL_SEED_OFFSET = 10_000
#: the search optimizers whose arch settings mean joint training of alpha on the RL loss
JOINT_OPTIMIZERS = ("bilevel", "single_level")


def check_protocol(protocol: Any) -> None:
    if protocol is None or protocol.get("name") is None:
        raise NasError("task=reinforcement_learning needs a PPO protocol; valid choices: rl_ppo_quick")
    missing = [k for k in PROTOCOL_KEYS if protocol.get(k) is None]
    if missing:
        raise NasError(f"protocol={protocol.name} is not a PPO protocol (missing {', '.join(missing)}); "
                       f"use protocol=rl_ppo_quick")
    if int(protocol.batch_size) > int(protocol.n_steps) * int(protocol.n_envs):
        raise NasError(f"protocol.batch_size={protocol.batch_size} is larger than a rollout "
                       f"(n_steps {protocol.n_steps} x n_envs {protocol.n_envs})")


def check_search(cfg: DictConfig, composition: Any) -> None:
    """One-line refusals of what the RL search cannot run (nothing is built or written yet)."""
    if composition.components:
        name = composition.components[0][0]
        raise IncompatibleError(f"cannot compose this search: method {composition.method}'s component {name} hooks "
                                f"into nascli's supervised search optimizer, and task=reinforcement_learning trains "
                                f"through PPO; use a method without components (darts, gdas, pc_darts, ...)")
    if composition.optimizer_name not in JOINT_OPTIMIZERS:
        raise IncompatibleError(f"cannot compose this search: task=reinforcement_learning trains alpha jointly "
                                f"with the weights on the PPO loss (RL-DARTS), and optimizer "
                                f"{composition.optimizer_name} is another scheme; valid choices: "
                                f"{', '.join(JOINT_OPTIMIZERS)}")
    check_protocol(cfg.get("protocol"))


def check_frame_size(space: Any, info: Any) -> None:
    """One line when the space's networks cannot take the environment's frames (naming the env's size keys)."""
    if problem := space.input_size_problem(info.image_size):
        raise NasError(f"{problem.split(';')[0]}: the frames of dataset={info.name}; set their size with "
                       f"dataset.tile_size (MiniGrid: grid cells x tile_size px) or dataset.image_size (gymnasium)")


class AgentLoop:
    """Evaluation periods of PPO with records, checkpoints and resume (module docstring), for one run dir.

    ``describe(epoch)`` adds fields to a period's record (alpha, derived cell); ``on_epoch_start(epoch)``
    runs before a period (mixer schedules, alpha warm-up); ``on_epoch_end`` hooks run after its checkpoint;
    ``space`` (a search's) labels the alphas the logger draws."""

    def __init__(self, cfg: DictConfig, run: RunDir, model: Any, env: Any, epochs: int, arch_step: Any = None,
                 describe: Callable[[int], dict[str, Any]] | None = None,
                 on_epoch_start: Callable[[int], None] | None = None, kind: str = "search", space: Any = None):
        self.cfg, self.run, self.model, self.env, self.space = cfg, run, model, env, space
        self.protocol, self.env_cfg = cfg.protocol, cfg.dataset
        self.epochs, self.arch_step, self.kind = int(epochs), arch_step, kind
        self.describe = describe or (lambda epoch: {})
        self.on_epoch_start = on_epoch_start or (lambda epoch: None)
        self.on_epoch_end: list[Callable[[int], None]] = []
        self.epoch = 0
        self.elapsed = 0.0

    # -------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        from nascli.rl.agent import agent_state
        from nascli.rl.envs import capture_vec_env

        return {"format": RL_FORMAT, "kind": self.kind, "epoch": self.epoch, "elapsed": self.elapsed,
                "supernet": self.model.policy.features_extractor.net.state_dict(),
                "agent": agent_state(self.model, self.arch_step),
                "envs": capture_vec_env(self.env, self.env_cfg), "rng": capture_rng_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from nascli.rl.agent import load_agent_state
        from nascli.rl.envs import restore_vec_env

        if state.get("kind") != self.kind:
            raise NasError(f"{self.run.checkpoint_path} is the checkpoint of an RL {state.get('kind')}, not of "
                           f"an RL {self.kind}; move it away to restart this run")
        self.env.reset()  # the environments exist (grids built) before their saved state replaces them
        restore_vec_env(self.env, self.env_cfg, state["envs"])
        load_agent_state(self.model, self.arch_step, state["agent"])
        restore_rng_state(state["rng"])  # last: building and resetting above drew random numbers
        self.epoch, self.elapsed = int(state["epoch"]), float(state["elapsed"])

    # -------------------------------------------------------------- loop
    def record(self, epoch: int, stats: dict[str, float], seconds: float) -> dict[str, Any]:
        from nascli.rl.agent import evaluation_returns, timesteps_per_epoch, training_returns
        from nascli.rl.envs import finished_episodes

        p = self.protocol
        returns = evaluation_returns(self.model, self.env_cfg, int(p.eval_episodes),
                                     EVAL_SEED_OFFSET + int(self.cfg.seed), bool(p.eval_deterministic))
        train = training_returns(self.model)
        rec: dict[str, Any] = {"epoch": epoch, "timesteps": int(self.model.num_timesteps),
                               "eval_return_mean": _mean(returns), "eval_return_std": _std(returns),
                               "eval_returns": returns, "train_return_mean": _mean(train) if train else None,
                               "train_episodes": finished_episodes(self.env)}
        rec.update({f"ppo_{k}": v for k, v in stats.items()})
        if self.arch_step is not None:
            rec["arch_steps"] = int(self.arch_step.steps)
        rec.update(self.describe(epoch))
        rec["epoch_time_s"] = seconds
        rec["env_steps_per_s"] = timesteps_per_epoch(p) / seconds if seconds > 0 else 0.0
        rec["wall_time_s"] = self.elapsed
        return rec

    def execute(self) -> list[dict[str, Any]]:
        """Run (or resume) the periods; the run's metrics records."""
        from nascli.rl.agent import learn_epoch

        run = self.run
        state = run.load_checkpoint(expect=RL_FORMAT)
        if state is not None:
            self.load_state_dict(state)
            run.truncate_metrics(self.epoch)
            console.print(f"[bold]resuming[/] {run.path} at period {self.epoch}")
        else:
            run.truncate_metrics(0)
        # the logger (logger=) writes one point per evaluation period, the period as the step
        with observing(run_observers(self.cfg, run.path, self.epoch, self.space)) as watchers:
            while self.epoch < self.epochs:
                epoch = self.epoch
                self.on_epoch_start(epoch)
                t0 = time.perf_counter()
                stats = learn_epoch(self.model, self.protocol)
                seconds = time.perf_counter() - t0
                self.elapsed += seconds
                _check_finite(self.model, epoch)
                rec = self.record(epoch, stats, seconds)
                run.append_metrics(rec)
                watchers.on_epoch_end(epoch, rec)
                console.print(f"period {epoch + 1}/{self.epochs} steps {rec['timesteps']} eval_return "
                              f"{rec['eval_return_mean']:.3f} train_return {rec['train_return_mean'] or 0.0:.3f} "
                              f"{rec['env_steps_per_s']:.0f} steps/s" + (f"  {rec['arch']}" if "arch" in rec else ""))
                self.epoch = epoch + 1
                run.save_checkpoint(self.state_dict())
                for hook in self.on_epoch_end:
                    hook(epoch)
        return run.read_metrics()


def _mean(xs: list[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else float("nan")


def _std(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return float(math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)))


def _check_finite(model: Any, epoch: int) -> None:
    from nascli.errors import DivergedError

    if not all(bool(torch.isfinite(p).all()) for p in model.policy.parameters()):
        raise DivergedError(epoch, 0, "a policy weight")


def _curve(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"epoch": m["epoch"], "timesteps": m["timesteps"], "eval_return_mean": m["eval_return_mean"],
             "train_return_mean": m["train_return_mean"]} for m in metrics]


# ---------------------------------------------------------------------------------------------- search
class RLSearch:
    """``nas search task=reinforcement_learning`` (module docstring) on one run directory."""

    def __init__(self, cfg: DictConfig, run: RunDir, composition: Any):
        from nascli.rl.agent import attach_arch_optimizer, build_ppo
        from nascli.rl.envs import make_vec_env
        from nascli.search.builder import build_supernet

        check_search(cfg, composition)
        self.cfg, self.run, self.task, self.space = cfg, run, composition.task, composition.space
        self.device = resolve_device(cfg.device)
        seed = int(cfg.seed)
        seed_everything(seed)
        self.info = self.task.dataset_info(cfg.dataset)
        check_frame_size(self.space, self.info)
        self.supernet = to_device(build_supernet(cfg, self.space, self.task.head_kwargs(self.info),
                                                 self.info.channels), self.device)
        self.mixer = self.supernet.mixer
        self.env = make_vec_env(cfg.dataset, int(cfg.protocol.n_envs), seed)
        self.model = build_ppo(self.env, self.supernet, self.task.features_dim, cfg.protocol, seed, self.device)
        o = cfg.optimizer
        self.arch_step = attach_arch_optimizer(self.model.policy, self.mixer.arch_parameters(), lr=float(o.arch_lr),
                                               betas=o.arch_betas, weight_decay=float(o.arch_weight_decay),
                                               start_epoch=int(o.get("arch_start_epoch", 0) or 0))
        self.loop = AgentLoop(cfg, run, self.model, self.env, int(cfg.search.epochs), self.arch_step,
                              describe=self.describe, on_epoch_start=self.start_epoch, kind="search",
                              space=self.space)

    def start_epoch(self, epoch: int) -> None:
        self.mixer.on_epoch_start(epoch, self.loop.epochs)  # e.g. GDAS's temperature
        self.arch_step.on_epoch_start(epoch)

    def selection_context(self) -> Any:
        from nascli.search.selection import SelectionContext

        return SelectionContext(self.supernet, self.space, None, self.device,
                                rule=str(self.cfg.method.get("derive_rule", "default")))

    def describe(self, epoch: int) -> dict[str, Any]:
        from nascli.search.diagnostics import alpha_entropy
        from nascli.search.selection import SELECTIONS
        from nascli.spaces.param_free import parameter_free_share

        derived = SELECTIONS.get("magnitude")(self.selection_context()).arch
        probs = self.mixer.probabilities()
        return {**self.mixer.schedule_values(), "alpha_entropy": alpha_entropy(probs),
                "alphas": {ct: p.tolist() for ct, p in probs.items()}, "arch": derived.to_string(),
                "skip_count": self.space.skip_count(derived),
                "param_free_share": parameter_free_share(self.space, derived)}

    def execute(self) -> dict[str, Any]:
        from nascli.commands.artifacts import write_selection
        from nascli.rl.agent import timesteps_per_epoch

        cfg, run = self.cfg, self.run
        if not run.checkpoint_path.exists():
            run.path.mkdir(parents=True, exist_ok=True)
            run.write_config(cfg)
            console.print(f"[bold]search[/] {run.path}")
        metrics = self.loop.execute()
        arch_path, arch, bench = write_selection(run, self.space, self.selection_context(), cfg.selection,
                                                 dataset=str(cfg.dataset.name), file_name="arch.json",
                                                 epoch=self.loop.epochs)
        last = metrics[-1] if metrics else {}
        result = {
            "status": "ok", "command": "search", "task": self.task.name, "run_dir": str(run.path),
            "arch_path": str(arch_path), "arch": arch.to_string(), "space": self.space.name,
            "dataset": str(cfg.dataset.name), "method": str(cfg.method.name), "optimizer": str(cfg.optimizer.name),
            "selection": str(cfg.selection.name), "seed": int(cfg.seed), "epochs": self.loop.epochs,
            "timesteps": int(self.model.num_timesteps), "timesteps_per_epoch": timesteps_per_epoch(cfg.protocol),
            "skip_count": self.space.skip_count(arch), "benchmark": bench,
            "eval_return_mean": last.get("eval_return_mean"), "returns": _curve(metrics),
            "search_time_s": round(self.loop.elapsed, 3),
            "env_steps_per_s": round(self.model.num_timesteps / self.loop.elapsed, 2) if self.loop.elapsed else 0.0,
        }
        run.write_json("result.json", result)
        self.env.close()
        return result


def load_search(search_cfg: DictConfig, state: dict[str, Any], device: torch.device) -> tuple[Any, int]:
    """(setup with ``.space`` and ``.selection_context()``, epoch) of a saved RL search, for ``nas derive``:
    the supernet rebuilt from ``config.yaml`` and restored from the checkpoint (no environment is built)."""
    from nascli.search.builder import build_supernet
    from nascli.search.composition import check_search_config
    from nascli.search.selection import SelectionContext
    from nascli.tasks import task_of

    check_search_config(search_cfg)  # the derivation's selection x task, one line
    if state.get("format") != RL_FORMAT or state.get("kind") != "search":
        raise NasError("the checkpoint is not an RL search's; move it away or derive from another run")
    task = task_of(search_cfg)
    from nascli.spaces import get_space
    space = get_space(str(search_cfg.space.name))
    info = task.dataset_info(search_cfg.dataset)
    supernet = to_device(build_supernet(search_cfg, space, task.head_kwargs(info), info.channels), device)
    supernet.load_state_dict(state["supernet"])
    rule = str(search_cfg.method.get("derive_rule", "default"))
    ctx = SelectionContext(supernet, space, None, device, rule=rule)
    return SimpleNamespace(space=space, supernet=supernet, selection_context=lambda: ctx), int(state["epoch"])


# ---------------------------------------------------------------------------------------------- evaluate
def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """``nas evaluate task=reinforcement_learning`` (module docstring)."""
    from nascli.commands.evaluate import _arch_id, build_network
    from nascli.profile import count_parameters
    from nascli.rl.agent import build_ppo, timesteps_per_epoch
    from nascli.rl.encoder import ImpalaEncoder
    from nascli.rl.envs import make_vec_env
    from nascli.spaces.lookup import load_arch
    from nascli.tasks import task_of
    from nascli.tasks.fit import check_fit

    set_threads(cfg)
    task = task_of(cfg)
    for key, why in (("export", "the trained agent is kept as policy.pt (the SB3 policy's state dict)"),
                     ("policy", "an image augmentation policy is for classification")):
        if cfg.get(key):
            raise NasError(f"{key}={cfg.get(key)} does not apply to task=reinforcement_learning ({why}); drop it")
    check_protocol(cfg.get("protocol"))
    dataset = str(cfg.dataset.name)
    if dataset not in task.dataset_names():
        raise NasError(f"dataset={dataset} is not a task=reinforcement_learning environment; valid choices: "
                       f"{', '.join(task.dataset_names())}")
    info = task.dataset_info(cfg.dataset)
    if task.encoder == "impala_baseline":
        space, arch, arch_text = None, None, "impala_baseline"
        group, arch_id = f"impala-{dataset}", "impala_baseline"
    else:
        if not cfg.get("arch"):
            raise NasError("evaluate needs arch=<arch.json path | NB201 string | DARTS genotype> or "
                           "task.encoder=impala_baseline")
        space, arch = load_arch(str(cfg.arch), str(cfg.space.name))
        if space.name != cfg.space.name:
            raise NasError(f"arch {cfg.arch} is an architecture of space {space.name}, but space={cfg.space.name} "
                           f"was given; drop space= (nas picks the arch's space) or pass space={space.name}")
        check_fit(task, space, dataset)
        check_frame_size(space, info)
        arch_text, group, arch_id = arch.to_string(), f"{space.name}-{dataset}", _arch_id(str(cfg.arch), arch)
    run = RunDir.for_config(cfg, "evaluate", group, arch_id)
    with run.lock():
        done = run.finished_result()
        if done is not None:
            console.print(f"[bold]finished run[/] {run.path} (not redone)")
            emit_result(done)
            return done
        seed = int(cfg.seed)
        seed_everything(seed)
        if arch is None:
            net = ImpalaEncoder(info.channels, info.image_size, task.impala_channels, task.features_dim)
        else:
            net = build_network(cfg, space, arch, info, task)
        base = {"command": "evaluate", "task": task.name, "run_dir": str(run.path), "arch": arch_text,
                "encoder": task.encoder, "space": space.name if space else None, "dataset": dataset,
                "protocol": str(cfg.protocol.name), "seed": seed, "params": int(count_parameters(net)),
                "timesteps_per_epoch": timesteps_per_epoch(cfg.protocol)}
        if cfg.get("dry_run"):
            result = {"status": "dry_run", **base}
            run.write_json("result.json", result)
            emit_result(result)
            return result
        device = resolve_device(cfg.device)
        net = to_device(net, device)
        env = make_vec_env(cfg.dataset, int(cfg.protocol.n_envs), seed)
        model = build_ppo(env, net, task.features_dim, cfg.protocol, seed, device)
        if not run.checkpoint_path.exists():
            run.path.mkdir(parents=True, exist_ok=True)
            run.write_config(cfg)
            if arch is not None:
                run.write_json("arch.json", arch.to_json())
            console.print(f"[bold]evaluate[/] {run.path}")
        loop = AgentLoop(cfg, run, model, env, int(cfg.protocol.epochs), kind="evaluate")
        metrics = loop.execute()
        result = _final(cfg, loop, model, base, metrics)
        env.close()
    emit_result(result)
    return result


def _final(cfg: DictConfig, loop: AgentLoop, model: Any, base: dict[str, Any],
           metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation's result: ``mean_return`` over ``final_eval_episodes`` episodes of the final policy."""
    from nascli.rl.agent import evaluation_returns

    p = cfg.protocol
    returns = evaluation_returns(model, cfg.dataset, int(p.final_eval_episodes),
                                 EVAL_SEED_OFFSET + 1 + int(cfg.seed), bool(p.eval_deterministic))
    result = {"status": "ok", **base, "mean_return": _mean(returns), "return_std": _std(returns),
              "episodes": len(returns), "timesteps": int(model.num_timesteps), "returns": _curve(metrics),
              "train_time_s": round(loop.elapsed, 3)}
    buf = io.BytesIO()
    torch.save(model.policy.state_dict(), buf)  # SB3 policy weights (load with weights_only=True)
    path = Path(loop.run.path) / "policy.pt"
    atomic_write_bytes(path, buf.getvalue())
    result["policy_path"] = str(path)
    loop.run.write_json("result.json", result)
    return result


class RLDriver:
    """The task's loops (``Task.driver``): search, evaluate and a saved search for ``nas derive``."""

    def search(self, cfg: DictConfig, run: RunDir, composition: Any) -> dict[str, Any]:
        return RLSearch(cfg, run, composition).execute()

    def evaluate(self, cfg: DictConfig) -> dict[str, Any]:
        return evaluate(cfg)

    def load_search(self, search_cfg: DictConfig, state: dict[str, Any], device: torch.device) -> tuple[Any, int]:
        return load_search(search_cfg, state, device)
