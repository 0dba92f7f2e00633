"""``nas evaluate arch=<arch.json | NB201 string | Genotype text | published name>``: train from scratch.

Also data-parallel under ``torchrun --nproc_per_node=N -m nascli evaluate ...`` (:mod:`nascli.distributed`):
every rank computes, only rank 0 writes the run directory and prints; the result states ``world_size``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from nascli import distributed
from nascli.commands.artifacts import draw_cells
from nascli.commands.common import console, emit_result, plain, set_threads
from nascli.commands.run import RunDir, seed_everything
from nascli.device import resolve_device, to_device
from nascli.errors import NasError
from nascli.export import check_export, export_finished, save_model
from nascli.logger.session import check_logger, run_observers
from nascli.spaces.lookup import load_arch
from nascli.tasks import task_of
from nascli.tasks.fit import check_fit
from nascli.train.progress import print_line


def _arch_id(text: str, arch) -> str:
    if Path(text).suffix == ".json" or "~" in text or "(" in text:
        return hashlib.sha256(arch.to_string().encode()).hexdigest()[:10]
    return text  # a published genotype name


def build_network(cfg: DictConfig, space, arch, info, task=None):
    """The discrete network: the task's head (``num_classes=`` / ``scale=``), the space yaml's ``network``
    options, the space's variant for the dataset, and the auxiliary head only when the protocol weighs it."""
    variants = {k: plain(v) for k, v in cfg.space.items() if k.endswith("_network")}
    net_cfg = space.network_config(dict(plain(cfg.space.get("network", {})) or {}), info.name, variants)
    if "auxiliary" in net_cfg:
        net_cfg["auxiliary"] = bool(net_cfg["auxiliary"]) and float(cfg.protocol.get("auxiliary_weight", 0)) > 0
    head = (task or task_of(cfg)).head_kwargs(info)
    return space.build_network(arch, **head, in_channels=info.channels, **net_cfg)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    from nascli.profile import count_flops, count_parameters

    set_threads(cfg)
    if (driver := task_of(cfg).driver()) is not None:  # a task with its own loops (reinforcement learning)
        return driver.evaluate(cfg)
    if not cfg.get("arch"):
        raise NasError("evaluate needs arch=<arch.json path | NB201 string | DARTS genotype or published name>")
    space, arch = load_arch(str(cfg.arch), str(cfg.space.name))
    if space.name != cfg.space.name:  # `nas` composes the arch's space; a contradicting space= is the user's
        raise NasError(f"arch {cfg.arch} is an architecture of space {space.name}, but space={cfg.space.name} was "
                       f"given; drop space= (nas picks the arch's space) or pass space={space.name}")
    task = task_of(cfg)
    check_fit(task, space, str(cfg.dataset.name))
    check_export(cfg.get("export"))  # a bad export= or a missing onnx package: before anything is trained
    check_logger(cfg)  # logger=<name> whose client is missing: one line, nothing written
    info = task.dataset_info(cfg.dataset)
    arch_id = _arch_id(str(cfg.arch), arch)
    run = RunDir.for_config(cfg, "evaluate", f"{space.name}-{cfg.dataset.name}", arch_id)
    main = distributed.is_main()  # under torchrun only rank 0 writes and prints
    with run.lock(enabled=main):  # one process per run directory (rank 0 owns it under torchrun)
        done = run.finished_result()
        if done is not None:
            if main:
                console.print(f"[bold]finished run[/] {run.path} (not redone)")
                if (export := check_export(cfg.get("export"))) is not None:  # a new export of the finished net
                    example = task.flops_input(task.input_shape(info), torch.device("cpu"), torch.float32)
                    done = export_finished(run.path, done, export, example)
                emit_result(done)
            return done
        policy = None
        if cfg.get("policy"):
            from nascli.data.policy import load_policy
            policy = load_policy(str(cfg.policy))  # fail before anything is written
        seed_everything(int(cfg.seed))
        model = build_network(cfg, space, arch, info, task)
        params = count_parameters(model)
        shape = task.input_shape(info)
        flops = count_flops(model, shape, make_input=task.flops_input)
        base = {"command": "evaluate", "run_dir": str(run.path), "arch": arch.to_string(), "space": space.name,
                "dataset": str(cfg.dataset.name), "protocol": str(cfg.protocol.name), "seed": int(cfg.seed),
                "params": int(params), "flops": int(flops), "policy": str(cfg.policy) if policy else None}
        base.update(task.cost_fields(shape))
        if cfg.get("dry_run"):
            result = {"status": "dry_run", **base}
            if main:
                run.write_json("result.json", result)
                emit_result(result)
            return result
        try:
            return _train(cfg, task, run, space, arch, model, info, base, policy)
        finally:
            distributed.shutdown()


def _train(cfg, task, run: RunDir, space, arch, model, info, base: dict[str, Any], policy=None) -> dict[str, Any]:
    from nascli.train import Protocol, train_network

    ctx, device = distributed.setup(resolve_device(cfg.device))  # cuda:LOCAL_RANK under torchrun
    main = ctx.is_main
    train_split, test_split, info = task.eval_data(cfg.dataset)
    if problem := space.input_size_problem(task.input_size(info)):
        raise NasError(problem)
    protocol = Protocol.from_config(cfg.protocol)
    model = to_device(model, device)
    state = run.load_checkpoint(map_location=device)  # every rank resumes from rank 0's checkpoint
    if state is None and main:
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(cfg)
        run.write_json("arch.json", arch.to_json())
        for name, obj in task.artifacts(info).items():
            run.write_json(name, obj)
        if policy is not None:
            from nascli.data.policy import policy_table
            run.write_json("policy.json", policy.to_json())
            console.print(policy_table(policy))
        draw_cells(space, arch, run.path / "cells" / "arch")
        run.truncate_metrics(0)
    elif main:
        run.truncate_metrics(int(state.get("epoch", -1)) + 1)
        console.print(f"[bold]resuming[/] {run.path}")

    def on_epoch_end(epoch: int, metrics: dict, resumable: dict) -> None:
        if not main:
            return
        run.append_metrics({"epoch": epoch, **metrics})
        run.save_checkpoint(resumable)
        print_line(console, f"epoch {epoch + 1}/{protocol.epochs} " +
                   " ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float)))

    make_stream = None
    if policy is not None:
        from nascli.data.policy import policy_stream_factory
        make_stream = policy_stream_factory(policy)
    from nascli.errors import DivergedError
    from nascli.logger import observing
    start = 0 if state is None else int(state.get("epoch", -1)) + 1
    watchers = run_observers(cfg, run.path, start, console=console) if main else []  # progress bar, logger=
    try:
        with observing(watchers):
            final = train_network(model, protocol, train_split.to(device), test_split.to(device), info,
                                  device=device, seed=int(cfg.seed), state=state, on_epoch_end=on_epoch_end,
                                  hooks=task.training(protocol, make_stream), observers=watchers)
    except DivergedError as exc:  # result.json says diverged; the last good checkpoint stays
        if main:
            emit_result(run.record_divergence(exc, base))
        raise
    result = {"status": "ok", **base, **{k: v for k, v in final.items()},
              **task.result_fields(model, test_split.to(device), info, device), "world_size": ctx.world_size,
              "benchmark": space.ground_truth(arch, str(cfg.dataset.name)),
              "test_split": test_split.name, "images": {"train": len(train_split), "test": len(test_split)}}
    if main:  # the trained network (model.pt, and export=onnx|torchscript), listed in result.json
        example = task.flops_input(task.input_shape(info), torch.device("cpu"), torch.float32)
        result.update(save_model(run.path, model, example, check_export(cfg.get("export"))))
        run.write_json("result.json", result)
        emit_result(result)
    return result
