"""Python entry points over the same code path as the ``nas`` CLI (docs/API.md).

``nascli.api.search(method="darts", space="nb201", overrides=["search.epochs=2"])`` does what
``nas search method=darts space=nb201 search.epochs=2`` does, step for step: the CLI's checks of the command
line (:func:`nascli.cli.prepare_overrides`, :func:`nascli.cli.compose_arch_space`,
:func:`nascli.config.preflight`), Hydra's compose API on the package configs (:mod:`nascli.compose_api`), the
schema check (:func:`nascli.config.validate_config`) and the command's own function. So the run directory,
its artifacts and result.json are the ones the CLI writes (a finished run is found, not redone), and a bad
value raises the :class:`~nascli.errors.NasError` whose line the CLI would print.

Keyword arguments become overrides first (``space="darts"`` -> ``space=darts``; True/False/None ->
true/false/null; lists -> ``[a,b]``), then ``overrides`` follow, so a later override wins as on the CLI.
One job per call: sweeps (``-m``) and Hydra flags stay on the CLI.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nascli.errors import NasError


@dataclass(frozen=True)
class RunResult:
    """What one command returned (its result.json dict) and the run directory it wrote."""

    result: dict[str, Any]
    run_dir: Path | None

    @property
    def status(self) -> str:
        return str(self.result.get("status"))

    @property
    def arch(self) -> str | None:
        return self.result.get("arch")

    def __getitem__(self, key: str) -> Any:
        return self.result[key]

    def summary(self) -> dict[str, Any]:
        """The ``nas show`` summary of the run directory (:func:`nascli.commands.show.summarize`)."""
        from nascli.commands.show import summarize

        if self.run_dir is None:
            raise NasError("this result names no run directory")
        return summarize(self.run_dir)


def override_text(key: str, value: Any) -> str:
    """``key=value`` as typed on a command line (booleans/None in YAML spelling, lists in brackets)."""
    def text(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if v is None:
            return "null"
        if isinstance(v, (list, tuple)):
            return "[" + ",".join(text(x) for x in v) + "]"
        return str(v)
    return f"{key}={text(value)}"


def command_line(command: str, overrides: list[str], axes: dict[str, Any]) -> list[str]:
    """The checked overrides the CLI would hand Hydra for ``nas <command> <axes> <overrides>``."""
    from nascli.cli import COMMANDS, compose_arch_space, prepare_overrides
    from nascli.config import preflight

    if command not in COMMANDS:
        raise NasError(f"unknown command {command!r}; valid commands: {', '.join(COMMANDS)}")
    args = [*(override_text(k, v) for k, v in axes.items()), *map(str, overrides)]
    flags = [a for a in args if a.startswith("-")]
    if flags:
        raise NasError(f"{flags[0]} is a command-line flag; the Python API runs one job per call (use the nas CLI "
                       "for -m sweeps, --cfg and --help)")
    return preflight(command, compose_arch_space(command, prepare_overrides(args)))


def run(command: str, overrides: list[str] | tuple[str, ...] = (), **axes: Any) -> RunResult:
    """Run ``nas <command>`` in this process (module docstring) and return its result and run directory."""
    import nascli.launch  # noqa: F401  (the ${nas.*} resolvers, as the CLI registers them)
    from nascli.cli import COMMANDS, _load
    from nascli.compose_api import fresh_compose
    from nascli.config import validate_config

    args = command_line(command, list(overrides), axes)
    with fresh_compose() as compose:
        cfg = compose(command, overrides=args)
    validate_config(command, cfg)
    result = _load(COMMANDS[command][0])(cfg)
    run_dir = (result.get("run_dir") or result.get("benchmark_dir")) if isinstance(result, dict) else None
    return RunResult(result=result if isinstance(result, dict) else {}, run_dir=Path(run_dir) if run_dir else None)


def search(overrides: list[str] | tuple[str, ...] = (), **axes: Any) -> RunResult:
    """``nas search``: ``search(method="darts_minus", space="nb201", dataset="cifar10", seed=0)``."""
    return run("search", overrides, **axes)


def derive(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = (), **axes: Any) -> RunResult:
    """``nas derive run=<run_dir>``: ``derive(result.run_dir, selection="ostr")``."""
    return run("derive", overrides, run=str(run_dir), **axes)


def evaluate(arch: str | Path, overrides: list[str] | tuple[str, ...] = (), **axes: Any) -> RunResult:
    """``nas evaluate arch=<arch.json | NB201 string | genotype>``: ``evaluate(found["arch_path"], protocol="quick")``."""
    return run("evaluate", overrides, arch=str(arch), **axes)


def benchmark(overrides: list[str] | tuple[str, ...] = (), **axes: Any) -> RunResult:
    """``nas benchmark``: ``benchmark(methods=["darts", "darts_minus"], seeds=[0, 1], dataset="fashion_mnist")``;
    ``run_dir`` is the study folder (``benchmark_dir``: report.json, report.md, plots)."""
    return run("benchmark", overrides, **axes)
