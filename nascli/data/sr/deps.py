"""The ``sr`` extra: scikit-image (the embedded photographs, PSNR/SSIM) and Pillow (PNG files), imported
only when a super-resolution reader or metric runs, never at ``import nascli`` time."""
from __future__ import annotations

import importlib
from types import ModuleType

from nascli.errors import NasError

INSTALL_HINT = "pip install 'nascli[sr]'"


class MissingExtraError(NasError):
    """A package of the ``sr`` extra is not installed."""


def require(module: str, purpose: str) -> ModuleType:
    """``import module``, or one line naming what needs it and the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        package = {"skimage": "scikit-image", "PIL": "Pillow"}.get(top, top)
        raise MissingExtraError(f"{purpose} needs {package}, which is not installed: {INSTALL_HINT}") from None
