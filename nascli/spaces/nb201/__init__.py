"""The NAS-Bench-201 search space (5 ops, 6-edge cell, 15,625 architectures)."""
from nascli.spaces.nb201.arch import NB201_EDGES, NB201_OPS, NB201Arch, parse_nb201
from nascli.spaces.nb201.space import NB201Space

__all__ = ["NB201_EDGES", "NB201_OPS", "NB201Arch", "NB201Space", "parse_nb201"]
