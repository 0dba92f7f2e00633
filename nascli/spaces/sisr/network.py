"""The discrete sisr_trilevel network of an arch, and the parts it shares with the supernet.

    y = tail(H_b(... H_1(up(L_a(... L_1(head(x)))))) + R(x)

head: 3x3 conv in_channels -> C at LR; L_i, H_j: cells (the arch's genotype) before / after the sub-pixel
upsampler ``up`` (x2, x3, x4; nascli/spaces/sisr/ops.py); tail: 3x3 conv C -> in_channels at HR; R the global
residual (``bicubic``: bicubic upsampling of x by torch ``F.interpolate(mode="bicubic", antialias=True,
align_corners=False)``, Keys' kernel with a = -0.5 as MATLAB's imresize, the same call as the SR data's
bicubic baseline; ``none``: 0). With the bicubic residual the tail starts near zero (PyTorch's default init
times ``TAIL_INIT_SCALE`` = 0.01, bias 0), so a fresh network is within a few grey levels of the bicubic baseline
and learns the residual, while gradients still reach every weight and architecture parameter (exactly zero
would stop them in the first step). A choice, in the spirit of Fixup/ReZero inits.

A cell is a chain of its K slots with a scaled residual, cell(x) = x + res_scale * o_K(...o_1(x)), slot k
mapping n_{k-1} -> n_k channels (n_0 = n_K = C, n_k = max(1, round(width_k C)) inside).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nascli.errors import OptionError
from nascli.spaces.sisr.arch import SISRArch, width_channels
from nascli.spaces.sisr.ops import OPS, SCALES, upsampler


#: factor on the tail's default init when a global residual is added (module docstring)
TAIL_INIT_SCALE = 0.01


def bicubic_residual(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upsampling of the LR input (the global residual of VDSR-style nets)."""
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(h * scale, w * scale), mode="bicubic", antialias=True, align_corners=False)


def no_residual(x: torch.Tensor, scale: int) -> None:
    return None


#: ``global_residual`` option -> (lr, scale) -> tensor added to the output, or None
GLOBAL_RESIDUALS: dict[str, Callable[[torch.Tensor, int], torch.Tensor | None]] = {
    "bicubic": bicubic_residual,
    "none": no_residual,
}


def check_network_options(scale: int, channels: int, global_residual: str) -> None:
    """One-line OptionError for a scale, width or residual the space does not build."""
    if scale not in SCALES:
        raise OptionError(f"scale {scale!r} is not supported by space sisr_trilevel; valid scales: "
                          f"{', '.join(map(str, SCALES))}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise OptionError(f"space sisr_trilevel C={channels!r} is not a channel count >= 1")
    if global_residual not in GLOBAL_RESIDUALS:
        raise OptionError(f"unknown sisr_trilevel global_residual {global_residual!r}; valid choices: "
                          f"{', '.join(GLOBAL_RESIDUALS)}")


class SRFrame(nn.Module):
    """head, tail and global residual around a body (shared by the supernet and the discrete network)."""

    def __init__(self, scale: int, in_channels: int, channels: int, global_residual: str):
        super().__init__()
        check_network_options(scale, channels, global_residual)
        self.scale, self.global_residual = scale, global_residual
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, in_channels, 3, padding=1)
        if global_residual != "none":  # start near the bicubic baseline (module docstring)
            with torch.no_grad():
                self.tail.weight.mul_(TAIL_INIT_SCALE)
                self.tail.bias.zero_()

    def finish(self, features: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        y = self.tail(features)
        r = GLOBAL_RESIDUALS[self.global_residual](lr, self.scale)
        return y if r is None else y + r


class DiscreteCell(nn.Module):
    """cell(x) = x + res_scale * o_K(...o_1(x)) with the arch's ops and widths (module docstring)."""

    def __init__(self, ops: tuple[str, ...], widths: tuple[float, ...], channels: int, res_scale: float):
        super().__init__()
        sizes = [channels] + [width_channels(w, channels) for w in widths] + [channels]
        self.ops = nn.ModuleList(OPS[op](sizes[k], sizes[k + 1]) for k, op in enumerate(ops))
        self.res_scale = float(res_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for op in self.ops:
            h = op(h)
        return x + self.res_scale * h


class SISRNetwork(nn.Module):
    """The discrete network of ``arch`` (module docstring): forward(lr (B,C,h,w)) -> (B,C,h s,w s)."""

    def __init__(self, arch: SISRArch, scale: int, in_channels: int = 3, C: int = 32, res_scale: float = 0.2,
                 global_residual: str = "bicubic"):
        super().__init__()
        self.arch = arch
        self.frame = SRFrame(scale, in_channels, C, global_residual)

        def cells(n: int) -> nn.Sequential:
            return nn.Sequential(*(DiscreteCell(arch.ops, arch.widths, C, res_scale) for _ in range(n)))

        self.lr_cells = cells(arch.lr_cells)
        self.up = upsampler(C, scale)
        self.hr_cells = cells(arch.hr_cells)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        h = self.hr_cells(self.up(self.lr_cells(self.frame.head(lr))))
        return self.frame.finish(h, lr)
