"""Divergence: a non-finite loss stops search and evaluate at the first bad step (epoch and step named),
with status diverged, a non-zero exit and the last good checkpoint kept."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import nascli.train.loop as loop
from helpers import TINY_SEARCH, nas
from nascli.divergence import NonFiniteWatch, all_finite
from nascli.errors import DivergedError
from nascli.search.engine import SearchEngine
from nascli.search.optimizers.base import StepStats
from nascli.train import Protocol, train_network

NAN = float("nan")


# ------------------------------------------------------------------ the watch
def test_on_the_cpu_every_observation_is_checked_at_once():
    watch = NonFiniteWatch("cpu")
    watch.start(epoch=2, first_step=5)
    watch.observe(torch.tensor(1.0))
    watch.observe(torch.tensor([2.0, 3.0]))
    with pytest.raises(DivergedError) as err:
        watch.observe(torch.tensor([4.0, float("inf")]))
    assert (err.value.epoch, err.value.step) == (2, 7)
    assert str(err.value) == ("diverged: the loss is not finite at epoch 2 step 7 (0-based); the run stopped "
                              "without checkpointing it; lower the learning rate or change the config")
    assert err.value.exit_code == 3


def test_deferred_checks_name_the_first_bad_observation():
    watch = NonFiniteWatch("cpu", check_every_step=False)  # what happens on CUDA: no sync per step
    watch.start(epoch=0, first_step=3)
    for value in (1.0, 2.0, NAN, 4.0, float("-inf")):
        watch.observe(torch.tensor(value))  # no raise here
    with pytest.raises(DivergedError) as err:
        watch.check()
    assert (err.value.epoch, err.value.step) == (0, 5)
    watch.start(epoch=1, first_step=0)
    watch.observe(torch.tensor(1.0))
    watch.check()  # a new epoch starts clean


def test_all_finite():
    assert all_finite([torch.ones(3), torch.zeros(2, 2)]) and all_finite([])
    assert not all_finite([torch.ones(3), torch.tensor([1.0, NAN])])


# ------------------------------------------------------------------ the search engine
class FakeMixer:
    def on_epoch_start(self, epoch, epochs):
        pass

    def schedule_values(self):
        return {}


class FakeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))
        self.mixer = FakeMixer()


class FakeStream:
    def next(self):
        return torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)

    def state_dict(self):
        return {}


class FakeOptimizer:
    """Records a train loss per step; step number ``bad_step`` (counting all steps from 0) has ``bad_loss``,
    or sets the weights to ``bad_weight`` with a finite loss."""

    uses_arch_batches = False

    def __init__(self, net, bad_step, bad_loss=NAN, bad_weight=None):
        self.net, self.bad_step, self.bad_loss, self.bad_weight = net, bad_step, bad_loss, bad_weight
        self.stats = StepStats()
        self.calls = 0

    def on_epoch_start(self, epoch, epochs):
        pass

    def step(self, train_batch, arch_batch):
        bad = self.calls == self.bad_step
        loss = torch.tensor(self.bad_loss if bad and self.bad_weight is None else 0.5)
        if bad and self.bad_weight is not None:
            with torch.no_grad():
                self.net.w[0] = self.bad_weight
        self.stats.add("train", torch.zeros(4, 3), train_batch[1], loss)
        self.calls += 1


def _engine(bad_step, deferred=False, **kw):
    net = FakeNet()
    engine = SearchEngine(net, FakeOptimizer(net, bad_step, **kw), [], FakeStream(), None, epochs=3,
                          steps_per_epoch=6)
    if deferred:
        engine.watch = NonFiniteWatch("cpu", check_every_step=False)
    return engine


def _run(engine):
    """Epochs as the search session runs them; returns [(epoch, step) of every checkpoint] and the error."""
    saved = []
    with pytest.raises(DivergedError) as err:
        for epoch in range(engine.epochs):
            engine.start_epoch(epoch)
            engine.run_epoch(checkpoint=lambda: saved.append((engine.epoch, engine.step)), checkpoint_every=2)
            saved.append((epoch + 1, 0))  # the session's end-of-epoch checkpoint
            engine.step = 0
    return saved, err.value


@pytest.mark.parametrize("deferred", [False, True])
def test_engine_stops_at_the_first_non_finite_loss_before_any_bad_checkpoint(deferred):
    saved, err = _run(_engine(bad_step=9, deferred=deferred))  # epoch 1, step 3 (0-based)
    assert (err.epoch, err.step, err.what) == (1, 3, "the loss")
    # on the CPU the run stops at the bad step itself; deferred, at the next checkpoint point (step 4),
    # without writing it
    assert saved == [(0, 2), (0, 4), (1, 0), (1, 2)]


def test_engine_refuses_to_checkpoint_non_finite_weights():
    saved, err = _run(_engine(bad_step=2, bad_weight=float("inf")))  # finite loss, infinite weight at step 2
    assert (err.epoch, err.step, err.what) == (0, 3, "a weight or buffer")
    assert saved == [(0, 2)]


# ------------------------------------------------------------------ the training loop
class NaNAfter(nn.Module):
    """A linear classifier whose ``bad_call``-th training forward (counting from 0) returns NaN."""

    def __init__(self, bad_call):
        super().__init__()
        self.fc = nn.Linear(12, 3)
        self.bad_call, self.calls = bad_call, 0

    def forward(self, x):
        out = self.fc(x.flatten(1))
        if self.training:
            if self.calls == self.bad_call:
                out = out * NAN
            self.calls += 1
        return out


class Stream:
    def __init__(self, split, info, batch_size, *, seed, train_aug, cutout):
        self.gen = torch.Generator().manual_seed(seed)
        self.batch_size = batch_size

    def batches_per_pass(self):
        return 4

    def next(self):
        return torch.randn(self.batch_size, 3, 2, 2, generator=self.gen), torch.zeros(self.batch_size, dtype=torch.long)

    def state_dict(self):
        return {"gen": self.gen.get_state()}


def _test_batches(split, info, batch_size):
    yield torch.zeros(2, 3, 2, 2), torch.zeros(2, dtype=torch.long)


@pytest.mark.parametrize("deferred", [False, True])
def test_train_loop_names_the_first_bad_step_and_skips_that_epochs_callback(deferred, monkeypatch):
    if deferred:  # the path CUDA and torchrun take: read at the end of the epoch
        monkeypatch.setattr(loop, "NonFiniteWatch", lambda device, check_every_step: NonFiniteWatch(device, False))
    epochs = []
    protocol = Protocol(name="t", epochs=3, batch_size=2, lr=0.1)
    with pytest.raises(DivergedError) as err:
        train_network(NaNAfter(bad_call=6), protocol, None, None, None, device="cpu", seed=0,
                      on_epoch_end=lambda e, m, s: epochs.append(e), make_stream=Stream, iterate_test=_test_batches)
    assert (err.value.epoch, err.value.step) == (1, 2)
    assert epochs == [0]


class InfBuffer(NaNAfter):
    """Finite losses, but a buffer that overflows in epoch 1."""

    def __init__(self):
        super().__init__(bad_call=-1)
        self.register_buffer("running", torch.zeros(1))

    def forward(self, x):
        if self.training and self.calls >= 4:
            self.running.fill_(float("inf"))
        return super().forward(x)


def test_train_loop_never_hands_a_non_finite_state_to_the_callback():
    epochs = []
    protocol = Protocol(name="t", epochs=3, batch_size=2, lr=0.1)
    with pytest.raises(DivergedError) as err:
        train_network(InfBuffer(), protocol, None, None, None, device="cpu", seed=0,
                      on_epoch_end=lambda e, m, s: epochs.append(e), make_stream=Stream, iterate_test=_test_batches)
    assert (err.value.epoch, err.value.step, err.value.what) == (1, 3, "a weight or buffer")
    assert epochs == [0]


# ------------------------------------------------------------------ the commands
def test_diverged_search_keeps_the_last_good_checkpoint_and_says_where(tmp_path):
    args = [*TINY_SEARCH, "optimizer.lr=1e5", "search.checkpoint_every_steps=1", f"out_root={tmp_path}"]
    proc = nas("search", *args, check=False)
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    result = json.loads(proc.stdout)
    run = Path(result["run_dir"])
    assert json.loads((run / "result.json").read_text()) == result
    assert result["status"] == "diverged" and result["command"] == "search" and result["seed"] == 0
    epoch, step = result["diverged_epoch"], result["diverged_step"]
    # with this lr the BatchNorm statistics overflow first (the guard before each checkpoint finds them)
    assert re.fullmatch(f"error: diverged: (the loss|a weight or buffer) is not finite at epoch {epoch} step {step} "
                        r"\(0-based\); the run stopped without checkpointing it; lower the learning rate or change "
                        "the config", lines[-1]), lines[-1]
    assert (epoch, step) > (0, 0)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == (epoch, step)  # the state just before the bad step
    floats = [v for v in state["supernet"].values() if v.is_floating_point()]
    assert floats and all(torch.isfinite(v).all() for v in floats)
    again = nas("search", *args, check=False)  # a re-run resumes from there and diverges the same way
    assert again.returncode == 3 and json.loads(again.stdout)["diverged_step"] == step


EVALUATE = ["arch=|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
            "protocol=quick", "protocol.lr=1e30", "protocol.epochs=2", "protocol.max_steps_per_epoch=3",
            "protocol.batch_size=8", "dataset=synthetic", "dataset.num_train=64", "dataset.num_test=16",
            "dataset.image_size=8", "space.network.C=4", "space.network.N=1", "num_threads=1"]


def test_diverged_evaluate_exits_non_zero_with_status_diverged_also_under_torchrun(tmp_path):
    proc = nas("evaluate", *EVALUATE, f"out_root={tmp_path / 'one'}", check=False)
    assert proc.returncode == 3, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "diverged" and result["command"] == "evaluate"
    where = (result["diverged_epoch"], result["diverged_step"])
    assert f"at epoch {where[0]} step {where[1]} (0-based)" in proc.stderr.strip().splitlines()[-1]
    run = Path(result["run_dir"])
    assert json.loads((run / "result.json").read_text()) == result

    # two ranks (torchrun, gloo): both stop at the end of the epoch, rank 0 names the earliest bad step
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "nascli", "evaluate", *EVALUATE, f"out_root={tmp_path / 'ddp'}"],
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert ddp.returncode != 0
    lines = [line for line in ddp.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, ddp.stdout  # rank 0's result line only
    ddp_result = json.loads(lines[0])
    assert ddp_result["status"] == "diverged"
    assert (ddp_result["diverged_epoch"], ddp_result["diverged_step"]) == where
