"""Search-optimizer registry; importing this package registers every optimizer."""
from nascli.search.optimizers.base import SEARCH_OPTIMIZERS, SearchOptimizer, cosine_lr
from nascli.search.optimizers import bilevel, single_level  # noqa: F401  (registers)
from nascli.search.optimizers import multipath  # noqa: F401,E402  (registers multipath: ROME K-path accumulation)
from nascli.search.optimizers import rarts  # noqa: F401,E402  (registers rarts: the relaxed two-network scheme)

__all__ = ["SEARCH_OPTIMIZERS", "SearchOptimizer", "cosine_lr"]
