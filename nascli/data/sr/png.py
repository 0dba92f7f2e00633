"""Reading (and, for tests and tools, writing) image files as uint8 (3, H, W) RGB tensors with Pillow
(a dependency of scikit-image, the ``sr`` extra). Greyscale and palette images become three equal
channels and an alpha channel is dropped, as EDSR-PyTorch's readers do."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nascli.data.sr.deps import require
from nascli.errors import DataMissingError

IMAGE_SUFFIXES = (".png",)


def read_rgb(path: Path) -> torch.Tensor:
    """The image at ``path`` as uint8 (3, H, W); an unreadable file is a one-line DataMissingError."""
    image_mod = require("PIL.Image", "reading super-resolution images")
    try:
        with image_mod.open(path) as im:
            array = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DataMissingError(f"{path} is not a readable image ({' '.join(str(exc).split())})") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def write_png(path: Path, image: torch.Tensor) -> None:
    """Write uint8 (3, H, W) ``image`` to ``path`` as an RGB PNG (folders created)."""
    image_mod = require("PIL.Image", "writing super-resolution images")
    path.parent.mkdir(parents=True, exist_ok=True)
    image_mod.fromarray(image.permute(1, 2, 0).cpu().numpy()).save(path)
