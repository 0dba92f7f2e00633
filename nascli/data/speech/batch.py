"""The batch types of speech recognition, shared by the speech data, the speech task and speech spaces.

A batch is ``(PaddedFeatures, CTCTargets)``; a network maps ``PaddedFeatures`` to a :class:`CTCOutput`.
Index 0 of every vocabulary is the CTC blank. Padding never carries information: frames at or after
``lengths[b]`` and labels at or after ``label_lengths[b]`` are ignored by every consumer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

#: the CTC blank's index in every vocabulary
BLANK = 0


@dataclass
class PaddedFeatures:
    """Log-Mel features of a batch of utterances: ``features`` float32 (B, T, F), zero-padded in time to the
    longest utterance; ``lengths`` int64 (B,) the valid frames of each."""

    features: torch.Tensor
    lengths: torch.Tensor

    def __post_init__(self) -> None:
        if self.features.dim() != 3:
            raise ValueError(f"features must be (B, T, F), got {tuple(self.features.shape)}")
        if self.lengths.shape != (self.features.shape[0],):
            raise ValueError(f"lengths must be ({self.features.shape[0]},), got {tuple(self.lengths.shape)}")

    @property
    def shape(self) -> torch.Size:
        """``features.shape``: ``shape[0]`` is the batch size, as for an image batch."""
        return self.features.shape

    @property
    def device(self) -> torch.device:
        return self.features.device

    def to(self, device: torch.device | str) -> "PaddedFeatures":
        return PaddedFeatures(self.features.to(device), self.lengths.to(device))

    def padding_mask(self) -> torch.Tensor:
        """bool (B, T): True at padded frames (``t >= lengths[b]``)."""
        t = torch.arange(self.features.shape[1], device=self.features.device)
        return t[None, :] >= self.lengths[:, None]


@dataclass
class CTCTargets:
    """Label sequences of a batch: ``labels`` int64 (B, L) padded with ``BLANK``, ``lengths`` int64 (B,)."""

    labels: torch.Tensor
    lengths: torch.Tensor

    @property
    def shape(self) -> torch.Size:
        return self.labels.shape

    def to(self, device: torch.device | str) -> "CTCTargets":
        return CTCTargets(self.labels.to(device), self.lengths.to(device))


@dataclass
class CTCOutput:
    """A network's output: ``log_probs`` float (B, T', V), log-softmax over the vocabulary (V includes the
    blank at 0), and ``lengths`` int64 (B,) the valid output frames after any subsampling."""

    log_probs: torch.Tensor
    lengths: torch.Tensor

    @property
    def shape(self) -> torch.Size:
        return self.log_probs.shape

    def float(self) -> "CTCOutput":
        return CTCOutput(self.log_probs.float(), self.lengths)

    def detach(self) -> "CTCOutput":
        return CTCOutput(self.log_probs.detach(), self.lengths)
