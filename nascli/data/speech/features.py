"""Log-Mel filterbank features (kaldi-native-fbank, Kaldi's ``compute-fbank-feats``) and their normalisation.

* fbank: Kaldi's defaults (25 ms Povey window, 10 ms shift, pre-emphasis 0.97, DC removal, ``snip_edges``:
  ``1 + (N - 400) // 160`` frames of a 16 kHz signal of N >= 400 samples), ``num_mel_bins`` bins
  (80 by default, as Conformer, Gulati et al. 2020, sec. 3.1), dither 0 (Kaldi's default is 1.0; 0 makes
  features a function of the audio, so runs are reproducible), on 16-bit-scale samples;
* CMVN (``cmvn``): ``utterance`` normalises each bin of each utterance to zero mean and unit variance over
  its own frames, ``x' = (x - mean_t x) / max(std_t x, 1e-5)``; ``global`` does the same with the mean and
  standard deviation of each bin over every frame of the training split (applied to every split);
  ``none`` keeps the log energies.

Features are computed once per audio file and options and kept in memory (:data:`_CACHE`), so the search's
splits, the selection batches and ``nas evaluate`` in one process never recompute them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nascli.data.speech.audio import read_audio
from nascli.data.speech.deps import require
from nascli.errors import NasError

CMVN_MODES = ("utterance", "global", "none")
STD_FLOOR = 1e-5


@dataclass(frozen=True)
class FbankOptions:
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0

    def __post_init__(self) -> None:
        if self.num_mel_bins < 1:
            raise NasError(f"task.num_mel_bins={self.num_mel_bins} must be >= 1")


def fbank(samples: np.ndarray, sample_rate: int, opts: FbankOptions = FbankOptions()) -> torch.Tensor:
    """float32 (frames, num_mel_bins) log-Mel filterbank energies of ``samples`` (16-bit scale)."""
    knf = require("kaldi_native_fbank", "log-Mel features (task=speech_recognition)")
    o = knf.FbankOptions()
    o.frame_opts.samp_freq = float(sample_rate)
    o.frame_opts.dither = 0.0
    o.frame_opts.frame_length_ms = float(opts.frame_length_ms)
    o.frame_opts.frame_shift_ms = float(opts.frame_shift_ms)
    o.mel_opts.num_bins = int(opts.num_mel_bins)
    computer = knf.OnlineFbank(o)
    computer.accept_waveform(float(sample_rate), np.asarray(samples, dtype=np.float32))
    computer.input_finished()
    n = computer.num_frames_ready
    if n == 0:
        return torch.zeros(0, opts.num_mel_bins)
    return torch.from_numpy(np.stack([np.asarray(computer.get_frame(i), dtype=np.float32) for i in range(n)]))


_CACHE: dict[tuple, torch.Tensor] = {}


def file_fbank(path: str | Path, opts: FbankOptions) -> torch.Tensor:
    """:func:`fbank` of an audio file, cached in memory per (file, size, mtime, options)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, opts)
    if key not in _CACHE:
        samples, rate = read_audio(path)
        _CACHE[key] = fbank(samples, rate, opts)
    return _CACHE[key]


def utterance_cmvn(x: torch.Tensor) -> torch.Tensor:
    """Each bin of one utterance (T, F) to zero mean, unit variance over its frames."""
    if x.shape[0] == 0:
        return x
    return (x - x.mean(0)) / x.std(0, unbiased=False).clamp_min(STD_FLOOR)


def global_stats(feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-bin (mean, std) over every frame of ``feats`` (float64 sums)."""
    frames = torch.cat([f.double() for f in feats])
    return frames.mean(0).float(), frames.std(0, unbiased=False).clamp_min(STD_FLOOR).float()


def normalise(train: list[torch.Tensor], others: list[list[torch.Tensor]], mode: str
              ) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """``train`` and the ``others`` splits under CMVN ``mode`` (module docstring); global statistics come
    from ``train`` only."""
    if mode not in CMVN_MODES:
        raise NasError(f"task.cmvn={mode!r} is not a CMVN mode; valid choices: {', '.join(CMVN_MODES)}")
    if mode == "none":
        return train, others
    if mode == "utterance":
        return [utterance_cmvn(x) for x in train], [[utterance_cmvn(x) for x in o] for o in others]
    mean, std = global_stats(train)
    return [(x - mean) / std for x in train], [[(x - mean) / std for x in o] for o in others]
