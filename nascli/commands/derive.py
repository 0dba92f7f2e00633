"""``nas derive run=<search run dir> selection=<name>``: re-derive an arch from a saved supernet."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nascli.commands.artifacts import write_selection
from nascli.commands.common import console, emit_result, set_threads
from nascli.commands.run import RunDir
from nascli.device import resolve_device
from nascli.errors import NasError
from nascli.search.builder import load_supernet
from nascli.search.few_shot.derive import is_few_shot_run, leaf_setup
from nascli.tasks import task_of


def derive(cfg: DictConfig) -> dict[str, Any]:
    set_threads(cfg)
    if not cfg.get("run"):
        raise NasError("derive needs run=<search run directory> (the folder holding config.yaml and checkpoint.pt)")
    run_dir = Path(str(cfg.run))
    if not (run_dir / "config.yaml").exists():
        raise NasError(f"run={run_dir} is not a search run directory: no config.yaml there")
    search_cfg = OmegaConf.load(run_dir / "config.yaml")
    search_cfg.pop("_runtime", None)
    search_cfg.device = cfg.device
    search_cfg.selection = cfg.selection  # the composition rules check this derivation's criterion (task x selection)
    run = RunDir(run_dir)
    device = resolve_device(cfg.device)
    with run.lock():  # derive writes into the search run directory: own it meanwhile
        if is_few_shot_run(run_dir):  # GM-NAS: the winning leaf's supernet, inside its sub-space
            setup = leaf_setup(search_cfg, run_dir, cfg.selection, device)
            epoch = setup.epoch
        else:
            state = run.load_checkpoint(map_location=device)
            if state is None:
                raise NasError(f"run={run_dir} has no checkpoint.pt to derive from")
            driver = task_of(search_cfg).driver()  # a task with its own loops (RL) restores its own search
            setup, epoch = (driver.load_search(search_cfg, state, device) if driver is not None
                            else (load_supernet(search_cfg, state, device), int(state["epoch"])))
        name = str(cfg.selection.name)
        path, arch, bench = write_selection(run, setup.space, setup.selection_context(), cfg.selection,
                                            dataset=str(search_cfg.dataset.name), file_name=f"arch_{name}.json",
                                            epoch=epoch)
    console.print(f"[bold]derived[/] ({name}) {arch.to_string()}")
    result = {"status": "ok", "command": "derive", "run_dir": str(run_dir), "selection": name,
              "arch_path": str(path), "arch": arch.to_string(), "space": setup.space.name,
              "skip_count": setup.space.skip_count(arch), "benchmark": bench}
    emit_result(result)
    return result
