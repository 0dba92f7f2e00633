"""`nas show run=<dir>`: finished, running, stopped and failed runs; text and one-line JSON; not-a-run folders."""
import json
import shutil
from pathlib import Path

import pytest

from helpers import TINY_SEARCH, compose_cfg, nas
from nascli.commands.search import search
from nascli.commands.show import as_text, headline, sparkline, summarize, summarize_sweep, sweep_text
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


def test_curves_of_a_finished_run(finished):
    run, _ = finished
    s = summarize(run)
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert s["curves"] == {"train_loss": [m["train_loss"] for m in metrics], "val_acc": [m["val_acc"] for m in metrics]}
    curve = [line for line in as_text(s).splitlines() if line.startswith("curve     train_loss")]
    assert len(curve) == 1 and len(curve[0].split()[2]) == 2  # one block character per epoch


def test_sparkline_and_headline():
    assert sparkline([1.0, 2.0, 3.0]) == "▁▅█" and sparkline([]) == ""
    table = {"benchmark": {"valid": 80.0, "test": 90.5}, "figures": {"val_acc": 3.0}}
    assert headline(table) == ("benchmark_test", 90.5)
    assert headline({"benchmark": None, "figures": {"train_loss": 2.0, "val_loss": 1.0, "val_acc": 3.0}}) == \
        ("val_acc", 3.0)
    assert headline({"figures": {"train_loss": 2.0}}) is None


def _sweep(finished, tmp_path: Path) -> Path:
    """A folder with a finished, a running (lock held, no result) and a diverged run below it."""
    root = tmp_path / "sweep"
    for name in ("done", "going", "bad"):
        shutil.copytree(finished[0], root / name / "seed=0")
    (root / "going" / "seed=0" / "result.json").unlink()
    (root / "bad" / "seed=0" / "result.json").write_text(json.dumps(
        {"status": "diverged", "command": "search", "seed": 0, "error": "loss is nan at epoch 1, step 0"}))
    return root


def test_sweep_folder_one_row_per_run(finished, tmp_path):
    root = _sweep(finished, tmp_path)
    with RunLock(root / "going" / "seed=0"):
        s = summarize_sweep(root)
    rows = {Path(r["run_dir"]).parent.name: r for r in s["runs"]}
    assert {k: r["status"] for k, r in rows.items()} == {"bad": "diverged", "done": "ok", "going": "running"}
    assert s["counts"] == {"diverged": 1, "ok": 1, "running": 1}
    last = json.loads((finished[0] / "metrics.jsonl").read_text().splitlines()[-1])
    assert (rows["done"]["method"], rows["done"]["seed"], rows["done"]["metric"]) == ("darts", 0, "val_acc")
    assert rows["done"]["value"] == last["val_acc"] and rows["bad"]["error"] == "loss is nan at epoch 1, step 0"
    text = sweep_text(s).splitlines()
    assert len(text) == 2 + 3 and text[1].split() == ["status", "command", "method", "seed", "epochs", "metric",
                                                      "value", "run"]
    assert text[3].split() == ["ok", "search", "darts", "0", "2/2", "val_acc", f"{last['val_acc']:.4g}",
                               "done/seed=0"]


def test_sweep_manifest_lists_failed_jobs_without_a_folder(finished, tmp_path):
    sweep = tmp_path / "multirun"
    sweep.mkdir()
    lines = [{"command": "search", "status": "ok", "run_dir": str(finished[0]), "method": "darts", "seed": 0},
             {"command": "search", "status": "failed", "run_dir": str(tmp_path / "never"), "method": "gdas",
              "seed": 1, "error": "ValueError: boom"}]
    (sweep / "runs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    proc = nas("show", f"run={sweep}", "format=json")
    (line,) = proc.stdout.splitlines()
    rows = json.loads(line)["runs"]
    assert [(r["status"], r["method"], r["seed"]) for r in rows] == [("ok", "darts", 0), ("failed", "gdas", 1)]
    assert rows[1]["error"] == "ValueError: boom" and rows[0]["epochs_done"] == 2


def test_empty_folder_is_one_line(tmp_path):
    with pytest.raises(NasError, match=r"is not a nas run folder and holds none"):
        summarize_sweep(tmp_path)
