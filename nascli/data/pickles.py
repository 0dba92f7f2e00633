"""A restricted unpickler for the dataset pickles (CIFAR python batches, downsampled ImageNet).

Those files are plain pickles of dicts holding lists, bytes/str and numpy arrays. Unpickling them
needs exactly these globals: numpy's array reconstructor (``numpy.core.multiarray._reconstruct``,
spelled ``numpy._core.multiarray`` by numpy >= 2), ``numpy.ndarray``, ``numpy.dtype``, and
``_codecs.encode`` (Python 3 writes bytes that way under pickle protocol 2). Anything else is refused,
so a tampered file cannot run code.
"""
from __future__ import annotations

import codecs
import os
import pickle
from typing import Any, BinaryIO

import numpy as np

from nascli.errors import DataMissingError


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """``_codecs.encode`` limited to the latin-1 round trip pickle protocol 2 uses for bytes."""
    if not isinstance(text, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1", errors)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in ``_ALLOWED``."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a dataset pickle") from None


def load_dict_pickle(source: str | os.PathLike | BinaryIO, *, what: str) -> dict[str, Any]:
    """Unpickle a dataset dict from a path or binary file; keys come back as ``str``.

    ``encoding='latin1'`` is numpy's documented way to read arrays pickled by Python 2 (the CIFAR and
    downsampled-ImageNet files); Python 2 ``str`` keys then arrive as ``str`` and Python 3 ``bytes``
    keys are decoded here. ``what`` names the file in error messages.
    """
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                obj = RestrictedUnpickler(f, encoding="latin1").load()
        else:
            obj = RestrictedUnpickler(source, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataMissingError(f"{what}: not a readable dataset pickle ({' '.join(str(exc).split())})") from None
    if not isinstance(obj, dict):
        raise DataMissingError(f"{what}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
