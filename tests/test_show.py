"""`nas show run=<dir>`: finished, running, stopped and failed runs; text and one-line JSON; not-a-run folders."""
import json
import shutil
from pathlib import Path

import pytest

from helpers import TINY_SEARCH, compose_cfg, nas
from nascli.commands.search import search
from nascli.commands.show import as_text, summarize
from nascli.errors import NasError
from nascli.runlock import RunLock


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict]:
    """A real two-epoch tiny search (in-process, through the command's own function)."""
    out = tmp_path_factory.mktemp("show")
    cfg = compose_cfg("search", [*TINY_SEARCH, "dataset.num_train=64", "dataset.num_test=16", "search.epochs=2",
                                 f"out_root={out}"])
    result = search(cfg)
    return Path(result["run_dir"]), result


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "seed=0"
    shutil.copytree(run, dst)
    return dst


def test_finished_search(finished):
    run, result = finished
    s = summarize(run)
    assert (s["command"], s["status"], s["space"], s["dataset"], s["method"], s["task"], s["seed"]) == \
        ("search", "ok", "nb201", "synthetic", "darts", "classification", 0)
    assert (s["epochs_done"], s["epochs_total"]) == (2, 2)
    assert s["arch"] == result["arch"] and s["error"] is None and s["checkpoint"] is True
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert s["figures"]["search_time_s"] == result["search_time_s"]  # result.json's figure
    assert s["figures"]["val_acc"] == last["val_acc"]  # the last epoch's, which result.json lacks
    assert "seed" not in s["figures"] and "epoch" not in s["figures"]
    text = as_text(s).splitlines()
    assert f"arch      {result['arch']}" in text  # the arch string on one line of its own
    assert any(line.startswith("command   search   status ok   seed 0   epochs 2 of 2") for line in text)
    assert len(text) <= 20


def test_running_and_stopped_run(finished, tmp_path):
    run = _copy(finished[0], tmp_path)
    (run / "result.json").unlink()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text(lines[0] + "\n")
    stopped = summarize(run)
    assert (stopped["status"], stopped["epochs_done"], stopped["epochs_total"]) == ("stopped", 1, 2)
    assert stopped["figures"]["val_acc"] == json.loads(lines[0])["val_acc"]
    assert "the same command resumes this run" in as_text(stopped)
    with RunLock(run):  # another holder of the run's lock: a search in progress
        assert summarize(run)["status"] == "running"
    assert summarize(run)["status"] == "stopped"


def test_failed_run_shows_its_error(finished, tmp_path):
    run = tmp_path / "seed=0"
    run.mkdir()
    shutil.copy(finished[0] / "config.yaml", run / "config.yaml")
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "train_loss": 2.3}) + "\n")
    (run / "result.json").write_text(json.dumps({"status": "diverged", "command": "search", "seed": 0,
                                                 "error": "loss is nan at epoch 1, step 3",
                                                 "diverged_epoch": 1, "diverged_step": 3}))
    s = summarize(run)
    assert (s["status"], s["epochs_done"], s["arch"], s["pictures"]) == ("diverged", 1, None, [])
    assert s["figures"] == {"train_loss": 2.3}
    assert "error     loss is nan at epoch 1, step 3" in as_text(s).splitlines()


def test_not_a_run_is_one_line(tmp_path):
    with pytest.raises(NasError, match=r"is not a nas run folder \(no config.yaml\)"):
        summarize(tmp_path)
    with pytest.raises(NasError, match="does not exist"):
        summarize(tmp_path / "nope")


def test_cli_json_line_and_bad_folder(finished, tmp_path):
    run, result = finished
    proc = nas("show", f"run={run}", "format=json")
    (line,) = proc.stdout.splitlines()
    s = json.loads(line)
    assert s["arch"] == result["arch"] and s["status"] == "ok" and s["run_dir"] == str(run)
    bad = nas("show", f"run={tmp_path}", check=False)
    assert bad.returncode != 0 and bad.stdout == "" and bad.stderr.strip().count("\n") == 0
    assert "not a nas run folder" in bad.stderr
