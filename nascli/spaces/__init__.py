"""Search-space registry. Each space module registers itself on import."""
from __future__ import annotations

from nascli.registry import Registry

SPACES: Registry = Registry("space")


def get_space(name: str):
    """The space instance registered under ``name`` (imports the space modules lazily)."""
    _load_all()
    return SPACES.get(name)()


def space_names() -> list[str]:
    """Names of all registered spaces."""
    _load_all()
    return SPACES.names()


def _load_all() -> None:
    import nascli.spaces.nb201  # noqa: F401
    try:
        import nascli.spaces.darts  # noqa: F401
    except ImportError:  # pragma: no cover - only while the DARTS space is being built
        pass
    import nascli.spaces.sisr  # noqa: F401
    import nascli.spaces.conformer  # noqa: F401
