"""SparsestMax mixing weights (Shao et al., "SSN: Learning Sparse Switchable Normalization via SparsestMax",
CVPR 2019; used at all three levels of Trilevel NAS, Wu et al. 2021, arXiv 2101.06658).

For one row alpha in R^n (one edge, or one level's choice), u = (1/n, ..., 1/n) the simplex centre and a
radius r >= 0, the weights are the Euclidean projection of alpha onto the simplex with the centre cut out,

    p = argmin_{p in Delta^n, ||p - u||_2 >= r} ||p - alpha||_2 ,

computed by the rule of the SSN reference (switchablenorms/Sparse_SwitchNorm@28904b5 utils/ssn_utils.py,
generalised from n = 3 to any n as in the Trilevel NAS code's ``sparsestmax(v, rad, u)``):

1. w = sparsemax(alpha) (Martins & Astudillo 2016): sort alpha descending as z_(1) >= ... >= z_(n),
   k* = max{k : 1 + k z_(k) > sum_{j<=k} z_(j)}, tau = (sum_{j<=k*} z_(j) - 1) / k*, w = max(alpha - tau, 0).
2. If w is one-hot or ||w - u|| >= r: return w (the constraint is inactive).
3. Otherwise let S be the support of w, u_S the uniform point on that face (1/|S| on S, 0 elsewhere). The
   face's affine hull is orthogonal to u - u_S, so the sphere ||p - u|| = r cuts the face in a sphere around
   u_S of radius r_S = sqrt(r^2 - (1/|S| - 1/n)). Push w radially out from u_S onto it:
       p = u_S + r_S (w - u_S) / ||w - u_S||,
   with w - u_S computed as v - mean_S(v) on S (the same vector; no rounding loss when w is close to u_S).
4. If some p_i < 0, p left the simplex: set alpha = p and go back to 1 (the support shrinks each time, so
   this ends after at most n - 1 rounds).

r = 0 gives sparsemax. The farthest simplex points from u are the vertices, at sqrt(1 - 1/n), so the radius
is clipped per row to r_max = sqrt(1 - 1/n): at r = r_max every row is one-hot at its largest alpha (the
nearest vertex; returned exactly, ties to the first index, with a zero gradient). When
w = u_S exactly (every alpha of the support equal) the radial direction is undefined; we push towards the
vertex of the first largest alpha (a choice; SSN adds 1e-6 to the distance instead).

Every step is built of differentiable torch ops (sort, cumsum, clamp, norms), so dL/dalpha flows through the
projection by autograd (zero for alphas outside the final support, as for sparsemax).

Radius schedule (options ``radius_start`` r0, ``radius_end`` r1, ``schedule``), set at the start of epoch e
of E by :meth:`SparsestmaxMixer.on_epoch_start`:

    linear:    r_e = r0 + (r1 - r0) * e / (E - 1)            (r0 when E = 1)
    constant:  r_e = r0

SSN anneals r linearly from 0 to 1 over the whole training (train_imagenet.py: rad = iteration / total); we
take the same end points per epoch, so the last epoch runs at r1 = 1 >= r_max for every n: every row is
one-hot there, and the network trained in that epoch is the discrete one (search and training in one phase,
as Trilevel NAS). The radius lives in the buffer ``radius`` (checkpointed with the supernet).

Derivation reads the current weights (:meth:`probabilities`, which :meth:`selection_scores` returns); rows
may tie at 0 or 1, ties go to the lower index in the spaces' rules.
"""
from __future__ import annotations

import math

import torch

from nascli.errors import OptionError
from nascli.search.mixers.base import MIXERS, EdgeWeights, Mixer


def sparsemax(v: torch.Tensor) -> torch.Tensor:
    """Row-wise Euclidean projection of ``v`` (..., n) onto the probability simplex (module docstring, step 1)."""
    z, _ = torch.sort(v, dim=-1, descending=True)
    k = torch.arange(1, v.shape[-1] + 1, device=v.device, dtype=v.dtype)
    cumsum = z.cumsum(-1)
    in_support = 1 + k * z > cumsum
    k_star = in_support.to(v.dtype).cumprod(-1).sum(-1, keepdim=True).clamp(min=1)
    tau = (cumsum.gather(-1, k_star.long() - 1) - 1) / k_star
    return torch.clamp(v - tau, min=0)


#: radii within this of sqrt(1 - 1/n) give the exact one-hot of the largest alpha (ties: the first)
LIMIT_TOL = 1e-6


def max_radius(n: int) -> float:
    """sqrt(1 - 1/n): the distance of a simplex vertex from the centre (the one-hot limit)."""
    return math.sqrt(1.0 - 1.0 / n)


def _radial_step(w: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One round of steps 2-3 on rows w = sparsemax(v) (B, n): (p, moved) where ``moved`` marks rows pushed out
    onto the sphere. On the support S, w - u_S = v - mean_S(v) (w_S = v_S - tau sums to 1), so the direction is
    taken from v: no cancellation when the alphas are nearly equal (w close to u_S)."""
    n = w.shape[-1]
    support = w > 0
    size = support.sum(-1, keepdim=True).to(w.dtype)
    u_s = support.to(w.dtype) / size
    dist = (w - 1.0 / n).norm(dim=-1, keepdim=True)
    moved = (dist < r) & (size > 1)
    r_face = (r ** 2 - (1.0 / size - 1.0 / n)).clamp(min=0).sqrt()
    v_s = v.masked_fill(~support, 0.0)
    direction = (v_s - v_s.sum(-1, keepdim=True) / size).masked_fill(~support, 0.0)
    flat = direction.detach().norm(dim=-1, keepdim=True) == 0
    if bool((flat & moved).any()):
        first = v.masked_fill(~support, float("-inf")).argmax(-1)
        vertex = torch.nn.functional.one_hot(first, n).to(w.dtype)
        direction = torch.where(flat, vertex - u_s, direction)
    norm = direction.norm(dim=-1, keepdim=True).clamp(min=torch.finfo(w.dtype).tiny)
    p = u_s + r_face * direction / norm
    return torch.where(moved, p, w), moved.squeeze(-1)


def sparsestmax(v: torch.Tensor, radius: float | torch.Tensor) -> torch.Tensor:
    """Row-wise SparsestMax of ``v`` (..., n) at ``radius`` (module docstring); radius clipped to sqrt(1-1/n)."""
    shape = v.shape
    n = shape[-1]
    rows = v.reshape(-1, n)
    r = torch.as_tensor(radius, dtype=v.dtype, device=v.device).clamp(min=0.0, max=max_radius(n))
    if n > 1 and float(r) >= max_radius(n) - LIMIT_TOL:  # the one-hot limit, exactly (the loop would leave
        one_hot = torch.nn.functional.one_hot(rows.argmax(-1), n).to(v.dtype)  # ~1e-8 residues that count as
        return (one_hot + 0.0 * rows).reshape(shape)                          # active ops)
    out = sparsemax(rows)
    if n == 1 or float(r) == 0.0:
        return out.reshape(shape)
    current = rows  # the rows whose sparsemax ``out`` is
    for _ in range(n):
        p, moved = _radial_step(out, current, r)
        if not bool(moved.any()):
            break
        left = (p < 0).any(-1, keepdim=True)
        out = torch.where(left, sparsemax(p), p)
        current = torch.where(moved[:, None], p, current)
        if not bool(left.any()):
            break
    return out.reshape(shape)


def linear_radius(epoch: int, epochs: int, start: float, end: float) -> float:
    """r_e = r0 + (r1 - r0) e / (E - 1); r0 when E = 1."""
    if epochs <= 1:
        return float(start)
    return float(start + (end - start) * epoch / (epochs - 1))


def constant_radius(epoch: int, epochs: int, start: float, end: float) -> float:
    """r_e = r0."""
    return float(start)


#: ``method.mixer.schedule`` name -> (epoch, epochs, r0, r1) -> radius of that epoch
RADIUS_SCHEDULES = {
    "linear": linear_radius,
    "constant": constant_radius,
}


@MIXERS.register("sparsestmax")
class SparsestmaxMixer(Mixer):
    """Op weights sparsestmax(alpha_e, r) per edge, r annealed per epoch (module docstring); ops with weight
    0 are not computed (their gradient through the projection is 0 as well)."""

    supports_mixing_override = True
    vmap_problem = "its projection loop stops on the values of the rows (Python control flow on tensors)"

    def __init__(self, space, *, radius_start: float = 0.0, radius_end: float = 1.0, schedule: str = "linear",
                 init_scale: float = 1e-3):
        if schedule not in RADIUS_SCHEDULES:
            raise OptionError(f"unknown method.mixer.schedule {schedule!r}; valid choices: "
                              f"{', '.join(RADIUS_SCHEDULES)}")
        for key, value in (("radius_start", radius_start), ("radius_end", radius_end)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
                raise OptionError(f"method.mixer.{key}={value!r} is not a radius in [0, 1] (1 reaches the "
                                  f"one-hot limit sqrt(1 - 1/n) for every n)")
        super().__init__(space, init_scale)
        self.radius_start, self.radius_end, self.schedule = float(radius_start), float(radius_end), schedule
        self.register_buffer("radius", torch.tensor(float(radius_start)))

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        self.radius.fill_(RADIUS_SCHEDULES[self.schedule](epoch, num_epochs, self.radius_start, self.radius_end))

    def schedule_values(self) -> dict[str, float]:
        return {"sparsestmax_radius": float(self.radius)}

    def weights(self, cell_type: str) -> torch.Tensor:
        """(E, O) sparsestmax(alpha, r) of one cell type (with the graph to alpha)."""
        return sparsestmax(self.alphas[cell_type], self.radius)

    def mix(self, cell_type: str) -> EdgeWeights:
        """The weights, and as ``active`` the ops with a non-zero weight (all ops while a
        :meth:`~nascli.search.mixers.base.Mixer.mixing_override` sets the weights: its probabilities may be
        non-zero where sparsestmax is 0)."""
        w = self.weights(cell_type)
        if self._override is not None:
            return EdgeWeights(w)
        active = [torch.nonzero(row).flatten().tolist() for row in w.detach()]
        return EdgeWeights(w, active)

    def probabilities(self) -> dict[str, torch.Tensor]:
        """The current sparsestmax weights per cell type (what the search mixes with)."""
        with torch.no_grad():
            return {ct: self.weights(ct) for ct in self.alphas}

    def selection_scores(self):
        return self.probabilities(), None
