"""Shell completion for ``nas``: ``eval "$(nas -sc install=bash)"`` (zsh: run ``autoload -U bashcompinit &&
bashcompinit`` first).

Hydra's own ``--shell-completion`` cannot be reached through ``nas <command>``: Hydra registers the completion
for the program name it sees (``nas-search``) and reads the whole line as overrides, so ``nas search method=``
would offer nothing. So ``nas`` installs a small bash function of its own that calls ``nas -sc query=bash``
with the shell's ``COMP_LINE``/``COMP_POINT``, and the query answers:

* the first word after ``nas``: the command names;
* any later word: Hydra's completion (``hydra.plugins.completion_plugin.CompletionPlugin``, the engine behind
  ``python app.py -sc query=bash``) over the command's own primary config (``conf/<command>.yaml``): config
  groups and their choices (``method=`` -> ``method=darts ...``), dotted keys (``search.ep`` ->
  ``search.epochs=``), package-internal groups (``_shared``) left out.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable

from nascli.errors import NasError

FLAGS = ("-sc", "--shell-completion")

BASH_SCRIPT = """_nas_completion()
{
    local choices
    choices=$(COMP_POINT=$COMP_POINT COMP_LINE="$COMP_LINE" nas -sc query=bash 2>/dev/null)
    COMPREPLY=($(compgen -o nospace -o default -W "$choices" -- "${COMP_WORDS[COMP_CWORD]}"))
}
COMP_WORDBREAKS=${COMP_WORDBREAKS//=}
complete -o nospace -o default -F _nas_completion nas
"""


def complete_line(line: str, commands: list[str]) -> list[str]:
    """The completions of the command line ``line`` (up to the cursor; module docstring)."""
    words = line.split()
    new_word = not line or line[-1].isspace()
    args = words[1:]  # words[0] is the program (nas)
    if len(args) + (1 if new_word else 0) <= 1:  # completing the command itself
        prefix = "" if new_word or not args else args[0]
        return [c for c in commands if c.startswith(prefix)]
    command = args[0]
    if command not in commands:
        return []
    rest = line.split(command, 1)[1].lstrip()
    return [c for c in hydra_completions(command, rest) if not c.startswith("_")]


def hydra_completions(command: str, line: str) -> list[str]:
    """Hydra's completions of the overrides ``line`` against ``conf/<command>.yaml``."""
    import nascli.launch  # noqa: F401  (the ${nas.*} resolvers the launcher presets use)
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.core_plugins.bash_completion import BashCompletion
    from hydra._internal.utils import create_config_search_path

    from nascli.paths import CONF_DIR

    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(f"file://{CONF_DIR}"))
    return list(BashCompletion(loader)._query(command, line))  # noqa: SLF001 - Hydra's completion engine


def _install(shell: str) -> str:
    return BASH_SCRIPT


def _uninstall(shell: str) -> str:
    return "complete -r nas 2>/dev/null\nunset -f _nas_completion\n"


def _query(shell: str, commands: list[str]) -> str:
    line = os.environ.get("COMP_LINE", "")
    point = os.environ.get("COMP_POINT", "")
    if point.isdigit():
        line = line[: int(point)]
    return " ".join(complete_line(line, commands))


ACTIONS: dict[str, Callable[..., str]] = {"install": _install, "uninstall": _uninstall, "query": _query}
SHELLS = ("bash",)


def shell_completion(args: list[str], commands: list[str]) -> None:
    """``nas -sc install=bash | uninstall=bash | query=bash``: print what the action produces on stdout."""
    if len(args) != 1 or "=" not in args[0]:
        got = " ".join(args) or "nothing"
        raise NasError(f"usage: nas -sc install=bash (also uninstall=bash, query=bash); got {got}")
    action, shell = args[0].split("=", 1)
    if action not in ACTIONS:
        raise NasError(f"unknown shell-completion action {action!r}; valid choices: {', '.join(ACTIONS)}")
    if shell not in SHELLS:
        raise NasError(f"unknown shell {shell!r}; valid choices: {', '.join(SHELLS)} (zsh: autoload -U bashcompinit "
                       f"&& bashcompinit, then the bash script)")
    fn = ACTIONS[action]
    sys.stdout.write(fn(shell, commands) if action == "query" else fn(shell))
    if action == "query":
        sys.stdout.write("\n")
    sys.stdout.flush()
