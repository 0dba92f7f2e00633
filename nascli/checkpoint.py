"""Checkpoint files: versioned, tensors-and-plain-data only, loaded without running any code.

A checkpoint is a dict written by ``torch.save`` whose ``format`` key names who wrote it and which
version of its layout it follows (:data:`FORMATS`). Reading uses ``torch.load(weights_only=True)``:
the unpickler only builds tensors, containers and plain values, so a file that references any
Python callable (a crafted pickle) is refused before anything in it runs. Every refusal is a
:class:`~nascli.errors.CheckpointError` whose one line names the file and what to do.
"""
from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from nascli.errors import CheckpointError

SEARCH_FORMAT = "nascli.search/2"  # SearchEngine.state_dict (+ the session's elapsed time)
TRAIN_FORMAT = "nascli.train/2"  # train_network's resumable state
RL_FORMAT = "nascli.rl/1"  # an RL search or evaluation: agent, environments, RNGs (nascli/rl/driver.py)
FORMATS = (SEARCH_FORMAT, TRAIN_FORMAT, RL_FORMAT)

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_ADVICE = "move it away to restart this run from scratch"


def checkpoint_bytes(state: dict[str, Any]) -> bytes:
    """``torch.save`` bytes of ``state``, which must carry one of our ``format`` keys."""
    if state.get("format") not in FORMATS:
        raise ValueError(f"checkpoint state needs a format key in {FORMATS}, got {state.get('format')!r}")
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _refusal(exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in a few words."""
    found = _GLOBAL.search(str(exc))
    if found:
        return f"it references Python code ({found.group(1).rstrip('.,')}), so it is not a nascli checkpoint; " \
               "refused without running anything in it"
    return "not a checkpoint written by nascli (unreadable or truncated)"


def load_checkpoint_file(path: Path, map_location: Any = None, expect: str | None = None) -> dict[str, Any]:
    """The state in ``path``, refusing anything that is not one of our checkpoints.

    Rules: the file must unpickle under ``weights_only=True`` (tensors and plain data only) into a
    dict whose ``format`` is in :data:`FORMATS`, and equals ``expect`` when that is given.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of foreign files
            state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - every unpickling failure is the same user-facing problem
        raise CheckpointError(f"cannot read checkpoint {path}: {_refusal(exc)}; {_ADVICE}") from None
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt is None:
        raise CheckpointError(f"cannot read checkpoint {path}: no nascli format version in it "
                              f"(not ours, or written by an older nascli); {_ADVICE}")
    wanted = (expect,) if expect else FORMATS
    if fmt not in wanted:
        raise CheckpointError(f"cannot read checkpoint {path}: its format is {fmt!r}, this nascli reads "
                              f"{' or '.join(repr(f) for f in wanted)}; {_ADVICE}")
    return state
