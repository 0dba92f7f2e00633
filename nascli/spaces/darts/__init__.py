"""The DARTS CNN search space (METHODS.md §0.1): ops, genotypes, published cells, discrete networks.

Importing this package registers :class:`~nascli.spaces.darts.space.DartsSpace` as ``"darts"`` in
:data:`nascli.spaces.SPACES`, the R-DARTS variants ``darts_s1`` .. ``darts_s4`` (``rdarts.py``) and the sharpDARTS
spaces ``sharp_darts``, ``sharp_darts_choke``, ``sharper_darts`` (``sharp.py``). The
weight-sharing supernet lives in ``supernet.py``.
"""
from __future__ import annotations

from nascli.spaces.darts.genotype import DartsArch, parse_genotype
from nascli.spaces.darts.genotypes_published import PUBLISHED, get_published
from nascli.spaces.darts.ops import OPS, PRIMITIVES
from nascli.spaces.darts.space import DartsSpace, darts_edges
from nascli.spaces.darts.rdarts import EDGE_OPS, RDARTS_SPACES, ReducedDartsSpace
from nascli.spaces.darts.sharp import SHARP_SPACES, SharpDartsSpace

__all__ = ["DartsArch", "DartsSpace", "EDGE_OPS", "OPS", "PRIMITIVES", "PUBLISHED", "RDARTS_SPACES",
           "ReducedDartsSpace", "SHARP_SPACES", "SharpDartsSpace", "darts_edges", "get_published", "parse_genotype"]
