"""Whether a composed search config can run: declared option keys, and the rules between axes.

:func:`check_search_config` looks only at the config and the registered classes (no model, no data), so
``nas search`` refuses a bad combination before anything is built or written:

* every option node (``method.mixer``, ``method.edge_parts``, ``method.components``, ``method.supernet``,
  ``optimizer``, ``selection``) holds only keys its class or function declares (nascli/search/options.py);
* every rule of :data:`COMPOSITION_RULES` holds; a rule returns ``None`` or the one-line reason naming the
  axes that conflict and why.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from nascli.errors import IncompatibleError
from nascli.plain import plain
from nascli.registry import Registry
from nascli.search.options import accepted_options, check_options


@dataclass(frozen=True)
class Composition:
    """The classes a search config picks, with their option dicts (``name`` removed)."""

    method: str
    space: Any
    mixer: type
    mixer_name: str
    mixer_options: dict[str, Any]
    optimizer: type
    optimizer_name: str
    optimizer_options: dict[str, Any]
    components: tuple[tuple[str, type, dict[str, Any]], ...]
    selection: str
    epochs: int
    edge_parts: tuple[tuple[str, dict[str, Any]], ...] = ()
    supernet_options: dict[str, Any] = field(default_factory=dict)
    flow: tuple[str, dict[str, Any]] | None = None  # method.flow: a search flow of its own (GM-NAS), or None
    task: Any = None  # the config's Task (nascli/tasks); None: classification
    dataset: str = ""  # dataset.name


COMPOSITION_RULES: Registry[Callable[[Composition], str | None]] = Registry("composition rule")


@COMPOSITION_RULES.register("task_space")
def _space_serves_the_task(c: Composition) -> str | None:
    """The space builds networks for the config's task (``SearchSpace.tasks``)."""
    from nascli.tasks.fit import space_problem
    return space_problem(c.task, c.space) if c.task is not None else None


@COMPOSITION_RULES.register("task_dataset")
def _dataset_serves_the_task(c: Composition) -> str | None:
    """The dataset is one of the task's readers."""
    from nascli.tasks.fit import dataset_problem
    return dataset_problem(c.task, c.dataset) if c.task is not None and c.dataset else None


@COMPOSITION_RULES.register("task_selection")
def _selection_serves_the_task(c: Composition) -> str | None:
    """A task may support only some selection criteria (``Task.selections``; None = every one)."""
    allowed = getattr(c.task, "selections", None)
    if allowed is None or c.selection in allowed:
        return None
    return (f"selection={c.selection} cannot derive a task={c.task.name} search ({c.task.selections_why}); "
            f"valid choices: {', '.join(allowed)}")


@COMPOSITION_RULES.register("task_flow")
def _flow_is_classification_only(c: Composition) -> str | None:
    """A method's own search flow (GM-NAS) scores its leaves by classification accuracy."""
    if c.flow is None or c.task is None or c.task.name == "classification":
        return None
    return (f"method {c.method} runs its own search flow ({c.flow[0]}), which scores supernets by classification "
            f"accuracy; task={c.task.name} needs a method without one")


@COMPOSITION_RULES.register("component_task")
def _component_serves_the_task(c: Composition) -> str | None:
    """A component may work on one task's batches only (``Component.tasks``; None = any task)."""
    for name, cls, _ in c.components:
        tasks = getattr(cls, "tasks", None)
        if c.task is not None and tasks is not None and c.task.name not in tasks:
            return (f"method {c.method} (component {name}) {cls.tasks_why}, so it serves task={'/'.join(tasks)} "
                    f"only; task={c.task.name} needs a method without it")
    return None


@COMPOSITION_RULES.register("validation_loss")
def _needs_validation_loss(c: Composition) -> str | None:
    """A component that reads the validation loss needs an optimizer that computes one."""
    for name, cls, _ in c.components:
        if getattr(cls, "needs_validation_loss", False) and not c.optimizer.uses_arch_batches:
            return (f"method {c.method} (component {name}) needs a validation loss each step, and optimizer "
                    f"{c.optimizer_name} computes none (it uses no architecture split); use an optimizer with "
                    f"an architecture step: {', '.join(_bilevel_optimizers())}")
    return None


@COMPOSITION_RULES.register("held_out_validation_loss")
def _validation_loss_held_out(c: Composition) -> str | None:
    """A component reading the validation loss as a held-out signal (DAAS's reward) needs the loss of weights
    that never train on the validation split; RARTS reports that of its network y, which does
    (``trains_on_validation``)."""
    if not getattr(c.optimizer, "trains_on_validation", False):
        return None
    for name, cls, _ in c.components:
        if getattr(cls, "needs_validation_loss", False):
            held_out = [n for n in _bilevel_optimizers() if not _trains_on_validation(n)]
            return (f"method {c.method} (component {name}) reads the validation loss as a held-out signal, and "
                    f"optimizer {c.optimizer_name} reports that of a network that trains on the validation "
                    f"split; use one whose weights never see it: {', '.join(held_out)}")
    return None


@COMPOSITION_RULES.register("arch_grad_from_weight_pass")
def _reuse_needs_an_unperturbed_weight_pass(c: Composition) -> str | None:
    """``optimizer.arch_grad=reuse`` (RARTS) takes alpha's L_t gradient from the weight pass; a component that
    trains w at detached perturbed mixing weights (SDARTS, MS-DARTS) leaves that gradient at zero."""
    if c.optimizer_options.get("arch_grad") != "reuse":
        return None
    for name, cls, _ in c.components:
        if getattr(cls, "perturbs_weight_step", False):
            return (f"optimizer.arch_grad=reuse takes alpha's training-loss gradient from the weight pass, and "
                    f"method {c.method} (component {name}) runs that pass at detached perturbed mixing weights "
                    f"(no gradient would reach alpha); use optimizer.arch_grad=gauss_seidel")
    return None


def _trains_on_validation(name: str) -> bool:
    from nascli.search.optimizers import SEARCH_OPTIMIZERS
    return bool(getattr(SEARCH_OPTIMIZERS.get(name), "trains_on_validation", False))


@COMPOSITION_RULES.register("mixing_weights_sampled")  # sorts before sampled_paths
def _multi_path_needs_paths(c: Composition) -> str | None:
    """A mixer that samples mixing weights over every op (DrNAS) has no path for K-path accumulation."""
    if c.optimizer.multi_path and getattr(c.mixer, "samples_weights", False):
        return (f"optimizer {c.optimizer_name} accumulates K sampled paths (one op per edge), but method "
                f"{c.method}'s mixer {c.mixer_name} samples mixing weights over every op, not a path; use "
                f"optimizer=bilevel")
    return None


@COMPOSITION_RULES.register("sampled_paths")
def _multi_path_needs_sampling(c: Composition) -> str | None:
    """K-path accumulation only means something when each forward samples a path."""
    if c.optimizer.multi_path and not c.mixer.samples_paths:
        return (f"optimizer {c.optimizer_name} accumulates K sampled paths, but method {c.method}'s mixer "
                f"{c.mixer_name} mixes every op deterministically (all K paths would be "
                f"identical); use optimizer=bilevel or a sampling method (gdas, rome, daas)")
    return None


@COMPOSITION_RULES.register("strict_fair")
def _strict_fair_needs_paths(c: Composition) -> str | None:
    """Strict fair sampling schedules ops over the K paths of a multi-path optimizer."""
    if c.mixer_options.get("strict_fair") and not c.optimizer.multi_path:
        return (f"method.mixer.strict_fair=true schedules ops over the K paths of optimizer=multipath; "
                f"optimizer {c.optimizer_name} runs one path per update")
    return None


@COMPOSITION_RULES.register("warm_up")
def _warm_up_shorter_than_the_run(c: Composition) -> str | None:
    """An architecture warm-up (PC-DARTS: alpha frozen for 15 epochs) must end before the run does, or the
    search trains no architecture at all and would still report status ok."""
    start = int(c.optimizer_options.get("arch_start_epoch", 0) or 0)
    if start >= c.epochs:
        return (f"optimizer.arch_start_epoch={start} is not below search.epochs={c.epochs}: the architecture "
                f"would never be updated (method {c.method}'s warm-up is longer than the run); lower "
                f"optimizer.arch_start_epoch or raise search.epochs")
    return None


@COMPOSITION_RULES.register("weight_step_hooks")
def _perturbation_needs_a_weight_step(c: Composition) -> str | None:
    """A component that sets the mixing weights of the weight step (SDARTS, MS-DARTS) needs an optimizer that
    updates w in a step of its own, after the architecture step (``weight_step_hooks``)."""
    for name, cls, _ in c.components:
        if getattr(cls, "perturbs_weight_step", False) and not getattr(c.optimizer, "weight_step_hooks", False):
            from nascli.search.optimizers import SEARCH_OPTIMIZERS
            ok = [n for n in SEARCH_OPTIMIZERS.names() if getattr(SEARCH_OPTIMIZERS.get(n), "weight_step_hooks", False)
                  and (c.mixer.samples_paths or not SEARCH_OPTIMIZERS.get(n).multi_path)]
            return (f"method {c.method} (component {name}) trains the weights at perturbed mixing weights in a "
                    f"weight step after the architecture step, and optimizer {c.optimizer_name} has no separate "
                    f"weight step running the weight-step hooks; use optimizer={' or '.join(ok)}")
    return None


@COMPOSITION_RULES.register("mixing_override")
def _perturbation_needs_a_deterministic_mixer(c: Composition) -> str | None:
    """Training at given mixing probabilities needs a mixer that takes them (``supports_mixing_override``)."""
    for name, cls, _ in c.components:
        if getattr(cls, "perturbs_weight_step", False) and not getattr(c.mixer, "supports_mixing_override", False):
            from nascli.search.mixers import MIXERS
            ok = [n for n in MIXERS.names() if getattr(MIXERS.get(n), "supports_mixing_override", False)]
            return (f"method {c.method} (component {name}) trains the weights at given mixing probabilities, and "
                    f"mixer {c.mixer_name} samples its weights each forward (it cannot take them); use "
                    f"method.mixer.name={' or '.join(ok)}")
    return None


@COMPOSITION_RULES.register("arch_loss_term")
def _arch_loss_term_needs_validation_loss(c: Composition) -> str | None:
    """The DrNAS KL term rides on the validation loss; an optimizer without one would silently drop it."""
    for name, _, opts in c.components:
        if name == "dirichlet_kl" and float(opts.get("scale", 0) or 0) > 0 and not c.optimizer.uses_arch_batches:
            return (f"method {c.method}'s KL regulariser (component {name}, scale {opts['scale']}) is added to "
                    f"the validation loss, and optimizer {c.optimizer_name} computes none; use an optimizer "
                    f"with an architecture step ({', '.join(_bilevel_optimizers())}) or method.kl_scale=0")
    return None


@COMPOSITION_RULES.register("progressive_stages")
def _progressive_stages(c: Composition) -> str | None:
    """DrNAS progressive learning prunes through the mixer, and its per-stage alpha warm-up must end inside
    every stage that runs."""
    from nascli.search.regularizers.drnas_progressive import stage_starts

    for name, _, opts in c.components:
        if name != "drnas_progressive":
            continue
        if not hasattr(c.mixer, "prune_to_top"):
            return (f"component {name} prunes ops through the mixer, and method {c.method}'s mixer "
                    f"{c.mixer_name} cannot prune; use method.mixer.name=dirichlet")
        if len(set(opts.get("ks", (6, 4)))) > 1 and getattr(c.optimizer, "weight_copies", False):
            return (f"component {name} widens the weights in place between stages, and optimizer "
                    f"{c.optimizer_name} keeps its own copy of them; use optimizer=bilevel")
        stages = len(opts.get("ks", (6, 4)))
        bounds = [*stage_starts(c.epochs, stages), c.epochs]
        lengths = [b - a for a, b in zip(bounds, bounds[1:]) if b > a]
        start = int(c.optimizer_options.get("arch_start_epoch", 0) or 0)
        if start >= min(lengths):
            return (f"optimizer.arch_start_epoch={start} is the alpha warm-up of every stage of component {name}, "
                    f"and the shortest stage has {min(lengths)} epochs (search.epochs={c.epochs} in {stages} "
                    f"stages): alpha would never be updated in it; lower optimizer.arch_start_epoch or raise "
                    f"search.epochs")
    return None


@COMPOSITION_RULES.register("partial_channels_width")
def _partial_channels_divide_the_width(c: Composition) -> str | None:
    """Partial channels K (PC-DARTS; every K of DrNAS's progressive stages) must divide the supernet width C
    (the other cells are 2C and 4C wide), or no op width C/K exists."""
    width = c.supernet_options.get("C")
    if width is None:
        return None
    ks = [int(o.get("k", 4)) for n, o in c.edge_parts if n == "partial_channels"]
    ks += [int(k) for n, _, o in c.components if n == "drnas_progressive" for k in o.get("ks", ())]
    bad = sorted({k for k in ks if k < 1 or int(width) % k})
    if bad:
        return (f"partial channels K={bad[0]} of method {c.method} does not divide the supernet width "
                f"space.supernet.C={width}; use a C divisible by every K in {sorted(set(ks), reverse=True)}")
    return None


@COMPOSITION_RULES.register("flow")
def _split_tree_flow(c: Composition) -> str | None:
    """A split-tree flow (GM-NAS) reads each op's parameters per edge (reference cells), selects inside each
    leaf's sub-space (every criterion: the probing ones skip the ops a leaf's restricted edge leaves out,
    ``probe.edge_candidates``) and splits before the run ends. ``nas derive`` on a few-shot run
    applies the same rule (nascli/search/few_shot/derive.py)."""
    if c.flow is None:
        return None
    if c.supernet_options.get("impl") != "reference":
        return (f"method {c.method} scores edges by the gradients of each edge's own op modules, and supernet impl "
                f"{c.supernet_options.get('impl')!r} batches them; use method.supernet.impl=reference")
    unknown = [t for t in (c.flow[1].get("cell_types") or []) if t not in c.space.cell_types]
    if unknown:
        return (f"method.flow.cell_types {unknown} are not cell types of space {c.space.name}: "
                f"{', '.join(c.space.cell_types)}")
    enders = [name for name, cls, _ in c.components if getattr(cls, "decides_search_end", False)]
    if enders:
        return (f"method {c.method} runs its own epoch loop per sub-supernet, and component {enders[0]} decides when "
                f"the search ends or rewinds, which a split tree does not do; drop that component")
    splits = c.flow[1].get("split_epochs") or []
    if splits and int(max(splits)) >= c.epochs:
        return (f"method.flow.split_epochs={list(splits)} must all be below search.epochs={c.epochs} (method "
                f"{c.method} trains the children after the last split); raise search.epochs or split earlier")
    return None


@COMPOSITION_RULES.register("search_end_decisions")
def _one_search_end_decider(c: Composition) -> str | None:
    """At most one component decides when the search ends or rewinds (DARTS-ES, DARTS-ADA): two would each
    act on the same eigenvalue firing (stop and roll back)."""
    deciders = [name for name, cls, _ in c.components if getattr(cls, "decides_search_end", False)]
    if len(deciders) > 1:
        return (f"components {' and '.join(deciders)} both decide when the search ends or rolls back (darts_ada "
                f"applies the DARTS-ES rule itself); list one of them")
    return None


@COMPOSITION_RULES.register("rollback_snapshots")
def _rollback_needs_a_fixed_supernet(c: Composition) -> str | None:
    """Rolling back (DARTS-ADA) loads an earlier snapshot of the supernet and the optimizer and raises the weight
    decay of ``w_opt``: no component may reshape the supernet, and the optimizer may keep no weight copies of its
    own (RARTS's twin y has its own weight decay)."""
    for name, cls, _ in c.components:
        if not getattr(cls, "rolls_back_supernet", False):
            continue
        for other, ocls, _ in c.components:
            if getattr(ocls, "reshapes_supernet", False):
                return (f"component {name} rolls the supernet back to an earlier snapshot, and method {c.method}'s "
                        f"component {other} reshapes the supernet during the search; use darts_es instead")
        if getattr(c.optimizer, "weight_copies", False):
            return (f"component {name} raises the weight decay of the weights' optimizer, and optimizer "
                    f"{c.optimizer_name} keeps its own copy of the weights with its own weight decay; use "
                    f"optimizer=bilevel")
    return None


def _bilevel_optimizers() -> list[str]:
    from nascli.search.optimizers import SEARCH_OPTIMIZERS
    return [n for n in SEARCH_OPTIMIZERS.names() if SEARCH_OPTIMIZERS.get(n).uses_arch_batches]



def _named(node: Any, where: str) -> tuple[str, dict[str, Any]]:
    opts = dict(plain(node) or {})
    if "name" not in opts:
        raise IncompatibleError(f"{where} needs a name")
    return str(opts.pop("name")), opts


def composition(cfg: DictConfig) -> Composition:
    """The classes and options of a search config, with every option key checked against its declaration."""
    from nascli.search.components import COMPONENTS, _load_all as load_components, component_specs
    from nascli.search.edge_parts import EDGE_PARTS, _load_all as load_parts
    from nascli.search.mixers import MIXERS
    from nascli.search.optimizers import SEARCH_OPTIMIZERS
    from nascli.search.selection import SELECTIONS
    from nascli.spaces import get_space

    load_components()
    load_parts()
    space = get_space(str(cfg.space.name))
    mixer_name, mixer_opts = _named(cfg.method.mixer, "method.mixer")
    mixer = MIXERS.get(mixer_name)
    check_options(mixer_opts, accepted_options(mixer), "method.mixer")
    edge_parts = []
    for spec in plain(cfg.method.get("edge_parts")) or []:
        name, opts = _named(spec, "method.edge_parts entry")
        check_options(opts, accepted_options(EDGE_PARTS.get(name)), f"method.edge_parts[{name}]")
        edge_parts.append((name, opts))
    components = []
    for spec in component_specs(cfg):  # the method's, then the top-level +components=[...]
        name, opts = _named(spec, "method.components entry")
        cls = COMPONENTS.get(name)
        check_options(opts, accepted_options(cls), f"method.components[{name}]")
        components.append((name, cls, opts))
    supernet_opts = {**dict(plain(cfg.space.get("supernet")) or {}), **dict(plain(cfg.method.get("supernet")) or {})}
    check_options(supernet_opts, accepted_options(space.build_supernet, skip=(
        "mixer", "in_channels", "edge_parts",
        "num_classes", "scale", "vocab_size", "in_features")),  # the tasks' head keywords (Task.head_kwargs)
                  f"{space.name} supernet (space.supernet / method.supernet)")
    opt_name, opt_opts = _named(cfg.optimizer, "optimizer")
    optimizer = SEARCH_OPTIMIZERS.get(opt_name)
    check_options(opt_opts, accepted_options(optimizer), "optimizer")
    sel_name, sel_opts = _named(cfg.selection, "selection")
    check_options(sel_opts, accepted_options(SELECTIONS.get(sel_name)), "selection")
    flow = None
    if cfg.method.get("flow"):
        from nascli.search.few_shot.flow import FLOWS
        flow = _named(cfg.method.flow, "method.flow")
        check_options(flow[1], accepted_options(FLOWS.get(flow[0])), "method.flow")
        FLOWS.get(flow[0])(**flow[1])  # bad option values: one-line OptionError now, before anything is built
    from nascli.tasks import task_of
    dataset = cfg.get("dataset")
    return Composition(str(cfg.method.name), space, mixer, mixer_name, mixer_opts, optimizer,
                       opt_name, opt_opts, tuple(components), sel_name, int(cfg.search.epochs),
                       tuple(edge_parts), supernet_opts, flow, task_of(cfg),
                       str(dataset.get("name", "")) if dataset is not None else "")


def check_search_config(cfg: DictConfig) -> Composition:
    """Raise a one-line :class:`~nascli.errors.OptionError` / :class:`IncompatibleError` for a config that
    cannot run (module docstring); return its :class:`Composition`."""
    comp = composition(cfg)
    for name in COMPOSITION_RULES:
        reason = COMPOSITION_RULES.get(name)(comp)
        if reason:
            raise IncompatibleError(f"cannot compose this search: {reason}")
    return comp
