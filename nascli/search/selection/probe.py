"""Shared machinery of the supernet-probing criteria (``ostr``, ``perturbation``).

A probing criterion evaluates the trained supernet on a few fixed validation batches under mixer
interventions (``fix_edge`` / ``mask_op``; see search/mixers/base.py), so it works with every mixer.
:class:`SupernetProbe` owns that protocol:

* one fixed path: the mixer's :meth:`~nascli.search.mixers.base.Mixer.held_path` is held for the whole
  probe, so a sampling mixer (GDAS, ROME, DAAS) evaluates its most likely path (argmax) under every
  intervention instead of a fresh sample per forward, and score differences are not sampling noise;
* no gradients; every module in eval mode except BatchNorm, which uses batch statistics when
  ``bn='batch'`` (replacing an op shifts the feature statistics) or its running statistics when
  ``bn='running'``;
* the supernet leaves the criterion exactly as it came in: weights, BN running statistics (which
  batch-mode forwards would otherwise update), train/eval flags and interventions are restored;
* decided edges stay fixed to their op (one-hot) while later candidates are scored;
* optional fine-tuning of the weights between decisions (``finetune_steps``, SGD at ``finetune_lr``,
  DARTS-PT's tuning lr 0.0025) on further batches of the architecture split (the selection context
  exposes no training stream); the tuned weights are discarded at the end.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from nascli.device import frozen
from nascli.tasks.base import Criterion
from nascli.tasks.classification import CROSS_ENTROPY

BN_MODES = ("batch", "running")


def candidate_ops(space, cell_type: str, rule: str = "default") -> list[int]:
    """Op indices the space's derivation rule can select on an edge: every op, except ``none`` when the
    rule never keeps it (DARTS space). Found by asking the rule itself with ``none`` scored highest."""
    ops = list(range(len(space.ops)))
    if space.none_op not in space.ops:
        return ops
    none = space.ops.index(space.none_op)
    probe = {}
    for ct in space.cell_types:
        s = torch.zeros(space.num_edges(ct), len(space.ops))
        s[:, none] = 1.0
        probe[ct] = s
    arch = space.discretize(probe, None, rule=rule)
    if space.none_op in json.dumps(arch.to_json()):
        return ops
    return [o for o in ops if o != none]


def edge_candidates(mixer, cell_type: str, edge: int, cands: list[int]) -> list[int]:
    """``cands`` on one edge: without the ops a restriction of that edge leaves out (``Mixer.restrict_edge``)."""
    allowed = mixer.allowed_ops(cell_type)
    return list(cands) if allowed is None else [o for o in cands if bool(allowed[edge, o])]


def _is_bn(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.batchnorm._BatchNorm)


def first_best(values: Iterable[tuple[Any, float]]) -> Any:
    """The key with the largest value; ties go to the first (the spaces' lower-index rule)."""
    best_key, best = None, None
    for key, v in values:
        if best is None or v > best:
            best_key, best = key, v
    return best_key


class SupernetProbe:
    """Context manager evaluating a supernet under interventions (module docstring)."""

    def __init__(self, supernet, batches: list, bn: str = "batch", finetune_batches: list | None = None,
                 finetune_lr: float = 0.0025, criterion: Criterion | None = None):
        if bn not in BN_MODES:
            raise ValueError(f"unknown bn mode {bn!r}; valid choices: {', '.join(BN_MODES)}")
        if not batches:
            raise ValueError("a probing criterion needs at least one validation batch (num_batches >= 1)")
        self.net = supernet
        self.mixer = supernet.mixer
        self.batches = batches
        self.bn = bn
        self.finetune_batches = finetune_batches or []
        self.finetune_lr = finetune_lr
        self.criterion = criterion or CROSS_ENTROPY  # the task's loss and score (nascli/tasks)
        self._ft_pos = 0
        self.fixed: dict[tuple[str, int], int] = {}
        self.evaluations = 0

    # ------------------------------------------------------------------ context
    def __enter__(self) -> "SupernetProbe":
        self._state = copy.deepcopy(self.net.state_dict())
        self._modes = {m: m.training for m in self.net.modules()}
        self._grad = torch.is_grad_enabled()
        self.mixer.clear_interventions()
        self._held = self.mixer.held_path()
        self._held.__enter__()
        self._set_modes()
        torch.set_grad_enabled(False)
        return self

    def __exit__(self, *exc: object) -> None:
        self._held.__exit__(None, None, None)
        torch.set_grad_enabled(self._grad)
        self.mixer.clear_interventions()
        self.net.load_state_dict(self._state)
        for m, flag in self._modes.items():
            m.training = flag

    def _set_modes(self) -> None:
        for m in self.net.modules():
            m.training = self.bn == "batch" and _is_bn(m)

    # ------------------------------------------------------------------ interventions
    def apply(self, fix: dict[tuple[str, int], int] | None = None,
              mask: Iterable[tuple[str, int, int]] = ()) -> None:
        """Interventions = the decided edges + ``fix`` + ``mask`` (masks on an undecided edge only)."""
        self.mixer.clear_interventions()
        for (ct, e), o in {**self.fixed, **(fix or {})}.items():
            self.mixer.fix_edge(ct, e, o)
        for ct, e, o in mask:
            self.mixer.mask_op(ct, e, o)

    def decide(self, cell_type: str, edge: int, op: int) -> None:
        self.fixed[(cell_type, edge)] = op

    # ------------------------------------------------------------------ measurements
    def evaluate(self, fix: dict[tuple[str, int], int] | None = None,
                 mask: Iterable[tuple[str, int, int]] = ()) -> tuple[float, float]:
        """(mean loss, mean score) over the fixed batches under the interventions (float32): the task's
        criterion, for classification (mean cross-entropy, accuracy in %)."""
        self.apply(fix, mask)
        loss_sum, score, n = 0.0, 0.0, 0
        for x, y in self.batches:
            out = self.net(x).float()
            loss_sum += float(self.criterion.loss(out, y, reduction="sum"))
            score += float(self.criterion.score_sum(out, y))
            n += int(y.shape[0])
        self.evaluations += 1
        self.apply()
        return loss_sum / n, self.criterion.score_scale * score / n

    def finetune(self, steps: int) -> None:
        """``steps`` SGD steps (momentum 0.9, clip 5) on the weights with the decided edges fixed."""
        if steps <= 0 or not self.finetune_batches:
            return
        weights = self.net.weight_parameters()
        opt = torch.optim.SGD(weights, lr=self.finetune_lr, momentum=0.9)
        self.apply()
        for m in self.net.modules():
            m.training = _is_bn(m)  # train-mode BN while tuning, as a search step does
        with torch.enable_grad():
            for _ in range(steps):
                x, y = self.finetune_batches[self._ft_pos % len(self.finetune_batches)]
                self._ft_pos += 1
                opt.zero_grad(set_to_none=True)
                with frozen(self.net.arch_parameters()):
                    self.criterion.loss(self.net(x).float(), y).backward()
                torch.nn.utils.clip_grad_norm_(weights, 5.0)
                opt.step()
        self._set_modes()


def probe_batches(ctx, num_batches: int, finetune_steps: int) -> tuple[list, list]:
    """(scoring batches, fine-tuning batches): the first ``num_batches`` fixed validation batches, and the
    following ones (up to ``finetune_steps``) for optional fine-tuning."""
    if ctx.batches is None:
        raise ValueError("this selection criterion needs validation data (SelectionContext.batches)")
    num_batches = int(num_batches)
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches}")
    want = num_batches + max(int(finetune_steps), 0)
    got = list(ctx.batches(want))
    if not got:
        raise ValueError("the validation split yielded no batches")
    return got[:num_batches], got[num_batches:]


def as_json_matrix(m: torch.Tensor) -> list[list[float | None]]:
    """A score matrix for arch.json; entries never computed (NaN) become null."""
    return [[None if v != v else float(v) for v in row] for row in m.tolist()]
