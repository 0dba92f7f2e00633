"""DrNAS: Dirichlet mixing weights (Chen, Wang, Cheng, Tang, Hsieh; ICLR'21; METHODS.md 8).

Per cell type and edge e, the concentration is beta_e = ELU(alpha_e) + 1 (> 0 for every alpha), and the
weights of one forward pass are a pathwise (reparameterised) sample

    w_e ~ Dirichlet(beta_e[A])            (``torch.distributions.Dirichlet(beta).rsample()``)

over the allowed ops A (all ops; the DARTS space without ``none``: ``exclude_ops: [none]``), so that
dL/dalpha flows through the sample (xiangning-chen/DrNAS@f2caa4d ``utils.py`` ``process_step_vector``).
One sample per cell type and forward pass serves every cell of that type (``201-space/search_model.py``,
``DARTS-space/model_search.py``: one ``process_step_matrix`` per forward), so the weight step and the
architecture step see different samples.

Progressive pruning (:meth:`DirichletMixer.prune_to_top`, used by the ``drnas_progressive`` component):
per edge only the kept ops K_e stay; the sample is drawn over A as before, then restricted to K_e and
renormalised, w_e[o] = s_o 1[o in K_e] / sum_{o' in K_e} s_o' (``process_step_vector`` with a mask); ops
outside K_e are not computed. The kept set is a persistent buffer (checkpointed with the supernet).

Eval mode. The reference's ``infer`` (``model.eval()``) still samples on every forward: ``eval_mode:
sample`` (default) reproduces that; ``eval_mode: mean`` mixes with the Dirichlet mean beta / sum(beta) in
eval mode. Selection probes (``held_path``) always use the mean, so differences of losses measure
interventions, not sampling noise.

Derivation reading: the reference derives with softmax(alpha) restricted to the kept ops and renormalised
(``genotype()`` -> ``process_step_matrix(alpha, 'softmax', mask)``), NOT with the Dirichlet mean
ELU(alpha)+1 normalised; both are monotone in alpha on one edge, so the argmax per edge is the same, but
the DARTS space's edge ranking (max weight per edge) uses the softmax values. :meth:`probabilities` and
:meth:`selection_scores` return exactly that masked, renormalised softmax over the allowed ops.
"""
from __future__ import annotations

import torch
from torch.distributions import Dirichlet

from nascli.search.mixers.base import MIXERS, EdgeWeights, Mixer

EVAL_MODES = ("sample", "mean")


def concentration(alpha: torch.Tensor) -> torch.Tensor:
    """beta = ELU(alpha) + 1 = alpha + 1 for alpha > 0, exp(alpha) for alpha <= 0 (same values and gradient).

    Computed by the two branches instead of ``F.elu(alpha) + 1`` (the reference): in float32 that sum
    rounds to exactly 0 for alpha < -17 (expm1(alpha) = -1), an invalid Dirichlet; exp(alpha) stays
    positive, and is clamped to the smallest normal float where it would underflow (alpha < -87)."""
    tiny = torch.finfo(alpha.dtype).tiny
    return torch.where(alpha > 0, alpha + 1.0, torch.exp(alpha.clamp(max=0.0)).clamp(min=tiny))


def restrict(weights: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """w * keep / sum(w * keep) per row: the weights of the kept ops renormalised to sum to one."""
    kept = weights * keep.to(weights.dtype)
    return kept / kept.sum(-1, keepdim=True)


@MIXERS.register("dirichlet")
class DirichletMixer(Mixer):
    """Dirichlet(ELU(alpha) + 1) mixing weights, one pathwise sample per forward (module docstring)."""

    #: each forward samples mixing weights over every op (not a single path: no K-path accumulation)
    samples_weights: bool = True

    def __init__(self, space, *, exclude_ops: list[str] | tuple[str, ...] = (), eval_mode: str = "sample",
                 init_scale: float = 1e-3):
        super().__init__(space, init_scale=init_scale)
        if eval_mode not in EVAL_MODES:
            raise ValueError(f"unknown dirichlet eval_mode {eval_mode!r}; valid choices: {', '.join(EVAL_MODES)}")
        unknown = [o for o in exclude_ops if o not in self.ops]
        if unknown:
            raise ValueError(f"exclude_ops {unknown} are not ops of space {space.name}: {', '.join(self.ops)}")
        allowed = torch.tensor([o not in exclude_ops for o in self.ops])
        if int(allowed.sum()) < 2:
            raise ValueError("exclude_ops leaves fewer than two ops: a Dirichlet needs at least two")
        self.eval_mode = eval_mode
        self.register_buffer("allowed", allowed, persistent=False)
        for ct in space.cell_types:  # ops kept by progressive pruning (all allowed ops at the start)
            self.register_buffer(f"keep_{ct}", allowed.expand(space.num_edges(ct), -1).clone())

    # ----- the distribution ---------------------------------------------------------------------
    def keep(self, cell_type: str) -> torch.Tensor:
        """(E, O) bool: allowed and not pruned."""
        return getattr(self, f"keep_{cell_type}")

    def concentration(self, cell_type: str) -> torch.Tensor:
        """(E, |A|) concentration ELU(alpha) + 1 over the allowed ops (keeps the graph to alpha)."""
        return concentration(self.alphas[cell_type][:, self.allowed])

    def sample(self, cell_type: str) -> torch.Tensor:
        """(E, O) one pathwise Dirichlet sample per edge over the allowed ops (0 elsewhere), restricted to
        the kept ops and renormalised."""
        alpha = self.alphas[cell_type]
        s = Dirichlet(self.concentration(cell_type)).rsample()
        full = alpha.new_zeros(alpha.shape).masked_scatter(self.allowed.expand_as(alpha), s)
        return restrict(full, self.keep(cell_type))

    def mean(self, cell_type: str) -> torch.Tensor:
        """(E, O) Dirichlet mean beta / sum(beta) over the kept ops (renormalised)."""
        alpha = self.alphas[cell_type]
        beta = concentration(alpha).masked_fill(~self.allowed, 0.0)
        return restrict(beta, self.keep(cell_type))

    @property
    def deterministic(self) -> bool:
        """Mean instead of a sample: while a probe holds the path, or in eval mode with ``eval_mode: mean``."""
        return self.held or (not self.training and self.eval_mode == "mean")

    def mix(self, cell_type: str) -> EdgeWeights:
        weights = self.mean(cell_type) if self.deterministic else self.sample(cell_type)
        keep = self.keep(cell_type)
        active = [torch.nonzero(row).flatten().tolist() for row in keep]
        return EdgeWeights(weights, active)

    # ----- selection and reporting ---------------------------------------------------------------
    def probabilities(self) -> dict[str, torch.Tensor]:
        """softmax(alpha) over the allowed ops, restricted to the kept ops and renormalised (the reference's
        ``process_step_matrix(alpha, 'softmax', mask)``)."""
        out = {}
        for ct, a in self.alphas.items():
            p = torch.softmax(a.detach().masked_fill(~self.allowed, float("-inf")), dim=-1)
            out[ct] = restrict(p, self.keep(ct))
        return out

    def selection_scores(self):
        return self.probabilities(), None

    def schedule_values(self) -> dict[str, float]:
        """Mean concentration sum over edges and cell types (how peaked the distributions are)."""
        sums = [concentration(a.detach()).masked_fill(~self.allowed, 0.0).sum(-1).mean() for a in self.alphas.values()]
        return {"dirichlet_concentration": float(torch.stack(sums).mean())}

    # ----- progressive pruning -------------------------------------------------------------------
    @torch.no_grad()
    def prune_to_top(self, num_keep: int) -> None:
        """Keep the ``num_keep`` kept ops with the largest alpha per edge (DrNAS ``utils.prune``, reset=False):
        previously pruned ops cannot come back; the new kept set becomes the mask, and the alphas of every
        op outside it are set to 0 (the kept alphas are unchanged)."""
        for ct, alpha in self.alphas.items():
            keep = self.keep(ct)
            if num_keep > int(keep.sum(-1).min()):
                raise ValueError(f"cannot keep {num_keep} ops per edge: only {int(keep.sum(-1).min())} are left")
            ranked = alpha.masked_fill(~keep, float("-inf"))
            index = ranked.topk(num_keep, dim=-1).indices
            new_keep = torch.zeros_like(keep).scatter_(1, index, True)
            alpha.masked_fill_(~new_keep, 0.0)
            keep.copy_(new_keep)
