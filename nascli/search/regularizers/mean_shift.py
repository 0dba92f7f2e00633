"""MS-DARTS (Hsieh et al., arXiv 2108.09996; METHODS.md 8): train the weights at a mean-shifted softmax(alpha).

Built on SDARTS (nascli/search/regularizers/alpha_perturbation.py: same hooks, same clip, same ramp form).
After the architecture step, the centre c = softmax(alpha) (one (E, O) tensor per cell type) is moved by
T mean-shift iterations on the step's training batch; the weights are trained with the result used
directly as the mixing weights, and alpha is left untouched. One iteration:

    X_n = c + U_n,  U_n ~ Uniform(-eps, eps) element-wise,                    n = 1..N
    X~_n = clip(X_n)                                 (SDARTS clip: rows clamped to [0, 1], renormalised)
    omega = softmax_n(L_train(w, X~_n))              (higher loss, larger weight; eval mode, no gradient)
    k_{n,c} = exp(-||X~_n[c] - c[c]||^2 / (2 h^2)) / (h sqrt(2 pi))            per cell type c
    c[c] <- sum_n omega_n k_{n,c} X_n[c] / sum_n omega_n k_{n,c}
(computed as sum_n softmax_n(log omega_n + log k_{n,c}) X_n[c]: the same value, without underflow for a
small h).

Reading taken, from aaron851113/MS-DARTS@61a1693 attacker/perturb_ms.py ``Mean_Shift_alpha`` (METHODS.md 8
only says "clipped to [0, 1]"): the loss and the kernel distance use the clipped sample X~_n, while the
weighted mean uses the raw sample X_n (the reference stores the sample before ``model.clip()``), and the
result is not clipped again, so the mixing weights may leave [0, 1] by up to eps. The kernel is computed
once per architecture tensor (cell type) over all its edges; its constant cancels in the ratio. The losses
run with the supernet in eval mode, as the reference's ``model.eval()``.

Defaults (sota/cnn/train_search_ms.py): N = 3 (``--samplingN``), T = 2 (``--iteration``), h = 1
(``--bandwidth``), eps ramped linearly from eps/10 to eps = 0.25 over the epochs
(eps_e = eps/10 + (eps - eps/10) e / E), 40 epochs, alpha frozen for epochs 0-4 while the weights are
still trained at the mean-shifted probabilities (``optimizer.arch_start_epoch: 5`` in conf/method/ms_darts.yaml).
Confidence (METHODS.md 8): the rule and defaults are read in code [CODE] from a repository linked to the paper
but not confirmed to be the authors' own; the paper's CIFAR-10/100 and ImageNet numbers were not recovered
(METHODS.md 12), so there is no published figure to compare with; genotype ``c10_s5_ms`` is in METHODS.md 9.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from nascli.errors import OptionError
from nascli.search.components import COMPONENTS
from nascli.search.optimizers.base import upcast
from nascli.search.regularizers.alpha_perturbation import (LossAt, PerturbedWeightStep, Probs, simplex_clip,
                                                           uniform_noise)

#: (centre, eps) -> one raw sample X_n = centre + U (a seam: tests inject fixed samples)
Sampler = Callable[[Probs, float], Probs]


def kernel_log(sample: torch.Tensor, centre: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """log of the Gaussian kernel up to its constant: -||sample - centre||^2 / (2 h^2) over the whole tensor."""
    return -0.5 * ((sample - centre) ** 2).sum() / bandwidth ** 2


def uniform_sample(centre: Probs, eps: float, generator: torch.Generator | None) -> Probs:
    """X = centre + U, U ~ Uniform(-eps, eps) element-wise (unclipped)."""
    noise = uniform_noise(centre, eps, generator)
    return {ct: t + noise[ct] for ct, t in centre.items()}


def mean_shift(centre: Probs, eps: float, loss_at: LossAt, *, samples: int = 3, iterations: int = 2,
               bandwidth: float = 1.0, sampler: Sampler | None = None, generator: torch.Generator | None = None,
               renormalize: bool = True) -> Probs:
    """T = ``iterations`` mean-shift iterations of N = ``samples`` points each from ``centre`` (module
    docstring). ``sampler`` draws one raw sample (default: centre + Uniform(-eps, eps) from ``generator``)."""
    draw = sampler or (lambda c_, e: uniform_sample(c_, e, generator))
    c = {ct: t.detach().clone() for ct, t in centre.items()}
    for _ in range(iterations):
        raw, losses, log_k = [], [], []
        with torch.no_grad():
            for _n in range(samples):
                x = draw(c, eps)
                clipped = {ct: simplex_clip(t, renormalize) for ct, t in x.items()}
                raw.append(x)
                losses.append(upcast(loss_at(clipped).detach()).reshape(()))
                log_k.append({ct: kernel_log(clipped[ct], c[ct], bandwidth) for ct in c})
            log_omega = torch.log_softmax(torch.stack(losses), dim=0)
            # omega_n k_n / sum_m omega_m k_m = softmax_n(log omega_n + log k_n): the kernel's constant cancels
            c = {ct: _weighted_sum(torch.softmax(log_omega + torch.stack([lk[ct] for lk in log_k]), dim=0),
                                   [r[ct] for r in raw]) for ct in c}
    return c


def _weighted_sum(weights: torch.Tensor, tensors: list[torch.Tensor]) -> torch.Tensor:
    return sum(w * t for w, t in zip(weights, tensors))


@COMPONENTS.register("mean_shift")
class MeanShiftPerturbation(PerturbedWeightStep):
    """MS-DARTS: the weight step trains at :func:`mean_shift` of softmax(alpha) (module docstring)."""

    def __init__(self, supernet, optimizer, *, epsilon: float = 0.25, epsilon_start: float | None = None,
                 samples: int = 3, iterations: int = 2, bandwidth: float = 1.0, renormalize: bool = True,
                 seed: int | None = None):
        start = epsilon / 10 if epsilon_start is None else epsilon_start  # the reference starts at eps / 10
        super().__init__(supernet, optimizer, epsilon=epsilon, epsilon_start=start, renormalize=renormalize,
                         seed=seed)
        for name, value in (("samples", samples), ("iterations", iterations)):
            if int(value) < 1:
                raise OptionError(f"method.components[mean_shift].{name} must be >= 1, got {value}")
        if not bandwidth > 0:
            raise OptionError(f"method.components[mean_shift].bandwidth must be > 0, got {bandwidth}")
        self.samples, self.iterations, self.bandwidth = int(samples), int(iterations), float(bandwidth)

    def perturb(self, probs: Probs, loss_at: LossAt) -> Probs:
        return mean_shift(probs, self.epsilon, loss_at, samples=self.samples, iterations=self.iterations,
                          bandwidth=self.bandwidth, generator=self.generator, renormalize=self.renormalize)
