"""Device selection and the CUDA fast path (bf16 autocast, channels_last); cudnn.benchmark stays off."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from nascli.errors import NasError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` = CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.split(":")[0] not in DEVICE_CHOICES:
        raise NasError(f"unknown device {name!r}; valid choices: {', '.join(DEVICE_CHOICES)} (or cuda:N)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NasError(f"device={name} asked for, but no CUDA device is available; valid here: auto, cpu")
    return torch.device(name)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op on CPU (fp32)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(model: nn.Module, device: torch.device) -> nn.Module:
    """Move a model; channels_last on CUDA."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def prepare_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return x.contiguous(memory_format=torch.channels_last)
    return x


@contextlib.contextmanager
def frozen(params: list[nn.Parameter]):
    """Temporarily stop gradients into ``params`` (so autograd skips their weight-gradient kernels)."""
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
