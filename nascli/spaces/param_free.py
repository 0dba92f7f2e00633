"""The parameter-free share of a derived architecture: a direct reading of DARTS collapse.

R-DARTS (Zela et al., ICLR'20; METHODS.md 8) reads collapse off the derived cell: a search that collapses
picks parameter-free ops (skip_connect, none, pooling, noise) on most edges. For each cell type c of a space
with parameter-free op names P (``SearchSpace.parameter_free_ops``) and the ops o_1..o_n that ``arch`` chose
in c (``SearchSpace.cell_ops``):

    share_c = |{i : o_i in P}| / n

The search logs it per epoch for the magnitude-derived arch (``param_free_share`` in metrics.jsonl).
The rule goes by op name: a stride-2 skip_connect of a DARTS reduce cell counts although its
FactorizedReduce has weights.
"""
from __future__ import annotations

from nascli.spaces.base import Arch, SearchSpace


def parameter_free_share(space: SearchSpace, arch: Arch) -> dict[str, float]:
    """``{cell_type: share_c}`` (module docstring) of ``arch``, a derived arch of ``space``."""
    free = space.parameter_free_ops
    out: dict[str, float] = {}
    for cell_type, ops in space.cell_ops(arch).items():
        if not ops:
            raise ValueError(f"the {cell_type} cell of this {space.name} arch has no ops")
        out[cell_type] = sum(op in free for op in ops) / len(ops)
    return out
