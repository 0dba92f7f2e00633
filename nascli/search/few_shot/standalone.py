"""Stand-alone training of a leaf's architecture, resumable and stoppable at any epoch (successive halving).

A leaf's discrete network (the space's evaluation network of the leaf's ``arch.json``) is trained from scratch
under a training protocol (``conf/protocol/<name>.yaml``, :mod:`nascli.train.protocol`) by the plain training
loop (:func:`nascli.train.train_network`, classification), on the search's weight split, and tested after every epoch on the
search's architecture split (the architectures are compared on held-out search data, never on the test set).
The learning-rate schedule always spans the protocol's full ``epochs``; a rung of successive halving stops the
run after epoch ``end - 1`` and a later rung continues it from its checkpoint, so a network trained to epoch 100
in two rungs has exactly the weights of one run stopped at epoch 100.

Files: ``<leaf dir>/standalone/checkpoint.pt`` (the loop's resumable state, written after every epoch) and
``metrics.jsonl`` (one record per epoch). A kill at any point loses at most the epoch in progress: the metrics
written after the last checkpoint are dropped on resume and that epoch is trained again, identically.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nascli.errors import NasError
from nascli.paths import CONF_DIR
from nascli.plain import plain
from nascli.rundir import RunDir
from nascli.train.protocol import Protocol, load_protocol


def halving_protocol(name: str, overrides: dict[str, Any] | None = None) -> Protocol:
    """The packaged protocol ``name`` with ``overrides`` (protocol keys) applied; one-line errors for an unknown
    name or key."""
    path = CONF_DIR / "protocol" / f"{name}.yaml"
    if not path.exists():
        valid = sorted(p.stem for p in (CONF_DIR / "protocol").glob("*.yaml"))
        raise NasError(f"unknown protocol {name!r} for method.flow.halving.protocol; valid choices: {', '.join(valid)}")
    base = load_protocol(path)
    return Protocol.from_cfg({**dataclasses.asdict(base), **dict(overrides or {})}) if overrides else base


def leaf_network(cfg: DictConfig, space, arch, info, protocol: Protocol):
    """The evaluation network of ``arch``: the space yaml's ``network`` options and its variant for the dataset;
    an auxiliary head only when the protocol weighs it (as ``nas evaluate`` builds it)."""
    variants = {k: plain(v) for k, v in cfg.space.items() if k.endswith("_network")}
    net_cfg = space.network_config(dict(plain(cfg.space.get("network", {})) or {}), info.name, variants)
    if "auxiliary" in net_cfg:
        net_cfg["auxiliary"] = bool(net_cfg["auxiliary"]) and protocol.auxiliary_weight > 0
    return space.build_network(arch, info.num_classes, info.channels, **net_cfg)


class _RungEnd(Exception):
    """Raised from the epoch callback once the rung's last epoch is checkpointed: stops the loop there."""


def train_leaf(cfg: DictConfig, leaf_dir: Path, protocol: Protocol, end: int, say=print) -> list[dict[str, Any]]:
    """Train the leaf in ``leaf_dir`` (its ``arch.json``) stand-alone until ``end`` epochs are done (module
    docstring); returns the per-epoch metrics of epochs 0..end-1."""
    import json

    from nascli.data import search_splits
    from nascli.device import resolve_device
    from nascli.rng import seed_everything
    from nascli.spaces import get_space
    from nascli.train import train_network

    run = RunDir(leaf_dir / "standalone")
    device = resolve_device(str(cfg.device))
    state = run.load_checkpoint(map_location=device)
    done = 0 if state is None else int(state["epochs_done"])
    if done >= end:
        return [m for m in run.read_metrics() if m["epoch"] < end]
    space = get_space(str(cfg.space.name))
    arch = space.arch_from_json(json.loads((leaf_dir / "arch.json").read_text()))
    weights, held_out, info = search_splits(cfg.dataset)
    seed_everything(int(cfg.seed))
    model = leaf_network(cfg, space, arch, info, protocol)
    run.path.mkdir(parents=True, exist_ok=True)
    run.truncate_metrics(done)

    def on_epoch_end(epoch: int, metrics: dict[str, Any], resumable: dict[str, Any]) -> None:
        run.append_metrics({"epoch": epoch, **metrics})
        run.save_checkpoint(resumable)
        say(f"leaf {leaf_dir.name} stand-alone epoch {epoch + 1}/{protocol.epochs} "
            + " ".join(f"{k} {v:.2f}" for k, v in metrics.items() if k.startswith("test_")))
        if epoch + 1 >= end:
            raise _RungEnd

    try:
        train_network(model, protocol, weights, held_out, info, device=device, seed=int(cfg.seed), state=state,
                      on_epoch_end=on_epoch_end)
    except _RungEnd:
        pass
    return [m for m in run.read_metrics() if m["epoch"] < end]
