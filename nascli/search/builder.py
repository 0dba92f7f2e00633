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
from nascli.search.edge_parts import build_edge_parts
from nascli.search.engine import SearchEngine
from nascli.search.mixers import MIXERS
from nascli.search.optimizers.base import SearchOptimizer
from nascli.search.options import construct
from nascli.search.selection import SelectionContext
from nascli.spaces import get_space



def build_supernet(cfg: DictConfig, space, num_classes: int, in_channels: int) -> torch.nn.Module:
    """Mixer (``method.mixer``) + edge parts (``method.edge_parts``) + the space's supernet with
    ``space.supernet`` sizes and ``method.supernet`` switches."""
    mixer_cfg = dict(plain(cfg.method.mixer))
    name = mixer_cfg.pop("name")
    mixer = construct(MIXERS.get(name), mixer_cfg, "method.mixer", space)
    parts = build_edge_parts(plain(cfg.method.get("edge_parts")))
    options = {**dict(plain(cfg.space.get("supernet")) or {}), **dict(plain(cfg.method.get("supernet")) or {})}
    return space.build_supernet(mixer, num_classes, in_channels, parts, **options)


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
    space: Any
    info: Any
    weights_split: Any
    arch_split: Any
    supernet: torch.nn.Module
    optimizer: SearchOptimizer
    components: list[Component]
    engine: SearchEngine

    def selection_context(self) -> SelectionContext:
        """Fixed validation batches of the architecture split, for the selection criteria."""
        from nascli.data import iterate_eval

        batch_size = int(self.cfg.search.batch_size)

        def batches(n: int) -> list:
            out = []
            for batch in iterate_eval(self.arch_split, self.info, batch_size):
                if len(out) >= n:
                    break
                out.append(batch)
            return out

        return SelectionContext(self.supernet, self.space, batches, self.device,
                                rule=str(self.cfg.method.get("derive_rule", "default")))


def _concat(a, b):
    from nascli.data import ImageSplit
    return ImageSplit(torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels]), f"{a.name}+{b.name}")


def build_search(cfg: DictConfig, device: torch.device, composition: Composition | None = None) -> SearchSetup:
    """Check the config (unless its ``composition`` is already checked), then build the whole search on
    ``device`` (seed the RNGs before calling)."""
    from nascli.data import BatchStream, search_splits

    composition = composition or check_search_config(cfg)
    space = get_space(str(cfg.space.name))
    weights_split, arch_split, info = search_splits(cfg.dataset)
    if problem := space.input_size_problem(info.image_size):
        raise NasError(problem)
    uses_arch = composition.optimizer.uses_arch_batches
    if not uses_arch and composition.optimizer_options.get("data", "train") == "all":
        weights_split = _concat(weights_split, arch_split)
    weights_split, arch_split = weights_split.to(device), arch_split.to(device)
    supernet = to_device(build_supernet(cfg, space, info.num_classes, info.channels), device)
    optimizer = build_optimizer(cfg, supernet, device)
    components = build_components(component_specs(cfg), supernet, optimizer)
    s = cfg.search
    bs, cutout = int(s.batch_size), int(s.get("cutout", 0))
    train_stream = BatchStream(weights_split, info, bs, seed=int(cfg.seed), train_aug=True, cutout=cutout)
    arch_stream = None
    if uses_arch:
        arch_stream = BatchStream(arch_split, info, bs, seed=int(cfg.seed) + 1, train_aug=True, cutout=cutout,
                                  mode=str(s.val_sampling))
    steps = train_stream.batches_per_pass()
    if s.get("max_steps_per_epoch"):
        steps = min(steps, int(s.max_steps_per_epoch))
    hessian_method = str((cfg.get("diagnostics") or {}).get("hessian_method", "auto"))
    engine = SearchEngine(supernet, optimizer, components, train_stream, arch_stream, int(s.epochs), steps,
                          hessian_method=hessian_method)
    return SearchSetup(cfg, device, composition, space, info, weights_split, arch_split, supernet, optimizer,
                       components, engine)


def load_supernet(search_cfg: DictConfig, state: dict[str, Any], device: torch.device) -> SearchSetup:
    """A saved search rebuilt from its ``config.yaml`` and restored from its checkpoint ``state``."""
    setup = build_search(search_cfg, device)
    setup.engine.load_state_dict(state)
    return setup
