"""Collapse indicators: alpha entropy, skip count, and the dominant Hessian eigenvalue (R-DARTS).

R-DARTS (Zela et al., 2020; METHODS.md 8): H = d^2 L_val / d alpha^2 on one validation batch, computed
exactly by double back-propagation (one Hessian row per alpha entry), plus the architecture weight
decay wd * I; the indicator is max(eig(H)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nascli.device import autocast, frozen


def alpha_entropy(probs: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean over edges of -sum_o p_o log p_o, per cell type."""
    return {ct: float(-(p * torch.log(p.clamp_min(1e-12))).sum(-1).mean()) for ct, p in probs.items()}


def arch_hessian(supernet, batch, arch_weight_decay: float = 0.0) -> torch.Tensor:
    """Exact Hessian of L_val w.r.t. the flattened architecture parameters (+ wd * I)."""
    params = supernet.arch_parameters()
    x, y = batch
    with frozen(supernet.weight_parameters()), autocast(x.device):
        loss = F.cross_entropy(supernet(x).float(), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    flat = torch.cat([g.reshape(-1) for g in grads])
    rows = []
    for k in range(flat.numel()):
        row = torch.autograd.grad(flat[k], params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(r if r is not None else torch.zeros_like(p)).reshape(-1)
                               for r, p in zip(row, params)]))
    h = torch.stack(rows).double()
    h = (h + h.T) / 2
    return h + arch_weight_decay * torch.eye(h.shape[0], dtype=h.dtype, device=h.device)


def dominant_eigenvalue(supernet, batch, arch_weight_decay: float = 0.0) -> float:
    return float(torch.linalg.eigvalsh(arch_hessian(supernet, batch, arch_weight_decay)).max())
