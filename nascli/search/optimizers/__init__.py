"""Search-optimizer registry; importing this package registers every optimizer."""
from nascli.search.optimizers.base import SEARCH_OPTIMIZERS, SearchOptimizer, cosine_lr
from nascli.search.optimizers import bilevel, single_level  # noqa: F401  (registers)

__all__ = ["SEARCH_OPTIMIZERS", "SearchOptimizer", "cosine_lr"]
