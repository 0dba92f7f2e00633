"""The trained network of ``nas evaluate`` as files: ``model.pt`` always, ``model.onnx`` / ``model.ts`` on request.

* ``model.pt``: the state dict only (tensors), readable with ``torch.load(path, weights_only=True)``; the
  network is rebuilt from the run's ``config.yaml`` + ``arch.json`` by the same function evaluate uses
  (:func:`load_model`), so the file never carries code.
* ``export=torchscript``: ``torch.jit.trace`` of the eval-mode network on CPU at the task's input shape.
* ``export=onnx``: the TorchScript-based ONNX exporter (``torch.onnx.export(..., dynamo=False)``, opset
  :data:`ONNX_OPSET`), batch axis dynamic; needs the ``onnx`` package (``pip install 'nascli[export]'``).

Every file is written to a temp file and renamed (:func:`nascli.rundir.atomic_write_bytes`).
"""
from __future__ import annotations

import copy
import importlib.util
import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nascli.errors import NasError
from nascli.rundir import atomic_write_bytes, atomic_write_json

MODEL_FILE = "model.pt"
ONNX_OPSET = 17  # supported by onnxruntime>=1.16 (the nb301 extra) and by torch's TorchScript-based exporter


def _torchscript_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape arithmetic
        torch.jit.save(torch.jit.trace(model, (example,), check_trace=False), buf)
    return buf.getvalue()


def _onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy-exporter deprecation notice
        torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return buf.getvalue()


# format name -> (file name, writer, the Python module it needs or None)
EXPORTERS: dict[str, tuple[str, Callable[[nn.Module, torch.Tensor], bytes], str | None]] = {
    "torchscript": ("model.ts", _torchscript_bytes, None),
    "onnx": ("model.onnx", _onnx_bytes, "onnx"),
}


def check_export(value: Any) -> str | None:
    """The export format of ``export=`` (None for ``null``); one line naming the choices for a bad value, or
    the extra to install when the format's package is missing (checked before training starts)."""
    if value is None:
        return None
    name = str(value)
    if name not in EXPORTERS:
        raise NasError(f"unknown export {name!r}; valid choices: {', '.join(EXPORTERS)}, null")
    needs = EXPORTERS[name][2]
    if needs and importlib.util.find_spec(needs) is None:
        raise NasError(f"export={name} needs the {needs} package: pip install 'nascli[export]'")
    return name


def _cpu_copy(model: nn.Module) -> nn.Module:
    """An eval-mode float32 CPU copy in the default memory format (training may leave channels_last)."""
    net = copy.deepcopy(model).to("cpu", torch.float32).eval()
    for p in net.parameters():
        p.data = p.data.contiguous()
        p.requires_grad_(False)
    return net


def save_model(run_path: Path, model: nn.Module, example: Any, export: str | None) -> dict[str, str]:
    """Write ``model.pt`` (and the ``export`` file) into ``run_path``; return ``{"model": path, "export": path}``
    entries for result.json. ``example``: one input of the task's shape (the trace input)."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(run_path / MODEL_FILE, buf.getvalue())
    out = {"model": str(run_path / MODEL_FILE)}
    if export is not None:
        out["export"] = write_export(run_path, _cpu_copy(model), example, export, " (model.pt was saved)")
    return out


def write_export(run_path: Path, model: nn.Module, example: Any, export: str, note: str = "") -> str:
    """Trace the eval-mode CPU ``model`` at ``example`` into the ``export`` format's file in ``run_path`` (atomic);
    its path. A task whose network input is not one tensor (speech: features and lengths) is one line."""
    if not isinstance(example, torch.Tensor):
        raise NasError(f"export={export} needs a network with one tensor input; this task feeds "
                       f"{type(example).__name__}{note}")
    file_name, writer, _ = EXPORTERS[export]
    atomic_write_bytes(run_path / file_name, writer(model, example.detach().to("cpu", torch.float32)))
    return str(run_path / file_name)


def load_model(run_dir: str | Path) -> nn.Module:
    """The trained network of an evaluate run, rebuilt from ``config.yaml`` + ``arch.json`` (through
    :func:`nascli.commands.evaluate.build_network`) with ``model.pt`` loaded (``weights_only=True``), eval mode, CPU."""
    from omegaconf import OmegaConf

    from nascli.commands.evaluate import build_network
    from nascli.spaces.lookup import load_arch
    from nascli.tasks import task_of

    run = Path(run_dir)
    missing = [n for n in ("config.yaml", "arch.json", MODEL_FILE) if not (run / n).is_file()]
    if missing:
        raise NasError(f"{run} is not a finished nas evaluate run: {', '.join(missing)} missing")
    cfg = OmegaConf.load(run / "config.yaml")
    space, arch = load_arch(str(run / "arch.json"), str(cfg.space.name))
    task = task_of(cfg)
    model = build_network(cfg, space, arch, task.dataset_info(cfg.dataset), task)
    model.load_state_dict(torch.load(run / MODEL_FILE, map_location="cpu", weights_only=True))
    return model.eval()


def export_finished(run_path: Path, result: dict[str, Any], export: str | None, example: Any) -> dict[str, Any]:
    """``export=`` on an evaluate run that finished without that file: the network rebuilt from ``model.pt``
    (:func:`load_model`, nothing is retrained) is exported, and result.json records it under ``export`` (written
    atomically; every other figure of the finished run stays as it was). Returns the result to print."""
    if export is None or result.get("status") != "ok" or (run_path / EXPORTERS[export][0]).is_file():
        return result
    updated = {**result, "export": write_export(run_path, load_model(run_path), example, export)}
    atomic_write_json(run_path / "result.json", updated)
    return updated
