"""Gradient matching (GM-NAS, Hu, Wang et al., ICLR'22; METHODS.md 8): how differently the ops of one edge
pull the supernet's shared weights.

For an undecided edge e and each of its ops o, the edge is set to o alone and the gradient of the training
loss with respect to the shared weights is taken:

    g_o = d L_train(w, alpha | edge e = o) / d w_shared

``hard`` (NB201 code, ``--hard 1``): the edge's weights are one-hot on o (``Mixer.fix_edge``); soft
(DARTS-space code): o keeps its current mixing weight and the edge's other ops get 0 (``Mixer.mask_op``).
The shared weights are the op parameters of every edge of every search cell except edge e in the cells of
e's cell type (``get_split_gradients``: NB201 code iterates ``cell.edges`` except the split edge, the
DARTS-space code ``cell._ops``; the NB201 code also adds the two residual reduction blocks, which a
space-agnostic reading cannot name, so they are left out here). The distance matrix of one minibatch is

    D[i, j] = dist(g_i, g_j)

and the edge's matrix is its mean over ``num_batches`` training minibatches (100 in both codes;
``split_supernet``: ``repeat = 100``). Distances (WS-GM/nasbench201/utils.py ``match_loss``):

* ``cos`` (default): 1 - <g_i, g_j> / (|g_i| |g_j| + 1e-6) on all gradients flattened into one vector;
* ``per_filter_cos``: sum over tensors of dim >= 2 and over their output rows r of
  1 - <g_i[r], g_j[r]> / (|g_i[r]| |g_j[r]| + 1e-6) (1-D tensors add 0);
* ``mse``: |g_i - g_j|^2.

A parameter without a gradient for some op (e.g. one that op does not reach) counts as a zero gradient, so
every op's vector has the same length.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from nascli.errors import IncompatibleError
from nascli.registry import Registry

EPS = 1e-6  # match_loss's denominator guard

Grads = Sequence[torch.Tensor]
DISTANCES: Registry[Callable[[Grads, Grads], torch.Tensor]] = Registry("gm_nas distance")


def _flat(grads: Grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1).double() for g in grads])


@DISTANCES.register("cos")
def cosine_distance(a: Grads, b: Grads) -> torch.Tensor:
    """1 - <a, b> / (|a| |b| + 1e-6) on the flattened, concatenated gradients."""
    x, y = _flat(a), _flat(b)
    return 1 - (x * y).sum() / (x.norm() * y.norm() + EPS)


@DISTANCES.register("per_filter_cos")
def per_filter_cosine_distance(a: Grads, b: Grads) -> torch.Tensor:
    """sum over tensors (dim >= 2) and output rows of 1 - cos(row_a, row_b); 1-D tensors count 0."""
    total = torch.zeros((), dtype=torch.float64)
    for ga, gb in zip(a, b):
        if ga.dim() < 2:
            continue
        x, y = ga.reshape(ga.shape[0], -1).double(), gb.reshape(gb.shape[0], -1).double()
        total = total + (1 - (x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1) + EPS)).sum().cpu()
    return total


@DISTANCES.register("mse")
def squared_distance(a: Grads, b: Grads) -> torch.Tensor:
    """|a - b|^2 on the flattened gradients."""
    return ((_flat(a) - _flat(b)) ** 2).sum()


# ------------------------------------------------------------------------------------------ the supernet
def search_cells(supernet: nn.Module) -> list[tuple[str, nn.Module]]:
    """(cell type, cell) of every search cell holding one module per op per edge (``cell.edges[e][o]``, the
    spaces' ``impl: reference`` cells). A cell names its type (``cell_type``) or the space has only one."""
    types = tuple(supernet.space.cell_types)
    cells = []
    for m in supernet.modules():
        edges = getattr(m, "edges", None)
        if isinstance(edges, nn.ModuleList) and len(edges) and isinstance(edges[0], nn.ModuleList):
            ct = getattr(m, "cell_type", None) or (types[0] if len(types) == 1 else None)
            if ct is None:
                raise IncompatibleError(f"a search cell of space {supernet.space.name} does not name its cell type")
            cells.append((ct, m))
    if not cells:
        raise IncompatibleError("gm_nas needs one module per op per edge (space.supernet.impl=reference); "
                                "this supernet has none")
    return cells


def shared_parameters(supernet: nn.Module, cell_type: str, edge: int) -> list[nn.Parameter]:
    """The op parameters of every edge of every search cell except ``edge`` in cells of ``cell_type``
    (module docstring), each once, in module order."""
    seen, params = set(), []
    for ct, cell in search_cells(supernet):
        for e, ops in enumerate(cell.edges):
            if ct == cell_type and e == edge:
                continue
            for p in ops.parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
    return params


def op_gradients(loss_fn: Callable[[], torch.Tensor], mixer, cell_type: str, edge: int, ops: Sequence[int],
                 params: Sequence[torch.Tensor], hard: bool, restore: Callable[[], None]) -> list[list[torch.Tensor]]:
    """[g_o for o in ops]: the gradients of ``loss_fn()`` w.r.t. ``params`` with ``edge`` set to op o
    (module docstring); ``restore()`` re-applies the supernet's own interventions after each op."""
    out = []
    for o in ops:
        mixer.clear_interventions()
        restore()
        if hard:
            mixer.fix_edge(cell_type, edge, o)
        else:
            for k in ops:
                if k != o:
                    mixer.mask_op(cell_type, edge, k)
        try:
            grads = torch.autograd.grad(loss_fn(), list(params), allow_unused=True)
        finally:
            mixer.clear_interventions()
            restore()
        out.append([torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, grads)])
    return out


def distance_matrix(grads: Sequence[Grads], distance: str = "cos") -> torch.Tensor:
    """D[i, j] = dist(grads[i], grads[j]) (float64, symmetric, zero diagonal for cos and mse)."""
    dist = DISTANCES.get(distance)
    n = len(grads)
    out = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = dist(grads[i], grads[j]).cpu()
    return out


def edge_distance(loss_on: Callable[[object], torch.Tensor], batches: Callable[[], object], mixer, cell_type: str,
                  edge: int, num_ops: int, params: Sequence[torch.Tensor], *, num_batches: int, hard: bool,
                  distance: str, restore: Callable[[], None]) -> torch.Tensor:
    """The mean of :func:`distance_matrix` over ``num_batches`` minibatches drawn by ``batches()``."""
    total = torch.zeros(num_ops, num_ops, dtype=torch.float64)
    for _ in range(num_batches):
        batch = batches()
        grads = op_gradients(lambda: loss_on(batch), mixer, cell_type, edge, range(num_ops), params, hard, restore)
        total += distance_matrix(grads, distance)
    return total / num_batches
