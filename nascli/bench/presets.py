"""Paper presets as study entries: ``nas benchmark methods=[paper/darts_c10_pc_darts]``.

A paper preset (``conf/experiment/paper/<name>.yaml``, docs/PAPERS.md) selects its space, dataset, method,
optimizer and selection in its defaults list (``override /method: pc_darts``) and sets the paper's values.
In a study, the entry ``paper/<name>`` is that preset's method searched with ``experiment=paper/<name>``
added to its overrides, so every value the preset sets reaches the search; the study's own ``space=`` must
be the preset's (a DARTS-space preset searched on NB201 would not be the paper's run).
"""
from __future__ import annotations

from omegaconf import OmegaConf

from nascli.errors import NasError
from nascli.paths import CONF_DIR

PRESET_PREFIX = "paper/"
PRESET_DIR = CONF_DIR / "experiment" / "paper"


def is_preset(label: str) -> bool:
    """Whether a study entry names a paper preset (``paper/<name>``)."""
    return label.startswith(PRESET_PREFIX)


def preset_names() -> list[str]:
    """Every paper preset, as a study entry (``paper/<name>``)."""
    return sorted(f"{PRESET_PREFIX}{p.stem}" for p in PRESET_DIR.glob("*.yaml"))


def preset_groups(label: str) -> dict[str, str]:
    """The group choices of preset ``label`` (``{'space': 'darts', 'method': 'pc_darts', ...}``); an unknown
    preset is a one-line error naming the valid ones."""
    path = PRESET_DIR / f"{label.removeprefix(PRESET_PREFIX)}.yaml"
    if not path.is_file():
        raise NasError(f"unknown paper preset {label!r}; valid: {', '.join(preset_names())}")
    out = {}
    for entry in OmegaConf.to_container(OmegaConf.load(path)).get("defaults") or []:
        if isinstance(entry, dict):
            out.update({str(k).removeprefix("override").strip().lstrip("/"): str(v) for k, v in entry.items()})
    return out


def preset_entry(label: str, space: str) -> tuple[str, list[str]]:
    """(conf/method name, search overrides) of study entry ``paper/<name>`` on ``space``."""
    groups = preset_groups(label)
    if "method" not in groups:
        raise NasError(f"paper preset {label!r} selects no method (override /method: ...)")
    if groups.get("space", space) != space:
        raise NasError(f"{label} is a {groups['space']}-space preset; run it with space={groups['space']} "
                       f"(the study has space={space})")
    return groups["method"], [f"experiment={label}"]
