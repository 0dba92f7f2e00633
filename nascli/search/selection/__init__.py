"""Selection-criterion registry; importing this package registers every criterion."""
from nascli.search.selection.base import SELECTIONS, SelectionContext, SelectionResult
from nascli.search.selection import magnitude  # noqa: F401  (registers)
from nascli.search.selection import ostr, perturbation  # noqa: F401  (registers)

__all__ = ["SELECTIONS", "SelectionContext", "SelectionResult"]
