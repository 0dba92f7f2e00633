"""The image encoder of the agent: any nascli network as an SB3 features extractor, and the IMPALA baseline.

A space's network (a supernet during the search, the derived discrete network in ``nas evaluate``) is built
with the classification head sized ``num_classes = features_dim``, so its global-pooled cell output goes
through one linear layer to the feature vector; the extractor returns ``relu(net(obs))`` (SB3 has already
scaled the uint8 image to [0, 1]). The policy and value heads of SB3's ``ActorCriticPolicy`` sit on top, the
encoder shared between them (PPO's default), as RL-DARTS replaces the IMPALA-CNN encoder of the agent (Miao et
al. 2022, sec. 3).

:class:`ImpalaEncoder` is the IMPALA-CNN of Espeholt et al. 2018 (fig. 3, "large" network): per stack a 3x3
conv, 3x3 max-pool with stride 2 and two residual blocks ``x + conv(relu(conv(relu(x))))``; then ReLU,
flatten and a linear layer to the features. The paper's stacks have 16, 32, 32 channels and 256 features;
``channels`` scales them down to match a derived encoder's size at CPU scale.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def _features_extractor_base() -> type:
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    return BaseFeaturesExtractor


def network_extractor_class() -> type:
    """The SB3 ``BaseFeaturesExtractor`` subclass wrapping a built network (imported when SB3 is needed)."""
    base = _features_extractor_base()

    class NetworkEncoder(base):
        """``relu(net(obs))``: the features of a network whose head outputs ``features_dim`` values."""

        def __init__(self, observation_space: Any, net: nn.Module, features_dim: int):
            super().__init__(observation_space, features_dim)
            self.net = net

        def forward(self, observations: torch.Tensor) -> torch.Tensor:
            out = self.net(observations)
            if isinstance(out, (tuple, list)):  # (logits, auxiliary logits) of a network with an auxiliary head
                out = out[0]
            return torch.relu(out)

    return NetworkEncoder


class ResidualBlock(nn.Module):
    """``x + conv(relu(conv(relu(x))))`` with 3x3 convolutions (Espeholt et al. 2018, fig. 3)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class ImpalaEncoder(nn.Module):
    """Module docstring: IMPALA-CNN stacks of ``channels``, then ReLU, flatten, linear to ``features_dim``."""

    def __init__(self, in_channels: int, image_size: int, channels: Sequence[int] = (16, 32, 32),
                 features_dim: int = 256):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, size = int(in_channels), int(image_size)
        for c in channels:
            layers += [nn.Conv2d(c_in, int(c), 3, padding=1), nn.MaxPool2d(3, stride=2, padding=1),
                       ResidualBlock(int(c)), ResidualBlock(int(c))]
            c_in, size = int(c), (size + 1) // 2  # MaxPool2d(3, 2, padding 1): ceil(size / 2)
        self.stacks = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * size * size, int(features_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(torch.relu(self.stacks(x)), 1))


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
