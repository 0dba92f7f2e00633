"""logger=: TensorBoard events read back with TensorBoard's own reader (tags, steps, values, images), logger=none
writes no event file and leaves the run directory where it was, a resumed run purges what it redoes, and a
named logger without its client is one line."""
import json
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers import TINY_SEARCH, compose_cfg
from nascli.commands.evaluate import evaluate
from nascli.commands.search import search
from nascli.errors import NasError
from nascli.logger import registry
from nascli.logger.registry import make_logger, resolve_logger
from nascli.logger.session import check_logger
from nascli.logger.tags import scalars, skip_share, tag_of
from nascli.logger.target import AlphaLabels, LogTarget
from nascli.logger.tensorboard import TensorBoardLogger, event_files

TINY = [*TINY_SEARCH, "dataset.num_train=64", "dataset.num_test=16", "search.epochs=2", "search.max_steps_per_epoch=2"]
ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _events(run: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def darts_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tb")
    result = search(compose_cfg("search", [*TINY, "diagnostics.hessian_every=1", f"out_root={out}"]))
    return Path(result["run_dir"])


def test_search_events_hold_every_figure_per_epoch(darts_run):
    (events,) = event_files(darts_run)  # one event file for the one process that ran the search
    acc = _events(darts_run)
    tags = set(acc.Tags()["scalars"])
    expected = {"loss/train", "loss/val", "acc/train", "acc/val", "schedule/lr", "alpha/entropy/cell",
                "alpha/skip_share", "alpha/hessian_eigenvalue", "arch/skip_count", "arch/param_free_share/cell",
                "speed/images_per_s", "speed/epoch_time_s"}
    assert expected <= tags, expected - tags
    metrics = _metrics(darts_run)
    for tag, key in (("loss/train", "train_loss"), ("acc/val", "val_acc"), ("alpha/hessian_eigenvalue",
                                                                             "hessian_eigenvalue")):
        points = acc.Scalars(tag)
        assert [p.step for p in points] == [0, 1]
        assert [p.value for p in points] == pytest.approx([m[key] for m in metrics], rel=1e-6)
    entropy = [p.value for p in acc.Scalars("alpha/entropy/cell")]
    assert entropy == pytest.approx([m["alpha_entropy"]["cell"] for m in metrics], rel=1e-6)
    # skip share: the mean probability of skip_connect (column 1 of NB201's ops) over the 6 edges
    share = [p.value for p in acc.Scalars("alpha/skip_share")]
    assert share == pytest.approx([sum(r[1] for r in m["alphas"]["cell"]) / 6 for m in metrics], rel=1e-6)
    assert acc.Tags()["images"] == ["alphas/cell"]
    images = acc.Images("alphas/cell")
    assert [im.step for im in images] == [0, 1] and images[0].width > 100 and images[0].height > 100
    assert "arch/text_summary" in acc.Tags()["tensors"]


def test_gumbel_temperature_is_logged(tmp_path):
    result = search(compose_cfg("search", [*TINY, "method=gdas", f"out_root={tmp_path}"]))
    acc = _events(Path(result["run_dir"]))
    taus = [m["tau"] for m in _metrics(Path(result["run_dir"]))]
    assert [p.value for p in acc.Scalars("schedule/tau")] == pytest.approx(taus, rel=1e-6)


def test_logger_none_writes_no_events_and_keeps_the_run_dir(darts_run, tmp_path):
    result = search(compose_cfg("search", [*TINY, "diagnostics.hessian_every=1", "logger=none",
                                           f"out_root={tmp_path}"]))
    run = Path(result["run_dir"])
    assert event_files(run) == [] and (run / "result.json").is_file()
    # the logger is not part of the run hash: the same relative run directory as with TensorBoard
    assert run.relative_to(tmp_path).parts == darts_run.relative_to(darts_run.parents[4]).parts


def test_evaluate_events(tmp_path):
    result = evaluate(compose_cfg("evaluate", [f"arch='{ARCH}'", "space.network.C=4", "space.network.N=1",
                                               "dataset.num_train=32", "dataset.num_test=16", "dataset.image_size=8",
                                               "protocol.epochs=2", "protocol.batch_size=16", "num_threads=1",
                                               "logger=tensorboard", f"out_root={tmp_path}"]))
    run = Path(result["run_dir"])
    acc = _events(run)
    assert {"loss/train", "acc/train", "acc/test", "schedule/lr", "speed/images_per_s"} <= set(acc.Tags()["scalars"])
    assert [p.step for p in acc.Scalars("acc/test")] == [0, 1]
    assert acc.Scalars("acc/test")[-1].value == pytest.approx(result["test_acc"], rel=1e-6)
    assert acc.Tags()["images"] == []  # no alphas in a discrete network


def test_resume_purges_the_epochs_it_redoes(tmp_path):
    """A process that resumes at epoch 1 opens a new event file with purge_step=1: the reader keeps epoch 0 of the
    interrupted process and only the resumed process's values from epoch 1 on."""
    first = TensorBoardLogger(LogTarget(tmp_path, 0))
    for epoch in range(3):  # the first process got to log epochs 0..2, then died before its checkpoint
        first.on_epoch_end(epoch, {"epoch": epoch, "train_loss": 10.0 + epoch})
    first.close()
    second = TensorBoardLogger(LogTarget(tmp_path, 1))
    for epoch in (1, 2, 3):
        second.on_epoch_end(epoch, {"epoch": epoch, "train_loss": 20.0 + epoch})
    second.close()
    assert len(event_files(tmp_path)) == 2
    points = _events(tmp_path).Scalars("loss/train")
    assert [(p.step, p.value) for p in points] == [(0, 10.0), (1, 21.0), (2, 22.0), (3, 23.0)]


def test_a_logger_that_logs_nothing_opens_no_file(tmp_path):
    TensorBoardLogger(LogTarget(tmp_path, 4)).close()  # e.g. a finished search resumed at its end
    assert event_files(tmp_path) == []


def test_tag_rules():
    assert (tag_of("val_acc"), tag_of("train_loss"), tag_of("test_psnr")) == ("acc/val", "loss/train", "psnr/test")
    assert (tag_of("alpha_entropy"), tag_of("tau"), tag_of("epoch")) == ("alpha/entropy", "schedule/tau", None)
    assert (tag_of("eval_return_mean"), tag_of("train_return_mean"), tag_of("ppo_approx_kl"), tag_of("ppo_"),
            tag_of("timesteps")) == ("return/eval", "return/train", "ppo/approx_kl", "schedule/ppo_", None)
    got = scalars({"epoch": 3, "lr": 0.1, "arch": "x", "ok": True, "alpha_entropy": {"normal": 1.5, "reduce": 2.0},
                   "benchmark": {"valid": 90.0, "test": 91.0}, "val_loss": float("nan")})
    assert got == {"schedule/lr": 0.1, "alpha/entropy/normal": 1.5, "alpha/entropy/reduce": 2.0,
                   "benchmark/valid": 90.0, "benchmark/test": 91.0}
    alphas = {"normal": [[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]], "reduce": [[0.0, 1.0, 0.0]]}
    assert skip_share(alphas, ("none", "skip_connect", "conv"), "skip_connect") == pytest.approx((0.6 + 0.2 + 1.0) / 3)
    assert skip_share(alphas, ("noise", "sep", "conv"), "skip_connect") is None
    # a level of another width (sisr_trilevel's kernel widths, network candidates) is not an op choice
    levels = {**alphas, "kernel": [[0.5, 0.5]], "network": [[0.1, 0.2, 0.3, 0.4]]}
    assert skip_share(levels, ("none", "skip_connect", "conv"), "skip_connect") == pytest.approx((0.6 + 0.2 + 1.0) / 3)


def test_missing_client_is_one_line(monkeypatch, tmp_path):
    assert resolve_logger("auto") == "tensorboard" and resolve_logger("none") == "none"
    monkeypatch.setitem(registry.AVAILABLE, "tensorboard", lambda: False)
    assert resolve_logger("auto") == "none"  # the default: no logging, no error
    assert make_logger("auto", LogTarget(tmp_path)) is None
    with pytest.raises(NasError, match=r"logger=tensorboard needs its client package: "
                                       r"pip install 'nascli\[tensorboard\]'"):
        check_logger(compose_cfg("search", ["logger=tensorboard"]))
    with pytest.raises(NasError, match="unknown logger 'wandb'"):
        resolve_logger("wandb")


def test_alpha_labels_of_a_space():
    from nascli.spaces import get_space

    labels = AlphaLabels.of_space(get_space("nb201"))
    assert labels.ops[1] == labels.skip_op == "skip_connect" and labels.edges["cell"][0] == "0: 0->1"
    assert len(labels.edges["cell"]) == 6


def test_tensorboard_import_is_lazy():
    import subprocess

    code = "import nascli.logger.registry, sys; print('torch.utils.tensorboard' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


BENCH = ["space.supernet.C=4", "space.supernet.N=1", "space.network.C=4", "space.network.N=1",
         "dataset.num_train=64", "dataset.num_test=16", "dataset.image_size=8", "num_threads=1",
         "search_overrides=['search.batch_size=16','search.epochs=1']", "protocol.epochs=1",
         "protocol.max_steps_per_epoch=2", "protocol.batch_size=16", "progress=false", "plots=false"]


def test_benchmark_jobs_get_the_study_logger():
    from nascli.bench.args import evaluate_args, logger_args
    from nascli.bench.plan import make_plan

    cfg = compose_cfg("benchmark", [*BENCH, "logger=tensorboard", "logger.heatmaps=false"])
    assert logger_args(cfg) == ["logger=tensorboard", "logger.heatmaps=false"]
    plan = make_plan(cfg)
    assert plan.search_argv[("darts", 0)][-2:] == ["logger=tensorboard", "logger.heatmaps=false"]
    assert evaluate_args(cfg, plan, None, 0)[-2:] == ["logger=tensorboard", "logger.heatmaps=false"]
    assert logger_args(compose_cfg("benchmark", [])) == ["logger=auto"]


@pytest.mark.slow  # a study of 1 search + 3 trained evaluations as subprocesses: ~50 s on a shared 2-core CPU
def test_benchmark_writes_one_event_file_per_job(tmp_path):
    from helpers import nas, result_line

    summary = result_line(nas("benchmark", *BENCH, "baseline.samples=2", f"out_root={tmp_path}", timeout=600))
    assert summary["status"] == "ok"
    runs = [p.parent for p in tmp_path.rglob("result.json") if p.parent.name.startswith("seed=")]
    searches = [r for r in runs if "search" in r.relative_to(tmp_path).parts[:1]]
    evaluations = [r for r in runs if "evaluate" in r.relative_to(tmp_path).parts[:1]]
    assert len(searches) == 1 and len(evaluations) == 3  # the search's arch and 2 baseline archs, trained
    for run in runs:
        assert len(event_files(run)) == 1, run
    assert "acc/test" in _events(evaluations[0]).Tags()["scalars"]
    assert "alpha/skip_share" in _events(searches[0]).Tags()["scalars"]


def test_rollback_purges_the_epochs_that_run_again(tmp_path):
    """DARTS-ADA rolls back to the end of epoch 0: epochs 1 and 2 are logged again, and only the new values stay."""
    logger = TensorBoardLogger(LogTarget(tmp_path, 0))
    for epoch in range(3):
        logger.on_epoch_end(epoch, {"train_loss": 1.0 + epoch})
    logger.on_rollback(1)
    for epoch in (1, 2):
        logger.on_epoch_end(epoch, {"train_loss": 5.0 + epoch})
    logger.close()
    points = _events(tmp_path).Scalars("loss/train")
    assert [(p.step, p.value) for p in points] == [(0, 1.0), (1, 6.0), (2, 7.0)]
