"""The `nas` command line: dispatch, Hydra behaviours, one-line errors, arch quoting, dry runs."""
import json

import pytest

from helpers import TINY_SEARCH, compose_cfg, nas, result_line

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_top_level_help_lists_commands():
    out = nas("--help").stdout
    for cmd in ("search", "derive", "evaluate", "benchmark"):
        assert f"  {cmd}" in out


def test_unknown_command_is_one_line():
    proc = nas("serch", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown command 'serch'; valid commands: search, derive, evaluate, benchmark, show"


def test_hydra_help_and_cfg_job():
    assert "method" in nas("search", "--help").stdout
    cfg = nas("search", "method=darts", "optimizer=bilevel_2nd", "--cfg", "job").stdout
    assert "name: bilevel_2nd" in cfg and "name: darts" in cfg


@pytest.mark.parametrize("arg, msg", [
    ("optimizer=adam", "error: unknown optimizer 'adam'; valid choices: "),
    ("dataset=mnist", "error: unknown dataset 'mnist'; valid choices: "),
    ("space=nb301", "error: unknown space 'nb301'; valid choices: "),
])
def test_unknown_group_choice_is_one_line(arg, msg, tmp_path):
    proc = nas("search", arg, f"out_root={tmp_path}", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(msg)
    assert not (tmp_path / "search").exists()


def test_evaluate_dry_run_takes_unquoted_nb201_string(tmp_path):
    proc = nas("evaluate", f"arch={BEST}", "dry_run=true", "dataset=cifar10", f"out_root={tmp_path}")
    res = result_line(proc)
    assert res["status"] == "dry_run"
    assert res["params"] == 1288506  # NB201 params_M_cifar10 of this cell: 1.288506 M
    assert res["flops"] == 184730240  # multiply-adds of the convolutions and the classifier: 184.73 M
    saved = json.loads(next(tmp_path.rglob("result.json")).read_text())
    assert saved["params"] == 1288506


def test_bad_arch_string_is_one_line(tmp_path):
    proc = nas("evaluate", "arch=|nor_conv_3x3~0|+|bogus~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|",
               "dry_run=true", f"out_root={tmp_path}", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "bogus" in lines[0]


def test_missing_data_is_one_line(tmp_path):
    proc = nas("search", "dataset=cifar10", f"dataset.root={tmp_path}", "dataset.download=false",
               f"out_root={tmp_path}", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cifar" in lines[0].lower() and str(tmp_path) in lines[0]


def test_multirun_seed_sweep(tmp_path):
    proc = nas("search", "-m", "seed=0,1", *TINY_SEARCH, "search.epochs=1", f"out_root={tmp_path}")
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert sorted(r["seed"] for r in results) == [0, 1]
    dirs = {r["run_dir"] for r in results}
    assert len(dirs) == 2 and all(d.endswith((f"seed=0", f"seed=1")) for d in dirs)


def test_method_bundle_axes_stay_overridable():
    cfg = compose_cfg("search", ["method=darts", "optimizer=bilevel_2nd"])
    assert cfg.optimizer.name == "bilevel_2nd" and cfg.method.mixer.name == "softmax"
    nb = compose_cfg("search", ["space=nb201"])
    assert nb.optimizer.nesterov is True and nb.optimizer.weight_decay == 5e-4
    assert nb.optimizer.order == "weights_first"
