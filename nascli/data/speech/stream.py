"""The endless, resumable training stream of speech batches: :class:`nascli.data.stream.BatchStream`'s order
(``shuffle`` passes over fresh permutations, last partial batch dropped, or ``random`` batches drawn with
replacement) and resumable state, over a :class:`~nascli.data.speech.split.SpeechSplit`: each batch padded
to its longest utterance and masked by SpecAugment when the stream augments. The stream's one
``torch.Generator(seed)`` draws the order and the masks, so ``state_dict`` / ``load_state_dict`` resume
bit-identically.

Length buckets (``length_buckets = k > 1``, shuffle mode): a pass draws a uniform permutation, keeps its first
``floor(n / B) * B`` utterances (B the batch size; the rest is dropped as without buckets), cuts them into
consecutive groups of ``k * B``, sorts each group by length (stable, so ties keep the permutation's order), cuts
the groups into batches of B and shuffles the order of all the pass's batches. Each batch then holds utterances
of similar length (less padding), every utterance is still seen once per pass, and a batch's content stays
random across passes. ``k <= 1``: the plain uniform permutation."""
from __future__ import annotations

import torch

from nascli.data.speech.batch import CTCTargets, PaddedFeatures
from nascli.data.speech.specaugment import POLICIES, SpecAugment
from nascli.data.speech.split import SpeechSplit
from nascli.data.stream import BatchStream


class SpeechBatchStream(BatchStream):
    def __init__(self, split: SpeechSplit, batch_size: int, *, seed: int, mode: str = "shuffle",
                 augment: SpecAugment = POLICIES["none"], length_buckets: int = 0):
        super().__init__(split, None, batch_size, seed=seed, train_aug=augment.active, mode=mode)  # type: ignore[arg-type]
        self.augment = augment
        self.length_buckets = int(length_buckets)
        self._lengths = torch.tensor([f.shape[0] for f in split.features], dtype=torch.int64)

    def _new_permutation(self, n: int) -> torch.Tensor:
        """A pass's order with length buckets (module docstring), or the plain permutation."""
        perm = super()._new_permutation(n)
        if self.length_buckets <= 1:
            return perm
        bs = self.batch_size
        usable = (n // bs) * bs
        group = self.length_buckets * bs
        order = perm.cpu()
        kept, rest = order[:usable], order[usable:]
        parts = []
        for start in range(0, usable, group):
            chunk = kept[start:start + group]
            parts.append(chunk[torch.sort(self._lengths[chunk], stable=True).indices])
        batches = torch.cat(parts).view(-1, bs)
        shuffled = batches[torch.randperm(len(batches), generator=self.generator, device=perm.device).cpu()]
        return torch.cat([shuffled.reshape(-1), rest]).to(perm.device)

    def next(self) -> tuple[PaddedFeatures, CTCTargets]:
        """(padded, masked features, CTC targets) on the split's device."""
        x, y = self.split.batch(self._indices().tolist())
        self.batches_drawn += 1
        if self.augment.active:
            x = PaddedFeatures(self.augment(x.features, x.lengths, self.generator), x.lengths)
        return x, y

    __next__ = next
