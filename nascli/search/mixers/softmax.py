"""DARTS continuous relaxation: o_bar(x) = sum_o softmax(alpha)_o * o(x) (Liu et al., 2019, eq. 2)."""
from __future__ import annotations

import torch

from nascli.search.mixers.base import MIXERS, EdgeWeights, Mixer


@MIXERS.register("softmax")
class SoftmaxMixer(Mixer):
    """Every op of every edge is computed and weighted by softmax(alpha) of its edge."""

    supports_mixing_override = True

    def mix(self, cell_type: str) -> EdgeWeights:
        return EdgeWeights(torch.softmax(self.alphas[cell_type], dim=-1))

    def selection_scores(self):
        return self.probabilities(), None
