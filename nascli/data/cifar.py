"""CIFAR-10 / CIFAR-100 from the official python-pickle release (folder or .tar.gz)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from nascli.data.base import DATASETS, DatasetInfo, DatasetReader, ImageSplit, cfg_get
from nascli.data.download import (
    DownloadFailed,
    cache_dir,
    download,
    extract_members,
    is_writable_dir,
    missing_data_error,
    search_dirs,
    verify_archive,
)
from nascli.data.pickles import load_dict_pickle
from nascli.data.official_splits import Nb201Split
from nascli.errors import DataMissingError


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR release keeps its batches and how its dicts are keyed."""

    folder: str
    train_files: tuple[str, ...]
    test_file: str
    label_key: str
    archive: str
    url: str
    # md5 of the archive, as listed on https://www.cs.toronto.edu/~kriz/cifar.html and in
    # torchvision.datasets.CIFAR10/CIFAR100.tgz_md5; checked on download and before a local
    # archive is extracted.
    md5: str

    def members(self) -> list[str]:
        return [f"{self.folder}/{f}" for f in (*self.train_files, self.test_file)]


@lru_cache(maxsize=16)
def _read_batch(path: str, mtime_ns: int, size: int, label_key: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled batch -> (uint8 (N, 3, 32, 32), int64 (N,)); rows of b'data' are CHW planes."""
    entry = load_dict_pickle(path, what=path)
    if "data" not in entry or label_key not in entry:
        raise DataMissingError(f"{path}: pickle lacks 'data'/'{label_key}' (keys: {sorted(entry)})")
    data = np.asarray(entry["data"])
    labels = np.asarray(entry[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise DataMissingError(
            f"{path}: 'data' is {data.dtype} {data.shape} for {labels.shape[0]} labels, expected uint8 (N, 3072)"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataMissingError(f"{path}: labels outside 0..{num_classes - 1}")
    images = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels.copy())


class _Cifar(DatasetReader):
    layout: ClassVar[CifarLayout]
    num_classes: ClassVar[int]

    def _dirs(self) -> list[Path]:
        return search_dirs(cfg_get(self.cfg, "root"), cache_dir(self.name))

    def _batches_dir(self) -> Path:
        """The folder holding the batch files, extracting or downloading the archive if needed."""
        lay = self.layout
        files = (*lay.train_files, lay.test_file)
        dirs = self._dirs()
        for d in dirs:
            if all((d / lay.folder / f).is_file() for f in files):
                return d / lay.folder
            if all((d / f).is_file() for f in files):  # root points inside the release folder
                return d
        for d in dirs:
            if (d / lay.archive).is_file():
                return self._extract(d / lay.archive)
        expected = [f"{lay.folder}/{f}" for f in files]
        expected[-1] += f" (or the archive {lay.archive})"
        if not cfg_get(self.cfg, "download", False):
            raise missing_data_error(self.name, expected, dirs, "download is off (dataset.download=false)")
        root = cfg_get(self.cfg, "root")
        dest = Path(root).expanduser() if root else cache_dir(self.name)
        try:
            archive = download([lay.url], dest / lay.archive, lay.md5)
        except (DownloadFailed, OSError) as exc:
            raise missing_data_error(self.name, expected, dirs, f"download into {dest} failed: {exc}") from None
        return self._extract(archive)

    def _extract(self, archive: Path) -> Path:
        """Extract the batch files next to the archive, or into the cache when that folder is read-only."""
        dest = archive.parent if is_writable_dir(archive.parent) else cache_dir(self.name)
        target = dest / self.layout.folder
        files = (*self.layout.train_files, self.layout.test_file)
        if not all((target / f).is_file() for f in files):
            fix = f"delete it to download again, or put the extracted {self.layout.folder} in dataset.root"
            verify_archive(archive, self.layout.md5, fix=fix)
            extract_members(archive, dest, self.layout.members())
        return target

    def _load(self, files: tuple[str, ...]) -> ImageSplit:
        folder = self._batches_dir()
        parts = []
        for f in files:
            p = folder / f
            st = p.stat()
            parts.append(_read_batch(str(p), st.st_mtime_ns, st.st_size, self.layout.label_key, self.num_classes))
        if len(parts) == 1:
            return ImageSplit(*parts[0])
        return ImageSplit(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))

    def train(self) -> ImageSplit:
        return self._load(self.layout.train_files)

    def test(self) -> ImageSplit:
        return self._load((self.layout.test_file,))


@DATASETS.register("cifar10")
class Cifar10(_Cifar):
    """CIFAR-10: 50k train (data_batch_1..5) / 10k test; search (nb201) = NB201's 25k/25k train halves."""

    name = "cifar10"
    num_classes = 10
    official_sizes = (50_000, 10_000)
    nb201_split = Nb201Split(file="cifar-split.txt", indexes="train", weights="train", arch="valid")
    layout = CifarLayout(
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_file="test_batch",
        label_key="labels",
        archive="cifar-10-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
    )

    def info(self) -> DatasetInfo:
        # NB201 CIFAR-10 normalisation, METHODS.md 0.4 (AutoDL get_dataset_with_transform.py).
        mean = tuple(v / 255 for v in (125.3, 123.0, 113.9))
        std = tuple(v / 255 for v in (63.0, 62.1, 66.7))
        return DatasetInfo("cifar10", 10, 3, 32, mean, std, 4)


@DATASETS.register("cifar100")
class Cifar100(_Cifar):
    """CIFAR-100 (fine labels): 50k train / 10k test; search (nb201) = all train / xvalid (5k half of test),
    evaluation reports on xtest (the other 5k)."""

    name = "cifar100"
    num_classes = 100
    official_sizes = (50_000, 10_000)
    nb201_split = Nb201Split(file="cifar100-test-split.txt", indexes="test", arch="xvalid", held_out="xtest")
    layout = CifarLayout(
        folder="cifar-100-python",
        train_files=("train",),
        test_file="test",
        label_key="fine_labels",
        archive="cifar-100-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
    )

    def info(self) -> DatasetInfo:
        # NB201 CIFAR-100 normalisation, METHODS.md 0.4.
        mean = tuple(v / 255 for v in (129.3, 124.1, 112.4))
        std = tuple(v / 255 for v in (68.2, 65.4, 70.4))
        return DatasetInfo("cifar100", 100, 3, 32, mean, std, 4)
