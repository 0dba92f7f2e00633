"""nascli.api: the same run, artifacts and result.json as the CLI; the CLI's one-line errors as exceptions."""
import json
from pathlib import Path

import pytest

from helpers import TINY_SEARCH, nas, result_line
from nascli import api
from nascli.errors import NasError

TINY = [*TINY_SEARCH, "dataset.num_train=64", "dataset.num_test=16", "search.epochs=2", "search.max_steps_per_epoch=2"]
TIMING = {"search_time_s", "images_per_s", "peak_memory_mb"}  # wall-clock figures differ between any two runs
PATHS = {"run_dir", "arch_path"}


def _comparable(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in TIMING | PATHS}


@pytest.mark.slow  # a real CLI search in a subprocess plus the same search in-process: ~7 s on a shared CPU
def test_api_search_equals_cli_search(tmp_path):
    cli = result_line(nas("search", *TINY, "method=darts", f"out_root={tmp_path / 'cli'}"))
    got = api.search(TINY, method="darts", out_root=str(tmp_path / "api"))
    assert got.status == "ok" and got.arch == cli["arch"]
    assert got.run_dir.relative_to(tmp_path / "api") == Path(cli["run_dir"]).relative_to(tmp_path / "cli")
    on_disk = json.loads((got.run_dir / "result.json").read_text())
    assert _comparable(on_disk) == _comparable(cli) == _comparable(got.result)
    cli_metrics = [json.loads(x) for x in (Path(cli["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    api_metrics = [json.loads(x) for x in (got.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["train_loss"] for m in api_metrics] == [m["train_loss"] for m in cli_metrics]  # bit-equal losses
    assert got.summary()["epochs_done"] == 2
    again = api.search(TINY, method="darts", out_root=str(tmp_path / "api"))  # a finished run is not redone
    assert again.result == on_disk


def test_api_evaluate_equals_cli_evaluate_dry_run(tmp_path):
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    cli = result_line(nas("evaluate", f"arch={arch}", "dry_run=true", "space.network.C=4", f"out_root={tmp_path}"))
    (tmp_path / "evaluate").rename(tmp_path / "cli")
    got = api.evaluate(arch, ["space.network.C=4"], dry_run=True, out_root=str(tmp_path))
    assert got.status == "dry_run" and got["space"] == "nb201" and got.arch == arch
    assert got.result == cli == json.loads((got.run_dir / "result.json").read_text())  # the same run dir too
    assert got["params"] == cli["params"] > 0


def test_override_text():
    assert api.override_text("dry_run", True) == "dry_run=true"
    assert api.override_text("num_threads", None) == "num_threads=null"
    assert api.override_text("seeds", [0, 1]) == "seeds=[0,1]"


def test_bad_inputs_raise_the_cli_line(tmp_path):
    with pytest.raises(NasError, match=r"unknown method 'dartz'; valid choices: .*darts"):
        api.search(method="dartz", out_root=str(tmp_path))
    with pytest.raises(NasError, match=r"unknown key 'search.epochz' for nas search; did you mean search.epochs\?"):
        api.search(["search.epochz=3"], out_root=str(tmp_path))
    with pytest.raises(NasError, match="Python API runs one job per call"):
        api.search(["-m", "seed=0,1"])
    with pytest.raises(NasError, match="unknown command 'serach'"):
        api.run("serach")
    assert not any(tmp_path.iterdir())  # nothing written


def test_api_benchmark_returns_the_study_folder(tmp_path):
    got = api.benchmark(["space.supernet.C=4", "space.supernet.N=1", "space.network.C=4", "space.network.N=1",
                         "dataset.num_train=64", "dataset.num_test=16", "dataset.image_size=8", "baseline.samples=1",
                         "search_overrides=['search.batch_size=16','search.epochs=1','search.max_steps_per_epoch=2']",
                         "protocol.epochs=1", "protocol.max_steps_per_epoch=2", "protocol.batch_size=16"],
                        methods=["darts"], seeds=[0], num_threads=1, progress=False, plots=False,
                        out_root=str(tmp_path))
    assert got.status == "ok" and got["runs"] == got["runs_ok"] == 1
    assert got.run_dir == Path(got["benchmark_dir"]) and got.run_dir.parent.parent == tmp_path / "benchmark"
    report = json.loads((got.run_dir / "report.json").read_text())
    assert report["counts"]["runs_ok"] == 1 and got["report"] == str(got.run_dir / "report.json")
