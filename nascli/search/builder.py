"""Build a search from a composed config: space, mixer, edge parts, supernet, optimizer, components, data
streams and engine. Used by ``nas search`` (a new or resumed run) and ``nas derive`` (a saved supernet,
:func:`load_supernet`), so neither command imports the other.

The config is checked first (:func:`nascli.search.composition.check_search_config`): unknown option keys and
combinations that cannot work are refused before a model or a dataset is built.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig

from nascli.device import to_device
from nascli.plain import plain
from nascli.errors import NasError
from nascli.search.components import Component, build_components, component_specs
from nascli.search.composition import Composition, check_search_config
from nascli.search.diagnostics import HessianProbe
from nascli.search.edge_parts import build_edge_parts
from nascli.search.engine import SearchEngine
from nascli.search.mixers import MIXERS
from nascli.search.optimizers.base import SearchOptimizer
from nascli.search.options import construct
from nascli.search.selection import SelectionContext
from nascli.spaces import get_space
from nascli.tasks import Task, task_of



def build_supernet(cfg: DictConfig, space, head: dict[str, Any] | int, in_channels: int) -> torch.nn.Module:
    """Mixer (``method.mixer``) + edge parts (``method.edge_parts``) + the space's supernet with the task's
    ``head`` keywords (``Task.head_kwargs``: ``num_classes=`` / ``scale=``; a bare int is a classification
    head's class count), ``space.supernet`` sizes and ``method.supernet`` switches."""
    head = {"num_classes": head} if isinstance(head, int) else head
    mixer_cfg = dict(plain(cfg.method.mixer))
    name = mixer_cfg.pop("name")
    mixer = construct(MIXERS.get(name), mixer_cfg, "method.mixer", space)
    parts = build_edge_parts(plain(cfg.method.get("edge_parts")))
    options = {**dict(plain(cfg.space.get("supernet")) or {}), **dict(plain(cfg.method.get("supernet")) or {})}
    return space.build_supernet(mixer, **head, in_channels=in_channels, edge_parts=parts, **options)


def build_optimizer(cfg: DictConfig, supernet, device: torch.device) -> SearchOptimizer:
    from nascli.search.optimizers import SEARCH_OPTIMIZERS

    opts = dict(plain(cfg.optimizer))
    name = opts.pop("name")
    return construct(SEARCH_OPTIMIZERS.get(name), opts, "optimizer", supernet, device=device)


@dataclass
class SearchSetup:
    """Everything one search needs, built from its config (no files touched)."""

    cfg: DictConfig
    device: torch.device
    composition: Composition
    task: Task
    space: Any
    info: Any
    weights_split: Any
    arch_split: Any
    supernet: torch.nn.Module
    optimizer: SearchOptimizer
    components: list[Component]
    engine: SearchEngine

    def selection_context(self) -> SelectionContext:
        """Fixed validation batches of the architecture split (the task's evaluation batches) and the task's
        criterion, for the selection criteria."""
        batch_size = int(self.cfg.search.batch_size)

        def batches(n: int) -> list:
            out = []
            for batch in self.task.eval_batches(self.arch_split, self.info, batch_size):
                if len(out) >= n:
                    break
                out.append(batch)
            return out

        return SelectionContext(self.supernet, self.space, batches, self.device,
                                rule=str(self.cfg.method.get("derive_rule", "default")),
                                criterion=self.task.criterion)


def build_search(cfg: DictConfig, device: torch.device, composition: Composition | None = None,
                 data: tuple[Any, Any, Any] | None = None) -> SearchSetup:
    """Check the config (unless its ``composition`` is already checked), then build the whole search on
    ``device`` (seed the RNGs before calling). ``data``: the task's ``search_data(cfg.dataset)`` when the
    caller already holds it (a seed group shares one copy, nascli/search/seed_group.py)."""
    composition = composition or check_search_config(cfg)
    task = task_of(cfg)
    space = get_space(str(cfg.space.name))
    weights_split, arch_split, info = data if data is not None else task.search_data(cfg.dataset)
    if problem := space.input_size_problem(task.input_size(info)):
        raise NasError(problem)
    uses_arch = composition.optimizer.uses_arch_batches
    if not uses_arch and composition.optimizer_options.get("data", "train") == "all":
        weights_split = task.concat(weights_split, arch_split)
    weights_split, arch_split = weights_split.to(device), arch_split.to(device)
    supernet = to_device(build_supernet(cfg, space, task.head_kwargs(info), info.channels), device)
    optimizer = build_optimizer(cfg, supernet, device)
    optimizer.use_criterion(task.criterion)  # the task's loss and batch score (nascli/tasks)
    components = build_components(component_specs(cfg), supernet, optimizer)
    s = cfg.search
    bs, cutout = int(s.batch_size), int(s.get("cutout", 0))
    train_stream = task.search_stream(weights_split, info, bs, seed=int(cfg.seed), cutout=cutout)
    arch_stream = None
    if uses_arch:
        arch_stream = task.search_stream(arch_split, info, bs, seed=int(cfg.seed) + 1, cutout=cutout,
                                         mode=str(s.val_sampling))
    steps = train_stream.batches_per_pass()
    if s.get("max_steps_per_epoch"):
        steps = min(steps, int(s.max_steps_per_epoch))
    hessian_method = str((cfg.get("diagnostics") or {}).get("hessian_method", "auto"))
    engine = SearchEngine(supernet, optimizer, components, train_stream, arch_stream, int(s.epochs), steps,
                          hessian_method=hessian_method)
    engine.hessian_probe = HessianProbe(hessian_method, loss_fn=task.criterion.loss)  # L_val = the task's loss
    return SearchSetup(cfg, device, composition, task, space, info, weights_split, arch_split, supernet, optimizer,
                       components, engine)


def load_supernet(search_cfg: DictConfig, state: dict[str, Any], device: torch.device) -> SearchSetup:
    """A saved search rebuilt from its ``config.yaml`` and restored from its checkpoint ``state``."""
    setup = build_search(search_cfg, device)
    setup.engine.load_state_dict(state)
    return setup
