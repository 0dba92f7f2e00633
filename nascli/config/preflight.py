"""Check a command line before Hydra sees it, so every mistake is one line and nothing is written.

``nas <command> [flags] [overrides]`` is checked in this order:

1. presets: ``+experiment=demo`` is spelled ``experiment=demo`` (the group is in the defaults list of
   ``search.yaml``, so both spellings work);
2. flags: only Hydra's own flags are allowed (``--cfg job|hydra|all``, ``-m``, ``--help``...); a stray
   ``--epochs 3`` gets the key=value spelling of the nearest key, a bare word gets ``key=word``;
3. overrides are parsed by Hydra's own parser; a sweep (``seed=0,1``) needs ``-m``;
4. each override key must exist in the config composed from the chosen groups (``search.epochz=3``:
   one line with the nearest valid key), and each group must belong to the command;
5. the composed config (for ``-m``: with every value of every sweep) is checked against the schema
   (:mod:`nascli.config.validate`), including the output folder and ``arch=`` files.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nascli.compose_api import fresh_compose
from nascli.config.schema import SCHEMAS
from nascli.config.validate import (
    ConfigError,
    user_groups,
    config_keys,
    nearest,
    unknown_key_message,
    validate_config,
    validate_value,
)
from nascli.errors import NasError
from nascli.paths import CONF_DIR

PRESET_GROUPS = ("experiment",)   # `+experiment=x` and `experiment=x` mean the same
OUTSIDE_KEYS = ("out_root", "arch", "run")   # keys the file-system checks read (nascli.config.checks)


@dataclass(frozen=True)
class FlagSpec:
    """One of Hydra's command-line flags: how many values it takes and which are allowed."""

    values: int = 0                      # 0: a switch, 1: takes the next token
    choices: tuple[str, ...] = ()
    optional: bool = False               # the value may be left out (``--info``)
    shows_only: bool = False             # prints something instead of running: no value checks


_CFG = FlagSpec(values=1, choices=("job", "hydra", "all"), shows_only=True)
_INFO = FlagSpec(values=1, choices=("all", "config", "defaults", "defaults-tree", "plugins", "searchpath"),
                 optional=True, shows_only=True)
_SHOW = FlagSpec(shows_only=True)
HYDRA_FLAGS: dict[str, FlagSpec] = {
    "--help": _SHOW, "-h": _SHOW, "--hydra-help": _SHOW, "--version": _SHOW,
    "--cfg": _CFG, "-c": _CFG, "--resolve": FlagSpec(), "--package": FlagSpec(values=1), "-p": FlagSpec(values=1),
    "--run": FlagSpec(), "-r": FlagSpec(), "--multirun": FlagSpec(), "-m": FlagSpec(),
    "--shell-completion": _SHOW, "-sc": _SHOW, "--info": _INFO, "-i": _INFO,
    "--config-path": FlagSpec(values=1), "-cp": FlagSpec(values=1), "--config-name": FlagSpec(values=1),
    "-cn": FlagSpec(values=1), "--config-dir": FlagSpec(values=1), "-cd": FlagSpec(values=1),
    "--experimental-rerun": FlagSpec(values=1),
}
FLAGS_IN_WORDS = "--help, --cfg job|hydra|all, --resolve, -m/--multirun, --info"
MULTIRUN_FLAGS = ("-m", "--multirun")


# ---------------------------------------------------------------------------- config groups
def all_groups(user_dirs: list[str] = ()) -> list[str]:
    """Config group folders under ``conf/`` and the user's ``hydra.searchpath`` folders (without Hydra's
    own and ``_``-prefixed ones)."""
    folders = [CONF_DIR, *(Path(d) for d in user_dirs)]
    return sorted({p.name for f in folders if f.is_dir() for p in f.iterdir()
                   if p.is_dir() and p.name != "hydra" and not p.name.startswith("_")})


def searchpath_dirs(overrides: list[Any]) -> list[str]:
    """The ``file://`` folders of parsed ``hydra.searchpath=[...]`` overrides."""
    dirs = []
    for override in overrides:
        value = override.value()
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.startswith("file://"):
                dirs.append(item[len("file://"):])
    return dirs


def normalise_presets(args: list[str]) -> list[str]:
    """``+experiment=demo`` -> ``experiment=demo`` (the preset group is in the defaults list)."""
    pattern = re.compile(rf"^\+({'|'.join(PRESET_GROUPS)})=")
    return [pattern.sub(r"\1=", a) for a in args]


# ---------------------------------------------------------------------------- flags and words
@dataclass
class CommandLine:
    """The arguments after the command, split into Hydra flags and overrides."""

    flags: list[str]
    overrides: list[str]

    @property
    def multirun(self) -> bool:
        return any(f in MULTIRUN_FLAGS for f in self.flags)

    @property
    def shows_only(self) -> bool:
        return any(HYDRA_FLAGS[f].shows_only for f in self.flags)


def misplaced_flag_message(args: list[str], commands: list[str]) -> str:
    """``nas --cfg job search``: flags belong after the command."""
    flag = args[0]
    command = next((a for a in args if a in commands), "<command>")
    rest = [a for a in args if a != command]
    return (f"flag {flag!r} comes before the command; flags go after it: nas {command} {' '.join(rest)}; "
            f"commands: {', '.join(commands)}")


def _hint_for_word(word: str, value: str | None, keys: list[str], groups: list[str]) -> str:
    """The key=value spelling closest to a stray ``--word value`` or bare ``word``."""
    name = word.lstrip("-").replace("-", "_")
    if "=" in name:
        return name
    if value is None:  # a bare word: maybe a group choice (`darts` -> method=darts)
        for group in groups:
            if (CONF_DIR / group / f"{name}.yaml").is_file():
                return f"{group}={name}"
    leaves: dict[str, str] = {}
    for key in sorted(keys, key=lambda k: (k.count("."), k)):
        leaves.setdefault(key.rpartition(".")[2], key)
    for group in groups:
        leaves.setdefault(group, group)
    near = nearest(name, list(leaves)) if name not in keys else name
    if near is None:
        near_full = nearest(name, keys)
        if near_full is None:
            return ""
        key = near_full
    else:
        key = leaves.get(near, near)
    return f"{key}={value if value is not None else '<value>'}"


def split_command_line(command: str, args: list[str], keys: Callable[[], list[str]],
                       groups: list[str]) -> CommandLine:
    """Separate Hydra flags from overrides; one line for an unknown flag, a bad flag value or a bare word."""
    flags: list[str] = []
    overrides: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if arg.startswith("-") and not re.match(r"^-\d", arg):
            spec = HYDRA_FLAGS.get(name)
            nxt = args[i + 1] if i + 1 < len(args) else None
            if spec is None:
                value = inline if eq else (nxt if nxt is not None and "=" not in nxt and not nxt.startswith("-")
                                           else None)
                hint = _hint_for_word(arg if eq else name, None if eq else value, keys(), groups)
                near = f"did you mean {hint}? settings are" if hint else "settings are"
                raise NasError(f"unknown flag {arg!r} for nas {command}; {near} key=value overrides; "
                               f"flags: {FLAGS_IN_WORDS}")
            flags.append(name)
            if spec.values:
                value = inline if eq else nxt
                if spec.optional and not eq and (value is None or value not in spec.choices):
                    i += 1
                    continue
                if value is None or (spec.choices and value not in spec.choices):
                    allowed = "|".join(spec.choices) if spec.choices else "a value"
                    got = "nothing" if value is None else repr(value)
                    raise NasError(f"flag {name} needs {allowed}, got {got}")
                i += 1 if eq else 2
                continue
            i += 1
            continue
        if "=" not in arg and not arg.startswith("~"):
            hint = _hint_for_word(arg, None, keys(), groups)
            near = f"; did you mean {hint}?" if hint else ""
            raise NasError(f"bad argument {arg!r} for nas {command}: overrides are key=value{near}")
        overrides.append(arg)
        i += 1
    return CommandLine(flags, overrides)


# ---------------------------------------------------------------------------- composing
compose_api = fresh_compose  # Hydra's compose API on the package configs (nascli/compose_api.py)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(exc).__name__


def _compose(compose: Callable[..., DictConfig], command: str, overrides: list[str]) -> DictConfig:
    try:
        return compose(command, overrides=overrides)
    except Exception as exc:  # noqa: BLE001 - any composition problem is a bad command line
        raise NasError(f"the overrides do not compose for nas {command}: {_first_line(exc)} "
                       f"(overrides: {' '.join(overrides)})") from None


def _parse(overrides: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed = []
    for arg in overrides:
        try:
            parsed.append(parser.parse_override(arg))
        except HydraException as exc:
            raise NasError(f"cannot read override {arg!r}: {_first_line(exc)}") from None
    return parsed


def _is_hydra(override: Any) -> bool:
    return override.key_or_group == "hydra" or override.key_or_group.startswith(("hydra.", "hydra/"))


class _Skip(Exception):
    """A sweep that cannot be enumerated here (interval, glob): Hydra and the task check it."""


@dataclass
class Job:
    """One set of plain overrides to compose, plus value sweeps checked on the composed config."""

    groups: list[str]                      # group choices (`method=darts`)
    values: list[str]                      # everything else (`seed=0`, `+search.x=1`)
    value_sweeps: list[tuple[Any, list[Any]]]   # (override, its other values)


def plan_jobs(command: str, parsed: list[Any], multirun: bool, groups: list[str]) -> list[Job]:
    """The configs to compose: the first value of every sweep, plus one job per other group choice."""
    own_groups = user_groups(command)
    group_options: list[tuple[int, list[str]]] = []
    first: list[str] = []
    kinds: list[bool] = []
    sweeps: list[tuple[Any, list[Any]]] = []
    for override in parsed:
        key = override.key_or_group
        is_group = key in groups
        if is_group and key not in own_groups and not (override.is_delete() or override.is_add()):
            raise NasError(f"{override.input_line} does not apply to nas {command}; its config groups: "
                           f"{', '.join(own_groups)}")
        if override.is_sweep_override():
            values_text = override.input_line.split("=", 1)[1]
            if not multirun:
                raise NasError(f"{override.input_line} gives several values: add -m for one job per value "
                               f"(nas {command} -m {override.input_line}), or write a list: {key}=[{values_text}]")
            if not override.is_discrete_sweep() or override.value_type.name == "GLOB_CHOICE_SWEEP":
                raise _Skip()
            options = [f"{override.get_key_element()}={v}" for v in override.sweep_string_iterator()]
            if is_group:
                group_options.append((len(first), options[1:]))
            else:
                sweeps.append((override, list(override.sweep_iterator())[1:]))
            first.append(options[0])
        else:
            first.append(override.input_line)
        kinds.append(is_group)

    def job(items: list[str]) -> Job:
        return Job([o for o, g in zip(items, kinds) if g], [o for o, g in zip(items, kinds) if not g], sweeps)

    jobs = [job(first)]
    for index, options in group_options:
        for option in options:
            items = list(first)
            items[index] = option
            jobs.append(job(items))
    return jobs


def check_keys_exist(command: str, base: DictConfig, values: list[Any]) -> None:
    """Changed or deleted keys must exist in the config composed from the groups; ``+`` adds a key that
    is not there yet; ``~`` may not remove a key the schema has a rule for."""
    keys = config_keys(base)
    rules = SCHEMAS[command].rules if command in SCHEMAS else {}
    for override in values:
        key = override.key_or_group
        if override.is_add() and key in keys:
            value = override.input_line.split("=", 1)[1]
            raise ConfigError(f"{override.input_line} adds {key}, which nas {command} already has; "
                              f"change it without +: {key}={value}")
        if override.is_add() or override.is_force_add():
            continue
        if key not in keys:
            raise ConfigError(unknown_key_message(key, keys, command))
        if override.is_delete() and any(k == key or k.startswith(f"{key}.") for k in rules):
            raise ConfigError(f"~{key} removes a setting nas {command} needs; set it instead ({key}=...)")


def check_job(command: str, job: Job, compose: Callable[..., DictConfig], values: bool,
              searchpath: list[str] = ()) -> None:
    """Keys exist, the job composes, and (``values``) its config and every swept value pass the schema.
    ``searchpath``: the user's ``hydra.searchpath`` overrides, given to every composition."""
    base = _compose(compose, command, [*searchpath, *job.groups])
    check_keys_exist(command, base, _parse(job.values))
    cfg = _compose(compose, command, [*searchpath, *job.groups, *job.values])
    if not values:
        return
    validate_config(command, cfg)
    for override, others in job.value_sweeps:
        key = override.key_or_group
        for value in others:
            if key not in OUTSIDE_KEYS:  # `seed=range(0,1000)`: one rule per value, no recomposing
                validate_value(command, key, value)
                continue
            swept = cfg.copy()
            OmegaConf.update(swept, key, value, merge=False, force_add=override.is_add() or override.is_force_add())
            validate_config(command, swept)


def preflight(command: str, args: list[str]) -> list[str]:
    """Check ``nas <command> <args>`` (module docstring) and return the arguments to give Hydra."""
    args = normalise_presets(args)
    with compose_api() as compose:
        base_keys: list[str] = []
        searchpath: list[str] = []

        def keys() -> list[str]:
            if not base_keys:
                base_keys.extend(config_keys(_compose(compose, command, searchpath)))
            return base_keys

        candidates = [a for a in args if "=" in a and not a.startswith("-")]
        user = [o for o in _parse(candidates) if o.key_or_group == "hydra.searchpath"]
        searchpath.extend(o.input_line for o in user)
        groups = all_groups(searchpath_dirs(user))
        line = split_command_line(command, args, keys, groups)
        parsed = [o for o in _parse(line.overrides) if not _is_hydra(o)]
        try:
            jobs = plan_jobs(command, parsed, line.multirun, groups)
        except _Skip:
            return args
        for job in jobs:
            check_job(command, job, compose, values=not line.shows_only, searchpath=searchpath)
    return args
