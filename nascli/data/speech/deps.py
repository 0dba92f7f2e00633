"""The ``speech`` extra: kaldi-native-fbank (log-Mel filterbanks), jiwer (CER/WER) and soundfile (FLAC),
imported only when a speech reader, feature or metric runs, never at ``import nascli`` time; and the
espeak-ng program of the offline default (a system package)."""
from __future__ import annotations

import importlib
import shutil
from types import ModuleType

from nascli.errors import DataMissingError, NasError

INSTALL_HINT = "pip install 'nascli[speech]'"
#: import name -> distribution name on PyPI
PACKAGES = {"kaldi_native_fbank": "kaldi-native-fbank", "jiwer": "jiwer", "soundfile": "soundfile"}


class MissingSpeechExtraError(NasError):
    """A package of the ``speech`` extra is not installed."""


def require(module: str, purpose: str) -> ModuleType:
    """``import module``, or one line naming what needs it and the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = PACKAGES.get(module, module)
        raise MissingSpeechExtraError(f"{purpose} needs {package}, which is not installed: {INSTALL_HINT}") from None


def espeak_ng() -> str:
    """The path of the ``espeak-ng`` program, or one :class:`DataMissingError` line saying how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise DataMissingError("dataset=spoken_digits synthesises its speech with espeak-ng, which is not installed: "
                               "apt-get install espeak-ng (or pick a dataset on disk: aishell1, librispeech, kaldi_dir)")
    return path
