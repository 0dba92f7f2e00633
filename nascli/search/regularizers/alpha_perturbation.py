"""SDARTS (Chen & Hsieh, ICML'20; METHODS.md 8): train the weights at a perturbed softmax(alpha).

Each search step, after the architecture step (``arch_first``, as the reference trains), the component's
``before_weight_step`` hook takes the probabilities P = softmax(alpha) (one (E, O) tensor per cell type),
perturbs them into X and has the weight step train w with X used directly as the mixing weights
(``Mixer.mixing_override``: no softmax, the reference's ``updateType='weight'``). ``after_weight_step``
ends the override; alpha itself is never written, so it is "restored" bit for bit.

Kinds (registry :data:`PERTURBATIONS`), read in xiangning-chen/SmoothDARTS@d3dbfed attacker/perturb.py:

* ``random_smoothing`` (SDARTS-RS):  X = clip(P + U), U ~ Uniform(-eps, eps) element-wise.
* ``pgd`` (SDARTS-ADV), ``Linf_PGD_alpha``: an L_inf attack that maximises L_train(w, X) on the step's
  training batch:
      X_0 = clip(P + U)                                      (random start; P itself without it)
      X_{k+1} = clip(P + clamp(X_k + (2 eps / K) sign(dL_train(w, X_k)/dX) - P, -eps, eps)),  k < K = 7
      X = X_K if L_train(w, P) <= L_train(w, X_K) else P     (kept unless the loss went down)
  Reading taken: the reference compares ``loss_before > loss_after`` and then restores P, so an equal loss
  keeps the attack. Its losses are evaluated with the supernet in eval mode (``model.eval()``: BatchNorm
  uses its running statistics and does not update them); so are they here. Gradients reach only X.

``clip`` (the reference's ``model.clip()``, per row = per edge): clamp to [0, 1]; a row that became all
zero gets 1 at the index of its largest entry before clamping; divide by the row sum. So every row of X is
a probability vector in [0, 1]; the eps bound |X - P| <= eps holds before this renormalisation (the
reference's rule, kept by default); ``renormalize: false`` stops after the clamp, and then |X - P| <= eps
and 0 <= X <= 1 hold exactly.

epsilon ramps linearly over the epochs e = 0..E-1 (train_search.py):
    eps_e = eps_start + (eps - eps_start) * e / E,     eps_start 0.03, eps 0.3 (``--epsilon_alpha``)
so the last epoch uses 0.03 + 0.27 (E - 1) / E, not 0.3.

Published (METHODS.md 8, DARTS space, CIFAR-10 test error; the method's rule itself is tagged CODE):
SDARTS-ADV 2.61 +- 0.02 %, 3.3M params, 1.3 GPU-days [2nd: NASI/ZiCo tables]; SDARTS-RS 2.67 +- 0.03 %,
3.4M, 0.4 GPU-days and ImageNet (ADV) 25.2 / 7.8 % top-1 / top-5 [MEM: unverified]. Genotypes
``c10_s5_random`` / ``c10_s5_pgd`` are in METHODS.md 9. Everything else is DARTS's (50 epochs, batch 64,
SGD 0.025 -> 0.001, Adam 3e-4 / 1e-3; conf/method/sdarts_*.yaml inherit the host defaults).

The noise comes from the component's own generator (seeded from the run seed plus :data:`SEED_OFFSET`),
checkpointed with the run, so a resumed search draws the same perturbations as an uninterrupted one.
Only a softmax-family mixer can take given probabilities, and only an optimizer with a weight step of its
own runs the hooks: both are checked when the search is composed (nascli/search/composition.py).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from nascli.device import frozen
from nascli.errors import IncompatibleError, OptionError
from nascli.registry import Registry
from nascli.search.components import COMPONENTS, Component
from nascli.search.options import accepted_options

Probs = dict[str, torch.Tensor]
LossAt = Callable[[Probs], torch.Tensor]

SEED_OFFSET = 104729  # the component's generator seed = the run seed + this (independent of the data streams)


def epsilon_ramp(eps_start: float, eps: float, epoch: int, epochs: int) -> float:
    """eps_e = eps_start + (eps - eps_start) * e / E (SDARTS and MS-DARTS train_search scripts)."""
    return eps_start + (eps - eps_start) * epoch / epochs


def simplex_clip(x: torch.Tensor, renormalize: bool = True) -> torch.Tensor:
    """Each row clamped to [0, 1], then (``renormalize``) divided by its sum; an all-zero row gets 1 at the
    argmax of its unclamped values first (SmoothDARTS ``Network.clip``)."""
    clamped = x.clamp(0.0, 1.0)
    if not renormalize:
        return clamped
    empty = clamped.sum(-1, keepdim=True) == 0
    top = torch.nn.functional.one_hot(x.argmax(-1), x.shape[-1]).to(x.dtype).bool()
    clamped = torch.where(empty & top, torch.ones_like(clamped), clamped)
    return clamped / clamped.sum(-1, keepdim=True)


def uniform_noise(like: Probs, eps: float, generator: torch.Generator | None) -> Probs:
    """U ~ Uniform(-eps, eps), one tensor per cell type (drawn in the dict's order)."""
    return {ct: torch.empty_like(p).uniform_(-eps, eps, generator=generator) for ct, p in like.items()}


def random_smoothing(probs: Probs, eps: float, loss_at: LossAt | None = None, *,
                     generator: torch.Generator | None = None, renormalize: bool = True) -> Probs:
    """SDARTS-RS: X = clip(P + U), U ~ Uniform(-eps, eps) (``loss_at`` is not used)."""
    noise = uniform_noise(probs, eps, generator)
    return {ct: simplex_clip(p + noise[ct], renormalize) for ct, p in probs.items()}


def pgd(probs: Probs, eps: float, loss_at: LossAt, *, generator: torch.Generator | None = None,
        steps: int = 7, random_start: bool = True, renormalize: bool = True) -> Probs:
    """SDARTS-ADV: the K-step L_inf PGD attack of the module docstring on ``loss_at`` (the training loss at
    given mixing probabilities); returns P when the attack did not raise the loss."""
    with torch.no_grad():
        before = loss_at(probs).detach()
    x = random_smoothing(probs, eps, generator=generator, renormalize=renormalize) if random_start \
        else {ct: p.clone() for ct, p in probs.items()}
    size = 2.0 * eps / steps if steps else 0.0
    for _ in range(steps):
        leaves = {ct: t.detach().requires_grad_(True) for ct, t in x.items()}
        grads = torch.autograd.grad(loss_at(leaves), list(leaves.values()), allow_unused=True)
        with torch.no_grad():
            x = {}
            for (ct, t), g in zip(leaves.items(), grads):
                step = torch.zeros_like(t) if g is None else size * g.sign()
                x[ct] = simplex_clip(probs[ct] + (t + step - probs[ct]).clamp(-eps, eps), renormalize)
    with torch.no_grad():
        after = loss_at(x).detach()
    kept = before <= after  # the reference restores P iff loss_before > loss_after
    return {ct: torch.where(kept, t, probs[ct]) for ct, t in x.items()}


PERTURBATIONS: Registry[Callable[..., Probs]] = Registry("alpha perturbation")
PERTURBATIONS.register("random_smoothing")(random_smoothing)
PERTURBATIONS.register("pgd")(pgd)


@contextlib.contextmanager
def eval_mode(net: torch.nn.Module) -> Iterator[None]:
    """The block with ``net`` in eval mode (BatchNorm on running statistics), its mode restored after."""
    was = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(was)


class PerturbedWeightStep(Component):
    """Shared part of SDARTS and MS-DARTS: the weight step trains at :meth:`perturb` (softmax(alpha)), the
    epsilon ramp, the component's generator and its checkpointed state. Subclasses give :meth:`perturb`."""

    #: sets the mixing weights of the weight step: needs an optimizer with ``weight_step_hooks`` and a mixer
    #: with ``supports_mixing_override`` (composition rules ``weight_step_hooks`` and ``mixing_override``)
    perturbs_weight_step: bool = True

    def __init__(self, supernet, optimizer, *, epsilon: float, epsilon_start: float, renormalize: bool = True,
                 seed: int | None = None):
        super().__init__(supernet, optimizer)
        if epsilon_start < 0 or epsilon < 0:
            raise OptionError(f"{type(self).__name__}: epsilon and epsilon_start must be >= 0, got "
                              f"epsilon={epsilon}, epsilon_start={epsilon_start}")
        self.epsilon_max, self.epsilon_start = float(epsilon), float(epsilon_start)
        self.renormalize = bool(renormalize)
        self.epsilon = self.epsilon_start
        self.device = getattr(optimizer, "device", None) or next(supernet.parameters()).device
        base_seed = torch.initial_seed() if seed is None else int(seed)
        self.generator = torch.Generator(device=self.device).manual_seed((base_seed + SEED_OFFSET) % 2**63)
        self._override: contextlib.ExitStack | None = None
        self._weight_steps = 0

    # ----------------------------------------------------------------- schedule
    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        self.epsilon = epsilon_ramp(self.epsilon_start, self.epsilon_max, epoch, epochs)

    def values(self) -> dict[str, float]:
        return {"alpha_epsilon": self.epsilon}

    # ----------------------------------------------------------------- the rule
    def perturb(self, probs: Probs, loss_at: LossAt) -> Probs:
        """The mixing probabilities the weights are trained at, from P = softmax(alpha) (detached)."""
        raise NotImplementedError

    def loss_at(self, batch) -> LossAt:
        """probs -> L_train(w, probs) on ``batch`` with ``probs`` as the mixing weights (unreported)."""
        mixer = self.supernet.mixer

        def loss(probs: Probs) -> torch.Tensor:
            with mixer.mixing_override(probs):
                return self.optimizer.loss(batch).float()
        return loss

    # ----------------------------------------------------------------- weight-step hooks (StepHooks)
    def before_weight_step(self, batch) -> None:
        """Compute X from softmax(alpha) on the training batch (eval mode, alpha and w frozen) and hold it as
        the mixing weights until :meth:`after_weight_step`."""
        mixer = self.supernet.mixer
        with torch.no_grad():
            probs = {ct: torch.softmax(a.detach(), dim=-1) for ct, a in mixer.alphas.items()}
        with eval_mode(self.supernet), frozen(self.optimizer.weights), frozen(self.optimizer.arch):
            x = self.perturb(probs, self.loss_at(batch))
        stack = contextlib.ExitStack()
        stack.enter_context(mixer.mixing_override({ct: t.detach() for ct, t in x.items()}))
        self._override = stack
        self._weight_steps += 1

    def after_weight_step(self) -> None:
        if self._override is not None:
            self._override.close()
            self._override = None

    def after_step(self) -> None:
        """Refuse an optimizer that trained w without calling the weight-step hooks (the rule would be off)."""
        if self._weight_steps == 0:
            raise IncompatibleError(f"optimizer {type(self.optimizer).__name__} updated the weights without the "
                                    f"weight-step hooks, so {type(self).__name__} could not perturb them")
        self._weight_steps = 0

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "epsilon": self.epsilon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].cpu())
        self.epsilon = float(state["epsilon"])


@COMPONENTS.register("alpha_perturbation")
class AlphaPerturbation(PerturbedWeightStep):
    """SDARTS-RS (``kind: random_smoothing``) or SDARTS-ADV (``kind: pgd``), module docstring."""

    def __init__(self, supernet, optimizer, *, kind: str = "random_smoothing", epsilon: float = 0.3,
                 epsilon_start: float = 0.03, steps: int = 7, random_start: bool = True,
                 renormalize: bool = True, seed: int | None = None):
        super().__init__(supernet, optimizer, epsilon=epsilon, epsilon_start=epsilon_start,
                         renormalize=renormalize, seed=seed)
        self.kind = kind
        self.rule = PERTURBATIONS.get(kind)
        if int(steps) < 0:
            raise OptionError(f"method.components[alpha_perturbation].steps must be >= 0, got {steps}")
        # the options the kind declares (pgd: steps, random_start; random_smoothing: neither)
        declared = accepted_options(self.rule)
        self.rule_options = {k: v for k, v in (("steps", int(steps)), ("random_start", bool(random_start)),
                                               ("renormalize", self.renormalize)) if k in declared}

    def perturb(self, probs: Probs, loss_at: LossAt) -> Probs:
        return self.rule(probs, self.epsilon, loss_at, generator=self.generator, **self.rule_options)
