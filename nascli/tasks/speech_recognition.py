"""End-to-end speech recognition with CTC (``task=speech_recognition``): log-Mel features in, characters out.

* loss: CTC (Graves et al., ICML 2006; ``torch.nn.functional.ctc_loss``, blank 0, ``zero_infinity``: an
  utterance whose labels cannot fit its output frames contributes 0), the per-utterance negative log
  likelihood ``-log p(y_b | x_b)`` averaged over the batch's utterances, in float32;
* the search's batch score (``train_logp_per_char`` / ``val_logp_per_char``): the mean over the batch's
  utterances of ``log p(y_b | x_b) / |y_b|`` (higher is better, <= 0), computed on the device from the same
  CTC forward, so the search log needs no decoding and no host sync;
* a trained network: greedy (best-path) CTC decoding of the test set and ``cer`` (primary, percent, lower is
  better) and ``wer`` from jiwer (:mod:`nascli.data.speech.metrics`);
* data: the readers of :data:`~nascli.data.speech.reader.SPEECH_DATASETS` (the synthesised ``spoken_digits``,
  AISHELL-1, LibriSpeech, a Kaldi data folder), ``task.num_mel_bins`` log-Mel features with ``task.cmvn``,
  SpecAugment (``task.specaugment``) on the training streams of the search and of ``nas evaluate``;
* multiply-adds are counted for one utterance of ``task.flops_frames`` feature frames (default 1000: 10 s);
* a space's head: ``vocab_size`` (the training transcripts' characters + the blank) and ``in_features``.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nascli.errors import NasError
from nascli.tasks.base import TASKS, Criterion, ReaderTask
from nascli.train.hooks import TrainingHooks, autocast_for


def _speech():
    """The speech data package with its readers registered, imported when the task needs it."""
    import nascli.data.speech as speech

    speech.load_readers()
    return speech


def ctc_per_utterance(output: Any, target: Any) -> torch.Tensor:
    """float32 (B,): ``-log p(y_b | x_b)`` of each utterance (0 where the labels cannot fit)."""
    log_probs = output.log_probs.float().transpose(0, 1)  # (T', B, V)
    return F.ctc_loss(log_probs, target.labels, output.lengths, target.lengths, blank=0, reduction="none",
                      zero_infinity=True)


class CTCLoss(Criterion):
    """Module docstring: CTC loss (mean over utterances) and the summed per-character log likelihood."""

    score_name = "logp_per_char"
    sum_key = "logp_per_char_sum"
    score_scale = 1.0

    def loss(self, output: Any, target: Any, reduction: str = "mean") -> torch.Tensor:
        per_utt = ctc_per_utterance(output, target)
        return per_utt.sum() if reduction == "sum" else per_utt.mean()

    def score_sum(self, output: Any, target: Any) -> torch.Tensor:
        with torch.no_grad():
            per_utt = ctc_per_utterance(output.detach(), target)
        return -(per_utt / target.lengths.clamp_min(1).to(per_utt.dtype)).sum()


CTC = CTCLoss()


@torch.no_grad()
def transcribe(model: nn.Module, batches: Any, vocab: Any, device: torch.device) -> tuple[list[str], list[str]]:
    """(references, greedy hypotheses) of ``model`` in eval mode over ``batches`` of (features, texts)."""
    from nascli.data.speech.metrics import greedy_decode

    model.eval()
    refs, hyps = [], []
    for x, texts in batches:
        with autocast_for(device):
            out = model(x.to(device))
        hyps.extend(vocab.decode(ids) for ids in greedy_decode(out))
        refs.extend(texts)
    return refs, hyps


def _eval_with_texts(split: Any, batch_size: int):
    """(features, reference texts) of ``split`` in order."""
    from nascli.data.speech.split import iterate_speech_eval

    start = 0
    for x, _ in iterate_speech_eval(split, batch_size):
        n = int(x.lengths.shape[0])
        yield x, split.texts[start:start + n]
        start += n


class SpeechTrainingHooks(TrainingHooks):
    """The plain training loop on utterances: CTC loss on SpecAugment-masked batches, CER/WER of greedy
    decoding on the test split."""

    train_score = None

    def __init__(self, augment: Any, length_buckets: int = 0):
        self.augment = augment
        self.length_buckets = length_buckets

    def loss(self, output: Any, target: Any) -> tuple[torch.Tensor, Any]:
        return CTC.loss(output, target), output

    def make_stream(self, split: Any, info: Any, batch_size: int, *, seed: int, cutout: int = 0) -> Any:
        from nascli.data.speech.stream import SpeechBatchStream

        return SpeechBatchStream(split, batch_size, seed=seed, augment=self.augment,
                                 length_buckets=self.length_buckets)

    def test_metrics(self, model: nn.Module, split: Any, info: Any, batch_size: int,
                     device: torch.device) -> dict[str, float]:
        from nascli.data.speech.metrics import error_rates

        refs, hyps = transcribe(model, _eval_with_texts(split, batch_size), info.vocab, device)
        return error_rates(refs, hyps)

    def shard_test(self, split: Any, rank: int, world_size: int) -> Any:
        raise NasError("task=speech_recognition evaluates on one device; run nas evaluate without torchrun")


@TASKS.register("speech_recognition")
class SpeechRecognitionTask(ReaderTask):
    """Module docstring. Task options (``conf/task/speech_recognition.yaml``): ``num_mel_bins``, ``cmvn``
    (utterance | global | none), ``specaugment`` (ld | conformer | none), ``flops_frames``, ``length_buckets``
    (batches per length-sorted bucket of the training streams, :mod:`nascli.data.speech.stream`)."""

    name = "speech_recognition"
    metric = "cer"
    higher_is_better = False
    metric_title = "CER (%, greedy CTC)"

    def __init__(self, cfg: Any = None):
        super().__init__(cfg)
        get = cfg.get if cfg is not None else (lambda k, d=None: d)
        from nascli.data.speech.features import CMVN_MODES, FbankOptions
        from nascli.data.speech.specaugment import policy

        self.fbank = FbankOptions(num_mel_bins=int(get("num_mel_bins", 80)))
        self.cmvn = str(get("cmvn", "utterance"))
        if self.cmvn not in CMVN_MODES:
            raise NasError(f"task.cmvn={self.cmvn} is not a CMVN mode; valid choices: {', '.join(CMVN_MODES)}")
        self.augment = policy(str(get("specaugment", "conformer")))
        self.flops_frames = int(get("flops_frames", 1000))
        buckets = get("length_buckets", 0)
        if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 0:
            raise NasError(f"task.length_buckets={buckets!r} is not allowed; expected an integer >= 0 (batches per "
                           "length-sorted bucket; 0 or 1: no buckets)")
        self.length_buckets = buckets

    def readers(self) -> Any:
        return _speech().load_readers()

    def reader(self, dataset_cfg: Any) -> Any:
        return self.readers().get(str(dataset_cfg.name))(dataset_cfg, self.fbank, self.cmvn)

    def head_kwargs(self, info: Any) -> dict[str, Any]:
        return {"vocab_size": info.vocab_size, "in_features": info.num_mel_bins}

    @property
    def criterion(self) -> Criterion:
        return CTC

    def concat(self, a: Any, b: Any) -> Any:
        return a.join(b)

    def search_stream(self, split: Any, info: Any, batch_size: int, *, seed: int, mode: str = "shuffle",
                      cutout: int = 0) -> Any:
        from nascli.data.speech.stream import SpeechBatchStream

        return SpeechBatchStream(split, batch_size, seed=seed, mode=mode, augment=self.augment,
                                 length_buckets=self.length_buckets)

    def eval_batches(self, split: Any, info: Any, batch_size: int):
        from nascli.data.speech.split import iterate_speech_eval

        return iterate_speech_eval(split, batch_size)

    def input_size(self, info: Any) -> int:
        """The feature size (mel bins) a space's front end subsamples; utterances have any length."""
        return int(info.num_mel_bins)

    def input_shape(self, info: Any) -> tuple[int, ...]:
        return (1, self.flops_frames, int(info.num_mel_bins))

    def flops_input(self, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> Any:
        from nascli.data.speech.batch import PaddedFeatures

        return PaddedFeatures(torch.zeros(shape, device=device, dtype=dtype),
                              torch.full((shape[0],), shape[1], dtype=torch.int64, device=device))

    def cost_fields(self, shape: tuple[int, ...]) -> dict[str, Any]:
        return {"flops_frames": int(shape[1])}

    def eval_data(self, dataset_cfg: Any) -> tuple[Any, Any, Any]:
        reader = self.reader(dataset_cfg)
        train, test = reader.eval_splits()
        return train, test, reader.info()

    def training(self, protocol: Any, make_stream: Any = None) -> TrainingHooks:
        if make_stream is not None:
            raise NasError("task=speech_recognition masks its features with SpecAugment (task.specaugment); drop "
                           "policy= (an image augmentation policy for classification)")
        return SpeechTrainingHooks(self.augment, self.length_buckets)

    def artifacts(self, info: Any) -> dict[str, Any]:
        """``vocab.json``: the vocabulary the run's networks decode with (index 0: the blank)."""
        return {"vocab.json": info.vocab.to_json()}

    def result_fields(self, model: nn.Module, test_split: Any, info: Any, device: torch.device) -> dict[str, Any]:
        """The vocabulary the network decodes with (index 0: the blank), kept with the run."""
        return {"vocab": info.vocab.tokens, "utterances": {"test": len(test_split)}}
