"""Checks that look outside the config, run before anything is written: the output folder, an
``arch=`` JSON file, a ``run=`` directory. Each is registered under the name a schema lists in
``checks`` and raises a one-line :class:`~nascli.errors.NasError`.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from nascli.errors import BadArchError, NasError

MIN_FREE_BYTES = 16 << 20   # an out_root disk with less free space than this is refused up front

# errno values that mean "this folder cannot take our files"; reported in one line, not a traceback
DISK_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EROFS: "the file system is read-only"}
# these also arise when reading (a dataset file, a config): one line only for paths under the output folder
PATH_ERRNOS = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
               errno.ENOTDIR: "a part of the path is a file", errno.EEXIST: "a part of the path is a file"}
WRITE_ERRNOS = {**DISK_ERRNOS, **PATH_ERRNOS}

CHECKS: dict[str, Callable[[DictConfig], None]] = {}


def check(name: str) -> Callable[[Callable[[DictConfig], None]], Callable[[DictConfig], None]]:
    """Register a check under ``name`` (the name a :class:`~nascli.config.schema.Schema` lists)."""
    def register(fn: Callable[[DictConfig], None]) -> Callable[[DictConfig], None]:
        CHECKS[name] = fn
        return fn
    return register


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def writable_folder_problem(path: Path, min_free: int = MIN_FREE_BYTES) -> str | None:
    """Why files cannot be written under ``path`` (which need not exist yet), or None when they can.

    The nearest existing folder on the way must be a folder, must take a probe file (created and
    removed at once; this also catches read-only mounts, where ``os.access`` says yes to root) and
    must have ``min_free`` bytes free. Nothing is created when it does not exist.
    """
    if path.exists() and not path.is_dir():
        return "it is a file, not a folder"
    base = _existing_ancestor(path)
    if not base.is_dir():
        return f"{base} is a file, not a folder"
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".nascli-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = WRITE_ERRNOS.get(exc.errno or 0, exc.strerror or type(exc).__name__)
        return f"{base} is not writable ({reason})"
    free = shutil.disk_usage(base).free
    if free < min_free:
        return f"the disk holding {base} has {free >> 20} MiB free, need at least {min_free >> 20} MiB"
    return None


@check("out_root")
def check_out_root(cfg: DictConfig) -> None:
    """out_root is (or can become) a writable folder with some free space."""
    out_root = str(cfg.out_root)
    problem = writable_folder_problem(Path(out_root).expanduser())
    if problem:
        raise NasError(f"out_root={out_root} cannot hold run folders: {problem}; "
                       "allowed: a writable folder (existing or creatable)")


@check("arch_file")
def check_arch_file(cfg: DictConfig) -> None:
    """An ``arch=<file>.json`` exists, is JSON of the right shape, and names a known space."""
    text = str(cfg.get("arch") or "").strip()
    if not text.endswith(".json"):
        return  # NB201 strings, genotype text and published names are parsed by the command
    path = Path(text).expanduser()
    if not path.is_file():
        raise BadArchError(f"arch={text}: file not found; allowed: an arch.json written by nas search or derive, "
                           "an NB201 string, a DARTS genotype or a published name")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise BadArchError(f"arch={text} is not valid JSON ({reason}); allowed: an arch.json object") from None
    from nascli.spaces import get_space, space_names

    names = space_names()
    if not isinstance(data, dict):
        raise BadArchError(f"arch={text} holds a JSON {type(data).__name__}; allowed: an object with "
                           f"\"space\" ({', '.join(names)}) and the architecture")
    space = data.get("space")
    if space not in names:
        raise BadArchError(f"arch={text} has space={space!r}; allowed: {', '.join(names)}")
    get_space(str(space)).arch_from_json(data)


@check("run_dir")
def check_run_dir(cfg: DictConfig) -> None:
    """``run=`` (when given) is a search run folder we can write the derived arch into."""
    run = cfg.get("run")
    if not run:
        return  # the command says what it needs
    path = Path(str(run)).expanduser()
    if not path.is_dir():
        what = "is a file" if path.exists() else "does not exist"
        raise NasError(f"run={run} {what}; allowed: a search run folder (holding config.yaml and checkpoint.pt)")
    problem = writable_folder_problem(path)
    if problem:
        raise NasError(f"run={run} cannot take the derived arch files: {problem}")


def write_problem(exc: OSError, cfg: DictConfig) -> str | None:
    """The one-line reason for an OSError raised while writing results (naming the folder the command
    writes under: ``run=`` for derive, else ``out_root=``), or None when it is not a write problem."""
    key = "run" if cfg.get("run") else "out_root"
    folder = Path(str(cfg.get(key))).expanduser().resolve()
    reason = DISK_ERRNOS.get(exc.errno or 0)
    if reason is None and exc.filename and Path(os.fsdecode(exc.filename)).resolve().is_relative_to(folder):
        reason = PATH_ERRNOS.get(exc.errno or 0)
    if reason is None:
        return None
    file = f" ({exc.filename})" if exc.filename else ""
    return f"cannot write under {key}={cfg.get(key)}{file}: {reason}; allowed: a writable folder with free space"
