"""Parameter and mult-add counts checked against hand computations; the CPU peak-memory figure."""
import resource
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from nascli.profile import count_flops, count_parameters, peak_memory_bytes, reset_peak_memory


class Tiny(nn.Module):
    """conv 3->8 k3 s1 p1 (8x8) | depthwise 8 k3 s2 p1 (4x4) | grouped 8->4 k1 groups 2 | dilated
    4->4 k3 d2 p2 | GAP | linear 4->10, plus an auxiliary head that must not be counted."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
        self.grouped = nn.Conv2d(8, 4, 1, groups=2, bias=True)
        self.dilated = nn.Conv2d(4, 4, 3, padding=2, dilation=2, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.classifier = nn.Linear(4, 10)
        self.auxiliary_head = nn.Linear(8, 10)
        self.frozen = nn.Parameter(torch.zeros(5), requires_grad=False)

    def forward(self, x):
        x = self.bn(self.dilated(self.grouped(self.dw(self.conv(x)))))
        logits = self.classifier(x.mean((2, 3)))
        if self.training:
            return logits, self.auxiliary_head(torch.zeros(x.shape[0], 8))
        return logits


def test_count_parameters_excludes_auxiliary_and_frozen():
    m = Tiny()
    expected = 3 * 8 * 9 + 8 * 9 + (4 * 4 + 4) + 4 * 4 * 9 + 2 * 4 + (4 * 10 + 10)
    assert count_parameters(m) == expected == 216 + 72 + 20 + 144 + 8 + 50
    assert count_parameters(m, exclude=None) == expected + 8 * 10 + 10


def test_count_flops_hand_computed():
    m = Tiny().train()
    macs = (
        8 * 8 * 8 * 3 * 9  # conv: out 8x8x8, 3 in-ch, 3x3
        + 8 * 4 * 4 * 1 * 9  # depthwise stride 2: out 8x4x4, 1 in-ch per group
        + 4 * 4 * 4 * 4 * 1  # grouped 1x1: out 4x4x4, 8/2 in-ch per group
        + 4 * 4 * 4 * 4 * 9  # dilated 3x3, pad 2: out 4x4x4
        + 4 * 10  # classifier
    )
    assert count_flops(m, (3, 8, 8)) == macs == 13824 + 1152 + 256 + 2304 + 40
    assert count_flops(m, (1, 3, 8, 8)) == macs
    assert m.training  # the training flag is restored


def test_count_flops_counts_shared_layer_each_call():
    lin = nn.Linear(6, 6)
    net = nn.Sequential(nn.Flatten(), lin, lin)
    assert count_flops(net, (1, 2, 3)) == 2 * 36


def _vm_hwm_bytes() -> int:
    """The kernel's own peak-RSS figure for this process (/proc/self/status VmHWM, in kB)."""
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_memory_cpu_is_the_peak_rss_in_bytes():
    # the kernel's two peak counters differ by its per-thread RSS caching (a few hundred KiB); a KiB/byte mix-up
    # (x1024) or the current instead of the peak RSS (64 MiB below it, after the block is freed) is far outside
    slack = 4 << 20
    reset_peak_memory("cpu")  # a no-op on CPU: the peak RSS cannot be reset
    assert abs(peak_memory_bytes("cpu") - _vm_hwm_bytes()) < slack  # bytes: ru_maxrss (KiB) * 1024 on Linux
    block = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MiB, touched
    with_block = _vm_hwm_bytes()
    del block  # the resident set shrinks again; its peak does not
    assert peak_memory_bytes("cpu") > with_block - slack


def test_peak_memory_cpu_units_per_platform(monkeypatch):
    class Usage:
        ru_maxrss = 3000

    monkeypatch.setattr(resource, "getrusage", lambda who: Usage)
    monkeypatch.setattr(sys, "platform", "linux")
    assert peak_memory_bytes("cpu") == 3000 * 1024  # Linux reports KiB
    monkeypatch.setattr(sys, "platform", "darwin")
    assert peak_memory_bytes("cpu") == 3000  # macOS reports bytes
