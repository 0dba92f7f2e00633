"""Reading speech audio: WAV with the standard library's ``wave`` module, FLAC with soundfile (the ``speech``
extra). Every reader returns ``(samples, sample_rate)``: mono float32 samples on Kaldi's 16-bit scale
(``[-32768, 32767]``, what Kaldi's ``compute-fbank-feats`` sees for a 16-bit WAV), the first channel of a
multi-channel file."""
from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nascli.data.speech.deps import require
from nascli.errors import NasError

#: bytes per sample -> (numpy dtype of the PCM data, offset to zero-centre it, scale to the 16-bit range)
_PCM = {1: (np.uint8, 128.0, 256.0), 2: (np.int16, 0.0, 1.0), 4: (np.int32, 0.0, 1.0 / 65536.0)}


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """PCM WAV (8-, 16- or 32-bit integer samples)."""
    with wave.open(str(path), "rb") as w:
        width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
        raw = w.readframes(w.getnframes())
    if width not in _PCM:
        raise NasError(f"{path}: {8 * width}-bit WAV samples are not supported; valid choices: 8, 16, 32-bit PCM")
    dtype, offset, scale = _PCM[width]
    data = np.frombuffer(raw, dtype=dtype).reshape(-1, channels)[:, 0]
    return ((data.astype(np.float32) - offset) * scale).astype(np.float32), int(rate)


def read_flac(path: Path) -> tuple[np.ndarray, int]:
    """FLAC through soundfile (libsndfile), read as 16-bit integers."""
    sf = require("soundfile", "reading FLAC audio (LibriSpeech)")
    data, rate = sf.read(str(path), dtype="int16", always_2d=True)
    return data[:, 0].astype(np.float32), int(rate)


#: file suffix -> reader
AUDIO_READERS: dict[str, Callable[[Path], tuple[np.ndarray, int]]] = {".wav": read_wav, ".flac": read_flac}


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """The reader of ``path``'s suffix (:data:`AUDIO_READERS`)."""
    path = Path(path)
    reader = AUDIO_READERS.get(path.suffix.lower())
    if reader is None:
        raise NasError(f"{path}: audio format {path.suffix!r} is not supported; valid choices: "
                       f"{', '.join(AUDIO_READERS)}")
    return reader(path)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """A mono 16-bit PCM WAV of ``samples`` (16-bit scale, clipped)."""
    pcm = np.clip(np.round(samples), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
