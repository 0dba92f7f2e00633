"""Training protocols, schedules, loss and the resumable loop, on tiny synthetic stand-ins.

Pinned rules: cosine lr per epoch (METHODS.md 11.9), step gamma 0.97 (0.3), drop-path ramp
p * e / E (0.2), CE + 0.4 * CE_aux (0.2), and the protocol values of METHODS.md 0.2, 0.3 and 0.5.
"""
import io
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
import torch.nn.functional as F
from torch import nn

from nascli import data
from nascli.errors import CheckpointError, NasError
from nascli.train import (
    Protocol,
    compute_loss,
    drop_path_at_epoch,
    load_protocol,
    lr_at_epoch,
    train_network,
)

CONF = Path(__file__).resolve().parents[1] / "nascli" / "conf" / "protocol"


# ----------------------------------------------------------------------------- protocols

def test_protocol_files_pin_the_papers():
    nb201 = load_protocol(CONF / "nb201_200e.yaml")  # METHODS.md 0.5
    assert (nb201.name, nb201.epochs, nb201.batch_size, nb201.lr, nb201.lr_min) == ("nb201_200e", 200, 256, 0.1, 0.0)
    assert (nb201.momentum, nb201.nesterov, nb201.weight_decay, nb201.schedule) == (0.9, True, 5e-4, "cosine")
    assert (nb201.cutout, nb201.auxiliary_weight, nb201.drop_path_prob, nb201.grad_clip) == (0, 0.0, 0.0, None)

    darts = load_protocol(CONF / "darts_600e.yaml")  # METHODS.md 0.2
    assert (darts.epochs, darts.batch_size, darts.lr, darts.lr_min, darts.momentum) == (600, 96, 0.025, 0.0, 0.9)
    assert (darts.nesterov, darts.weight_decay, darts.schedule, darts.grad_clip) == (False, 3e-4, "cosine", 5.0)
    assert (darts.cutout, darts.auxiliary_weight, darts.drop_path_prob) == (16, 0.4, 0.2)

    mobile = load_protocol(CONF / "imagenet_mobile.yaml")  # METHODS.md 0.3
    assert (mobile.epochs, mobile.batch_size, mobile.lr, mobile.weight_decay) == (250, 128, 0.1, 3e-5)
    assert (mobile.schedule, mobile.step_gamma, mobile.label_smoothing) == ("step", 0.97, 0.1)
    assert (mobile.auxiliary_weight, mobile.grad_clip, mobile.drop_path_prob) == (0.4, 5.0, 0.0)

    quick = load_protocol(CONF / "quick.yaml")
    assert Protocol.from_config(dict(quick.as_dict())) == quick
    assert (quick.epochs, quick.batch_size, quick.lr, quick.schedule) == (2, 64, 0.05, "cosine")
    assert (quick.weight_decay, quick.max_steps_per_epoch) == (5e-4, 20)
    for path in CONF.glob("*.yaml"):  # every training protocol loads; an RL protocol (algorithm:) is nascli.rl's
        if "algorithm" in OmegaConf.load(path):
            assert OmegaConf.load(path).name == path.stem
        else:
            assert load_protocol(path).name == path.stem


def test_protocol_rejects_bad_input():
    with pytest.raises(NasError, match="unknown protocol keys"):
        Protocol.from_cfg({"name": "x", "epochs": 1, "batch_size": 2, "lr": 0.1, "lr_max": 1})
    with pytest.raises(NasError, match="schedule 'linear'"):
        Protocol.from_cfg({"name": "x", "epochs": 1, "batch_size": 2, "lr": 0.1, "schedule": "linear"})
    with pytest.raises(NasError, match="step_gamma"):
        Protocol(name="x", epochs=1, batch_size=2, lr=0.1, schedule="step")
    with pytest.raises(NasError, match="required keys"):
        Protocol.from_cfg({"name": "x", "epochs": 1})


# ----------------------------------------------------------------------------- schedules

def test_cosine_schedule_values():
    darts = load_protocol(CONF / "darts_600e.yaml")
    assert lr_at_epoch(darts, 0) == 0.025
    assert lr_at_epoch(darts, 300) == pytest.approx(0.0125, abs=1e-15)
    assert lr_at_epoch(darts, 599) == pytest.approx(0.025 * (1 + math.cos(math.pi * 599 / 600)) / 2, rel=1e-12)
    assert lr_at_epoch(darts, 599) == pytest.approx(1.7134e-7, rel=1e-4)
    p = Protocol(name="c", epochs=4, batch_size=1, lr=0.1, lr_min=0.001)
    assert [lr_at_epoch(p, e) for e in range(4)] == pytest.approx(
        [0.1, 0.001 + 0.099 * (1 + math.sqrt(0.5)) / 2, 0.0505, 0.001 + 0.099 * (1 - math.sqrt(0.5)) / 2])
    # Same values as torch's CosineAnnealingLR stepped once per epoch (quark0 DARTS, METHODS.md 11.9).
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4, eta_min=0.001)
    for e in range(4):
        assert opt.param_groups[0]["lr"] == pytest.approx(lr_at_epoch(p, e), rel=1e-9)
        opt.step()
        sched.step()


def test_step_schedule_and_warmup():
    mobile = load_protocol(CONF / "imagenet_mobile.yaml")
    assert lr_at_epoch(mobile, 0) == 0.1
    assert lr_at_epoch(mobile, 1) == pytest.approx(0.097)
    assert lr_at_epoch(mobile, 249) == pytest.approx(0.1 * 0.97**249)
    warm = Protocol(name="w", epochs=10, batch_size=1, lr=0.5, schedule="step", step_gamma=0.97, warmup_epochs=5)
    assert [lr_at_epoch(warm, e) for e in range(6)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.5 * 0.97**5])


def test_drop_path_ramp():
    darts = load_protocol(CONF / "darts_600e.yaml")
    assert drop_path_at_epoch(darts, 0) == 0.0
    assert drop_path_at_epoch(darts, 300) == pytest.approx(0.1)
    assert drop_path_at_epoch(darts, 599) == pytest.approx(0.2 * 599 / 600)
    assert drop_path_at_epoch(load_protocol(CONF / "nb201_200e.yaml"), 150) == 0.0


# ----------------------------------------------------------------------------- loss

def test_loss_weights_the_auxiliary_head():
    logits, aux = torch.randn(5, 3), torch.randn(5, 3)
    y = torch.tensor([0, 1, 2, 1, 0])
    loss, main = compute_loss((logits, aux), y, auxiliary_weight=0.4)
    assert main is logits
    assert loss.item() == pytest.approx((F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)).item())
    assert compute_loss((logits, aux), y, 0.0)[0].item() == pytest.approx(F.cross_entropy(logits, y).item())
    assert compute_loss(logits, y, 0.4)[0].item() == pytest.approx(F.cross_entropy(logits, y).item())
    smooth = compute_loss((logits, aux), y, 0.4, label_smoothing=0.1)[0]
    expected = F.cross_entropy(logits, y, label_smoothing=0.1) + 0.4 * F.cross_entropy(aux, y, label_smoothing=0.1)
    assert smooth.item() == pytest.approx(expected.item())


# ----------------------------------------------------------------------------- loop

class TinyNet(nn.Module):
    """conv-BN-ReLU, drop-path on the global RNG, GAP, linear; (logits, aux) in train mode."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.classifier = nn.Linear(6, classes)
        self.auxiliary_head = nn.Linear(6, classes)
        self.drop_path_prob = 0.0

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x)))
        if self.training and self.drop_path_prob > 0:
            keep = 1.0 - self.drop_path_prob
            h = h * torch.bernoulli(torch.full((h.shape[0], 1, 1, 1), keep)) / keep
        feat = h.mean((2, 3))
        logits = self.classifier(feat)
        return (logits, self.auxiliary_head(feat)) if self.training else logits


class FakeStream:
    """Stand-in for nascli.data.BatchStream: own generator, random batches, flip augmentation."""

    def __init__(self, split, info, batch_size, *, seed, train_aug, cutout):
        self.x, self.y = split
        self.batch_size, self.train_aug = batch_size, train_aug
        self.gen = torch.Generator().manual_seed(seed)

    def batches_per_pass(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def next(self):
        idx = torch.randint(len(self.y), (self.batch_size,), generator=self.gen)
        x = self.x[idx]
        if self.train_aug:
            flip = torch.rand(self.batch_size, generator=self.gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x, self.y[idx]

    def state_dict(self):
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state):
        self.gen.set_state(state["gen"])


def fake_eval(split, info, batch_size):
    x, y = split
    for i in range(0, len(y), batch_size):
        yield x[i:i + batch_size], y[i:i + batch_size]


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(4, (n,), generator=g)
    x = torch.randn(n, 3, 6, 6, generator=g) + y[:, None, None, None].float()
    return x, y


PROTO = Protocol(name="tiny", epochs=3, batch_size=8, lr=0.1, nesterov=True, weight_decay=5e-4, grad_clip=5.0,
                 auxiliary_weight=0.4, drop_path_prob=0.3, label_smoothing=0.1, max_steps_per_epoch=3)


def _run(model, protocol=PROTO, state=None, on_epoch_end=None, seed=1):
    return train_network(model, protocol, _data(40, 0), _data(20, 1), None, device="cpu", seed=seed, state=state,
                         on_epoch_end=on_epoch_end, make_stream=FakeStream, iterate_test=fake_eval)


def test_loop_sets_lr_and_drop_path_per_epoch_and_reports():
    seen = []
    model = TinyNet()
    result = _run(model, on_epoch_end=lambda e, m, s: seen.append((e, m, (s["epoch"], s["epochs_done"]),
                                                                    model.drop_path_prob)))
    assert [e for e, *_ in seen] == [0, 1, 2] and [s for *_, s, _ in seen] == [(0, 1), (1, 2), (2, 3)]
    for e, metrics, _, dp in seen:
        assert metrics["lr"] == lr_at_epoch(PROTO, e)
        assert metrics["drop_path_prob"] == dp == pytest.approx(0.3 * e / 3)
        assert metrics["steps"] == 3 and 0 <= metrics["test_acc"] <= 100
    assert set(result) == {"test_acc", "train_loss", "train_acc", "epochs"} and result["epochs"] == 3
    assert result["test_acc"] == seen[-1][1]["test_acc"] and math.isfinite(result["train_loss"])


def test_auxiliary_head_trains_only_with_positive_weight():
    for weight, changes in ((0.0, False), (0.4, True)):
        torch.manual_seed(0)
        model = TinyNet()
        before = model.auxiliary_head.weight.detach().clone()
        protocol = Protocol(name="a", epochs=1, batch_size=8, lr=0.1, auxiliary_weight=weight, max_steps_per_epoch=2)
        _run(model, protocol)
        assert (not torch.equal(before, model.auxiliary_head.weight)) is changes


def test_resume_gives_identical_weights():
    torch.manual_seed(0)
    straight = TinyNet()
    saved = {}

    def keep(epoch, metrics, state):
        if epoch == 0:
            buf = io.BytesIO()
            torch.save(state, buf)  # what the caller's atomic checkpoint does
            saved["bytes"] = buf.getvalue()

    final = _run(straight, on_epoch_end=keep)

    torch.manual_seed(123)  # a different initialisation and global RNG: everything must come from the state
    resumed = TinyNet()
    state = torch.load(io.BytesIO(saved["bytes"]), weights_only=True)
    assert (state["epoch"], state["epochs_done"]) == (0, 1)
    final_resumed = _run(resumed, state=state)
    assert final_resumed == final
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_resume_refuses_a_different_protocol():
    saved = {}
    _run(TinyNet(), on_epoch_end=lambda e, m, s: saved.setdefault("state", s))
    other = Protocol(name="tiny", epochs=4, batch_size=8, lr=0.1)
    with pytest.raises(CheckpointError, match="epochs"):
        _run(TinyNet(), protocol=other, state=saved["state"])


def test_finished_state_returns_without_training():
    saved = {}
    final = _run(TinyNet(), on_epoch_end=lambda e, m, s: saved.update(state=s))
    assert _run(TinyNet(), state=saved["state"], on_epoch_end=lambda *a: pytest.fail("trained again")) == final


def test_resume_with_the_real_batch_stream():
    """Same resume check through the default data hooks (nascli.data.BatchStream, iterate_eval)."""
    info = data.DatasetInfo(name="tiny", num_classes=4, channels=3, image_size=8, mean=(0.5,) * 3, std=(0.25,) * 3,
                            crop_padding=1)
    g = torch.Generator().manual_seed(0)
    train = data.ImageSplit(torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8, generator=g),
                            torch.randint(4, (32,), generator=g))
    test = data.ImageSplit(torch.randint(0, 256, (12, 3, 8, 8), dtype=torch.uint8, generator=g),
                           torch.randint(4, (12,), generator=g))
    protocol = Protocol(name="real", epochs=2, batch_size=8, lr=0.05, cutout=3, auxiliary_weight=0.4,
                        drop_path_prob=0.2, max_steps_per_epoch=2)
    saved = {}

    def keep(epoch, metrics, state):
        buf = io.BytesIO()
        torch.save(state, buf)
        saved.setdefault("bytes", buf.getvalue())

    torch.manual_seed(0)
    straight = TinyNet()
    final = train_network(straight, protocol, train, test, info, device="cpu", seed=3, on_epoch_end=keep)
    resumed = TinyNet()
    state = torch.load(io.BytesIO(saved["bytes"]), weights_only=True)
    assert train_network(resumed, protocol, train, test, info, device="cpu", seed=3, state=state) == final
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
