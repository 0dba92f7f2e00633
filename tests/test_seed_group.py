"""``nas search 'seeds=[...]'`` (nascli/commands/seed_group.py): several seeds in one process, each equal to
its solo run bit for bit on CPU.

The equality test is generated from the method configs (conf/method/*.yaml): every method that runs the
plain search loop on NB201 gives, for seeds 0 and 1 run as a group, the same metrics (timing fields aside),
checkpoint, arch.json and result as the two solo runs. GDAS (Gumbel samples from the global generator)
is the case the generator swap exists for; the negative control shows the test fails without it.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nascli.commands.search import SearchSession, search_run_dir
from nascli.commands.seed_group import SeedTurn, run_seed_group, seed_config
from nascli.errors import IncompatibleError
from nascli.paths import CONF_DIR
from nascli.search.composition import check_search_config
from helpers import assert_same_nested, compose_cfg, nas, result_line

METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
BASE = ["space.supernet.C=4", "space.supernet.N=1", "dataset.num_train=64", "dataset.num_test=32",
        "dataset.image_size=8", "search.batch_size=8", "search.epochs=2", "search.max_steps_per_epoch=2",
        "num_threads=1", "optimizer.arch_start_epoch=0",
        "++optimizer.warmup_epochs=0"]  # nor an lr warm-up (method=sharp_darts: 5 epochs, longer than this run)
TIMING = {"epoch_time_s", "images_per_s", "wall_time_s", "peak_memory_mb", "search_time_s"}


def _cfg(out: Path, *extra: str):
    return compose_cfg("search", [*BASE, f"out_root={out}", *extra])


def _untimed(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING}


def _run_outputs(run_dir: Path, out_root: Path) -> dict:
    """Everything a run wrote that must not depend on grouping: metrics and result without timings,
    arch.json, config.yaml (paths relative to ``out_root``), and the checkpoint without its wall time."""
    def text(name: str) -> str:
        return (run_dir / name).read_text().replace(str(out_root), "<out_root>")

    metrics = [_untimed(json.loads(line)) for line in text("metrics.jsonl").splitlines()]
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    checkpoint.pop("elapsed")
    return {"metrics": metrics, "result": _untimed(json.loads(text("result.json"))),
            "arch": json.loads(text("arch.json")), "config": text("config.yaml"), "checkpoint": checkpoint}


def _solo(out: Path, seed: int, *extra: str) -> Path:
    cfg = seed_config(_cfg(out, *extra), seed)
    session = SearchSession(cfg, search_run_dir(cfg))
    session.execute()
    return session.run.path


def _group(out: Path, seeds: list[int], *extra: str) -> dict:
    cfg = _cfg(out, f"seeds={seeds}".replace(" ", ""), *extra)
    return run_seed_group(cfg, check_search_config(cfg), seeds)


def _assert_group_equals_solo(tmp_path: Path, *extra: str, seeds=(0, 1)) -> None:
    group = _group(tmp_path / "group", list(seeds), *extra)
    assert group["status"] == "ok" and group["seeds"] == list(seeds)
    for seed, run in zip(seeds, group["runs"]):
        solo_dir = _solo(tmp_path / "solo", seed, *extra)
        group_dir = Path(run["run_dir"])
        # the same run directory below out_root as the solo run: each seed runs its solo config (seeds null)
        assert group_dir.relative_to(tmp_path / "group") == solo_dir.relative_to(tmp_path / "solo")
        assert run["seed"] == seed
        assert_same_nested(_run_outputs(group_dir, tmp_path / "group"), _run_outputs(solo_dir, tmp_path / "solo"),
                           f"seed {seed}")


def _plain_loop(method: str) -> bool:
    """Whether ``method`` composes on NB201 classification and runs the plain search loop."""
    cfg = _cfg(Path("unused"), f"method={method}")
    try:
        composition = check_search_config(cfg)
    except IncompatibleError:
        return False
    return composition.flow is None


GROUPABLE = [m for m in METHODS if _plain_loop(m)]


def test_groupable_methods_cover_the_registry():
    """Every method but the flow method (GM-NAS) and methods of other tasks is in the equality matrix."""
    assert {"darts", "darts_minus", "gdas", "rome", "drnas", "sdarts_rs", "sdarts_adv", "ms_darts", "daas",
            "pc_darts", "single_darts", "sharp_darts"} <= set(GROUPABLE)
    assert "gm_nas" not in GROUPABLE


@pytest.mark.parametrize("method", GROUPABLE)
def test_each_seed_of_a_group_equals_its_solo_run(tmp_path, method):
    _assert_group_equals_solo(tmp_path, f"method={method}")


def test_second_order_and_hessian_diagnostics_equal_solo(tmp_path):
    """The unrolled optimizer (four passes, BN statistics restored) and the per-epoch Hessian eigenvalue
    (forked generators) inside a group."""
    _assert_group_equals_solo(tmp_path, "optimizer=bilevel_2nd", "diagnostics.hessian_every=1")


def test_without_the_generator_swap_gdas_seeds_differ_from_solo(tmp_path, monkeypatch):
    """Negative control: when the seeds share the global generator (no swap between turns), GDAS's Gumbel
    samples of seed 0 come from a stream seed 1 also draws from, and the equality test fails."""
    import contextlib

    monkeypatch.setattr(SeedTurn, "turn", lambda self: contextlib.nullcontext())
    with pytest.raises(AssertionError):
        _assert_group_equals_solo(tmp_path, "method=gdas")


def test_interrupted_group_resumes_to_the_solo_results(tmp_path, monkeypatch):
    """A crash in seed 1's second epoch (after a mid-epoch checkpoint); rerunning the group reports seed 0 as
    finished, resumes seed 1 from its checkpoint, and both equal their solo runs."""
    from nascli.search.optimizers.base import SearchOptimizer

    extra = ("method=gdas", "search.checkpoint_every_steps=1")
    step, calls = SearchOptimizer.step, [0]

    def crashing(self, *args):
        calls[0] += 1
        if calls[0] == 8:  # seed 0 epoch 0 (steps 1-2), seed 1 epoch 0 (3-4), seed 0 epoch 1 (5-6), seed 1 epoch 1
            raise KeyboardInterrupt
        return step(self, *args)

    monkeypatch.setattr(SearchOptimizer, "step", crashing)
    with pytest.raises(KeyboardInterrupt):
        _group(tmp_path / "group", [0, 1], *extra)
    monkeypatch.setattr(SearchOptimizer, "step", step)
    runs = tmp_path / "group" / "search" / "nb201-synthetic" / "gdas"
    (hash_dir,) = runs.iterdir()
    assert (hash_dir / "seed=0" / "result.json").exists() and not (hash_dir / "seed=1" / "result.json").exists()
    state = torch.load(hash_dir / "seed=1" / "checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == (1, 1)
    _assert_group_equals_solo(tmp_path, *extra)


def test_a_finished_seed_is_reported_not_redone(tmp_path):
    solo_dir = _solo(tmp_path / "group", 1)
    before = (solo_dir / "result.json").read_text()
    group = _group(tmp_path / "group", [0, 1])
    assert [r["seed"] for r in group["runs"]] == [0, 1]
    assert (solo_dir / "result.json").read_text() == before
    assert group["runs"][1] == json.loads(before)


def test_cli_group_prints_one_line_with_every_seed(tmp_path):
    proc = nas("search", *BASE, "search.epochs=1", "seeds=[2,0]", f"out_root={tmp_path}")
    line = result_line(proc)
    assert line["status"] == "ok" and line["seeds"] == [2, 0]
    assert [r["seed"] for r in line["runs"]] == [2, 0]
    for run in line["runs"]:
        assert Path(run["run_dir"]).name == f"seed={run['seed']}" and (Path(run["run_dir"]) / "result.json").exists()
    assert "seed 2 epoch 1/1" in proc.stderr and "seed 0 epoch 1/1" in proc.stderr


@pytest.mark.parametrize("value,words", [
    ("seeds=[1,0,1]", "seeds=[1, 0, 1] repeats seed 1"),
    ("seeds=[]", "seeds"),
    ("seeds=3", "write seeds=[3]"),
    ("seeds=[a]", "seeds"),
])
def test_bad_seed_lists_are_one_line(tmp_path, value, words):
    proc = nas("search", *BASE, value, f"out_root={tmp_path}", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert not (tmp_path / "search").exists()


def test_gm_nas_group_is_refused_naming_the_alternative(tmp_path):
    proc = nas("search", *BASE, "method=gm_nas", "method.flow.split_epochs=[1]", "seeds=[0,1]",
               f"out_root={tmp_path}", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "own search flow" in proc.stderr and "nas search -m seed=0,1" in proc.stderr
    assert not (tmp_path / "search").exists()


def test_multirun_of_groups_lists_every_seed_in_the_manifest(tmp_path):
    """`nas search -m method=darts,gdas 'seeds=[0,1]'`: two jobs, each a seed group; runs.jsonl (what
    `nas benchmark mode=aggregate` reads) has one line per seed with that seed's run directory."""
    nas("search", "-m", "method=darts,gdas", "seeds=[0,1]", *BASE, "search.epochs=1", f"out_root={tmp_path}")
    lines = [json.loads(x) for x in (tmp_path / "multirun" / "runs.jsonl").read_text().splitlines()]
    assert sorted((x["method"], x["seed"], x["status"]) for x in lines) == [
        ("darts", 0, "ok"), ("darts", 1, "ok"), ("gdas", 0, "ok"), ("gdas", 1, "ok")]
    for x in lines:
        assert Path(x["run_dir"]).name == f"seed={x['seed']}"
        assert json.loads((Path(x["run_dir"]) / "result.json").read_text())["seed"] == x["seed"]
