"""``div2k``: the DIV2K release as it unzips (Agustsson & Timofte, NTIRE 2017).

Layout under ``dataset.root`` (or ``~/.cache/nascli/div2k``)::

    DIV2K_train_HR/0001.png ... 0800.png              train() = these 800 pairs
    DIV2K_train_LR_bicubic/X2/0001x2.png ...          (X3, X4 likewise; optional)
    DIV2K_valid_HR/0801.png ... 0900.png              test() = these 100 pairs
    DIV2K_valid_LR_bicubic/X2/0801x2.png ...          (optional)

LR images are read from the ``_LR_bicubic/X{s}`` folder when it exists (the official MATLAB-made ones),
otherwise generated from HR (:mod:`nascli.data.sr.resample` says how and how that differs from MATLAB).
``dataset.max_train`` / ``dataset.max_test`` keep only the first N images (a full DIV2K train split is about
6.9 GB as uint8). With ``dataset.download=true`` and no HR folder, the official zips (HR and the scale's
bicubic LR) are downloaded from data.vision.ee.ethz.ch and md5-checked. The md5 values below are the ones
torchsr's ``Div2K.urls`` and catalyst's ``DIV2KDataset.resources`` list identically; they were not
recomputed here (no download was possible on the machine that wrote this).
"""
from __future__ import annotations

from pathlib import Path

from nascli.data.base import cfg_get
from nascli.data.download import cache_dir, search_dirs
from nascli.data.sr.archive import DownloadFailed, ZipRelease, fetch_release
from nascli.data.sr.folders import has_images, limit, load_folder, missing_folder_error
from nascli.data.sr.images import SRImages
from nascli.data.sr.reader import SR_DATASETS, SRDatasetReader

URL = "http://data.vision.ee.ethz.ch/cvl/DIV2K/"
MD5 = {
    "DIV2K_train_HR.zip": "bdc2d9338d4e574fe81bf7d158758658",
    "DIV2K_valid_HR.zip": "9fcdda83005c5e5997799b69f955ff88",
    "DIV2K_train_LR_bicubic_X2.zip": "9a637d2ef4db0d0a81182be37fb00692",
    "DIV2K_train_LR_bicubic_X3.zip": "ad80b9fe40c049a07a8a6c51bfab3b6d",
    "DIV2K_train_LR_bicubic_X4.zip": "76c43ec4155851901ebbe8339846d93d",
    "DIV2K_valid_LR_bicubic_X2.zip": "1512c9a3f7bde2a1a21a73044e46b9cb",
    "DIV2K_valid_LR_bicubic_X3.zip": "18b1d310f9f88c13618c287927b29898",
    "DIV2K_valid_LR_bicubic_X4.zip": "21962de700c8d368c6ff83314480eff0",
}


def hr_folder(part: str) -> str:
    """``train`` -> ``DIV2K_train_HR``; ``valid`` -> ``DIV2K_valid_HR``."""
    return f"DIV2K_{part}_HR"


def lr_folder(part: str) -> str:
    """The LR folder of ``part`` with a ``{scale}`` placeholder: ``DIV2K_train_LR_bicubic/X{scale}``."""
    return f"DIV2K_{part}_LR_bicubic/X{{scale}}"


def releases(part: str, scale: int) -> list[ZipRelease]:
    """The official zips holding ``part``'s HR folder and its bicubic LR folder for ``scale``."""
    hr, lr = f"{hr_folder(part)}.zip", f"DIV2K_{part}_LR_bicubic_X{scale}.zip"
    return [ZipRelease(hr, URL + hr, MD5[hr], hr_folder(part)),
            ZipRelease(lr, URL + lr, MD5[lr], lr_folder(part).format(scale=scale))]


def find_base(cfg, dataset: str, part: str, scale: int, default_dir: Path) -> Path:
    """The folder holding ``DIV2K_<part>_HR``: found under ``dataset.root`` or the cache, a local zip
    extracted, or downloaded when ``dataset.download`` is true; else the one-line error."""
    root = cfg_get(cfg, "root")
    dirs = search_dirs(root, default_dir)
    hr = hr_folder(part)
    for d in dirs:
        if has_images(d / hr):
            return d
    for d in dirs:
        if (d / f"{hr}.zip").is_file():  # the HR zip, and the scale's LR zip when it lies beside it
            for release in releases(part, scale):
                if (d / release.file).is_file():
                    fetch_release(release, d)
            return d
    lr = lr_folder(part)
    if not cfg_get(cfg, "download", False):
        raise missing_folder_error(dataset, hr, lr, scale, dirs, f"or pass dataset.download=true to fetch {hr}.zip")
    dest = Path(root).expanduser() if root else default_dir
    try:
        for release in releases(part, scale):
            fetch_release(release, dest)
    except (DownloadFailed, OSError) as exc:
        raise missing_folder_error(dataset, hr, lr, scale, dirs, f"download into {dest} failed: {exc}") from None
    return dest


@SR_DATASETS.register("div2k")
class DIV2K(SRDatasetReader):
    """DIV2K: train = DIV2K_train_HR (800), test = DIV2K_valid_HR (100), LR read or generated (module doc)."""

    name = "div2k"

    def __init__(self, cfg, scale: int):
        super().__init__(cfg, scale)
        limit(cfg, "max_train")  # bad values fail before any file is read
        limit(cfg, "max_test")

    def _part(self, part: str, split: str, max_key: str) -> SRImages:
        base = find_base(self.cfg, self.name, part, self.scale, cache_dir(self.name))
        return load_folder(base, hr_folder(part), lr_folder(part), self.scale, split, limit(self.cfg, max_key))

    def train(self) -> SRImages:
        return self._part("train", "train", "max_train")

    def test(self) -> SRImages:
        return self._part("valid", "valid", "max_test")
