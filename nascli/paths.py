"""Where the Hydra configuration lives (the repository's top-level conf/)."""
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
