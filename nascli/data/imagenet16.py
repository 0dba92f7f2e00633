"""ImageNet16-120: the 16x16 downsampled ImageNet pickles (Chrabaszcz et al. 2017) restricted to the
first 120 classes, as used by NAS-Bench-201 (AutoDL xautodl/datasets/DownsampledImageNet.py)."""
from __future__ import annotations

import os
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from nascli.data.base import DATASETS, DatasetInfo, DatasetReader, ImageSplit, cfg_get
from nascli.data.download import cache_dir, missing_data_error, search_dirs
from nascli.data.pickles import load_dict_pickle
from nascli.data.official_splits import Nb201Split
from nascli.errors import DataMissingError

TRAIN_FILES = tuple(f"train_data_batch_{i}" for i in range(1, 11))
VAL_FILE = "val_data"
NUM_CLASSES = 120
SIDE = 16


@lru_cache(maxsize=16)
def _read_file(path: str, mtime_ns: int, size: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickle -> images of labels 1..num_classes as uint8 (N, 3, 16, 16) and 0-based int64 labels.

    Each row of 'data' holds 768 bytes as three 16x16 channel planes (R, G, B); 'labels' are 1-based
    over the 1000 ImageNet classes. Filtering per file keeps the peak memory at one file.
    """
    entry = load_dict_pickle(path, what=path)
    if "data" not in entry or "labels" not in entry:
        raise DataMissingError(f"{path}: pickle lacks 'data'/'labels' (keys: {sorted(entry)})")
    data = np.asarray(entry["data"])
    labels = np.asarray(entry["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE or data.shape[0] != labels.shape[0]:
        raise DataMissingError(
            f"{path}: 'data' is {data.dtype} {data.shape} for {labels.shape[0]} labels, expected uint8 (N, 768)"
        )
    keep = (labels >= 1) & (labels <= num_classes)
    images = np.ascontiguousarray(data[keep]).reshape(-1, 3, SIDE, SIDE)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels[keep] - 1)


@DATASETS.register("imagenet16_120")
class ImageNet16(DatasetReader):
    """ImageNet16-120: ~151.7k train / 6k val images, 3x16x16, 120 classes. User-provided files only.

    Search (nb201): weights on the full train set, architecture on NB201's xvalid (3k half of val).
    Evaluation: train / xtest (the other 3k of val), never an image the search used.
    """

    name = "imagenet16_120"
    # 151,700 train images (the union of NB201's ImageNet16-120-split.txt) and 6,000 val images.
    official_sizes = (151_700, 6_000)
    nb201_split = Nb201Split(file="imagenet-16-120-test-split.txt", indexes="test", arch="xvalid", held_out="xtest")

    def info(self) -> DatasetInfo:
        # NB201 ImageNet16 normalisation and RandomCrop(16, pad 2), METHODS.md 0.4.
        mean = tuple(v / 255 for v in (122.68, 116.66, 104.01))
        std = tuple(v / 255 for v in (63.22, 61.26, 65.09))
        return DatasetInfo("imagenet16_120", NUM_CLASSES, 3, SIDE, mean, std, 2)

    def _folder(self) -> Path:
        root = cfg_get(self.cfg, "root")
        torch_home = os.environ.get("TORCH_HOME", "~/.torch")  # AutoDL's default: $TORCH_HOME/cifar.python/ImageNet16
        extra = [Path(root).expanduser() / "ImageNet16"] if root else []
        dirs = search_dirs(root, *extra, cache_dir(self.name), Path(torch_home) / "cifar.python" / "ImageNet16")
        for d in dirs:
            if all((d / f).is_file() for f in (*TRAIN_FILES, VAL_FILE)):
                return d
        note = "no public download: get Imagenet16_train.zip / Imagenet16_val.zip from image-net.org and unzip"
        for d in dirs:
            for archive in sorted(d.glob("Imagenet16_*.zip")) if d.is_dir() else []:
                if not zipfile.is_zipfile(archive):
                    raise DataMissingError(f"{archive} is not a zip archive; expected the official "
                                           "Imagenet16_train.zip / Imagenet16_val.zip from image-net.org")
                note = f"found {archive}: unzip it into {d} (its files must sit directly in the folder)"
        raise missing_data_error(self.name, [*TRAIN_FILES, VAL_FILE], dirs, note)

    def _load(self, files: tuple[str, ...]) -> ImageSplit:
        folder = self._folder()
        parts = []
        for f in files:
            p = folder / f
            st = p.stat()
            parts.append(_read_file(str(p), st.st_mtime_ns, st.st_size, NUM_CLASSES))
        return ImageSplit(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))

    def train(self) -> ImageSplit:
        return self._load(TRAIN_FILES)

    def test(self) -> ImageSplit:
        return self._load((VAL_FILE,))
