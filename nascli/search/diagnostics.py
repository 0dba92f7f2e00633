"""Collapse indicators: alpha entropy, skip count, and the dominant Hessian eigenvalue (R-DARTS).

R-DARTS (Zela et al., ICLR'20; METHODS.md 8, Meituan-AutoML/DARTS- ``src/search/analyze.py``
``Analyzer._hessian``): H = d^2 L_val / d alpha^2 on one validation batch, alpha = every architecture
parameter flattened in ``supernet.arch_parameters()`` order. The architecture weight decay enters the
gradient as g + wd * alpha, so H gets + wd * I. The indicator is lambda_max = max(eig(H)) (the largest
eigenvalue, not the largest in magnitude).

Three ways to get lambda_max (``method``, config key ``diagnostics.hessian_method``):

* ``exact``: H row by row by double back-propagation (one backward pass per alpha entry), then
  ``eigvalsh``; R-DARTS's own computation. n backward passes for n alphas (30 on NB201, 224 on DARTS).
* ``lanczos``: Lanczos on Hessian-vector products Hv = d(g . v)/d alpha (one backward pass each, through
  the same graph) with full reorthogonalisation; the largest Ritz value of the tridiagonal matrix, stopped
  when the residual bound ``beta_j |s_j|`` of its Ritz vector is <= ``tol * |theta|``. Finds the largest
  algebraic eigenvalue directly.
* ``power``: power iteration on the same products, stopped when ``||Hv - theta v|| <= tol * |theta|``
  (theta the Rayleigh quotient). It converges to the eigenvalue of largest *magnitude*; when that one is
  negative (mu < 0), a second power iteration on ``H - mu I`` (eigenvalues lambda_i - mu >= 0, the largest
  lambda_max - mu) gives lambda_max = theta' + mu.
* ``auto``: ``exact`` up to :data:`AUTO_EXACT_MAX` alphas (NB201's 30), ``lanczos`` above (DARTS's 224).

Every method builds one forward graph on the batch, runs in float32 (no bf16 autocast: second derivatives
in bf16 are too coarse) in the supernet's current train/eval mode, and leaves the supernet and the global
random number generators exactly as it found them (BatchNorm running statistics touched by the forward
pass are restored; a mixer that samples in its forward draws from a forked RNG), so computing the
diagnostic never changes the search. The iterative methods start from a fixed-seed random vector.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from nascli.device import frozen

HESSIAN_METHODS = ("exact", "power", "lanczos", "auto")
#: ``auto`` computes the exact Hessian up to this many architecture parameters (NB201: 30; DARTS: 224)
AUTO_EXACT_MAX = 64

MatVec = Callable[[torch.Tensor], torch.Tensor]
#: (output, target) -> scalar loss: the task's search loss (nascli/tasks); cross-entropy by default
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Classification's L_val: CE on float32 (float64 outputs stay float64)."""
    return F.cross_entropy(output if output.dtype == torch.float64 else output.float(), target)


def alpha_entropy(probs: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean over edges of -sum_o p_o log p_o, per cell type."""
    return {ct: float(-(p * torch.log(p.clamp_min(1e-12))).sum(-1).mean()) for ct, p in probs.items()}


@contextlib.contextmanager
def _rng_preserved(device: torch.device) -> Iterator[None]:
    """Fork the CPU (and, on CUDA, that device's) generator for the block."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


@contextlib.contextmanager
def arch_gradient(supernet, batch,
                  loss_fn: LossFn = cross_entropy) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
    """(arch parameters, flattened dL_val/dalpha with its graph kept) for ``batch``, L_val = ``loss_fn`` (the
    task's loss); the supernet's buffers and the global RNGs are restored when the block ends."""
    params = list(supernet.arch_parameters())
    x, y = batch
    buffers = list(supernet.buffers())
    saved = [b.detach().clone() for b in buffers]
    try:
        with _rng_preserved(x.device), frozen(supernet.weight_parameters()):
            out = supernet(x)
            loss = loss_fn(out if out.dtype == torch.float64 else out.float(), y)
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            yield params, torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                                     for g, p in zip(grads, params)])
    finally:
        with torch.no_grad():
            for b, s in zip(buffers, saved):
                b.copy_(s)


def hvp_operator(params: list[torch.Tensor], flat_grad: torch.Tensor, weight_decay: float = 0.0) -> MatVec:
    """v -> (d^2 L / d alpha^2 + wd I) v in float64, one backward pass of ``flat_grad . v`` per call."""

    def matvec(v: torch.Tensor) -> torch.Tensor:
        if not flat_grad.requires_grad:  # the gradient does not depend on alpha: H = 0
            return weight_decay * v
        dot = (flat_grad * v.to(flat_grad.dtype)).sum()
        rows = torch.autograd.grad(dot, params, retain_graph=True, allow_unused=True)
        hv = torch.cat([(r if r is not None else torch.zeros_like(p)).reshape(-1) for r, p in zip(rows, params)])
        return hv.detach().double() + weight_decay * v

    return matvec


def arch_hessian(supernet, batch, arch_weight_decay: float = 0.0, loss_fn: LossFn = cross_entropy) -> torch.Tensor:
    """Exact Hessian (float64, symmetrised) of L_val = loss_fn(supernet(x), y) (CE by default) w.r.t. the
    flattened architecture parameters, plus ``arch_weight_decay * I``."""
    with arch_gradient(supernet, batch, loss_fn) as (params, flat):
        rows = []
        for k in range(flat.numel()):
            if not flat[k].requires_grad:  # constant gradient entry: its Hessian row is zero
                rows.append(torch.zeros_like(flat))
                continue
            row = torch.autograd.grad(flat[k], params, retain_graph=True, allow_unused=True)
            rows.append(torch.cat([(r if r is not None else torch.zeros_like(p)).reshape(-1)
                                   for r, p in zip(row, params)]))
    h = torch.stack(rows).detach().double()
    h = (h + h.T) / 2
    return h + arch_weight_decay * torch.eye(h.shape[0], dtype=h.dtype, device=h.device)


def _start_vector(n: int, device: torch.device, seed: int) -> torch.Tensor:
    v = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(device)
    return v / v.norm()


def power_iteration(matvec: MatVec, n: int, *, tol: float = 1e-4, max_iter: int = 500, seed: int = 0,
                    device: torch.device | str = "cpu") -> tuple[float, int]:
    """(theta, products used): the Rayleigh quotient theta = v.Hv of the eigenvector of largest |lambda|,
    iterating v <- Hv / ||Hv|| until ``||Hv - theta v|| <= tol * |theta|`` or ``max_iter`` products."""
    v = _start_vector(n, torch.device(device), seed)
    theta = 0.0
    for it in range(1, max_iter + 1):
        w = matvec(v)
        theta = float(v @ w)
        residual = float((w - theta * v).norm())
        norm = float(w.norm())
        if norm == 0.0:
            return 0.0, it
        if residual <= tol * abs(theta):
            return theta, it
        v = w / norm
    return theta, max_iter


def largest_eigenvalue_power(matvec: MatVec, n: int, **kw) -> tuple[float, int]:
    """(lambda_max, products used) by power iteration, shifted when the dominant eigenvalue mu is negative
    (module docstring)."""
    mu, used = power_iteration(matvec, n, **kw)
    if mu >= 0:
        return mu, used
    shifted, more = power_iteration(lambda v: matvec(v) - mu * v, n, **kw)
    return shifted + mu, used + more


def lanczos(matvec: MatVec, n: int, *, tol: float = 1e-4, max_iter: int = 100, seed: int = 0,
            device: torch.device | str = "cpu") -> tuple[float, int]:
    """(lambda_max, products used): the largest Ritz value of the Lanczos tridiagonal matrix T_j (full
    reorthogonalisation), stopped when ``beta_j |s_j| <= tol * |theta|`` (s the Ritz vector in T's basis:
    ``beta_j |s_j|`` = ||H y - theta y||), when the Krylov space is invariant, or after min(n, max_iter)
    products (at n the Ritz values are H's eigenvalues)."""
    device = torch.device(device)
    q = _start_vector(n, device, seed)
    basis = [q]
    alphas: list[float] = []
    betas: list[float] = []
    theta = 0.0
    steps = min(n, max_iter)
    for j in range(steps):
        w = matvec(basis[j])
        a = float(basis[j] @ w)
        alphas.append(a)
        q_mat = torch.stack(basis)
        for _ in range(2):  # full reorthogonalisation, twice ("twice is enough")
            w = w - q_mat.T @ (q_mat @ w)
        b = float(w.norm())
        t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            t = t + torch.diag(off, 1) + torch.diag(off, -1)
        evals, evecs = torch.linalg.eigh(t)
        theta = float(evals[-1])
        if b * abs(float(evecs[-1, -1])) <= tol * abs(theta) or b <= 1e-12 * max(abs(theta), 1.0) or j + 1 == steps:
            return theta, j + 1
        betas.append(b)
        basis.append(w / b)
    return theta, steps


def _solve(method: str, matvec: MatVec, n: int, device: torch.device, tol: float, max_iter: int) -> tuple[float, int]:
    if method == "power":
        return largest_eigenvalue_power(matvec, n, tol=tol, max_iter=max_iter, device=device)
    return lanczos(matvec, n, tol=tol, max_iter=max_iter, device=device)


def resolve_method(method: str, n: int) -> str:
    """``auto`` -> ``exact`` for at most :data:`AUTO_EXACT_MAX` alphas, else ``lanczos``; others unchanged.
    An unknown name raises a one-line ValueError listing :data:`HESSIAN_METHODS`."""
    if method not in HESSIAN_METHODS:
        raise ValueError(f"unknown Hessian eigenvalue method {method!r}; choose one of {', '.join(HESSIAN_METHODS)}")
    if method == "auto":
        return "exact" if n <= AUTO_EXACT_MAX else "lanczos"
    return method


def dominant_eigenvalue(supernet, batch, arch_weight_decay: float = 0.0, method: str = "exact", *,
                        tol: float = 1e-4, max_iter: int | None = None, loss_fn: LossFn = cross_entropy) -> float:
    """lambda_max of d^2 L_val / d alpha^2 + wd I on ``batch`` by ``method`` (module docstring), L_val =
    ``loss_fn`` (the task's loss); ``max_iter`` bounds the Hessian-vector products (default 500 for power,
    100 for Lanczos)."""
    n = sum(p.numel() for p in supernet.arch_parameters())
    method = resolve_method(method, n)
    if method == "exact":
        return float(torch.linalg.eigvalsh(arch_hessian(supernet, batch, arch_weight_decay, loss_fn)).max())
    limit = max_iter if max_iter is not None else (500 if method == "power" else 100)
    with arch_gradient(supernet, batch, loss_fn) as (params, flat):
        value, _ = _solve(method, hvp_operator(params, flat, arch_weight_decay), n, flat.device, tol, limit)
    return value


class HessianProbe:
    """The dominant-eigenvalue diagnostic with its settings: ``probe(supernet, batch, wd) -> lambda_max``.
    The search engine holds one (``diagnostics.hessian_method``); a test may hand it another callable."""

    def __init__(self, method: str = "auto", tol: float = 1e-4, loss_fn: LossFn = cross_entropy):
        resolve_method(method, 0)  # validate the name
        self.method, self.tol, self.loss_fn = method, tol, loss_fn

    def __call__(self, supernet, batch, arch_weight_decay: float) -> float:
        return dominant_eigenvalue(supernet, batch, arch_weight_decay, self.method, tol=self.tol, loss_fn=self.loss_fn)
