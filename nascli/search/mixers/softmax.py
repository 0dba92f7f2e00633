"""DARTS continuous relaxation: o_bar(x) = sum_o softmax(alpha)_o * o(x) (Liu et al., 2019, eq. 2).

``weighting`` picks the op weights of an edge from w = softmax(alpha_edge):

* ``softmax`` (default): w_o;
* ``max_w`` (sharpDARTS's Max-W weighting, Hundt et al. 2019, METHODS.md 8; ahundt/sharpDARTS cnn/model_search.py
  ``MixedOp`` with ``weighting_algorithm='max_w'``): 1 - max_o' w_o' + w_o, so the strongest op of the edge has
  weight 1 and every other op 1 minus its gap to it. The max runs over all ops of the edge (``none`` too) and
  carries a gradient, as in the reference.

Derivation and the reported probabilities use softmax(alpha) under both (the reference's ``genotype()``).
"""
from __future__ import annotations

import torch

from nascli.errors import OptionError
from nascli.search.mixers.base import MIXERS, EdgeWeights, Mixer


def max_w_weights(w: torch.Tensor) -> torch.Tensor:
    """Max-W: (E, O) probabilities w -> 1 - max_o' w[e, o'] + w[e, o] (row-wise max)."""
    return 1.0 - w.max(dim=-1, keepdim=True).values + w


#: ``method.mixer.weighting`` name -> (E, O) softmax(alpha) -> op weights
WEIGHTINGS = {
    "softmax": lambda w: w,
    "max_w": max_w_weights,
}


@MIXERS.register("softmax")
class SoftmaxMixer(Mixer):
    """Every op of every edge is computed and weighted by softmax(alpha) of its edge (or by its Max-W
    transform, ``weighting=max_w``; module docstring)."""

    supports_mixing_override = True

    def __init__(self, space, init_scale: float = 1e-3, weighting: str = "softmax"):
        if weighting not in WEIGHTINGS:
            raise OptionError(f"unknown method.mixer.weighting {weighting!r}; valid choices: "
                              f"{', '.join(WEIGHTINGS)}")
        super().__init__(space, init_scale)
        self.weighting = weighting

    def mix(self, cell_type: str) -> EdgeWeights:
        return EdgeWeights(WEIGHTINGS[self.weighting](torch.softmax(self.alphas[cell_type], dim=-1)))

    def selection_scores(self):
        return self.probabilities(), None
