"""`nas evaluate` keeps the trained network: model.pt (weights_only), export=torchscript|onnx; each reloaded
file reproduces the PyTorch network's outputs on CPU."""
import json
from pathlib import Path

import pytest
import torch

from helpers import compose_cfg, nas, result_line
from nascli.commands.evaluate import build_network
from nascli.errors import NasError
from nascli.overrides import quote_value
from nascli.export import EXPORTERS, check_export, load_model, save_model
from nascli.rundir import RunDir
from nascli.spaces.lookup import load_arch
from nascli.tasks import task_of

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
TINY = ["space.network.C=4", "space.network.N=1", "dataset.image_size=8", "dataset.num_train=64",
        "dataset.num_test=16", "protocol.epochs=1", "protocol.max_steps_per_epoch=1", "protocol.batch_size=16",
        "num_threads=1"]


def _logits(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def _evaluate_run(tmp_path: Path, export: str | None):
    """A run directory as evaluate leaves it (config.yaml, arch.json, model files) for a fresh network, built
    by evaluate's own build_network, plus that network and the task's input shape."""
    cfg = compose_cfg("evaluate", [f"arch={quote_value(ARCH)}", *TINY])
    space, arch = load_arch(ARCH, "nb201")
    task = task_of(cfg)
    info = task.dataset_info(cfg.dataset)
    model = build_network(cfg, space, arch, info, task).eval()
    with torch.no_grad():  # BN statistics that are not the defaults, so a lost buffer shows in the outputs
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    run = RunDir(tmp_path)
    run.write_config(cfg)
    run.write_json("arch.json", arch.to_json())
    shape = task.input_shape(info)
    files = save_model(tmp_path, model, task.flops_input(shape, torch.device("cpu"), torch.float32), export)
    return model, shape, files


def test_model_pt_is_a_weights_only_state_dict_that_rebuilds_the_network(tmp_path):
    model, shape, files = _evaluate_run(tmp_path, None)
    assert files == {"model": str(tmp_path / "model.pt")}
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert state.keys() == model.state_dict().keys()
    assert sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k) == \
        sum(p.numel() for p in model.parameters())
    x = torch.randn(3, *shape[1:])
    rebuilt = load_model(tmp_path)
    with torch.no_grad():
        expected = _logits(model(x))
        assert expected.shape == (3, 10)  # synthetic dataset: 10 classes
        torch.testing.assert_close(_logits(rebuilt(x)), expected, rtol=0, atol=0)


def test_torchscript_export_reproduces_logits(tmp_path):
    model, shape, files = _evaluate_run(tmp_path, "torchscript")
    assert files["export"] == str(tmp_path / "model.ts")
    x = torch.randn(5, *shape[1:])  # another batch size than the trace's
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    with torch.no_grad():
        torch.testing.assert_close(_logits(scripted(x)), _logits(model(x)), rtol=1e-5, atol=1e-5)


def test_onnx_export_reproduces_logits(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model, shape, files = _evaluate_run(tmp_path, "onnx")
    assert files["export"] == str(tmp_path / "model.onnx")
    x = torch.randn(4, *shape[1:])
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(["output"], {"input": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), _logits(model(x)), rtol=1e-4, atol=1e-5)


def test_bad_export_value_names_the_choices():
    assert check_export(None) is None and check_export("torchscript") == "torchscript"
    with pytest.raises(NasError, match=r"unknown export 'tflite'; valid choices: torchscript, onnx, null"):
        check_export("tflite")
    assert list(EXPORTERS) == ["torchscript", "onnx"]


def test_bad_export_on_the_command_line_is_one_line(tmp_path):
    proc = nas("evaluate", f"arch={ARCH}", "dry_run=true", "export=tflite", f"out_root={tmp_path}", check=False)
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "valid choices: torchscript, onnx, null" in proc.stderr
    assert not (tmp_path / "evaluate").exists()  # nothing written


@pytest.mark.slow
def test_evaluate_writes_model_and_torchscript(tmp_path):
    res = result_line(nas("evaluate", f"arch={ARCH}", *TINY, "export=torchscript", f"out_root={tmp_path}"))
    run = Path(res["run_dir"])
    assert res["model"] == str(run / "model.pt") and res["export"] == str(run / "model.ts")
    assert json.loads((run / "result.json").read_text())["export"] == res["export"]
    model = load_model(run)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(_logits(torch.jit.load(res["export"])(x)), _logits(model(x)),
                                   rtol=1e-5, atol=1e-5)


def test_export_on_a_finished_run_uses_its_model_pt_without_retraining(tmp_path):
    """A finished evaluate run asked again with export=: the file appears from model.pt, result.json names it,
    every other figure and model.pt stay as they were, and the export reproduces the trained network."""
    from nascli.commands.evaluate import evaluate

    cfg = compose_cfg("evaluate", [f"arch={quote_value(ARCH)}", *TINY, f"out_root={tmp_path}"])
    first = evaluate(cfg)
    run = Path(first["run_dir"])
    weights = (run / "model.pt").read_bytes()
    assert "export" not in first and not (run / "model.ts").exists()
    again = evaluate(compose_cfg("evaluate", [f"arch={quote_value(ARCH)}", *TINY, f"out_root={tmp_path}",
                                              "export=torchscript"]))
    assert Path(again["run_dir"]) == run and again["export"] == str(run / "model.ts")
    assert {k: v for k, v in again.items() if k != "export"} == first
    assert json.loads((run / "result.json").read_text()) == again and (run / "model.pt").read_bytes() == weights
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(_logits(torch.jit.load(again["export"])(x)), _logits(load_model(run)(x)),
                                   rtol=1e-5, atol=1e-5)
    assert evaluate(compose_cfg("evaluate", [f"arch={quote_value(ARCH)}", *TINY, f"out_root={tmp_path}",
                                             "export=torchscript"])) == again   # nothing more to do
