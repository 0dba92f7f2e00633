"""DAAS-approx: augmentation policy searched jointly with the architecture by REINFORCE (METHODS.md 7).

DAAS (Wang, Chu, Yan, Yang; arXiv 2109.15273) has no public code; this is the documented assumption
("DAAS-approx"): a DADA-style policy space (15 ops, 105 two-op sub-policies; see nascli.data.policy)
searched by policy gradient while a GDAS supernet trains on the augmented batches.

Policy parameters (owned here, with their own Adam optimizer, baseline and RNG):
    pi (105,)  categorical logits over sub-policies
    q  (15,)   Bernoulli logits of each op's application probability p = sigmoid(q)
    m  (15,)   magnitudes in [0, 1] (clipped after every update)

Each search step:
1. **act** (the optimizer's ``before_step`` hook, so it applies to every optimizer): every image of the training batch draws a sub-policy
   s_i ~ softmax(pi) and fire flags f_i ~ Bernoulli(p) for its two ops; each op k uses the magnitude
   m'_k = clip(m_k + sigma * N(0, 1), 0, 1) (Gaussian exploration, ``magnitude_std`` sigma; 0 freezes m).
   The batch is de-normalised to [0, 1], augmented after the stream's crop/flip, re-normalised, and the
   weights are trained on it.
2. **reward**: R = -L_val(w, alpha), the validation loss the optimizer computes in its architecture step
   of the same step (after the weight update with the default weights-first order; the mean over the K
   paths with optimizer=multipath), seen through the ``on_loss`` hook. Steps without an architecture step
   (warm-up) make no policy update; an optimizer without validation loss (single_level) is refused when
   the search is composed (``needs_validation_loss``).
3. **update** (``after_step`` hook; REINFORCE with a moving-average baseline b, momentum ``baseline_momentum`` 0.9):
       J = (R - b) * [ mean_i log softmax(pi)_{s_i} + mean_i sum_slots log Bern(f; p)
                       + sum_{k applied} log N(m'_k; m_k, sigma^2) ]
   gradient ascent on J (Adam on -J), then b <- mu b + (1 - mu) R; b starts at the first reward, so
   the first update has zero advantage. The image means give a 1/B-scaled estimator (same direction).

At the end the policy is exported as ``policy.json`` through :meth:`artifacts`.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from nascli.data.policy import (SUBPOLICIES, AugmentPolicy, PolicyActions, apply_actions, denormalize,
                                normalize_float, subpolicy_table)
from nascli.data.policy_ops import OP_NAMES
from nascli.search.components import COMPONENTS, Component

SEED_OFFSET = 7919  # the component's generator seed = the run seed + this (independent of the data streams)


class PolicyParameters(nn.Module):
    """pi (105,), q (15,), m (15,) as parameters (module docstring)."""

    def __init__(self, init_apply_prob: float = 0.5, init_magnitude: float = 0.5):
        super().__init__()
        p = min(max(init_apply_prob, 1e-4), 1 - 1e-4)
        self.subpolicy_logits = nn.Parameter(torch.zeros(len(SUBPOLICIES)))
        self.apply_logits = nn.Parameter(torch.full((len(OP_NAMES),), math.log(p / (1 - p))))
        self.magnitudes = nn.Parameter(torch.full((len(OP_NAMES),), float(init_magnitude)))

    def subpolicy_probs(self) -> torch.Tensor:
        return torch.softmax(self.subpolicy_logits, dim=0)

    def apply_probs(self) -> torch.Tensor:
        return torch.sigmoid(self.apply_logits)

    def sample(self, batch_size: int, magnitude_std: float, generator: torch.Generator) -> PolicyActions:
        """Draw one batch's actions (all on the parameters' device)."""
        dev = self.subpolicy_logits.device
        with torch.no_grad():
            sub = torch.multinomial(self.subpolicy_probs(), batch_size, replacement=True, generator=generator)
            pairs = subpolicy_table(dev)[sub]
            fire = torch.rand(batch_size, 2, generator=generator, device=dev) < self.apply_probs()[pairs]
            noise = torch.randn(len(OP_NAMES), generator=generator, device=dev)
            mags = (self.magnitudes + magnitude_std * noise).clamp(0.0, 1.0)
        return PolicyActions(sub, fire, mags)

    def log_prob(self, actions: PolicyActions, magnitude_std: float) -> torch.Tensor:
        """mean_i [log pi(s_i) + sum_slots log Bern(f_i; p)] + sum_{applied k} log N(m'_k; m_k, sigma^2)."""
        logp = torch.log_softmax(self.subpolicy_logits, dim=0)[actions.subpolicy].mean()
        pairs = subpolicy_table(self.apply_logits.device)[actions.subpolicy]  # (B, 2)
        q = self.apply_logits[pairs]
        f = actions.fire.to(q.dtype)
        bern = f * nn.functional.logsigmoid(q) + (1 - f) * nn.functional.logsigmoid(-q)
        logp = logp + bern.sum(1).mean()
        if magnitude_std > 0:
            applied = torch.zeros(len(OP_NAMES), dtype=torch.bool, device=q.device)
            applied[pairs[actions.fire]] = True
            z = (actions.magnitudes.to(q.dtype) - self.magnitudes) / magnitude_std
            logp = logp + (-0.5 * z.pow(2) * applied).sum()
        return logp

    def policy(self, provenance: dict[str, Any] | None = None) -> AugmentPolicy:
        return AugmentPolicy(self.subpolicy_probs().detach().cpu().double().tolist(),
                             self.apply_probs().detach().cpu().double().clamp(0, 1).tolist(),
                             self.magnitudes.detach().cpu().double().clamp(0, 1).tolist(),
                             provenance or {})


def reinforce_update(params: PolicyParameters, optimizer: torch.optim.Optimizer, actions: PolicyActions,
                     advantage: torch.Tensor | float, magnitude_std: float) -> None:
    """One REINFORCE step: ascend advantage * log pi(actions); magnitudes clipped to [0, 1]."""
    optimizer.zero_grad(set_to_none=True)
    adv = torch.as_tensor(advantage, dtype=torch.float32, device=params.subpolicy_logits.device).detach()
    (-(adv * params.log_prob(actions, magnitude_std))).backward()
    optimizer.step()
    with torch.no_grad():
        params.magnitudes.clamp_(0.0, 1.0)


@COMPONENTS.register("augment_policy")
class AugmentPolicySearch(Component):
    """Owns the policy parameters, their Adam optimizer, the reward baseline and the sampling RNG, and
    uses the optimizer's step hooks (augmentation before the step, reward from the validation loss, update
    after the step); see the module docstring."""

    needs_validation_loss = True  # the reward is -L_val of the step
    tasks = ("classification",)  # the policy's ops transform image batches
    tasks_why = "searches an image augmentation policy"

    def __init__(self, supernet, optimizer, *, dataset: str, lr: float = 5e-3,
                 betas: tuple[float, float] = (0.5, 0.999), baseline_momentum: float = 0.9,
                 magnitude_std: float = 0.1, init_apply_prob: float = 0.5, init_magnitude: float = 0.5,
                 seed: int | None = None):
        super().__init__(supernet, optimizer)
        self.dataset = str(dataset)
        self.device = optimizer.device
        self.params = PolicyParameters(init_apply_prob, init_magnitude).to(self.device)
        self.policy_opt = torch.optim.Adam(self.params.parameters(), lr=lr, betas=tuple(betas))
        self.momentum = float(baseline_momentum)
        self.magnitude_std = float(magnitude_std)
        base_seed = torch.initial_seed() if seed is None else int(seed)
        self.generator = torch.Generator(device=self.device).manual_seed((base_seed + SEED_OFFSET) % 2**63)
        self.baseline = torch.zeros((), device=self.device)
        self.has_baseline = False
        self.last_reward = float("nan")
        self.updates = 0
        self._info = None
        self._actions: PolicyActions | None = None
        self._val_losses: list[torch.Tensor] = []

    # ----------------------------------------------------------------- step hooks (StepHooks)
    def before_step(self, batch):
        """The step's training batch, augmented by this step's sampled actions."""
        return self.augment(batch)

    def on_loss(self, prefix: str, loss: torch.Tensor) -> None:
        """Record the validation losses of the step (the reward)."""
        if prefix == "val":
            self._val_losses.append(loss)

    def _dataset_info(self, x: torch.Tensor):
        if self._info is None:
            from omegaconf import OmegaConf

            from nascli.data import dataset_info
            self._info = dataset_info(OmegaConf.create({"name": self.dataset, "channels": int(x.shape[1]),
                                                        "image_size": int(x.shape[-1])}))
        return self._info

    def augment(self, batch):
        """Sample this step's actions and apply them to a normalised training batch."""
        x, y = batch
        info = self._dataset_info(x)
        self._actions = self.params.sample(x.shape[0], self.magnitude_std, self.generator)
        self._val_losses = []
        x01 = apply_actions(denormalize(x, info), self._actions, self.generator)
        return normalize_float(x01, info).to(x.dtype), y

    def after_step(self) -> None:
        """REINFORCE update of the policy from this step's reward (none when no validation loss was
        computed, e.g. during an architecture warm-up)."""
        if self._actions is None or not self._val_losses:
            self._actions = None
            return
        reward = -torch.stack(self._val_losses).float().mean()
        if not self.has_baseline:
            self.baseline = reward.clone()
            self.has_baseline = True
        reinforce_update(self.params, self.policy_opt, self._actions, reward - self.baseline, self.magnitude_std)
        self.baseline = self.momentum * self.baseline + (1 - self.momentum) * reward
        self.last_reward = reward  # read (host sync) only in values()
        self.updates += 1
        self._actions, self._val_losses = None, []

    # ----------------------------------------------------------------- reporting and artifacts
    def values(self) -> dict[str, float]:
        probs = self.params.subpolicy_probs().detach()
        entropy = float(-(probs * probs.clamp_min(1e-12).log()).sum())
        return {"policy_entropy": entropy, "policy_top_prob": float(probs.max()),
                "policy_apply_prob_mean": float(self.params.apply_probs().detach().mean()),
                "policy_baseline": float(self.baseline), "policy_reward": float(self.last_reward),
                "policy_updates": float(self.updates)}

    def policy(self) -> AugmentPolicy:
        return self.params.policy({"method": "daas-approx", "updates": self.updates})

    def artifacts(self) -> dict[str, Any]:
        """Files the search command writes into the run directory: ``policy.json``."""
        return {"policy.json": self.policy().to_json()}

    def report(self):
        """A rich table of the searched policy for the end-of-search console output."""
        from nascli.data.policy import policy_table
        return policy_table(self.policy())

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {"params": {k: v.detach().clone() for k, v in self.params.state_dict().items()},
                "policy_opt": self.policy_opt.state_dict(), "baseline": self.baseline.detach().clone(),
                "has_baseline": self.has_baseline, "generator": self.generator.get_state(),
                "last_reward": float(self.last_reward), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.params.load_state_dict(state["params"])
        self.policy_opt.load_state_dict(state["policy_opt"])
        self.baseline = state["baseline"].to(self.device)
        self.has_baseline = bool(state["has_baseline"])
        self.generator.set_state(state["generator"].cpu())
        self.last_reward = float(state["last_reward"])
        self.updates = int(state["updates"])
