"""The endless, resumable training stream of speech batches: :class:`nascli.data.stream.BatchStream`'s order
(``shuffle`` passes over fresh permutations, last partial batch dropped, or ``random`` batches drawn with
replacement) and resumable state, over a :class:`~nascli.data.speech.split.SpeechSplit`: each batch padded
to its longest utterance and masked by SpecAugment when the stream augments. The stream's one
``torch.Generator(seed)`` draws the order and the masks, so ``state_dict`` / ``load_state_dict`` resume
bit-identically."""
from __future__ import annotations

from nascli.data.speech.batch import CTCTargets, PaddedFeatures
from nascli.data.speech.specaugment import POLICIES, SpecAugment
from nascli.data.speech.split import SpeechSplit
from nascli.data.stream import BatchStream


class SpeechBatchStream(BatchStream):
    def __init__(self, split: SpeechSplit, batch_size: int, *, seed: int, mode: str = "shuffle",
                 augment: SpecAugment = POLICIES["none"]):
        super().__init__(split, None, batch_size, seed=seed, train_aug=augment.active, mode=mode)  # type: ignore[arg-type]
        self.augment = augment

    def next(self) -> tuple[PaddedFeatures, CTCTargets]:
        """(padded, masked features, CTC targets) on the split's device."""
        x, y = self.split.batch(self._indices().tolist())
        self.batches_drawn += 1
        if self.augment.active:
            x = PaddedFeatures(self.augment(x.features, x.lengths, self.generator), x.lengths)
        return x, y

    __next__ = next
