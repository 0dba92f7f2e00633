"""Reinforcement learning for ``task=reinforcement_learning`` (RL-DARTS: Miao et al., "Differentiable
Architecture Search for Reinforcement Learning", AutoML-Conf 2022): a space's supernet (or a derived discrete
network) is the image encoder of a Stable-Baselines3 PPO agent, trained end to end on the RL loss.

* :mod:`nascli.rl.envs`: environment families (MiniGrid with RGB observations, any Gymnasium pixel env such as
  the Procgen port), seeding, and the capture/restore of each environment's state and RNG for resuming;
* :mod:`nascli.rl.encoder`: the SB3 features extractor around a network, and the IMPALA-CNN baseline;
* :mod:`nascli.rl.agent`: the PPO agent, the architecture optimizer attached to its optimizer by a step hook,
  evaluation episodes, and the agent's resumable state;
* :mod:`nascli.rl.driver`: the search and evaluation loops the task runs instead of the supervised ones.
"""
