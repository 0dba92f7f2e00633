"""nascli: differentiable architecture search from the command line (``nas``) and from Python.

The Python entry points are in :mod:`nascli.api` (``from nascli import api; api.search(method="darts")``,
docs/API.md). They are not re-exported here: ``nascli.search`` is the search layer's package.
"""
