"""The in-epoch progress bar (only on a terminal) and epoch lines that never wrap."""
import re
from io import StringIO
from pathlib import Path

from rich.console import Console

import nascli.commands.search as search_command
from helpers import TINY_SEARCH, compose_cfg, nas, result_line
from nascli.logger.observer import StepInfo
from nascli.logger.session import run_observers
from nascli.logger.tensorboard import TensorBoardLogger
from nascli.train.progress import EpochProgress, print_line

TINY = [*TINY_SEARCH, "dataset.num_train=64", "dataset.num_test=16", "search.epochs=2", "search.max_steps_per_epoch=3"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _terminal(width: int = 100) -> tuple[Console, StringIO]:
    out = StringIO()
    return Console(file=out, force_terminal=True, width=width, color_system=None), out


def test_print_line_never_wraps():
    text = "epoch 1/50 train_acc 10.0 " + "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|" * 3
    plain_out = StringIO()
    print_line(Console(file=plain_out, width=40, force_terminal=False), text)
    assert plain_out.getvalue() == text + "\n"  # a log file gets the whole line, no inserted breaks
    term, out = _terminal(width=40)
    print_line(term, text)
    (line,) = ANSI.sub("", out.getvalue()).splitlines()
    assert len(line) == 40 and line.endswith("…") and line.startswith("epoch 1/50 train_acc")


def test_bar_renders_steps_rate_and_losses():
    term, out = _terminal()
    bar = EpochProgress(term, loss_every_s=0.0)
    bar.on_epoch_start(0, 2, 3, 0)
    for step in (1, 2, 3):
        bar.on_step_end(StepInfo(0, step, 3, 16, lambda s=step: {"train_loss": 2.5 - 0.1 * s, "train_acc": 10.0 * s}))
    bar.on_epoch_end(0, {})
    text = ANSI.sub("", out.getvalue())
    assert "epoch 1/2" in text and "3/3" in text and "img/s" in text
    assert "train_acc 30  train_loss 2.2" in text
    assert bar.progress is None  # stopped (transient) at the epoch's end


def test_no_bar_off_a_terminal(tmp_path):
    cfg = compose_cfg("search", [*TINY, "logger=none"])
    assert run_observers(cfg, tmp_path, 0, console=Console(file=StringIO())) == []
    term, _ = _terminal()
    (bar,) = run_observers(cfg, tmp_path, 0, console=term)
    assert isinstance(bar, EpochProgress)
    kinds = [type(o) for o in run_observers(compose_cfg("search", [*TINY, "logger=tensorboard"]), tmp_path, 0)]
    assert kinds == [TensorBoardLogger]


def test_search_on_a_terminal_shows_the_step_counts(tmp_path, monkeypatch):
    term, out = _terminal(width=200)
    monkeypatch.setattr(search_command, "console", term)
    result = search_command.search(compose_cfg("search", [*TINY, "logger=none", f"out_root={tmp_path}"]))
    text = ANSI.sub("", out.getvalue())
    # 64 examples: 32 weights / batch 16 = 2 steps per epoch; the bar from 0/2 to 2/2 with the running losses
    bars = [line for line in text.splitlines() if "steps" in line and "img/s" in line]
    assert any(line.startswith("epoch 1/2") and "0/2 steps" in line for line in bars)
    assert any(line.startswith("epoch 2/2") and "2/2 steps" in line and "train_loss" in line for line in bars)
    epoch_lines = [line for line in text.splitlines() if line.startswith("epoch 2/2 train_acc")]
    assert epoch_lines and epoch_lines[-1].endswith(result["arch"])


def test_cli_off_a_terminal_prints_one_line_per_epoch(tmp_path):
    proc = nas("search", *TINY, "logger=none", f"out_root={tmp_path}")
    result = result_line(proc)
    lines = proc.stderr.splitlines()
    assert lines[0] == f"search {result['run_dir']}"  # the path whole, on one line
    epochs = lines[1:]
    assert [line.split(" train_acc")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert epochs[-1].endswith("  " + result["arch"])  # the arch whole, never wrapped
    assert not any("\x1b" in line or "━" in line for line in lines)  # no bar, no control codes
    assert Path(result["run_dir"], "metrics.jsonl").read_text().count("\n") == 2
