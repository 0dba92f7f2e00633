"""Mixer registry; importing this package registers every mixer."""
from nascli.search.mixers.base import MIXERS, EdgeWeights, Mixer
from nascli.search.mixers import softmax  # noqa: F401  (registers)

__all__ = ["MIXERS", "EdgeWeights", "Mixer"]
from nascli.search.mixers import partial  # noqa: F401,E402  (registers pc_softmax)
from nascli.search.mixers import gumbel  # noqa: F401,E402  (registers gumbel: GDAS)
from nascli.search.mixers import rome  # noqa: F401,E402  (registers rome)
from nascli.search.mixers import dirichlet  # noqa: F401,E402  (registers dirichlet: DrNAS)
from nascli.search.mixers import sparsestmax  # noqa: F401,E402  (registers sparsestmax: SSN / Trilevel NAS)
