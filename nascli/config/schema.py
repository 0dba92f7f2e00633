"""The schema of each command's composed config: one declarative table per command.

A :class:`Schema` maps dotted keys to :mod:`nascli.config.rules`; a key in the table is checked when
the composed config holds it (group files differ per choice: ``space.supernet.N`` exists for nb201,
``space.supernet.layers`` for darts). ``closed`` sections (``""`` is the top level) accept no key that
neither the table nor a shipped config file of the command names, so ``+search.epochz=3`` or
``++sed=1`` are refused with the nearest valid key.
``open`` sections belong to other code: ``method``, ``optimizer`` and ``selection`` options are
checked against the registered classes' signatures by the seams layer, and the benchmark's
``variants``/``derive_overrides`` are composed (and checked) by the study planner.

Alongside the value rules, ``checks`` names the checks that look outside the config (the output
folder, an ``arch=`` file, a run directory); they live in :mod:`nascli.config.checks`.
"""
from __future__ import annotations

from dataclasses import dataclass

from nascli.config.rules import Choice, Flag, Int, ListOf, Mapping, Number, Pattern, Rule, Text

DEVICE = Pattern(regex=r"auto|cpu|cuda(:\d+)?", words="one of auto, cpu, cuda, cuda:N")

COMMON: dict[str, Rule] = {
    "device": DEVICE,
    "out_root": Text(),
    "num_threads": Int(low=1, nullable=True),
}
SEED: dict[str, Rule] = {"seed": Int(low=0)}
# nas search 'seeds=[0,1,2,3]': several seeds in one process (nascli/commands/seed_group.py)
SEED_GROUP: dict[str, Rule] = {"seeds": ListOf(item=Int(low=0), nonempty=True, nullable=True,
                                               example="seeds=[0,1,2,3]"),
                               "seeds_mode": Choice(choices=("auto", "turns", "stacked"))}

# conf/logger/*.yaml (nascli/logger/registry.py): where epoch records are also written; not hashed (NON_SEMANTIC_KEYS)
LOGGER: dict[str, Rule] = {
    "logger.name": Choice(choices=("auto", "tensorboard", "none")),
    "logger.heatmaps": Flag(),
}

SPACE: dict[str, Rule] = {
    "space.name": Text(),
    "space.supernet.C": Int(low=1),
    "space.supernet.N": Int(low=1),
    "space.supernet.layers": Int(low=1),
    "space.supernet.stem_multiplier": Int(low=1),
    "space.supernet.impl": Choice(choices=("fast", "reference")),
    "space.network.C": Int(low=1),
    "space.network.N": Int(low=1),
    "space.network.layers": Int(low=1),
    "space.network.auxiliary": Flag(),
    "space.imagenet_network.C": Int(low=1),
    "space.imagenet_network.layers": Int(low=1),
    "space.search_defaults.nesterov": Flag(),
    "space.search_defaults.weight_decay": Number(low=0),
    "space.search_defaults.first_order_update": Choice(choices=("weights_first", "arch_first")),
}

DATASET: dict[str, Rule] = {
    "dataset.name": Text(),
    "dataset.root": Text(nullable=True),
    "dataset.download": Flag(),
    "dataset.split": Choice(choices=("nb201", "balanced")),
    "dataset.train_portion": Number(low=0, high=1, low_open=True, high_open=True),
    "dataset.seed": Int(low=0),
    "dataset.num_classes": Int(low=2),
    "dataset.channels": Int(low=1),
    "dataset.image_size": Int(low=1),
    "dataset.resize": Int(low=1, nullable=True),
    "dataset.num_train": Int(low=1),
    "dataset.num_test": Int(low=1),
}

# The task node (conf/task/*.yaml, nascli/tasks): which task, and the super-resolution task's options.
TASK: dict[str, Rule] = {
    "task.name": Text(),
    "task.scale": Int(low=2, high=4),  # x2, x3, x4
    "task.patch_size": Int(low=1),
    "task.eval_max_images": Int(low=1, nullable=True),
}

SEARCH: dict[str, Rule] = {
    "search.epochs": Int(low=1),
    "search.batch_size": Int(low=1),
    "search.max_steps_per_epoch": Int(low=1, nullable=True),
    "search.val_sampling": Choice(choices=("shuffle", "random")),
    "search.cutout": Int(low=0),
    "search.checkpoint_every_steps": Int(low=0),
    "diagnostics.hessian_every": Int(low=0),
    "diagnostics.hessian_method": Choice(choices=("auto", "exact", "lanczos", "power")),  # nascli/search/diagnostics.py
}

# The record a paper preset (conf/experiment/paper/*.yaml, docs/PAPERS.md) carries: which published row
# (nascli/bench/published.py) it reproduces, the figure and its source, the paper's seeds and how its archs
# are evaluated. Only these keys: `paper` is a closed section.
PAPER: dict[str, Rule] = {
    "paper.row": Text(words="a published row name"),
    "paper.table": Text(words="a published set key"),
    "paper.dataset": Text(),
    "paper.metric": Choice(choices=("test_accuracy", "test_error")),
    "paper.value": Number(nullable=True),
    "paper.std": Number(low=0, nullable=True),
    "paper.stat": Choice(choices=("mean", "best")),
    "paper.params_m": Number(low=0, low_open=True, nullable=True),
    "paper.cost_gpu_days": Number(low=0, low_open=True, nullable=True),
    "paper.source": Text(),
    "paper.seeds": ListOf(item=Int(low=0), nullable=True, example="paper.seeds=[0,1,2,3]"),
    "paper.protocol": Text(nullable=True),
    "paper.evaluate": ListOf(item=Text(words="an override")),
    "paper.assumed": ListOf(item=Text()),
}

PROTOCOL: dict[str, Rule] = {
    "protocol.name": Text(),
    "protocol.epochs": Int(low=1),
    "protocol.batch_size": Int(low=1),
    "protocol.lr": Number(low=0, low_open=True),
    "protocol.lr_min": Number(low=0),
    "protocol.momentum": Number(low=0, high=1, high_open=True),
    "protocol.nesterov": Flag(),
    "protocol.weight_decay": Number(low=0),
    "protocol.schedule": Choice(choices=("cosine", "step")),
    "protocol.step_gamma": Number(low=0, low_open=True, nullable=True),
    "protocol.warmup_epochs": Int(low=0),
    "protocol.grad_clip": Number(low=0, nullable=True),
    "protocol.cutout": Int(low=0),
    "protocol.auxiliary_weight": Number(low=0),
    "protocol.drop_path_prob": Number(low=0, high=1, high_open=True),
    "protocol.label_smoothing": Number(low=0, high=1, high_open=True),
    "protocol.max_steps_per_epoch": Int(low=1, nullable=True),
    "protocol.optimizer": Choice(choices=("sgd", "adam")),
    "protocol.beta1": Number(low=0, high=1, high_open=True),
    "protocol.beta2": Number(low=0, high=1, high_open=True),
    "protocol.step_size": Int(low=1),
}

BENCHMARK: dict[str, Rule] = {
    "mode": Choice(choices=("study", "aggregate")),
    "sweep": Text(nullable=True),
    "methods": ListOf(item=Text(words="a method name"), nonempty=True, example="methods=[darts,darts_minus]"),
    "seeds": ListOf(item=Int(low=0), nonempty=True, example="seeds=[0,1,2]"),
    "selections": ListOf(item=Text(words="a selection name"), nonempty=True, example="selections=[magnitude,ostr]"),
    "evaluation": Choice(choices=("auto", "train")),
    "baseline.samples": Int(low=0),
    "baseline.seed": Int(low=0),
    "variants": Mapping(),
    "search_overrides": ListOf(item=Text(words="an override"), example="search_overrides=[search.epochs=2]"),
    "derive_overrides": Mapping(),
    "evaluate_overrides": ListOf(item=Text(words="an override"), example="evaluate_overrides=[network.C=8]"),
    "jobs": Int(low=1),
    "progress": Flag(),
    "plots": Flag(),
}


@dataclass(frozen=True)
class Schema:
    """The rules of one command's config, its closed and open sections and its outside checks."""

    command: str
    rules: dict[str, Rule]
    closed: tuple[str, ...] = ("",)
    open: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()

    def known_keys(self, section: str) -> list[str]:
        """The keys one level below ``section`` ("" = top level) that the schema names."""
        prefix = f"{section}." if section else ""
        keys = {k[len(prefix):].split(".", 1)[0] for k in self.rules if k.startswith(prefix)}
        if not section:
            keys |= set(self.open)
        return sorted(keys)


SCHEMAS: dict[str, Schema] = {
    "search": Schema(
        "search", {**SEED, **SEED_GROUP, **COMMON, **SEARCH, **SPACE, **DATASET, **PAPER, **TASK, **LOGGER},
        closed=("", "search", "diagnostics", "paper", "task", "logger"),
        open=("method", "optimizer", "selection", "components"),
        checks=("out_root",)),
    "derive": Schema(
        "derive", {"run": Text(nullable=True), **COMMON},
        closed=("",), open=("selection",), checks=("run_dir",)),
    "evaluate": Schema(
        "evaluate", {"arch": Text(nullable=True), "policy": Text(nullable=True), "dry_run": Flag(), **SEED,
                     **COMMON, **SPACE, **DATASET, **PROTOCOL, **TASK, **LOGGER},
        closed=("", "protocol", "task", "logger"), checks=("out_root", "arch_file")),
    "benchmark": Schema(
        "benchmark", {**BENCHMARK, **COMMON, **SPACE, **DATASET, **PROTOCOL, **TASK, **LOGGER},
        closed=("", "baseline", "protocol", "task", "logger"), open=("variants", "derive_overrides"),
        checks=("out_root",)),
}
