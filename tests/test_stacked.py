"""Seed-stacked groups, ``nas search 'seeds=[...]' seeds_mode=stacked`` (nascli/search/stacked.py).

The stacked forward must give every seed its own outputs, running statistics and gradients; a stacked group
must give every seed its solo run's records, checkpoint and arch up to float rounding (the tolerance below),
for every method config that can stack (generated from conf/method/); every other method must be refused
with one line that says why. A stacked group that crashed resumes to the uninterrupted group's results bit
for bit.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from nascli.commands.search import SearchSession, search_run_dir
from nascli.commands.seed_group import SeedTurn, group_mode, run_seed_group, seed_config
from nascli.errors import IncompatibleError, NasError
from nascli.paths import CONF_DIR
from nascli.search.builder import build_search
from nascli.search.composition import check_search_config
from nascli.search.stacked import STACKED_UPDATES, StackedForward, stack_problem, stacked_step
from nascli.rng import capture_rng_state, seed_everything
from helpers import assert_same_nested, compose_cfg, nas, result_line

METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
BASE = ["space.supernet.C=4", "space.supernet.N=1", "dataset.num_train=64", "dataset.num_test=32",
        "dataset.image_size=8", "search.batch_size=8", "search.epochs=2", "search.max_steps_per_epoch=2",
        "num_threads=1", "optimizer.arch_start_epoch=0", "++optimizer.warmup_epochs=0",
        "space.supernet.impl=reference", "seeds_mode=stacked",
        "search.cutout=0"]  # sharp_darts' 16-pixel cutout blanks these 8-pixel images: BN of a constant map
#                            then divides rounding noise by sqrt(eps), beyond any float tolerance
TIMING = {"epoch_time_s", "images_per_s", "wall_time_s", "peak_memory_mb", "search_time_s", "elapsed"}
#: stacked vs solo: grouped convolutions sum in another order. On these 4-step runs the checkpoints' largest
#: |a - b| / (ATOL + RTOL |b|) was 0.009 (darts, pc_darts, sdarts_rs, single_darts, ms_darts; 2026-12-01):
#: the bound leaves two orders of magnitude
RTOL, ATOL = 1e-4, 1e-5


def _cfg(out: Path, *extra: str, base: list[str] = BASE):
    return compose_cfg("search", [*base, f"out_root={out}", *extra])


#: the DARTS space's supernet at the same small size (layers instead of NB201's N)
DARTS_BASE = [o for o in BASE if not o.startswith("space.supernet.N")] + ["space=darts", "space.supernet.layers=2"]


def _nets(n: int, *extra: str, base: list[str] = BASE) -> list[torch.nn.Module]:
    cfg = _cfg(Path("unused"), *extra, base=base)
    nets = []
    for seed in range(n):
        seed_everything(seed)
        nets.append(build_search(cfg, torch.device("cpu")).supernet)
    return nets


def assert_close_nested(a, b, where: str = "state") -> None:
    """Nested states equal up to float rounding: floating tensors and floats within (RTOL, ATOL), everything
    else (integer tensors such as generator states, strings, the derived arch) exactly."""
    assert_same_nested(a, b, where, rtol=RTOL, atol=ATOL)


def _untimed(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING}


def _outputs(run_dir: Path, out_root: Path) -> dict:
    def text(name: str) -> str:
        return (run_dir / name).read_text().replace(str(out_root), "<out_root>")

    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    checkpoint.pop("elapsed")
    return {"metrics": [_untimed(json.loads(line)) for line in text("metrics.jsonl").splitlines()],
            "result": _untimed(json.loads(text("result.json"))), "arch": json.loads(text("arch.json")),
            "config": text("config.yaml"), "checkpoint": checkpoint}


def _group(out: Path, seeds: list[int], *extra: str) -> dict:
    cfg = _cfg(out, f"seeds={seeds}".replace(" ", ""), *extra)
    return run_seed_group(cfg, check_search_config(cfg), seeds)


def _solo(out: Path, seed: int, *extra: str) -> Path:
    cfg = seed_config(_cfg(out, *extra), seed)
    session = SearchSession(cfg, search_run_dir(cfg))
    session.execute()
    return session.run.path


# ---------------------------------------------------------------- the stacked forward
@pytest.mark.parametrize("space,impl", [("nb201", "reference"), ("nb201", "fast"), ("darts", "reference")])
def test_stacked_forward_gives_each_seed_its_outputs_statistics_and_gradients(space, impl):
    base = (DARTS_BASE if space == "darts" else BASE) + [f"space.supernet.impl={impl}"]
    nets, solo = _nets(3, "method=pc_darts", base=base), _nets(3, "method=pc_darts", base=base)
    # 16x16: the fast cells' CPU pooling dispatch (depthwise sum from 16x16 pixels) is asked inside vmap too
    xs = [torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    out = StackedForward(nets)(xs)
    assert out.shape == (3, 4, 10)
    (out ** 2).sum().backward()
    for s in range(3):
        expected = solo[s](xs[s])
        (expected ** 2).sum().backward()
        torch.testing.assert_close(out[s], expected, rtol=RTOL, atol=ATOL)
        for (name, p), q in zip(nets[s].named_parameters(), solo[s].parameters()):
            assert (p.grad is None) == (q.grad is None), name
            if p.grad is not None:
                torch.testing.assert_close(p.grad, q.grad, rtol=RTOL, atol=ATOL, msg=name)
        for (name, b), c in zip(nets[s].named_buffers(), solo[s].buffers()):
            torch.testing.assert_close(b, c, rtol=RTOL, atol=ATOL, msg=name)  # BN running statistics written back
    # the seeds differ: a forward that mixed them up would give one seed's output to all
    assert not torch.allclose(out[0], out[1])


def test_stacked_forward_refuses_random_draws():
    """A forward that draws (a Gumbel sample) cannot run stacked: vmap's randomness="error" stops it."""
    nets = _nets(2, "method=gdas")
    with pytest.raises(RuntimeError, match="random"):
        StackedForward(nets)([torch.randn(2, 3, 8, 8)] * 2)


# ---------------------------------------------------------------- what stacks
def _composes(method: str) -> bool:
    try:
        return check_search_config(_cfg(Path("unused"), f"method={method}")).flow is None
    except IncompatibleError:
        return False


PLAIN = [m for m in METHODS if _composes(m)]
#: the method configs whose search stacks (first-order bi-level or single-level, a mixer that draws nothing)
STACKABLE = {"darts", "darts_minus", "pc_darts", "sdarts_rs", "sdarts_adv", "ms_darts", "sharp_darts",
             "single_darts"}


def test_stackable_methods_are_the_expected_ones():
    found = {m for m in PLAIN if stack_problem(str(_cfg(Path("unused"), f"method={m}").optimizer.name),
                                               _nets(1, f"method={m}")[0]) is None}
    assert found == STACKABLE
    assert set(STACKED_UPDATES) == {"bilevel", "single_level"}


#: in CI's default run: the plain rule, the single-level rule, an edge part and a mixing override with step
#: hooks that draw; the other stackable methods run under -m slow
FAST_STACKED = {"darts", "single_darts", "pc_darts", "sdarts_rs"}


@pytest.mark.parametrize("method", [m if m in FAST_STACKED or m not in STACKABLE else
                                    pytest.param(m, marks=pytest.mark.slow) for m in PLAIN])
def test_each_stacked_seed_equals_its_solo_run_or_the_method_is_refused(tmp_path, method):
    if method not in STACKABLE:
        with pytest.raises(NasError, match="seeds_mode=stacked cannot stack this search: .*; or run seeds_mode=turns"):
            _group(tmp_path / "group", [0, 1], f"method={method}")
        assert not (tmp_path / "group" / "search").exists() or not any(
            (tmp_path / "group" / "search").rglob("config.yaml"))
        return
    group = _group(tmp_path / "group", [0, 1], f"method={method}")
    assert group["status"] == "ok"
    for seed, run in zip((0, 1), group["runs"]):
        solo_dir = _solo(tmp_path / "solo", seed, f"method={method}")
        group_dir = Path(run["run_dir"])
        assert group_dir.relative_to(tmp_path / "group") == solo_dir.relative_to(tmp_path / "solo")
        assert_close_nested(_outputs(group_dir, tmp_path / "group"), _outputs(solo_dir, tmp_path / "solo"),
                            f"seed {seed}")


@pytest.mark.parametrize("method", ["darts", "pc_darts"])
def test_stacked_nb201_fast_cells_equal_their_solo_runs(tmp_path, method):
    """The default NB201 cells stacked: inside vmap they run their NCHW path (the wide conv, avg_pool2d, the
    plain shuffle), outside it the channels-last one; each seed within the tolerance of its solo run."""
    extra = (f"method={method}", "space.supernet.impl=fast")
    group = _group(tmp_path / "group", [0, 1], *extra)
    for seed, run in zip((0, 1), group["runs"]):
        solo_dir = _solo(tmp_path / "solo", seed, *extra)
        assert_close_nested(_outputs(Path(run["run_dir"]), tmp_path / "group"), _outputs(solo_dir, tmp_path / "solo"),
                            f"seed {seed}")


def test_interrupted_stacked_group_resumes_to_the_uninterrupted_group_bit_for_bit(tmp_path, monkeypatch):
    import nascli.search.stacked as stacked

    extra = ("search.checkpoint_every_steps=1",)
    whole = _group(tmp_path / "whole", [0, 1], *extra)
    real, calls = stacked.stacked_step, [0]

    def crashing(*args):
        calls[0] += 1
        if calls[0] == 4:  # epoch 1's second step: both seeds checkpointed after its first
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(stacked, "stacked_step", crashing)
    with pytest.raises(KeyboardInterrupt):
        _group(tmp_path / "cut", [0, 1], *extra)
    monkeypatch.setattr(stacked, "stacked_step", real)
    for run in whole["runs"]:
        cut_dir = tmp_path / "cut" / Path(run["run_dir"]).relative_to(tmp_path / "whole")
        state = torch.load(cut_dir / "checkpoint.pt", weights_only=True)
        assert (state["epoch"], state["step"]) == (1, 1) and not (cut_dir / "result.json").exists()
    resumed = _group(tmp_path / "cut", [0, 1], *extra)
    for a, b in zip(whole["runs"], resumed["runs"]):
        assert_same_nested(_outputs(Path(b["run_dir"]), tmp_path / "cut"), _outputs(Path(a["run_dir"]), tmp_path / "whole"))


# ---------------------------------------------------------------- the mode
def _todo(device: str, *extra: str, base: list[str] = BASE) -> list:
    net = _nets(1, *extra, base=base)[0]
    return [SimpleNamespace(session=SimpleNamespace(supernet=net, device=torch.device(device)))] * 2


@pytest.mark.parametrize("mode,device,impl,expected", [
    ("auto", "cpu", "reference", "turns"),  # oneDNN's grouped convolutions: slower than turns on CPU
    ("auto", "cuda", "reference", "stacked"),
    ("auto", "cuda", "fast", "turns"),  # the DARTS fast cells cannot run under vmap
    ("turns", "cuda", "reference", "turns"),
    ("stacked", "cpu", "reference", "stacked"),
])
def test_group_mode(mode, device, impl, expected):
    cfg = _cfg(Path("unused"), f"seeds_mode={mode}", f"space.supernet.impl={impl}", base=DARTS_BASE)
    assert group_mode(cfg, _todo(device, f"space.supernet.impl={impl}", base=DARTS_BASE)) == expected


def test_nb201_fast_cells_stack():
    """The NB201 fast cells run under vmap (their layout queries answer NCHW there), so auto stacks the
    default NB201 search on CUDA."""
    cfg = _cfg(Path("unused"), "seeds_mode=auto", "space.supernet.impl=fast")
    assert group_mode(cfg, _todo("cuda", "space.supernet.impl=fast")) == "stacked"


def test_one_seed_left_runs_in_turns():
    cfg = _cfg(Path("unused"))
    assert group_mode(cfg, _todo("cuda")[:1]) == "turns"


def test_cli_stacked_with_the_darts_fast_cells_is_one_line_and_writes_nothing(tmp_path):
    proc = nas("search", *DARTS_BASE, "space.supernet.impl=fast", "seeds=[0,1]", f"out_root={tmp_path}",
               check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "set space.supernet.impl=reference" in lines[0], proc.stderr
    assert not any(tmp_path.rglob("config.yaml"))


def test_seeds_mode_is_not_hashed(tmp_path):
    """A seed keeps its solo run directory whichever way its group ran."""
    dirs = {mode: search_run_dir(seed_config(_cfg(tmp_path, f"seeds_mode={mode}"), 0)).path
            for mode in ("auto", "turns", "stacked")}
    assert len(set(dirs.values())) == 1


def test_cli_stacked_group_prints_one_line_with_every_seed(tmp_path):
    proc = nas("search", *BASE, "search.epochs=1", "seeds=[2,0]", f"out_root={tmp_path}")
    line = result_line(proc)
    assert line["status"] == "ok" and line["seeds"] == [2, 0] and [r["seed"] for r in line["runs"]] == [2, 0]
    for run in line["runs"]:
        assert json.loads((Path(run["run_dir"]) / "result.json").read_text()) == run
        assert "seeds_mode: stacked" in (Path(run["run_dir"]) / "config.yaml").read_text()
    assert "seed 2 epoch 1/1" in proc.stderr and "seed 0 epoch 1/1" in proc.stderr


def test_a_diverged_seed_leaves_the_stack_and_the_others_finish(tmp_path, monkeypatch):
    """Seed 1's weights turn NaN after the first step: its next loss is not finite, it stops with result.json
    "diverged" at epoch 0 step 1, and seed 0 finishes with finite weights (the stacked backward keeps the
    seeds' gradients apart), the rest of the epoch stacked alone, then in turns."""
    import nascli.search.stacked as stacked

    real, calls = stacked.stacked_step, [0]

    def poisoning(name, opts, *args):
        real(name, opts, *args)
        calls[0] += 1
        if calls[0] == 1:
            with torch.no_grad():
                opts[1].weights[0].fill_(float("nan"))

    monkeypatch.setattr(stacked, "stacked_step", poisoning)
    group = _group(tmp_path, [0, 1])
    assert group["status"] == "diverged"
    ok, bad = group["runs"]
    assert ok["status"] == "ok" and bad["status"] == "diverged"
    assert (bad["diverged_epoch"], bad["diverged_step"]) == (0, 1)
    assert json.loads((Path(bad["run_dir"]) / "result.json").read_text()) == bad
    state = torch.load(Path(ok["run_dir"]) / "checkpoint.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["supernet"].values() if v.is_floating_point())
    # epoch 0's second step ran stacked with seed 0 alone; epoch 1 ran in turns (one seed left: nothing to stack)
    assert calls[0] == 2
    assert len((Path(ok["run_dir"]) / "metrics.jsonl").read_text().splitlines()) == 2


def test_seeds_out_of_step_after_a_crash_finish_in_turns(tmp_path, monkeypatch):
    """The process dies while seed 0 writes its result after the last epoch, before seed 1 closed that epoch:
    the rerun finds seed 0 done (result only, no step) and seed 1 an epoch behind, so the two no longer stand at
    the same step and seed 1 finishes in turns; each seed keeps exactly its epochs' records."""
    import nascli.search.stacked as stacked

    finish = SearchSession.finish
    monkeypatch.setattr(SearchSession, "finish", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        _group(tmp_path, [0, 1])
    monkeypatch.setattr(SearchSession, "finish", finish)
    monkeypatch.setattr(stacked, "stacked_step", lambda *a: pytest.fail("seeds out of step were stacked"))
    group = _group(tmp_path, [0, 1])
    assert group["status"] == "ok"
    for run in group["runs"]:
        assert len((Path(run["run_dir"]) / "metrics.jsonl").read_text().splitlines()) == 2


# ---------------------------------------------------------------- the composition matrix, stacked
def _matrix_params():
    """Every method x optimizer that composes (tests/test_composition.py's documented refusals left out), on
    NB201 (default cells) and, under -m slow, the DARTS space's reference cells."""
    from test_composition import METHODS as ALL_METHODS, OPTIMIZERS, REFUSED

    out = []
    for method, optimizer in itertools.product(ALL_METHODS, OPTIMIZERS):
        if (method, optimizer) in REFUSED:
            continue
        out.append(pytest.param(method, optimizer, "nb201"))
        out.append(pytest.param(method, optimizer, "darts", marks=pytest.mark.slow))
    return out


@pytest.mark.parametrize("method,optimizer,space", _matrix_params())
def test_every_composition_steps_stacked_or_says_why(method, optimizer, space):
    """One stacked step of two seeds equals each seed's solo step within the tolerance, or stack_problem says
    in one line why this search cannot stack (and it is one of the documented reasons)."""
    from test_composition import _cfg as composition_cfg

    cfg = composition_cfg(method, optimizer, space)
    cfg.search.cutout = 0  # as in BASE: a 16-pixel cutout blanks these 8-pixel images
    if space == "darts":
        cfg.space.supernet.impl = "reference"
    turns = []
    for seed in (0, 1):  # each seed built from its own generators, then stepped in its own turn of them
        seed_everything(seed)
        turn = SeedTurn(seed, cfg, None, session=build_search(cfg, torch.device("cpu")))
        turn.rng = capture_rng_state()
        turns.append(turn)
    problem = stack_problem(optimizer, turns[0].session.supernet)
    if problem is not None:
        assert "\n" not in problem and any(words in problem for words in (
            "has no stacked update", "samples in every forward", "cannot run under torch.func.vmap")), problem
        return
    assert optimizer in STACKED_UPDATES
    solo = []
    for seed in (0, 1):  # the solo runs: one step each (DATA: one step per epoch)
        seed_everything(seed)
        solo.append(build_search(cfg, torch.device("cpu")))
        solo[-1].engine.start_epoch(0)
        solo[-1].engine.run_epoch()
    for t in turns:
        with t.turn():
            t.session.engine.start_epoch(0)
            t.session.engine.open_steps()
    batches = []
    for t in turns:
        with t.turn():
            batches.append(t.session.engine.next_batches())
    stacked_step(optimizer, [t.session.optimizer for t in turns], [b[0] for b in batches], [b[1] for b in batches],
                 [t.turn for t in turns])
    for t, s in zip(turns, solo):
        assert_close_nested(t.session.supernet.state_dict(), s.supernet.state_dict(), f"seed {t.seed}")
