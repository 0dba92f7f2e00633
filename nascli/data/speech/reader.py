"""The speech dataset registry (:data:`SPEECH_DATASETS`) and what every reader shares: the transcripts of
the training and test utterances (:class:`Utterance`), a vocabulary from the training transcripts, log-Mel
features with CMVN (:mod:`~nascli.data.speech.features`), the search's weights/architecture cut and the
evaluation's train/test splits. A reader only lists its utterances (:meth:`SpeechReader.utterances`).

Options every speech dataset yaml carries: ``root`` (folder; null: the reader's default), ``max_train`` /
``max_test`` (the first N utterances in id order; null: all; CPU-scale runs), ``train_portion`` (search:
the weights part of the training utterances, the rest is the architecture part) and ``seed`` (that cut's
permutation, independent of the run seed).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nascli.data.speech.features import FbankOptions, file_fbank, normalise
from nascli.data.speech.split import SpeechSplit
from nascli.data.speech.vocab import Vocabulary
from nascli.errors import NasError
from nascli.registry import Registry

PARTS = ("train", "test")


@dataclass(frozen=True)
class Utterance:
    id: str
    path: Path
    text: str
    speaker: str = ""


@dataclass
class SpeechInfo:
    """Static facts of a speech dataset: its vocabulary (from the training transcripts) and feature size.
    ``channels`` is 1 (one feature stream) for the builders' ``in_channels``."""

    name: str
    vocab: Vocabulary
    num_mel_bins: int
    channels: int = 1

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


def _opt(cfg: Any, key: str, default: Any = None) -> Any:
    return cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)


class SpeechReader(ABC):
    """One speech dataset under ``cfg`` (its yaml node), read with fbank options ``fbank`` and CMVN ``cmvn``."""

    name: str

    def __init__(self, cfg: Any, fbank: FbankOptions = FbankOptions(), cmvn: str = "utterance"):
        self.cfg, self.fbank, self.cmvn = cfg, fbank, cmvn

    def opt(self, key: str, default: Any = None) -> Any:
        return _opt(self.cfg, key, default)

    @abstractmethod
    def utterances(self, part: str) -> list[Utterance]:
        """The utterances of ``part`` (``train`` or ``test``) in id order; a missing file is one
        :class:`~nascli.errors.DataMissingError` line naming what to place where."""

    def _limited(self, part: str) -> list[Utterance]:
        utts = self.utterances(part)
        limit = self.opt(f"max_{part}")
        utts = utts[: int(limit)] if limit is not None else utts
        if not utts:
            raise NasError(f"dataset={self.name}: the {part} part has no utterances")
        return utts

    def vocabulary(self) -> Vocabulary:
        return Vocabulary.from_texts(u.text for u in self._limited("train"))

    def info(self) -> SpeechInfo:
        """Reads the training transcripts only (no audio)."""
        return SpeechInfo(self.name, self.vocabulary(), self.fbank.num_mel_bins)

    def _key(self) -> tuple:
        from nascli.plain import plain

        return (self.name, repr(plain(self.cfg)), self.fbank, self.cmvn)

    def eval_splits(self) -> tuple[SpeechSplit, SpeechSplit]:
        """(train, test) with features (cached in-process per dataset, options and CMVN)."""
        key = self._key()
        if key not in _LOADED:
            train_u, test_u = self._limited("train"), self._limited("test")
            vocab = Vocabulary.from_texts(u.text for u in train_u)
            feats = [[file_fbank(u.path, self.fbank) for u in utts] for utts in (train_u, test_u)]
            train_f, (test_f,) = normalise(feats[0], feats[1:], self.cmvn)
            _LOADED[key] = tuple(self._split(f"{self.name}-{part}", utts, f, vocab)
                                 for part, utts, f in (("train", train_u, train_f), ("test", test_u, test_f)))
        return _LOADED[key]

    @staticmethod
    def _split(name: str, utts: list[Utterance], feats: list[torch.Tensor], vocab: Vocabulary) -> SpeechSplit:
        labels = [torch.tensor(vocab.encode(u.text), dtype=torch.int64) for u in utts]
        return SpeechSplit(name, feats, labels, [u.text for u in utts], [u.id for u in utts])

    def search_splits(self) -> tuple[SpeechSplit, SpeechSplit]:
        """The training utterances cut by a ``seed`` permutation: ``train_portion`` of them train the weights,
        the rest the architecture."""
        train, _ = self.eval_splits()
        n = len(train)
        cut = int(round(float(self.opt("train_portion", 0.5)) * n))
        if not 0 < cut < n:
            raise NasError(f"dataset.train_portion={self.opt('train_portion')} leaves an empty search part of "
                           f"{n} training utterances")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(self.opt("seed", 0)))).tolist()
        return train.subset(perm[:cut], f"{self.name}-weights"), train.subset(perm[cut:], f"{self.name}-arch")


_LOADED: dict[tuple, tuple[SpeechSplit, SpeechSplit]] = {}

SPEECH_DATASETS: Registry[type[SpeechReader]] = Registry("speech dataset")


def read_transcripts(path: Path, strip_spaces: bool) -> dict[str, str]:
    """``<id> <transcript>`` lines (Kaldi ``text``, AISHELL-1, LibriSpeech ``.trans.txt``): id -> transcript,
    internal whitespace collapsed to one space (``strip_spaces``: removed)."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.strip().split(maxsplit=1)
        if not parts:
            continue
        words = parts[1].split() if len(parts) > 1 else []
        out[parts[0]] = ("" if strip_spaces else " ").join(words)
    return out
