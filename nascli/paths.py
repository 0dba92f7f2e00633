"""Where the Hydra configuration lives: ``nascli/conf`` (package data, so an installed wheel finds it)."""
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent / "conf"
