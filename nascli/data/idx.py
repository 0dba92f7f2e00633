"""The IDX file format (MNIST family) and the Fashion-MNIST reader."""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from nascli.data.base import DATASETS, DatasetInfo, DatasetReader, ImageSplit, cfg_get
from nascli.data.download import DownloadFailed, cache_dir, download, missing_data_error, search_dirs
from nascli.errors import DataMissingError

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dims (N, rows, cols)
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dim (N,)
_UBYTE = 0x08


def read_idx(path: str | os.PathLike) -> tuple[int, np.ndarray]:
    """(magic number, uint8 array) of an IDX file, gzip-compressed or raw (detected by content)."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:  # truncated or corrupt: checked before any parsing
            raise DataMissingError(f"{path}: broken gzip file ({' '.join(str(exc).split())}); "
                                   "expected a complete gzip-compressed IDX file") from None
    elif str(path).endswith(".gz"):
        raise DataMissingError(f"{path} is not a gzip file (it starts with {raw[:4].hex() or 'nothing'}); "
                               "expected a gzip-compressed IDX file")
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise DataMissingError(f"{path}: not an IDX file (bad magic {raw[:4].hex()})")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != _UBYTE:
        raise DataMissingError(f"{path}: IDX element type 0x{dtype_code:02x} unsupported (need 0x08 unsigned byte)")
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", raw[4:header])  # big-endian uint32 sizes
    count = math.prod(dims)
    if len(raw) - header != count:
        raise DataMissingError(f"{path}: IDX header says {dims} = {count} bytes, file holds {len(raw) - header}")
    magic = struct.unpack(">I", raw[:4])[0]
    return magic, np.frombuffer(raw, dtype=np.uint8, count=count, offset=header).reshape(dims)


@lru_cache(maxsize=16)
def _read_idx_cached(path: str, mtime_ns: int, size: int) -> tuple[int, torch.Tensor]:
    magic, array = read_idx(path)
    return magic, torch.from_numpy(array.copy())


def load_idx(path: Path, expect_magic: int) -> torch.Tensor:
    """A cached IDX file as a uint8 tensor, checking its magic number."""
    st = path.stat()
    magic, tensor = _read_idx_cached(str(path), st.st_mtime_ns, st.st_size)
    if magic != expect_magic:
        raise DataMissingError(f"{path}: IDX magic {magic}, expected {expect_magic}")
    return tensor


SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
# Official mirrors (the AWS one is the one torchvision uses); the md5s below guard both.
MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
# md5 of the .gz files, from torchvision.datasets.FashionMNIST.resources. Checked on download only:
# user-provided copies may be recompressed (the copies in SYSTEM_DIR hash differently) yet intact.
FILES = {
    "train_images": ("train-images-idx3-ubyte", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train_labels": ("train-labels-idx1-ubyte", "25c81989df183df01b3e8a0aad5dffbe"),
    "test_images": ("t10k-images-idx3-ubyte", "bef4ecab320f06d8554ea6380940ec79"),
    "test_labels": ("t10k-labels-idx1-ubyte", "bb300cfdad3c16e7a12a480ee83cd310"),
}


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


@DATASETS.register("fashion_mnist")
class FashionMNIST(DatasetReader):
    """Fashion-MNIST from IDX files: 60k train / 10k test, 1x28x28, 10 classes.

    Looks in ``cfg.root``, then ``SYSTEM_DIR``, then the download cache; downloads (md5-checked) into
    ``cfg.root`` or ``~/.cache/nascli/fashion_mnist`` when ``cfg.download`` is true.
    """

    name = "fashion_mnist"
    official_sizes = (60_000, 10_000)

    def info(self) -> DatasetInfo:
        # mean/std: all 60k x 784 train pixels / 255, computed once from the real train set with
        # numpy float64 (population std): 0.2860405969887955, 0.35302424451492254.
        # crop_padding 4: the CIFAR RandomCrop(pad 4) convention of the DARTS/NB201 code applied
        # unchanged to the 28x28 images (1/7 of the side; no NB201 protocol exists for this set).
        return DatasetInfo("fashion_mnist", 10, 1, 28, (0.2860405969887955,), (0.35302424451492254,), 4)

    def _folder(self) -> Path:
        root = cfg_get(self.cfg, "root")
        dirs = search_dirs(root, SYSTEM_DIR, cache_dir(self.name))
        for folder in dirs:
            if all(_find(folder, stem) for stem, _ in FILES.values()):
                return folder
        expected = [stem + ".gz" for stem, _ in FILES.values()]
        if not cfg_get(self.cfg, "download", False):
            raise missing_data_error(self.name, expected, dirs, "download is off (dataset.download=false)")
        dest = Path(root).expanduser() if root else cache_dir(self.name)
        try:
            for stem, md5 in FILES.values():
                if _find(dest, stem) is None:
                    download([m + stem + ".gz" for m in MIRRORS], dest / (stem + ".gz"), md5)
        except (DownloadFailed, OSError) as exc:
            raise missing_data_error(self.name, expected, dirs, f"download into {dest} failed: {exc}") from None
        return dest

    def _split(self, images_key: str, labels_key: str) -> ImageSplit:
        folder = self._folder()
        images = load_idx(_find(folder, FILES[images_key][0]), IDX_IMAGES_MAGIC)  # type: ignore[arg-type]
        labels = load_idx(_find(folder, FILES[labels_key][0]), IDX_LABELS_MAGIC)  # type: ignore[arg-type]
        if images.shape[0] != labels.shape[0] or tuple(images.shape[1:]) != (28, 28):
            raise DataMissingError(
                f"{folder}: Fashion-MNIST {images_key} has shape {tuple(images.shape)} for {labels.shape[0]} labels"
            )
        return ImageSplit(images.unsqueeze(1), labels.to(torch.int64))

    def train(self) -> ImageSplit:
        return self._split("train_images", "train_labels")

    def test(self) -> ImageSplit:
        return self._split("test_images", "test_labels")
