"""What a logger is told about the run it logs: where, from which epoch, and how to label alphas."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class AlphaLabels:
    """Names for a search's alpha matrices: the op of each column, the skip op, an ``src->dst`` label per edge."""

    ops: tuple[str, ...]
    skip_op: str
    edges: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of_space(cls, space) -> "AlphaLabels":
        """The labels of a :class:`~nascli.spaces.base.SearchSpace` (its ``ops``, ``skip_op`` and edges)."""
        edges = {ct: [f"{e.index}: {e.src}->{e.dst}" for e in space.edges(ct)] for ct in space.cell_types}
        return cls(tuple(space.ops), str(space.skip_op), edges)


@dataclass(frozen=True)
class LogTarget:
    """A run directory to log into; ``start_step`` is the first epoch this process runs (0 unless resumed)."""

    run_dir: Path
    start_step: int = 0
    alphas: AlphaLabels | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", Path(self.run_dir))
