"""Config values as plain Python data (the one conversion every layer uses)."""
from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf


def plain(node: Any) -> Any:
    """An OmegaConf node as plain, resolved Python data; anything else unchanged."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
