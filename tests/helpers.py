"""Test helpers: run the real CLI in a subprocess, compose configs with Hydra's compose API, and the
single-path search fixtures (tiny overrides, op-call counting, interrupt-and-resume) shared by the GDAS,
ROME and DAAS tests."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from nascli.paths import CONF_DIR

# A tiny NB201 search: a few seconds on one CPU thread.
TINY_SEARCH = ["space.supernet.C=4", "space.supernet.N=1", "dataset.num_train=256", "dataset.num_test=64",
               "dataset.image_size=8", "search.batch_size=16", "search.epochs=3", "num_threads=1"]


def nas(*args: str, cwd: Path | None = None, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "nascli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"nas {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def result_line(proc: subprocess.CompletedProcess) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line on stdout, got {proc.stdout!r}"
    return json.loads(lines[0])


def compose_cfg(command: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(command, overrides=overrides)


# ------------------------------------------------------------------ single-path searches (GDAS, ROME, DAAS)
TINY = ["space.supernet.C=4", "space.supernet.N=1", "dataset.num_train=128", "dataset.num_test=32",
        "dataset.image_size=8", "search.batch_size=8", "num_threads=1"]
TINY_DARTS = ["space=darts", "space.supernet.C=4", "space.supernet.layers=2", "dataset.num_train=64",
              "dataset.num_test=16", "dataset.image_size=8", "search.batch_size=4", "num_threads=1"]
RESUME = ["search.epochs=3", "search.max_steps_per_epoch=3", "search.checkpoint_every_steps=2"]


def count_op_calls(net, mixer, x):
    """(per (cell, edge, op) call counts, the EdgeWeights each cell type got, the cells) for one forward of
    a supernet built with reference cells (one module per op per edge, in ``cell.edges``)."""
    calls = Counter()
    cells = [m for m in net.modules() if hasattr(m, "edges") and isinstance(m.edges, torch.nn.ModuleList)]
    handles = [op.register_forward_hook(lambda *_, key=(c, e, o): calls.update([key]))
               for c, cell in enumerate(cells) for e, ops in enumerate(cell.edges) for o, op in enumerate(ops)]
    seen = {}
    mix = mixer.mix

    def record(ct):
        seen[ct] = mix(ct)
        return seen[ct]

    mixer.mix = record
    try:
        net(x)
    finally:
        mixer.mix = mix
        for h in handles:
            h.remove()
    return calls, seen, cells


class Interrupt(Exception):
    pass


def interrupted_and_full_states(tmp_path: Path, overrides: list[str], crash_at_step: int):
    """(final checkpoint of an uninterrupted search, final checkpoint of the same search interrupted at
    its ``crash_at_step``-th optimizer step (in-process) and resumed by a fresh session on the same run
    directory, (epoch, step) the resume started from)."""
    from nascli.commands.search import SearchSession

    full = SearchSession(compose_cfg("search", [*overrides, f"out_root={tmp_path / 'full'}"]))
    full.execute()
    cut_cfg = compose_cfg("search", [*overrides, f"out_root={tmp_path / 'cut'}"])
    cut = SearchSession(cut_cfg)
    step, count = cut.optimizer.step, [0]

    def crashing(*args):
        count[0] += 1
        if count[0] == crash_at_step:
            raise Interrupt
        return step(*args)

    cut.optimizer.step = crashing
    with pytest.raises(Interrupt):
        cut.execute()
    assert not (cut.run.path / "result.json").exists()
    load = lambda s: torch.load(s.run.checkpoint_path, weights_only=False)  # noqa: E731
    at = load(cut)
    resumed = SearchSession(cut_cfg)
    resumed.execute()
    return load(full), load(resumed), (at["epoch"], at["step"])


def assert_same_state(a: dict, b: dict, prefixes=("mixer.",)) -> None:
    """Bitwise-equal supernet states; at least one key starts with one of ``prefixes``."""
    assert any(k.startswith(prefixes) for k in a["supernet"]), prefixes
    assert a["supernet"].keys() == b["supernet"].keys()
    for k in a["supernet"]:
        assert torch.equal(a["supernet"][k], b["supernet"][k]), k


def assert_same_nested(a, b, where: str = "state", *, rtol: float = 0.0, atol: float = 0.0) -> None:
    """Bitwise-equal nested states (tensors of the same dtype, dicts with the same keys, lists, plain values);
    the message names the first differing path, e.g. ``checkpoint.optimizer.w_opt.state``. With ``rtol`` or
    ``atol``, floating-point tensors and floats need only agree within them (NaN equal to NaN); everything else
    (integer tensors such as generator states, strings) still exactly."""
    close = bool(rtol or atol)
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        if close and a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=where)
        else:
            assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_nested(a[k], b[k], f"{where}.{k}", rtol=rtol, atol=atol)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_nested(x, y, f"{where}[{i}]", rtol=rtol, atol=atol)
    elif close and isinstance(a, float):
        assert a == pytest.approx(b, rel=rtol, abs=atol, nan_ok=True), where
    else:
        assert a == b, where
