"""``nas derive run=<search run dir> selection=<name>``: re-derive an arch from a saved supernet."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nascli.commands.common import benchmark_truth, console, emit_result, plain, set_threads
from nascli.commands.run import RunDir
from nascli.errors import BadArchError, NasError
from nascli.search.selection import SELECTIONS


def write_selection(run: RunDir, space, ctx, selection_cfg, *, dataset: str, file_name: str,
                    epoch: int) -> tuple[Path, Any, dict | None]:
    """Apply a selection criterion, write its arch.json (+ cell pictures), return (path, arch, benchmark)."""
    opts = dict(plain(selection_cfg))
    name = opts.pop("name")
    result = SELECTIONS.get(name)(ctx, **opts)
    arch = result.arch
    bench = benchmark_truth(space.name, dataset, arch)
    data = arch.to_json()
    data["provenance"] = {"run": str(run.path), "selection": name, "options": opts, "epoch": epoch}
    data["scores"] = result.scores
    data["benchmark"] = bench
    data.update(_surrogate_estimate(space.name, arch))
    path = run.write_json(file_name, data)
    _draw(arch, run.path / "cells" / Path(file_name).stem)
    return path, arch, bench


def _surrogate_estimate(space_name: str, arch) -> dict[str, Any]:
    if space_name != "darts":
        return {}
    try:
        from nascli.spaces.darts.nb301 import nb301_unavailable_note, predict_nb301
    except ImportError:
        return {}
    try:
        pred = predict_nb301(arch)
    except BadArchError as exc:  # e.g. a GDAS pair-rule cell with both inputs from one node
        return {"nb301": None, "nb301_note": f"NB301 surrogate cannot score this cell: {exc}"}
    return {"nb301": pred} if pred is not None else {"nb301": None, "nb301_note": nb301_unavailable_note()}


def _draw(arch, directory: Path) -> None:
    try:
        from nascli.viz import draw_arch
    except ImportError:
        return
    try:
        draw_arch(arch, directory)
    except ImportError as exc:  # matplotlib missing: pictures are optional, say so once
        console.print(f"[yellow]note:[/] no cell pictures ({exc})")


def derive(cfg: DictConfig) -> dict[str, Any]:
    from nascli.commands.search import SearchSession

    set_threads(cfg)
    if not cfg.get("run"):
        raise NasError("derive needs run=<search run directory> (the folder holding config.yaml and checkpoint.pt)")
    run_dir = Path(str(cfg.run))
    if not (run_dir / "config.yaml").exists():
        raise NasError(f"run={run_dir} is not a search run directory: no config.yaml there")
    search_cfg = OmegaConf.load(run_dir / "config.yaml")
    search_cfg.pop("_runtime", None)
    search_cfg.device = cfg.device
    search_cfg.out_root = str(run_dir.parents[4]) if len(run_dir.parents) > 4 else search_cfg.out_root
    with RunDir(run_dir).lock():  # derive writes into the search run directory: own it meanwhile
        session = SearchSession(search_cfg)
        session.run = RunDir(run_dir)
        state = session.run.load_checkpoint(map_location=session.device)
        if state is None:
            raise NasError(f"run={run_dir} has no checkpoint.pt to derive from")
        session.engine.load_state_dict(state)
        name = str(cfg.selection.name)
        path, arch, bench = write_selection(session.run, session.space, session.selection_context(), cfg.selection,
                                            dataset=str(search_cfg.dataset.name), file_name=f"arch_{name}.json",
                                            epoch=int(state["epoch"]))
    console.print(f"[bold]derived[/] ({name}) {arch.to_string()}")
    result = {"status": "ok", "command": "derive", "run_dir": str(run_dir), "selection": name,
              "arch_path": str(path), "arch": arch.to_string(), "space": session.space.name,
              "skip_count": session.space.skip_count(arch), "benchmark": bench}
    emit_result(result)
    return result
