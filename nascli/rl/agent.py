"""The PPO agent (Stable-Baselines3) with a nascli network as its encoder, its architecture optimizer, its
evaluation episodes and its resumable state.

Architecture parameters (RL-DARTS, Miao et al. 2022, sec. 3: alpha is trained jointly with the weights on
the RL loss, by its own Adam). SB3's ``PPO.train`` runs, per minibatch,
``policy.optimizer.zero_grad(); loss.backward(); clip_grad_norm_(policy.parameters()); policy.optimizer.step()``
and sets *every* param group of ``policy.optimizer`` to its learning-rate schedule first
(``_update_learning_rate``), so alpha cannot keep its own learning rate as a param group there. Instead
:func:`attach_arch_optimizer` rebuilds ``policy.optimizer`` (same class and options) over the weights only and
registers a ``torch.optim.Optimizer`` step post-hook on it that steps an Adam over alpha (``optimizer.arch_lr``,
``arch_betas``, ``arch_weight_decay``) and clears alpha's gradients: alpha is updated from the same PPO loss
gradient, after the same norm clipping, once per minibatch, without copying or overriding ``PPO.train``.

Resumable state (:func:`agent_state`): SB3's own parameter dicts (``get_parameters``/``set_parameters``: the
policy and its optimizer), the alpha optimizer, SB3's counters, the last observations and episode starts of
the rollout in progress and the recent-episode buffer; tensors and plain data only, so the run's checkpoint
loads with ``torch.load(weights_only=True)``. SB3's zip format (``PPO.save``/``PPO.load``) is not used: its
``data`` entry is cloudpickled (policy kwargs, schedules, spaces) and ``PPO.load`` unpickles it.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
from torch import nn


class ArchStep:
    """Steps alpha's Adam after every step of the weights' optimizer (module docstring); off before
    ``start_epoch`` (``optimizer.arch_start_epoch``, a warm-up)."""

    def __init__(self, arch_params: list[nn.Parameter], lr: float, betas: tuple[float, float], weight_decay: float,
                 start_epoch: int = 0):
        self.optimizer = torch.optim.Adam(arch_params, lr=lr, betas=betas, weight_decay=weight_decay)
        self.start_epoch = int(start_epoch)
        self.active = self.start_epoch <= 0
        self.steps = 0

    def on_epoch_start(self, epoch: int) -> None:
        self.active = epoch >= self.start_epoch

    def __call__(self, _weights_optimizer: Any, _args: Any, _kwargs: Any) -> None:
        if self.active:
            self.optimizer.step()
            self.steps += 1
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state["steps"])


def attach_arch_optimizer(policy: Any, arch_params: list[nn.Parameter], *, lr: float, betas: Any,
                          weight_decay: float, start_epoch: int = 0) -> ArchStep:
    """Rebuild ``policy.optimizer`` over the parameters that are not ``arch_params`` and hook alpha's Adam on
    its step (module docstring)."""
    ids = {id(p) for p in arch_params}
    weights = [p for p in policy.parameters() if id(p) not in ids]
    lr_now = policy.optimizer.param_groups[0]["lr"]
    policy.optimizer = policy.optimizer_class(weights, lr=lr_now, **policy.optimizer_kwargs)
    step = ArchStep(list(arch_params), float(lr), tuple(float(b) for b in betas), float(weight_decay), start_epoch)
    policy.optimizer.register_step_post_hook(step)
    return step


def build_ppo(vec_env: Any, net: nn.Module, features_dim: int, protocol: Any, seed: int, device: torch.device) -> Any:
    """SB3 PPO with ``net`` as the shared encoder (:mod:`nascli.rl.encoder`) and ``protocol``'s settings."""
    from stable_baselines3 import PPO

    from nascli.rl.encoder import network_extractor_class

    hidden = [int(h) for h in protocol.get("head_layers", [])]
    policy_kwargs = {"features_extractor_class": network_extractor_class(),
                     "features_extractor_kwargs": {"net": net, "features_dim": int(features_dim)},
                     "net_arch": {"pi": hidden, "vf": hidden},
                     "optimizer_kwargs": {"eps": float(protocol.adam_eps)}}
    return PPO("CnnPolicy", vec_env, learning_rate=float(protocol.lr), n_steps=int(protocol.n_steps),
               batch_size=int(protocol.batch_size), n_epochs=int(protocol.n_epochs), gamma=float(protocol.gamma),
               gae_lambda=float(protocol.gae_lambda), clip_range=float(protocol.clip_range),
               ent_coef=float(protocol.ent_coef), vf_coef=float(protocol.vf_coef),
               max_grad_norm=float(protocol.max_grad_norm), policy_kwargs=policy_kwargs, seed=int(seed),
               device=device, verbose=0)


def timesteps_per_epoch(protocol: Any) -> int:
    """An evaluation period: ``rollouts_per_epoch`` PPO iterations of ``n_steps`` x ``n_envs`` steps."""
    return int(protocol.rollouts_per_epoch) * int(protocol.n_steps) * int(protocol.n_envs)


def learn_epoch(model: Any, protocol: Any) -> dict[str, float]:
    """One evaluation period of PPO; SB3's last ``train/*`` statistics (losses, KL, clip fraction)."""
    model.learn(total_timesteps=timesteps_per_epoch(protocol), reset_num_timesteps=False, log_interval=None)
    return {k.split("/", 1)[1]: float(v) for k, v in model.logger.name_to_value.items()
            if k.startswith("train/") and isinstance(v, (int, float, np.floating))}


def training_returns(model: Any) -> list[float]:
    """Returns of the recent training episodes (SB3's buffer of the last 100)."""
    return [float(info["r"]) for info in (model.ep_info_buffer or [])]


def evaluation_returns(model: Any, env_cfg: Any, episodes: int, seed: int, deterministic: bool = True) -> list[float]:
    """Returns of ``episodes`` episodes of the current policy on one environment whose first reset is seeded
    ``seed`` (so every evaluation period, and a resumed run, plays the same episode starts)."""
    from stable_baselines3.common.evaluation import evaluate_policy

    from nascli.rl.envs import make_vec_env

    env = make_vec_env(env_cfg, 1, seed)
    try:
        returns, _ = evaluate_policy(model, env, n_eval_episodes=int(episodes), deterministic=deterministic,
                                     return_episode_rewards=True, warn=False)
    finally:
        env.close()
    return [float(r) for r in returns]


def agent_state(model: Any, arch_step: ArchStep | None) -> dict[str, Any]:
    """Module docstring: everything of the agent a resumed run needs, tensors and plain data only."""
    buffer = [{"r": float(i["r"]), "l": int(i["l"]), "t": float(i.get("t", 0.0))} for i in (model.ep_info_buffer or [])]
    return {
        "parameters": model.get_parameters(),
        "arch_step": arch_step.state_dict() if arch_step is not None else None,
        "num_timesteps": int(model.num_timesteps), "n_updates": int(model._n_updates),
        "episode_num": int(model._episode_num),
        "last_obs": None if model._last_obs is None else torch.from_numpy(np.array(model._last_obs)),
        "last_episode_starts": None if model._last_episode_starts is None
        else torch.from_numpy(np.array(model._last_episode_starts)),
        "ep_info_buffer": buffer,
    }


def load_agent_state(model: Any, arch_step: ArchStep | None, state: dict[str, Any]) -> None:
    """Inverse of :func:`agent_state` on a freshly built agent of the same config."""
    model.set_parameters(state["parameters"], exact_match=True, device=model.device)
    if arch_step is not None and state["arch_step"] is not None:
        arch_step.load_state_dict(state["arch_step"])
    model.num_timesteps = int(state["num_timesteps"])
    model._n_updates = int(state["n_updates"])
    model._episode_num = int(state["episode_num"])
    if state["last_obs"] is not None:
        model._last_obs = state["last_obs"].numpy()
        model._last_episode_starts = state["last_episode_starts"].numpy()
    model.ep_info_buffer = deque(state["ep_info_buffer"], maxlen=model._stats_window_size)
    model.ep_success_buffer = deque(maxlen=model._stats_window_size)
