"""nascli works once installed as a wheel: every data file ships inside it, and `nas` runs from an empty
folder with `nascli` imported from the installed wheel, never from this checkout. Also: a user's own
config folder (Hydra search path) adds group choices that `nas` accepts."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from nascli.paths import CONF_DIR

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")


def _data_files() -> set[str]:
    """Every non-Python file of the package, as wheel paths (configs, tables, surrogate files)."""
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "nascli").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel` of a copy of the sources (the checkout itself gets no build/ or egg-info writes)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT / "nascli", src / "nascli", ignore=SKIP)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(tmp / "dist"), str(src)], check=True)
    (whl,) = (tmp / "dist").glob("nascli-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel; its dependencies (torch, hydra, ...) come from this test
    environment's site-packages through a .pth file, whose own .pth files (the editable nascli) stay off."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.create(env_dir, with_pip=False, symlinks=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    Path(site, "_test_deps.pth").write_text("".join(f"{d}\n" for d in deps))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", "--disable-pip-version-check", str(wheel)], check=True, env=_clean_env())
    return env_dir


def _nas(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(installed / "bin" / "nas"), *args], cwd=cwd, env=_clean_env(),
                          capture_output=True, text=True, timeout=600)


def test_wheel_holds_every_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = _data_files()
    assert {n for n in expected if n.startswith("nascli/conf/") and n.endswith(".yaml")}  # the configs exist
    assert sorted(expected - names) == []


def test_installed_nascli_is_the_wheel(installed, tmp_path):
    out = subprocess.run([str(installed / "bin" / "python"), "-c", "import nascli; print(nascli.__file__)"],
                         cwd=tmp_path, env=_clean_env(), check=True, capture_output=True, text=True).stdout
    assert Path(out.strip()).resolve().is_relative_to(installed.resolve())


def test_demo_search_from_an_empty_folder(installed, tmp_path):
    cwd = tmp_path / "empty"
    cwd.mkdir()
    help_ = _nas(installed, cwd, "--help")
    assert help_.returncode == 0, help_.stderr
    assert "usage: nas" in help_.stdout and "config groups: dataset" in help_.stdout

    out_root = tmp_path / "out"
    run = _nas(installed, cwd, "search", "+experiment=demo", "search.epochs=1", f"out_root={out_root}")
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert len(lines) == 1, run.stdout
    result = json.loads(lines[0])
    assert result["status"] == "ok" and result["epochs"] == 1
    assert Path(result["run_dir"]).is_relative_to(out_root)
    assert list(cwd.iterdir()) == []  # nothing written into the working folder


def test_user_config_folder_on_the_search_path(installed, tmp_path):
    conf = tmp_path / "my_conf"
    (conf / "experiment").mkdir(parents=True)
    (conf / "experiment" / "tiny.yaml").write_text(
        "# @package _global_\nsearch:\n  epochs: 3\n  max_steps_per_epoch: 2\n")
    searchpath = f"hydra.searchpath=[file://{conf}]"

    shown = _nas(installed, tmp_path, "search", searchpath, "+experiment=tiny", "--cfg", "job")
    assert shown.returncode == 0, shown.stderr
    assert "max_steps_per_epoch: 2" in shown.stdout and "epochs: 3" in shown.stdout

    bad = _nas(installed, tmp_path, "search", searchpath, "+experiment=tinyy", "--cfg", "job")
    assert bad.returncode != 0
    shipped = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))  # the package's own presets
    assert f"unknown experiment 'tinyy'; valid choices: {', '.join(sorted([*shipped, 'tiny']))}, paper/" in bad.stderr
