"""DrNAS KL regulariser on the Dirichlet concentrations (METHODS.md 8; xiangning-chen/DrNAS@f2caa4d
``201-space/search_model.py`` / ``DARTS-space/model_search.py`` ``_get_kl_reg``, ``architect.py``).

With reg_type ``kl`` the reference adds to the architecture loss

    R(alpha) = scale * sum_{cell types} sum_e KL( Dir(ELU(alpha_e) + 1) || Dir(1) )

(the anchor Dir(1) is the uniform distribution on the simplex) and trains alpha with Adam weight decay 0;
with reg_type ``l2`` (its default) it uses Adam weight decay ``reg_scale`` = 1e-3 instead and no KL term.
For Dirichlets with concentrations a (the allowed ops of one edge, n of them) and b = 1:

    KL(Dir(a) || Dir(1)) = lgamma(sum a) - sum lgamma(a_i) - lgamma(n)
                           + sum (a_i - 1) (digamma(a_i) - digamma(sum a))

The component adds R to every validation loss the optimizer computes (the ``arch_loss_term`` step hook),
so every optimizer's alpha gradient includes it; ``scale: 0`` adds nothing (the L2 reading). The term is
over the allowed ops of the mixer (the DARTS space without ``none``) and, as in the reference, over all of
them also after progressive pruning.
"""
from __future__ import annotations

import torch
from torch.distributions import Dirichlet, kl_divergence

from nascli.errors import IncompatibleError
from nascli.search.components import COMPONENTS, Component


def dirichlet_kl_to_uniform(conc: torch.Tensor) -> torch.Tensor:
    """sum over rows of KL(Dir(conc_row) || Dir(1, ..., 1)) for conc (E, n)."""
    return kl_divergence(Dirichlet(conc), Dirichlet(torch.ones_like(conc))).sum()


@COMPONENTS.register("dirichlet_kl")
class DirichletKL(Component):
    """Adds scale * sum KL(Dir(ELU(alpha)+1) || Dir(1)) to the architecture objective (module docstring)."""


    def __init__(self, supernet, optimizer, *, scale: float = 0.0):
        super().__init__(supernet, optimizer)
        self.scale = float(scale)
        if self.scale < 0:
            raise ValueError(f"dirichlet_kl scale must be >= 0, got {scale}")
        if supernet is not None and not hasattr(supernet.mixer, "concentration"):
            raise IncompatibleError(f"component dirichlet_kl regularises Dirichlet concentrations, but the mixer "
                                    f"{type(supernet.mixer).__name__} has none: use method.mixer.name=dirichlet")

    def kl(self) -> torch.Tensor:
        """sum over cell types and edges of KL(Dir(ELU(alpha)+1) || Dir(1)) (with its graph to alpha)."""
        mixer = self.supernet.mixer
        return torch.stack([dirichlet_kl_to_uniform(mixer.concentration(ct)) for ct in mixer.alphas]).sum()

    def arch_loss_term(self) -> torch.Tensor | None:
        return self.scale * self.kl() if self.scale > 0 else None

    def values(self) -> dict[str, float]:
        if self.scale <= 0:
            return {}
        with torch.no_grad():
            return {"dirichlet_kl": float(self.kl())}
