"""Collapse indicators: alpha entropy, skip count, and the dominant Hessian eigenvalue (R-DARTS).

R-DARTS (Zela et al., ICLR'20; METHODS.md 8, Meituan-AutoML/DARTS- ``src/search/analyze.py``
``Analyzer._hessian``): H = d^2 L_val / d alpha^2 on one validation batch, alpha = every architecture
parameter flattened in ``supernet.arch_parameters()`` order, computed exactly by double
back-propagation (one Hessian row per alpha entry). The architecture weight decay enters the gradient
as g + wd * alpha, so H gets + wd * I. The indicator is lambda_max = max(eig(H)).

The computation runs in float32 (no bf16 autocast: second derivatives in bf16 are too coarse), in the
supernet's current train/eval mode, and leaves the supernet exactly as it found it (BatchNorm running
statistics touched by the extra forward pass are restored).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nascli.device import frozen


def alpha_entropy(probs: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean over edges of -sum_o p_o log p_o, per cell type."""
    return {ct: float(-(p * torch.log(p.clamp_min(1e-12))).sum(-1).mean()) for ct, p in probs.items()}


def arch_hessian(supernet, batch, arch_weight_decay: float = 0.0) -> torch.Tensor:
    """Exact Hessian (float64, symmetrised) of L_val = CE(supernet(x), y) w.r.t. the flattened
    architecture parameters, plus ``arch_weight_decay * I``."""
    params = list(supernet.arch_parameters())
    x, y = batch
    buffers = [b for b in supernet.buffers()]
    saved = [b.detach().clone() for b in buffers]
    try:
        with frozen(supernet.weight_parameters()):
            logits = supernet(x)
            loss = F.cross_entropy(logits if logits.dtype == torch.float64 else logits.float(), y)
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        flat = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])
        rows = []
        for k in range(flat.numel()):
            if not flat[k].requires_grad:  # constant gradient entry: its Hessian row is zero
                rows.append(torch.zeros_like(flat))
                continue
            row = torch.autograd.grad(flat[k], params, retain_graph=True, allow_unused=True)
            rows.append(torch.cat([(r if r is not None else torch.zeros_like(p)).reshape(-1)
                                   for r, p in zip(row, params)]))
    finally:
        with torch.no_grad():
            for b, s in zip(buffers, saved):
                b.copy_(s)
    h = torch.stack(rows).detach().double()
    h = (h + h.T) / 2
    return h + arch_weight_decay * torch.eye(h.shape[0], dtype=h.dtype, device=h.device)


def dominant_eigenvalue(supernet, batch, arch_weight_decay: float = 0.0) -> float:
    """lambda_max of :func:`arch_hessian` (torch.linalg.eigvalsh of the symmetric matrix)."""
    return float(torch.linalg.eigvalsh(arch_hessian(supernet, batch, arch_weight_decay)).max())
