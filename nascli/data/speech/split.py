"""A split of speech utterances held in memory (features on the host, batches moved to the split's device),
and padding a list of them into a batch (:mod:`nascli.data.speech.batch`)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import torch

from nascli.data.speech.batch import BLANK, CTCTargets, PaddedFeatures


@dataclass
class SpeechSplit:
    """``features[i]`` float32 (T_i, F) normalised log-Mel frames, ``labels[i]`` int64 (L_i,) token ids,
    ``texts[i]`` the reference transcript (what CER/WER compare against), ``ids[i]`` the utterance id."""

    name: str
    features: list[torch.Tensor]
    labels: list[torch.Tensor]
    texts: list[str]
    ids: list[str]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __len__(self) -> int:
        return len(self.features)

    def to(self, device: torch.device | str) -> "SpeechSplit":
        """The same split whose batches land on ``device`` (features stay in host memory)."""
        return replace(self, device=torch.device(device))

    def subset(self, indices: Sequence[int], name: str) -> "SpeechSplit":
        idx = list(indices)
        return SpeechSplit(name, [self.features[i] for i in idx], [self.labels[i] for i in idx],
                           [self.texts[i] for i in idx], [self.ids[i] for i in idx], self.device)

    def join(self, other: "SpeechSplit") -> "SpeechSplit":
        return SpeechSplit(f"{self.name}+{other.name}", self.features + other.features, self.labels + other.labels,
                           self.texts + other.texts, self.ids + other.ids, self.device)

    def batch(self, indices: Sequence[int]) -> tuple[PaddedFeatures, CTCTargets]:
        """The utterances ``indices`` padded to their longest (features with 0, labels with the blank), on
        the split's device."""
        feats = [self.features[i] for i in indices]
        labels = [self.labels[i] for i in indices]
        x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True, padding_value=0.0)
        y = torch.nn.utils.rnn.pad_sequence(labels, batch_first=True, padding_value=BLANK) if labels else \
            torch.zeros(0, 0, dtype=torch.int64)
        flen = torch.tensor([f.shape[0] for f in feats], dtype=torch.int64)
        ylen = torch.tensor([lab.shape[0] for lab in labels], dtype=torch.int64)
        dev = self.device
        return PaddedFeatures(x.to(dev), flen.to(dev)), CTCTargets(y.to(dev), ylen.to(dev))


def iterate_speech_eval(split: SpeechSplit, batch_size: int) -> Iterator[tuple[PaddedFeatures, CTCTargets]]:
    """Unaugmented batches of ``split`` in order, the last partial batch included."""
    for start in range(0, len(split), batch_size):
        yield split.batch(range(start, min(start + batch_size, len(split))))
