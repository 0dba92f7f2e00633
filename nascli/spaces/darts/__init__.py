"""The DARTS CNN search space (METHODS.md §0.1): ops, genotypes, published cells, discrete networks.

Importing this package registers :class:`~nascli.spaces.darts.space.DartsSpace` as ``"darts"`` in
:data:`nascli.spaces.SPACES`. The weight-sharing supernet lives in ``supernet.py``.
"""
from __future__ import annotations

from nascli.spaces.darts.genotype import DartsArch, parse_genotype
from nascli.spaces.darts.genotypes_published import PUBLISHED, get_published
from nascli.spaces.darts.ops import OPS, PRIMITIVES
from nascli.spaces.darts.space import DartsSpace, darts_edges

__all__ = ["DartsArch", "DartsSpace", "OPS", "PRIMITIVES", "PUBLISHED", "darts_edges", "get_published",
           "parse_genotype"]
