"""NAS-Bench-201 building blocks (AutoDL xautodl/models/cell_operations.py, METHODS.md 0.4).

In the search supernet the candidate convs use BN(affine=False) and, as a quirk of the reference code,
``bias = not affine`` (True); the evaluation network uses affine BN and bias-free convs.
"""
from __future__ import annotations

import torch
from torch import nn


def bn(channels: int, affine: bool, track_running_stats: bool) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=affine, track_running_stats=track_running_stats)


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv(k) -> BN; the conv carries a bias exactly when the BN is not affine (NB201 quirk)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool, track: bool):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=not affine),
            bn(c_out, affine, track),
        )


class ResNetBasicBlock(nn.Module):
    """The NB201 reduction block: ReLUConvBN(3x3, stride 2) -> ReLUConvBN(3x3) plus an
    AvgPool(2)+Conv1x1 shortcut (no BN). Always affine BN with running statistics."""

    def __init__(self, c_in: int, c_out: int, stride: int = 2):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride, affine=True, track=True)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, affine=True, track=True)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def avg_pool_3x3() -> nn.AvgPool2d:
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


def op_module(name: str, channels: int, affine: bool, track: bool) -> nn.Module | None:
    """A single NB201 op (stride 1, C -> C); ``None`` for ``none``."""
    builders = {
        "none": lambda: None,
        "skip_connect": nn.Identity,
        "nor_conv_1x1": lambda: ReLUConvBN(channels, channels, 1, 1, affine, track),
        "nor_conv_3x3": lambda: ReLUConvBN(channels, channels, 3, 1, affine, track),
        "avg_pool_3x3": avg_pool_3x3,
    }
    return builders[name]()


class MacroNetwork(nn.Module):
    """TinyNetwork macro skeleton shared by the supernet and the discrete network:
    stem Conv3x3+BN, 3 stages of N cells at C, 2C, 4C with ResNet reduction blocks, BN+ReLU, GAP, Linear."""

    def __init__(self, make_cell, num_classes: int, in_channels: int, C: int, N: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        c_prev = C
        for stage, c in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                layers.append(ResNetBasicBlock(c_prev, c, 2))
            layers.extend(make_cell(c) for _ in range(N))
            c_prev = c
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_pooling(self.lastact(x))
        return self.classifier(x.flatten(1))
