"""The task axis (issue 17): classification results and run directories unchanged, the task's loss and
score reach the optimizer, probes and training loop, refusals of space/dataset/selection x task, the SR
criterion and protocol pieces by hand."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import compose_cfg
from nascli.errors import IncompatibleError, NasError
from nascli.rundir import config_hash
from nascli.search.composition import check_search_config
from nascli.search.optimizers.base import StepStats
from nascli.tasks import TASKS, task_names, task_of
from nascli.tasks.classification import CROSS_ENTROPY
from nascli.tasks.fit import check_fit, spaces_for
from nascli.tasks.super_resolution import L1, SuperResolutionTask, batch_psnr_sum
from nascli.train import Protocol, lr_at_epoch
from nascli.train.loop import _make_optimizer


def test_registry_and_default():
    assert {"classification", "super_resolution"} <= set(task_names())
    assert task_of(compose_cfg("search", [])).name == "classification"
    assert task_of(compose_cfg("search", ["task=super_resolution"])).name == "super_resolution"
    assert task_of({}).name == "classification"  # a config.yaml written before the task axis


@pytest.mark.parametrize("command, overrides, expected", [
    # measured on ec362d4 (before the task axis): a classification run keeps its directory
    ("search", [], "73f89f5e11"),
    ("search", ["method=gdas", "space=darts"], "a2e4430d70"),
    ("evaluate", ["protocol=nb201_200e"], "cee345ca49"),
    ("benchmark", [], "4dcad6406c"),
])
def test_classification_run_hash_is_what_it_was(command, overrides, expected):
    assert config_hash(compose_cfg(command, overrides)) == expected


def test_any_other_task_or_task_option_is_hashed():
    sr = compose_cfg("search", ["task=super_resolution"])
    assert config_hash(sr) != config_hash(compose_cfg("search", ["task=super_resolution", "task.scale=3"]))
    assert config_hash(compose_cfg("search", ["+task.foo=1"])) != "73f89f5e11"


def test_sr_task_picks_its_axes_and_the_command_line_wins():
    cfg = compose_cfg("search", ["task=super_resolution"])
    assert (cfg.dataset.name, cfg.space.name, cfg.method.name, cfg.protocol.name) == \
        ("sr_photos", "sisr_trilevel", "trilevel_sr", "sr_quick")
    assert (cfg.task.scale, cfg.task.patch_size) == (2, 48)
    cfg = compose_cfg("evaluate", ["task=super_resolution", "dataset=div2k", "protocol=sr_edsr"])
    assert (cfg.dataset.name, cfg.protocol.name) == ("div2k", "sr_edsr")


@pytest.mark.parametrize("overrides, message", [
    (["task=super_resolution", "space=nb201", "method=darts"],
     "cannot compose this search: space=nb201 builds networks for task=classification, not task=super_resolution; "
     "spaces for task=super_resolution: sisr_trilevel"),
    (["task=super_resolution", "dataset=cifar10"],
     "cannot compose this search: dataset=cifar10 is not a task=super_resolution dataset; valid choices: div2k, "
     "sr_benchmark, sr_photos"),
    (["space=sisr_trilevel"],
     "cannot compose this search: space=sisr_trilevel builds networks for task=super_resolution, not "
     "task=classification; spaces for task=classification: " + ", ".join(spaces_for("classification"))),
    (["dataset=sr_photos"],
     "cannot compose this search: dataset=sr_photos is not a task=classification dataset; valid choices: cifar10, "
     "cifar100, fashion_mnist, imagenet16_120, synthetic"),
    (["task=super_resolution", "selection=ostr"],
     "cannot compose this search: selection=ostr cannot derive a task=super_resolution search (it reads the "
     "mixer's weights of every level, while the probing criteria score cell edges only); valid choices: magnitude"),
])
def test_mismatches_are_refused_in_one_line(overrides, message):
    classification = spaces_for("classification")
    assert {"darts", "nb201"} <= set(classification) and "sisr_trilevel" not in classification
    with pytest.raises(IncompatibleError) as exc:
        check_search_config(compose_cfg("search", overrides))
    assert str(exc.value) == message


def test_evaluate_refuses_the_same_mismatches():
    from nascli.spaces import get_space

    with pytest.raises(IncompatibleError, match="^space=nb201 builds networks for task=classification"):
        check_fit(TASKS.get("super_resolution")(None), get_space("nb201"), "sr_photos")
    with pytest.raises(IncompatibleError, match="^dataset=div2k is not a task=classification dataset"):
        check_fit(TASKS.get("classification")(None), get_space("nb201"), "div2k")
    check_fit(TASKS.get("super_resolution")(None), get_space("sisr_trilevel"), "div2k")


def test_bad_sr_options_are_one_line():
    with pytest.raises(NasError, match=r"^task.scale=5 is not an SR scale; valid choices: 2, 3, 4$"):
        SuperResolutionTask({"scale": 5})


def test_l1_and_batch_psnr_by_hand():
    sr = torch.zeros(2, 1, 2, 2)
    hr = torch.tensor([0.1, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.2]).reshape(2, 1, 2, 2)
    assert L1.loss(sr, hr).item() == pytest.approx(0.15)
    assert L1.loss(sr, hr, reduction="sum").item() == pytest.approx(0.3)
    # mse 0.01 -> 20 dB, mse 0.04 -> 10 log10(25) = 13.979 dB; values outside [0, 1] are clamped first
    assert batch_psnr_sum(sr - 5.0, hr).item() == pytest.approx(20.0 + 10 * math.log10(25.0), abs=1e-4)


def test_step_stats_report_the_task_score_and_keep_it_across_resets():
    from nascli.search.optimizers.single_level import SingleLevelOptimizer

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))
            self.a = nn.Parameter(torch.zeros(1))

        def weight_parameters(self):
            return [self.w]

        def arch_parameters(self):
            return [self.a]

        def forward(self, x):
            return x * self.w + self.a

    opt = SingleLevelOptimizer(Net())
    opt.use_criterion(L1)
    opt.stats = StepStats()  # the engine's reset at an epoch start
    x, y = torch.full((2, 1, 2, 2), 0.5), torch.full((2, 1, 2, 2), 0.6)
    loss = opt.loss((x, y), "train")
    assert loss.item() == pytest.approx(0.1)
    summary = opt.stats.summary()
    assert summary == {"train_loss": pytest.approx(0.1), "train_psnr": pytest.approx(20.0, abs=1e-4)}


def test_classification_criterion_is_cross_entropy_and_accuracy():
    logits, y = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]]), torch.tensor([0, 0, 0])
    assert CROSS_ENTROPY.loss(logits, y).item() == pytest.approx(F.cross_entropy(logits, y).item())
    stats = StepStats()
    stats.add("val", logits, y, CROSS_ENTROPY.loss(logits, y))
    assert stats.summary()["val_acc"] == pytest.approx(100.0 * 2 / 3)


def test_720p_input_per_scale():
    from nascli.data.sr import SRInfo

    info = SRInfo("x", 3, 2)
    shapes = [SuperResolutionTask({"scale": s}).input_shape(info) for s in (2, 3, 4)]
    assert shapes == [(1, 3, 360, 640), (1, 3, 240, 426), (1, 3, 180, 320)]


def test_adam_protocol_and_step_size_schedule():
    p = Protocol(name="t", epochs=10, batch_size=4, lr=1e-4, optimizer="adam", beta1=0.8, beta2=0.99,
                 schedule="step", step_gamma=0.5, step_size=4)
    opt = _make_optimizer(nn.Linear(2, 2), p, torch.device("cpu"))
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["betas"] == (0.8, 0.99)
    assert [lr_at_epoch(p, e) for e in (0, 3, 4, 7, 8)] == pytest.approx([1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5])
    sgd = Protocol(name="t", epochs=2, batch_size=4, lr=0.1)
    assert "optimizer" not in sgd.as_dict() and "step_size" not in sgd.as_dict()  # classification checkpoints resume
    with pytest.raises(NasError, match="bad optimizer 'rmsprop'"):
        Protocol(name="t", epochs=2, batch_size=4, lr=0.1, optimizer="rmsprop")


def test_sr_test_metrics_of_bicubic_equal_the_bicubic_baseline():
    """The training hooks score a model exactly as the bicubic baseline is scored: a model that upscales
    bicubically gets bicubic_psnr / bicubic_ssim."""
    from nascli.data.sr import SRImages, upscale_bicubic

    g = torch.Generator().manual_seed(0)
    hr = [torch.randint(0, 256, (3, 24, 20), generator=g, dtype=torch.uint8) for _ in range(2)]
    lr = [torch.nn.functional.avg_pool2d(h.float()[None], 2)[0].round().to(torch.uint8) for h in hr]
    images = SRImages(lr, hr, "test")
    task = SuperResolutionTask({"scale": 2})

    class Bicubic(nn.Module):
        def forward(self, x):
            return upscale_bicubic(x, 2)

    hooks = task.training(Protocol(name="t", epochs=1, batch_size=1, lr=1e-3))
    metrics = hooks.test_metrics(Bicubic(), images, None, 1, torch.device("cpu"))
    base = task.result_fields(Bicubic(), images, None, torch.device("cpu"))
    assert metrics == {"psnr": base["bicubic_psnr"], "ssim": base["bicubic_ssim"]}
    assert 5.0 < metrics["psnr"] < 40.0


def test_benchmark_forwards_the_task_and_reads_its_metric():
    from nascli.bench.jobs import Outcome
    from nascli.bench.plan import task_args
    from nascli.bench.rows import trained_accuracy

    assert task_args(compose_cfg("benchmark", [])) == []  # classification jobs: command lines as before
    assert task_args(compose_cfg("benchmark", ["task=super_resolution", "task.patch_size=8"])) == \
        ["task=super_resolution", "task.scale=2", "task.patch_size=8", "task.eval_max_images=null"]
    out = Outcome("ok", {"psnr": 31.5, "test_acc": None, "run_dir": "r"})
    assert trained_accuracy(out, "k", "psnr") == {"status": "ok", "acc": 31.5, "eval_run": "r"}


def test_alpha_plot_takes_levels_with_their_own_number_of_choices():
    """sisr_trilevel's network (6) and kernel (4) levels beside the cell's 7 ops (benchmark plots)."""
    pytest.importorskip("matplotlib")
    from nascli.bench.plots import alpha_trajectories

    alphas = [{"cell": [[1 / 7] * 7], "network": [[1 / 6] * 6]},
              {"cell": [[0.4] + [0.1] * 6], "network": [[0.5] + [0.1] * 5]}]
    png = alpha_trajectories([1, 2], alphas, {"cell": ["e0"], "network": ["n"]}, [f"op{i}" for i in range(7)],
                             title="t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
