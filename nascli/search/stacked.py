"""Several seeds' search steps as one: their supernets' forward passes stacked with ``torch.func.vmap``.

Rule. The seeds s = 1..S of one config hold supernets of one architecture with parameters theta_s, buffers b_s
(BatchNorm running statistics) and step batches x_s. One vmapped call computes every seed's output:

    [f(x_1; theta_1, b_1), ..., f(x_S; theta_S, b_S)] = vmap(functional_call(f))(stack(theta), stack(b), stack(x))

The parameter stacks are differentiable (``torch.stack`` of each seed's own leaves), so the backward of
L = sum_s L_s(theta_s) leaves dL_s/dtheta_s in seed s's ``.grad`` (L_s depends on theta_s alone). The running
statistics are updated on the stacked buffers and copied back to each seed's. Each seed's optimizers then
step on their own parameters exactly as in its solo run: clipping, SGD, Adam and their states stay per seed.

Why: on a GPU a batch-64 NB201 step is bound by kernel launches from one CPU thread; stacked, every op of the
step launches once for all S seeds (a convolution becomes one grouped convolution), so the device does S
seeds' work per launch. On CPU oneDNN runs the grouped convolution slower than S separate ones
(docs/SPEED.md), so ``seeds_mode=auto`` stacks on CUDA only.

Numerics: the grouped convolutions sum in another order than the solo ones, so a stacked step equals the solo
step to float rounding, not bit for bit (the tolerance is in tests/test_stacked.py). Over a search the
differences grow (Adam normalises near-zero alpha gradients), as with a change of device: a stacked seed is its
search in another summation order, not a replay of its solo run (docs/SPEED.md).

What stacks (:func:`stack_problem`): an optimizer with an entry in :data:`STACKED_UPDATES` (its update rule
restated for S seeds), a mixer that draws nothing in its forward (a sampled path or sampled weights per seed
would need each seed's generator inside the vmapped call), and a supernet whose cells run under vmap
(``Supernet.runs_under_vmap``: the reference cells and the NB201 fast cells). Everything a seed does outside
the stacked forward (its step hooks, components, data streams) runs per seed, in the seed's turn of the global
generators, as solo.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch

from nascli.device import autocast, frozen
from nascli.search.optimizers.base import Batch, SearchOptimizer, upcast

#: one seed's turn of the global random generators around a block (nascli/commands/seed_group.py SeedTurn.turn)
Turn = Callable[[], contextlib.AbstractContextManager]


def stack_problem(optimizer_name: str, supernet: torch.nn.Module) -> str | None:
    """Why the seeds of this search cannot be stacked (one line naming what to change), or None."""
    if optimizer_name not in STACKED_UPDATES:
        return (f"optimizer {optimizer_name} has no stacked update (stacked: {', '.join(sorted(STACKED_UPDATES))})")
    mixer = supernet.mixer
    if getattr(mixer, "samples_paths", False) or getattr(mixer, "samples_weights", False):
        return (f"mixer {type(mixer).__name__} samples in every forward, which a stacked forward cannot draw "
                f"from each seed's own generator")
    if getattr(mixer, "vmap_problem", None):
        return f"mixer {type(mixer).__name__} cannot run under torch.func.vmap: {mixer.vmap_problem}"
    if not supernet.runs_under_vmap():
        cells = getattr(supernet, "cell_cls", None)
        if cells is not None:  # a space with a cell implementation to choose (nb201, darts)
            return (f"the supernet's cells ({cells.__module__.rsplit('.', 1)[-1]}.{cells.__name__}) do not run "
                    f"under torch.func.vmap; set space.supernet.impl=reference")
        return f"the {type(supernet).__name__} does not run under torch.func.vmap"
    return None


class StackedForward:
    """The forward of S supernets of one architecture as one vmapped call (module docstring)."""

    def __init__(self, nets: Sequence[torch.nn.Module]):
        self.nets = list(nets)
        self.template = self.nets[0]  # its modules run; its tensors are swapped for the stacks
        # named once per step (a step's forwards see the same tensors; their values change in place)
        self.params = [dict(n.named_parameters()) for n in self.nets]
        self.buffers = [dict(n.named_buffers()) for n in self.nets]

    def __call__(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The seeds' outputs stacked on dim 0: ``out[s] = nets[s](xs[s])`` up to float rounding; the seeds'
        BatchNorm running statistics are updated as their own forwards would."""
        from torch.func import functional_call, vmap

        params, buffers = self.params, self.buffers
        stacked_params = {k: torch.stack([p[k] for p in params]) for k in params[0]}
        with torch.no_grad():
            stacked_buffers = {k: torch.stack([b[k] for b in buffers]) for k in buffers[0]}
        override = self._stacked_override()
        mixer = self.template.mixer

        def one(p: dict, b: dict, probs: dict, x: torch.Tensor) -> torch.Tensor:
            with mixer.mixing_override(probs) if probs else contextlib.nullcontext():
                return functional_call(self.template, (p, b), (x,))

        out = vmap(one, randomness="error")(stacked_params, stacked_buffers, override, torch.stack(list(xs)))
        with torch.no_grad():
            for k, stack in stacked_buffers.items():
                for b, value in zip(buffers, stack):
                    b[k].copy_(value)
        return out

    def _stacked_override(self) -> dict[str, torch.Tensor]:
        """The seeds' mixing overrides (SDARTS, MS-DARTS train w at given op weights) stacked per cell type, {}
        when none is set. The template's mixer runs for every seed, so the rest of its state must agree."""
        mixers = [n.mixer for n in self.nets]
        first = mixers[0].interventions()
        if any(m.interventions() != first for m in mixers[1:]):
            raise RuntimeError("the stacked seeds' mixers differ in fixed, masked or restricted ops")
        overrides = [m.override for m in mixers]
        if all(o is None for o in overrides):
            return {}
        if any(o is None for o in overrides):
            raise RuntimeError("some stacked seeds train at overridden mixing weights and some do not")
        return {ct: torch.stack([o[ct] for o in overrides]) for ct in overrides[0]}


def stacked_losses(opts: Sequence[SearchOptimizer], batches: Sequence[Batch], prefix: str | None,
                   forward: StackedForward, turns: Sequence[Turn]) -> list[torch.Tensor]:
    """Every seed's :meth:`SearchOptimizer.loss` on its batch, the logits from one stacked forward: the task's
    loss of ``out[s]``, reported by seed s's optimizer in its turn (statistics, ``on_loss`` and, for ``val``,
    the ``arch_loss_term`` hooks)."""
    with autocast(opts[0].device):
        out = forward([x for x, _ in batches])
        losses = [o.criterion.loss(upcast(out[s]), y) for s, (o, (_, y)) in enumerate(zip(opts, batches))]
    reported = []
    for s, (o, turn) in enumerate(zip(opts, turns)):
        with turn():
            reported.append(o.report(prefix, out[s], batches[s][1], losses[s]))
    return reported


def _frozen_all(stack: contextlib.ExitStack, groups: Sequence[list[torch.nn.Parameter]]) -> None:
    for params in groups:
        stack.enter_context(frozen(params))


def _step_weights(opts: Sequence[SearchOptimizer]) -> None:
    """Each seed's clip of its weight gradient's norm and its SGD step (they draw no random numbers)."""
    for o in opts:
        if o.grad_clip:
            torch.nn.utils.clip_grad_norm_(o.weights, o.grad_clip)
        o.w_opt.step()


def stacked_weight_step(opts: Sequence[SearchOptimizer], batches: Sequence[Batch], forward: StackedForward,
                        turns: Sequence[Turn]) -> None:
    """:meth:`SearchOptimizer.weight_step` of every seed: each seed's ``before_weight_step`` hooks (in its
    turn), one stacked L_train with every alpha frozen, backward, each seed's clip and SGD step, and each
    seed's ``after_weight_step`` hooks (also when the update raised)."""
    with contextlib.ExitStack() as hooks:
        for o, b, turn in zip(opts, batches, turns):
            with turn():
                hooks.enter_context(_in_turn(o.weight_hooks(b), turn))
        for o in opts:
            o.w_opt.zero_grad(set_to_none=True)
        with contextlib.ExitStack() as freeze:
            _frozen_all(freeze, [o.arch for o in opts])
            sum(stacked_losses(opts, batches, "train", forward, turns)).backward()
        _step_weights(opts)


@contextlib.contextmanager
def _in_turn(block: contextlib.AbstractContextManager, turn: Turn):
    """``block`` entered by the caller (already in the seed's turn) and exited in the seed's turn again."""
    block.__enter__()
    try:
        yield
    except BaseException as exc:
        with turn():
            if not block.__exit__(type(exc), exc, exc.__traceback__):
                raise
    else:
        with turn():
            block.__exit__(None, None, None)


def stacked_first_order_arch_step(opts: Sequence[SearchOptimizer], batches: Sequence[Batch],
                                  forward: StackedForward, turns: Sequence[Turn]) -> None:
    """:meth:`SearchOptimizer.first_order_arch_step` of every seed: one stacked L_val (plus each seed's
    ``arch_loss_term``) with every weight frozen, backward, each seed's Adam step on alpha."""
    for o in opts:
        o.a_opt.zero_grad(set_to_none=True)
    with contextlib.ExitStack() as freeze:
        _frozen_all(freeze, [o.weights for o in opts])
        sum(stacked_losses(opts, batches, "val", forward, turns)).backward()
    for o in opts:
        o.a_opt.step()


def bilevel_update(opts: Sequence[SearchOptimizer], train_batches: Sequence[Batch],
                   arch_batches: Sequence[Batch | None], forward: StackedForward, turns: Sequence[Turn]) -> None:
    """:meth:`BilevelOptimizer.update <nascli.search.optimizers.bilevel.BilevelOptimizer.update>` for S seeds:
    the first-order alpha step before (``arch_first``) or after (``weights_first``) the weight step, when alpha
    updates are on. The seeds share the config, so the order and the schedule are the same for all."""
    o = opts[0]
    do_arch = o.arch_enabled and arch_batches[0] is not None and o.arch
    if o.order == "arch_first" and do_arch:
        stacked_first_order_arch_step(opts, arch_batches, forward, turns)
    stacked_weight_step(opts, train_batches, forward, turns)
    if o.order == "weights_first" and do_arch:
        stacked_first_order_arch_step(opts, arch_batches, forward, turns)


def single_level_update(opts: Sequence[SearchOptimizer], train_batches: Sequence[Batch],
                        arch_batches: Sequence[Batch | None], forward: StackedForward,
                        turns: Sequence[Turn]) -> None:
    """:meth:`SingleLevelOptimizer.update <nascli.search.optimizers.single_level.SingleLevelOptimizer.update>`
    for S seeds: one stacked L_train differentiated into w and alpha (alpha frozen while its updates are
    off), each seed's clip, SGD step and (when on) Adam step."""
    arch_on = opts[0].arch_enabled
    for o in opts:
        o.w_opt.zero_grad(set_to_none=True)
        o.a_opt.zero_grad(set_to_none=True)
    with contextlib.ExitStack() as freeze:
        if not arch_on:
            _frozen_all(freeze, [o.arch for o in opts])
        sum(stacked_losses(opts, train_batches, "train", forward, turns)).backward()
    _step_weights(opts)
    if arch_on:
        for o in opts:
            o.a_opt.step()


#: ``optimizer.name`` -> its update rule restated for S seeds (the first-order bi-level and single-level rules;
#: the unrolled, multi-path and RARTS rules are not restated)
STACKED_UPDATES: dict[str, Callable[..., None]] = {"bilevel": bilevel_update, "single_level": single_level_update}


def stacked_step(optimizer_name: str, opts: Sequence[SearchOptimizer], train_batches: Sequence[Batch],
                 arch_batches: Sequence[Batch | None], turns: Sequence[Turn]) -> None:
    """One search step of every seed (:meth:`SearchOptimizer.step` of each, the updates stacked): each seed's
    ``before_step`` hooks in its turn, the stacked update, each seed's ``after_step`` hooks in its turn."""
    prepared = []
    for o, b, turn in zip(opts, train_batches, turns):
        with turn():
            prepared.append(o.open_step(b))
    STACKED_UPDATES[optimizer_name](opts, prepared, arch_batches, StackedForward([o.net for o in opts]), turns)
    for o, turn in zip(opts, turns):
        with turn():
            o.close_step()

