"""Shell completion: `nas -sc install=bash` installs a function that asks `nas -sc query=bash`, which completes
command names and, through Hydra's completion engine, each command's overrides."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import nas
from nascli.cli import COMMANDS, group_choices
from nascli.completion import complete_line
from nascli.config.validate import user_groups


def test_commands_and_method_names():
    assert complete_line("nas ", list(COMMANDS)) == list(COMMANDS)
    assert complete_line("nas s", list(COMMANDS)) == ["search", "show"]
    methods = complete_line("nas search method=", list(COMMANDS))
    assert methods == [f"method={m}" for m in group_choices("method")]
    assert complete_line("nas search method=darts_m", list(COMMANDS)) == ["method=darts_minus"]
    assert complete_line("nas search search.ep", list(COMMANDS)) == ["search.epochs="]
    assert complete_line("nas search logger=", list(COMMANDS)) == ["logger=auto", "logger=none", "logger=tensorboard"]
    groups = complete_line("nas evaluate ", list(COMMANDS))
    assert {f"{g}=" for g in user_groups("evaluate")} <= set(groups) and not any(c.startswith("_") for c in groups)
    assert complete_line("nas serach ", list(COMMANDS)) == []


def test_query_through_the_cli():
    env = dict(os.environ, COMP_LINE="nas search method=gd", COMP_POINT=str(len("nas search method=gd")))
    proc = subprocess.run([sys.executable, "-m", "nascli", "-sc", "query=bash"], capture_output=True, text=True,
                          env=env, check=True)
    assert proc.stdout.split() == ["method=gdas"]


def test_bad_shell_is_one_line():
    proc = nas("-sc", "install=fish", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == ("error: unknown shell 'fish'; valid choices: bash (zsh: autoload -U bashcompinit "
                                   "&& bashcompinit, then the bash script)")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_installed_function_completes_in_bash(tmp_path):
    """The installed script, run by bash itself: `nas search method=dar<TAB>`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nas").write_text(f"#!/bin/sh\nexec {sys.executable} -m nascli \"$@\"\n")
    (bin_dir / "nas").chmod(0o755)
    script = nas("-sc", "install=bash").stdout
    line = "nas search method=dar"
    test = (f'{script}\nCOMP_LINE="{line}"; COMP_POINT={len(line)}; COMP_WORDS=(nas search method=dar); '
            'COMP_CWORD=2; _nas_completion; printf "%s\\n" "${COMPREPLY[@]}"\n')
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = subprocess.run(["bash", "-c", test], capture_output=True, text=True, env=env, check=True,
                         cwd=Path.cwd()).stdout.split()
    assert out == ["method=darts", "method=darts_minus"]
