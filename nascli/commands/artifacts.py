"""Artifacts the commands write beside a run: a selection's arch json (``nas search`` and ``nas derive``) and
cell pictures (``nas search``, ``nas derive``, ``nas evaluate``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nascli.commands.common import console, plain
from nascli.commands.run import RunDir
from nascli.search.options import construct
from nascli.search.selection import SELECTIONS


def write_selection(run: RunDir, space, ctx, selection_cfg, *, dataset: str, file_name: str,
                    epoch: int) -> tuple[Path, Any, dict | None]:
    """Apply a selection criterion, write its arch json (+ cell pictures), return (path, arch, ground truth).

    The json holds the arch, its provenance (run, selection and options, epoch), the criterion's scores, the
    space's ground truth for ``dataset`` (tabular benchmark) and surrogate estimate, if any."""
    opts = dict(plain(selection_cfg))
    name = opts.pop("name")
    result = construct(SELECTIONS.get(name), opts, "selection", ctx)
    arch = result.arch
    truth = space.ground_truth(arch, dataset)
    data = arch.to_json()
    data["provenance"] = {"run": str(run.path), "selection": name, "options": opts, "epoch": epoch}
    data["scores"] = result.scores
    data["benchmark"] = truth
    data.update(surrogate_estimate(space, arch))
    path = run.write_json(file_name, data)
    draw_cells(space, arch, run.path / "cells" / Path(file_name).stem)
    return path, arch, truth


def surrogate_estimate(space, arch) -> dict[str, Any]:
    """The space's surrogate keys; {} when its optional runtime cannot even be imported."""
    try:
        return space.surrogate_estimate(arch)
    except ImportError:
        return {}


def draw_cells(space, arch, directory: Path) -> list[Path]:
    """The space's cell pictures; pictures are optional, so a missing matplotlib is one note, not an error."""
    try:
        return space.draw(arch, directory)
    except ImportError as exc:
        console.print(f"[yellow]note:[/] no cell pictures ({exc})")
        return []
