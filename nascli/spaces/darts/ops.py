"""The eight candidate operations of the DARTS CNN search space (and R-DARTS's ``noise``), as plain modules.

Reference: quark0/darts@f276dd3 ``cnn/operations.py`` and ``cnn/genotypes.py`` (METHODS.md §0.1).
Every convolution has ``bias=False``; every BatchNorm is affine when ``affine=True`` (discrete
networks) and non-affine when ``affine=False`` (search supernet), so the parameter count of each op is
exactly the reference's. Ops map C channels to C channels; ``stride=2`` halves the spatial size
(``ceil(H/2)``).

``OPS[name](C, stride, affine)`` builds one op; ``PRIMITIVES`` lists the names in the order of the alpha
columns. The search-time BatchNorm after pooling ops (reference ``MixedOp``) belongs to the supernet
(``nascli/spaces/darts/supernet.py``), not to these ops.

``CELL_OPS`` is every op a DARTS-family cell may hold: ``OPS`` plus ``noise`` (:class:`Noise`), the
parameter-free op of the R-DARTS space S4 (automl/RobustDARTS src/operations.py ``NoiseOp``; METHODS.md 8).
``noise`` is not one of the 8 PRIMITIVES: only the R-DARTS variants (``nascli/spaces/darts/rdarts.py``) offer
it. Search cells and discrete networks build their ops from an :class:`OpSet` (``DARTS_OP_SET``: ``CELL_OPS`` by
default; a space variant whose op names mean other modules, e.g. sharpDARTS's SharpSepConv
``nascli/spaces/darts/sharp.py``, brings its own).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Alpha column order (quark0/darts cnn/genotypes.py PRIMITIVES).
PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


class Zero(nn.Module):
    """``none``: an all-zero output, subsampled ``[::stride, ::stride]`` when ``stride > 1``."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Noise(nn.Module):
    """``noise``: fresh N(mean, std^2) samples shaped like ``x[:, :, ::stride, ::stride]`` on every call, in
    training and in evaluation alike (R-DARTS evaluates S4 cells with the noise in place). No parameters; no
    gradient reaches ``x``. Defaults mean 0, std 1 (automl/RobustDARTS src/operations.py ``OPS['noise']``)."""

    def __init__(self, stride: int, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        self.stride, self.mean, self.std = stride, float(mean), float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        like = x if self.stride == 1 else x[:, :, :: self.stride, :: self.stride]
        out = torch.randn_like(like, memory_format=torch.preserve_format)
        if self.std != 1.0 or self.mean != 0.0:
            out = out * self.std + self.mean
        return out


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv(k, stride, padding, bias=False) -> BN(affine). The cells' 1x1 preprocessing."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """``dil_conv_k``: ReLU -> depthwise k x k conv (dilation 2) -> pointwise 1x1 conv -> BN."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """``sep_conv_k``: the separable conv applied twice (only the first depthwise conv is strided).

    [ReLU, DW k x k (stride s), 1x1, BN, ReLU, DW k x k (stride 1), 1x1, BN].
    """

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, 1, padding=0, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=1, padding=padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class FactorizedReduce(nn.Module):
    """Halve the spatial size without losing pixels: ReLU; two 1x1 stride-2 convs with C_out/2 outputs,
    the second on the input shifted by one pixel (``x[:, :, 1:, 1:]``); concat; BN.

    Deviation (only where the reference fails): for an odd height/width the shifted input is padded by
    one zero row/column at the bottom/right so both halves have ``ceil(H/2)`` rows; the reference
    raises a shape error there. Even sizes (every DARTS protocol) are computed exactly as the reference.
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        if C_out % 2 != 0:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = x[:, :, 1:, 1:]
        pad_w, pad_h = x.shape[3] % 2, x.shape[2] % 2
        if pad_w or pad_h:
            shifted = F.pad(shifted, (0, pad_w, 0, pad_h))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


OpFactory = Callable[[int, int, bool], nn.Module]

# name -> factory(C, stride, affine); quark0/darts cnn/operations.py OPS (the 8 PRIMITIVES).
OPS: dict[str, OpFactory] = {
    "none": lambda C, stride, affine: Zero(stride),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda C, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1,
                                                           count_include_pad=False),
    "skip_connect": lambda C, stride, affine: (nn.Identity() if stride == 1
                                               else FactorizedReduce(C, C, affine=affine)),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine=affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine=affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine=affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine=affine),
}

# Ops beyond the 8 PRIMITIVES that the R-DARTS spaces add (automl/RobustDARTS src/operations.py; METHODS.md 8).
RDARTS_OPS: dict[str, OpFactory] = {
    "noise": lambda C, stride, affine: Noise(stride),
}

# Every op a DARTS-family cell (search or discrete) may hold.
CELL_OPS: dict[str, OpFactory] = {**OPS, **RDARTS_OPS}


@dataclass(frozen=True)
class OpSet:
    """What the op names of one DARTS-family space mean: ``factories[name](C, stride, affine)`` builds the op
    (search cells and discrete networks), ``kernels[name]`` names the fast search cell's kernel computing it
    (``pool``, ``skip``, ``sep``, ``dil``, ``noise``, ``sharp``; nascli/spaces/darts/search_fast.py)."""

    factories: Mapping[str, OpFactory]
    kernels: Mapping[str, str]


# The DARTS ops (and noise) with their fast-cell kernels.
DARTS_OP_SET = OpSet(CELL_OPS, {
    "max_pool_3x3": "pool", "avg_pool_3x3": "pool", "skip_connect": "skip", "sep_conv_3x3": "sep",
    "sep_conv_5x5": "sep", "dil_conv_3x3": "dil", "dil_conv_5x5": "dil", "noise": "noise",
})
