"""``nas <command> [hydra overrides]``: a thin dispatcher over one Hydra primary config per command.

Everything after the command goes to Hydra unchanged, so ``--help``, ``--cfg job`` and ``-m`` work
as Hydra users expect, with two conveniences done before Hydra sees the arguments:
  * ``arch=``, ``run=``, ``policy=``, ``sweep=`` values (NB201 strings, Genotype text, run paths with
    ``seed=N``) are quoted for Hydra's grammar;
  * a config-group choice that does not exist fails with one line naming the valid choices;
  * ``hydra/launcher=<name>`` is checked the same way, and a launcher whose optional plugin is not
    installed fails with one line naming the extra to install (``pip install 'nascli[slurm]'``);
  * under torchrun (WORLD_SIZE > 1) only the commands in ``DISTRIBUTED_COMMANDS`` run.
``nas -sc install=bash`` prints the shell completion script (:mod:`nascli.completion`).
"""
from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from nascli.errors import NasError
from nascli.overrides import quote_value
from nascli.paths import CONF_DIR

COMMANDS: dict[str, tuple[str, str]] = {
    "search": ("nascli.commands.search:search", "train a supernet with a method and derive its architecture"),
    "derive": ("nascli.commands.derive:derive", "re-derive an architecture from a saved search (any selection)"),
    "evaluate": ("nascli.commands.evaluate:evaluate", "train a discrete architecture from scratch (or dry_run)"),
    "benchmark": ("nascli.commands.benchmark:benchmark", "methods x seeds studies with baselines and reports"),
    "show": ("nascli.commands.show:show", "summarize one run folder (format=text|json)"),
}
# `nas <command> <word>` spellings mapped to overrides
ALIASES: dict[tuple[str, str], list[str]] = {("benchmark", "aggregate"): ["mode=aggregate"]}
QUOTED_KEYS = ("arch", "run", "policy", "sweep")  # free text: NB201 strings, paths with "seed=N"
DISTRIBUTED_COMMANDS = ("evaluate",)  # may run under torchrun with WORLD_SIZE > 1 (nascli/distributed.py)
_GROUP_ARG = re.compile(r"^(?:\+\+|\+)?([a-z_]+)=(.*)$")
_LAUNCHER_ARG = re.compile(r"^(?:\+\+|\+)?hydra/launcher=(.*)$")
_SEARCHPATH_ARG = re.compile(r"^(?:\+\+|\+)?hydra\.searchpath=\[?(.*?)\]?$")


def usage() -> str:
    lines = ["usage: nas <command> [hydra overrides] [--help] [--cfg job] [-m]", "", "commands:"]
    lines += [f"  {name:<10} {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "examples:",
              "  nas search +experiment=demo",
              "  nas search method=darts_minus space=nb201 dataset=cifar10 seed=0",
              "  nas derive run=outputs/search/... selection=magnitude",
              "  nas evaluate arch='|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|"
              "nor_conv_3x3~1|nor_conv_3x3~2|' dry_run=true",
              "  nas search -m seed=0,1,2,3",
              "  nas search -m seed=0,1,2,3 hydra/launcher=parallel   (or local, slurm: see docs/CLUSTER.md)",
              "  torchrun --nproc_per_node=4 -m nascli evaluate arch=... protocol=...",
              '  eval "$(nas -sc install=bash)"   (tab completion of commands and overrides)',
              "", "config groups: " + ", ".join(config_groups())]
    return "\n".join(lines)


def config_groups() -> list[str]:
    return sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("hydra",) and not p.name.startswith("_"))


def group_choices(group: str, user_dirs: list[str] = ()) -> list[str]:
    """Choices of a group in the package's configs and in the user's ``hydra.searchpath`` folders; a file in a
    subfolder is chosen by its relative path (``experiment=paper/nb201_darts_v1``) and listed after the others."""
    return sorted({p.relative_to(Path(d) / group).with_suffix("").as_posix()
                   for d in (CONF_DIR, *user_dirs) for p in (Path(d) / group).rglob("*.yaml")},
                  key=lambda name: ("/" in name, name))


def user_conf_dirs(args: list[str]) -> list[str]:
    """The ``file://`` folders of a ``hydra.searchpath=[...]`` override (the user's own config groups)."""
    dirs = []
    for arg in args:
        m = _SEARCHPATH_ARG.match(arg)
        for item in (m.group(1).split(",") if m else []):
            item = item.strip().strip("'\"")
            if item.startswith("file://"):
                dirs.append(item[len("file://"):])
    return dirs


def prepare_overrides(args: list[str]) -> list[str]:
    """Quote arch= values and validate config-group and launcher choices (one-line error on a bad one)."""
    groups = set(config_groups())
    user_dirs = user_conf_dirs(args)
    out = []
    for arg in args:
        m = _GROUP_ARG.match(arg)
        launcher = _LAUNCHER_ARG.match(arg)
        if launcher:
            from nascli.launch import check_launcher
            for choice in launcher.group(1).split(","):
                check_launcher(choice.strip())
        elif m and m.group(1) in QUOTED_KEYS:
            key, value = arg.split("=", 1)
            arg = f"{key}={quote_value(value)}"
        elif m and m.group(1) in groups:
            group, value = m.group(1), m.group(2)
            choices = group_choices(group, user_dirs)
            for choice in value.split(","):
                if choice not in choices:
                    raise NasError(f"unknown {group} {choice!r}; valid choices: {', '.join(choices)}")
        out.append(arg)
    return out


def compose_arch_space(command: str, args: list[str]) -> list[str]:
    """``nas evaluate arch=X`` without ``space=``: add the space X belongs to, so Hydra composes that space and
    the user's ``space.*`` overrides apply to it (instead of being dropped when the arch decides the space)."""
    if command != "evaluate" or any(_GROUP_ARG.match(a) and _GROUP_ARG.match(a).group(1) == "space" for a in args):
        return args
    archs = [a.split("=", 1)[1] for a in args if _GROUP_ARG.match(a) and _GROUP_ARG.match(a).group(1) == "arch"]
    if len(archs) != 1 or "," in archs[0] and archs[0][:1] not in "'\"":
        return args  # no arch, or a sweep over several: evaluate decides per job
    from nascli.spaces.lookup import arch_space_name
    text = archs[0]
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return [f"space={arch_space_name(text)}", *args]


def check_world_size(command: str) -> None:
    """One-line error when a single-device command is started by torchrun with WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1 and command not in DISTRIBUTED_COMMANDS:
        raise NasError(f"nas {command} runs on one device per job (WORLD_SIZE={world} given); scale it through "
                       f"sweeps instead (nas {command} -m seed=0,1,2,3 hydra/launcher=parallel|local|slurm); "
                       f"torchrun supports: {', '.join('nas ' + c for c in DISTRIBUTED_COMMANDS)}")


def _load(target: str) -> Callable:
    module, fn = target.split(":")
    return getattr(importlib.import_module(module), fn)


def _task(command: str):
    fn = _load(COMMANDS[command][0])

    def task(cfg):
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from rich.markup import escape

        from nascli.commands.common import console
        from nascli.config import validate_config
        from nascli.config.checks import write_problem
        try:
            validate_config(command, cfg)  # the schema, before anything is written
            return fn(cfg)
        except OSError as exc:  # a full disk or a folder that turned read-only: one line, no traceback
            problem = write_problem(exc, cfg)
            if problem is None:
                raise
            console.print(f"[bold red]error:[/] {escape(problem)}", soft_wrap=True)
            if HydraConfig.get().mode == RunMode.MULTIRUN:
                return None
            sys.exit(NasError.exit_code)
        except NasError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            if HydraConfig.get().mode == RunMode.MULTIRUN:
                return None  # one bad job does not stop a sweep
            sys.exit(exc.exit_code)

    return task


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return
    command, rest = args[0], args[1:]
    if rest and (command, rest[0]) in ALIASES:
        rest = ALIASES[(command, rest[0])] + rest[1:]
    if command in ("-sc", "--shell-completion"):  # eval "$(nas -sc install=bash)" (nascli/completion.py)
        from nascli.completion import shell_completion
        try:
            shell_completion(rest, list(COMMANDS))
        except NasError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(exc.exit_code)
        return
    if command.startswith("-"):  # `nas --cfg job search`: a flag before the command
        from nascli.config.preflight import misplaced_flag_message
        print(f"error: {misplaced_flag_message(args, list(COMMANDS))}", file=sys.stderr)
        sys.exit(2)
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    try:
        check_world_size(command)
        rest = prepare_overrides(rest)
        rest = compose_arch_space(command, rest)
        from nascli.config import preflight  # flags, keys, sweeps and the schema, before Hydra runs
        rest = preflight(command, rest)
    except NasError as exc:
        if os.environ.get("RANK", "0") == "0":  # one line, not one per torchrun process
            print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    import hydra

    import nascli.launch  # noqa: F401  (registers the ${nas.*} resolvers the launcher presets use)

    sys.argv = [f"nas-{command}"] + rest
    hydra.main(version_base=None, config_path=str(CONF_DIR), config_name=command)(_task(command))()


if __name__ == "__main__":
    main()
