"""``nas evaluate arch=<arch.json | NB201 string | Genotype text | published name>``: train from scratch.

Also data-parallel under ``torchrun --nproc_per_node=N -m nascli evaluate ...`` (:mod:`nascli.distributed`):
every rank computes, only rank 0 writes the run directory and prints; the result states ``world_size``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nascli import distributed
from nascli.commands.common import benchmark_truth, console, emit_result, plain, set_threads
from nascli.commands.run import RunDir, seed_everything
from nascli.device import resolve_device, to_device
from nascli.errors import BadArchError, NasError
from nascli.paths import CONF_DIR
from nascli.spaces import get_space, space_names


def load_arch(text: str, default_space: str):
    """(space, arch) from an arch.json path, an NB201 string, DARTS Genotype text or a published name."""
    text = str(text).strip()
    path = Path(text)
    if text.endswith(".json"):
        if not path.is_file():
            raise BadArchError(f"arch file {text} not found")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise BadArchError(f"arch file {text} is not valid JSON ({exc.msg})") from None
        space = get_space(str(data.get("space")))
        return space, space.arch_from_json(data)
    if "~" in text:
        space = get_space("nb201")
        return space, space.parse_arch(text)
    names = [default_space] + [n for n in space_names() if n != default_space]
    errors = []
    for name in names:
        space = get_space(name)
        try:
            return space, space.parse_arch(text)
        except BadArchError as exc:
            errors.append(f"{name}: {exc}")
    raise BadArchError(f"cannot read arch {text!r} as an arch.json path, an NB201 string or a DARTS genotype "
                       f"({'; '.join(errors)})")


def _arch_id(text: str, arch) -> str:
    if Path(text).suffix == ".json" or "~" in text or "(" in text:
        return hashlib.sha256(arch.to_string().encode()).hexdigest()[:10]
    return text  # a published genotype name


def build_network(cfg: DictConfig, space, arch, info):
    net_cfg = dict(plain(cfg.space.get("network", {})) or {})
    if "auxiliary" in net_cfg:
        net_cfg["auxiliary"] = bool(net_cfg["auxiliary"]) and float(cfg.protocol.get("auxiliary_weight", 0)) > 0
    if info.name == "imagenet" and space.name == "darts":
        net_cfg.update(plain(cfg.space.get("imagenet_network", {})) or {}, imagenet=True)
    return space.build_network(arch, info.num_classes, info.channels, **net_cfg)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    from nascli.data import dataset_info
    from nascli.profile import count_flops, count_parameters

    set_threads(cfg)
    if not cfg.get("arch"):
        raise NasError("evaluate needs arch=<arch.json path | NB201 string | DARTS genotype or published name>")
    space, arch = load_arch(str(cfg.arch), str(cfg.space.name))
    if space.name != cfg.space.name:  # the arch decides the space; keep the config consistent with it
        cfg.space = OmegaConf.load(CONF_DIR / "space" / f"{space.name}.yaml")
    info = dataset_info(cfg.dataset)
    arch_id = _arch_id(str(cfg.arch), arch)
    run = RunDir.for_config(cfg, "evaluate", f"{space.name}-{cfg.dataset.name}", arch_id)
    main = distributed.is_main()  # under torchrun only rank 0 writes and prints
    with run.lock(enabled=main):  # one process per run directory (rank 0 owns it under torchrun)
        done = run.finished_result()
        if done is not None:
            if main:
                console.print(f"[bold]finished run[/] {run.path} (not redone)")
                emit_result(done)
            return done
        policy = None
        if cfg.get("policy"):
            from nascli.data.policy import load_policy
            policy = load_policy(str(cfg.policy))  # fail before anything is written
        seed_everything(int(cfg.seed))
        model = build_network(cfg, space, arch, info)
        params = count_parameters(model)
        flops = count_flops(model, (1, info.channels, info.image_size, info.image_size))
        base = {"command": "evaluate", "run_dir": str(run.path), "arch": arch.to_string(), "space": space.name,
                "dataset": str(cfg.dataset.name), "protocol": str(cfg.protocol.name), "seed": int(cfg.seed),
                "params": int(params), "flops": int(flops), "policy": str(cfg.policy) if policy else None}
        if cfg.get("dry_run"):
            result = {"status": "dry_run", **base}
            if main:
                run.write_json("result.json", result)
                emit_result(result)
            return result
        try:
            return _train(cfg, run, space, arch, model, info, base, policy)
        finally:
            distributed.shutdown()


def _train(cfg, run: RunDir, space, arch, model, info, base: dict[str, Any], policy=None) -> dict[str, Any]:
    from nascli.commands.derive import _draw
    from nascli.data import eval_splits
    from nascli.train import Protocol, train_network

    ctx, device = distributed.setup(resolve_device(cfg.device))  # cuda:LOCAL_RANK under torchrun
    main = ctx.is_main
    train_split, test_split, info = eval_splits(cfg.dataset)
    protocol = Protocol.from_config(cfg.protocol)
    model = to_device(model, device)
    state = run.load_checkpoint(map_location=device)  # every rank resumes from rank 0's checkpoint
    if state is None and main:
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(cfg)
        run.write_json("arch.json", arch.to_json())
        if policy is not None:
            from nascli.data.policy import policy_table
            run.write_json("policy.json", policy.to_json())
            console.print(policy_table(policy))
        _draw(arch, run.path / "cells" / "arch")
        run.truncate_metrics(0)
    elif main:
        run.truncate_metrics(int(state.get("epoch", -1)) + 1)
        console.print(f"[bold]resuming[/] {run.path}")

    def on_epoch_end(epoch: int, metrics: dict, resumable: dict) -> None:
        if not main:
            return
        run.append_metrics({"epoch": epoch, **metrics})
        run.save_checkpoint(resumable)
        console.print(f"epoch {epoch + 1}/{protocol.epochs} " +
                      " ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float)))

    make_stream = None
    if policy is not None:
        from nascli.data.policy import policy_stream_factory
        make_stream = policy_stream_factory(policy)
    from nascli.errors import DivergedError
    try:
        final = train_network(model, protocol, train_split.to(device), test_split.to(device), info, device=device,
                              seed=int(cfg.seed), state=state, on_epoch_end=on_epoch_end, make_stream=make_stream)
    except DivergedError as exc:  # result.json says diverged; the last good checkpoint stays
        if main:
            emit_result(run.record_divergence(exc, base))
        raise
    result = {"status": "ok", **base, **{k: v for k, v in final.items()}, "world_size": ctx.world_size,
              "benchmark": benchmark_truth(space.name, str(cfg.dataset.name), arch)}
    if main:
        run.write_json("result.json", result)
        emit_result(result)
    return result
