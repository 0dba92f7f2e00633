"""``sr_benchmark``: Set5 / Set14 / B100 / Urban100 in EDSR-PyTorch's ``benchmark`` layout, training on
DIV2K (as the SR papers reporting these benchmarks do).

Layout under ``dataset.root``::

    benchmark/Set5/HR/baby.png                       test() = the images of dataset.benchmark
    benchmark/Set5/LR_bicubic/X2/babyx2.png          (X3, X4 likewise; optional: else generated)
    DIV2K/DIV2K_train_HR/0001.png ...                train() = DIV2K train in the div2k layout (LR
    DIV2K/DIV2K_train_LR_bicubic/X2/0001x2.png ...   optional), under dataset.train_root (default <root>/DIV2K)

Test HR images are mod-cropped to a multiple of the scale (the SR literature's convention; EDSR's
benchmark LR files were made from the cropped HR). This reader never downloads.
"""
from __future__ import annotations

from pathlib import Path

from nascli.data.base import cfg_get
from nascli.data.sr.div2k import hr_folder, lr_folder
from nascli.data.sr.folders import has_images, limit, load_folder, missing_folder_error
from nascli.data.sr.images import SRImages
from nascli.data.sr.reader import SR_DATASETS, SRDatasetReader
from nascli.errors import NasError

BENCHMARKS = ("Set5", "Set14", "B100", "Urban100")


@SR_DATASETS.register("sr_benchmark")
class SRBenchmark(SRDatasetReader):
    """Test on ``benchmark/<dataset.benchmark>``, train on DIV2K train (module doc)."""

    name = "sr_benchmark"

    def __init__(self, cfg, scale: int):
        super().__init__(cfg, scale)
        self.benchmark()  # bad values fail before any file is read
        limit(cfg, "max_train")
        limit(cfg, "max_test")

    def benchmark(self) -> str:
        name = str(cfg_get(self.cfg, "benchmark", "Set5"))
        if name not in BENCHMARKS:
            raise NasError(f"unknown dataset.benchmark {name!r}; valid choices: {', '.join(BENCHMARKS)}")
        return name

    def _root(self) -> Path | None:
        root = cfg_get(self.cfg, "root")
        return None if root is None else Path(root).expanduser()

    def train(self) -> SRImages:
        train_root, root = cfg_get(self.cfg, "train_root"), self._root()
        base = Path(train_root).expanduser() if train_root else (root / "DIV2K" if root else None)
        hr, lr = hr_folder("train"), lr_folder("train")
        if base is None or not has_images(base / hr):
            raise missing_folder_error(self.name, hr, lr, self.scale, [] if base is None else [base],
                                       "these are the training images (DIV2K; dataset.train_root defaults to "
                                       "<dataset.root>/DIV2K)", key="dataset.train_root")
        return load_folder(base, hr, lr, self.scale, "train", limit(self.cfg, "max_train"))

    def test(self) -> SRImages:
        bench, root = self.benchmark(), self._root()
        hr, lr = f"benchmark/{bench}/HR", f"benchmark/{bench}/LR_bicubic/X{{scale}}"
        if root is None or not has_images(root / hr):
            raise missing_folder_error(self.name, hr, lr, self.scale, [] if root is None else [root])
        return load_folder(root, hr, lr, self.scale, bench, limit(self.cfg, "max_test"))
