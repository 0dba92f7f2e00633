"""Seeding and capture/restore of every global random number generator a run touches.

The one place that knows the generators: Python's ``random``, NumPy's global generator, torch's CPU
generator and (when present) every CUDA device's generator. A captured state holds only tensors,
ints, floats, strings and None, so a checkpoint holding it loads with
``torch.load(..., weights_only=True)``; :func:`restore_rng_state` puts every generator back exactly.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from nascli.errors import CheckpointError


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator (seed mod 2**32) and torch (CPU and all CUDA devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)  # also seeds every CUDA device


def _python_state() -> dict[str, Any]:
    version, internal, gauss_next = random.getstate()
    return {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": None if gauss_next is None else float(gauss_next)}


def _numpy_state() -> dict[str, Any]:
    key, keys, pos, has_gauss, cached = np.random.get_state()
    return {"key": str(key), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64).copy()), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def capture_rng_state() -> dict[str, Any]:
    """The current state of the Python, NumPy, torch CPU and (when available) torch CUDA generators."""
    state: dict[str, Any] = {"python": _python_state(), "numpy": _numpy_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`; CUDA states are restored for the devices present.

    A state in any other shape raises :class:`CheckpointError` before any generator is changed.
    """
    try:
        py, npy = state["python"], state["numpy"]
        python = (int(py["version"]), tuple(int(v) for v in py["internal"].tolist()), py["gauss_next"])
        numpy = (str(npy["key"]), npy["keys"].cpu().numpy().astype(np.uint32), int(npy["pos"]),
                 int(npy["has_gauss"]), float(npy["cached_gaussian"]))
        cpu = state["torch"].cpu()
    except (KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"random generator state is not in this version's format (missing or bad {exc})") \
            from None
    random.setstate(python)
    np.random.set_state(numpy)
    torch.set_rng_state(cpu)
    if "cuda" in state and torch.cuda.is_available():
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)
