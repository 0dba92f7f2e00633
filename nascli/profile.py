"""Model size, compute and memory measurements reported with every run.

* :func:`count_parameters` follows the DARTS ``utils.count_parameters_in_MB`` convention
  (METHODS.md 0.2 and 11.10): trainable parameters whose name does not contain ``"auxiliary"``.
* :func:`count_flops` counts multiply-adds ("mult-adds", the unit of the DARTS mobile setting,
  METHODS.md 0.3) of convolutions and linear layers for one image.
* :func:`peak_memory_bytes` / :func:`reset_peak_memory` give the high-water mark of device memory.
"""
from __future__ import annotations

import math
import resource
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

AUXILIARY = "auxiliary"


def count_parameters(model: nn.Module, exclude: str | None = AUXILIARY) -> int:
    """Number of trainable parameters, skipping those whose qualified name contains ``exclude``.

    ``exclude=None`` (or ``""``) counts everything. Divide by 1e6 for the "Params (M)" column.
    """
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if p.requires_grad and not (exclude and exclude in name)
    )


def _conv_macs(module: nn.Conv1d | nn.Conv2d, output: torch.Tensor) -> int:
    """out_elems * (C_in / groups) * prod(kernel_size); stride and dilation act through the output size; no
    bias."""
    return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)


def _linear_macs(module: nn.Linear, output: torch.Tensor) -> int:
    """in_features * out_features per row of the input (one row for a (1, in) batch); no bias."""
    return output.numel() * module.in_features


def count_flops(model: nn.Module, input_shape: Sequence[int], exclude: str | None = AUXILIARY,
                make_input: Callable[[tuple[int, ...], torch.device, torch.dtype], Any] | None = None) -> int:
    """Multiply-adds of all ``Conv1d``, ``Conv2d`` and ``Linear`` layers in one forward of a zeros image.

    ``input_shape`` is ``(C, H, W)`` or ``(1, C, H, W)``; ``make_input(shape, device, dtype)``, when given,
    builds the model's input of ``input_shape`` instead (a task whose networks take another batch type). The
    model runs once in eval mode (so no auxiliary head output and no drop-path) without gradients, on the
    device of its parameters; its training flag is restored afterwards. Modules whose qualified name contains ``exclude`` are not
    counted. A layer applied several times (weight sharing) is counted at every call. Pooling,
    normalisation, activations and additions are not counted.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3 and make_input is None:
        shape = (1, *shape)
    if make_input is None and (len(shape) != 4 or shape[0] != 1):
        raise ValueError(f"input_shape must be (C, H, W) or (1, C, H, W), got {tuple(input_shape)}")

    total = 0

    def conv_hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += _conv_macs(module, output)  # type: ignore[arg-type]

    def linear_hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += _linear_macs(module, output)  # type: ignore[arg-type]

    handles = []
    for name, module in model.named_modules():
        if exclude and exclude in name:
            continue
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(make_input(shape, device, dtype) if make_input else torch.zeros(shape, device=device, dtype=dtype))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


def peak_memory_bytes(device: torch.device | str) -> int:
    """Peak memory since the last :func:`reset_peak_memory`.

    CUDA: ``torch.cuda.max_memory_allocated`` (tensor allocations on that device). CPU: the
    process's peak resident set size, ``ru_maxrss`` (KiB on Linux, bytes on macOS); it cannot be
    reset and includes everything the process ever held.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def reset_peak_memory(device: torch.device | str) -> None:
    """Start a new peak-memory window (CUDA only; the CPU peak RSS cannot be reset)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
