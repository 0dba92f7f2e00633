"""Pixel environments of ``task=reinforcement_learning``: families, seeding, state capture for resuming.

An environment config (``conf/dataset/minigrid_*.yaml``, ``procgen_*.yaml``) names a ``family`` of
:data:`ENV_FAMILIES`; the family builds one Gymnasium environment whose observations are (H, W, 3) uint8
images, and captures/restores everything a resumed run needs to continue each environment exactly where it was:

* ``minigrid``: MiniGrid (Chevalier-Boisvert et al., 2023) rendered as RGB by ``RGBImgObsWrapper`` at
  ``tile_size`` pixels per cell (a 5x5 grid at 4 px: 20x20 images), the first ``num_actions`` actions kept.
  State: the grid (``Grid.encode``: type, colour, state of every cell), agent position and direction, the
  carried object, the step count, the mission and the environment's ``np_random`` bit-generator state: exact.
* ``gymnasium``: any registered Gymnasium env with image observations (the Procgen port, ``import`` names the
  module that registers its ids), resized to ``image_size``; only ``np_random`` is captured, so a resumed
  run continues the current episodes from a re-seeded generator, not from the saved game state (not exact).

Every environment is wrapped in SB3's ``Monitor`` (episode returns); its running episode reward list is part
of the captured state. Vectorised environments are ``DummyVecEnv`` (one process) of ``n_envs`` copies
seeded ``seed + i`` and transposed to channels-first (``VecTransposeImage``), as SB3 feeds CNN policies.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

import numpy as np

from nascli.errors import NasError
from nascli.registry import Registry


class EnvFamily:
    """One kind of environment: how to build it and how much of its state a checkpoint can hold."""

    #: whether :meth:`capture` / :meth:`restore` continue an episode exactly
    exact_state: bool = False

    def make(self, env_cfg: Any) -> Any:
        """One Gymnasium environment with (H, W, 3) uint8 image observations."""
        raise NotImplementedError

    def capture(self, env: Any) -> dict[str, Any]:
        """Plain data (ints as strings where they exceed 64 bits) from which :meth:`restore` rebuilds the state."""
        return {"np_random": _generator_state(env.unwrapped.np_random)}

    def restore(self, env: Any, state: dict[str, Any]) -> None:
        env.unwrapped.np_random.bit_generator.state = _generator_from(state["np_random"])


ENV_FAMILIES: Registry[EnvFamily] = Registry("environment family")


def _generator_state(gen: np.random.Generator) -> dict[str, Any]:
    """A NumPy bit generator's state with every int written as a string (PCG64's are 128-bit)."""
    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return str(int(v)) if isinstance(v, (int, np.integer)) else v
    return plain(gen.bit_generator.state)


def _generator_from(state: dict[str, Any]) -> dict[str, Any]:
    def back(k: str, v: Any) -> Any:
        if isinstance(v, dict):
            return {kk: back(kk, x) for kk, x in v.items()}
        return v if k == "bit_generator" else int(v)
    return {k: back(k, v) for k, v in state.items()}


def _need(module: str, extra: str = "rl") -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise NasError(f"task=reinforcement_learning needs the {module} package; pip install 'nascli[{extra}]'") \
            from None


def _keep_actions(env: Any, n: int | None) -> Any:
    """``env`` with only its first ``n`` discrete actions (None: all)."""
    gym = _need("gymnasium")
    total = int(env.action_space.n)
    if n is None or int(n) == total:
        return env
    if not 1 <= int(n) <= total:
        raise NasError(f"dataset.num_actions={n} is not between 1 and the environment's {total} actions")

    class FirstActions(gym.ActionWrapper):
        def __init__(self, inner):
            super().__init__(inner)
            self.action_space = gym.spaces.Discrete(int(n))

        def action(self, action):
            return action

    return FirstActions(env)


class MiniGridFamily(EnvFamily):
    """Module docstring: MiniGrid with fully observed RGB frames, exact state capture."""

    exact_state = True

    def make(self, env_cfg: Any) -> Any:
        gym = _need("gymnasium")
        _need("minigrid")
        from minigrid.wrappers import ImgObsWrapper, RGBImgObsWrapper

        env_id = str(env_cfg.env_id)
        try:
            env = gym.make(env_id)
        except gym.error.Error as exc:
            raise NasError(f"dataset.env_id={env_id} is not a registered MiniGrid environment ({exc})") from None
        env = ImgObsWrapper(RGBImgObsWrapper(env, tile_size=int(env_cfg.tile_size)))
        return _keep_actions(env, env_cfg.get("num_actions"))

    def capture(self, env: Any) -> dict[str, Any]:
        u = env.unwrapped
        carrying = None if u.carrying is None else [int(v) for v in u.carrying.encode()]
        return {**super().capture(env), "grid": u.grid.encode().tolist(),
                "agent_pos": [int(v) for v in u.agent_pos], "agent_dir": int(u.agent_dir),
                "step_count": int(u.step_count), "carrying": carrying, "mission": str(u.mission)}

    def restore(self, env: Any, state: dict[str, Any]) -> None:
        from minigrid.core.grid import Grid
        from minigrid.core.world_object import WorldObj

        super().restore(env, state)
        u = env.unwrapped
        u.grid, _ = Grid.decode(np.asarray(state["grid"], dtype=np.uint8))
        u.agent_pos = tuple(state["agent_pos"])
        u.agent_dir = int(state["agent_dir"])
        u.step_count = int(state["step_count"])
        u.carrying = None if state["carrying"] is None else WorldObj.decode(*state["carrying"])
        if u.carrying is not None:
            u.carrying.cur_pos = np.array([-1, -1])
        u.mission = state["mission"]


class GymnasiumFamily(EnvFamily):
    """Module docstring: any Gymnasium pixel environment (e.g. the Procgen port), resized; RNG-only capture."""

    def make(self, env_cfg: Any) -> Any:
        gym = _need("gymnasium")
        if env_cfg.get("import"):
            module = str(env_cfg["import"])
            try:
                importlib.import_module(module)
            except ImportError:
                raise NasError(f"dataset.import={module}: that package is not installed (dataset "
                               f"{env_cfg.name} needs it; install it yourself, nascli does not pin it)") from None
        env_id = str(env_cfg.env_id)
        try:
            env = gym.make(env_id, **dict(env_cfg.get("make_kwargs") or {}))
        except gym.error.Error as exc:
            raise NasError(f"dataset.env_id={env_id} is not a registered Gymnasium environment ({exc})") from None
        except TypeError as exc:  # the env's constructor does not take a make_kwargs key
            raise NasError(f"dataset.make_kwargs={dict(env_cfg.get('make_kwargs') or {})} do not fit {env_id}: "
                           f"{str(exc).splitlines()[0]}") from None
        shape = getattr(env.observation_space, "shape", None)
        if shape is None or len(shape) != 3 or shape[-1] != 3:
            raise NasError(f"dataset.env_id={env_id} does not observe (H, W, 3) images (observation space "
                           f"{env.observation_space}); task=reinforcement_learning learns from pixels")
        size = int(env_cfg.image_size)
        if tuple(shape[:2]) != (size, size):
            env = _resized(env, size)
        return _keep_actions(env, env_cfg.get("num_actions"))


def _resized(env: Any, size: int) -> Any:
    """``env`` with (size, size, 3) uint8 frames: bilinear with antialiasing (torch), rounded. Gymnasium's own
    ResizeObservation needs OpenCV, which nascli does not install."""
    gym = _need("gymnasium")
    import torch
    import torch.nn.functional as F

    class ResizeFrames(gym.ObservationWrapper):
        def __init__(self, inner):
            super().__init__(inner)
            self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)

        def observation(self, frame):
            x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
            y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            return y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()

    return ResizeFrames(env)


ENV_FAMILIES.register("minigrid")(MiniGridFamily())
ENV_FAMILIES.register("gymnasium")(GymnasiumFamily())


def family_of(env_cfg: Any) -> EnvFamily:
    name = str(env_cfg.get("family", ""))
    if name not in ENV_FAMILIES.names():
        raise NasError(f"dataset.family={name} is not an environment family; valid choices: "
                       f"{', '.join(ENV_FAMILIES.names())}")
    return ENV_FAMILIES.get(name)


def make_vec_env(env_cfg: Any, n_envs: int, seed: int) -> Any:
    """``n_envs`` Monitor-wrapped environments in one process (``DummyVecEnv``), channels first, whose next
    reset uses seeds ``seed, seed + 1, ...``."""
    _need("stable_baselines3")
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecTransposeImage

    family = family_of(env_cfg)
    makers: list[Callable[[], Any]] = [lambda: Monitor(family.make(env_cfg)) for _ in range(int(n_envs))]
    venv = DummyVecEnv(makers)
    venv.seed(int(seed))
    return VecTransposeImage(venv)


def env_facts(env_cfg: Any) -> dict[str, Any]:
    """(image size, channels, actions) of one environment, built and closed without stepping it."""
    env = family_of(env_cfg).make(env_cfg)
    try:
        h, w, c = env.observation_space.shape
        if h != w:
            raise NasError(f"dataset {env_cfg.name} observes {h}x{w} images; the spaces' networks take square "
                           f"inputs: pick a tile_size/image_size that gives a square frame")
        return {"image_size": int(h), "channels": int(c), "num_actions": int(env.action_space.n)}
    finally:
        env.close()


def _inner_envs(vec_env: Any) -> list[Any]:
    """The Monitor-wrapped environments under the vectorised wrappers."""
    inner = vec_env
    while not hasattr(inner, "envs"):
        inner = inner.venv
    return list(inner.envs)


def finished_episodes(vec_env: Any) -> int:
    """Episodes the vectorised environment's Monitors have finished so far."""
    return sum(len(m.episode_returns) for m in _inner_envs(vec_env))


def capture_vec_env(vec_env: Any, env_cfg: Any) -> list[dict[str, Any]]:
    """Per environment: the family's state plus the Monitor's running episode (rewards so far, counters)."""
    family = family_of(env_cfg)
    out = []
    for monitor in _inner_envs(vec_env):
        out.append({"env": family.capture(monitor),
                    "monitor": {"rewards": [float(r) for r in monitor.rewards],
                                "needs_reset": bool(monitor.needs_reset),
                                "total_steps": int(monitor.total_steps),
                                "episode_returns": [float(r) for r in monitor.episode_returns],
                                "episode_lengths": [int(n) for n in monitor.episode_lengths]}})
    return out


def restore_vec_env(vec_env: Any, env_cfg: Any, states: list[dict[str, Any]]) -> None:
    """Inverse of :func:`capture_vec_env` on a freshly built (and reset) vectorised environment."""
    family = family_of(env_cfg)
    envs = _inner_envs(vec_env)
    if len(envs) != len(states):
        raise NasError(f"the checkpoint holds {len(states)} environments, this run builds {len(envs)}")
    for monitor, state in zip(envs, states):
        family.restore(monitor, state["env"])
        m = state["monitor"]
        monitor.rewards = list(m["rewards"])
        monitor.needs_reset = bool(m["needs_reset"])
        monitor.total_steps = int(m["total_steps"])
        monitor.episode_returns = list(m["episode_returns"])
        monitor.episode_lengths = list(m["episode_lengths"])
