"""A tiny pixel environment registered with Gymnasium on import (for tests of the ``gymnasium`` env family): the
agent sees a 12x12 RGB frame whose red channel is the step count; action 1 ends the episode with reward 1."""
import gymnasium as gym
import numpy as np


class CountingFrames(gym.Env):
    def __init__(self, size: int = 12, distribution_mode: str = "easy"):  # Procgen's make keyword, accepted
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(3)
        self.size, self.t = size, 0

    def _frame(self) -> np.ndarray:
        frame = np.zeros((self.size, self.size, 3), np.uint8)
        frame[..., 0] = self.t
        frame[..., 1] = self.np_random.integers(0, 255)  # the episode's random draw, so the RNG state matters
        return frame

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._frame(), {}

    def step(self, action):
        self.t += 1
        done = int(action) == 1
        return self._frame(), float(done), done, self.t >= 20, {}


class VectorObs(CountingFrames):
    def __init__(self):
        super().__init__()
        self.observation_space = gym.spaces.Box(0, 1, (4,), np.float32)


gym.register("nascli-test/CountingFrames-v0", entry_point=CountingFrames)
gym.register("nascli-test/VectorObs-v0", entry_point=VectorObs)
